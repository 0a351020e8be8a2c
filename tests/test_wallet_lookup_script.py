"""`scripts/wallet_lookup.py`, as the README writes it, run by a Python that is not the checkout's .venv
(its shebang's `python3`, or `python3 scripts/wallet_lookup.py`): it re-executes itself under .venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "wallet_lookup.py"
VENV = ROOT / ".venv"


def outside_env() -> dict[str, str]:
    """The environment of a shell that has not activated the venv: its bin folder off PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != (VENV / "bin").resolve())
    return env


def system_pythons() -> list[str]:
    """Interpreters other than the venv's: the `python3` on such a PATH, /usr/bin/python3, and the
    interpreter the venv was made from, each run outside any venv."""
    found = [shutil.which("python3", path=outside_env()["PATH"]), "/usr/bin/python3", os.path.realpath(sys.executable)]
    out: list[str] = []
    for p in found:
        if p and Path(p).exists() and p not in out:
            prefix = subprocess.run([p, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                                    env=outside_env(), check=True).stdout.strip()
            if Path(prefix).resolve() != VENV.resolve():
                out.append(p)
    return out


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=outside_env(), timeout=120, **kw)


def test_there_is_a_python_outside_the_venv_to_try():
    assert system_pythons(), "no interpreter outside .venv found"


@pytest.mark.parametrize("python", system_pythons() or ["none"])
def test_the_script_runs_under_another_python(python, tmp_path):
    res = run([python, str(SCRIPT), "--help"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "ModuleNotFoundError" not in res.stderr
    assert "Look wallets up" in res.stdout and "--json" in res.stdout
    # a real answer from the command: the configuration it was pointed at does not exist
    res = run([python, str(SCRIPT), "0x" + "11" * 20, "--json", "--config", str(tmp_path / "none.toml")],
              cwd=tmp_path)
    assert res.returncode == 1
    assert " ".join(res.stderr.split()) == f"error: configuration file {tmp_path / 'none.toml'} does not exist"


def test_the_script_runs_by_its_shebang(tmp_path):
    assert os.access(SCRIPT, os.X_OK), "scripts/wallet_lookup.py must be executable"
    assert SCRIPT.read_text().splitlines()[0] == "#!/usr/bin/env python3"
    res = run([str(SCRIPT), "--help"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Look wallets up" in res.stdout
