"""webhook alerts: what was compared and alerted, deliveries pending, dead letters

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10

The service's leader posts an event to each `[alerts] webhook_urls` entry when a wallet's margin status
worsens between two consecutive risk runs or a feed turns stale (service/alerts.py, store/alerts.py).

- `alert_cursors`: per chain, the last risk run compared; a restart compares the next run with it, so no
  comparison is made twice (and no event found twice).
- `alert_feed_states`: per chain and feed, the staleness last alerted.
- `alert_outbox`: deliveries not yet made, one row per (event, URL), queued in the transaction that moved
  the cursor or the feed state; deleted once the receiver answered 2xx.
- `alert_dead_letters`: deliveries that failed their last try, with the last error and the attempts, for
  an operator to list and replay (`collateral-indexer alerts dead-letters`, `alerts replay`).

Ids of the outbox and the dead letters are never given twice (AUTOINCREMENT on SQLite).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_cursors",
        sa.Column("chain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("compared_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id"),
    )
    op.create_table(
        "alert_feed_states",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("feed", sa.String(), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "feed"),
    )
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ux_alert_outbox_event_url", "alert_outbox", ["event_id", "url"], unique=True)
    op.create_index("ix_alert_outbox_due", "alert_outbox", ["chain_id", "url", "next_attempt_at"])
    op.create_table(
        "alert_dead_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.Column("replayed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("alert_dead_letters")
    op.drop_index("ix_alert_outbox_due", table_name="alert_outbox")
    op.drop_index("ux_alert_outbox_event_url", table_name="alert_outbox")
    op.drop_table("alert_outbox")
    op.drop_table("alert_feed_states")
    op.drop_table("alert_cursors")
