"""Joint stress and wrong-way risk (RISK.md section 7, docs/risk.md section 7): long crypto against stock
collateral carries a positive add-on that grows with the correlation floor; a short crypto position, a
hedge in the regime where both fall, is stressed in the regime where equities fall and crypto rallies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexer.risk.calendar import xnys
from indexer.risk.engine import run_risk
from indexer.types import FeedKind

from .worlds import WorldBuilder, ny, policy_with

NOW = ny("2025-11-26 11:00")
FLOORS = [-1.0, 0.0, 0.3, 0.5, 0.8, 0.95]


def stock_and_btc_world():
    """SPY and BTC rounds at each of 300 closes, daily log returns correlated about 0.3."""
    rng = np.random.default_rng(11)
    closes = xnys().closes_up_to(NOW, 300)
    eq = rng.standard_normal(len(closes))
    cr = 0.3 * eq + math.sqrt(1 - 0.09) * rng.standard_normal(len(closes))
    spy = 500.0 * np.exp(np.cumsum(0.012 * eq))
    btc = 60_000.0 * np.exp(np.cumsum(0.035 * cr))
    b = WorldBuilder()
    fs = b.feed(
        "SPY/USD",
        float(spy[-1]),
        updated_at=NOW - 60,
        history=list(zip(closes.tolist(), spy.tolist(), strict=True)),
    )
    fb = b.feed(
        "BTC/USD",
        float(btc[-1]),
        kind=FeedKind.CRYPTO,
        updated_at=NOW - 60,
        history=list(zip(closes.tolist(), btc.tolist(), strict=True)),
    )
    spyx = b.token("SPYx", fs)
    long_w, short_w, btc_only, stock_only = (b.wallet(cash=10_000.0) for _ in range(4))
    for w in (long_w, short_w, stock_only):
        b.hold(w, spyx, 200.0)
    b.position(long_w, fb, 1.0, float(btc[-1]), 5.0)
    b.position(short_w, fb, -1.0, float(btc[-1]), 5.0)
    b.position(btc_only, fb, 1.0, float(btc[-1]), 5.0)
    return b.build(NOW)


@pytest.fixture(scope="module")
def runs():
    snap = stock_and_btc_world()
    return {rho: run_risk(snap, policy_with(**{"stress.equity_crypto_corr_floor": rho})) for rho in FLOORS}


def test_long_btc_against_stock_collateral_has_a_positive_add_on_growing_with_the_floor(runs) -> None:
    add_on = [float(runs[rho].wallets.wrong_way[0]) for rho in FLOORS]
    assert add_on[FLOORS.index(0.8)] > 0
    assert all(b >= a for a, b in zip(add_on, add_on[1:], strict=False))
    assert add_on[-1] > add_on[FLOORS.index(0.5)] > 0


def test_short_btc_against_stock_collateral_is_stressed_where_crypto_rallies(runs) -> None:
    snap = stock_and_btc_world()
    previous = -1.0
    for rho in FLOORS[1:]:
        w, stress = runs[rho].wallets, runs[rho].stress
        assert w.wrong_way[2] == 0.0 and w.wrong_way[3] == 0.0  # crypto only, stock only
        assert stress.corr_neg[0, 1] == pytest.approx(-rho, abs=1e-12)  # two feeds: the ceiling is met exactly
        assert int(w.regime[1]) == 1 and int(w.regime[0]) == 0  # the short loses in the negative regime
        assert w.l_joint[1] >= w.l_indep[1] * (1 - 1e-12)
        assert w.wrong_way[1] >= previous  # grows with the floor
        previous = float(w.wrong_way[1])
        # one-sided (the old method): the same short is a hedge, L_joint below L_indep
        one = run_risk(snap, policy_with(**{"stress.equity_crypto_corr_floor": rho, "stress.two_sided": False}))
        assert one.wallets.wrong_way[1] == 0.0 and one.wallets.l_joint[1] < one.wallets.l_indep[1]
        assert w.l_joint[1] > one.wallets.l_joint[1]
        assert w.stressed_excess[1] <= one.wallets.stressed_excess[1]
    assert runs[0.8].wallets.wrong_way[1] > 0
    # the scenarios stress it where it loses too: its worst is a crypto rally with equities down
    run = runs[0.8]
    assert run.scenario_names[int(run.wallets.worst_scenario[1])] == "crypto_rally_equities_down"
    x_s, x_b = float(run.holdings.collateral_value[1]), float(run.positions.notional[1])
    assert run.wallets.worst_scenario_loss[1] == pytest.approx(0.07 * x_s + 0.17 * x_b, rel=1e-12)
    # the closed form in the negative regime: correlation -0.8 between SPY and BTC
    run = runs[0.8]
    sigma = run.stress.sigma
    x_s = float(run.holdings.collateral_value[1])  # the short wallet's SPYx (the second holding)
    x_b = -float(run.positions.notional[1])
    q = (x_s * sigma[0]) ** 2 + (x_b * sigma[1]) ** 2 - 2 * 0.8 * x_s * x_b * sigma[0] * sigma[1]
    assert run.wallets.l_joint[1] == pytest.approx(run.z * math.sqrt(2.0) * math.sqrt(q), rel=1e-12)


def test_stressed_excess_never_rises_with_the_floor_for_a_long(runs) -> None:
    excess = [float(runs[rho].wallets.stressed_excess[0]) for rho in FLOORS]
    assert all(b <= a for a, b in zip(excess, excess[1:], strict=False))


def test_l_joint_matches_the_two_factor_closed_form(runs) -> None:
    run = runs[0.8]
    sigma = run.stress.sigma  # 1.5 x the anti-procyclical daily sigma
    est = run_risk(
        stock_and_btc_world(), policy_with(**{"stress.equity_crypto_corr_floor": -1.0})
    ).stress.corr[0, 1]
    assert est < 0.8
    assert run.stress.corr[0, 1] == pytest.approx(0.8, abs=1e-12)  # two feeds: the floor is met exactly
    x_s = float(run.holdings.collateral_value[0])
    x_b = float(run.positions.notional[0])
    q = (x_s * sigma[0]) ** 2 + (x_b * sigma[1]) ** 2 + 2 * 0.8 * x_s * x_b * sigma[0] * sigma[1]
    scale = run.z * math.sqrt(2.0)
    assert run.wallets.l_joint[0] == pytest.approx(scale * math.sqrt(q), rel=1e-12)
    assert run.wallets.l_indep[0] == pytest.approx(
        scale * math.hypot(x_s * sigma[0], x_b * sigma[1]), rel=1e-12
    )


def test_stressed_excess_subtracts_the_binding_stress(runs) -> None:
    run = runs[0.8]
    w = run.wallets
    worst = np.maximum(w.l_joint, w.worst_scenario_loss)
    np.testing.assert_allclose(w.stressed_excess, w.equity - w.im - worst)
    names = run.binding_names()
    for i in range(4):
        expected = (
            "parametric"
            if w.l_joint[i] >= w.worst_scenario_loss[i]
            else run.scenario_names[w.worst_scenario[i]]
        )
        assert names[i] == expected
    # the long wallet's worst scenario is the joint risk-off day: stock collateral and BTC fall together
    assert run.scenario_names[w.worst_scenario[0]] == "joint_risk_off_2020_03_12"
    # SPYx is a broad-index ETF (-9.5%), the long BTC position takes the crypto shock (-40%)
    loss = float(run.holdings.collateral_value[0]) * 0.095 + float(run.positions.notional[0]) * 0.40
    assert w.worst_scenario_loss[0] == pytest.approx(loss, rel=1e-12)
