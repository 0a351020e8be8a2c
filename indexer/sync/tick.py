"""The sync tick: plan a block range, read its pages, read the state at its last block, derive, write,
commit. One transaction per tick holds the facts, the derived rows and the checkpoint, so a crash
anywhere resumes with no gap and no duplicate.

Pages of logs (sync/pages.py) are read on a thread one or two ahead while the tick writes the page
before (sync/facts.py); what holds at the tick's last block is read, derived and written by
sync/end.py. A reorg is found by parent hash against the stored hash chain and rolled back above the
fork point (sync/reorg.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, Engine

from indexer.chain.headers import chain_hashes, read_block_hash, read_head, read_target, target_block
from indexer.chain.retry import PASSING_KINDS
from indexer.errors import ChainDataError, ReorgDetected, RpcError
from indexer.store.progress import Checkpoint, highest_block_at_or_below, range_is_new, read_checkpoint
from indexer.sync import backfill, pools
from indexer.sync.context import SyncContext
from indexer.sync.end import derive_end, read_end, write_end
from indexer.sync.facts import FactWriter, LogsWritten
from indexer.sync.pages import read_pages
from indexer.sync.reorg import rollback_to_fork

log = logging.getLogger("indexer.sync")

# A tick ends after the page that brings it to this many logs, or to this many holders moved. Pages are
# written as they come: the holders' running units (about 250 bytes each) are what a tick keeps in
# memory, and the logs bound the work a crash can undo.
MAX_TICK_LOGS = 2_000_000
MAX_TICK_HOLDERS = 1_000_000

OnPage = Callable[[int, int], None]


NEAR_HEAD_BLOCKS = 64  # blocks this close to the node's head are proven complete block by block (sync/pages.py)


@dataclass(frozen=True)
class TickRange:
    start: int
    end: int
    parent_hash: str | None  # the stored hash of block start - 1; None on the first tick of a database
    near_head_from: int | None = None  # from this block on, the range is near the node's head


@dataclass(frozen=True)
class TickResult:
    from_block: int
    to_block: int
    logs: int
    transfers: int
    rounds: int
    reorg_to: int | None = None
    seconds: float = 0.0
    index_seconds: float = 0.0  # of `seconds`: building the indexes a first backfill set aside


def plan_range(checkpoint: Checkpoint | None, deployment_block: int, target: int, max_blocks: int,
               head: int | None = None) -> TickRange | None:
    """The next range to sync: from the block after the checkpoint (the deployment block when there is
    none), at most `max_blocks` blocks, not beyond `target`; None when the checkpoint is at the target.
    With the node's `head`, the blocks within `NEAR_HEAD_BLOCKS` of it are marked near the head."""
    start = deployment_block if checkpoint is None else checkpoint.block_number + 1
    if start > target:
        return None
    end = min(target, start + max_blocks - 1)
    near = None if head is None or end <= head - NEAR_HEAD_BLOCKS else max(start, head - NEAR_HEAD_BLOCKS + 1)
    return TickRange(start, end, None if checkpoint is None else checkpoint.block_hash, near)


def sync_tick(engine: Engine, ctx: SyncContext, *, to_block: int | None = None,
              on_page: OnPage | None = None) -> TickResult | None:
    """Sync the next range (at most `max_blocks_per_tick` blocks). None when already at the target.
    `on_page(block, logs)` is called after each page is handed to the tick's writes (not yet
    committed; on PostgreSQL perhaps not yet written): the page's last block and the tick's logs so
    far, for progress displays during a long tick."""
    started = time.monotonic()
    head = read_head(ctx.rpc)
    conf = ctx.settings.chain.confirmations
    if to_block is not None:
        target = to_block
    else:
        target = target_block(head, conf) if isinstance(conf, int) else read_target(ctx.rpc, conf)
    with engine.connect() as conn:
        cp = read_checkpoint(conn, ctx.chain_id)
    if cp is not None:
        where = checkpoint_on_chain(engine, ctx, cp, head)
        if where == "reorged":
            return _reorg(engine, ctx, started)
        if where == "behind":
            log.info("the node is behind the synced block %d (its head: %d): waiting for it", cp.block_number, head)
            return None
    rng = plan_range(cp, ctx.settings.chain.deployment_block, min(target, head), ctx.max_blocks_per_tick, head)
    if rng is None:
        backfill.complete_indexes(engine, ctx)
        return None
    try:
        with backfill.tick_connection(engine, ctx, first_tick=cp is None, target=target) as conn:
            with conn.begin():
                _same_checkpoint(conn, ctx, cp)
                logs, rounds = _write_range(conn, ctx, rng, on_page)
                # the tick that reaches the target builds what a first backfill set aside, before its commit
                caught_up = logs.end == target and not ctx.indexes_complete
                index_seconds = backfill.build_set_aside(conn) if caught_up else 0.0
            pools.committed(ctx)
            if caught_up:
                backfill.ended(conn, ctx)
    except ReorgDetected as exc:
        pools.forget(ctx)
        log.warning("reorg while reading blocks %d..%d: %s", rng.start, rng.end, exc)
        return _reorg(engine, ctx, started, rng)
    except BaseException:
        pools.forget(ctx)
        raise
    return TickResult(rng.start, logs.end, logs.n_logs, logs.n_transfers, rounds,
                      seconds=time.monotonic() - started, index_seconds=index_seconds)


def _write_range(conn: Connection, ctx: SyncContext, rng: TickRange, on_page: OnPage | None) -> tuple[LogsWritten, int]:
    """The tick's work inside its transaction: its pages, then its last block. Returns what the pages
    left and the number of rounds stored."""
    facts = FactWriter(conn, ctx, rng.start, new=range_is_new(conn, ctx.chain_id, rng.start))
    patience = ctx.settings.chain.retry
    pages = read_pages(ctx.rpc, ctx.fetcher, ctx.log_addresses, rng.start, rng.end, rng.parent_hash,
                       near_head_from=rng.near_head_from, patience=patience)
    with closing(facts), closing(pages), backfill.no_gc():
        for page in pages:
            facts.add(page)
            if on_page is not None:
                on_page(page.end, facts.n_logs)
            if (facts.n_logs >= MAX_TICK_LOGS or len(facts.units) >= MAX_TICK_HOLDERS) and page.end < rng.end:
                break  # the rest is the next tick's
        logs = facts.finish()
        rows = derive_end(ctx, logs, read_end(conn, ctx, logs))  # each of its reads is retried where it failed
        write_end(conn, ctx, logs, rows)
    return logs, len(rows.rounds)


def checkpoint_on_chain(engine: Engine, ctx: SyncContext, cp: Checkpoint, head: int
                        ) -> Literal["on_chain", "behind", "reorged"]:
    """Where the synced block stands on the node: still the chain's (`on_chain`), not reached by the node
    yet (`behind`: a lagging node, or a load-balanced provider's backend behind the others, whose blocks
    are ours as far as it goes), or replaced (`reorged`)."""
    try:
        return "on_chain" if read_block_hash(ctx.rpc, cp.block_number) == cp.block_hash else "reorged"
    except RpcError as exc:
        if exc.kind != "block_unavailable":
            raise
    if head >= cp.block_number:
        return "behind"  # one backend has the block, another not: ask again at the next tick
    with engine.connect() as conn:
        below = highest_block_at_or_below(conn, ctx.chain_id, head)
    if below is None:
        return "behind"
    number, stored_hash = below
    chain = chain_hashes(ctx.rpc, [number])[number]
    return "behind" if chain in (stored_hash, None) else "reorged"


def _same_checkpoint(conn: Connection, ctx: SyncContext, before: Checkpoint | None) -> None:
    now = read_checkpoint(conn, ctx.chain_id)
    if (now is None) != (before is None) or (now and before and now.block_number != before.block_number):
        raise ChainDataError("the checkpoint moved during the tick: another writer is running on this chain")


def _reorg(engine: Engine, ctx: SyncContext, started: float, rng: TickRange | None = None) -> TickResult:
    """Roll back to the fork; the result names the range abandoned (none when the checkpoint's block left)."""
    fork = rollback_to_fork(engine, ctx)
    pools.forget(ctx)
    start, end = (fork + 1, fork) if rng is None else (rng.start, rng.end)
    return TickResult(start, end, 0, 0, 0, reorg_to=fork, seconds=time.monotonic() - started)


def through_passing_faults(tick: Callable[[], TickResult | None],
                           on_wait: Callable[[RpcError, float], None] | None = None,
                           sleep: Callable[[float], None] = time.sleep) -> TickResult | None:
    """A tick, tried again (after a growing pause) while it fails for a provider's passing reason
    (`chain.retry.PASSING_KINDS`): a sync never exits on those. A failed tick wrote nothing, so the next
    try goes on where it was; `on_wait(error, pause)` hears of each wait."""
    pause = 1.0
    while True:
        try:
            return tick()
        except RpcError as exc:
            if exc.kind not in PASSING_KINDS:
                raise
            if on_wait is not None:
                on_wait(exc, pause)
            sleep(pause)
            pause = min(pause * 2, 60.0)


def sync(engine: Engine, ctx: SyncContext, *, to_block: int | None = None,
         on_tick: Callable[[TickResult], None] | None = None,
         on_wait: Callable[[RpcError, float], None] | None = None) -> int:
    """Run ticks until the target block is synced, or the node (the backend that answered) has no block
    beyond the synced one, through passing provider faults; returns the number of ticks."""
    ticks = 0
    while True:
        result = through_passing_faults(lambda: sync_tick(engine, ctx, to_block=to_block), on_wait)
        if result is None:
            return ticks
        ticks += 1
        if on_tick is not None:
            on_tick(result)
