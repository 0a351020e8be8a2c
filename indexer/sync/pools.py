"""The configured DEX pools in a tick: their logs become `pool_events` rows (with the other facts, page by
page), and at the tick's last block each pool whose state the tick's logs changed is read and checked.

The state a pool is in at any block is a pure fold of its logs (indexer/liquidity/pools.py) from a full read
(slot0, liquidity and every initialized tick). At the end of a tick holding a pool's logs the sync reads
slot0, the liquidity and the ticks those logs' Mint and Burn changed, and compares them with the fold of the
state it knew before the tick: a difference (a log the provider left out, a pool that is not what its logs
say) is recorded as a `pool_state_mismatch` issue and the pool is read in full there, the new start of its
fold. A pool is read in full at its first tick, and again after `FULL_READ_EVERY` logs so that a fold at any
block starts near it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection

from indexer.chain.decode import POOL_EVENT_NAMES, EventRecord
from indexer.chain.pools import initialized_ticks, read_slots, read_ticks
from indexer.liquidity.pools import (
    FoldError,
    PoolEvent,
    PoolSnapshot,
    differences,
    empty,
    fold,
    touched_ticks,
    with_ticks,
)
from indexer.store.pools import pool_at, write_pool_meta, write_pool_reads
from indexer.sync.context import Issue, PoolMemory, SyncContext

log = logging.getLogger("indexer.sync")
T = TypeVar("T")
ReadAt = Callable[[int, Callable[[], T]], "T | None"]

FULL_READ_EVERY = 5_000  # a pool's logs since its last full read after which the next read is full


@dataclass(frozen=True)
class PoolReads:
    """What the tick's last block says of the pools: the reads to store (pool, snapshot, ticks_read, note),
    the problems found, and what the sync knows of the pools once the tick is committed."""

    reads: tuple[tuple[str, PoolSnapshot, str, str | None], ...] = ()
    issues: tuple[Issue, ...] = ()
    memory: PoolMemory | None = None


def split_events(ctx: SyncContext, events: Sequence[EventRecord]) -> tuple[list[EventRecord], list[EventRecord]]:
    """(token and list events, pool events) of a page: a pool event is one of the pool topics logged by a
    configured pool; the same topics from any other contract are not ours and are dropped."""
    if not ctx.pools:
        return [e for e in events if e.event not in POOL_EVENT_NAMES], []
    others, pools = [], []
    for e in events:
        if e.event in POOL_EVENT_NAMES:
            if e.contract in ctx.pools:
                pools.append(e)
        else:
            others.append(e)
    return others, pools


def event_rows(cid: int, events: Sequence[EventRecord]) -> list[dict]:
    """`pool_events` rows of decoded pool logs."""
    rows = []
    for e in events:
        a = e.args
        rows.append(dict(chain_id=cid, block_number=e.block_number, log_index=e.log_index, tx_hash=e.tx_hash,
                         pool=e.contract, event=e.event, sender=a.get("sender"), recipient=a.get("recipient"),
                         owner=a.get("owner"), tick_lower=a.get("tick_lower"), tick_upper=a.get("tick_upper"),
                         amount_raw=a.get("amount"), amount0_raw=a.get("amount0"), amount1_raw=a.get("amount1"),
                         sqrt_price_x96=a.get("sqrt_price_x96"), liquidity_raw=a.get("liquidity"),
                         tick=a.get("tick")))
    return rows


def as_pool_event(e: EventRecord) -> PoolEvent:
    a = e.args
    return PoolEvent(e.block_number, e.log_index, e.event, a.get("tick_lower"), a.get("tick_upper"),
                     int(a.get("amount", 0)), int(a.get("amount0", 0)), int(a.get("amount1", 0)),
                     a.get("sqrt_price_x96"), a.get("liquidity"), a.get("tick"))


def register_pools(conn: Connection, ctx: SyncContext) -> None:
    """Store what the chain says each pool is, once per process (in its first tick's transaction)."""
    if ctx.pools and not ctx.pools_registered:
        write_pool_meta(conn, ctx.chain_id, ctx.pools.values())
        ctx.pools_registered = True


def read_pools(conn: Connection, ctx: SyncContext, start: int, end: int, events: Sequence[EventRecord],
               read_at: ReadAt) -> PoolReads:
    """Read and check, at `end`, every pool the tick's logs changed or whose state is not known yet (see the
    module). `read_at(block, read)` runs a state read, None when the node holds no state at that block."""
    if not ctx.pools:
        return PoolReads()
    cid, rpc, mc = ctx.chain_id, ctx.rpc, ctx.multicall
    by_pool: dict[str, list[PoolEvent]] = {}
    for e in events:
        by_pool.setdefault(e.contract, []).append(as_pool_event(e))
    reads: list[tuple[str, PoolSnapshot, str, str | None]] = []
    issues: list[Issue] = []
    notes: dict[str, str] = {}
    memory = ctx.pool_memory.copy()
    known, since_full = memory.known, memory.since_full
    for pool in ctx.pools:
        if pool not in known:
            known[pool] = pool_at(conn, cid, pool, start - 1)
    checked = [p for p in ctx.pools if by_pool.get(p) and known[p] is not None]
    full = [p for p in ctx.pools if known[p] is None]
    slots = read_at(end, lambda: read_slots(rpc, checked, end, mc)) if checked else {}
    if slots is None:  # the node holds no state at `end`: the folds go on from the logs alone
        for p in checked:
            known[p] = fold(known[p], by_pool[p], until=end)
        return PoolReads(memory=memory)
    for pool in checked:
        if slots[pool] is None:  # logs from an address with no code at the tick's end: a reorg is due, read again
            full.append(pool)
            known[pool] = None
            continue
        touched = sorted(touched_ticks(by_pool[pool]))
        ticks = read_at(end, lambda pool=pool, touched=touched: read_ticks(rpc, pool, touched, end, mc)) \
            if touched else {}
        read = with_ticks(slots[pool], ticks or {})
        try:
            folded = fold(known[pool], by_pool[pool], until=end)
            diff = differences(folded, read, only_ticks=touched)
        except FoldError as exc:  # the logs cannot follow the state known before them
            diff = [str(exc)]
        since_full[pool] = since_full.get(pool, 0) + len(by_pool[pool])
        if diff:
            notes[pool] = _note(diff)
            issues.append(Issue(pool, "pool_state_mismatch", f"at block {end} the pool's state is not what its "
                                f"logs make of the state before them ({notes[pool]}): read in full there, the fold "
                                "starts again from that read"))
            full.append(pool)
            known[pool] = None
        elif since_full[pool] >= FULL_READ_EVERY:
            full.append(pool)
            known[pool] = folded
        else:
            reads.append((pool, read, "touched", None))
            known[pool] = folded
    for pool in full:
        got = read_at(end, lambda pool=pool: _full_read(ctx, pool, ctx.pools[pool].tick_spacing, end))
        if got is None:  # no state at `end`, or not created by then
            continue
        note = notes.get(pool)
        created = [e for e in by_pool.get(pool, ()) if e.event == "Initialize"]
        if note is None and known[pool] is None and created:  # a pool created in this tick: check its logs
            try:
                diff = differences(fold(empty(created[0].block_number - 1), by_pool[pool], until=end), got)
            except FoldError as exc:
                diff = [str(exc)]
            if diff:
                note = _note(diff)
                issues.append(Issue(pool, "pool_state_mismatch", f"at block {end} the new pool's state is not what "
                                    f"its logs since its Initialize make of it ({note})"))
        if not got.initialized and note is None:
            known[pool] = empty(end)  # not initialized yet: its Initialize log will start the fold
            continue
        reads.append((pool, got, "all", note))
        known[pool] = got
        since_full[pool] = 0
    return PoolReads(tuple(reads), tuple(issues), memory)


def _note(diff: list[str]) -> str:
    return "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")


def _full_read(ctx: SyncContext, pool: str, tick_spacing: int, block: int) -> PoolSnapshot | None:
    """The pool in full at `block`; None when it has no code there yet (it is read again at the next tick)."""
    slot = read_slots(ctx.rpc, [pool], block, ctx.multicall)[pool]
    if slot is None:
        return None
    return with_ticks(slot, initialized_ticks(ctx.rpc, pool, tick_spacing, block, ctx.multicall))


def write_pool_end(conn: Connection, ctx: SyncContext, reads: PoolReads) -> None:
    register_pools(conn, ctx)
    write_pool_reads(conn, ctx.chain_id, reads.reads)
    ctx.pool_pending = reads.memory


def committed(ctx: SyncContext) -> None:
    """The tick's transaction committed: what it learnt of the pools is the sync's now."""
    if ctx.pool_pending is not None:
        ctx.pool_memory, ctx.pool_pending = ctx.pool_pending, None


def forget(ctx: SyncContext) -> None:
    """Drop what the sync knew of the pools (a tick failed, or a rollback: the store is the truth again)."""
    ctx.pool_memory, ctx.pool_pending = PoolMemory(), None
    ctx.pools_registered = False
