"""The indexes a first backfill sets aside: dropped, then built again from the full tables."""

from __future__ import annotations

from sqlalchemy import inspect

from indexer.store import indexes
from indexer.store import models as m
from indexer.store.engine import make_engine, upgrade
from indexer.store.writes import insert_rows


def _names(conn) -> set[str]:
    insp = inspect(conn)
    return {ix["name"] for model in indexes.BULK_TABLES for ix in insp.get_indexes(model.__tablename__)}


def test_indexes_set_aside_are_built_again_and_the_sqlite_sorter_settings_are_put_back(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    wanted = {ix.name for ix in indexes.deferrable()}
    rows = [(1, 100 + i // 7, i % 7, f"0x{i:064x}", f"0x{i % 3:040x}", f"0x{i % 11:040x}", f"0x{i % 13:040x}", i)
            for i in range(5_000)]
    with engine.begin() as conn:
        assert wanted <= _names(conn)
        assert sorted(indexes.set_aside(conn)) == sorted(wanted)
        assert {ix.name for ix in indexes.missing(conn)} == wanted
        insert_rows(conn, m.Transfer.__table__, ("chain_id", "block_number", "log_index", "tx_hash", "token",
                                                 "from_address", "to_address", "amount_raw"), rows)
    with engine.begin() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA cache_size = -65536")
            before = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("cache_size", "threads")]
        assert sorted(indexes.restore(conn)) == sorted(wanted)
        if sqlite:  # the small cache and the sorter threads were for the build only
            assert [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("cache_size", "threads")] == before
    with engine.connect() as conn:
        assert indexes.missing(conn) == []
        assert indexes.restore(conn) == []
        if conn.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM transfers WHERE chain_id = 1 AND to_address = ?",
                (f"0x{5:040x}",)))
            assert "ix_transfers_to" in plan
        got = conn.exec_driver_sql("SELECT count(*) FROM transfers WHERE chain_id = 1 AND to_address = "
                                   + ("?" if conn.dialect.name == "sqlite" else "%s"), (f"0x{5:040x}",)).scalar()
        assert got == sum(1 for r in rows if r[6] == f"0x{5:040x}")
    engine.dispose()
