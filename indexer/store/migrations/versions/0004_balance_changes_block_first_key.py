"""balance_changes keyed block first

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

The primary key of `balance_changes` was (chain_id, token, wallet, block_number, log_index): every
change of a sync landed at a random place of that index, and a backfill spent most of its time
there. It is now (chain_id, block_number, log_index, token, wallet), the same columns and the same
uniqueness, so new changes append at the end of the key like the log facts do. Reading one holder's
history goes through `ix_balance_changes_wallet` (chain_id, wallet, token, block_number) as before.
SQLite cannot alter a primary key: the table is rebuilt with its rows (no view reads it).
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_COLUMNS = "chain_id, token, wallet, block_number, log_index, delta_raw, units_raw"
_INDEX = "CREATE INDEX ix_balance_changes_wallet ON balance_changes (chain_id, wallet, token, block_number)"


def _rekey(key: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE balance_changes DROP CONSTRAINT balance_changes_pkey")
        op.execute(f"ALTER TABLE balance_changes ADD CONSTRAINT balance_changes_pkey PRIMARY KEY ({key})")
        return
    op.execute(f"""CREATE TABLE _balance_changes_rekeyed (
        chain_id INTEGER NOT NULL,
        token VARCHAR(42) NOT NULL,
        wallet VARCHAR(42) NOT NULL,
        block_number BIGINT NOT NULL,
        log_index INTEGER NOT NULL,
        delta_raw VARCHAR(78) NOT NULL,
        units_raw VARCHAR(78) NOT NULL,
        PRIMARY KEY ({key}))""")
    op.execute(f"INSERT INTO _balance_changes_rekeyed ({_COLUMNS}) SELECT {_COLUMNS} FROM balance_changes")
    op.execute("DROP TABLE balance_changes")
    op.execute("ALTER TABLE _balance_changes_rekeyed RENAME TO balance_changes")
    op.execute(_INDEX)


def upgrade() -> None:
    _rekey("chain_id, block_number, log_index, token, wallet")


def downgrade() -> None:
    _rekey("chain_id, token, wallet, block_number, log_index")
