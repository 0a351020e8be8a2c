"""Stored risk runs kept consistent with the synced chain."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select

from indexer.store import models as m


def delete_runs_above(conn: Connection, chain_id: int, block: int) -> int:
    """Drop runs that valued blocks a reorg removed (their inputs no longer exist); returns how many."""
    rr = m.RiskRunRecord.__table__
    ids = conn.execute(select(rr.c.id).where(rr.c.chain_id == chain_id, rr.c.block_number > block)).scalars().all()
    if ids:
        for t in (m.RiskHolding.__table__, m.RiskWallet.__table__, m.RiskPosition.__table__):
            conn.execute(delete(t).where(t.c.run_id.in_(ids)))
        conn.execute(delete(rr).where(rr.c.id.in_(ids)))
    return len(ids)
