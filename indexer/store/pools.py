"""The queries about DEX pools: the registered pools, their events, their state reads, and a pool's state at
any block (the latest full read at or before it, folded forward with the events after it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, and_, select, update

from indexer.liquidity.pools import PoolEvent, PoolSnapshot, Tick, empty, fold
from indexer.store import models as m
from indexer.store.writes import insert_ignore

_pools = m.Pool.__table__
_events = m.PoolEvent.__table__
_states = m.PoolStateRead.__table__
_ticks = m.PoolTick.__table__


# ---------------------------------------------------------------------------------- the registry
def pool_rows(conn: Connection, cid: int) -> list[dict]:
    """The chain's registered pools, by name."""
    return [dict(r) for r in conn.execute(select(_pools).where(_pools.c.chain_id == cid).order_by(_pools.c.name))
            .mappings()]


def write_pool_meta(conn: Connection, cid: int, metas: Iterable) -> None:
    """What the chain says each pool is (`chain.pools.PoolMeta`), beside the configuration's part."""
    for p in metas:
        conn.execute(update(_pools).where(_pools.c.chain_id == cid, _pools.c.address == p.address).values(
            token0=p.token0, token1=p.token1, fee=p.fee, tick_spacing=p.tick_spacing, decimals0=p.decimals0,
            decimals1=p.decimals1))


# ---------------------------------------------------------------------------------- events
def as_pool_event(row) -> PoolEvent:
    return PoolEvent(int(row["block_number"]), int(row["log_index"]), row["event"], row["tick_lower"],
                     row["tick_upper"], int(row["amount_raw"] or 0), int(row["amount0_raw"] or 0),
                     int(row["amount1_raw"] or 0), row["sqrt_price_x96"], row["liquidity_raw"], row["tick"])


def pool_events(conn: Connection, cid: int, pool: str, after: int, until: int | None = None,
                kinds: Sequence[str] | None = None) -> list[PoolEvent]:
    """The pool's events in blocks (after, until], in log order."""
    q = select(_events).where(_events.c.chain_id == cid, _events.c.pool == pool, _events.c.block_number > after)
    if until is not None:
        q = q.where(_events.c.block_number <= until)
    if kinds is not None:
        q = q.where(_events.c.event.in_(list(kinds)))
    return [as_pool_event(r) for r in conn.execute(q.order_by(_events.c.block_number, _events.c.log_index))
            .mappings()]


def swaps_between(conn: Connection, cid: int, pools: Sequence[str], since_ts: int, until: int
                  ) -> list[tuple[str, int, int, int, int]]:
    """(pool, block, timestamp, amount0, amount1) of every Swap of the pools in blocks up to `until` whose
    timestamp is at or after `since_ts`, in block order."""
    b = m.Block.__table__
    q = (select(_events.c.pool, _events.c.block_number, b.c.timestamp, _events.c.amount0_raw, _events.c.amount1_raw)
         .join(b, and_(b.c.chain_id == _events.c.chain_id, b.c.number == _events.c.block_number))
         .where(_events.c.chain_id == cid, _events.c.pool.in_(list(pools)), _events.c.event == "Swap",
                _events.c.block_number <= until, b.c.timestamp >= since_ts)
         .order_by(_events.c.block_number, _events.c.log_index))
    return [(p, int(n), int(ts), int(a0), int(a1)) for p, n, ts, a0, a1 in conn.execute(q)]


# ---------------------------------------------------------------------------------- state reads
def write_pool_reads(conn: Connection, cid: int, reads: Sequence[tuple[str, PoolSnapshot, str, str | None]]) -> None:
    """Each (pool, snapshot, ticks_read, note): its `pool_states` row and the ticks it holds in `pool_ticks`."""
    insert_ignore(conn, _states, [dict(chain_id=cid, pool=pool, block_number=s.block_number,
                                       sqrt_price_x96=s.sqrt_price_x96, tick=s.tick, liquidity_raw=s.liquidity,
                                       ticks_read=kind, note=note) for pool, s, kind, note in reads])
    insert_ignore(conn, _ticks, [dict(chain_id=cid, pool=pool, block_number=s.block_number, tick=t,
                                      liquidity_gross_raw=k.gross, liquidity_net_raw=k.net)
                                 for pool, s, _, _ in reads for t, k in sorted(s.ticks.items())])


def full_read_at_or_before(conn: Connection, cid: int, pool: str, block: int) -> PoolSnapshot | None:
    """The latest read of every initialized tick of the pool at or before `block`, with those ticks."""
    row = conn.execute(select(_states).where(
        _states.c.chain_id == cid, _states.c.pool == pool, _states.c.block_number <= block,
        _states.c.ticks_read == "all").order_by(_states.c.block_number.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    at = int(row["block_number"])
    ticks = {int(t): Tick(int(g), int(n)) for t, g, n in conn.execute(
        select(_ticks.c.tick, _ticks.c.liquidity_gross_raw, _ticks.c.liquidity_net_raw).where(
            _ticks.c.chain_id == cid, _ticks.c.pool == pool, _ticks.c.block_number == at))}
    return PoolSnapshot(at, int(row["sqrt_price_x96"]), int(row["tick"]), int(row["liquidity_raw"]), ticks)


def first_initialize(conn: Connection, cid: int, pool: str) -> int | None:
    """The block of the pool's stored Initialize log (the pool was created in the synced range), if any."""
    n = conn.execute(select(_events.c.block_number).where(
        _events.c.chain_id == cid, _events.c.pool == pool, _events.c.event == "Initialize").limit(1)).scalar()
    return None if n is None else int(n)


def pool_at(conn: Connection, cid: int, pool: str, block: int) -> PoolSnapshot | None:
    """The pool's state at `block`: the latest full read at or before it (or, for a pool created in the synced
    range, nothing before its Initialize) folded with the events up to `block`; None when neither is stored,
    or the pool did not exist yet."""
    start = full_read_at_or_before(conn, cid, pool, block)
    if start is None:
        created = first_initialize(conn, cid, pool)
        if created is None or created > block:
            return None
        start = empty(created - 1)
    return fold(start, pool_events(conn, cid, pool, start.block_number, block), until=block)



# ---------------------------------------------------------------------------------- a run's pools
def run_pools(conn: Connection, run_ids: Sequence[int]) -> dict[int, list[dict]]:
    """The `risk_pools` rows of these runs, by run, each run's by token and name."""
    p = m.RiskPool.__table__
    out: dict[int, list[dict]] = {r: [] for r in run_ids}
    for row in conn.execute(select(p).where(p.c.run_id.in_(list(run_ids))).order_by(p.c.run_id, p.c.symbol, p.c.name)
                            ).mappings():
        out[int(row["run_id"])].append(dict(row))
    return out


def by_token(rows: Sequence[dict]) -> dict[str, dict]:
    """One run's pools together per token, as the `token_liquidity` view adds them up: depths, volumes and the
    liquidation summed, the price weighted by 2% depth (a plain mean when no priced pool has depth, as the engine
    weighs them), its premium against the run's NAV, and the liquidation's cost (None where a pool's quote had no
    price)."""
    out: dict[str, dict] = {}
    for r in rows:
        t = out.setdefault(r["token"], {"symbol": r["symbol"], "pools": [], "nav_usd": r["nav_usd"],
                                        **dict.fromkeys(("depth_1pct", "depth_2pct", "depth_5pct", "depth_2pct_usd",
                                                         "volume_24h", "volume_7d", "sale_offered"), 0.0),
                                        "sale_proceeds_usd": 0.0})
        t["pools"].append(r)
        for k in ("depth_1pct", "depth_2pct", "depth_5pct", "volume_24h", "volume_7d", "sale_offered"):
            t[k] += r[k]
        t["depth_2pct_usd"] += r["depth_2pct_usd"] or 0.0
        if t["sale_proceeds_usd"] is not None:
            t["sale_proceeds_usd"] = None if r["sale_proceeds_usd"] is None else \
                t["sale_proceeds_usd"] + r["sale_proceeds_usd"]
    for t in out.values():
        priced = [r for r in t["pools"] if r["price_usd"] is not None]
        weight = sum(r["depth_2pct"] for r in priced)
        t["price_usd"] = (sum(r["price_usd"] * r["depth_2pct"] for r in priced) / weight if weight else
                          sum(r["price_usd"] for r in priced) / len(priced) if priced else None)
        nav = t["nav_usd"]
        t["premium_bp"] = None if t["price_usd"] is None or not nav else (t["price_usd"] / nav - 1.0) * 1e4
        pledged = t["sale_offered"] * (nav or 0.0)
        t["sale_cost"] = (1.0 - t["sale_proceeds_usd"] / pledged
                          if t["sale_proceeds_usd"] is not None and pledged > 0 else None)
    return out
