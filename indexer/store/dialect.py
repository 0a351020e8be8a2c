"""The store's dialect interface: what differs between SQLite and PostgreSQL, behind one set of methods.

The sync, the reconcile job and the risk runs write through `store/writes.py` and read through the
store's query modules; those ask `dialect_of(conn)` where the two databases need different SQL. One
implementation per database: `store/sqlite.py` and `store/postgres.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from functools import cache
from typing import Protocol

from sqlalchemy import Connection, Table


class Dialect(Protocol):
    name: str
    threaded_writes: bool  # a tick's page writes may run on a thread of their own (store/writes.WriteBehind)
    encodes_text: bool  # exact integer columns are written as fixed-width text (store/types.py)

    def plan_write(self, conn: Connection, table: Table, columns: Sequence[str], rows: list, conflict: str, *,
                   direct_copy: bool) -> Callable[[], None]:
        """The call that writes rows already checked and encoded (`store/writes.py` does both)."""

    def load_units(self, conn: Connection, cid: int, touched: dict[str, set[str]]) -> dict[tuple[str, str], int]:
        """{(token, wallet): stored units} of the touched holders that have a balance row."""

    def holder_rows(self, conn: Connection, cid: int, token: str, skip: AbstractSet[str] = frozenset()
                    ) -> list[tuple[str, int, int, int | None]]:
        """(wallet, units, balance, shares) of every stored holder of a token but those in `skip`."""

    def first_backfill(self, conn: Connection, on: bool) -> None:
        """Enter (`on`) or leave the write regime of a database's first backfill (outside a transaction)."""

    def after_bulk_load(self, conn: Connection, tables: Sequence[str]) -> None:
        """What the planner needs after rows were loaded in bulk (fresh statistics)."""


def quoted(conn: Connection, names: Sequence[str]) -> list[str]:
    prep = conn.dialect.identifier_preparer
    return [prep.quote(n) for n in names]


@cache
def _dialects() -> dict[str, Dialect]:
    from indexer.store.postgres import PostgresDialect
    from indexer.store.sqlite import SqliteDialect

    return {"sqlite": SqliteDialect(), "postgresql": PostgresDialect()}


def dialect_of(conn: Connection) -> Dialect:
    try:
        return _dialects()[conn.dialect.name]
    except KeyError:
        raise ValueError(f"unsupported database {conn.dialect.name!r}: use SQLite or PostgreSQL") from None
