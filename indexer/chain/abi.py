"""Contract ABIs (package data in `indexer/abis/`, written by the build script), with call encoding and
result decoding.

Encoding goes straight through eth-abi with selectors computed once per function, so hot paths
(world building, Multicall3 reads) pay no per-call web3 formatting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

from indexer.errors import ConfigError

ABI_DIR = Path(__file__).resolve().parents[1] / "abis"
PUBLISHED_ABI_DIR = ABI_DIR / "published"  # third-party contracts, from their npm packages


def _type_of(param: dict) -> str:
    """Canonical ABI type string, expanding tuples."""
    t = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(_type_of(c) for c in param["components"])
        return f"({inner}){t[len('tuple'):]}"
    return t


@dataclass(frozen=True)
class Function:
    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def encode(self, *args: Any) -> str:
        return "0x" + (self.selector + encode(list(self.inputs), list(args))).hex()

    def encode_bytes(self, *args: Any) -> bytes:
        return self.selector + encode(list(self.inputs), list(args))

    def encode_address(self, address: str) -> bytes:
        """Calldata for a function of one address (balanceOf, sharesOf, isFrozen): no ABI machinery,
        for hot loops over many holders."""
        assert self.inputs == ("address",), f"{self.name} does not take one address"
        return self.selector + bytes(12) + bytes.fromhex(address[2:])

    def decode(self, data: str | bytes) -> tuple:
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
        return decode(list(self.outputs), raw)


@dataclass(frozen=True)
class Event:
    name: str
    topic0: str  # 0x-hex
    indexed: tuple[str, ...]
    data: tuple[str, ...]
    names: tuple[str, ...]


class ContractAbi:
    """One contract's ABI: functions by name (first overload wins unless a signature is given)."""

    def __init__(self, name: str, abi: list[dict]):
        self.name = name
        self.abi = abi
        self.functions: dict[str, Function] = {}
        self.events: dict[str, Event] = {}
        for item in abi:
            if item.get("type") == "function":
                ins = tuple(_type_of(p) for p in item["inputs"])
                sig = f"{item['name']}({','.join(ins)})"
                fn = Function(item["name"], keccak(text=sig)[:4], ins, tuple(_type_of(p) for p in item["outputs"]))
                self.functions.setdefault(item["name"], fn)
                self.functions[sig] = fn
            elif item.get("type") == "event":
                types = [_type_of(p) for p in item["inputs"]]
                sig = f"{item['name']}({','.join(types)})"
                ev = Event(
                    item["name"],
                    "0x" + keccak(text=sig).hex(),
                    tuple(_type_of(p) for p in item["inputs"] if p["indexed"]),
                    tuple(_type_of(p) for p in item["inputs"] if not p["indexed"]),
                    tuple(p["name"] for p in item["inputs"]),
                )
                self.events.setdefault(item["name"], ev)

    def fn(self, name: str) -> Function:
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(f"{self.name} has no function {name!r}") from None

    def event(self, name: str) -> Event:
        try:
            return self.events[name]
        except KeyError:
            raise KeyError(f"{self.name} has no event {name!r}") from None


@cache
def load_abi(name: str) -> ContractAbi:
    """The ABI of one of our contracts, or of a third-party contract used as published (`published/`: copied
    from its npm package's artifact by the build at setup)."""
    path = ABI_DIR / f"{name}.json"
    if not path.exists() and (PUBLISHED_ABI_DIR / f"{name}.json").exists():
        path = PUBLISHED_ABI_DIR / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"ABI {path} is missing from the package: run `make build` in the checkout")
    return ContractAbi(name, json.loads(path.read_text()))
