"""Risk engine: valuation, eligibility, haircuts, margin and joint equity-crypto stress (RISK.md).

Pure and vectorized: it takes a :class:`Snapshot` (arrays describing one block) and a
:class:`Policy` (one validated TOML file) and returns a :class:`RiskRun`. No web3, no SQL, no clock.

    policy = load_policy("policy/default.toml", known_tokens=symbols, known_feeds=feed_names)
    run = run_risk(snapshot, policy)
    run.wallets.status, run.holdings.codes, run.wallets.stressed_excess, ...
"""

from indexer.risk.calendar import MarketState, TradingCalendar, xnys
from indexer.risk.eligibility import Eligibility, code_names, codes_to_names
from indexer.risk.engine import (
    PARAMETRIC,
    FeedRisk,
    HoldingRisk,
    MarginStatus,
    PositionRisk,
    RiskRun,
    TokenRisk,
    WalletRisk,
    feed_staleness,
    run_risk,
)
from indexer.risk.inputs import (
    AccountingModel,
    Accounts,
    FeedHistory,
    FeedKind,
    Feeds,
    Holdings,
    Positions,
    PriceQuote,
    Snapshot,
    SnapshotError,
    Tokens,
    balances_from_decimal_strings,
    int_array,
    ints_from_limbs,
    is_limbs,
    limbs_from_ints,
    limbs_from_words,
    limbs_to_float_units,
    to_float_units,
)
from indexer.risk.policy import Policy, PolicyError, load_policy, policy_from_mapping

__all__ = [
    "PARAMETRIC",
    "AccountingModel",
    "Accounts",
    "Eligibility",
    "FeedHistory",
    "FeedKind",
    "FeedRisk",
    "Feeds",
    "HoldingRisk",
    "Holdings",
    "MarginStatus",
    "MarketState",
    "Policy",
    "PolicyError",
    "PositionRisk",
    "Positions",
    "PriceQuote",
    "RiskRun",
    "Snapshot",
    "SnapshotError",
    "TokenRisk",
    "Tokens",
    "TradingCalendar",
    "WalletRisk",
    "balances_from_decimal_strings",
    "code_names",
    "codes_to_names",
    "feed_staleness",
    "int_array",
    "ints_from_limbs",
    "is_limbs",
    "limbs_from_ints",
    "limbs_from_words",
    "limbs_to_float_units",
    "load_policy",
    "policy_from_mapping",
    "run_risk",
    "to_float_units",
    "xnys",
]
