"""SQLite's half of the store's dialect interface (store/dialect.py): bulk writes as multi-row
statements, exact integers as fixed-width decimal text, journal modes, and the holder reads the sync
makes per tick."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError, OperationalError

from indexer.store.dialect import quoted
from indexer.store.types import decode_int_text

BUSY_TIMEOUT_S = 30
PAGE_SIZE = 16_384  # for a new database; an existing one keeps its own
ROWS_PER_STATEMENT = 1_000
# The page cache of a connection that bulk-writes, in KiB. The default (2 MiB) makes every insert into
# an index on addresses (random order) a page miss once the tables outgrow it.
BULK_CACHE_KIB = 256 * 1024
# WAL size before an automatic checkpoint, for such a connection (default 1,000 pages): a bulk tick
# rewrites many of the same index pages as the tick before, and a checkpoint copies each page once.
# The WAL file is also truncated back to this size after a checkpoint.
BULK_WAL_BYTES = 100 * 1024 * 1024
IN_LIST = 500  # wallets per IN list when holders are read


class SqliteDialect:
    name = "sqlite"
    # a page's writes run in the caller's thread: SQLite works in this process, and the two cores are
    # busy with Python, SQLite and the node already (docs/benchmarks.md)
    threaded_writes = False
    encodes_text = True  # exact integer columns are written as their fixed-width text

    # ------------------------------------------------------------------------------ bulk writes
    def plan_write(self, conn: Connection, table: Table, columns: Sequence[str], rows: list,
                   conflict: str, *, direct_copy: bool) -> Callable[[], None]:
        """The write of encoded rows as `INSERT ... VALUES (...), ... {conflict}` statements."""
        cols = ", ".join(quoted(conn, columns))
        name = quoted(conn, [table.name])[0]
        statements = _statements(conn, f"INSERT INTO {name} ({cols}) VALUES", len(columns), conflict, rows)

        def run() -> None:
            _tune_for_bulk(conn)
            _execute(conn, statements)
        return run

    # ------------------------------------------------------------------------------ holders
    def load_units(self, conn: Connection, cid: int, touched: dict[str, set[str]]) -> dict[tuple[str, str], int]:
        """Stored units of the touched holders: chunks of wallets of a token in an IN list (its
        primary-key index answers each)."""
        out: dict[tuple[str, str], int] = {}
        for token, wallets in touched.items():
            ws = sorted(wallets)
            for i in range(0, len(ws), IN_LIST):
                chunk = ws[i:i + IN_LIST]
                sql = (f"SELECT wallet, units_raw FROM balances WHERE chain_id = ? AND token = ? "
                       f"AND wallet IN ({', '.join('?' * len(chunk))})")
                for wallet, u in conn.exec_driver_sql(sql, (cid, token, *chunk)).fetchall():
                    out[(token, wallet)] = decode_int_text(u)
        return out

    def holder_rows(self, conn: Connection, cid: int, token: str, skip: AbstractSet[str] = frozenset()
                    ) -> list[tuple[str, int, int, int | None]]:
        """(wallet, units, balance, shares) of every stored holder of a token but those in `skip`
        (unsigned columns: their fixed-width text is the number's digits)."""
        sql = "SELECT wallet, units_raw, balance_raw, shares_raw FROM balances WHERE chain_id = ? AND token = ?"
        return [(w, int(u), int(b), None if s is None else int(s))
                for w, u, b, s in conn.exec_driver_sql(sql, (cid, token)).fetchall() if w not in skip]

    # ------------------------------------------------------------------------------ bulk loads
    def first_backfill(self, conn: Connection, on: bool) -> None:
        """A rollback journal while the first backfill runs, write-ahead logging otherwise.

        A first backfill writes almost only new pages, which a rollback journal does not copy: each page
        is written once, where WAL writes it to the log and again at the checkpoint. The price: once a
        tick's writes spill out of the page cache, the file is the writer's until the commit, and readers
        wait (busy timeout) where in WAL they never do. FULL sync: a power loss cannot harm the database
        in that mode either. Leaving WAL needs the database to itself: while another connection holds it
        open, the mode stays as it is, which is only slower. Outside a transaction.
        """
        want, sync = ("truncate", "FULL") if on else ("wal", "NORMAL")
        if conn.exec_driver_sql("PRAGMA journal_mode").scalar() != want:
            got = set_journal_mode(conn, want)
            conn.exec_driver_sql(f"PRAGMA synchronous={sync if got == want else 'NORMAL'}")
        conn.commit()  # ends SQLAlchemy's implicit transaction; the pragmas opened none

    def after_bulk_load(self, conn: Connection, tables: Sequence[str]) -> None:
        """Nothing: SQLite's planner needs no fresh statistics for the sync's and the views' queries."""


def set_journal_mode(conn: Connection, mode: str) -> str | None:
    """Switch the database's journal mode (outside a transaction); returns the mode now in force, or
    None when another connection holds the database and the mode stays as it is. Waits 0.1 s at most
    for the database, not the usual busy timeout."""
    conn.exec_driver_sql("PRAGMA busy_timeout = 100")
    try:
        return conn.exec_driver_sql(f"PRAGMA journal_mode={mode}").scalar()
    except OperationalError:  # "database is locked"
        return None
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")


def on_connect(dbapi_conn: sqlite3.Connection) -> None:
    """Pragmas of every new connection: 16 KiB pages and WAL for a new database (a backfill then makes a
    quarter of the writes and system calls that 4 KiB pages need), NORMAL sync, foreign keys."""
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA page_size={PAGE_SIZE}")
    if cur.execute("PRAGMA schema_version").fetchone()[0] == 0:  # a new, empty database
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _statements(conn: Connection, head: str, width: int, tail: str, rows: Sequence[Sequence[Any]]
                ) -> list[tuple[str, list]]:
    """`{head} (?, ...), (?, ...), ... {tail}` with its parameters, up to 1,000 rows a statement.

    Multi-row statements, not `executemany` of a one-row statement: a statement's parameters are
    bound at once and SQLite then inserts all its rows in one step, where executemany steps, resets
    and rebinds its statement for every row (and takes Python's interpreter back each time). Rows are
    inserted in the order given, as executemany would; a key met twice in one statement meets its own
    earlier row, as it would there.
    """
    info = conn.connection.info  # the limit, read once per connection (while no other thread uses it)
    limit = info.get("sqlite_variables")
    if limit is None:
        limit = info["sqlite_variables"] = conn.connection.dbapi_connection.getlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(ROWS_PER_STATEMENT, limit // width))
    one = "(" + ", ".join("?" * width) + ")"
    out = []
    i = 0
    # statements of a few fixed sizes only (1,000, 100, 10, 1 rows): the connection's statement cache
    # then holds a few shapes per table, not one per remainder
    for size in sorted({per, *(n for n in (100, 10, 1) if n < per)}, reverse=True):
        sql = f"{head} {', '.join([one] * size)} {tail}"
        while len(rows) - i >= size:
            out.append((sql, list(chain.from_iterable(rows[i:i + size]))))
            i += size
    return out


def _execute(conn: Connection, statements: list[tuple[str, list]]) -> None:
    raw, raw_error = conn.connection.dbapi_connection, conn.dialect.dbapi.Error
    cur = raw.cursor()
    try:
        for sql, params in statements:
            try:
                cur.execute(sql, params)
            except raw_error as exc:  # as SQLAlchemy reports a failed statement
                raise DBAPIError.instance(sql[:sql.index("(?")] + "...", None, exc, raw_error,
                                          dialect=conn.dialect) from None
    finally:
        cur.close()


def _tune_for_bulk(conn: Connection) -> None:
    """Give this connection a page cache sized for bulk writes (once per connection)."""
    info = conn.connection.info
    if not info.get("bulk_tuned"):
        conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        page = conn.exec_driver_sql("PRAGMA page_size").scalar()
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {BULK_WAL_BYTES // page}")
        conn.exec_driver_sql(f"PRAGMA journal_size_limit = {BULK_WAL_BYTES}")
        info["bulk_tuned"] = True
