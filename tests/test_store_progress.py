"""The sync's checkpoint is read in one place, by its name: another checkpoint row of the chain (a
different job's progress) never passes for the sync's head."""

from __future__ import annotations

from indexer.store import models as m
from indexer.store.engine import make_engine, upgrade
from indexer.store.progress import read_checkpoint, synced_head, write_checkpoint, write_headers


def _header(n: int) -> dict:
    return {"hash": "0x" + f"{n:064x}", "parentHash": "0x" + f"{n - 1:064x}", "timestamp": hex(1_000 * n)}


def test_only_the_named_checkpoint_is_the_synced_head(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            write_headers(conn, 1, {n: _header(n) for n in (10, 20)})
            # a row of another name, at a higher block, written first
            conn.execute(m.SyncCheckpoint.__table__.insert().values(
                chain_id=1, name="other", block_number=20, block_hash=_header(20)["hash"], updated_at=0))
            assert read_checkpoint(conn, 1) is None and synced_head(conn, 1) is None
            write_checkpoint(conn, 1, 10, _header(10)["hash"])
        with engine.connect() as conn:
            cp = read_checkpoint(conn, 1)
            assert (cp.block_number, cp.block_hash) == (10, _header(10)["hash"])
            assert synced_head(conn, 1) == (10, 10_000)
            assert read_checkpoint(conn, 2) is None
    finally:
        engine.dispose()
