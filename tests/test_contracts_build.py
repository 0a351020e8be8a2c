"""The committed ABIs must match the contracts, and contract builds must be reproducible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_imitations import HELPERS, IMITATIONS

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "scripts" / "build_contracts.mjs"
CONTRACTS = IMITATIONS + HELPERS  # what the build writes out: the imitations and the helpers

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "solc").is_dir(),
    reason="node and the npm solc package are needed to compile the contracts",
)


def run_build(*args: str, env_overrides: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_overrides or {})}
    return subprocess.run(
        ["node", str(BUILD_SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_committed_abis_are_up_to_date() -> None:
    result = run_build("--check")
    assert result.returncode == 0, f"stale ABIs, rebuild the contracts:\n{result.stdout}{result.stderr}"


def test_build_is_reproducible(tmp_path: Path) -> None:
    outputs = []
    for run in ("first", "second"):
        build_dir = tmp_path / run / "build"
        abi_dir = tmp_path / run / "abis"
        result = run_build(env_overrides={"BUILD_DIR": str(build_dir), "ABI_DIR": str(abi_dir)})
        assert result.returncode == 0, f"{run} build failed:\n{result.stdout}{result.stderr}"
        outputs.append((build_dir, abi_dir))

    (first_build, first_abis), (second_build, second_abis) = outputs
    for name in CONTRACTS:
        artifact = json.loads((first_build / f"{name}.json").read_text())
        assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 2, name
        assert artifact["deployedBytecode"].startswith("0x") and len(artifact["deployedBytecode"]) > 2, name

    first_files = sorted(p.name for p in first_build.glob("*.json"))
    assert first_files == sorted(p.name for p in second_build.glob("*.json"))
    assert set(first_files) >= {f"{name}.json" for name in CONTRACTS} | {"BUILD_INFO.json"}
    for name in first_files:
        assert (first_build / name).read_bytes() == (second_build / name).read_bytes(), name
    for name in CONTRACTS:
        assert (first_abis / f"{name}.json").read_bytes() == (second_abis / f"{name}.json").read_bytes(), name
