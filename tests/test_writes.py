"""Bulk writes of tuples (multi-row statements on SQLite, COPY on PostgreSQL): exact, idempotent, and stored
exactly as the column types store them."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.exc import IntegrityError

from indexer.store.engine import make_engine
from indexer.store.types import INT256_MAX, INT256_MIN, UINT256_MAX, Int256, Uint256
from indexer.store.writes import WriteBehind, insert_ignore, insert_rows, prepare_insert, upsert, upsert_rows

U = [0, 1, 9, 10, 2**64, 2**128 + 7, UINT256_MAX - 1, UINT256_MAX]
I_ = [INT256_MIN, INT256_MIN + 1, -(2**128), -10, -1, 0, 1, INT256_MAX]
COLS = ["k", "sub", "u", "i", "note", "maybe"]


def _table(md: MetaData, name: str) -> Table:
    return Table(name, md, Column("k", Integer, primary_key=True), Column("sub", Integer, primary_key=True),
                 Column("u", Uint256(), nullable=False), Column("i", Int256(), nullable=False),
                 Column("note", String(42), nullable=False), Column("maybe", Uint256(), nullable=True))


@pytest.fixture
def tables(db_url):
    engine = make_engine(db_url)
    md = MetaData()
    fast, slow = _table(md, "bulk_fast"), _table(md, "bulk_slow")
    md.create_all(engine)
    yield engine, fast, slow
    engine.dispose()


def _rows(n: int = 40, shift: int = 0) -> list[tuple]:
    return [(k, k % 3, U[(k + shift) % len(U)], I_[(k + shift) % len(I_)], f"0x{k:040x}",
             None if k % 4 == 0 else U[(k * 3 + shift) % len(U)]) for k in range(n)]


def _read(conn, t: Table) -> list[tuple]:
    return [tuple(r) for r in conn.execute(select(*[t.c[c] for c in COLS]).order_by(t.c.k, t.c.sub))]


def _raw(conn, t: Table) -> list[tuple]:
    return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(COLS)} FROM {t.name} ORDER BY k, sub")]


@pytest.mark.parametrize("new", [False, True])
def test_insert_rows_is_exact_idempotent_and_stored_like_the_column_types(tables, new):
    engine, fast, slow = tables
    rows = _rows()
    with engine.begin() as conn:
        insert_rows(conn, fast, COLS, rows, new=new)
        insert_ignore(conn, slow, [dict(zip(COLS, r, strict=True)) for r in rows])
    with engine.begin() as conn:  # the same facts again, and a changed value under an existing key: no-ops
        insert_rows(conn, fast, COLS, rows)
        insert_rows(conn, fast, COLS, [(0, 0, 5, 5, "changed", 5)])
    with engine.connect() as conn:
        assert _read(conn, fast) == sorted(rows)
        assert _raw(conn, fast) == _raw(conn, slow)  # byte for byte what the SQLAlchemy types write
        assert conn.execute(select(fast.c.k).where(fast.c.u > 2**64).order_by(fast.c.k)).scalars().all() == \
            [r[0] for r in rows if r[2] > 2**64]


def test_upsert_rows_replaces_the_non_key_columns(tables):
    engine, fast, slow = tables
    with engine.begin() as conn:
        upsert_rows(conn, fast, COLS, _rows(), ["k", "sub"])
        upsert(conn, slow, [dict(zip(COLS, r, strict=True)) for r in _rows()], ["k", "sub"])
    later = _rows(shift=3)[10:30] + [(99, 0, UINT256_MAX, INT256_MIN, "new", None)]
    with engine.begin() as conn:
        upsert_rows(conn, fast, COLS, later, ["k", "sub"])
        upsert(conn, slow, [dict(zip(COLS, r, strict=True)) for r in later], ["k", "sub"])
    expected = {r[:2]: r for r in _rows()} | {r[:2]: r for r in later}
    with engine.connect() as conn:
        assert _read(conn, fast) == sorted(expected.values())
        assert _raw(conn, fast) == _raw(conn, slow)


def test_many_rows_span_several_statements_and_a_key_met_twice_keeps_the_later_row(tables):
    """2,503 rows: statements of 1,000, 100 and 1 rows on SQLite; an existing key in the middle of a
    statement is left (facts) or replaced (derived rows) without touching its neighbours."""
    engine, fast, _ = tables
    rows = [(k, 0, k * 10**60, -k, f"0x{k:040x}", None if k % 2 else k) for k in range(2_503)]
    with engine.begin() as conn:
        insert_rows(conn, fast, COLS, rows[1_500:1_501])
        insert_rows(conn, fast, COLS, [r[:2] + (1, 1, "ignored", None) if r[0] == 1_500 else r for r in rows])
    with engine.connect() as conn:
        got = _read(conn, fast)
    assert len(got) == 2_503
    assert got[1_500] == rows[1_500]  # the row stored first stays
    assert got[:1_500] + got[1_501:] == rows[:1_500] + rows[1_501:]
    if engine.dialect.name == "postgresql":
        return  # PostgreSQL refuses a key twice in one upsert (upsert_rows says so); SQLite keeps the later
    twice = [(7, 0, 1, 1, "first", None), (8, 0, 2, 2, "other", None), (7, 0, 3, 3, "later", 3)]
    with engine.begin() as conn:
        upsert_rows(conn, fast, COLS, twice, ["k", "sub"])
    with engine.connect() as conn:
        got = {r[0]: r for r in _read(conn, fast)}
    assert got[7] == (7, 0, 3, 3, "later", 3) and got[8] == (8, 0, 2, 2, "other", None)


def test_a_key_given_twice_under_new_fails_loudly_on_postgresql(tables):
    engine, fast, _ = tables
    with engine.begin() as conn:
        insert_rows(conn, fast, COLS, _rows(5))
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no COPY: `new` changes nothing there")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_rows(conn, fast, COLS, _rows(6), new=True)
    with engine.connect() as conn:
        assert len(_read(conn, fast)) == 5  # the failed transaction left nothing behind


def test_values_that_are_not_exact_or_out_of_range_are_refused(tables):
    engine, fast, _ = tables
    bad = [(1.0, TypeError), (True, TypeError), ("12", TypeError), (Decimal("1.5"), TypeError),
           (-1, ValueError), (UINT256_MAX + 1, ValueError)]
    for value, error in bad:
        with pytest.raises(error), engine.begin() as conn:
            insert_rows(conn, fast, COLS, [(1, 0, value, 0, "x", None)])
    with engine.begin() as conn:
        insert_rows(conn, fast, COLS, [(1, 0, Decimal(7), 0, "x", None)])  # an integral Decimal is an integer
        with pytest.raises(ValueError, match="no column"):
            insert_rows(conn, fast, ["k", "nope"], [(1, 2)])
        with pytest.raises(ValueError, match="key columns"):
            upsert_rows(conn, fast, ["k", "u"], [(1, 2)], ["k", "sub"])
    with engine.connect() as conn:
        assert conn.execute(select(fast.c.u)).scalars().all() == [7]
        assert conn.execute(text("SELECT count(*) FROM bulk_fast")).scalar() == 1


# ---------------------------------------------------------------------------------- WriteBehind
@pytest.mark.parametrize("threaded", [True, False])
def test_write_behind_runs_calls_in_order_and_raises_the_first_failure_in_the_caller(threaded):
    done: list[int] = []
    gate = threading.Event()

    def slow(i: int) -> None:
        gate.wait(5)
        done.append(i)

    def fail() -> None:
        raise ZeroDivisionError("boom")

    if not threaded:
        gate.set()
    with WriteBehind(threaded=threaded, depth=8) as writes:
        for i in range(5):
            writes.submit(slow, i)
        gate.set()
        writes.drain()
        assert done == [0, 1, 2, 3, 4]
        with pytest.raises(ZeroDivisionError):  # at once (inline) or at the next submit / drain (threaded)
            writes.submit(fail)
            writes.drain()
        for _ in range(2):  # sticky: every later call says so, and nothing after the failure runs
            with pytest.raises(ZeroDivisionError):
                writes.submit(done.append, 99)
        with pytest.raises(ZeroDivisionError):
            writes.drain()
    assert done == [0, 1, 2, 3, 4]


def test_write_behind_close_waits_for_the_running_call_and_drops_the_rest():
    started, release, done = threading.Event(), threading.Event(), []

    def first() -> None:
        started.set()
        release.wait(5)
        done.append("first")

    writes = WriteBehind(depth=4)
    writes.submit(first)
    writes.submit(done.append, "second")
    started.wait(5)
    threading.Timer(0.2, release.set).start()
    writes.close()
    assert done == ["first"]
    writes.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        writes.submit(done.append, "third")


def test_rows_written_behind_equal_rows_written_at_once_and_a_failure_undoes_the_transaction(tables):
    engine, fast, slow = tables
    rows = _rows(2_100)
    with engine.begin() as conn, WriteBehind(depth=2) as writes:
        for i in range(0, len(rows), 700):  # pages of rows, written while the next is prepared
            writes.submit(prepare_insert(conn, fast, COLS, rows[i:i + 700], new=True, ordered=True))
        writes.drain()
        insert_rows(conn, slow, COLS, rows)
    with engine.connect() as conn:
        assert _raw(conn, fast) == _raw(conn, slow)
    with pytest.raises(IntegrityError), engine.begin() as conn, WriteBehind() as writes:
        writes.submit(prepare_insert(conn, fast, ["k", "sub", "u", "i", "note"], [(5_000, 0, 1, 1, "new")]))
        writes.submit(upsert_rows, conn, fast, COLS, [(0, 0, 1, 1, "x", None)], ["k", "sub"])
        writes.submit(conn.exec_driver_sql, "INSERT INTO bulk_fast (k, sub, u, i, note) VALUES (0, 0, '1', '1', 'dup')")
        writes.drain()
    with engine.connect() as conn:
        assert _raw(conn, fast) == _raw(conn, slow)  # nothing of the failed transaction is left
