"""The vectorized engine agrees with the plain-Python reference (written from RISK.md) to 1e-9."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.risk.eligibility import Eligibility
from indexer.risk.engine import run_risk
from indexer.risk.inputs import Snapshot
from indexer.risk.policy import Policy, load_policy
from tests.oracles.reference import STATE_CODES, reference_run
from tests.oracles.synthetic import synthetic_world

from .worlds import KRAKEN_POLICY, default_policy, dex_world, ny, random_policy, random_world

RTOL = 1e-9


def close(a: float, b: float, scale: float = 0.0) -> bool:
    """|a - b| <= 1e-9 * max(|a|, |b|, scale): relative, with an absolute floor for values that
    are differences of large terms (excess, wrong-way add-on)."""
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= RTOL * max(abs(a), abs(b), scale, 1e-300)


def assert_engine_matches_reference(snap: Snapshot, policy: Policy) -> None:
    run = run_risk(snap, policy)
    ref = reference_run(snap, policy)

    assert STATE_CODES[ref.market_state] == int(run.market_state)
    assert ref.trading_days_until_next_open == run.trading_days_until_next_open
    np.testing.assert_array_equal(run.feeds.codes, np.array(ref.feed_codes, dtype=np.uint32))
    for a, b in zip(run.feeds.sigma, ref.feed_sigma, strict=True):
        assert close(float(a), b)
    np.testing.assert_allclose(
        run.stress.corr, np.array(ref.stressed_corr).reshape(run.stress.corr.shape), rtol=0, atol=1e-9
    )
    assert (run.stress.corr_neg is None) == (len(ref.regimes) == 1)
    if run.stress.corr_neg is not None:
        np.testing.assert_allclose(run.stress.corr_neg, np.array(ref.stressed_corr_neg), rtol=0, atol=1e-9)

    h = run.holdings
    min_value = policy.eligibility.min_value_usd
    assert len(ref.holdings) == len(h.wallet_idx)
    for i, r in enumerate(ref.holdings):
        mv = r["market_value"]
        for key in ("balance", "shares", "price", "market_value"):
            assert close(float(getattr(h, key)[i]), r[key]), (i, key)
        for key in ("h_base", "h_vol", "h_size", "h_gap", "h_stale", "haircut"):
            assert close(float(getattr(h, key)[i]), r[key], 1.0), (i, key)
        assert close(float(h.liquidity_term[i]), r["h_liquidity"], 1.0), (i, "h_liquidity")
        assert int(h.liquidity_source[i]) == r["liquidity_source"], i
        if int(h.value_flags[i]) != r["value_flags"]:  # only a premium within rounding of the tolerance
            assert abs(abs(r["nav_premium_bp"]) - policy.liquidity.nav_tolerance_bp) < 1e-6, (i, r["nav_premium_bp"])
        for key in (
            "collateral_before_caps",
            "platform_cut",
            "wallet_cut",
            "concentration_cut",
            "collateral_value",
        ):
            assert close(float(getattr(h, key)[i]), r[key], mv), (i, key)
        diff = int(h.codes[i]) ^ r["codes"]
        # BELOW_MINIMUM may differ only on a value within rounding of the floor itself
        if diff == Eligibility.BELOW_MINIMUM:
            assert close(mv, min_value)
        else:
            assert diff == 0, (i, int(h.codes[i]), r["codes"])
        assert int(h.round_age_s[i]) == r["round_age_s"]
        assert int(h.market_state[i]) == r["market_state"]

    p = run.positions
    for i, r in enumerate(ref.positions):
        for key in ("mark", "notional", "im", "mm", "upnl", "mark_adverse"):
            assert close(float(getattr(p, key)[i]), r[key]), (i, key)
        assert bool(p.mark_ok[i]) == r["mark_ok"]
        assert bool(p.mark_usable[i]) == r["mark_usable"]

    w = run.wallets
    assert len(ref.wallets) == len(w.collateral)
    for i, r in enumerate(ref.wallets):
        scale = max(
            abs(r["equity"]),
            r["im"],
            r["collateral"],
            abs(r["cash"]),
            r["market_value"],
            r["l_joint"],
            r["l_indep"],
            abs(r["worst_scenario_loss"]),
            abs(r["upnl"]),
        )
        for key in (
            "market_value",
            "collateral",
            "im",
            "mm",
            "upnl",
            "cash",
            "equity",
            "excess",
            "l_joint",
            "l_indep",
            "wrong_way",
            "worst_scenario_loss",
            "stressed_excess",
            "liquidity_stress_loss",
        ):
            assert close(float(getattr(w, key)[i]), r[key], scale), (
                i,
                key,
                float(getattr(w, key)[i]),
                r[key],
            )
        assert int(w.unpriced_positions[i]) == r["unpriced_positions"]
        # discrete outcomes agree unless the deciding quantities tie within rounding
        if int(w.status[i]) != r["status"] or bool(w.stale_driven[i]) != r["stale_driven"]:
            assert close(r["equity"], r["im"], scale) or close(r["equity"], r["mm"], scale) or r["stale_driven"]
        if int(w.regime[i]) != r["regime"]:
            assert close(float(w.l_joint[i]), r["l_joint"], scale)
        if int(w.worst_scenario[i]) != r["worst_scenario"]:
            losses_tie = close(float(w.worst_scenario_loss[i]), r["worst_scenario_loss"], scale)
            assert losses_tie
        if int(w.binding[i]) != r["binding"]:
            parametric = r["l_joint"] + (r["liquidity_stress_loss"] if policy.stress.parametric_risk_off else 0.0)
            assert (
                close(parametric, r["worst_scenario_loss"], scale)
                or int(w.worst_scenario[i]) != r["worst_scenario"]
            )


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(world=random_world(), policy=random_policy())
def test_engine_agrees_with_reference_on_random_worlds(world: Snapshot, policy: Policy) -> None:
    assert_engine_matches_reference(world, policy)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(world=random_world(liquidity=True), policy=random_policy(liquidity=True))
def test_engine_agrees_with_reference_on_random_worlds_with_dex_measures(world: Snapshot, policy: Policy) -> None:
    assert_engine_matches_reference(world, policy)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(world=dex_world(), policy=random_policy(liquidity=True))
def test_engine_agrees_with_reference_where_dex_measures_bite(world: Snapshot, policy: Policy) -> None:
    """Mostly eligible holdings of measured tokens: the square-root term, the NAV rule, the platform
    liquidation cost and the risk-off stress are all reached (docs/risk.md section 15)."""
    assert_engine_matches_reference(world, policy)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(world=random_world(liquidity=True, vaults=True), policy=random_policy(liquidity=True))
def test_engine_agrees_with_reference_on_random_worlds_with_vaults(world: Snapshot, policy: Policy) -> None:
    """ERC-4626 vaults over the worlds' tokens (docs/risk.md section 16): valued through their rate at their
    asset's value, with their asset's codes, a jumped rate in and out of the window, no rate."""
    assert_engine_matches_reference(world, policy)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=random_world())
def test_engine_agrees_with_reference_under_the_kraken_preset(world: Snapshot) -> None:
    assert_engine_matches_reference(world, load_policy(KRAKEN_POLICY))


@pytest.mark.parametrize(
    "when", ["2025-11-26 15:00", "2025-11-29 12:00", "2025-06-19 11:00", "2025-03-10 07:00"]
)
def test_engine_agrees_with_reference_on_the_synthetic_world(when: str) -> None:
    snap = synthetic_world(60, now=ny(when), seed=3)
    assert_engine_matches_reference(snap, default_policy())


def test_every_eligibility_code_is_reached_by_the_random_worlds() -> None:
    """The generator really produces every failure the comparison is meant to cover."""
    seen: set[Eligibility] = set()

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(world=st.one_of(random_world(), random_world(vaults=True)), policy=random_policy())
    def collect(world: Snapshot, policy: Policy) -> None:
        codes = run_risk(world, policy).holdings.codes
        seen.update(c for c in Eligibility if (codes & np.uint32(c)).any())

    collect()
    assert seen == set(Eligibility), f"never produced: {sorted(c.name for c in set(Eligibility) - seen)}"


def test_the_dex_worlds_reach_every_liquidity_branch() -> None:
    """The generator really produces what the comparison with measures is meant to cover (section 15)."""
    seen: set[str] = set()

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(world=dex_world(), policy=random_policy(liquidity=True))
    def collect(world: Snapshot, policy: Policy) -> None:
        run = run_risk(world, policy)
        t, h, w = run.tokens, run.holdings, run.wallets
        if t.liquidity_source is None:
            return
        seen.update(f"source {int(s)}" for s in np.unique(h.liquidity_source[h.eligible]))
        if (h.value_flags[h.eligible] != 0).any():
            seen.add("NAV_DEVIATION")
        measured = h.eligible & (h.liquidity_source == 1) & (h.balance > 0)
        if (measured & (h.liquidity_term == policy.liquidity.impact_cap)).any():
            seen.add("capped term")
        if (measured & (h.liquidity_term < policy.liquidity.impact_cap) & (h.liquidity_term > 0)).any():
            seen.add("square-root term")
        if t.platform_liquidity_factor is not None and (t.platform_liquidity_factor < t.platform_cap_factor).any():
            seen.add("platform cost binds")
        if (w.liquidity_stress_loss > 0).any():
            seen.add("stress loss")

    collect()
    expected = {"source 0", "source 1", "source 2", "NAV_DEVIATION", "capped term", "square-root term",
                "platform cost binds", "stress loss"}
    assert seen == expected, f"never produced: {sorted(expected - seen)}"
