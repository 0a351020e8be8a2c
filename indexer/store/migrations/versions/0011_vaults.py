"""ERC-4626 vaults over a configured token: their exchange rate as read, and what a run made of it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

A `[[tokens]]` entry with `vault_asset` is an ERC-4626 vault whose asset is another configured token
(docs/liquidity.md, "ERC-4626 vaults"):

- `tokens.vault_asset`: the asset token's address.
- `vault_rates`: `convertToAssets` of one whole share, `totalAssets` and `totalSupply` read at the end of each
  tick and at every block inside it where the vault's shares or its asset moved to or from it (a row when
  anything changed), with a rebasing asset's multiplier in force at the same block. A reorg deletes the rows
  above the fork.
- `risk_holdings.vault_rate_raw` and `vault_jump`: the rate a run valued a holding of the vault at, and the
  largest move of the rate between two reads in the policy's window (docs/risk.md section 16).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from indexer.store.types import Uint256

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("vault_asset", sa.String(length=42), nullable=True))
    op.create_table(
        "vault_rates",
        sa.Column("chain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vault", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("assets_per_share_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("total_assets_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("total_supply_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("asset_multiplier_raw", Uint256(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "vault", "block_number"),
    )
    op.add_column("risk_holdings", sa.Column("vault_rate_raw", Uint256(precision=78, scale=0), nullable=True))
    op.add_column("risk_holdings", sa.Column("vault_jump", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("risk_holdings", "vault_jump")
    op.drop_column("risk_holdings", "vault_rate_raw")
    op.drop_table("vault_rates")
    op.drop_column("tokens", "vault_asset")
