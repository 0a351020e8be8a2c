"""Bulk write paths: idempotent inserts of facts and upserts of derived rows, on both databases.

Two levels:
- `insert_ignore` / `upsert` take dicts and go through SQLAlchemy Core (executemany on SQLite,
  multi-row statements on PostgreSQL): for the small tables and the rare rows.
- `insert_rows` / `upsert_rows` take a column list and plain tuples, for the sync's hot tables
  (transfers, share transfers, balance changes, balances). Exact integer columns (`Uint256`,
  `Int256`) take Python ints and are encoded here exactly as their column types encode them: no
  floats anywhere. SQLite: multi-row `INSERT ... VALUES (...), (...), ...` statements, each a single
  step of SQLite's engine (store/sqlite.py). PostgreSQL: `COPY` (psycopg 3
  `cursor.copy`), straight into the table when the caller knows the rows are new, otherwise into a
  temporary table and then `INSERT ... SELECT ... ON CONFLICT`, so writing the same rows twice stays
  a no-op (facts) or a replacement (derived rows).
- `prepare_insert` splits `insert_rows` in two: the rows are checked and encoded in the calling
  thread, and the call it returns writes them, on a `WriteBehind` thread while the caller goes on.

The ORM is for reading and small writes only.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from indexer.store.dialect import dialect_of, quoted
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
_ENCODE_CHUNK = 50_000  # rows encoded at once where the dialect writes text: bounds the encoded copy held


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


def _check_exact_column(values: Sequence[Any], signed: bool) -> str:
    """Check one exact integer column of a batch as `Uint256`/`Int256` check on bind (TypeError for a
    non-integer, ValueError outside the range), and say what it holds: "int" (plain ints only),
    "nullable" (plain ints and None) or "other" (integral Decimals too, which then go one by one).
    Whole-column checks in C (`min`, `max`, `set(map(type, ...))`), not one Python call per value."""
    lo, hi = (INT256_MIN, INT256_MAX) if signed else (0, UINT256_MAX)
    name = "int256" if signed else "uint256"
    kinds = set(map(type, values))
    if kinds - {int, type(None)}:
        for v in values:
            if v is not None and not lo <= _exact_int(v) <= hi:
                raise ValueError(f"{v} is outside {name}")
        return "other"
    ints = [v for v in values if v is not None] if type(None) in kinds else values
    if ints and (min(ints) < lo or max(ints) > hi):
        raise ValueError(f"{next(v for v in ints if not lo <= v <= hi)} is outside {name}")
    return "nullable" if type(None) in kinds else "int"


def _enc_u(v: Any) -> str | None:
    return None if v is None else encode_uint256_text(_exact_int(v))


def _enc_i(v: Any) -> str | None:
    return None if v is None else encode_int256_text(_exact_int(v))


@lru_cache(maxsize=64)
def _text_encoder(kinds: tuple[str, ...]) -> Callable[[Sequence[Sequence[Any]]], list[tuple]]:
    """A function turning checked rows into SQLite rows, for a layout of columns: "" as it is, "u"/"i"
    plain-int Uint256/Int256 encoded inline (the text of store/types.py), "n"/"m" the same or None,
    "U"/"I" one by one (integral Decimals). One list comprehension per layout: no function call per
    value on the hot path."""
    names = [f"v{i}" for i in range(len(kinds))]
    exprs = []
    for n, k in zip(names, kinds, strict=True):
        u = f"str({n}).zfill({WIDTH})"
        i = f"(str({n}).zfill({WIDTH}) if {n} >= 0 else '-' + str(_NEG + {n}).zfill({WIDTH - 1}))"
        exprs.append({"": n, "u": u, "i": i, "n": f"(None if {n} is None else {u})",
                      "m": f"(None if {n} is None else {i})", "U": f"_enc_u({n})", "I": f"_enc_i({n})"}[k])
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
        held = _check_exact_column(list(map(itemgetter(i), rows)), signed)
        kinds.append({"int": "iu", "nullable": "mn", "other": "IU"}[held][0 if signed else 1])
    if not dialect_of(conn).encodes_text:
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
    q = dict(zip(columns, quoted(conn, columns), strict=True))
    key_cols = ", ".join(q[k] for k in keys)
    sets = ", ".join(f"{q[c]} = excluded.{q[c]}" for c in columns if c not in keys)
    _bulk_write(conn, table, columns, rows,
                f"ON CONFLICT ({key_cols}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING"))


def _bulk_write(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                conflict: str, *, direct_copy: bool = False, ordered: bool = False) -> None:
    """Rows (tuples) in primary-key order, through the dialect's bulk path; where the dialect writes
    text, encoded `_ENCODE_CHUNK` rows at a time."""
    if not dialect_of(conn).encodes_text:
        _bulk_plan(conn, table, columns, rows, conflict, direct_copy=direct_copy, ordered=ordered)()
        return
    order = None if ordered else _key_order(table, columns)
    if order is not None:
        rows = sorted(rows, key=order)
    for chunk in _chunks(rows, _ENCODE_CHUNK):  # columns checked by the first chunk's plan, before it writes
        _bulk_plan(conn, table, columns, chunk, conflict, ordered=True)()


def _bulk_plan(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
               conflict: str, *, direct_copy: bool = False, ordered: bool = False) -> Callable[[], None]:
    """Check, encode and order the rows now, in the calling thread; return the call that writes them
    (it alone uses the connection). See `_bulk_write`."""
    _types(table, columns)
    order = None if ordered else _key_order(table, columns)
    checked = _encoded(conn, table, columns, rows)
    if order is not None:
        checked = sorted(checked, key=order)
    return dialect_of(conn).plan_write(conn, table, columns, checked, conflict, direct_copy=direct_copy)


def prepare_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                   new: bool = False, ordered: bool = False) -> Callable[[], None]:
    """`insert_rows` in two halves: the rows are checked and encoded now, in the calling thread; the
    call returned writes them, in any thread, while the caller goes on (`WriteBehind`). For a page of
    rows: they are all held encoded until written."""
    if not rows:
        return _nothing
    return _bulk_plan(conn, table, columns, rows, "ON CONFLICT DO NOTHING", direct_copy=new, ordered=ordered)


def _nothing() -> None:
    return None


# ---------------------------------------------------------------------------------- behind the caller
class WriteBehind:
    """Runs write calls on a thread of its own, in the order given, while the caller goes on.

    For the sync's pages on PostgreSQL: the server stores one page's rows (COPY, in its own process)
    while the caller decodes the next. With `threaded=False` each call runs at once, in the caller's
    thread: on SQLite the database works in the caller's process, and a thread gains nothing there
    (docs/benchmarks.md, `Dialect.threaded_writes`).

    The calls share the caller's connection and transaction: the caller must `drain()` before it uses
    the connection itself (a read, the commit), and `close()` before the transaction ends either way.
    The first call that fails stops the rest; its exception is raised in the caller at the next
    `submit` or `drain`, and again at every later one. At most `depth` calls wait, which bounds the
    rows held.
    """

    def __init__(self, *, threaded: bool = True, depth: int = 8) -> None:
        self._error: BaseException | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue: queue.Queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._run, name="write-behind", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._error is None and not self._stopping:
                    fn, args, kwargs = job
                    fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Queue `fn(*args, **kwargs)`; waits while `depth` calls are queued already."""
        if self._stopping:
            raise RuntimeError("WriteBehind is closed")
        self._raise()
        if self._thread is None:
            try:
                fn(*args, **kwargs)
            except BaseException as exc:
                self._error = exc
                raise
        else:
            self._queue.put((fn, args, kwargs))

    def drain(self) -> None:
        """Wait until every queued call has run; raise the first one's exception if one failed."""
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Drop the calls not started yet, wait for the one running, stop the thread. Raises nothing:
        after an error the caller is unwinding already (call `drain` first to learn of one)."""
        if self._stopping:
            return
        self._stopping = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
