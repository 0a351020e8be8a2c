"""Haircut components (RISK.md section 4) checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexer.risk.calendar import xnys
from indexer.risk.engine import run_risk
from indexer.risk.haircuts import band_haircut
from indexer.risk.policy import load_policy
from indexer.types import FeedKind

from .worlds import KRAKEN_POLICY, WorldBuilder, flat_policy, ny, policy_with

Z99 = 2.3263478740408408


def close_history(
    now: int, daily_log_return: float, price: float = 100.0, sessions: int = 300
) -> list[tuple[int, float]]:
    """One round exactly at each of the last ``sessions`` closes, log price rising by a constant step."""
    closes = xnys().closes_up_to(now, sessions)
    return [(int(c), price * math.exp(k * daily_log_return)) for k, c in enumerate(closes)]


def spy_world(
    now: int, units: float = 1.0, r: float = 0.02, updated_at: int | None = None, symbol: str = "SPYx"
):
    b = WorldBuilder()
    hist = close_history(now, r)
    f = b.feed("SPY/USD", hist[-1][1], updated_at=updated_at or hist[-1][0], history=hist)
    t = b.token(symbol, f)
    b.hold(b.wallet(), t, units)
    return b.build(now)


def test_band_haircut_is_marginal_across_bands() -> None:
    edges, addon = np.array([0.0, 250e3, 1e6, 5e6, 20e6]), np.array([0.0, 0.03, 0.08, 0.15, 0.30])
    got = band_haircut(np.array([0.0, 100e3, 500e3, 2e6, 50e6]), edges, addon)
    expected_2m = (0.03 * 750e3 + 0.08 * 1e6) / 2e6
    expected_50m = (0.03 * 750e3 + 0.08 * 4e6 + 0.15 * 15e6 + 0.30 * 30e6) / 50e6
    np.testing.assert_allclose(got, [0.0, 0.0, 0.015, expected_2m, expected_50m], rtol=1e-12)


def test_size_haircut_adds_square_root_impact_and_supply_terms() -> None:
    now = ny("2025-11-26 11:00")
    b = WorldBuilder()
    f = b.feed("AAPL/USD", 250.0, updated_at=now - 60)
    t = b.token("AAPLx", f, supply_units=100_000.0)
    b.hold(b.wallet(), t, 5_000.0)  # 1.25M USD; 5% of supply
    policy = flat_policy(
        **{
            "size.impact_k": 0.05,
            "size.supply_k": 0.05,
            "size.bands": [{"from_usd": 0.0, "addon": 0.0}, {"from_usd": 1e6, "addon": 0.08}],
        }
    )
    h = run_risk(b.build(now), policy).holdings
    band = 0.08 * 0.25e6 / 1.25e6
    impact = 0.05 * math.sqrt(1.25e6 / 5e6)  # AAPLx daily_liquidity_usd = 5M in the default policy
    supply = 0.05 * math.sqrt(0.05)
    assert h.h_size[0] == pytest.approx(band + impact + supply, rel=1e-12)
    assert h.haircut[0] == pytest.approx(0.25 + band + impact + supply, rel=1e-12)
    assert h.collateral_value[0] == pytest.approx(1.25e6 * (1 - 0.25 - band - impact - supply), rel=1e-12)


def test_volatility_addon_uses_ewma_sigma_of_daily_closes() -> None:
    now = ny("2025-11-26 11:00")
    run = run_risk(spy_world(now, r=0.02, updated_at=now - 60), policy_with(**{"gap.enabled": True}))
    # constant returns: EWMA sigma = |r| (to the 8-decimal rounding of the feed's answers)
    assert run.feeds.sigma[0] == pytest.approx(0.02, rel=1e-8)
    assert run.holdings.h_vol[0] == pytest.approx(Z99 * 0.02 * math.sqrt(2.0), rel=1e-8)
    assert run.holdings.h_gap[0] == 0.0  # market open, and the feed has printed since the open


def test_gap_addon_lasts_until_the_first_round_after_the_open() -> None:
    """The opening window: at 09:45 on Monday a price from Friday's close still carries the weekend's gap."""
    monday = ny("2025-11-24 09:45")
    friday_close = ny("2025-11-21 16:00")
    run = run_risk(spy_world(monday, r=0.02, updated_at=friday_close), policy_with())
    assert run.market_state.name == "OPEN" and run.trading_days_until_next_open == 0
    assert run.holdings.h_gap[0] == pytest.approx(Z99 * 0.02 * math.sqrt(1), rel=1e-8)
    assert int(run.tokens.gap_days[0]) == 1
    # Good Friday and the weekend: Monday morning's price from Thursday carries two business days
    easter_monday = ny("2025-04-21 09:50")
    run = run_risk(spy_world(easter_monday, r=0.02, updated_at=ny("2025-04-17 16:00")), policy_with())
    assert run.holdings.h_gap[0] == pytest.approx(Z99 * 0.02 * math.sqrt(2), rel=1e-8)
    # the first round after the open ends it
    run = run_risk(spy_world(monday, r=0.02, updated_at=monday - 60), policy_with())
    assert run.holdings.h_gap[0] == 0.0


def test_volatility_floor_applies_to_calm_feeds() -> None:
    run = run_risk(spy_world(ny("2025-11-26 11:00"), r=0.001), policy_with())
    assert run.feeds.sigma_raw[0] == pytest.approx(0.001, rel=1e-6)
    assert run.feeds.sigma[0] == 0.01  # stock floor


@pytest.mark.parametrize(
    ("now", "days"),
    [("2025-11-25 20:00", 1), ("2025-11-29 12:00", 1), ("2025-04-19 12:00", 2), ("2025-11-26 20:00", 2)],
)
def test_gap_addon_while_closed_grows_with_the_business_days_spanned(now: str, days: int) -> None:
    run = run_risk(spy_world(ny(now), r=0.02), policy_with())
    assert run.trading_days_until_next_open == days
    assert run.holdings.h_gap[0] == pytest.approx(Z99 * 0.02 * math.sqrt(days), rel=1e-8)


def test_gap_addon_is_capped_and_spares_crypto_priced_tokens() -> None:
    now = ny("2025-04-19 12:00")
    assert run_risk(spy_world(now, r=0.2), policy_with()).holdings.h_gap[0] == 0.15
    b = WorldBuilder()
    f = b.feed("USDC/USD", 1.0, kind=FeedKind.STABLE, updated_at=now - 60)
    t = b.token("USDC", f, decimals=6)
    b.hold(b.wallet(), t, 1000.0)
    h = run_risk(b.build(now), policy_with()).holdings
    assert h.h_gap[0] == 0.0 and int(h.market_state[0]) == 5  # CONTINUOUS


def test_wallet_concentration_cuts_the_excess_over_the_share_cap() -> None:
    now = ny("2025-11-26 11:00")
    b = WorldBuilder()
    fa = b.feed("AAPL/USD", 100.0, updated_at=now - 60)
    fn = b.feed("NVDA/USD", 100.0, updated_at=now - 60)
    ta, tn = b.token("AAPLx", fa), b.token("NVDAx", fn)
    w = b.wallet()
    b.hold(w, ta, 8.0)  # 800 market value -> 600 after the 25% base haircut
    b.hold(w, tn, 16.0 / 3)  # 533.33 -> 400
    h = run_risk(b.build(now), flat_policy(**{"concentration.wallet_share_cap": 0.4})).holdings
    # eligible collateral before caps: 1,000; each token may count 400
    np.testing.assert_allclose(h.collateral_before_caps, [600.0, 400.0])
    np.testing.assert_allclose(h.collateral_value, [400.0, 400.0])
    np.testing.assert_allclose(h.wallet_cut, [200.0, 0.0], atol=1e-9)


def test_platform_cap_scales_every_holder_pro_rata() -> None:
    now = ny("2025-11-26 11:00")
    b = WorldBuilder()
    f = b.feed("SPY/USD", 100.0, updated_at=now - 60)
    t = b.token("SPYx", f, supply_units=1_000.0)
    b.hold(b.wallet(), t, 300.0)
    b.hold(b.wallet(), t, 100.0)
    run = run_risk(b.build(now), flat_policy(**{"concentration.platform_supply_share_cap": 0.25}))
    factor = 250.0 / 400.0
    assert run.tokens.platform_factor[0] == pytest.approx(factor)
    np.testing.assert_allclose(run.holdings.collateral_value, [300 * 85 * factor, 100 * 85 * factor])
    # counted units equal the cap exactly
    assert run.tokens.pledged_units[0] * run.tokens.platform_factor[0] == pytest.approx(250.0, rel=1e-15)


def test_kraken_preset_flat_haircut_and_usd_cap() -> None:
    now = ny("2025-11-26 11:00")
    b = WorldBuilder()
    f = b.feed("SPY/USD", 500.0, updated_at=now - 60)
    t = b.token("SPYx", f)
    b.hold(b.wallet(), t, 1_000.0)  # 500k: 450k after 10%
    b.hold(b.wallet(), t, 4_000.0)  # 2M: 1.8M after 10%, capped at 1M
    h = run_risk(b.build(now), load_policy(KRAKEN_POLICY)).holdings
    np.testing.assert_allclose(h.collateral_value, [450_000.0, 1_000_000.0])
    np.testing.assert_allclose(h.haircut, [0.10, 0.10])
