"""Secondary indexes of the log-driven tables, set aside during the first backfill.

Every transfer and balance change touches the wallet-keyed ones at a random place, so while a
database is filled from empty they cost more than the rows themselves; built once from the full
tables at the end they cost a few sorted passes (the token-keyed ones measured the same either way and
go with them). The first backfill of a database therefore drops them, and the tick that reaches the
target block builds them again before it commits. Nothing records this but the schema: the indexes the models declare and the
database lacks are the ones set aside, so a backfill killed half-way goes on without them and
builds them when it ends. Primary keys are never dropped: they keep writes idempotent.
"""

from __future__ import annotations

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
    for ix in missing(conn):
        ix.create(conn)
        built.append(ix.name)
    return built
