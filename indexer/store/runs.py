"""Stored risk runs kept consistent with the synced chain.

A run is never deleted and its id never given again: a report or a ticket that cites run 42 names that
run for good. A reorg that removes the block a run valued marks the run orphaned (`orphaned_at`, the
reorg's time) and keeps it with all its rows; the analyst views (`latest_run`, 0007), the latest run
chosen here and the run "at or before block B" leave orphaned runs out.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, Row, select, update

from indexer.store import models as m

_rr = m.RiskRunRecord.__table__

# the runs whose block is still on the chain
NOT_ORPHANED = _rr.c.orphaned_at.is_(None)


def orphan_runs_above(conn: Connection, chain_id: int, block: int, *, at: float | None = None) -> int:
    """Mark the runs that valued blocks above `block` (a reorg's fork point) as orphaned at `at` (now by
    default), keeping them and their rows; runs orphaned by an earlier reorg keep their time. Returns how
    many runs were marked."""
    result = conn.execute(update(_rr).where(_rr.c.chain_id == chain_id, _rr.c.block_number > block, NOT_ORPHANED)
                          .values(orphaned_at=time.time() if at is None else at))
    return int(result.rowcount or 0)


def latest_run(conn: Connection, chain_id: int, *, block: int | None = None, at: int | None = None) -> Row | None:
    """The latest run of the chain that is not orphaned, as the `latest_run` view picks it (the highest
    valued block, then the highest id), or the latest at or before `block` / block time `at`; None if none."""
    q = select(_rr).where(_rr.c.chain_id == chain_id, NOT_ORPHANED)
    if block is not None:
        q = q.where(_rr.c.block_number <= block)
    if at is not None:
        q = q.where(_rr.c.block_timestamp <= at)
    return conn.execute(q.order_by(_rr.c.block_number.desc(), _rr.c.id.desc()).limit(1)).first()
