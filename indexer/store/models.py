"""The schema: one SQLModel class per table, the same on SQLite and PostgreSQL.

Facts (what the chain said) are keyed by (chain_id, block_number, log_index) or (chain_id, feed,
round_id) and written idempotently. Derived rows (balances, balance changes, token state, account
status) can be rebuilt from facts; a reorg deletes both above the fork point in one transaction.
Addresses are lowercase 0x-hex text; `*_raw` columns are exact integers (see store/types.py).
Column names listed in docs/sql.md are a contract with analysts: change them with a migration.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, PrimaryKeyConstraint, Text
from sqlmodel import Field, SQLModel

from indexer.store.types import Int256, Uint256


def U256(nullable: bool = False) -> Column:
    return Column(Uint256(), nullable=nullable)


def I256(nullable: bool = False) -> Column:
    return Column(Int256(), nullable=nullable)


# ---------------------------------------------------------------- configuration mirrored in SQL
class Token(SQLModel, table=True):
    __tablename__ = "tokens"
    chain_id: int = Field(primary_key=True)
    address: str = Field(primary_key=True, max_length=42)
    symbol: str
    name: str = ""
    decimals: int
    underlying: str = ""
    asset_class: str
    accounting: str  # plain | ui_multiplier | rebasing_shares
    balance_source: str = "logs"  # logs | poll
    feed: str | None = None
    reserve_feed: str | None = None
    vault_asset: str | None = Field(default=None, max_length=42)  # an ERC-4626 vault's asset token (0011)


class Feed(SQLModel, table=True):
    __tablename__ = "feeds"
    chain_id: int = Field(primary_key=True)
    address: str = Field(primary_key=True, max_length=42)
    name: str
    kind: str  # stock | crypto | reserve | stablecoin
    quote: str | None = None  # per_share | per_token
    decimals: int
    heartbeat: int
    calendar: str
    token: str | None = None


class Pool(SQLModel, table=True):
    """A configured DEX pool (0010): the configuration's part, and what the chain says it is (token0, token1,
    fee, spacing, decimals: written by the sync when it starts, None until then)."""

    __tablename__ = "pools"
    chain_id: int = Field(primary_key=True)
    address: str = Field(primary_key=True, max_length=42)
    name: str
    token: str = Field(max_length=42)  # the configured token it trades
    protocol: str = "uniswap_v3"
    quote_feed: str | None = None
    token0: str | None = Field(default=None, max_length=42)
    token1: str | None = Field(default=None, max_length=42)
    fee: int | None = None  # pips (hundredths of a basis point)
    tick_spacing: int | None = None
    decimals0: int | None = None
    decimals1: int | None = None


# ---------------------------------------------------------------- facts
class Block(SQLModel, table=True):
    __tablename__ = "blocks"
    chain_id: int = Field(primary_key=True)
    number: int = Field(primary_key=True, sa_type=BigInteger)
    hash: str = Field(max_length=66)
    parent_hash: str = Field(max_length=66)
    timestamp: int = Field(sa_type=BigInteger)


class _LogFact(SQLModel):
    """The key every log-derived fact shares: a log is identified by its chain, block and index."""

    chain_id: int = Field(primary_key=True)
    block_number: int = Field(primary_key=True, sa_type=BigInteger)
    log_index: int = Field(primary_key=True)
    tx_hash: str = Field(max_length=66)


class _Movement(_LogFact):
    token: str = Field(max_length=42)
    from_address: str = Field(max_length=42)
    to_address: str = Field(max_length=42)


class Transfer(_Movement, table=True):
    __tablename__ = "transfers"
    __table_args__ = (Index("ix_transfers_token_block", "chain_id", "token", "block_number"),
                      Index("ix_transfers_to", "chain_id", "to_address"),
                      Index("ix_transfers_from", "chain_id", "from_address"))
    amount_raw: int = Field(sa_column=U256())


class ShareTransfer(_Movement, table=True):
    """TransferShares logs of `rebasing_shares` tokens: the exact share movements."""

    __tablename__ = "share_transfers"
    __table_args__ = (Index("ix_share_transfers_token_block", "chain_id", "token", "block_number"),)
    shares_raw: int = Field(sa_column=U256())


class TokenEvent(_LogFact, table=True):
    """Every other token or list event the indexer understands, with its decoded arguments as JSON."""

    __tablename__ = "token_events"
    __table_args__ = (Index("ix_token_events_contract", "chain_id", "contract", "block_number"),)
    contract: str = Field(max_length=42)
    event: str  # Paused, Unpaused, UIMultiplierUpdated, MultiplierScheduled, AddressFrozen, ...
    args: str  # JSON object; integers as decimal strings


class PriceRound(SQLModel, table=True):
    __tablename__ = "price_rounds"
    __table_args__ = (Index("ix_price_rounds_feed_updated", "chain_id", "feed", "updated_at"),)
    chain_id: int = Field(primary_key=True)
    feed: str = Field(primary_key=True, max_length=42)
    round_id: int = Field(sa_column=Column(Uint256(), primary_key=True))
    answer_raw: int = Field(sa_column=I256())
    started_at: int = Field(sa_type=BigInteger)
    updated_at: int = Field(sa_type=BigInteger)
    answered_in_round: int = Field(sa_column=U256())
    block_number: int = Field(sa_type=BigInteger)  # the block the round was read at
    quality: str = "ok"  # ok | non_positive | no_update_time | carried_over (answeredInRound < roundId)
    phase: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # round_id >> 64 (0005)


class PoolEvent(_LogFact, table=True):
    """A pool's Initialize, Mint, Burn or Swap log (0010), exact; the columns an event does not have are null.
    `amount_raw`: a position's liquidity change (Mint, Burn); `amount0_raw` / `amount1_raw`: the pool's
    balance change of each token (signed for a Swap: positive into the pool)."""

    __tablename__ = "pool_events"
    __table_args__ = (Index("ix_pool_events_pool_block", "chain_id", "pool", "block_number"),)
    pool: str = Field(max_length=42)
    event: str  # Initialize | Mint | Burn | Swap
    sender: str | None = Field(default=None, max_length=42)
    recipient: str | None = Field(default=None, max_length=42)
    owner: str | None = Field(default=None, max_length=42)
    tick_lower: int | None = None
    tick_upper: int | None = None
    amount_raw: int | None = Field(default=None, sa_column=U256(nullable=True))
    amount0_raw: int | None = Field(default=None, sa_column=I256(nullable=True))
    amount1_raw: int | None = Field(default=None, sa_column=I256(nullable=True))
    sqrt_price_x96: int | None = Field(default=None, sa_column=U256(nullable=True))
    liquidity_raw: int | None = Field(default=None, sa_column=U256(nullable=True))
    tick: int | None = None


# ---------------------------------------------------------------- derived
class PoolStateRead(SQLModel, table=True):
    """A pool's slot0 and in-range liquidity read at a synced block (0010): at the end of each tick whose
    blocks hold one of its events, and at its first. `ticks_read`: `all` (every initialized tick was read
    into `pool_ticks` at this block: a start for the fold) or `touched` (only the ticks the tick's Mint and
    Burn logs changed, to check the fold). `note`: what the read contradicted in the fold, if anything."""

    __tablename__ = "pool_states"
    chain_id: int = Field(primary_key=True)
    pool: str = Field(primary_key=True, max_length=42)
    block_number: int = Field(primary_key=True, sa_type=BigInteger)
    sqrt_price_x96: int = Field(sa_column=U256())
    tick: int
    liquidity_raw: int = Field(sa_column=U256())
    ticks_read: str  # all | touched
    note: str | None = None


class VaultRate(SQLModel, table=True):
    """An ERC-4626 vault's exchange rate read at a synced block (0011): at the end of each tick and at every
    block inside it where the vault's shares or its asset moved to or from it, a row when anything changed.
    `asset_multiplier_raw`: a rebasing asset's multiplier in force at the same block (None: not rebasing)."""

    __tablename__ = "vault_rates"
    chain_id: int = Field(primary_key=True)
    vault: str = Field(primary_key=True, max_length=42)
    block_number: int = Field(primary_key=True, sa_type=BigInteger)
    block_timestamp: int = Field(sa_type=BigInteger)
    assets_per_share_raw: int = Field(sa_column=U256())  # convertToAssets(10**decimals)
    total_assets_raw: int = Field(sa_column=U256())
    total_supply_raw: int = Field(sa_column=U256())
    asset_multiplier_raw: int | None = Field(default=None, sa_column=U256(nullable=True))


class PoolTick(SQLModel, table=True):
    """An initialized tick's liquidity as read at a block of `pool_states` (0010)."""

    __tablename__ = "pool_ticks"
    chain_id: int = Field(primary_key=True)
    pool: str = Field(primary_key=True, max_length=42)
    block_number: int = Field(primary_key=True, sa_type=BigInteger)
    tick: int = Field(primary_key=True)
    liquidity_gross_raw: int = Field(sa_column=U256())
    liquidity_net_raw: int = Field(sa_column=I256())


class BalanceChange(SQLModel, table=True):
    """One row per movement of a holder's event-sourced units, with the running total.

    Units are raw token units for `plain` and `ui_multiplier` tokens, and shares for
    `rebasing_shares` tokens (their balances move with the multiplier between rows).
    """

    __tablename__ = "balance_changes"
    # keyed block first (0004): a sync appends at the end of the key; one holder's history is an index search
    __table_args__ = (PrimaryKeyConstraint("chain_id", "block_number", "log_index", "token", "wallet"),
                      Index("ix_balance_changes_wallet", "chain_id", "wallet", "token", "block_number"))
    chain_id: int = Field(primary_key=True)
    token: str = Field(primary_key=True, max_length=42)
    wallet: str = Field(primary_key=True, max_length=42)
    block_number: int = Field(primary_key=True, sa_type=BigInteger)
    log_index: int = Field(primary_key=True)
    delta_raw: int = Field(sa_column=I256())
    units_raw: int = Field(sa_column=U256())


class Balance(SQLModel, table=True):
    """Current balance per (token, wallet): `balance_raw` equals balanceOf at `block_number`."""

    __tablename__ = "balances"
    __table_args__ = (Index("ix_balances_wallet", "wallet", "chain_id"),)  # wallet first (0003)
    chain_id: int = Field(primary_key=True)
    token: str = Field(primary_key=True, max_length=42)
    wallet: str = Field(primary_key=True, max_length=42)
    balance_raw: int = Field(sa_column=U256())
    shares_raw: int | None = Field(default=None, sa_column=U256(nullable=True))
    units_raw: int = Field(sa_column=U256())  # event-sourced units (raw for plain/ui, shares for rebasing)
    block_number: int = Field(sa_type=BigInteger)


class TokenState(SQLModel, table=True):
    """Token state read at a synced block (a row when anything changed)."""

    __tablename__ = "token_state"
    chain_id: int = Field(primary_key=True)
    token: str = Field(primary_key=True, max_length=42)
    block_number: int = Field(primary_key=True, sa_type=BigInteger)
    block_timestamp: int = Field(sa_type=BigInteger)
    multiplier_raw: int = Field(sa_column=U256())  # in force at the block (uiMultiplier or getCurrentMultiplier)
    base_multiplier_raw: int | None = Field(default=None, sa_column=U256(nullable=True))
    new_multiplier_raw: int | None = Field(default=None, sa_column=U256(nullable=True))
    activation_time: int | None = Field(default=None, sa_type=BigInteger)
    fee_per_period_raw: int | None = Field(default=None, sa_column=U256(nullable=True))
    period_length: int | None = Field(default=None, sa_type=BigInteger)
    last_time_fee_applied: int | None = Field(default=None, sa_type=BigInteger)
    paused: bool = False
    total_supply_raw: int = Field(sa_column=U256())
    multiplier_nonce: int | None = Field(default=None, sa_column=U256(nullable=True))  # (0005)
    last_multiplier_nonce: int | None = Field(default=None, sa_column=U256(nullable=True))
    new_multiplier_nonce: int | None = Field(default=None, sa_column=U256(nullable=True))
    oracle_paused: bool | None = None  # ERC-8056 tokens' oraclePaused()


class AccountStatus(SQLModel, table=True):
    """Frozen (per token) and sanctioned (per sanctions list) wallets, as of `block_number`."""

    __tablename__ = "account_status"
    chain_id: int = Field(primary_key=True)
    contract: str = Field(primary_key=True, max_length=42)  # the token, or the sanctions list
    wallet: str = Field(primary_key=True, max_length=42)
    frozen: bool = False
    sanctioned: bool = False
    block_number: int = Field(sa_type=BigInteger)


class ReconcileMismatch(SQLModel, table=True):
    __tablename__ = "reconcile_mismatches"
    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    token: str = Field(max_length=42)
    wallet: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger)
    stored_raw: int = Field(sa_column=U256())
    chain_raw: int = Field(sa_column=U256())
    detected_at: int = Field(sa_type=BigInteger)
    repaired: bool = False


class SyncIssue(SQLModel, table=True):
    """A recorded, explained problem with one contract or feed; the service carries on with the rest."""

    __tablename__ = "sync_issues"
    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    contract: str = Field(max_length=42)
    kind: str
    message: str
    block_number: int = Field(sa_type=BigInteger)
    seen_at: int = Field(sa_type=BigInteger)


class SyncCheckpoint(SQLModel, table=True):
    __tablename__ = "sync_checkpoints"
    chain_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True)  # "head" for the main pipeline
    block_number: int = Field(sa_type=BigInteger)
    block_hash: str = Field(max_length=66)
    updated_at: int = Field(sa_type=BigInteger)


class LeaderLease(SQLModel, table=True):
    """Who writes for a chain (0007): the service instance holding the lease, and the last successful sync
    tick of the chain's leader. Only the schema owner writes it (db/roles.sql gives `analyst` SELECT).

    `token` (the fencing token) grows by one at every takeover; every write transaction of the service
    checks it before its commit, so an instance that lost the lease writes nothing. Times are unix seconds
    of the database's clock (PostgreSQL) or the host's (SQLite). `expires_at` is NULL on SQLite, where
    the lease is held as long as the holder's process holds the database's file lock."""

    __tablename__ = "leader_leases"
    chain_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    holder: str  # the instance: host:pid:random
    token: int = Field(sa_type=BigInteger)
    acquired_at: float
    renewed_at: float
    expires_at: float | None = None
    last_tick_at: float | None = None  # the newest successful sync tick of whichever instance led
    last_tick_holder: str | None = None
    synced_block: int | None = Field(default=None, sa_type=BigInteger)  # after that tick
    head_block: int | None = Field(default=None, sa_type=BigInteger)  # the node's head seen then
    head_lag_seconds: int | None = Field(default=None, sa_type=BigInteger)  # chain time between the two


# ---------------------------------------------------------------- webhook alerts (0009, service/alerts.py)
class AlertCursor(SQLModel, table=True):
    """Per chain, the last risk run the alerts compared: the next run of the same policy is compared with it,
    so a restart neither repeats a comparison nor skips one. Written by the leader only (fenced)."""

    __tablename__ = "alert_cursors"
    chain_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    run_id: int = Field(sa_type=BigInteger)
    compared_at: float  # unix seconds (the database's clock on PostgreSQL)


class AlertFeedState(SQLModel, table=True):
    """Per chain and feed, the staleness last alerted: a feed turns stale (or recovers) once, not at every
    watch, and not again after a restart."""

    __tablename__ = "alert_feed_states"
    chain_id: int = Field(primary_key=True)
    feed: str = Field(primary_key=True)  # the feed's name
    stale: bool
    updated_at: int | None = Field(default=None, sa_type=BigInteger)  # its latest round's updatedAt then
    block_number: int = Field(sa_type=BigInteger)  # the synced block of that watch
    changed_at: float


class AlertOutbox(SQLModel, table=True):
    """Deliveries not yet made: one row per (event, webhook URL), queued in the transaction that found the
    event and deleted when the receiver answered 2xx, or moved to `alert_dead_letters` after the last try."""

    __tablename__ = "alert_outbox"
    __table_args__ = (Index("ux_alert_outbox_event_url", "event_id", "url", unique=True),
                      Index("ix_alert_outbox_due", "chain_id", "url", "next_attempt_at"),
                      {"sqlite_autoincrement": True})
    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    event_id: str = Field(max_length=36)  # the event's `id` (a UUID): receivers de-duplicate by it
    event_type: str  # wallet_status_worsened | feed_stale | feed_recovered
    url: str
    body: str = Field(sa_type=Text)  # the JSON posted, byte for byte (the signature covers it)
    created_at: float
    attempts: int = 0
    next_attempt_at: float
    last_error: str | None = Field(default=None, sa_type=Text)


class AlertDeadLetter(SQLModel, table=True):
    """A delivery that failed its last try (or was refused for good): the event, the URL, the last error and
    the attempts made. `collateral-indexer alerts replay` queues it again and sets `replayed_at`."""

    __tablename__ = "alert_dead_letters"
    __table_args__ = ({"sqlite_autoincrement": True},)
    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    event_id: str = Field(max_length=36)
    event_type: str
    url: str
    body: str = Field(sa_type=Text)
    attempts: int
    last_error: str = Field(sa_type=Text)
    created_at: float  # when the event was queued
    failed_at: float
    replayed_at: float | None = None


# ---------------------------------------------------------------- off-chain inputs (CSV loaders)
class Account(SQLModel, table=True):
    """The venue's record of a wallet's owner: what eligibility rules on accounts read (RISK.md s3)."""

    __tablename__ = "accounts"
    wallet: str = Field(primary_key=True, max_length=42)
    jurisdiction: str = Field(max_length=2)  # ISO 3166-1 alpha-2, upper case
    tier: str = Field(max_length=32)
    kyc_status: str = Field(max_length=16)  # approved | pending | rejected
    cash_usd: float = 0.0  # cash held with the venue (off-chain, consumed only by risk math)
    loaded_at: int = Field(sa_type=BigInteger)


class Position(SQLModel, table=True):
    """A crypto position margined by the wallet's collateral."""

    __tablename__ = "positions"
    wallet: str = Field(primary_key=True, max_length=42)
    instrument: str = Field(primary_key=True, max_length=64)
    base_asset: str = Field(max_length=16)  # priced by the feed "<base_asset>/USD"
    size: float  # signed, base units (long > 0); off-chain, consumed only by risk math
    entry_price: float  # USD
    leverage: float  # > 0
    loaded_at: int = Field(sa_type=BigInteger)


# ---------------------------------------------------------------- risk runs (outputs)
class RiskRunRecord(SQLModel, table=True):
    """One risk run: the block it valued, the policy it used (version and content hash), its totals."""

    __tablename__ = "risk_runs"
    # the latest run per chain and "the run at or before block B" are index probes (0003); an id is never
    # given twice, on SQLite either (AUTOINCREMENT, 0007): a report or a ticket citing one names one run
    __table_args__ = (Index("ix_risk_runs_chain_block", "chain_id", "block_number", "id"),
                      {"sqlite_autoincrement": True})
    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    block_number: int = Field(sa_type=BigInteger)
    block_timestamp: int = Field(sa_type=BigInteger)
    policy_name: str
    policy_version: str
    policy_hash: str = Field(max_length=64)
    market_state: str  # XNYS at the block time: open, overnight, weekend, holiday, ...
    seconds_to_next_open: int = Field(sa_type=BigInteger)
    wallets: int
    holdings: int
    positions: int
    collateral_usd: float
    started_at: float
    seconds: float
    notes: str = Field(default="", sa_type=Text)  # the run's explanation, one note per line (0006)
    # unix time of the reorg that removed the block it valued (0007); NULL while that block is on the chain.
    # Kept for whoever cited the run; the views, the lookup and the report leave such runs out.
    orphaned_at: float | None = None


class RiskHolding(SQLModel, table=True):
    """Per run and (wallet, token): value, eligibility codes, every haircut component, collateral."""

    __tablename__ = "risk_holdings"
    __table_args__ = (Index("ix_risk_holdings_wallet", "wallet", "run_id"),)
    run_id: int = Field(primary_key=True)
    wallet: str = Field(primary_key=True, max_length=42)
    token: str = Field(primary_key=True, max_length=42)
    symbol: str
    balance_raw: int = Field(sa_column=U256())
    balance: float  # token units
    shares: float  # underlying shares
    price: float
    market_value: float
    codes: int  # Eligibility bitmask, 0 = eligible
    code_names: str  # comma-separated names of the bits set
    eligible: bool
    h_base: float
    h_vol: float
    h_size: float
    h_gap: float
    haircut: float
    collateral_before_caps: float
    platform_cut: float
    wallet_cut: float
    collateral_value: float
    feed: str | None = Field(default=None, max_length=42)
    round_id: int | None = Field(default=None, sa_column=U256(nullable=True))
    round_age_s: int = Field(sa_type=BigInteger)
    market_state: str
    h_stale: float = 0.0  # graded stale add-on of its feed (0006)
    action_factor: float = 1.0  # carries its round's price across corporate actions to the block's shares
    # DEX liquidity (0010, docs/risk.md section 15): the liquidity part of h_size and where it came from
    # (configured, measured, stale); value_flags: ValuationFlag bits (NAV_DEVIATION: valued at the pool price)
    liquidity_term: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    liquidity_source: str = Field(default="configured", sa_column_kwargs={"server_default": "configured"})
    value_flags: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    value_flag_names: str = Field(default="", sa_column_kwargs={"server_default": ""})
    # ERC-4626 vaults (0011): asset units per whole share at B, and the largest move of the rate between two
    # reads in the policy's window, in the asset's value-continuous units (docs/risk.md section 16)
    vault_rate_raw: int | None = Field(default=None, sa_column=U256(nullable=True))
    vault_jump: float | None = None


class RiskWallet(SQLModel, table=True):
    """Per run and wallet: collateral, margin, status and the joint equity-crypto stress."""

    __tablename__ = "risk_wallets"
    __table_args__ = (Index("ix_risk_wallets_wallet", "wallet", "run_id"),
                      Index("ix_risk_wallets_status", "run_id", "status"))
    run_id: int = Field(primary_key=True)
    wallet: str = Field(primary_key=True, max_length=42)
    market_value: float
    collateral: float
    im: float
    mm: float
    upnl: float
    cash: float
    equity: float
    excess: float
    status: str  # healthy | margin_call | liquidate | unpriced
    l_joint: float
    l_indep: float
    wrong_way: float
    worst_scenario: str
    worst_scenario_loss: float
    stressed_excess: float
    binding: str  # parametric or the binding scenario's name
    regime: str = "positive"  # correlation regime of l_joint: positive or negative (0006)
    stale_driven: bool = False  # the status is worse than fresh prices alone would make it
    unpriced_positions: int = 0  # positions with no usable mark (status unpriced)
    # what the risk-off stresses lose to DEX depth shrinking (0010, docs/risk.md section 15)
    liquidity_stress_loss: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})


class RiskPosition(SQLModel, table=True):
    """Per run and position: the mark used and its quality, notional, margin and uPnL (0006)."""

    __tablename__ = "risk_positions"
    __table_args__ = (Index("ix_risk_positions_wallet", "wallet", "run_id"),)
    run_id: int = Field(primary_key=True)
    wallet: str = Field(primary_key=True, max_length=42)
    instrument: str = Field(primary_key=True, max_length=64)
    feed: str | None = Field(default=None, max_length=42)
    size: float
    entry_price: float
    mark: float  # used: the feed's price moved against the position by mark_adverse; entry where unusable
    mark_price: float  # the feed's price (0 where none)
    mark_adverse: float
    mark_quality: str  # ok | stale | incomplete | unusable
    round_id: int | None = Field(default=None, sa_column=U256(nullable=True))
    round_age_s: int = Field(sa_type=BigInteger)
    notional: float
    im: float
    mm: float
    upnl: float


class RiskPool(SQLModel, table=True):
    """Per run and configured pool: its state and liquidity measures at the run's block (0010,
    runs/liquidity.py): mid price, premium against the run's NAV per token, depth selling the token, volume."""

    __tablename__ = "risk_pools"
    run_id: int = Field(primary_key=True)
    pool: str = Field(primary_key=True, max_length=42)
    name: str
    token: str = Field(max_length=42)
    symbol: str
    sqrt_price_x96: int = Field(sa_column=U256())
    tick: int
    liquidity_raw: int = Field(sa_column=U256())
    price_quote: float  # whole quote units per whole token
    quote_usd: float | None = None  # USD per quote unit (NULL: the quote feed had no price)
    price_usd: float | None = None
    nav_usd: float | None = None  # the run's value of one token (oracle price carried across corporate actions)
    premium_bp: float | None = None  # price_usd against nav_usd: positive a premium, negative a discount
    depth_1pct_raw: int = Field(sa_column=U256())  # raw token units a sale can hold within a 1% move
    depth_2pct_raw: int = Field(sa_column=U256())
    depth_5pct_raw: int = Field(sa_column=U256())
    depth_2pct_usd: float | None = None
    volume_24h_raw: int = Field(sa_column=U256())
    volume_7d_raw: int = Field(sa_column=U256())
    swaps_24h: int
    swaps_7d: int
    # the liquidation of what the run counts as pledged in the token (its eligible units), split across the
    # token's pools by 2% depth and sold into each at once, executed as the pool would
    sale_offered_raw: int = Field(sa_column=U256())  # this pool's part
    sale_sold_raw: int = Field(sa_column=U256())  # what the pool took (less when it ran dry)
    sale_proceeds_usd: float | None = None
    sale_cost: float | None = None  # 1 - proceeds / (offered x nav_usd): what selling costs, unsold counted lost
    # the same in whole tokens (raw / 10**decimals), for SQL that sums and divides
    depth_1pct: float
    depth_2pct: float
    depth_5pct: float
    volume_24h: float
    volume_7d: float
    sale_offered: float


metadata = SQLModel.metadata
