"""What a token contract answers, found by asking it: the read functions of the tokenized-stock
contracts deployed today, the surface a given token has, and the accounting model that surface means.

Functions are named by their real signatures (docs/contracts.md), so no contract's ABI file is
needed to read a token: a selector is the first four bytes of keccak256 of the signature. Pure,
except `probe_surface`, which makes one Multicall3 round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from eth_abi import decode
from eth_utils import keccak

from indexer.chain.multicall import Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.types import Accounting


@dataclass(frozen=True)
class Read:
    """A view function of no argument (or of one address, for `sharesOf`) and the types it returns."""

    signature: str
    outputs: tuple[str, ...]

    @property
    def selector(self) -> bytes:
        return _selector(self.signature)

    def decode(self, data: bytes) -> object:
        """The value returned (a tuple for several outputs). `getCurrentMultiplier` of the first Backed
        auto-fee version returns two words, later ones three: a shorter answer decodes to the words it has."""
        outputs = self.outputs[:len(data) // 32] if len(self.outputs) > 1 else self.outputs
        if len(data) < 32 * len(outputs) or not outputs:
            raise ValueError(f"{self.signature}: {len(data)} bytes returned, {len(self.outputs)} words expected")
        values = decode(list(outputs), data[:32 * len(outputs)])
        return values if len(self.outputs) > 1 else values[0]


@cache
def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


READS: dict[str, Read] = {
    "totalSupply": Read("totalSupply()", ("uint256",)),
    # Backed xStocks (BackedAutoFeeTokenImplementation); before the activation-time version the stored
    # base is `multiplier` (a public variable) and there is no pending update
    "getCurrentMultiplier": Read("getCurrentMultiplier()", ("uint256", "uint256", "uint256")),
    "sharesOf": Read("sharesOf(address)", ("uint256",)),
    "lastMultiplier": Read("lastMultiplier()", ("uint256",)),
    "lastMultiplierNonce": Read("lastMultiplierNonce()", ("uint256",)),
    "newMultiplier": Read("newMultiplier()", ("uint256",)),
    "newMultiplierNonce": Read("newMultiplierNonce()", ("uint256",)),
    "newMultiplierActivationTime": Read("newMultiplierActivationTime()", ("uint256",)),
    "multiplier": Read("multiplier()", ("uint256",)),
    "multiplierNonce": Read("multiplierNonce()", ("uint256",)),
    "lastTimeFeeApplied": Read("lastTimeFeeApplied()", ("uint256",)),
    "feePerPeriod": Read("feePerPeriod()", ("uint256",)),
    "periodLength": Read("periodLength()", ("uint256",)),
    "isPaused": Read("isPaused()", ("bool",)),
    "sanctionsList": Read("sanctionsList()", ("address",)),
    # ERC-8056 (Robinhood's stock tokens, Base B20 after its Cobalt upgrade)
    "uiMultiplier": Read("uiMultiplier()", ("uint256",)),
    "newUIMultiplier": Read("newUIMultiplier()", ("uint256",)),
    "effectiveAt": Read("effectiveAt()", ("uint256",)),
    "oraclePaused": Read("oraclePaused()", ("bool",)),
    # OpenZeppelin Pausable, ERC-3643
    "paused": Read("paused()", ("bool",)),
}
ZERO = "0x" + "00" * 20


@dataclass(frozen=True)
class Surface:
    """The read functions a token answers (names of `READS`)."""

    functions: frozenset[str]

    def has(self, *names: str) -> bool:
        return all(n in self.functions for n in names)

    @property
    def accounting(self) -> Accounting:
        """The accounting model the surface means: shares with a current multiplier (xStocks), a UI
        multiplier over raw balances (ERC-8056, or Base B20's `multiplier()` without shares), or plain."""
        if self.has("sharesOf", "getCurrentMultiplier"):
            return Accounting.REBASING_SHARES
        if self.has("uiMultiplier") or self.has("multiplier"):
            return Accounting.UI_MULTIPLIER
        return Accounting.PLAIN

    @property
    def state_reads(self) -> tuple[str, ...]:
        """What is read of the token at every tick: its supply and what decides its multiplier and pause."""
        wanted = {
            Accounting.REBASING_SHARES: ("getCurrentMultiplier", "lastMultiplier", "lastMultiplierNonce",
                                         "newMultiplier", "newMultiplierNonce", "newMultiplierActivationTime",
                                         "multiplier", "multiplierNonce", "lastTimeFeeApplied", "feePerPeriod",
                                         "periodLength"),
            Accounting.UI_MULTIPLIER: ("uiMultiplier", "newUIMultiplier", "effectiveAt", "multiplier",
                                       "oraclePaused"),
            Accounting.PLAIN: (),
        }[self.accounting]
        pause = ("isPaused", "paused")
        return ("totalSupply", *(f for f in (*wanted, *pause) if f in self.functions))


def surface_calls(address: str) -> list[Call]:
    """One call per candidate read (`sharesOf` of the zero address)."""
    return [Call(address, r.selector + (bytes(32) if r.signature == "sharesOf(address)" else b""))
            for r in READS.values()]


def surface_of(results: Sequence[tuple[bool, bytes]]) -> Surface:
    """The surface from the answers to `surface_calls`: a function counts when it answered with a value
    of its type."""
    found = set()
    for (name, read), (ok, data) in zip(READS.items(), results, strict=True):
        if not ok:
            continue
        try:
            read.decode(data)
        except Exception:  # noqa: BLE001 - an answer of another shape is no such function
            continue
        found.add(name)
    return Surface(frozenset(found))


def probe_surfaces(rpc: RpcClient, tokens: Sequence[str], block: int | str, multicall: str | None
                   ) -> dict[str, Surface]:
    """{token: its surface at `block`}."""
    calls = [c for t in tokens for c in surface_calls(t)]
    results = read_calls(rpc, calls, block, multicall=multicall)
    n = len(READS)
    return {t: surface_of(results[i * n:(i + 1) * n]) for i, t in enumerate(tokens)}


def state_calls(address: str, surface: Surface) -> list[Call]:
    return [Call(address, READS[name].selector) for name in surface.state_reads]


def state_values(surface: Surface, results: Sequence[tuple[bool, bytes]]) -> tuple[dict[str, object], list[str]]:
    """({function: value}, failed functions) from the answers to `state_calls`."""
    values: dict[str, object] = {}
    failed = []
    for name, (ok, data) in zip(surface.state_reads, results, strict=True):
        try:
            values[name] = READS[name].decode(data) if ok else None
        except Exception:  # noqa: BLE001 - a malformed return is a failed read, recorded by the caller
            values[name] = None
        if values[name] is None:
            failed.append(name)
    return values, failed


def paused_of(values: Mapping[str, object]) -> bool:
    """Pause as the token reports it: Backed's `isPaused()`, else OpenZeppelin's / ERC-3643's `paused()`."""
    for name in ("isPaused", "paused"):
        if values.get(name) is not None:
            return bool(values[name])
    return False
