"""The analyst views (migration 0003, docs/sql.md): created and dropped by the migrations, with exactly the
documented columns on SQLite and PostgreSQL, index searches for wallet lookups, and the read-only
`analyst` role of db/roles.sql on a real PostgreSQL."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from indexer.store.engine import alembic_config, make_engine, upgrade
from tests import ROOT as PROJECT_ROOT
from tests.conftest import PG_ADMIN, fresh_database

VIEWS = ["client_collateral", "client_margin", "holders", "latest_run", "pool_state", "price_latest", "token_exposure",
         "token_liquidity", "wallet_collateral", "wallet_margin"]
DOC = PROJECT_ROOT / "docs" / "sql.md"
ROLES = PROJECT_ROOT / "db" / "roles.sql"
WALLET = "0x00000000000000000000000000000000000000aa"
# the views a wallet lookup touches, and the table each one reads the wallet's rows from
WALLET_VIEWS = {"holders": "balances", "wallet_collateral": "risk_holdings", "wallet_margin": "risk_wallets"}


def documented_columns() -> dict[str, list[str]]:
    """{view: [column, ...]} from the `### `view`` sections of docs/sql.md, in table order."""
    out: dict[str, list[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        head = re.match(r"^###\s+`(\w+)`", line)
        if head:
            current = head.group(1)
            out[current] = []
            continue
        if line.startswith("#"):
            current = None
        row = re.match(r"^\|\s*`(\w+)`\s*\|", line)
        if current is not None and row:
            out[current].append(row.group(1))
    return out


def view_columns(conn, view: str) -> list[str]:
    return list(conn.execute(text(f"SELECT * FROM {view} WHERE 1 = 0")).keys())


def test_migrations_create_the_views_and_downgrade_drops_them(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert sorted(inspect(engine).get_view_names()) == VIEWS
        assert "ix_risk_runs_chain_block" in {i["name"] for i in inspect(engine).get_indexes("risk_runs")}
        docs = documented_columns()
        with engine.connect() as conn:
            for view in VIEWS:
                assert docs.get(view), f"docs/sql.md documents no columns for {view}"
                assert view_columns(conn, view) == docs[view], view
        command.downgrade(alembic_config(db_url), "0002")
        insp = inspect(engine)
        assert insp.get_view_names() == []
        assert {i["name"]: i["column_names"] for i in insp.get_indexes("balances")} == {
            "ix_balances_wallet": ["chain_id", "wallet"]}
        upgrade(db_url)
        assert sorted(inspect(engine).get_view_names()) == VIEWS
    finally:
        engine.dispose()


def wallet_plan(conn, dialect: str, view: str) -> str:
    sql = f"SELECT * FROM {view} WHERE wallet = :w"
    if dialect == "sqlite":
        return "\n".join(r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql), {"w": WALLET}))
    return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), {"w": WALLET}))


def assert_wallet_search_uses_an_index(plan: str, dialect: str, table: str, alias: str) -> None:
    if dialect == "sqlite":
        # e.g. "SEARCH h USING INDEX ix_risk_holdings_wallet (wallet=? AND run_id=?)"
        assert re.search(rf"SEARCH {alias} USING (COVERING )?INDEX \w+ \([^)]*wallet=\?", plan), plan
        assert not re.search(rf"SCAN {alias}\b", plan), plan
    else:
        assert f"Seq Scan on {table}" not in plan, plan
        assert re.search(rf"Index (Only )?Scan.* on {table}|Bitmap Index Scan on \w+", plan), plan
        assert re.search(r"Index Cond: .*wallet", plan), plan


ALIASES = {"holders": "b", "wallet_collateral": "h", "wallet_margin": "w"}


def test_wallet_lookups_search_an_index(db_url):
    """With seq scans priced out on PostgreSQL (the tables are empty here; tests/runs/test_queries.py checks
    the plans on a synced world without that), a wallet filter on every view a lookup touches is an index
    search on the table holding the wallet's rows."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            dialect = engine.dialect.name
            if dialect == "postgresql":
                conn.execute(text("SET enable_seqscan = off"))
            for view, table in WALLET_VIEWS.items():
                assert_wallet_search_uses_an_index(wallet_plan(conn, dialect, view), dialect, table, ALIASES[view])
    finally:
        engine.dispose()


# -- the analyst role (PostgreSQL) -------------------------------------------------------------------

def run_script(url: str, path: Path) -> None:
    """Send a SQL file as one batch, the way `psql -f` would (no parameters, so no placeholder parsing)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(path.read_text())


def test_analyst_role_reads_everything_and_writes_nothing(tmp_path):
    """roles.sql runs twice (idempotent) on a database at revision 0002; the views 0003 creates afterwards
    are readable through the default privileges. A login role of our own, member of `analyst`, reads every
    table and view and is refused every write. The cluster-wide `analyst` role is left in place (other
    databases may use it; it owns nothing); the unique login role is dropped."""
    login = f"ci_analyst_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with fresh_database("postgresql", tmp_path) as url:
            upgrade(url, "0002")
            run_script(url, ROLES)
            run_script(url, ROLES)
            upgrade(url)
            with admin.connect() as conn:
                conn.execute(text(f'CREATE ROLE "{login}" LOGIN IN ROLE analyst'))
            owner = make_engine(url)
            with owner.connect() as conn:
                tables = sorted(inspect(conn).get_table_names())
                assert conn.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'analyst'")).scalar() is False
            owner.dispose()
            assert "risk_holdings" in tables
            reader = make_engine(url.replace("postgres@", f"{login}@"))
            try:
                with reader.connect() as conn:
                    assert conn.execute(text("SELECT current_user")).scalar() == login
                    for name in VIEWS + tables:
                        conn.execute(text(f"SELECT * FROM {name} LIMIT 1")).all()
                writes = [
                    "INSERT INTO accounts (wallet, jurisdiction, tier, kyc_status, cash_usd, loaded_at) "
                    "VALUES ('0x01', 'SG', 'retail', 'approved', 0, 0)",
                    "UPDATE tokens SET symbol = 'X'",
                    "DELETE FROM risk_runs",
                    "TRUNCATE balances",
                    "CREATE TABLE public.analyst_scratch (x integer)",
                    "CREATE VIEW public.analyst_view AS SELECT 1 AS x",
                    "DROP VIEW holders",
                    "ALTER TABLE blocks ADD COLUMN x integer",
                    # leadership: the lease can be read, never taken, renewed, locked or held up
                    "INSERT INTO leader_leases (chain_id, holder, token, acquired_at, renewed_at, expires_at) "
                    "VALUES (31337, 'analyst', 1, 0, 0, 1e12)",
                    "UPDATE leader_leases SET holder = 'analyst', token = token + 1",
                    "DELETE FROM leader_leases",
                    "SELECT * FROM leader_leases FOR UPDATE",
                    "SELECT * FROM leader_leases FOR KEY SHARE",
                    "LOCK TABLE leader_leases IN ROW EXCLUSIVE MODE",
                ]
                for sql in writes:
                    with reader.connect() as conn, pytest.raises(Exception, match="permission denied|must be owner"):
                        conn.execute(text(sql))
                # the same through SET ROLE from the owner's session
                owner = make_engine(url)
                with owner.connect() as conn:
                    conn.execute(text("SET ROLE analyst"))
                    assert conn.execute(text("SELECT count(*) FROM wallet_margin")).scalar() == 0
                    with pytest.raises(Exception, match="permission denied"):
                        conn.execute(text("DELETE FROM balances"))
                owner.dispose()
            finally:
                reader.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{login}"'))
        admin.dispose()
