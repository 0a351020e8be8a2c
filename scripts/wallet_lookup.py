#!/usr/bin/env python3
"""Wallet lookup for risk and support staff: the same as `collateral-indexer wallet`.

    scripts/wallet_lookup.py 0xabc... [0xdef...] [--config FILE] [--block N | --at TIME] [--json]
    scripts/wallet_lookup.py --file wallets.txt --json
    cat wallets.txt | scripts/wallet_lookup.py - --json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.cli import app  # noqa: E402

if __name__ == "__main__":
    app(["wallet", *sys.argv[1:]])
