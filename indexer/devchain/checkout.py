"""The source checkout the dev chain runs from: anvil from `node_modules/`, contract artifacts (bytecode)
from `build/contracts/` (`make build`). The indexer itself needs neither: only the dev chain does."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from indexer.errors import ConfigError

CHECKOUT = Path(__file__).resolve().parents[2]
BUILD_DIR = CHECKOUT / "build" / "contracts"


@cache
def load_artifact(name: str) -> dict:
    """ABI plus creation and runtime bytecode from the build folder."""
    path = BUILD_DIR / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"build artifact {path} is missing: run `make build` in the checkout to compile the contracts")
    return json.loads(path.read_text())
