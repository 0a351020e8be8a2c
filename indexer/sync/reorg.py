"""Reorgs: find the fork point (a pure rule over stored and current hashes) and roll back above it.

A rollback deletes every fact and block-keyed derived row above the fork, rebuilds the current rows
(balances, account status) as of the fork, marks the risk runs that valued removed blocks orphaned
(kept, with the reorg's time: an analyst may have cited them), and moves the checkpoint back, in one
transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Engine

from indexer.accounting import WAD
from indexer.chain.headers import chain_hashes, read_head
from indexer.errors import ChainDataError, RpcError
from indexer.store.balances import holder_rows, holders_changed_above, reset_units_to_history, write_balances
from indexer.store.progress import delete_facts_above, move_checkpoint_back, recent_blocks
from indexer.store.runs import orphan_runs_above
from indexer.store.state import account_status, multipliers_at, replace_account_status
from indexer.sync.backfill import complete_indexes
from indexer.sync.context import SyncContext
from indexer.sync.derive import rescaled_rows
from indexer.types import Accounting

log = logging.getLogger("indexer.sync")

MAX_REORG_DEPTH = 1_000  # stored blocks compared with the chain's
_CHUNK = 100  # blocks asked for per batch, highest first: a reorg is usually a few blocks deep


def find_fork(stored: Sequence[tuple[int, str]], chain: Mapping[int, str | None]) -> int | None:
    """The highest stored block whose hash the chain still has, from `stored` (number, hash), highest
    first, and the chain's hashes of (some of) those blocks; None when none of them matches."""
    for number, stored_hash in stored:
        if chain.get(number) == stored_hash:
            return number
    return None


def locate_fork(engine: Engine, ctx: SyncContext) -> int:
    """The fork point on this chain: everything stored above it is orphaned. Stored blocks above the
    node's head, and blocks it answers nothing for, are neither orphaned nor confirmed by it (a node, or a
    provider's backend, behind the others): only blocks it does answer for decide."""
    with engine.connect() as conn:
        stored = recent_blocks(conn, ctx.chain_id, MAX_REORG_DEPTH)
    if not stored:
        return ctx.settings.chain.deployment_block - 1
    head = read_head(ctx.rpc)
    known = [(n, h) for n, h in stored if n <= head]
    answered = 0
    for i in range(0, len(known), _CHUNK):
        chunk = known[i:i + _CHUNK]
        hashes = chain_hashes(ctx.rpc, [n for n, _ in chunk])
        answered += sum(h is not None for h in hashes.values())
        fork = find_fork(chunk, hashes)
        if fork is not None:
            return fork
    if not answered:
        raise RpcError(f"the node answers for none of the {len(stored)} stored blocks below its head {head}: it is "
                       "behind or unwell; the fork point is looked for again at the next tick", kind="block_unavailable")
    raise ChainDataError(f"reorg deeper than the {len(stored)} stored blocks: re-sync from scratch (drop the database)")


def rollback_to_fork(engine: Engine, ctx: SyncContext) -> int:
    complete_indexes(engine, ctx)  # the rollback reads holders' histories by wallet
    fork = locate_fork(engine, ctx)
    with engine.begin() as conn:
        rollback(conn, ctx, fork)
    log.warning("reorg: rolled back to block %d", fork)
    return fork


def rollback(conn: Connection, ctx: SyncContext, fork: int) -> None:
    """Delete facts and derived rows above `fork` and rebuild the current rows as of `fork`."""
    cid = ctx.chain_id
    touched = holders_changed_above(conn, cid, fork)
    delete_facts_above(conn, cid, fork)
    reset_units_to_history(conn, cid, touched)
    multipliers = multipliers_at(conn, cid)
    for token in ctx.accounting:
        model = ctx.unit_model(token)
        mult = multipliers.get(token, WAD) if model != Accounting.PLAIN else WAD
        write_balances(conn, rescaled_rows(cid, token, model, mult, fork, holder_rows(conn, cid, token)))
    replace_account_status(conn, cid, account_status(conn, cid))  # the events above the fork are gone
    orphaned = orphan_runs_above(conn, cid, fork)
    if orphaned:
        log.info("reorg: %d risk run(s) above block %d marked orphaned (kept)", orphaned, fork)
    move_checkpoint_back(conn, cid, fork)
