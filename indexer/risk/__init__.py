"""Risk engine: valuation, eligibility, haircuts, margin and joint equity-crypto stress (RISK.md).

Pure and vectorized: it takes a :class:`Snapshot` (arrays describing one block) and a
:class:`Policy` (one validated TOML file) and returns a :class:`RiskRun`. No web3, no SQL, no clock.

    policy = load_policy("default", known_tokens=symbols, known_feeds=feed_names)
    run = run_risk(snapshot, policy)
    run.wallets.status, run.holdings.codes, run.wallets.stressed_excess, ...
"""

from indexer.risk.calendar import MarketState, TradingCalendar, xnys
from indexer.risk.eligibility import Eligibility, ValuationFlag, code_names, codes_to_names, flag_names
from indexer.risk.engine import (
    PARAMETRIC,
    FeedRisk,
    HoldingRisk,
    LiquiditySource,
    MarginStatus,
    PositionRisk,
    RiskRun,
    TokenRisk,
    WalletRisk,
    run_risk,
)
from indexer.risk.errors import SnapshotError
from indexer.risk.inputs import Accounts, FeedHistory, Feeds, Holdings, Liquidity, Positions, Snapshot, Tokens
from indexer.risk.policy import Policy, PolicyError, load_policy, policy_from_mapping
from indexer.risk.staleness import assess_staleness, stale_feeds
from indexer.risk.uint256 import (
    balances_from_decimal_strings,
    int_array,
    ints_from_limbs,
    is_limbs,
    limbs_from_ints,
    limbs_from_words,
    limbs_to_float_units,
    to_float_units,
)

__all__ = [
    "PARAMETRIC",
    "Accounts",
    "Eligibility",
    "FeedHistory",
    "FeedRisk",
    "Feeds",
    "HoldingRisk",
    "Holdings",
    "Liquidity",
    "LiquiditySource",
    "MarginStatus",
    "MarketState",
    "Policy",
    "PolicyError",
    "PositionRisk",
    "Positions",
    "RiskRun",
    "Snapshot",
    "SnapshotError",
    "TokenRisk",
    "Tokens",
    "TradingCalendar",
    "ValuationFlag",
    "WalletRisk",
    "balances_from_decimal_strings",
    "code_names",
    "assess_staleness",
    "codes_to_names",
    "flag_names",
    "int_array",
    "ints_from_limbs",
    "is_limbs",
    "limbs_from_ints",
    "limbs_from_words",
    "limbs_to_float_units",
    "load_policy",
    "policy_from_mapping",
    "run_risk",
    "stale_feeds",
    "to_float_units",
    "xnys",
]
