"""What the demo world holds: tokenized stocks, feeds and the dated events that happen to them.

Prices start near real late-2025 levels; volatilities are typical annualised figures. The two
factor loadings (equity market, crypto market) give the correlated random walks; the crash days
are calibrated to 2020-03-12 (S&P 500 -9.5%, BTC about -40% in one day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from indexer.types import Accounting

# 0.25% a year taken daily, the order of xStocks' disclosed management fee; WAD fraction per day.
FEE_25BP_DAILY = 6_849_315_068_493  # round(1e18 * 0.0025 / 365)
FEE_40BP_DAILY = 10_958_904_109_589  # round(1e18 * 0.0040 / 365)
DAY = 86_400


@dataclass(frozen=True)
class TokenSpec:
    symbol: str
    name: str
    underlying: str
    isin: str
    asset_class: str
    accounting: Accounting
    decimals: int
    price: float  # USD per share at the start
    vol: float  # annualised volatility of the share
    equity_loading: float
    crypto_loading: float
    quote: str  # per_share or per_token: what the token's price feed quotes
    fee_per_period: int = 0
    period_length: int = 0
    has_reserve_feed: bool = True
    # the contract it is deployed as (docs/contracts.md): "xstock" (Backed's auto-fee token behind a proxy,
    # deployed by the factory), "scaled_ui" (ERC-8056 as Robinhood deploys it), "scaled_ui_draft" (the
    # early ERC-8056 draft's event), "b20" (Base B20's multiplier), "plain"
    contract: str = "xstock"


@dataclass(frozen=True)
class CryptoSpec:
    pair: str
    price: float
    vol: float
    equity_loading: float
    crypto_loading: float


R = Accounting.REBASING_SHARES
U = Accounting.UI_MULTIPLIER

TOKENS: tuple[TokenSpec, ...] = (
    TokenSpec("AAPLx", "Apple xStock", "AAPL", "US0378331005", "single_stock", R, 18, 270.0, 0.28, 0.75, 0.10, "per_share", FEE_25BP_DAILY, DAY),
    TokenSpec("NVDAx", "NVIDIA xStock", "NVDA", "US67066G1040", "single_stock", R, 18, 180.0, 0.50, 0.70, 0.20, "per_share", FEE_25BP_DAILY, DAY),
    TokenSpec("TSLAx", "Tesla xStock", "TSLA", "US88160R1014", "single_stock", R, 18, 430.0, 0.60, 0.60, 0.25, "per_token", FEE_25BP_DAILY, DAY),
    TokenSpec("MSTRx", "Strategy xStock", "MSTR", "US5949724083", "crypto_linked_stock", R, 18, 300.0, 0.85, 0.40, 0.70, "per_share", FEE_25BP_DAILY, DAY),
    TokenSpec("SPYx", "SP500 xStock", "SPY", "US78462F1030", "broad_index_etf", R, 18, 670.0, 0.16, 0.95, 0.10, "per_token", FEE_25BP_DAILY, DAY),
    TokenSpec("QQQx", "Nasdaq xStock", "QQQ", "US46090E1038", "broad_index_etf", R, 18, 610.0, 0.22, 0.92, 0.15, "per_token", FEE_25BP_DAILY, DAY),
    TokenSpec("GLDx", "Gold xStock", "GLD", "US78463V1070", "commodity_etf", R, 18, 380.0, 0.15, 0.10, 0.05, "per_share", FEE_40BP_DAILY, DAY),
    TokenSpec("AMZN", "Amazon Stock Token", "AMZN", "US0231351067", "single_stock", U, 6, 230.0, 0.32, 0.75, 0.10, "per_share", contract="scaled_ui"),
    TokenSpec("MSFT", "Microsoft Stock Token", "MSFT", "US5949181045", "single_stock", U, 6, 510.0, 0.25, 0.80, 0.08, "per_share", contract="scaled_ui"),
    TokenSpec("GOOGL", "Alphabet Stock Token", "GOOGL", "US02079K3059", "single_stock", U, 6, 280.0, 0.30, 0.75, 0.10, "per_token", contract="scaled_ui"),
    TokenSpec("COIN", "Coinbase Stock Token", "COIN", "US19260Q1076", "crypto_linked_stock", U, 6, 320.0, 0.80, 0.45, 0.65, "per_share", contract="b20"),
    TokenSpec("TLT", "Treasury Bond ETF Token", "TLT", "US4642874329", "bond_etf", U, 6, 90.0, 0.14, -0.20, 0.00, "per_share", contract="scaled_ui_draft"),
    TokenSpec("USDC", "USD Coin", "USD", "", "stablecoin", Accounting.PLAIN, 6, 1.0, 0.002, 0.0, 0.0, "per_token", has_reserve_feed=False, contract="plain"),
)

CRYPTO: tuple[CryptoSpec, ...] = (
    CryptoSpec("BTC/USD", 100_000.0, 0.55, 0.25, 0.90),
    CryptoSpec("ETH/USD", 3_500.0, 0.70, 0.25, 0.85),
)

PRICE_DECIMALS = 8  # Chainlink USD feeds for equities and crypto
RESERVE_DECIMALS = 18  # proof-of-reserve feeds report shares with 18 decimals

# Chainlink-like heartbeats (seconds): equity feeds refresh within the session, crypto around the clock.
STOCK_HEARTBEAT = 3_600
CRYPTO_HEARTBEAT = 3_600
RESERVE_HEARTBEAT = 86_400
STABLE_HEARTBEAT = 86_400


@dataclass(frozen=True)
class Timeline:
    start: int  # unix seconds of the first world block
    days: int
    block_seconds: int = 1_800

    @property
    def end(self) -> int:
        return self.start + self.days * DAY

    @property
    def n_blocks(self) -> int:
        return self.days * DAY // self.block_seconds


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


# The world runs from the first trading day of January 2026 to the start of May 2026.
TIMELINE = Timeline(start=utc(2026, 1, 2), days=120)

# Joint risk-off days: (UTC date, equity-market log move, crypto-market log move), modelled on
# 2020-03-11..13 (S&P 500 -4.9%, -9.5%; BTC -8%, about -40%).
CRASH_DAYS: tuple[tuple[int, float, float], ...] = (
    (utc(2026, 3, 10), -0.045, -0.10),
    (utc(2026, 3, 11), -0.095, -0.40),
    (utc(2026, 3, 12), -0.035, -0.08),
)


@dataclass(frozen=True)
class Scale:
    name: str
    wallets: int
    transfers_per_block: float  # Poisson mean of holder-to-holder transfers per block
    direct_share: float  # share of transfers sent by the holder itself, the rest by batch
    initial_holders: float  # share of wallets holding something after the initial mints
    block_seconds: int = 1_800  # chain time between world blocks
    prune_history: int = 256  # states anvil keeps in memory (reorg depth available to tests)


# anvil recomputes its state root over the whole state at every block, so a block costs time in
# proportion to the state: the bench world puts its million transfers in fewer, fuller blocks
# (four hours of chain time apart) and keeps fewer past states in memory.
SCALES = {
    "small": Scale("small", wallets=1_200, transfers_per_block=9.0, direct_share=0.10, initial_holders=0.7),
    "bench": Scale("bench", wallets=100_000, transfers_per_block=1_200.0, direct_share=0.0, initial_holders=0.8,
                   block_seconds=14_400, prune_history=16),
}

# Special wallets, by index in the world's wallet list.
WHALES = (0, 1, 2, 3, 4)
FROZEN_MSFT = (10, 11)
FROZEN_AMZN = 12
SANCTIONED = (20, 21)


@dataclass(frozen=True)
class PoolSpec:
    """A Uniswap v3 pool of a token against USDC in the dev world (docs/liquidity.md, "The dev world's pools")."""

    token: str
    fee: int  # pips: 500 (0.05%, tick spacing 10), 3000 (0.3%, 60), 10000 (1%, 200)
    usd_per_side: float  # what the liquidity provider puts in at creation, per side (token and USDC), in USD
    # the liquidity provider's positions: (half width as a fraction of the price, 0 for the full range; share of
    # the capital), each centred on the price when minted
    ranges: tuple[tuple[float, float], ...]
    trade_usd: float  # median size of a noise trade (lognormal)
    thin: bool = False  # little liquidity, watched by arbitrage only every few hours

    @property
    def name(self) -> str:
        return f"{self.token}/{POOL_QUOTE} {self.fee / 10_000:g}%"


POOL_QUOTE = "USDC"  # every pool quotes its token in the world's stablecoin
DEEP_RANGES = ((0.0, 0.30), (0.20, 0.25), (0.08, 0.25), (0.03, 0.20))
POOLS: tuple[PoolSpec, ...] = (
    PoolSpec("AAPLx", 3000, 1_000_000, DEEP_RANGES, 3_000),
    PoolSpec("NVDAx", 500, 1_200_000, DEEP_RANGES, 4_000),
    PoolSpec("TSLAx", 3000, 800_000, DEEP_RANGES, 3_000),
    PoolSpec("SPYx", 500, 1_500_000, DEEP_RANGES, 5_000),
    PoolSpec("GOOGL", 3000, 600_000, DEEP_RANGES, 2_500),
    # the thin one: a few thousand dollars a side, where one retail-sized buy moves the price by tens of percent
    PoolSpec("MSTRx", 10000, 1_500, ((0.0, 0.75), (0.50, 0.25)), 10, thin=True),
)
# the crash window's pool events (2026-03-10..12, CRASH_DAYS): the liquidity provider withdraws most of every
# position as the crash opens and comes back the day after; meanwhile the tokens trade at a discount to NAV
POOL_WITHDRAW = {"share": "80/100", "discount_bp": 300, "thin_discount_bp": 800}

@dataclass(frozen=True)
class VaultSpec:
    """An ERC-4626 vault (`contracts/StockVault.sol`, OpenZeppelin's ERC4626 as published) over one of the world's
    tokens (docs/liquidity.md, "The dev world's vault")."""

    symbol: str
    name: str
    asset: str  # the symbol of the token it holds
    decimals: int = 18  # the asset's: the decimals offset is 0
    depositors: tuple[int, int] = (15, 25)  # how many of the asset's holders deposit early (inclusive)
    deposit_share: tuple[float, float] = (0.20, 0.60)  # the part of its balance each deposits
    deposit_days: int = 5  # the early deposits fall in the world's first days, one a block
    later_moves: int = 8  # later deposits and redemptions spread over the world


VAULTS: tuple[VaultSpec, ...] = (VaultSpec("vTSLAx", "TSLAx Vault", "TSLAx"),)
# the donation (`vault_donation`, scheduled_events): the attacker sends the vault `multiple - 1` times its assets,
# so that convertToAssets jumps `multiple` times in one block, and redeems its shares `redeem_days` later
VAULT_DONATION = {"multiple": 13, "redeem_days": 5}


@dataclass(frozen=True)
class ScheduledEvent:
    """Something the issuer or an oracle does at a given time; `kind` names it in the manifest."""

    at: int
    kind: str
    token: str
    detail: dict


UPGRADE_DAY = 70  # every xStock's proxy moves from the activation-time implementation to the one with history
PHASE_DAYS = (30, 90)  # every feed proxy gets a new aggregator on these days (phases 2 and 3)


def scheduled_events(tl: Timeline) -> list[ScheduledEvent]:
    d = lambda n, hour=15: tl.start + n * DAY + hour * 3600  # noqa: E731
    events = [
        # TSLAx: a 3-for-1 split, scheduled six hours ahead inside the fee period (Backed's rule: activation before
        # the next period boundary); nothing touches the token for three days after it takes effect, so the
        # contract folds it only then, and balances move at activation with no event
        ScheduledEvent(d(43, 6), "multiplier_scheduled", "TSLAx",
                       {"ratio": "3/1", "activation": d(43, 12), "quiet_days": 3}),
        # AMZN: an ERC-8056 2-for-1 split announced ahead, the issuer's oracle paused around it
        ScheduledEvent(d(54), "ui_multiplier_scheduled", "AMZN", {"ratio": "2/1", "activation": d(62, 12)}),
        ScheduledEvent(d(62, 0), "oracle_pause", "AMZN", {"until": d(62, 14)}),
        # GLDx: the management fee changed (25 bp a year instead of 40): the fee setter emits no event
        ScheduledEvent(d(60, 9), "fee_change", "GLDx", {"fee_per_period": FEE_25BP_DAILY}),
        # TLT (the early ERC-8056 draft's event): a distribution folded into the multiplier, announced ahead
        ScheduledEvent(d(33), "ui_multiplier_scheduled", "TLT", {"ratio": "10031/10000", "activation": d(35, 14)}),
        # COIN (Base B20): an instant multiplier update, logged as MultiplierUpdated(multiplier)
        ScheduledEvent(d(75, 12), "ui_multiplier_updated", "COIN", {"ratio": "10020/10000"}),
        ScheduledEvent(d(UPGRADE_DAY, 3), "upgrade", "*", {"implementation": "XStockV4"}),
        # SPYx: quarterly dividend reinvested into the multiplier, in force at once
        ScheduledEvent(d(81, 12), "multiplier_updated", "SPYx", {"ratio": "10031/10000"}),
        ScheduledEvent(d(89), "freeze", "MSFT", {"wallets": list(FROZEN_MSFT)}),
        ScheduledEvent(d(91), "freeze", "AMZN", {"wallets": [FROZEN_AMZN]}),
        # QQQx: an adjustment scheduled, then overridden before it takes effect (the history implementation)
        ScheduledEvent(d(95, 6), "multiplier_scheduled", "QQQx", {"ratio": "102/100", "activation": d(95, 14)}),
        ScheduledEvent(d(95, 8), "multiplier_scheduled", "QQQx", {"ratio": "101/100", "activation": d(95, 14),
                                                                  "overrides": True}),
        ScheduledEvent(d(99), "sanction", "*", {"wallets": list(SANCTIONED)}),
        ScheduledEvent(d(100), "reserve_shortfall", "NVDAx", {"coverage": "97/100"}),
        ScheduledEvent(d(104, 9), "xstock_pause", "MSTRx", {"until": d(106, 9)}),
        ScheduledEvent(d(109), "unfreeze", "AMZN", {"wallets": [FROZEN_AMZN]}),
        ScheduledEvent(d(119), "pause", "TLT", {}),
        # An in-session stall of one equity feed (no rounds for three hours on a trading afternoon).
        ScheduledEvent(utc(2026, 4, 22, 17), "feed_stall", "GOOGL", {"until": utc(2026, 4, 22, 20)}),
        # A round published with answeredInRound < roundId, as a stuck aggregator reports it.
        ScheduledEvent(utc(2026, 2, 18, 16), "incomplete_round", "COIN", {}),
        # A tokenized-equity feed reporting 0 outside market hours (Chainlink's documented edge case).
        ScheduledEvent(utc(2026, 2, 20, 23), "zero_round", "AAPLx", {}),
        # DEX pools (docs/liquidity.md, "The dev world's pools"): a ~$500 weekend buy in the thin MSTRx pool moves
        # its price by tens of percent (as xStocks printed in July 2025); the liquidity providers leave the pools
        # while equities and crypto crash together and come back after
        ScheduledEvent(utc(2026, 2, 7, 15), "pool_thin_buy", "MSTRx", {"usd": 500}),
        ScheduledEvent(utc(2026, 3, 10, 15), "pool_liquidity_withdrawn", "*",
                       {**POOL_WITHDRAW, "until": utc(2026, 3, 13, 15)}),
        ScheduledEvent(utc(2026, 3, 13, 15), "pool_liquidity_restored", "*", {}),
        # The vault over TSLAx (docs/liquidity.md, "The dev world's vault"): one donation of TSLAx to it, as a
        # flash loan and donations pushed a GOOGL xStock vault's rate ~13x in July 2026; the attacker redeems later
        ScheduledEvent(utc(2026, 4, 21, 14, 30), "vault_donation", VAULTS[0].symbol, dict(VAULT_DONATION)),
        *(ScheduledEvent(d(day, 4), "aggregator_change", "*", {"phase": phase})
          for phase, day in enumerate(PHASE_DAYS, start=2)),
    ]
    # every event, also those after the timeline's end: a world built short and then followed block by block
    # (`devchain live`, the tests' followed chains) meets the rest of its calendar as the full world does
    return sorted(events, key=lambda e: e.at)
