"""The schema: migrations equal the models, and 256-bit integers round-trip and order exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, inspect, select

from indexer.store.engine import make_engine, upgrade
from indexer.store.models import metadata
from indexer.store.types import (
    INT256_MAX,
    INT256_MIN,
    UINT256_MAX,
    Int256,
    Uint256,
    decode_int_text,
    encode_int256_text,
)

EDGES_U = [0, 1, 9, 10, 2**64, 2**128 + 7, UINT256_MAX - 1, UINT256_MAX]
EDGES_I = [INT256_MIN, INT256_MIN + 1, -(2**128), -10, -1, 0, 1, 2**200, INT256_MAX]


def test_migrations_create_exactly_the_models(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        insp = inspect(conn)
        for table in metadata.sorted_tables:  # primary keys column by column, in order (autogenerate skips them)
            assert insp.get_pk_constraint(table.name)["constrained_columns"] == [c.name for c in table.primary_key]
    engine.dispose()


def test_rekeying_balance_changes_keeps_every_row(db_url):
    upgrade(db_url, "0003")
    engine = make_engine(db_url)
    bc = metadata.tables["balance_changes"]
    rows = [dict(chain_id=1, token="0x" + t * 40, wallet="0x" + w * 40, block_number=b, log_index=i,
                 delta_raw=-(10**30) if i % 2 else 5, units_raw=2**255 + b)
            for i, (t, w, b) in enumerate([("a", "1", 9), ("a", "2", 3), ("b", "1", 3), ("a", "1", 4)])]
    with engine.begin() as conn:
        conn.execute(bc.insert(), rows)
    engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        back = [dict(r._mapping) for r in conn.execute(select(bc).order_by(*bc.primary_key.columns))]
        assert inspect(conn).get_pk_constraint("balance_changes")["constrained_columns"] == \
            ["chain_id", "block_number", "log_index", "token", "wallet"]
        assert {ix["name"] for ix in inspect(conn).get_indexes("balance_changes")} == {"ix_balance_changes_wallet"}
    assert back == sorted(rows, key=lambda r: (r["block_number"], r["log_index"]))
    engine.dispose()


def test_uint256_and_int256_round_trip_and_order_in_sql(db_url):
    engine = make_engine(db_url)
    md = MetaData()
    t = Table("numbers", md, Column("id", Integer, primary_key=True), Column("u", Uint256()), Column("i", Int256()))
    md.create_all(engine)
    rows = [dict(id=k, u=EDGES_U[k % len(EDGES_U)], i=EDGES_I[k % len(EDGES_I)]) for k in range(len(EDGES_I))]
    with engine.begin() as conn:
        conn.execute(t.insert(), rows)
    with engine.connect() as conn:
        back = conn.execute(select(t.c.id, t.c.u, t.c.i).order_by(t.c.id)).all()
        by_u = [r.u for r in conn.execute(select(t.c.u).order_by(t.c.u))]
        by_i = [r.i for r in conn.execute(select(t.c.i).order_by(t.c.i))]
        big = conn.execute(select(t.c.id).where(t.c.u > 2**64).order_by(t.c.id)).scalars().all()
    assert [(r.id, r.u, r.i) for r in back] == [(r["id"], r["u"], r["i"]) for r in rows]
    assert by_u == sorted(r["u"] for r in rows)
    assert by_i == sorted(r["i"] for r in rows)
    assert big == [r["id"] for r in rows if r["u"] > 2**64]
    engine.dispose()


@settings(max_examples=300)
@given(st.integers(INT256_MIN, INT256_MAX), st.integers(INT256_MIN, INT256_MAX))
def test_int256_text_encoding_orders_like_the_numbers(a, b):
    ea, eb = encode_int256_text(a), encode_int256_text(b)
    assert decode_int_text(ea) == a and len(ea) == 78
    assert (ea < eb) == (a < b)
