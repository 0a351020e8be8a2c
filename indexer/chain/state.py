"""Contract state read at one block through Multicall3: token state, feed rounds, per-wallet flags.

Pure planning (which calls) and decoding (what they mean) sit around one `read_calls` round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.chain.decode import ZERO_ADDRESS
from indexer.chain.multicall import Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.chain.tokens import READS, Read, Surface, state_calls, state_values


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


def read_token_states(rpc: RpcClient, tokens: list[tuple[str, Surface]], block: int,
                      multicall: str | None) -> list[TokenRead]:
    """Each token's state at `block`: the reads its surface calls for (`Surface.state_reads`)."""
    calls = [state_calls(address, surface) for address, surface in tokens]
    results = read_calls(rpc, [c for cs in calls for c in cs], block, multicall=multicall)
    out, i = [], 0
    for (address, surface), cs in zip(tokens, calls, strict=True):
        values, failed = state_values(surface, results[i:i + len(cs)])
        i += len(cs)
        out.append(TokenRead(address, values, failed))
    return out


# Chainlink AggregatorV3 through a proxy (EACAggregatorProxy): round ids carry the phase in their top bits
LATEST_ROUND_DATA = Read("latestRoundData()", ("uint80", "int256", "uint256", "uint256", "uint80"))
GET_ROUND_DATA = Read("getRoundData(uint80)", LATEST_ROUND_DATA.outputs)
PHASE_AGGREGATORS = Read("phaseAggregators(uint16)", ("address",))
LATEST_ROUND = Read("latestRound()", ("uint256",))  # an aggregator's own round count (no phase bits)


def read_latest_rounds(rpc: RpcClient, feeds: list[str], block: int, multicall: str | None) -> list[RoundRead | None]:
    results = read_calls(rpc, [Call(f, LATEST_ROUND_DATA.selector) for f in feeds], block, multicall=multicall)
    return [_round(ok, data) for ok, data in results]


def read_rounds(rpc: RpcClient, feed: str, round_ids: list[int], block: int, multicall: str | None) -> list[RoundRead | None]:
    calls = [Call(feed, GET_ROUND_DATA.selector + r.to_bytes(32, "big")) for r in round_ids]
    return [_round(ok, data) for ok, data in read_calls(rpc, calls, block, multicall=multicall)]


def read_phase_ends(rpc: RpcClient, phases: list[tuple[str, int]], block: int, multicall: str | None
                    ) -> dict[tuple[str, int], int]:
    """{(feed, phase): the latest round of that phase's aggregator} for the (feed proxy, phase) pairs asked
    for; a phase the proxy does not know, or an aggregator that does not answer, is left out."""
    if not phases:
        return {}
    calls = [Call(f, PHASE_AGGREGATORS.selector + p.to_bytes(32, "big")) for f, p in phases]
    aggregators: dict[tuple[str, int], str] = {}
    for key, (ok, data) in zip(phases, read_calls(rpc, calls, block, multicall=multicall), strict=True):
        try:
            address = str(PHASE_AGGREGATORS.decode(data)).lower() if ok else ZERO_ADDRESS
        except ValueError:
            continue
        if address != ZERO_ADDRESS:
            aggregators[key] = address
    keys = list(aggregators)
    results = read_calls(rpc, [Call(aggregators[k], LATEST_ROUND.selector) for k in keys], block, multicall=multicall)
    out = {}
    for key, (ok, data) in zip(keys, results, strict=True):
        if ok and len(data) >= 32:
            out[key] = int(LATEST_ROUND.decode(data)) & (2**64 - 1)
    return out


def _round(ok: bool, data: bytes) -> RoundRead | None:
    if not ok or len(data) < 160:
        return None
    r = LATEST_ROUND_DATA.decode(data)
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
    read = READS["sanctionsList"]
    out: list[str] = []
    for ok, data in read_calls(rpc, [Call(t, read.selector) for t in tokens], block, multicall=multicall):
        if ok and len(data) >= 32:
            addr = str(read.decode(data)).lower()
            if addr != ZERO_ADDRESS and addr not in out:
                out.append(addr)
    return out


BALANCE_OF = Read("balanceOf(address)", ("uint256",))
SHARES_OF = READS["sharesOf"]
IS_FROZEN = Read("isFrozen(address)", ("bool",))  # ERC-3643
IS_SANCTIONED = Read("isSanctioned(address)", ("bool",))  # the Chainalysis sanctions oracle


def read_wallet_calls(rpc: RpcClient, read: Read, pairs: list[tuple[str, str]], block: int,
                      multicall: str | None) -> dict[tuple[str, str], int | bool | None]:
    """`read(wallet)` on each (contract, wallet) at `block` (balanceOf, isFrozen, isSanctioned);
    None where the call failed or returned something undecodable."""
    calls = [Call(c, read.selector + bytes(12) + bytes.fromhex(w[2:])) for c, w in pairs]
    out: dict[tuple[str, str], int | bool | None] = {}
    for pair, (ok, data) in zip(pairs, read_calls(rpc, calls, block, multicall=multicall), strict=True):
        try:
            out[pair] = read.decode(data) if ok else None  # type: ignore[assignment]
        except Exception:  # noqa: BLE001 - recorded by the caller as a failed read
            out[pair] = None
    return out
