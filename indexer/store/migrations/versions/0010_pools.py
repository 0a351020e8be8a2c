"""DEX pools: the configured pools, their logs, and their state as read

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

The sync reads the `[[pools]]` a configuration lists (Uniswap v3 pools where a configured token trades) like
every other fact (docs/liquidity.md):

- `pools`: each configured pool, and what the chain says it is (tokens, fee, tick spacing, decimals).
- `pool_events`: its Initialize, Mint, Burn and Swap logs, exact (uint256 / int256 columns).
- `pool_states`: slot0 and the in-range liquidity read at the end of each tick whose blocks hold one of the
  pool's events (and at its first), with `ticks_read` saying which ticks were read with it.
- `pool_ticks`: the ticks read at those blocks (liquidityGross, liquidityNet).
- `risk_pools`: per risk run and pool, its state and measures at the run's block (mid price, premium against
  the run's NAV per token, depth at 1/2/5%, volume over 24 h and 7 days).
- `risk_holdings.liquidity_term`, `liquidity_source`, `value_flags`, `value_flag_names` and
  `risk_wallets.liquidity_stress_loss`: the risk method's DEX liquidity terms (docs/risk.md section 15).
- views `pool_state` (each pool in the chain's latest run) and `token_liquidity` (each token's pools
  together: depth and volume summed, the price weighted by 2% depth, against the run's value of one token).

A pool's state at any block is its latest `ticks_read = 'all'` read at or before the block, folded forward
with the events after it (indexer/liquidity/pools.py). A reorg deletes all four kinds of rows above the fork.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from indexer.store.types import Int256, Uint256

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


# The configured pools in the chain's latest run (0007's `latest_run`: orphaned runs are left out).
POOL_STATE = """
CREATE VIEW pool_state AS
SELECT r.chain_id, r.run_id, r.block_number, r.block_timestamp,
       p.pool, p.name, p.token, p.symbol, c.protocol, c.fee, c.tick_spacing, c.token0, c.token1,
       p.sqrt_price_x96, p.tick, p.liquidity_raw,
       p.price_quote, p.quote_usd, p.price_usd, p.nav_usd, p.premium_bp,
       p.depth_1pct, p.depth_2pct, p.depth_5pct, p.depth_2pct_usd,
       p.depth_1pct_raw, p.depth_2pct_raw, p.depth_5pct_raw,
       p.volume_24h, p.volume_7d, p.volume_24h_raw, p.volume_7d_raw, p.swaps_24h, p.swaps_7d,
       p.sale_offered_raw, p.sale_sold_raw, p.sale_proceeds_usd, p.sale_cost
FROM latest_run r
JOIN risk_pools p ON p.run_id = r.run_id
LEFT JOIN pools c ON c.chain_id = r.chain_id AND c.address = p.pool
"""

# Per token in the latest run: its pools together (depth and volume summed, the price weighted by 2% depth
# as the risk engine weighs it, docs/risk.md) against the run's value of one token.
TOKEN_LIQUIDITY = """
CREATE VIEW token_liquidity AS
SELECT r.chain_id, r.run_id, r.block_number, r.block_timestamp, p.token, p.symbol,
       COUNT(*) AS pools,
       SUM(p.depth_1pct) AS depth_1pct, SUM(p.depth_2pct) AS depth_2pct, SUM(p.depth_5pct) AS depth_5pct,
       SUM(p.depth_2pct_usd) AS depth_2pct_usd,
       SUM(p.volume_24h) AS volume_24h, SUM(p.volume_7d) AS volume_7d,
       SUM(p.swaps_24h) AS swaps_24h, SUM(p.swaps_7d) AS swaps_7d,
       MAX(p.nav_usd) AS nav_usd,
       CASE WHEN SUM(CASE WHEN p.price_usd IS NOT NULL THEN p.depth_2pct ELSE 0 END) > 0
            THEN SUM(CASE WHEN p.price_usd IS NOT NULL THEN p.price_usd * p.depth_2pct ELSE 0 END)
                 / SUM(CASE WHEN p.price_usd IS NOT NULL THEN p.depth_2pct ELSE 0 END)
            ELSE AVG(p.price_usd) END AS price_usd,
       MIN(p.premium_bp) AS min_premium_bp, MAX(p.premium_bp) AS max_premium_bp,
       SUM(p.sale_proceeds_usd) AS sale_proceeds_usd,
       1 - SUM(p.sale_proceeds_usd) / NULLIF(MAX(p.nav_usd) * SUM(p.sale_offered), 0) AS sale_cost
FROM latest_run r
JOIN risk_pools p ON p.run_id = r.run_id
GROUP BY r.chain_id, r.run_id, r.block_number, r.block_timestamp, p.token, p.symbol
"""


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("chain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("protocol", sa.String(), nullable=False),
        sa.Column("quote_feed", sa.String(), nullable=True),
        sa.Column("token0", sa.String(length=42), nullable=True),
        sa.Column("token1", sa.String(length=42), nullable=True),
        sa.Column("fee", sa.Integer(), nullable=True),
        sa.Column("tick_spacing", sa.Integer(), nullable=True),
        sa.Column("decimals0", sa.Integer(), nullable=True),
        sa.Column("decimals1", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "address"),
    )
    op.create_table(
        "pool_events",
        sa.Column("chain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("log_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("pool", sa.String(length=42), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=True),
        sa.Column("recipient", sa.String(length=42), nullable=True),
        sa.Column("owner", sa.String(length=42), nullable=True),
        sa.Column("tick_lower", sa.Integer(), nullable=True),
        sa.Column("tick_upper", sa.Integer(), nullable=True),
        sa.Column("amount_raw", Uint256(precision=78, scale=0), nullable=True),
        sa.Column("amount0_raw", Int256(precision=78, scale=0), nullable=True),
        sa.Column("amount1_raw", Int256(precision=78, scale=0), nullable=True),
        sa.Column("sqrt_price_x96", Uint256(precision=78, scale=0), nullable=True),
        sa.Column("liquidity_raw", Uint256(precision=78, scale=0), nullable=True),
        sa.Column("tick", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
    )
    op.create_index("ix_pool_events_pool_block", "pool_events", ["chain_id", "pool", "block_number"])
    op.create_table(
        "pool_states",
        sa.Column("chain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pool", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("sqrt_price_x96", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("tick", sa.Integer(), nullable=False),
        sa.Column("liquidity_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("ticks_read", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "pool", "block_number"),
    )
    op.create_table(
        "pool_ticks",
        sa.Column("chain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pool", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tick", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("liquidity_gross_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("liquidity_net_raw", Int256(precision=78, scale=0), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "pool", "block_number", "tick"),
    )
    op.create_table(
        "risk_pools",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pool", sa.String(length=42), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("sqrt_price_x96", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("tick", sa.Integer(), nullable=False),
        sa.Column("liquidity_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("price_quote", sa.Float(), nullable=False),
        sa.Column("quote_usd", sa.Float(), nullable=True),
        sa.Column("price_usd", sa.Float(), nullable=True),
        sa.Column("nav_usd", sa.Float(), nullable=True),
        sa.Column("premium_bp", sa.Float(), nullable=True),
        sa.Column("depth_1pct_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("depth_2pct_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("depth_5pct_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("depth_2pct_usd", sa.Float(), nullable=True),
        sa.Column("volume_24h_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("volume_7d_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("swaps_24h", sa.Integer(), nullable=False),
        sa.Column("swaps_7d", sa.Integer(), nullable=False),
        sa.Column("sale_offered_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("sale_sold_raw", Uint256(precision=78, scale=0), nullable=False),
        sa.Column("sale_proceeds_usd", sa.Float(), nullable=True),
        sa.Column("sale_cost", sa.Float(), nullable=True),
        sa.Column("depth_1pct", sa.Float(), nullable=False),
        sa.Column("depth_2pct", sa.Float(), nullable=False),
        sa.Column("depth_5pct", sa.Float(), nullable=False),
        sa.Column("volume_24h", sa.Float(), nullable=False),
        sa.Column("volume_7d", sa.Float(), nullable=False),
        sa.Column("sale_offered", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "pool"),
    )
    op.add_column("risk_holdings", sa.Column("liquidity_term", sa.Float(), nullable=False, server_default="0"))
    op.add_column("risk_holdings", sa.Column("liquidity_source", sa.String(), nullable=False,
                                             server_default="configured"))
    op.add_column("risk_holdings", sa.Column("value_flags", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("risk_holdings", sa.Column("value_flag_names", sa.String(), nullable=False, server_default=""))
    op.add_column("risk_wallets", sa.Column("liquidity_stress_loss", sa.Float(), nullable=False, server_default="0"))
    op.execute(POOL_STATE)
    op.execute(TOKEN_LIQUIDITY)


def downgrade() -> None:
    op.drop_column("risk_wallets", "liquidity_stress_loss")
    for column in ("value_flag_names", "value_flags", "liquidity_source", "liquidity_term"):
        op.drop_column("risk_holdings", column)
    op.execute("DROP VIEW token_liquidity")
    op.execute("DROP VIEW pool_state")
    op.drop_table("risk_pools")
    op.drop_table("pool_ticks")
    op.drop_table("pool_states")
    op.drop_index("ix_pool_events_pool_block", table_name="pool_events")
    op.drop_table("pool_events")
    op.drop_table("pools")
