"""risk results: stale add-on, corporate-action factor, regime, stale-driven status, marks with quality

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

- `risk_runs.notes`: the run's explanation in words (corporate-action adjustments, prices carried across an
  action, inconsistent valuations, stale feeds, positions with no usable mark), one per line.
- `risk_holdings.h_stale`: the graded stale add-on of the holding's feed; `action_factor`: the factor that
  carries its round's price to the block's shares (1 where no corporate action came between them).
- `risk_wallets.regime`: the correlation regime of `l_joint` (`positive` or `negative`); `stale_driven`: the
  status is worse than fresh prices alone would make it; `unpriced_positions`: positions with no usable mark
  (status `unpriced`).
- `risk_positions`: per run and position, the mark used, the feed's price, the adverse move, the round, its
  age and quality, notional, IM, MM and uPnL.

Columns are added in place (no table is rebuilt), so the analyst views stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from indexer.store.types import Uint256

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("risk_runs", sa.Column("notes", sa.Text(), nullable=False, server_default=""))
    op.add_column("risk_holdings", sa.Column("h_stale", sa.Float(), nullable=False, server_default="0"))
    op.add_column("risk_holdings", sa.Column("action_factor", sa.Float(), nullable=False, server_default="1"))
    op.add_column("risk_wallets", sa.Column("regime", sa.String(), nullable=False, server_default="positive"))
    op.add_column("risk_wallets", sa.Column("stale_driven", sa.Boolean(), nullable=False,
                                            server_default=sa.false()))
    op.add_column("risk_wallets", sa.Column("unpriced_positions", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "risk_positions",
        sa.Column("run_id", sa.Integer(), primary_key=True),
        sa.Column("wallet", sa.String(length=42), primary_key=True),
        sa.Column("instrument", sa.String(length=64), primary_key=True),
        sa.Column("feed", sa.String(length=42), nullable=True),
        sa.Column("size", sa.Float(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("mark", sa.Float(), nullable=False),
        sa.Column("mark_price", sa.Float(), nullable=False),
        sa.Column("mark_adverse", sa.Float(), nullable=False),
        sa.Column("mark_quality", sa.String(), nullable=False),
        sa.Column("round_id", Uint256(), nullable=True),
        sa.Column("round_age_s", sa.BigInteger(), nullable=False),
        sa.Column("notional", sa.Float(), nullable=False),
        sa.Column("im", sa.Float(), nullable=False),
        sa.Column("mm", sa.Float(), nullable=False),
        sa.Column("upnl", sa.Float(), nullable=False),
    )
    op.create_index("ix_risk_positions_wallet", "risk_positions", ["wallet", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_risk_positions_wallet", "risk_positions")
    op.drop_table("risk_positions")
    for name in ("unpriced_positions", "stale_driven", "regime"):
        op.drop_column("risk_wallets", name)
    for name in ("action_factor", "h_stale"):
        op.drop_column("risk_holdings", name)
    op.drop_column("risk_runs", "notes")
