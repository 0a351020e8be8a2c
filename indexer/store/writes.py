"""Bulk write paths: idempotent inserts of facts and upserts of derived rows, on both databases.

SQLAlchemy Core with executemany (SQLite) or multi-row statements (PostgreSQL): the ORM is for
reading and small writes only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

_CHUNK = 5_000


def _insert(conn: Connection, table: Table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _chunks(rows: Sequence[dict], size: int = _CHUNK) -> Iterable[Sequence[dict]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert facts; a row whose key exists already is left as it is (writing a fact twice is a no-op)."""
    if not rows:
        return
    stmt = _insert(conn, table).on_conflict_do_nothing()
    for chunk in _chunks(rows):
        conn.execute(stmt, list(chunk))


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert derived rows, replacing the non-key columns of rows that exist."""
    if not rows:
        return
    ins = _insert(conn, table)
    update_cols = [c for c in rows[0] if c not in keys]
    stmt = ins.on_conflict_do_update(index_elements=list(keys),
                                     set_={c: getattr(ins.excluded, c) for c in update_cols})
    for chunk in _chunks(rows):
        conn.execute(stmt, list(chunk))
