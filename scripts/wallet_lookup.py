#!/usr/bin/env python3
"""Wallet lookup for risk and support staff: the same as `collateral-indexer wallet`.

    scripts/wallet_lookup.py 0xabc... [0xdef...] [--config FILE] [--block N | --at TIME] [--json]
    scripts/wallet_lookup.py --file wallets.txt --json
    cat wallets.txt | scripts/wallet_lookup.py - --json

Run by any Python 3 (the shebang's, `python3 scripts/wallet_lookup.py ...`), it re-executes itself under
the checkout's .venv (made by `make setup`), where the project's dependencies are installed.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve():
    if not _venv_python().exists():
        sys.exit(f"error: {VENV} does not exist: run `make setup` in {ROOT} first")
    os.execv(_venv_python(), [str(_venv_python()), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT))

from indexer.cli import app  # noqa: E402

if __name__ == "__main__":
    app(["wallet", *sys.argv[1:]])
