"""Marks and reserves with their quality (docs/risk.md sections 3 and 6): a position's mark carries its
round, age and quality; a stale or incomplete mark is used against the position and flagged; with no
usable mark the wallet is unpriced, never a silent zero uPnL; proof of reserve has its own age limit."""

from __future__ import annotations

import pytest

from indexer.risk.eligibility import Eligibility
from indexer.risk.engine import MarginStatus, run_risk
from indexer.types import FeedKind

from .worlds import WorldBuilder, ny, policy_with

NOW = ny("2025-11-29 12:00")  # Saturday: crypto is judged on the wall clock
Z = 2.3263478740408408


def one_position(size: float, **feed) -> object:
    b = WorldBuilder()
    spec = dict(updated_at=NOW - 60) | feed
    price = spec.pop("price", 64_000.0)
    fb = b.feed("BTC/USD", price, kind=FeedKind.CRYPTO, **spec)
    w = b.wallet(cash=50_000.0)
    b.position(w, fb, size, 60_000.0, 5.0)
    return run_risk(b.build(NOW), policy_with())


def test_a_fresh_mark_is_used_as_it_is() -> None:
    run = one_position(1.0)
    p = run.positions
    assert p.mark[0] == 64_000.0 and p.mark_price[0] == 64_000.0 and p.mark_adverse[0] == 0.0
    assert bool(p.mark_ok[0]) and bool(p.mark_usable[0]) and not bool(p.mark_stale[0])
    assert p.mark_round_id[0] == 100 and int(p.mark_age_s[0]) == 60
    assert p.upnl[0] == 4_000.0
    assert int(run.wallets.status[0]) == MarginStatus.HEALTHY


@pytest.mark.parametrize("size", [1.0, -1.0])
def test_a_stale_mark_is_moved_against_the_position(size: float) -> None:
    run = one_position(size, updated_at=NOW - 2 * 3_600)  # past 3,900 s, within four times it
    p, f = run.positions, run.feeds
    adverse = Z * float(f.sigma[0]) * (2 * 3_600 / 86_400) ** 0.5
    assert bool(p.mark_stale[0]) and not bool(p.mark_ok[0]) and bool(p.mark_usable[0])
    assert p.mark_adverse[0] == pytest.approx(adverse, rel=1e-12)
    assert p.mark[0] == pytest.approx(64_000.0 * (1 - size * adverse), rel=1e-12)  # long lower, short higher
    assert p.notional[0] == pytest.approx(64_000.0 * (1 + adverse), rel=1e-12)
    assert p.upnl[0] < one_position(size).positions.upnl[0]
    assert any("BTC/USD: stale" in n for n in run.notes)


def test_an_incomplete_mark_is_moved_by_the_volatility_add_on() -> None:
    run = one_position(1.0, answered_in_round=99)
    p, f = run.positions, run.feeds
    assert int(p.mark_codes[0]) == int(Eligibility.ORACLE_INCOMPLETE) and bool(p.mark_usable[0])
    assert p.mark_adverse[0] == pytest.approx(Z * float(f.sigma[0]) * 2**0.5, rel=1e-12)


@pytest.mark.parametrize("feed", [dict(price=None), dict(answer_raw=0), dict(updated_at=NOW - 5 * 3_600)])
def test_no_usable_mark_makes_the_wallet_unpriced(feed: dict) -> None:
    run = one_position(1.0, **feed)
    p, w = run.positions, run.wallets
    assert not bool(p.mark_usable[0])
    assert p.upnl[0] == 0.0 and p.mark[0] == 60_000.0  # entry price for IM, no uPnL
    assert int(w.status[0]) == MarginStatus.UNPRICED and int(w.unpriced_positions[0]) == 1
    assert any("no usable mark" in n for n in run.notes)


def test_proof_of_reserve_has_its_own_age_limit() -> None:
    now = ny("2025-11-26 11:00")

    def codes(reserve_age: int) -> int:
        b = WorldBuilder()
        f = b.feed("SPY/USD", 600.0, updated_at=now - 60)
        t = b.token("SPYx", f, supply_units=1_000.0, reserve_units=1_001.0, reserve_updated_at=now - reserve_age)
        b.hold(b.wallet(), t, 10.0)
        return int(run_risk(b.build(now), policy_with()).holdings.codes[0])

    assert codes(86_400) == 0
    assert codes(172_801) == int(Eligibility.RESERVE_STALE)  # default max_age_s = 2 days


def test_reserves_far_above_the_supply_contradict_the_multiplier() -> None:
    now = ny("2025-11-26 11:00")
    b = WorldBuilder()
    f = b.feed("TSLA/USD", 400.0, updated_at=now - 60)
    t = b.token("TSLAx", f, supply_units=1_000.0, reserve_units=3_000.0)  # a 3-for-1 split the supply missed
    b.hold(b.wallet(), t, 10.0)
    run = run_risk(b.build(now), policy_with())
    assert int(run.holdings.codes[0]) == int(Eligibility.VALUATION_INCONSISTENT)
    assert any("proof of reserve exceeds" in n for n in run.notes)
