"""leader leases; risk runs kept when orphaned, ids never reused

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

- `leader_leases`: one row per chain, the service's leadership (holder, fencing token, expiry) and the
  last successful sync tick of its leader (service/leader.py, store/leases.py). Only the schema owner
  writes it; db/roles.sql gives `analyst` SELECT only, so a read-only role cannot lead or block leading
  (a PostgreSQL advisory lock, which any role that connects can take, no longer decides).
- `risk_runs.orphaned_at`: a reorg that removes the block a run valued no longer deletes the run; it sets
  the reorg's time here and keeps the run and its rows (an analyst may have cited its id).
- `risk_runs.id` is never given again on SQLite either: the table is rebuilt with AUTOINCREMENT, whose
  counter starts above the highest id stored (PostgreSQL's sequence never went back).
- `latest_run` leaves orphaned runs out (and with it every view built on it). The view SQL is frozen here
  as text, like 0003's; the other views are 0003's, re-created unchanged on SQLite, where the rebuilt
  table needs every view that reads it dropped first. PostgreSQL replaces `latest_run` in place (same
  columns), so grants on the views stay as they are.

Downgrade deletes the orphaned runs and their rows (before 0007 a reorg deleted them) and restores 0003's
`latest_run`.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_v3 = importlib.import_module("indexer.store.migrations.versions.0003_analyst_views")

# The latest run per chain among runs whose block is still on the chain: the run that valued the highest
# block; among runs of that block, the one stored last (highest id).
LATEST_RUN = """
CREATE VIEW latest_run AS
SELECT r.id AS run_id, r.chain_id, r.block_number, r.block_timestamp, r.policy_name, r.policy_version,
       r.policy_hash, r.market_state, r.seconds_to_next_open, r.wallets, r.holdings, r.positions,
       r.collateral_usd, r.started_at, r.seconds
FROM risk_runs r
WHERE r.id = (SELECT n.id FROM risk_runs n WHERE n.chain_id = r.chain_id AND n.orphaned_at IS NULL
              ORDER BY n.block_number DESC, n.id DESC LIMIT 1)
"""


def _views(dialect: str, latest_run: str) -> list[str]:
    """0003's views in creation order, with `latest_run` as given."""
    return [latest_run, *_v3.view_sql(dialect)[1:]]


def _drop_views() -> None:
    for name in reversed(_v3.VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    op.create_table(
        "leader_leases",
        sa.Column("chain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("renewed_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("last_tick_at", sa.Float(), nullable=True),
        sa.Column("last_tick_holder", sa.String(), nullable=True),
        sa.Column("synced_block", sa.BigInteger(), nullable=True),
        sa.Column("head_block", sa.BigInteger(), nullable=True),
        sa.Column("head_lag_seconds", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.add_column("risk_runs", sa.Column("orphaned_at", sa.Float(), nullable=True))
        op.execute(LATEST_RUN.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        return
    _drop_views()
    with op.batch_alter_table("risk_runs", recreate="always", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("orphaned_at", sa.Float(), nullable=True))
    for sql in _views(dialect, LATEST_RUN):
        op.execute(sql)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    orphaned = "SELECT id FROM risk_runs WHERE orphaned_at IS NOT NULL"
    for table in ("risk_positions", "risk_wallets", "risk_holdings"):
        op.execute(f"DELETE FROM {table} WHERE run_id IN ({orphaned})")
    op.execute("DELETE FROM risk_runs WHERE orphaned_at IS NOT NULL")
    if dialect == "postgresql":
        op.execute(_v3.LATEST_RUN.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        op.drop_column("risk_runs", "orphaned_at")
    else:
        _drop_views()
        with op.batch_alter_table("risk_runs", recreate="always",
                                  table_kwargs={"sqlite_autoincrement": False}) as batch:
            batch.drop_column("orphaned_at")
        for sql in _views(dialect, _v3.LATEST_RUN):
            op.execute(sql)
    op.drop_table("leader_leases")
