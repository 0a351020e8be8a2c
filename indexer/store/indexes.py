"""Secondary indexes of the log-driven tables, set aside during the first backfill.

Every transfer and balance change touches the wallet-keyed ones at a random place, so while a
database is filled from empty they cost more than the rows themselves; built once from the full
tables at the end they cost a few sorted passes (the token-keyed ones cost the same either way and go
with them). The first backfill of a database therefore drops them, and the tick that reaches the
target block builds them again before it commits. Nothing records this but the schema: the indexes
the models declare and the database lacks are the ones set aside, so a backfill killed half-way goes
on without them and builds them when it ends. Primary keys are never dropped: they keep writes idempotent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Index, inspect

from indexer.store import models as m

# The tables written per log; their non-unique indexes serve readers, never the sync's own writes.
BULK_TABLES = (m.Transfer, m.ShareTransfer, m.BalanceChange, m.Balance)


def deferrable() -> list[Index]:
    return sorted((ix for model in BULK_TABLES for ix in model.__table__.indexes if not ix.unique),
                  key=lambda ix: ix.name)


def missing(conn: Connection) -> list[Index]:
    """The deferrable indexes the database does not have now."""
    insp = inspect(conn)
    present = {ix["name"] for model in BULK_TABLES for ix in insp.get_indexes(model.__tablename__)}
    return [ix for ix in deferrable() if ix.name not in present]


def set_aside(conn: Connection) -> list[str]:
    """Drop the deferrable indexes that exist; returns their names."""
    absent = {ix.name for ix in missing(conn)}
    dropped = []
    for ix in deferrable():
        if ix.name not in absent:
            ix.drop(conn)
            dropped.append(ix.name)
    return dropped


def restore(conn: Connection) -> list[str]:
    """Build the deferrable indexes the database lacks; returns their names."""
    built = []
    todo = missing(conn)
    if todo:
        with _sorting(conn):
            for ix in todo:
                ix.create(conn)
                built.append(ix.name)
    return built


# SQLite: the page cache while indexes are built, in KiB. The sorter behind CREATE INDEX keeps up to a
# page cache's worth of keys in memory before it writes a sorted run to a temporary file. With the bulk
# writer's 256 MiB cache it sorts the whole table in one list; with 8 MiB it sorts runs of that size,
# on a helper thread (`SORT_THREADS`) while it reads on, and merges them: about twice as fast
# (docs/benchmarks.md).
SORT_CACHE_KIB = 8 * 1024
SORT_THREADS = 2


@contextmanager
def _sorting(conn: Connection) -> Iterator[None]:
    """SQLite: a small page cache and sorter threads while indexes are built, then as they were."""
    if conn.dialect.name != "sqlite":
        yield
        return
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    threads = conn.exec_driver_sql("PRAGMA threads").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{SORT_CACHE_KIB}")
    conn.exec_driver_sql(f"PRAGMA threads = {SORT_THREADS}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache)}")
        conn.exec_driver_sql(f"PRAGMA threads = {int(threads)}")
