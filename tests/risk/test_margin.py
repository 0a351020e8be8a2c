"""Positions and margin (RISK.md section 6): notional, IM, MM, upnl, equity, excess, status."""

from __future__ import annotations

import pytest

from indexer.risk.engine import MarginStatus, run_risk
from indexer.types import FeedKind

from .worlds import WorldBuilder, flat_policy, ny

NOW = ny("2025-11-26 11:00")


def margin_world(
    spy_units: float,
    size: float,
    entry: float,
    leverage: float = 10.0,
    cash: float = 0.0,
    btc: float = 50_000.0,
):
    b = WorldBuilder()
    spy = b.feed("SPY/USD", 500.0, updated_at=NOW - 60)
    btc_feed = b.feed("BTC/USD", btc, kind=FeedKind.CRYPTO, updated_at=NOW - 60)
    t = b.token("SPYx", spy)
    w = b.wallet(cash=cash)
    if spy_units:
        b.hold(w, t, spy_units)
    b.position(w, btc_feed, size, entry, leverage)
    return b.build(NOW)


def test_long_position_margin_by_leverage() -> None:
    # collateral: 20 SPYx x 500 x (1 - 0.15) = 8,500; long 1 BTC from 60,000 marked at 50,000
    run = run_risk(margin_world(20, 1.0, 60_000.0, leverage=10.0, cash=2_000.0), flat_policy())
    p, w = run.positions, run.wallets
    assert (p.notional[0], p.im[0], p.mm[0], p.upnl[0]) == (50_000.0, 5_000.0, 500.0, -10_000.0)
    assert w.collateral[0] == pytest.approx(8_500.0)
    assert w.equity[0] == pytest.approx(8_500.0 - 10_000.0 + 2_000.0)
    assert w.excess[0] == pytest.approx(500.0 - 5_000.0)
    assert w.status[0] == MarginStatus.MARGIN_CALL  # 500 <= 500 < 5,000


@pytest.mark.parametrize(
    ("spy_units", "status"),
    [(40, MarginStatus.HEALTHY), (20, MarginStatus.MARGIN_CALL), (10, MarginStatus.LIQUIDATE)],
)
def test_status_thresholds(spy_units: float, status: MarginStatus) -> None:
    # equity = 425 * units - 10,000 + 2,000; IM 5,000, MM 500
    run = run_risk(margin_world(spy_units, 1.0, 60_000.0, cash=2_000.0), flat_policy())
    assert run.wallets.status[0] == status


def test_equity_exactly_at_im_is_healthy() -> None:
    # 4,250 collateral + 750 cash + 0 upnl = 5,000 = IM
    run = run_risk(margin_world(10, 1.0, 50_000.0, cash=750.0), flat_policy())
    assert run.wallets.equity[0] == pytest.approx(5_000.0)
    assert run.wallets.status[0] == MarginStatus.HEALTHY


def test_short_position_gains_when_the_mark_falls() -> None:
    run = run_risk(margin_world(0, -2.0, 60_000.0), flat_policy())
    assert run.positions.upnl[0] == 20_000.0
    assert run.positions.notional[0] == 100_000.0


def test_leverage_is_capped_by_the_policy() -> None:
    run = run_risk(margin_world(0, 1.0, 50_000.0, leverage=100.0), flat_policy())
    assert run.positions.im[0] == 50_000.0 / 20.0


def test_tiered_initial_margin_uses_the_notional_band() -> None:
    policy = flat_policy(**{"margin.im_mode": "tiers"})
    small = run_risk(margin_world(0, 1.0, 50_000.0), policy).positions
    assert (small.im[0], small.mm[0]) == (500.0, 250.0)  # first tier: 1% / 0.5%
    big = run_risk(margin_world(0, 60.0, 50_000.0), policy).positions  # 3M notional: second tier
    assert (big.im[0], big.mm[0]) == pytest.approx((60_000.0, 30_000.0))


def test_missing_mark_falls_back_to_entry_and_is_flagged() -> None:
    snap = margin_world(0, 1.0, 42_000.0)
    snap.feeds.has_round[1] = False
    run = run_risk(snap, flat_policy())
    assert run.positions.mark[0] == 42_000.0 and not run.positions.mark_ok[0]
    assert run.positions.upnl[0] == 0.0


def test_wallet_without_positions_or_collateral_is_healthy_with_zero_margin() -> None:
    b = WorldBuilder()
    b.feed("SPY/USD", 500.0, updated_at=NOW - 60)
    b.wallet()
    run = run_risk(b.build(NOW), flat_policy())
    w = run.wallets
    assert (w.collateral[0], w.im[0], w.mm[0], w.equity[0], w.l_joint[0]) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert w.status[0] == MarginStatus.HEALTHY
