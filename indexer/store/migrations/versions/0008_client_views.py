"""client views: the latest run restricted to the venue's own clients

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09

The desk's SQL surface (docs/sql.md, "Client views"): a client is a wallet with an account on file in
`accounts` (the book as loaded now).

- `client_margin`: one row per (chain, client) with the margin of the chain's latest run; a client the
  run did not value (an account loaded after it) keeps its row, with `in_run` false and the run's figures
  NULL.
- `client_collateral`: every holding of a client in the latest run, with the account's columns.

Both read `latest_run` (0007's: orphaned runs are left out), so a reorg that orphans the latest run moves
them to the run before it, as it moves the other risk views. The latest run is the outer side of each
join (a one-row probe of `risk_runs`), its rows are read through the (run_id, wallet) keys of
`risk_wallets` and `risk_holdings`, and a `WHERE wallet = :w` is an index search (`accounts`' key,
`ix_risk_holdings_wallet`). The SQL is the same on both databases and frozen here as text, like 0003's;
a migration that rebuilds `risk_runs` on SQLite (as 0007 did) drops these views first and re-creates them.
db/roles.sql's grants cover them (SELECT on every table and view, and by default on later ones).
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

CLIENT_MARGIN = """
CREATE VIEW client_margin AS
SELECT r.chain_id, r.run_id, r.block_number, r.block_timestamp, r.policy_name, r.policy_version, r.policy_hash,
       r.market_state,
       a.wallet, a.jurisdiction, a.tier, a.kyc_status,
       (w.wallet IS NOT NULL) AS in_run,
       w.market_value, w.collateral, w.cash, w.upnl, w.equity, w.im, w.mm, w.excess,
       w.equity - w.mm AS buffer_to_liquidation,
       w.equity / NULLIF(w.im, 0) AS equity_to_im,
       w.equity / NULLIF(w.mm, 0) AS equity_to_mm,
       w.status, w.stale_driven, w.unpriced_positions,
       w.l_joint, w.l_indep, w.wrong_way, w.worst_scenario, w.worst_scenario_loss, w.stressed_excess, w.binding,
       w.regime
FROM latest_run r
CROSS JOIN accounts a
LEFT JOIN risk_wallets w ON w.run_id = r.run_id AND w.wallet = a.wallet
"""

CLIENT_COLLATERAL = """
CREATE VIEW client_collateral AS
SELECT r.chain_id, h.run_id, r.block_number, r.block_timestamp, r.policy_name, r.policy_version, r.policy_hash,
       h.wallet, a.jurisdiction, a.tier, a.kyc_status,
       h.token, h.symbol, t.asset_class,
       h.balance_raw, h.balance, h.shares, h.price, h.market_value,
       h.eligible, h.codes, h.code_names,
       CASE WHEN h.codes = 0 THEN 'eligible' ELSE h.code_names END AS reason,
       h.h_base, h.h_vol, h.h_size, h.h_gap, h.h_stale, h.haircut,
       h.collateral_before_caps, h.platform_cut, h.wallet_cut, h.collateral_value,
       h.market_value - h.collateral_value AS value_not_counted,
       h.feed, h.round_id, h.round_age_s, h.market_state, h.action_factor
FROM latest_run r
CROSS JOIN risk_holdings h
JOIN accounts a ON a.wallet = h.wallet
LEFT JOIN tokens t ON t.chain_id = r.chain_id AND t.address = h.token
WHERE h.run_id = r.run_id
"""

# creation order; downgrade drops in reverse
VIEWS = ("client_margin", "client_collateral")


def view_sql() -> list[str]:
    return [CLIENT_MARGIN, CLIENT_COLLATERAL]


def upgrade() -> None:
    for sql in view_sql():
        op.execute(sql)


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
