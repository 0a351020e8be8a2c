"""Invariants of the engine on random and synthetic worlds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.risk.eligibility import Eligibility
from indexer.risk.engine import run_risk
from indexer.risk.inputs import Snapshot
from indexer.risk.policy import Policy
from tests.oracles.synthetic import synthetic_world

from .worlds import default_policy, ny, policy_with, random_policy, random_world

SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@SETTINGS
@given(world=random_world(), policy=random_policy())
def test_haircuts_are_fractions_and_collateral_never_exceeds_value(world: Snapshot, policy: Policy) -> None:
    h = run_risk(world, policy).holdings
    for name in ("h_base", "h_vol", "h_size", "h_gap", "haircut"):
        v = getattr(h, name)
        assert ((v >= 0) & (v <= 1)).all(), name
    assert (h.collateral_value >= 0).all()
    assert (h.collateral_value <= h.collateral_before_caps).all()
    assert (h.collateral_before_caps <= h.market_value).all()
    assert (h.collateral_value[h.codes != 0] == 0).all()
    assert (h.eligible == (h.codes == 0)).all()


@SETTINGS
@given(world=random_world(), policy=random_policy())
def test_concentration_caps_hold_exactly(world: Snapshot, policy: Policy) -> None:
    run = run_risk(world, policy)
    h, n_w = run.holdings, world.n_wallets
    c1 = h.collateral_before_caps * run.tokens.platform_factor[h.token_idx]
    total = np.bincount(h.wallet_idx, weights=c1, minlength=n_w)[h.wallet_idx]
    symbols = [str(s) for s in world.tokens.symbol]
    share_cap = np.array([policy.token_wallet_share_cap(symbols[t]) for t in h.token_idx])
    usd_cap = np.array(
        [
            policy.tokens[symbols[t]].wallet_cap_usd
            if symbols[t] in policy.tokens and policy.tokens[symbols[t]].wallet_cap_usd is not None
            else np.inf
            for t in h.token_idx
        ]
    )
    cap = np.minimum(share_cap * total, usd_cap)
    assert (h.collateral_value <= cap).all()
    # the cut removes exactly the excess: the result is min(c1, cap)
    np.testing.assert_array_equal(h.collateral_value, np.minimum(c1, cap))
    t = run.tokens
    binding = t.platform_factor < 1
    limit = policy.concentration.platform_supply_share_cap * t.supply_units
    np.testing.assert_allclose((t.pledged_units * t.platform_factor)[binding], limit[binding], rtol=1e-12)


# parameter changes that can only make the policy stricter
STRICTER = [
    {
        "asset_classes.single_stock.base_haircut": 0.5,
        "asset_classes.broad_index_etf.base_haircut": 0.3,
        "asset_classes.stablecoin.base_haircut": 0.1,
        "asset_classes.bond_etf.base_haircut": 0.2,
    },
    {"volatility.floor": {"stock": 0.03, "crypto": 0.06, "stable": 0.01}},
    {"volatility.confidence": 0.999},
    {"volatility.horizon_days": 5.0},
    {"volatility.sigma_without_history": 0.1},
    {"size.impact_k": 0.2, "size.supply_k": 0.2},
    {
        "size.bands": [
            {"from_usd": 0.0, "addon": 0.01},
            {"from_usd": 100_000.0, "addon": 0.1},
            {"from_usd": 1e6, "addon": 0.2},
        ]
    },
    {"gap.cap": 0.3},
    {"concentration.wallet_share_cap": 0.25},
    {"concentration.platform_supply_share_cap": 0.05},
    {"eligibility.min_value_usd": 10_000.0},
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(world=random_world(), change=st.sampled_from(STRICTER))
def test_collateral_never_rises_when_a_haircut_parameter_rises(world: Snapshot, change: dict) -> None:
    before = run_risk(world, default_policy())
    after = run_risk(world, policy_with(**change))
    tol = 1e-12 * np.maximum(before.holdings.market_value, 1e-300)
    assert (after.holdings.collateral_value <= before.holdings.collateral_value + tol).all()
    assert (after.wallets.collateral <= before.wallets.collateral * (1 + 1e-12) + 1e-300).all()


@pytest.fixture(scope="module")
def equity_only_world() -> Snapshot:
    """Synthetic world whose holdings are all equity-class tokens and whose positions are all long."""
    from tests.oracles.synthetic import DEFAULT_TOKENS

    equity = tuple(
        t
        for t in DEFAULT_TOKENS
        if t.symbol in {"AAPLx", "NVDAx", "TSLAx", "MSTRx", "SPYx", "QQQx", "AMZN", "MSFT", "GOOGL", "COIN"}
    )
    snap = synthetic_world(300, now=ny("2025-11-26 11:00"), seed=5, tokens=equity)
    np.abs(snap.positions.size, out=snap.positions.size)
    return snap


def test_stressed_excess_never_rises_with_the_floor_for_longs_against_stock(
    equity_only_world: Snapshot,
) -> None:
    prev = None
    for rho in [-1.0, 0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0]:
        w = run_risk(equity_only_world, policy_with(**{"stress.equity_crypto_corr_floor": rho})).wallets
        if prev is not None:
            assert (w.l_joint >= prev.l_joint * (1 - 1e-12)).all()
            assert (
                w.stressed_excess <= prev.stressed_excess + 1e-9 * np.abs(prev.stressed_excess) + 1e-9
            ).all()
        prev = w


@SETTINGS
@given(world=random_world(), rho=st.sampled_from([-1.0, 0.0, 0.5, 0.8, 0.99, 1.0]))
def test_stressed_correlation_is_psd_and_meets_the_floor(world: Snapshot, rho: float) -> None:
    st_ = run_risk(world, policy_with(**{"stress.equity_crypto_corr_floor": rho})).stress
    assert st_.min_eigenvalue >= -1e-10
    assert np.linalg.eigvalsh(st_.cov_indep).min() >= -1e-10 * max(
        1.0, float(np.abs(st_.cov_joint).max(initial=0.0))
    )
    cross = np.outer(st_.equity_side, st_.crypto_side) | np.outer(st_.crypto_side, st_.equity_side)
    assert (st_.corr[cross] >= rho - 1e-12).all()
    np.testing.assert_allclose(np.diag(st_.corr), 1.0)


def test_correlation_already_above_the_floor_is_left_alone(equity_only_world: Snapshot) -> None:
    run = run_risk(equity_only_world, policy_with(**{"stress.equity_crypto_corr_floor": -1.0}))
    assert run.stress.blend_weight == 0.0
    low = run_risk(equity_only_world, policy_with(**{"stress.equity_crypto_corr_floor": 0.8}))
    assert low.stress.blend_weight > 0.0


def test_paused_token_frozen_wallet_and_cut_off_feed_contribute_zero() -> None:
    now = ny("2025-11-26 11:00")
    snap = synthetic_world(200, now=now, seed=9)
    base = run_risk(snap, default_policy())
    symbols = list(snap.tokens.symbol)
    paused_t, stale_t = symbols.index("NVDAx"), symbols.index("AAPLx")
    snap.tokens.paused[paused_t] = True
    # a round from Monday 15:00: 6.5 trading hours old, past four times the 70-minute limit (the cut-off)
    snap.feeds.updated_at[snap.tokens.feed_idx[stale_t]] = now - 44 * 3600
    frozen_row = int(np.flatnonzero(snap.holdings.token_idx == symbols.index("SPYx"))[0])
    snap.holdings.frozen[frozen_row] = True
    run = run_risk(snap, default_policy())
    h = run.holdings
    for mask, code in [
        (h.token_idx == paused_t, Eligibility.TOKEN_PAUSED),
        (h.token_idx == stale_t, Eligibility.ORACLE_STALE),
        (np.arange(len(h.codes)) == frozen_row, Eligibility.WALLET_FROZEN),
    ]:
        assert mask.any()
        assert (h.collateral_value[mask] == 0).all()
        assert ((h.codes[mask] & np.uint32(code)) != 0).all()
        assert (h.market_value[mask] == base.holdings.market_value[mask]).all()
    # wallets holding none of the three lose nothing; they may even gain where the platform-wide cap
    # binds, because fewer pledged units share the same cap
    untouched = np.ones(snap.n_wallets, dtype=bool)
    untouched[h.wallet_idx[(h.token_idx == paused_t) | (h.token_idx == stale_t)]] = False
    untouched[h.wallet_idx[frozen_row]] = False
    assert (run.wallets.collateral[untouched] >= base.wallets.collateral[untouched] * (1 - 1e-12)).all()
