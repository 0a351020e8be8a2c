"""Contract state read at one block through Multicall3: token state, feed rounds, per-wallet flags.

Pure planning (which calls) and decoding (what they mean) sit around one `read_calls` round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.chain.abi import ContractAbi, load_abi, token_abi
from indexer.chain.decode import ZERO_ADDRESS
from indexer.chain.multicall import Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.types import Accounting

STATE_FUNCTIONS = {
    Accounting.PLAIN: ("totalSupply",),
    Accounting.UI_MULTIPLIER: ("totalSupply", "uiMultiplier", "paused", "newUIMultiplier", "effectiveAt"),
    Accounting.REBASING_SHARES: (
        "totalSupply", "getCurrentMultiplier", "paused", "multiplier", "lastTimeFeeApplied", "feePerPeriod",
        "periodLength", "newMultiplier", "newMultiplierActivationTime", "multiplierNonce", "totalShares",
    ),
}


@dataclass(frozen=True)
class TokenRead:
    """Token state as the contract reports it at one block; None where a call failed."""

    address: str
    values: dict[str, object]
    failed: list[str]


@dataclass(frozen=True)
class RoundRead:
    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int


def token_calls(address: str, accounting: Accounting) -> tuple[list[Call], list[tuple[str, ContractAbi]]]:
    abi = token_abi(accounting)
    calls, meta = [], []
    for fn in STATE_FUNCTIONS[accounting]:
        calls.append(Call(address, abi.fn(fn).encode_bytes()))
        meta.append((fn, abi))
    return calls, meta


def read_token_states(rpc: RpcClient, tokens: list[tuple[str, Accounting]], block: int,
                      multicall: str | None) -> list[TokenRead]:
    calls: list[Call] = []
    metas: list[list[tuple[str, ContractAbi]]] = []
    for address, accounting in tokens:
        c, m = token_calls(address, accounting)
        calls += c
        metas.append(m)
    results = read_calls(rpc, calls, block, multicall=multicall)
    out, i = [], 0
    for (address, _), meta in zip(tokens, metas, strict=True):
        values: dict[str, object] = {}
        failed = []
        for fn, abi in meta:
            ok, data = results[i]
            i += 1
            try:
                decoded = abi.fn(fn).decode(data) if ok else None
            except Exception:  # noqa: BLE001 - a malformed return is a failed read, recorded by the caller
                decoded = None
            if decoded is None:
                failed.append(fn)
                values[fn] = None
            else:
                values[fn] = decoded if len(decoded) > 1 else decoded[0]
        out.append(TokenRead(address, values, failed))
    return out


_FEED = load_abi("PriceFeed")


def read_latest_rounds(rpc: RpcClient, feeds: list[str], block: int, multicall: str | None) -> list[RoundRead | None]:
    fn = _FEED.fn("latestRoundData")
    results = read_calls(rpc, [Call(f, fn.encode_bytes()) for f in feeds], block, multicall=multicall)
    return [_round(fn, ok, data) for ok, data in results]


def read_rounds(rpc: RpcClient, feed: str, round_ids: list[int], block: int, multicall: str | None) -> list[RoundRead | None]:
    fn = _FEED.fn("getRoundData")
    results = read_calls(rpc, [Call(feed, fn.encode_bytes(r)) for r in round_ids], block, multicall=multicall)
    return [_round(fn, ok, data) for ok, data in results]


def _round(fn, ok: bool, data: bytes) -> RoundRead | None:
    if not ok or len(data) < 160:
        return None
    r = fn.decode(data)
    return RoundRead(int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))


def round_quality(r: RoundRead) -> str:
    """How a consumer should judge a round (Chainlink's own guidance on validating answers)."""
    if r.answer <= 0:
        return "non_positive"
    if r.updated_at == 0:
        return "no_update_time"
    if r.answered_in_round < r.round_id:
        return "carried_over"
    return "ok"


def read_sanctions_lists(rpc: RpcClient, tokens: list[str], block: int, multicall: str | None) -> list[str]:
    """The distinct sanctions lists rebasing tokens point at (`sanctionsList()`), zero addresses left out."""
    fn = token_abi(Accounting.REBASING_SHARES).fn("sanctionsList")
    out: list[str] = []
    for ok, data in read_calls(rpc, [Call(t, fn.encode_bytes()) for t in tokens], block, multicall=multicall):
        if ok and len(data) >= 32:
            addr = fn.decode(data)[0].lower()
            if addr != ZERO_ADDRESS and addr not in out:
                out.append(addr)
    return out


def read_address_calls(rpc: RpcClient, abi: ContractAbi, fn: str, pairs: list[tuple[str, str]], block: int,
                       multicall: str | None) -> dict[tuple[str, str], int | bool | None]:
    """`fn(wallet)` on each (contract, wallet) at `block` (balanceOf, isFrozen, isSanctioned);
    None where the call failed or returned something undecodable."""
    f = abi.fn(fn)
    results = read_calls(rpc, [Call(c, f.encode_address(w)) for c, w in pairs], block, multicall=multicall)
    out: dict[tuple[str, str], int | bool | None] = {}
    for pair, (ok, data) in zip(pairs, results, strict=True):
        try:
            out[pair] = f.decode(data)[0] if ok else None
        except Exception:  # noqa: BLE001 - recorded by the caller as a failed read
            out[pair] = None
    return out
