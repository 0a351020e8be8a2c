"""PostgreSQL's half of the store's dialect interface (store/dialect.py): bulk writes through COPY,
exact integers as NUMERIC(78,0), and the holder reads the sync makes per tick."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from functools import partial
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

from indexer.store.dialect import quoted


class PostgresDialect:
    name = "postgresql"
    # a page's COPY runs on a thread of its own while the caller decodes the next page: the server
    # stores the rows in its own process (store/writes.py, WriteBehind)
    threaded_writes = True
    encodes_text = False  # NUMERIC(78,0) takes the ints themselves

    # ------------------------------------------------------------------------------ bulk writes
    def plan_write(self, conn: Connection, table: Table, columns: Sequence[str], rows: list,
                   conflict: str, *, direct_copy: bool) -> Callable[[], None]:
        """COPY, straight into the table when `direct_copy` (the caller knows the rows are new: a
        duplicate key then fails loudly), else into a temporary table merged with
        `INSERT ... SELECT ... {conflict}`, so writing the same rows twice stays a no-op or a replacement."""
        cols = ", ".join(quoted(conn, columns))
        name = quoted(conn, [table.name])[0]
        if direct_copy:
            return partial(_copy, conn, f"COPY {name} ({cols}) FROM STDIN", rows)

        def merge() -> None:
            tmp = _copy_to_temp(conn, table, columns, rows)
            conn.exec_driver_sql(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {tmp} {conflict}")
            conn.exec_driver_sql(f"DROP TABLE {tmp}")
        return merge

    # ------------------------------------------------------------------------------ holders
    def load_units(self, conn: Connection, cid: int, touched: dict[str, set[str]]) -> dict[tuple[str, str], int]:
        """Stored units of the touched holders in one query, the (token, wallet) pairs as two arrays:
        a table whose statistics are not known yet (a backfill outruns autovacuum's ANALYZE) then costs
        at most one scan."""
        pairs = sorted((t, w) for t, ws in touched.items() for w in ws)
        if not pairs:
            return {}
        sql = ("SELECT b.token, b.wallet, b.units_raw FROM balances b "
               "JOIN unnest(%s::varchar[], %s::varchar[]) AS k(token, wallet) "
               "ON b.token = k.token AND b.wallet = k.wallet WHERE b.chain_id = %s")
        rows = conn.exec_driver_sql(sql, ([t for t, _ in pairs], [w for _, w in pairs], cid)).fetchall()
        return {(token, wallet): int(u) for token, wallet, u in rows}  # NUMERIC(78,0): an integral Decimal

    def holder_rows(self, conn: Connection, cid: int, token: str, skip: AbstractSet[str] = frozenset()
                    ) -> list[tuple[str, int, int, int | None]]:
        """(wallet, units, balance, shares) of every stored holder of a token but those in `skip`."""
        sql = "SELECT wallet, units_raw, balance_raw, shares_raw FROM balances WHERE chain_id = %s AND token = %s"
        return [(w, int(u), int(b), None if s is None else int(s))
                for w, u, b, s in conn.exec_driver_sql(sql, (cid, token)).fetchall() if w not in skip]

    # ------------------------------------------------------------------------------ bulk loads
    def first_backfill(self, conn: Connection, on: bool) -> None:
        """Nothing to switch: PostgreSQL writes its log either way."""

    def after_bulk_load(self, conn: Connection, tables: Sequence[str]) -> None:
        """Fresh statistics for the planner after a bulk load (autovacuum's ANALYZE comes later)."""
        for name in tables:
            conn.exec_driver_sql(f"ANALYZE {quoted(conn, [name])[0]}")


def _copy(conn: Connection, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows through psycopg 3, inside the connection's current transaction."""
    dbapi = conn.connection.dbapi_connection
    try:
        with dbapi.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except conn.dialect.dbapi.Error as exc:  # as SQLAlchemy reports a failed statement
        raise DBAPIError.instance(sql, None, exc, conn.dialect.dbapi.Error, dialect=conn.dialect) from None


def _copy_to_temp(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """COPY rows into a new temporary table shaped like `table` (no keys, no indexes); returns its name."""
    name = quoted(conn, [table.name])[0]
    tmp = quoted(conn, [f"_bulk_{table.name}"])[0]
    cols = ", ".join(quoted(conn, columns))
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {tmp}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {tmp} ON COMMIT DROP AS SELECT {cols} FROM {name} WITH NO DATA")
    _copy(conn, f"COPY {tmp} ({cols}) FROM STDIN", rows)
    return tmp
