"""Eligibility codes (RISK.md section 3): every failing rule is recorded, and an ineligible holding
keeps its market value but contributes zero collateral."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.risk.eligibility import Eligibility, code_names, codes_to_names
from indexer.risk.engine import run_risk
from indexer.types import FeedKind

from .worlds import E18, WorldBuilder, flat_policy, ny

NOW = ny("2025-11-26 11:00")  # Wednesday, market open


def one_holding(**kw):
    """A 1,000-share SPYx holding in a healthy world; keyword switches break one rule each."""
    b = WorldBuilder()
    f = b.feed(
        "SPY/USD",
        kw.get("price", 500.0),
        updated_at=kw.get("updated_at", NOW - 60),
        round_id=100,
        answered_in_round=kw.get("answered_in_round", 100),
        answer_raw=kw.get("answer_raw"),
    )
    if kw.get("no_round"):
        b.feeds[f]["has_round"] = False
    t = b.token(
        kw.get("symbol", "SPYx"),
        -1 if kw.get("no_feed") else f,
        paused=kw.get("paused", False),
        supply_units=1e6,
        reserve_units=kw.get("reserve_units"),
    )
    w = b.wallet(
        jurisdiction=kw.get("jurisdiction", "DE"),
        tier=kw.get("tier", "retail"),
        kyc=kw.get("kyc", True),
        has_account=kw.get("has_account", True),
        sanctioned=kw.get("sanctioned", False),
    )
    b.hold(w, t, kw.get("units", 1000.0), frozen=kw.get("frozen", False))
    run = run_risk(b.build(NOW), flat_policy(**{"eligibility.min_value_usd": 1.0}))
    return run.holdings


@pytest.mark.parametrize(
    ("switch", "expected"),
    [
        ({"symbol": "ZZZx"}, Eligibility.TOKEN_NOT_ELIGIBLE),
        ({"paused": True}, Eligibility.TOKEN_PAUSED),
        ({"frozen": True}, Eligibility.WALLET_FROZEN),
        ({"jurisdiction": "US"}, Eligibility.ACCOUNT_JURISDICTION),
        ({"tier": "trial"}, Eligibility.ACCOUNT_TIER),
        ({"has_account": False}, Eligibility.ACCOUNT_UNKNOWN),
        ({"kyc": False}, Eligibility.ACCOUNT_KYC),
        ({"sanctioned": True}, Eligibility.WALLET_SANCTIONED),
        ({"no_round": True}, Eligibility.ORACLE_MISSING | Eligibility.BELOW_MINIMUM),
        ({"no_feed": True}, Eligibility.ORACLE_MISSING | Eligibility.BELOW_MINIMUM),
        ({"answer_raw": 0}, Eligibility.ORACLE_NON_POSITIVE | Eligibility.BELOW_MINIMUM),
        ({"answer_raw": -5}, Eligibility.ORACLE_NON_POSITIVE | Eligibility.BELOW_MINIMUM),
        ({"answered_in_round": 99}, Eligibility.ORACLE_INCOMPLETE),
        ({"updated_at": 0}, Eligibility.ORACLE_INCOMPLETE | Eligibility.ORACLE_STALE),
        ({"updated_at": NOW - 86_400}, Eligibility.ORACLE_STALE),  # 6.5 trading hours: past the cut-off
        ({"reserve_units": 999_000.0 - 1}, Eligibility.RESERVE_SHORTFALL),
        ({"units": 0.001}, Eligibility.BELOW_MINIMUM),
    ],
)
def test_each_rule_sets_its_code_and_the_holding_counts_zero(switch, expected) -> None:
    h = one_holding(**switch)
    assert int(h.codes[0]) == int(expected), code_names(int(h.codes[0]))
    assert not h.eligible[0]
    assert h.collateral_value[0] == 0.0
    assert h.collateral_before_caps[0] == 0.0


def test_ineligible_holding_keeps_its_market_value() -> None:
    h = one_holding(paused=True, frozen=True, jurisdiction="US")
    assert h.market_value[0] == 500_000.0
    assert code_names(int(h.codes[0])) == ["TOKEN_PAUSED", "WALLET_FROZEN", "ACCOUNT_JURISDICTION"]


def test_reserve_within_tolerance_is_not_a_shortfall() -> None:
    # tolerance 0.1%: reserves of 999,000 shares back a supply of 1,000,000
    h = one_holding(reserve_units=999_000.0)
    assert int(h.codes[0]) == 0 and h.collateral_value[0] == pytest.approx(500_000.0 * 0.85)


def test_every_code_is_recorded_not_only_the_first() -> None:
    h = one_holding(symbol="ZZZx", paused=True, frozen=True, kyc=False, sanctioned=True, answered_in_round=1)
    assert code_names(int(h.codes[0])) == [
        "TOKEN_NOT_ELIGIBLE",
        "TOKEN_PAUSED",
        "WALLET_FROZEN",
        "ORACLE_INCOMPLETE",
        "ACCOUNT_KYC",
        "WALLET_SANCTIONED",
    ]


def test_codes_to_names_decodes_an_array_of_masks() -> None:
    masks = np.array([0, 3, 0, int(Eligibility.ORACLE_STALE)], dtype=np.uint32)
    assert codes_to_names(masks) == [[], ["TOKEN_NOT_ELIGIBLE", "TOKEN_PAUSED"], [], ["ORACLE_STALE"]]


def test_account_rules_follow_the_policy() -> None:
    b = WorldBuilder()
    f = b.feed("BTC/USD", 60_000.0, kind=FeedKind.CRYPTO, updated_at=NOW - 10)
    t = b.token("USDC", f, decimals=6, multiplier=E18)
    for juris, tier in [("US", "retail"), ("SG", "trial"), ("DE", "institutional")]:
        b.hold(b.wallet(jurisdiction=juris, tier=tier), t, 10.0)
    snap = b.build(NOW)
    strict = run_risk(snap, flat_policy()).holdings.code_names()
    assert strict == [["ACCOUNT_JURISDICTION"], ["ACCOUNT_TIER"], []]
    relaxed = flat_policy(**{"accounts.blocked_jurisdictions": [], "accounts.allowed_tiers": ["*"]})
    assert run_risk(snap, relaxed).holdings.code_names() == [[], [], []]
