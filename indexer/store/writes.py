"""Bulk write paths: idempotent inserts of facts and upserts of derived rows, on both databases.

Two levels:
- `insert_ignore` / `upsert` take dicts and go through SQLAlchemy Core (executemany on SQLite,
  multi-row statements on PostgreSQL): for the small tables and the rare rows.
- `insert_rows` / `upsert_rows` take a column list and plain tuples, for the sync's hot tables
  (transfers, share transfers, balance changes, balances). Exact integer columns (`Uint256`,
  `Int256`) take Python ints and are encoded here exactly as their column types encode them: no
  floats anywhere. SQLite: one `executemany` of a prepared statement. PostgreSQL: `COPY` (psycopg 3
  `cursor.copy`), straight into the table when the caller knows the rows are new, otherwise into a
  temporary table and then `INSERT ... SELECT ... ON CONFLICT`, so writing the same rows twice stays
  a no-op (facts) or a replacement (derived rows).

The ORM is for reading and small writes only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from indexer.store.types import (
    INT256_MAX,
    INT256_MIN,
    UINT256_MAX,
    WIDTH,
    Int256,
    Uint256,
    encode_int256_text,
    encode_uint256_text,
)

_CHUNK = 5_000
_SQLITE_CHUNK = 50_000  # rows per executemany: bounds the encoded copy held at once
# SQLite's page cache for a connection that bulk-writes, in KiB. Its default (2 MiB) makes every insert
# into an index on addresses (random order) a page miss once the tables outgrow it.
SQLITE_BULK_CACHE_KIB = 256 * 1024
# WAL size before an automatic checkpoint, for such a connection (default 1,000 pages): a bulk tick
# rewrites many of the same index pages as the tick before, and a checkpoint copies each page once.
# The WAL file is also truncated back to this size after a checkpoint.
SQLITE_BULK_WAL_BYTES = 100 * 1024 * 1024


def _insert(conn: Connection, table: Table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _chunks(rows: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
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


# ---------------------------------------------------------------------------------- tuples, in bulk
_NEG_BASE = 10**77  # Int256 text encoding of negatives (store/types.py)


def _exact_int(value: Any) -> int:
    """The type check `Uint256`/`Int256` make on bind: ints (or integral Decimals) only."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        raise TypeError(f"exact integer column given {type(value).__name__} {value!r}")
    return value


def _check_exact_column(values: Sequence[Any], signed: bool) -> bool:
    """Check one exact integer column of a batch as `Uint256`/`Int256` check on bind (TypeError for a
    non-integer, ValueError outside the range). False when it holds values other than plain ints
    (None, integral Decimals), which then go one by one. Whole-column C-level checks: ~0.1 us a value."""
    lo, hi = (INT256_MIN, INT256_MAX) if signed else (0, UINT256_MAX)
    name = "int256" if signed else "uint256"
    if set(map(type, values)) - {int}:
        for v in values:
            if v is not None and not lo <= _exact_int(v) <= hi:
                raise ValueError(f"{v} is outside {name}")
        return False
    if values and (min(values) < lo or max(values) > hi):
        raise ValueError(f"{next(v for v in values if not lo <= v <= hi)} is outside {name}")
    return True


def _enc_u(v: Any) -> str | None:
    return None if v is None else encode_uint256_text(_exact_int(v))


def _enc_i(v: Any) -> str | None:
    return None if v is None else encode_int256_text(_exact_int(v))


@lru_cache(maxsize=64)
def _text_encoder(kinds: tuple[str, ...]) -> Callable[[Sequence[Sequence[Any]]], list[tuple]]:
    """A function turning checked rows into SQLite rows, for a layout of columns: "" as it is, "u"/"i"
    plain-int Uint256/Int256 encoded inline (the text of store/types.py), "U"/"I" one by one (None,
    Decimal). One list comprehension per layout: no function call per value on the hot path."""
    names = [f"v{i}" for i in range(len(kinds))]
    exprs = []
    for n, k in zip(names, kinds, strict=True):
        exprs.append({"": n, "u": f"str({n}).zfill({WIDTH})",
                      "i": f"(str({n}).zfill({WIDTH}) if {n} >= 0 else '-' + str(_NEG + {n}).zfill({WIDTH - 1}))",
                      "U": f"_enc_u({n})", "I": f"_enc_i({n})"}[k])
    src = f"def encode(rows):\n    return [({', '.join(exprs)},) for {', '.join(names)}, in rows]\n"
    scope = {"_NEG": _NEG_BASE, "_enc_u": _enc_u, "_enc_i": _enc_i}
    exec(compile(src, f"<row encoder {''.join(k or '.' for k in kinds)}>", "exec"), scope)  # noqa: S102
    return scope["encode"]


def _encoded(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list:
    """The rows as the database takes them: exact integer columns checked, and on SQLite encoded as
    their column types store them; PostgreSQL takes the ints themselves (NUMERIC(78,0))."""
    types = _types(table, columns)
    kinds = []
    for i, t in enumerate(types):
        if not isinstance(t, Uint256 | Int256):
            kinds.append("")
            continue
        signed = isinstance(t, Int256)
        plain = _check_exact_column(list(map(itemgetter(i), rows)), signed)
        kinds.append(("i" if signed else "u") if plain else ("I" if signed else "U"))
    if conn.dialect.name == "postgresql":
        if any(k in ("U", "I") for k in kinds):  # integral Decimals become ints, as the column type binds them
            idx = [i for i, k in enumerate(kinds) if k in ("U", "I")]
            return [tuple(_exact_int(v) if i in idx and v is not None else v for i, v in enumerate(r)) for r in rows]
        return rows if isinstance(rows, list) else list(rows)
    if not any(kinds):
        return rows if isinstance(rows, list) else list(rows)
    return _text_encoder(tuple(kinds))(rows)


def _key_order(table: Table, columns: Sequence[str]) -> Callable[[Sequence[Any]], Any] | None:
    """Sort key in primary-key order, for the columns given (None when a key column is not among them)."""
    keys = [c.name for c in table.primary_key.columns]
    if not keys or any(k not in columns for k in keys):
        return None
    return itemgetter(*[list(columns).index(k) for k in keys])


def _types(table: Table, columns: Sequence[str]) -> list[Any]:
    try:
        return [table.c[c].type for c in columns]
    except KeyError as exc:
        raise ValueError(f"{table.name} has no column {exc.args[0]!r}") from None


def _quoted(conn: Connection, names: Iterable[str]) -> list[str]:
    prep = conn.dialect.identifier_preparer
    return [prep.quote(n) for n in names]


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                new: bool = False, ordered: bool = False) -> None:
    """Insert facts given as tuples in the order of `columns`; rows whose key exists are left as they are.

    `new=True` says the caller knows no row of this batch is stored yet (a block range above every
    stored block). PostgreSQL then copies straight into the table; a duplicate key still fails loudly
    (unique violation), never silently. SQLite ignores the flag. Rows are written in primary-key
    order: B-tree pages are then visited once each, not at random. `ordered=True` says they come in
    that order already, or nearly (facts in log order): they are not sorted again.
    """
    if not rows:
        return
    _bulk_write(conn, table, columns, rows, "ON CONFLICT DO NOTHING", direct_copy=new, ordered=ordered)


def upsert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                keys: Sequence[str]) -> None:
    """Insert derived rows given as tuples, replacing the non-key columns of rows that exist.

    Two rows of one batch must not share a key (PostgreSQL refuses to update a row twice in one statement).
    """
    if not rows:
        return
    missing = [k for k in keys if k not in columns]
    if missing:
        raise ValueError(f"upsert_rows: key columns {missing} are not among the columns given")
    q = dict(zip(columns, _quoted(conn, columns), strict=True))
    key_cols = ", ".join(q[k] for k in keys)
    sets = ", ".join(f"{q[c]} = excluded.{q[c]}" for c in columns if c not in keys)
    _bulk_write(conn, table, columns, rows,
                f"ON CONFLICT ({key_cols}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING"))


def _bulk_write(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                conflict: str, *, direct_copy: bool = False, ordered: bool = False) -> None:
    """Rows (tuples) in primary-key order. PostgreSQL: COPY, straight into the table when
    `direct_copy`, else into a temporary table merged with `INSERT ... SELECT ... {conflict}`.
    SQLite: executemany of `INSERT ... VALUES ... {conflict}` in chunks."""
    _types(table, columns)
    order = None if ordered else _key_order(table, columns)
    cols = ", ".join(_quoted(conn, columns))
    name = _quoted(conn, [table.name])[0]
    if conn.dialect.name == "postgresql":
        checked = _encoded(conn, table, columns, rows)
        if order is not None:
            checked = sorted(checked, key=order)
        if direct_copy:
            _copy(conn, f"COPY {name} ({cols}) FROM STDIN", checked)
            return
        tmp = _copy_to_temp(conn, table, columns, checked)
        conn.exec_driver_sql(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {tmp} {conflict}")
        conn.exec_driver_sql(f"DROP TABLE {tmp}")
        return
    _sqlite_bulk(conn)
    sql = f"INSERT INTO {name} ({cols}) VALUES ({', '.join('?' * len(columns))}) {conflict}"
    if order is not None:
        rows = sorted(rows, key=order)
    for chunk in _chunks(rows, _SQLITE_CHUNK):
        conn.exec_driver_sql(sql, _encoded(conn, table, columns, chunk))


def _sqlite_bulk(conn: Connection) -> None:
    """Give this SQLite connection a page cache sized for bulk writes (once per connection)."""
    info = conn.connection.info
    if not info.get("bulk_tuned"):
        conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_BULK_CACHE_KIB}")
        page = conn.exec_driver_sql("PRAGMA page_size").scalar()
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {SQLITE_BULK_WAL_BYTES // page}")
        conn.exec_driver_sql(f"PRAGMA journal_size_limit = {SQLITE_BULK_WAL_BYTES}")
        info["bulk_tuned"] = True


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
    name = _quoted(conn, [table.name])[0]
    tmp = _quoted(conn, [f"_bulk_{table.name}"])[0]
    cols = ", ".join(_quoted(conn, columns))
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {tmp}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {tmp} ON COMMIT DROP AS SELECT {cols} FROM {name} WITH NO DATA")
    _copy(conn, f"COPY {tmp} ({cols}) FROM STDIN", rows)
    return tmp
