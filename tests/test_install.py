"""The package installs anywhere: a wheel (not an editable install) in a fresh virtual environment runs
`--help`, `init-db`, `sync` and `risk run` from an unrelated folder, reading its ABIs, migrations and
default policy from the package itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests import ROOT


def _wheel(out: Path) -> Path:
    """A wheel built from a copy of the package's sources (an in-tree build would leave a `build/` folder
    whose stale files a later build could pick up)."""
    src = out / "src"
    shutil.copytree(ROOT / "indexer", src / "indexer", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("collateral_indexer-*.whl")
    return wheel


def _environment(folder: Path, wheel: Path) -> Path:
    """A fresh venv with the wheel installed; its dependencies are this environment's (a .pth file), so
    that nothing is downloaded. The wheel's own package comes first on its path."""
    venv.create(folder, with_pip=True)  # pip from the interpreter's bundled wheel: nothing downloaded
    python = folder / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return folder / "bin"


def test_a_wheel_in_a_fresh_environment_runs_from_any_folder(world, tmp_path):
    bin_dir = _environment(tmp_path / "venv", _wheel(tmp_path / "dist"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INDEXER_", "PYTHON"))}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(bin_dir / "collateral-indexer"), *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)

    where = subprocess.run([str(bin_dir / "python"), "-c", "import indexer; print(indexer.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "venv")), where
    assert run("--help").returncode == 0
    db = f"sqlite:///{tmp_path / 'installed.sqlite'}"
    config = ["--config", str(world.manifest_path), "--database-url", db]
    for args in (["init-db", *config], ["sync", "--once", *config], ["risk", "run", "--json", *config]):
        res = run(*args)
        assert res.returncode == 0, f"{args}: {res.stdout}{res.stderr}"
    summary = json.loads(res.stdout)
    assert summary["wallets"] > 1_000 and summary["policy"].startswith("default")
