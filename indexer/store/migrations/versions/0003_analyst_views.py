"""analyst views

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

The SQL surface for analysts (docs/sql.md): the views `latest_run`, `holders`, `price_latest`,
`wallet_collateral`, `wallet_margin` and `token_exposure`, with the same column names on SQLite and
PostgreSQL; the wallet index of `balances` turned round so that `WHERE wallet = :w` alone is an
index search (it was (chain_id, wallet); (wallet, chain_id) serves both lookups at the same write
cost), and an index on risk_runs(chain_id, block_number, id) for the latest run and runs as of a block.

The view SQL lives here as text, frozen with the migration: a later change to a view is a new
migration that drops and re-creates it. Only the numeric conversions differ by dialect:
- PostgreSQL: `*_raw` columns are NUMERIC(78,0); token amounts are exact NUMERIC (scale 40, then
  `trim_scale`), prices and risk figures double precision;
- SQLite: `*_raw` columns are 78-digit zero-padded text (store/types.py); amounts are REAL, the
  power of ten is built as text ('1' followed by `decimals` zeros) so no math extension is needed,
  and "> 0" is a text comparison with 78 zeros. Int256 text of a negative answer is never cast:
  `price` is NULL unless the answer is positive, on both databases.
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_ZEROS = "0" * 78

_DIALECT = {
    "postgresql": {
        # exact token units: 78 integer digits + 40 decimals, then trailing zeros trimmed
        "units": "trim_scale(CAST({raw} AS numeric(120, 40)) / power(CAST(10 AS numeric), {dec}))",
        "wad": "trim_scale(CAST({raw} AS numeric(120, 40)) / CAST(1000000000000000000 AS numeric))",
        "float": "CAST({raw} AS double precision) / power(CAST(10 AS double precision), {dec})",
        "positive": "{raw} > 0",
        "one_wad": "CAST(1 AS numeric)",
    },
    "sqlite": {
        "units": "CAST({raw} AS REAL) / CAST('1' || substr('" + _ZEROS + "', 1, {dec}) AS REAL)",
        "wad": "CAST({raw} AS REAL) / 1e18",
        "float": "CAST({raw} AS REAL) / CAST('1' || substr('" + _ZEROS + "', 1, {dec}) AS REAL)",
        "positive": "{raw} > '" + _ZEROS + "'",
        "one_wad": "1.0",
    },
}


def _f(dialect: str, kind: str, raw: str, dec: str = "") -> str:
    return _DIALECT[dialect][kind].format(raw=raw, dec=dec)


# The latest run per chain: the run that valued the highest block; among runs of that block, the one
# stored last (highest id). A re-run at a past block therefore never hides the current state.
LATEST_RUN = """
CREATE VIEW latest_run AS
SELECT r.id AS run_id, r.chain_id, r.block_number, r.block_timestamp, r.policy_name, r.policy_version,
       r.policy_hash, r.market_state, r.seconds_to_next_open, r.wallets, r.holdings, r.positions,
       r.collateral_usd, r.started_at, r.seconds
FROM risk_runs r
WHERE r.id = (SELECT n.id FROM risk_runs n WHERE n.chain_id = r.chain_id
              ORDER BY n.block_number DESC, n.id DESC LIMIT 1)
"""


def holders(d: str) -> str:
    units = _f(d, "units", "b.balance_raw", "t.decimals")
    mult = _f(d, "wad", "ts.multiplier_raw")
    return f"""
CREATE VIEW holders AS
SELECT b.chain_id, b.token, t.symbol, t.asset_class, t.accounting, t.decimals, b.wallet,
       b.balance_raw, b.shares_raw, b.units_raw,
       {units} AS balance,
       {mult} AS multiplier,
       CASE WHEN t.accounting = 'ui_multiplier'
            THEN {units} * COALESCE({mult}, {_f(d, "one_wad", "")})
            ELSE {units} END AS underlying_shares,
       ts.block_number AS token_state_block,
       b.block_number
FROM balances b
JOIN tokens t ON t.chain_id = b.chain_id AND t.address = b.token
LEFT JOIN token_state ts ON ts.chain_id = b.chain_id AND ts.token = b.token
     AND ts.block_number = (SELECT max(s.block_number) FROM token_state s
                            WHERE s.chain_id = b.chain_id AND s.token = b.token)
WHERE {_f(d, "positive", "b.balance_raw")}
"""


def price_latest(d: str) -> str:
    price = _f(d, "float", "p.answer_raw", "f.decimals")
    return f"""
CREATE VIEW price_latest AS
WITH head AS (
    SELECT c.chain_id, c.block_number AS head_block,
           (SELECT max(k.timestamp) FROM blocks k
            WHERE k.chain_id = c.chain_id AND k.number <= c.block_number) AS head_timestamp
    FROM sync_checkpoints c
    WHERE c.name = 'head'
)
SELECT f.chain_id, f.address AS feed, f.name AS feed_name, f.kind, f.quote, f.calendar,
       f.token AS token_symbol, f.decimals, f.heartbeat,
       p.round_id, p.answer_raw,
       CASE WHEN {_f(d, "positive", "p.answer_raw")} THEN {price} END AS price,
       p.started_at, p.updated_at, p.answered_in_round, p.quality, p.block_number AS round_block,
       h.head_block, h.head_timestamp,
       h.head_timestamp - p.updated_at AS age_s,
       CASE WHEN f.calendar = '24/7' THEN 'continuous' ELSE lr.market_state END AS market_state,
       lr.block_number AS market_state_block,
       (h.head_timestamp - p.updated_at > f.heartbeat) AS stale
FROM feeds f
JOIN price_rounds p ON p.chain_id = f.chain_id AND p.feed = f.address
     AND p.round_id = (SELECT max(q.round_id) FROM price_rounds q
                       WHERE q.chain_id = f.chain_id AND q.feed = f.address)
LEFT JOIN head h ON h.chain_id = f.chain_id
LEFT JOIN latest_run lr ON lr.chain_id = f.chain_id
"""


WALLET_COLLATERAL = """
CREATE VIEW wallet_collateral AS
SELECT r.chain_id, h.run_id, r.block_number, r.block_timestamp, r.policy_name, r.policy_version, r.policy_hash,
       h.wallet, h.token, h.symbol, t.asset_class,
       h.balance_raw, h.balance, h.shares, h.price, h.market_value,
       h.eligible, h.codes, h.code_names,
       CASE WHEN h.codes = 0 THEN 'eligible' ELSE h.code_names END AS reason,
       h.h_base, h.h_vol, h.h_size, h.h_gap, h.haircut,
       h.collateral_before_caps, h.platform_cut, h.wallet_cut, h.collateral_value,
       h.market_value - h.collateral_value AS value_not_counted,
       h.feed, h.round_id, h.round_age_s, h.market_state
FROM latest_run r
CROSS JOIN risk_holdings h
LEFT JOIN tokens t ON t.chain_id = r.chain_id AND t.address = h.token
WHERE h.run_id = r.run_id
"""

WALLET_MARGIN = """
CREATE VIEW wallet_margin AS
SELECT r.chain_id, w.run_id, r.block_number, r.block_timestamp, r.policy_name, r.policy_version, r.policy_hash,
       r.market_state,
       w.wallet, a.jurisdiction, a.tier, a.kyc_status,
       w.market_value, w.collateral, w.cash, w.upnl, w.equity, w.im, w.mm, w.excess,
       w.equity - w.mm AS buffer_to_liquidation,
       w.equity / NULLIF(w.mm, 0) AS equity_to_mm,
       w.status, w.l_joint, w.l_indep, w.wrong_way, w.worst_scenario, w.worst_scenario_loss,
       w.stressed_excess, w.binding
FROM latest_run r
CROSS JOIN risk_wallets w
LEFT JOIN accounts a ON a.wallet = w.wallet
WHERE w.run_id = r.run_id
"""


def token_exposure(d: str) -> str:
    supply = _f(d, "float", "ts.total_supply_raw", "t.decimals")
    return f"""
CREATE VIEW token_exposure AS
WITH ranked AS (
    SELECT r.chain_id, r.run_id, r.block_number, r.block_timestamp, x.token, x.symbol, x.wallet,
           x.balance, x.shares, x.price, x.market_value, x.collateral_before_caps, x.platform_cut, x.wallet_cut,
           x.collateral_value, x.eligible, x.haircut, x.h_base, x.h_vol, x.h_size, x.h_gap,
           ROW_NUMBER() OVER (PARTITION BY x.run_id, x.token ORDER BY x.balance DESC, x.wallet) AS holder_rank
    FROM latest_run r
    CROSS JOIN risk_holdings x
    WHERE x.run_id = r.run_id AND x.balance > 0
),
per_token AS (
    SELECT chain_id, run_id, block_number, block_timestamp, token, symbol,
           COUNT(*) AS holders,
           SUM(CASE WHEN eligible THEN 1 ELSE 0 END) AS eligible_holders,
           SUM(balance) AS total_balance,
           SUM(shares) AS total_shares,
           MAX(price) AS price,
           SUM(market_value) AS market_value,
           SUM(CASE WHEN eligible THEN market_value ELSE 0 END) AS eligible_market_value,
           SUM(collateral_before_caps) AS collateral_before_caps,
           SUM(platform_cut) AS platform_cut,
           SUM(wallet_cut) AS wallet_cut,
           SUM(collateral_value) AS collateral_value,
           SUM(CASE WHEN eligible THEN balance ELSE 0 END) AS pledged_balance,
           SUM(CASE WHEN holder_rank = 1 THEN balance ELSE 0 END) AS top1_balance,
           SUM(CASE WHEN holder_rank <= 10 THEN balance ELSE 0 END) AS top10_balance,
           SUM(CASE WHEN eligible THEN haircut * market_value ELSE 0 END) AS w_haircut,
           SUM(CASE WHEN eligible THEN h_base * market_value ELSE 0 END) AS w_h_base,
           SUM(CASE WHEN eligible THEN h_vol * market_value ELSE 0 END) AS w_h_vol,
           SUM(CASE WHEN eligible THEN h_size * market_value ELSE 0 END) AS w_h_size,
           SUM(CASE WHEN eligible THEN h_gap * market_value ELSE 0 END) AS w_h_gap
    FROM ranked
    GROUP BY chain_id, run_id, block_number, block_timestamp, token, symbol
)
SELECT p.chain_id, p.run_id, p.block_number, p.block_timestamp, p.token, p.symbol,
       t.asset_class, t.accounting, t.decimals,
       p.holders, p.eligible_holders, p.total_balance, p.total_shares,
       ts.total_supply_raw, {supply} AS total_supply,
       p.total_balance / NULLIF({supply}, 0) AS held_share_of_supply,
       p.price, p.market_value, p.eligible_market_value, p.collateral_before_caps,
       p.platform_cut, p.wallet_cut, p.collateral_value,
       p.pledged_balance,
       p.pledged_balance / NULLIF({supply}, 0) AS pledged_share_of_supply,
       p.top1_balance / NULLIF(p.total_balance, 0) AS top1_share,
       p.top10_balance / NULLIF(p.total_balance, 0) AS top10_share,
       p.w_haircut / NULLIF(p.eligible_market_value, 0) AS avg_haircut,
       p.w_h_base / NULLIF(p.eligible_market_value, 0) AS avg_h_base,
       p.w_h_vol / NULLIF(p.eligible_market_value, 0) AS avg_h_vol,
       p.w_h_size / NULLIF(p.eligible_market_value, 0) AS avg_h_size,
       p.w_h_gap / NULLIF(p.eligible_market_value, 0) AS avg_h_gap,
       p.collateral_value / NULLIF(p.market_value, 0) AS advance_rate
FROM per_token p
LEFT JOIN tokens t ON t.chain_id = p.chain_id AND t.address = p.token
LEFT JOIN token_state ts ON ts.chain_id = p.chain_id AND ts.token = p.token
     AND ts.block_number = (SELECT max(s.block_number) FROM token_state s
                            WHERE s.chain_id = p.chain_id AND s.token = p.token
                              AND s.block_number <= p.block_number)
"""


# The run-based views join with CROSS JOIN plus a WHERE on run_id: the same as an inner join for
# PostgreSQL, and on SQLite it keeps the one-row latest run as the outer loop, so the run's rows are
# read through the (run_id, ...) primary key rather than by scanning the holdings of every run.

# creation order; downgrade drops in reverse (views built on latest_run go first)
VIEWS = ("latest_run", "holders", "price_latest", "wallet_collateral", "wallet_margin", "token_exposure")


def view_sql(dialect: str) -> list[str]:
    d = "postgresql" if dialect == "postgresql" else "sqlite"
    return [LATEST_RUN, holders(d), price_latest(d), WALLET_COLLATERAL, WALLET_MARGIN, token_exposure(d)]


def upgrade() -> None:
    with op.batch_alter_table('balances', schema=None) as batch_op:
        batch_op.drop_index('ix_balances_wallet')
        batch_op.create_index('ix_balances_wallet', ['wallet', 'chain_id'], unique=False)
    with op.batch_alter_table('risk_runs', schema=None) as batch_op:
        batch_op.create_index('ix_risk_runs_chain_block', ['chain_id', 'block_number', 'id'], unique=False)
    for sql in view_sql(op.get_bind().dialect.name):
        op.execute(sql)


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table('risk_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_risk_runs_chain_block')
    with op.batch_alter_table('balances', schema=None) as batch_op:
        batch_op.drop_index('ix_balances_wallet')
        batch_op.create_index('ix_balances_wallet', ['chain_id', 'wallet'], unique=False)
