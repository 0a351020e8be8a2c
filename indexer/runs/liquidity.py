"""The configured pools' liquidity measures at block B, from the synced facts (`store/pools.py`), and the risk
engine's per-token liquidity input made from them (`risk.inputs.Liquidity`).

A pool has no measure at B when the sync has not read it yet (its first full read is after B and it was not
created in the synced range), or when the pool sync never started; `LiquidityAt.unmeasured` says why, and the
token then keeps the policy's configured liquidity figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection

from indexer.chain.decode import ZERO_ADDRESS
from indexer.liquidity.measures import (
    DAY_S,
    WEEK_S,
    PoolMeasure,
    PoolSide,
    TokenMeasure,
    flows,
    pool_measure,
    whole_units,
)
from indexer.risk.inputs import Liquidity
from indexer.store.balances import mints_and_burns
from indexer.store.pools import pool_at, pool_rows, swaps_between
from indexer.store.registry import feed_rows, token_rows
from indexer.store.state import latest_round_at


@dataclass(frozen=True)
class LiquidityAt:
    block: int
    timestamp: int
    tokens: dict[str, TokenMeasure]  # token address -> its measures (tokens with at least one configured pool)
    unmeasured: dict[str, str] = field(default_factory=dict)  # pool address -> why it has no measure at B
    names: dict[str, str] = field(default_factory=dict)  # pool address -> configured name


def load_liquidity(conn: Connection, cid: int, block: int, timestamp: int) -> LiquidityAt:
    """Every configured pool's measures at `block` (time `timestamp`), grouped by the token it trades."""
    pools = pool_rows(conn, cid)
    if not pools:
        return LiquidityAt(block, timestamp, {})
    toks = {t["address"]: t for t in token_rows(conn, cid)}
    feeds = {f["name"]: f for f in feed_rows(conn, cid)}
    by_token: dict[str, list[PoolMeasure]] = {}
    unmeasured: dict[str, str] = {}
    addresses = [p["address"] for p in pools]
    swaps: dict[str, list[tuple[int, int, int]]] = {a: [] for a in addresses}
    for pool, _, ts, a0, a1 in swaps_between(conn, cid, addresses, timestamp - WEEK_S + 1, block):
        swaps[pool].append((ts, a0, a1))
    for p in pools:
        address = p["address"]
        by_token.setdefault(p["token"], [])
        if p["token0"] is None:
            unmeasured[address] = "the sync has not started on this pool yet"
            continue
        state = pool_at(conn, cid, address, block)
        if state is None:
            unmeasured[address] = f"no state of the pool is known at block {block} (its first read is later)"
            continue
        token_is_token0 = p["token"] == p["token0"]
        side = PoolSide(token_is_token0, p["decimals0"] if token_is_token0 else p["decimals1"],
                        p["decimals1"] if token_is_token0 else p["decimals0"], p["fee"], p["tick_spacing"])
        by_token[p["token"]].append(pool_measure(address, state, side, swaps[address], timestamp,
                                                 _quote_usd(conn, cid, feeds.get(p["quote_feed"]), block, timestamp,
                                                            p["quote_feed"])))
    moves = mints_and_burns(conn, cid, list(by_token), timestamp - WEEK_S + 1, block)
    tokens = {t: TokenMeasure(t, int(toks[t]["decimals"]), tuple(ms), flows(moves[t], timestamp, DAY_S, ZERO_ADDRESS),
                              flows(moves[t], timestamp, WEEK_S, ZERO_ADDRESS))
              for t, ms in by_token.items()}
    return LiquidityAt(block, timestamp, tokens, unmeasured, {p["address"]: p["name"] for p in pools})


def _quote_usd(conn: Connection, cid: int, feed: dict | None, block: int, timestamp: int, name: str | None
               ) -> float | None:
    """USD per whole quote unit: the quote feed's latest priced round at B, or 1 when the pool names none (the
    configuration counts its quote asset at par); None when the named feed has no price at B."""
    if name is None:
        return 1.0
    if feed is None:
        return None
    row = latest_round_at(conn, cid, feed["address"], block, timestamp, priced=True)
    return None if row is None else float(int(row["answer_raw"])) / 10 ** int(feed["decimals"])


def liquidity_input(liq: LiquidityAt, token_addresses: list[str]) -> Liquidity:
    """The risk engine's per-token liquidity table, in the snapshot's token order: whole token units (the one
    conversion, `measures.whole_units`); a token with no measured pool is `measured = false`."""
    n = len(token_addresses)
    out = {k: np.full(n, np.nan) for k in ("depth_1pct", "depth_2pct", "depth_5pct", "volume_24h", "volume_7d",
                                           "pool_price_usd", "depth_1pct_usd", "depth_2pct_usd", "depth_5pct_usd",
                                           "volume_24h_usd", "volume_7d_usd")}
    measured = np.zeros(n, dtype=bool)
    for i, address in enumerate(token_addresses):
        t = liq.tokens.get(address)
        if t is None or not t.pools:
            continue
        measured[i] = True
        for move, key in ((100, "depth_1pct"), (200, "depth_2pct"), (500, "depth_5pct")):
            out[key][i] = whole_units(t.depth_raw(move), t.decimals)
        out["volume_24h"][i] = whole_units(t.volume_24h_raw, t.decimals)
        out["volume_7d"][i] = whole_units(t.volume_7d_raw, t.decimals)
        price = t.price_usd
        out["pool_price_usd"][i] = np.nan if price is None else price
        # in value too: the engine counts depth and volume at its NAV per token (a split the pools have not priced
        # yet then scales them with the balances, docs/risk.md section 15)
        for move, key in ((100, "depth_1pct_usd"), (200, "depth_2pct_usd"), (500, "depth_5pct_usd")):
            usd = t.depth_usd(move)
            out[key][i] = np.nan if usd is None else usd
        for window in ("24h", "7d"):
            usd = t.volume_usd(window)
            out[f"volume_{window}_usd"][i] = np.nan if usd is None else usd
    return Liquidity(measured, measured.copy(), out["depth_1pct"], out["depth_2pct"], out["depth_5pct"],
                     out["volume_24h"], out["volume_7d"], out["pool_price_usd"],
                     updated_at=np.full(n, liq.timestamp, dtype=np.int64),
                     **{k: out[k] for k in ("depth_1pct_usd", "depth_2pct_usd", "depth_5pct_usd", "volume_24h_usd",
                                            "volume_7d_usd")})
