"""Measured DEX liquidity in the risk method (docs/risk.md section 15).

The square-root impact term of h_size against what the market absorbs within the horizon, the price against
NAV, the platform liquidation cost and the depth withdrawn in risk-off stresses: hand-computed cases, the
monotonicity rules, no measures = the configured method exactly, a split with no market move, and the checks
of the inputs. The engine against the reference on worlds with measures: test_engine_vs_reference.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.risk.eligibility import Eligibility, ValuationFlag, flag_names
from indexer.risk.engine import LiquiditySource, RiskRun, run_risk
from indexer.risk.errors import SnapshotError
from indexer.risk.inputs import Liquidity, Snapshot
from indexer.risk.policy import Policy, load_policy
from indexer.types import Accounting, FeedKind, PriceQuote

from .test_corporate_actions import MODELS, RATIOS
from .test_corporate_actions import policy as actions_policy
from .test_corporate_actions import world as action_world
from .worlds import (
    DEFAULT_POLICY,
    KRAKEN_POLICY,
    WorldBuilder,
    default_policy,
    dex_world,
    flat_policy,
    ny,
    policy_with,
    random_policy,
    random_world,
)

NOW = ny("2025-11-26 11:00")  # a Wednesday, market open
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def measures(n: int, **rows: dict) -> Liquidity:
    """A liquidity table of ``n`` tokens; ``rows``: token index (as "t0", "t1", ...) -> its measures."""
    liq = Liquidity.absent(n)
    for key, m in rows.items():
        t = int(key[1:])
        liq.measured[t] = True
        liq.fresh[t] = m.get("fresh", True)
        liq.depth_1pct[t], liq.depth_2pct[t], liq.depth_5pct[t] = m["depth"]
        liq.volume_24h[t], liq.volume_7d[t] = m["volume"]
        liq.pool_price_usd[t] = m.get("price", np.nan)
    return liq


def one_token(units: list[float], price: float = 200.0, dex: dict | None = None, supply: float = 1e9,
              symbol: str = "AAPLx") -> Snapshot:
    b = WorldBuilder()
    f = b.feed("AAPL/USD", price, updated_at=NOW - 60)
    t = b.token(symbol, f, supply_units=supply, dex=dex)
    for u in units:
        b.hold(b.wallet(), t, u)
    return b.build(NOW)


def with_liquidity(snap: Snapshot, liq: Liquidity | None) -> Snapshot:
    out = dataclasses.replace(snap, liquidity=liq)
    out.validate()
    return out


# -- hand-computed ------------------------------------------------------------------------------------


def test_the_square_root_term_replaces_the_configured_one() -> None:
    """sigma = 0.05 (no history), H = 2, Y = 1, participation 0.2: A = 0.2 x 2 x 5,000 + 1,000 = 3,000 tokens."""
    dex = dict(depth=(1_000.0, 2_000.0, 5_000.0), volume=(5_000.0, 35_000.0), price=200.0)
    run = run_risk(one_token([300.0], dex=dex), flat_policy())
    h, t = run.holdings, run.tokens
    expected = 1.0 * 0.05 * math.sqrt(2.0) * math.sqrt(300.0 / 3_000.0)
    assert t.liquidity_units[0] == pytest.approx(3_000.0, rel=1e-15)
    assert t.adv_units[0] == pytest.approx(5_000.0, rel=1e-15) and t.depth_units[0] == 1_000.0
    assert h.liquidity_term[0] == pytest.approx(expected, rel=1e-12)
    assert h.h_size[0] == pytest.approx(expected, rel=1e-12)  # flat policy: no bands, no supply term
    assert int(h.liquidity_source[0]) == LiquiditySource.MEASURED
    assert h.collateral_value[0] == pytest.approx(60_000.0 * (1 - 0.25 - expected), rel=1e-12)
    # the same holding without measures: k sqrt(V / L) with AAPLx's configured 5M USD
    configured = run_risk(one_token([300.0]), flat_policy(**{"size.impact_k": 0.05}))
    assert configured.holdings.liquidity_term[0] == pytest.approx(0.05 * math.sqrt(60_000.0 / 5e6), rel=1e-12)
    assert int(configured.holdings.liquidity_source[0]) == LiquiditySource.CONFIGURED
    # ... which the measured term replaces, not adds to
    both = run_risk(one_token([300.0], dex=dex), flat_policy(**{"size.impact_k": 0.05}))
    assert both.holdings.h_size[0] == pytest.approx(expected, rel=1e-12)


def test_the_term_is_capped_and_an_empty_market_takes_the_cap() -> None:
    empty = dict(depth=(0.0, 0.0, 0.0), volume=(0.0, 0.0), price=200.0)
    run = run_risk(one_token([1.0, 0.0], dex=empty), flat_policy())
    assert run.holdings.liquidity_term[0] == 0.5  # liquidity.impact_cap
    assert run.holdings.liquidity_term[1] == 0.0  # nothing held, nothing to sell
    thin = dict(depth=(1.0, 1.0, 1.0), volume=(0.0, 0.0), price=200.0)
    run = run_risk(one_token([1e9], dex=thin), flat_policy(**{"liquidity.impact_cap": 0.3}))
    assert run.holdings.liquidity_term[0] == 0.3


def test_the_platform_liquidation_cost_cuts_what_the_holders_own_terms_left_out() -> None:
    """Three holders of one token: a full liquidation sells 11,100 tokens into A = 3,000."""
    dex = dict(depth=(1_000.0, 2_000.0, 5_000.0), volume=(5_000.0, 35_000.0), price=200.0)
    units = [100.0, 1_000.0, 10_000.0]
    run = run_risk(one_token(units, dex=dex), flat_policy())
    h, t = run.holdings, run.tokens
    k = 0.05 * math.sqrt(2.0)
    cost = min(0.5, k * math.sqrt(sum(units) / 3_000.0))
    assert t.platform_cost[0] == pytest.approx(cost, rel=1e-12)
    own = [k * math.sqrt(u / 3_000.0) for u in units]
    mv = [200.0 * u for u in units]
    counted = sum(v * (1 - 0.25 - o) for v, o in zip(mv, own, strict=True))
    realised = sum(v * (1 - 0.25 - cost) for v in mv)
    assert t.platform_liquidity_factor[0] == pytest.approx(realised / counted, rel=1e-12)
    assert t.platform_factor[0] == t.platform_liquidity_factor[0] < t.platform_cap_factor[0] == 1.0
    # the token's counted collateral is what the joint liquidation realises
    assert h.collateral_value.sum() == pytest.approx(realised, rel=1e-12)
    np.testing.assert_allclose(h.platform_cut, h.collateral_before_caps * (1 - realised / counted), rtol=1e-12)
    # one holder alone: its own term already is the whole cost
    alone = run_risk(one_token([10_000.0], dex=dex), flat_policy())
    assert alone.tokens.platform_liquidity_factor[0] == pytest.approx(1.0, rel=1e-12)
    off = run_risk(one_token(units, dex=dex), flat_policy(**{"liquidity.platform_cost": False}))
    assert off.tokens.platform_factor[0] == 1.0


def test_a_discount_beyond_the_tolerance_values_at_the_pool_price_and_stays_eligible() -> None:
    dex = dict(depth=(1e6, 2e6, 5e6), volume=(1e6, 7e6), price=190.0)  # -500 bp against NAV 200
    run = run_risk(one_token([10.0], dex=dex), flat_policy())
    h, t = run.holdings, run.tokens
    assert t.nav[0] == 200.0 and t.pool_price_usd[0] == 190.0
    assert t.nav_premium_bp[0] == pytest.approx(-500.0, rel=1e-12)
    assert t.value_factor[0] == 190.0 and h.market_value[0] == pytest.approx(1_900.0, rel=1e-15)
    assert int(h.value_flags[0]) == ValuationFlag.NAV_DEVIATION
    assert flag_names(int(h.value_flags[0])) == ["NAV_DEVIATION"]
    assert bool(h.eligible[0]) and int(h.codes[0]) == 0 and h.collateral_value[0] > 0
    assert any("NAV_DEVIATION" in n and "-500 bp" in n for n in run.notes)
    # a premium beyond the tolerance is flagged too, and valued at NAV
    rich = run_risk(one_token([10.0], dex={**dex, "price": 230.0}), flat_policy())
    assert int(rich.holdings.value_flags[0]) == ValuationFlag.NAV_DEVIATION
    assert rich.holdings.market_value[0] == pytest.approx(2_000.0, rel=1e-15)
    # within the tolerance (2%): NAV, no flag
    near = run_risk(one_token([10.0], dex={**dex, "price": 197.0}), flat_policy())
    assert int(near.holdings.value_flags[0]) == 0 and near.holdings.market_value[0] == 2_000.0


def test_stale_measures_keep_the_configured_figure_and_judge_no_price() -> None:
    dex = dict(depth=(1.0, 2.0, 5.0), volume=(5.0, 35.0), price=100.0, fresh=False)
    stale = run_risk(one_token([300.0], dex=dex), default_policy())
    plain = run_risk(one_token([300.0]), default_policy())
    assert int(stale.tokens.liquidity_source[0]) == LiquiditySource.STALE
    assert stale.holdings.h_size[0] == plain.holdings.h_size[0]
    assert stale.holdings.market_value[0] == plain.holdings.market_value[0]
    assert int(stale.holdings.value_flags[0]) == 0
    assert any("not fresh" in n for n in stale.notes)
    # measures read longer ago than liquidity.max_age_s are stale too
    old = one_token([300.0], dex={**dex, "fresh": True, "updated_at": NOW - 7_200})
    assert int(run_risk(old, default_policy()).tokens.liquidity_source[0]) == LiquiditySource.STALE


def test_risk_off_stresses_see_the_depth_shrunk() -> None:
    """Depth dominates here: A = 0.2 x 2 x 10 + 3,000 normally, + 0.2 x 3,000 under stress."""
    dex = dict(depth=(3_000.0, 6_000.0, 9_000.0), volume=(10.0, 70.0), price=200.0)
    snap = one_token([1_000.0], dex=dex)
    base = run_risk(snap, flat_policy(**{"stress.depth_factor": 1.0}))
    run = run_risk(snap, flat_policy())
    k = 0.05 * math.sqrt(2.0)
    normal, shrunk = k * math.sqrt(1_000.0 / 3_004.0), k * math.sqrt(1_000.0 / 604.0)
    assert run.holdings.liquidity_term[0] == pytest.approx(normal, rel=1e-12)
    loss = 200_000.0 * (min(0.5, shrunk) - normal)
    assert run.wallets.liquidity_stress_loss[0] == pytest.approx(loss, rel=1e-9)
    assert base.wallets.liquidity_stress_loss[0] == 0.0
    policy = flat_policy()
    # the worst loss and the stressed excess carry it; the rally (not risk-off) does not
    assert run.wallets.worst_scenario_loss[0] == pytest.approx(base.wallets.worst_scenario_loss[0] + loss, rel=1e-9)
    assert run.wallets.stressed_excess[0] == pytest.approx(base.wallets.stressed_excess[0] - loss, rel=1e-9)
    calm = flat_policy(**{"stress.parametric_risk_off": False,
                          "stress.scenarios": [{**sc.model_dump(), "risk_off": False} for sc in policy.stress.scenarios]})
    quiet = run_risk(snap, calm)
    assert quiet.wallets.liquidity_stress_loss[0] == 0.0
    assert quiet.wallets.stressed_excess[0] == base.wallets.stressed_excess[0]


# -- monotonicity ----------------------------------------------------------------------------------------

dex_params = st.fixed_dictionaries(dict(
    depth=st.tuples(st.sampled_from([0.0, 1.0, 50.0, 1e3, 1e5]), st.sampled_from([0.0, 10.0, 1e4]),
                    st.sampled_from([0.0, 1e3, 1e6])).map(lambda d: (d[0], d[0] + d[1], d[0] + d[1] + d[2])),
    volume=st.tuples(st.sampled_from([0.0, 10.0, 1e4]), st.sampled_from([0.0, 1e2, 1e6])).map(
        lambda v: (v[0], v[0] + v[1])),
    price=st.sampled_from([np.nan, 150.0, 199.0, 200.0, 260.0]),
))
liquidity_policies = st.fixed_dictionaries({
    "liquidity.impact_y": st.sampled_from([0.5, 1.0, 2.0]),
    "liquidity.participation": st.sampled_from([0.05, 0.2, 1.0]),
    "liquidity.depth_move_bp": st.sampled_from([100, 200, 500]),
    "liquidity.volume_basis": st.sampled_from(["7d", "lower"]),
    "liquidity.impact_cap": st.sampled_from([0.05, 0.5, 1.0]),
    "volatility.horizon_days": st.sampled_from([1.0, 2.0, 10.0]),
})


@SETTINGS
@given(dex=dex_params, changes=liquidity_policies,
       units=st.lists(st.sampled_from([0.0, 1e-3, 1.0, 20.0, 700.0, 1e4, 3e5, 1e8]), min_size=2, max_size=8))
def test_a_larger_holding_never_gets_a_smaller_haircut(dex: dict, changes: dict, units: list[float]) -> None:
    units = sorted(units)
    h = run_risk(one_token(units, dex=dex, supply=1e7), policy_with(**changes)).holdings
    for name in ("liquidity_term", "h_size", "haircut"):
        v = getattr(h, name)
        assert (np.diff(v) >= -1e-12).all(), (name, v)


@SETTINGS
@given(dex=dex_params, changes=liquidity_policies,
       units=st.lists(st.sampled_from([1e-3, 1.0, 20.0, 700.0, 1e4, 3e5]), min_size=1, max_size=6),
       more=st.sampled_from(["depth", "volume", "both"]), factor=st.sampled_from([1.0, 1.5, 10.0, 1e3]),
       extra=st.sampled_from([0.0, 1.0, 1e4]))
def test_more_depth_or_volume_never_raises_a_haircut(dex: dict, changes: dict, units: list[float], more: str,
                                                     factor: float, extra: float) -> None:
    richer = dict(dex)
    if more in ("depth", "both"):
        richer["depth"] = tuple(d * factor + extra for d in dex["depth"])
    if more in ("volume", "both"):
        richer["volume"] = tuple(v * factor + extra for v in dex["volume"])
    policy = policy_with(**changes)
    a = run_risk(one_token(units, dex=dex), policy)
    b = run_risk(one_token(units, dex=richer), policy)
    for name in ("liquidity_term", "h_size", "haircut"):
        assert (getattr(b.holdings, name) <= getattr(a.holdings, name) + 1e-12).all(), name
    # the token's collateral after the platform cut never falls either (the joint cost falls with A)
    pa = (a.holdings.collateral_before_caps * a.tokens.platform_factor[0]).sum()
    pb = (b.holdings.collateral_before_caps * b.tokens.platform_factor[0]).sum()
    assert pb >= pa * (1 - 1e-12) - 1e-9
    assert (b.tokens.platform_cost <= a.tokens.platform_cost + 1e-12).all()


# -- no measures: the configured method exactly ------------------------------------------------------------


def _same_numbers(a: RiskRun, b: RiskRun) -> None:
    for part, keys in (
        ("holdings", ("market_value", "codes", "h_size", "haircut", "collateral_before_caps", "collateral_value")),
        ("wallets", ("collateral", "equity", "excess", "status", "l_joint", "l_indep", "worst_scenario",
                     "worst_scenario_loss", "stressed_excess", "binding", "regime", "stale_driven")),
        ("tokens", ("value_factor", "codes", "platform_factor", "pledged_units")),
    ):
        for key in keys:
            np.testing.assert_array_equal(getattr(getattr(a, part), key), getattr(getattr(b, part), key),
                                          err_msg=f"{part}.{key}")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=random_world(liquidity=True), policy=random_policy())
def test_without_usable_measures_the_numbers_are_those_of_no_liquidity_table(world: Snapshot, policy: Policy) -> None:
    """No table, an empty table, only stale measures, and measures with [liquidity] off: the same run,
    bit for bit (and the engine without a table is the reference's configured method:
    test_engine_vs_reference.py)."""
    n_t = len(world.tokens)
    none = run_risk(with_liquidity(world, None), policy)
    _same_numbers(run_risk(with_liquidity(world, Liquidity.absent(n_t)), policy), none)
    if world.liquidity is not None:
        stale = dataclasses.replace(world.liquidity, fresh=np.zeros(n_t, dtype=bool))
        run = run_risk(with_liquidity(world, stale), policy)
        _same_numbers(run, none)
        assert (run.tokens.liquidity_source != LiquiditySource.MEASURED).all()
        off = policy.model_copy(update={"liquidity": policy.liquidity.model_copy(update={"enabled": False})})
        _same_numbers(run_risk(world, off), none)
    assert (none.wallets.liquidity_stress_loss == 0).all()
    assert (none.holdings.liquidity_source == LiquiditySource.CONFIGURED).all()


def test_the_bundled_policies_carry_the_liquidity_parameters() -> None:
    ours, kraken = load_policy(DEFAULT_POLICY), load_policy(KRAKEN_POLICY)
    assert ours.liquidity.enabled and ours.liquidity.impact_y == 1.0 and ours.liquidity.participation == 0.2
    assert ours.liquidity.depth_move_bp == 100 and ours.liquidity.impact_cap == 0.5
    assert ours.liquidity.nav_tolerance_bp == 200.0 and ours.stress.depth_factor == 0.2
    assert [s.risk_off for s in ours.stress.scenarios] == [True, True, True, True, False, True]
    assert not kraken.liquidity.enabled  # the disclosed rule has no DEX-based term
    dex = dict(depth=(1.0, 2.0, 5.0), volume=(5.0, 35.0), price=100.0)
    a, b = run_risk(one_token([300.0], dex=dex), kraken), run_risk(one_token([300.0]), kraken)
    _same_numbers(a, b)


# -- a split with no market move ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(MODELS), ratio=st.sampled_from(RATIOS), seed=st.integers(0, 2**31),
       session=st.integers(2, 40), printed=st.booleans(), premium=st.sampled_from([-0.3, -0.05, 0.0, 0.01, 0.4]),
       depth=st.sampled_from([0.0, 10.0, 5e3, 1e6]), volume=st.sampled_from([0.0, 100.0, 1e5]))
def test_a_split_with_no_market_move_leaves_the_liquidity_term_and_value_unchanged(
        model, ratio, seed, session, printed, premium, depth, volume) -> None:
    """Depth and volume in token units scale by the ratio the token's units do (the split's ratio for an
    xStock, whose balances move with it; 1 for an ERC-8056 token, whose multiplier does), the pool price per
    token divides by it: the holding's liquidity term, value and collateral are those without the split."""
    returns = np.random.default_rng(seed).normal(0.0, 0.015, 80)
    session = session if printed else 1
    plain = action_world(model, returns, None, session, printed)
    acted = action_world(model, returns, ratio, session, printed)
    policy = actions_policy()
    nav = float(run_risk(plain, policy).tokens.value_factor[0])
    u = float(acted.holdings.balance_units(acted.tokens.decimals)[0] / plain.holdings.balance_units(
        plain.tokens.decimals)[0])
    assert u == pytest.approx(ratio[0] / ratio[1] if model[0] == Accounting.REBASING_SHARES else 1.0, rel=1e-12)

    def dex(scale: float) -> Liquidity:
        return measures(1, t0=dict(depth=(depth * scale, 2 * depth * scale, 5 * depth * scale),
                                   volume=(volume * scale, 7 * volume * scale), price=nav * (1 + premium) / scale))

    a = run_risk(with_liquidity(plain, dex(1.0)), policy)
    b = run_risk(with_liquidity(acted, dex(u)), policy)
    # to the rounding of the feed's 8-decimal answers (sigma, hence every add-on, moves by about 1e-9)
    mv = float(a.holdings.market_value[0])
    assert float(b.holdings.market_value[0]) == pytest.approx(mv, rel=1e-9)
    for key in ("liquidity_term", "h_size", "haircut"):
        assert float(getattr(b.holdings, key)[0]) == pytest.approx(float(getattr(a.holdings, key)[0]), abs=1e-9), key
    assert float(b.holdings.collateral_value[0]) == pytest.approx(float(a.holdings.collateral_value[0]), abs=1e-9 * mv)
    assert int(a.holdings.value_flags[0]) == int(b.holdings.value_flags[0])
    assert int(b.holdings.codes[0]) == 0
    scale = float(a.holdings.market_value[0]) + float(a.positions.notional[0])
    assert float(b.wallets.stressed_excess[0]) == pytest.approx(float(a.wallets.stressed_excess[0]), abs=1e-9 * scale)


@settings(max_examples=40, deadline=None)
@given(ratio=st.sampled_from([r for r in RATIOS if r[0] > r[1]]), seed=st.integers(0, 2**31),
       session=st.integers(2, 40),
       depth=st.sampled_from([10.0, 5e3, 1e6]), volume=st.sampled_from([0.0, 100.0, 1e5]))
def test_a_split_the_pools_have_not_priced_yet_changes_nothing_when_measured_in_value(
        ratio, seed, session, depth, volume) -> None:
    """An xStock's split triples every balance, the pools' among them, with no swap: until the arbitrage reaches
    a pool, its state (and so its depth and volume in token units) and its price per token are those of before,
    now a premium over the new NAV. Counted in value (what selling the depth pays, what the swaps traded) at the
    engine's NAV, the measures scale with the balances and the holding's liquidity term, value and collateral
    are those without the split; counted in token units they would not (the holding grew against the same depth).
    (A reverse split leaves the pool at a discount to the new NAV until the arbitrage: the NAV rule then values
    at the pool's price, the executable one, as it values any discount beyond the tolerance.)"""
    model = (Accounting.REBASING_SHARES, PriceQuote.PER_TOKEN)
    returns = np.random.default_rng(seed).normal(0.0, 0.015, 80)
    plain = action_world(model, returns, None, session, True)
    acted = action_world(model, returns, ratio, session, True)
    policy = actions_policy()
    nav = float(run_risk(plain, policy).tokens.value_factor[0])

    def dex() -> Liquidity:  # the pool as it was before the split, in both worlds
        liq = measures(1, t0=dict(depth=(depth, 2 * depth, 5 * depth), volume=(volume, 7 * volume), price=nav))
        usd = {f"depth_{k}pct_usd": np.array([depth * m * nav]) for k, m in ((1, 1), (2, 2), (5, 5))}
        return dataclasses.replace(liq, volume_24h_usd=np.array([volume * nav]),
                                   volume_7d_usd=np.array([7 * volume * nav]), **usd)

    a = run_risk(with_liquidity(plain, dex()), policy)
    b = run_risk(with_liquidity(acted, dex()), policy)
    mv = float(a.holdings.market_value[0])
    assert float(b.holdings.market_value[0]) == pytest.approx(mv, rel=1e-9)  # the premium never raises value
    for key in ("liquidity_term", "h_size", "haircut"):
        assert float(getattr(b.holdings, key)[0]) == pytest.approx(float(getattr(a.holdings, key)[0]), abs=1e-9), key
    assert float(b.holdings.collateral_value[0]) == pytest.approx(float(a.holdings.collateral_value[0]), abs=1e-9 * mv)
    in_units = dataclasses.replace(dex(), **{f"{k}_usd": None for k in ("depth_1pct", "depth_2pct", "depth_5pct",
                                                                         "volume_24h", "volume_7d")})
    c = run_risk(with_liquidity(acted, in_units), policy)
    if float(a.holdings.liquidity_term[0]) < policy.liquidity.impact_cap:
        assert float(c.holdings.liquidity_term[0]) > float(b.holdings.liquidity_term[0])


# -- the price against NAV ------------------------------------------------------------------------------


@SETTINGS
@given(premium=st.one_of(st.floats(-0.95, 3.0), st.sampled_from([-0.02, 0.02, -0.0200001, 0.0])),
       tolerance=st.sampled_from([0.0, 50.0, 200.0, 1_000.0]),
       model=st.sampled_from([(a, q) for a in Accounting for q in PriceQuote]),
       multiplier=st.sampled_from([10**18, 3 * 10**18, 10**18 // 2]), units=st.sampled_from([0.5, 10.0, 1e6]))
def test_a_premium_never_raises_value_and_a_discount_beyond_the_tolerance_lowers_it_to_the_pool(
        premium: float, tolerance: float, model, multiplier: int, units: float) -> None:
    b = WorldBuilder()
    f = b.feed("AAPL/USD", 200.0, updated_at=NOW - 60)
    t = b.token("AAPLx", f, accounting=model[0], quote=model[1], multiplier=multiplier)
    b.hold(b.wallet(), t, units)
    snap = b.build(NOW)
    policy = policy_with(**{"liquidity.nav_tolerance_bp": tolerance})
    nav = float(run_risk(snap, policy).tokens.value_factor[0])
    pool = nav * (1 + premium)
    dex = dict(depth=(1e6, 2e6, 5e6), volume=(1e5, 7e5))
    judged = run_risk(with_liquidity(snap, measures(1, t0={**dex, "price": pool})), policy)
    unjudged = run_risk(with_liquidity(snap, measures(1, t0={**dex, "price": np.nan})), policy)
    h, u = judged.holdings, unjudged.holdings
    assert judged.tokens.value_factor[0] <= nav
    assert h.market_value[0] <= u.market_value[0]
    assert h.collateral_value[0] <= u.collateral_value[0]
    assert int(h.codes[0]) == int(u.codes[0])  # the flag never makes a holding ineligible (no dust here)
    bp = float(judged.tokens.nav_premium_bp[0])
    assert bp == pytest.approx(1e4 * premium, abs=1e-6)
    flagged = int(h.value_flags[0]) == ValuationFlag.NAV_DEVIATION
    assert flagged == (abs(bp) > tolerance)
    if flagged and bp < 0:
        assert judged.tokens.value_factor[0] == pool
        assert h.market_value[0] == pytest.approx(units * pool, rel=1e-15)
    else:  # within the tolerance, or a premium: NAV, exactly as without a pool price
        assert h.market_value[0] == u.market_value[0]
        assert h.collateral_value[0] == u.collateral_value[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=dex_world(), policy=random_policy(liquidity=True))
def test_pool_prices_only_ever_lower_values_and_risk_off_stresses_only_ever_lose(world: Snapshot,
                                                                                policy: Policy) -> None:
    run = run_risk(world, policy)
    if world.liquidity is None:
        return
    no_price = dataclasses.replace(world.liquidity, pool_price_usd=np.full(len(world.tokens), np.nan))
    ref = run_risk(with_liquidity(world, no_price), policy)
    assert (run.holdings.market_value <= ref.holdings.market_value).all()
    # the flag makes nothing ineligible; only the dust floor, judged on the value used, may then apply
    dust = np.uint32(Eligibility.BELOW_MINIMUM)
    np.testing.assert_array_equal(run.holdings.codes & ~dust, ref.holdings.codes & ~dust)
    assert (run.wallets.liquidity_stress_loss >= 0).all()
    unstressed = policy.model_copy(update={"stress": policy.stress.model_copy(update={"depth_factor": 1.0})})
    calm = run_risk(world, unstressed)
    tol = 1e-9 * np.maximum(1.0, np.abs(calm.wallets.equity) + calm.wallets.im + calm.wallets.l_joint)
    assert (run.wallets.stressed_excess <= calm.wallets.stressed_excess + tol).all()
    assert (run.wallets.worst_scenario_loss >= calm.wallets.worst_scenario_loss - tol).all()


# -- inputs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    (dict(depth_1pct=-1.0), "liquidity.depth_1pct: 1 measured fresh tokens have a negative"),
    (dict(volume_7d=np.nan), "liquidity.volume_7d: 1 measured fresh tokens have a negative, NaN"),
    (dict(depth_2pct=0.5), "liquidity.depth_2pct: smaller than depth_1pct"),
    (dict(depth_5pct=1.5), "liquidity.depth_5pct: smaller than depth_2pct"),
    (dict(volume_7d=4.0), "liquidity.volume_7d: smaller than volume_24h"),
    (dict(pool_price_usd=0.0), "liquidity.pool_price_usd: must be a positive finite"),
    (dict(pool_price_usd=np.inf), "liquidity.pool_price_usd: must be a positive finite"),
])
def test_measures_that_cannot_be_used_are_refused_by_name(change: dict, message: str) -> None:
    snap = one_token([1.0])
    liq = measures(1, t0=dict(depth=(1.0, 2.0, 5.0), volume=(5.0, 35.0), price=100.0))
    for key, value in change.items():
        getattr(liq, key)[0] = value
    with pytest.raises(SnapshotError, match=message.replace("(", r"\(")):
        with_liquidity(snap, liq)
    # a stale row, or one without pools, is not used, whatever it holds
    liq.fresh[0] = False
    with_liquidity(snap, liq)
    liq.fresh[0], liq.measured[0] = True, False
    with_liquidity(snap, liq)


def test_a_table_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(SnapshotError, match=r"liquidity.measured: 2 rows, expected one per token \(1\)"):
        with_liquidity(one_token([1.0]), Liquidity.absent(2))


def test_a_crypto_token_with_measures_works_too() -> None:
    """A 24/7 feed: the same law on the feed's own sigma (every feed kind is judged alike)."""
    b = WorldBuilder()
    f = b.feed("USDC/USD", 1.0, kind=FeedKind.STABLE, updated_at=NOW - 60)
    t = b.token("USDC", f, decimals=6, accounting=Accounting.PLAIN, quote=PriceQuote.PER_TOKEN,
                dex=dict(depth=(1e6, 2e6, 5e6), volume=(1e7, 7e7), price=0.999))
    b.hold(b.wallet(), t, 1e6)
    run = run_risk(b.build(NOW), default_policy())
    expected = 0.05 * math.sqrt(2.0) * math.sqrt(1e6 / (0.2 * 2.0 * 1e7 + 1e6))
    assert run.holdings.liquidity_term[0] == pytest.approx(expected, rel=1e-12)
    assert int(run.holdings.value_flags[0]) == 0  # -10 bp: within the tolerance
