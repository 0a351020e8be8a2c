"""The first backfill of a database: how it writes differently from the ticks that follow the head.

- The secondary indexes of the bulk tables are set aside when the first tick of an empty database
  begins and built by the tick that reaches the target block, before its commit (store/indexes.py:
  nothing records this but the schema, so a backfill killed half-way goes on without them and builds
  them when it ends).
- The database writes in its bulk-load regime meanwhile (SQLite: a rollback journal instead of the
  write-ahead log; `Dialect.first_backfill`).
- No cyclic garbage collection while a tick runs (`no_gc`).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from indexer.store import indexes
from indexer.store.dialect import dialect_of
from indexer.sync.context import SyncContext

log = logging.getLogger("indexer.sync")


@contextmanager
def tick_connection(engine: Engine, ctx: SyncContext, *, first_tick: bool, target: int) -> Iterator[Connection]:
    """A connection for one tick, in the write regime the database is in: the first backfill's until the
    indexes it set aside are built, the normal one after. `first_tick`: the database holds no checkpoint."""
    with engine.connect() as conn:
        if first_tick:
            # dropped in a transaction of their own, so that no lock of the drop is held while the tick runs
            with conn.begin():
                dropped = indexes.set_aside(conn)
            ctx.indexes_complete = False
            if dropped:
                log.info("first backfill: indexes %s are built when it reaches block %d", dropped, target)
        elif ctx.indexes_complete is None:
            ctx.indexes_complete = not indexes.missing(conn)
            conn.commit()
        dialect_of(conn).first_backfill(conn, not ctx.indexes_complete)
        yield conn


def build_set_aside(conn: Connection) -> float:
    """Build the indexes a first backfill set aside, in the caller's transaction; returns the seconds.
    The caller marks `SyncContext.indexes_complete` once that transaction has committed (`ended`)."""
    started = time.monotonic()
    built = indexes.restore(conn)
    if built:
        dialect_of(conn).after_bulk_load(conn, [model.__tablename__ for model in indexes.BULK_TABLES])
    seconds = time.monotonic() - started
    if built:
        log.info("built indexes %s in %.1fs", built, seconds)
    return seconds


def ended(conn: Connection, ctx: SyncContext) -> None:
    """After the commit of the tick that built the set-aside indexes: the normal write regime."""
    ctx.indexes_complete = True
    dialect_of(conn).first_backfill(conn, False)


def complete_indexes(engine: Engine, ctx: SyncContext) -> None:
    """Build the indexes a first backfill set aside, in a transaction of their own (when caught up
    already, or before a rollback needs them)."""
    if ctx.indexes_complete:
        return
    with engine.begin() as conn:
        build_set_aside(conn)
    ctx.indexes_complete = True


@contextmanager
def no_gc() -> Iterator[None]:
    """No cyclic garbage collection while a tick runs. A tick makes millions of small objects (records,
    rows, running units) and none of them form cycles; with collection on, each full collection walks
    every live one. Collection resumes, as it was, after the tick."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
