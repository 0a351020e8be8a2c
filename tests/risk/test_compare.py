"""Policies side by side (indexer.risk.compare): totals are the engine's sums, the under-reserved wallets
are exactly those where a venue counts more cushion than ours, largest shortfall first. The synthetic
world under the real engine, and hand-made wallet arrays."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from indexer.risk import MarginStatus, WalletRisk, load_policy, run_risk
from indexer.risk.compare import STATUS_NAMES, compare_runs, compare_wallets
from tests.oracles.synthetic import synthetic_world

from .worlds import DEFAULT_POLICY, KRAKEN_POLICY, ny

H, MC, LQ, UP = (int(s) for s in MarginStatus)
NAMES = ["default", "kraken_2026"]


@pytest.fixture(scope="module")
def world():
    snap = synthetic_world(300, now=ny("2025-11-29 12:00"), seed=21)  # a weekend: our gap add-on applies
    ours, kraken = load_policy(DEFAULT_POLICY), load_policy(KRAKEN_POLICY)
    wallets = [str(w) for w in snap.accounts.wallet]
    return snap, ours, kraken, wallets


def wallet_arrays(excess, stressed, status, *, collateral=None, im=None) -> WalletRisk:
    """Per-wallet results as the engine returns them, with equity = collateral + 0 upnl + 0 cash."""
    excess = np.asarray(excess, dtype=float)
    n = len(excess)
    im = np.zeros(n) if im is None else np.asarray(im, dtype=float)
    collateral = excess + im if collateral is None else np.asarray(collateral, dtype=float)
    z = np.zeros(n)
    return WalletRisk(
        market_value=collateral * 2, collateral=collateral, im=im, mm=im / 2, upnl=z, cash=z, equity=collateral,
        excess=excess, status=np.asarray(status, dtype=np.int8), l_joint=z, l_indep=z, wrong_way=z,
        worst_scenario=np.zeros(n, dtype=np.int16), worst_scenario_loss=excess - np.asarray(stressed, dtype=float),
        stressed_excess=np.asarray(stressed, dtype=float), binding=np.zeros(n, dtype=np.int16))


def test_totals_and_wallets_are_the_engines_arrays_and_every_gap_is_found(world) -> None:
    snap, ours, kraken, wallets = world
    runs = [run_risk(snap, ours), run_risk(snap, kraken)]
    c = compare_runs(runs, NAMES, wallets)

    assert c.names == tuple(NAMES) and c.versions == (ours.version_string, kraken.version_string)
    for t, r in zip(c.totals, runs, strict=True):
        w = r.wallets
        assert t.wallets == len(wallets) == len(w.excess)
        for key in ("market_value", "collateral", "equity", "im", "excess", "stressed_excess"):
            assert getattr(t, key) == pytest.approx(float(np.sum(getattr(w, key))), rel=1e-12), key
        counts = np.bincount(w.status.astype(np.int64), minlength=len(MarginStatus))
        assert t.status_counts == {s: int(counts[i]) for i, s in enumerate(STATUS_NAMES)}
        assert sum(t.status_counts.values()) == len(wallets)
        assert t.stressed_negative == int(np.sum(w.stressed_excess < 0))
    # the policies differ where they should: flat haircuts and ten eligible tokens against ours
    assert c.totals[0].collateral != pytest.approx(c.totals[1].collateral, rel=1e-3)

    # every synthetic wallet has positions, so every one is compared, with the engine's own numbers
    active = np.zeros(len(wallets), dtype=bool)
    active[runs[0].positions.wallet_idx] = True
    active[runs[0].holdings.wallet_idx[runs[0].holdings.balance > 0]] = True
    assert (c.wallet_idx == np.flatnonzero(active)).all() and c.totals[0].active_wallets == len(c.wallet_idx)
    assert list(c.wallets) == [wallets[i] for i in c.wallet_idx]
    for k, r in enumerate(runs):
        np.testing.assert_array_equal(c.collateral[k], r.wallets.collateral[c.wallet_idx])
        np.testing.assert_array_equal(c.excess[k], r.wallets.excess[c.wallet_idx])
        np.testing.assert_array_equal(c.stressed_excess[k], r.wallets.stressed_excess[c.wallet_idx])
        np.testing.assert_array_equal(c.status[k], r.wallets.status[c.wallet_idx])

    # the under-reserved list, one wallet at a time in plain Python
    a, b = runs[0].wallets, runs[1].wallets
    expected = {}
    for i in np.flatnonzero(active).tolist():
        gap = float(b.excess[i] - a.excess[i])
        flip = int(b.status[i]) == H and int(a.status[i]) in (MC, LQ)
        stress_flip = b.stressed_excess[i] >= 0 > a.stressed_excess[i]
        if gap > 0.01 + 1e-9 * max(abs(a.excess[i]), abs(b.excess[i])) or flip or stress_flip:
            expected[wallets[i]] = (gap, flip, stress_flip)
    u = c.under
    got = {str(c.wallets[r]): (float(s), bool(f), bool(sf))
           for r, s, f, sf in zip(u.row, u.shortfall, u.status_flip, u.stress_flip, strict=True)}
    assert len(got) == len(u) == c.totals[1].under_reserved > 20
    assert got.keys() == expected.keys()
    for w, (gap, flip, stress_flip) in expected.items():
        assert got[w] == (pytest.approx(gap, rel=1e-12), flip, stress_flip), w
    assert (u.policy == 1).all() and (np.diff(u.shortfall) <= 0).all()
    assert u.status_flip.any() and u.stress_flip.any()
    assert c.totals[1].shortfall == pytest.approx(float(u.shortfall.sum()), rel=1e-12)
    assert c.totals[0].under_reserved == 0 and c.totals[0].shortfall == 0.0


def test_a_wallet_healthy_under_the_venue_and_liquidated_under_ours_comes_first(world) -> None:
    snap, ours, kraken, wallets = world
    a, b = run_risk(snap, ours).wallets, run_risk(snap, kraken).wallets
    gap = b.excess - a.excess
    w = int(np.argmax(gap))  # the wallet the venue counts the most extra cushion for
    assert a.im[w] > 0 and gap[w] > b.im[w] - a.mm[w] + 2.0
    # take cash away until our equity is a dollar under maintenance margin; the venue still sees it healthy
    cash = snap.accounts.cash_usd.copy()
    cash[w] += float(a.mm[w] - a.equity[w] - 1.0)
    moved = replace(snap, accounts=replace(snap.accounts, cash_usd=cash))
    runs = [run_risk(moved, ours), run_risk(moved, kraken)]
    assert MarginStatus(runs[0].wallets.status[w]) == MarginStatus.LIQUIDATE
    assert MarginStatus(runs[1].wallets.status[w]) == MarginStatus.HEALTHY

    c = compare_runs(runs, NAMES, wallets)
    u = c.under
    assert c.wallets[u.row[0]] == wallets[w] and u.policy[0] == 1
    assert u.status_flip[0] and u.shortfall[0] == pytest.approx(gap[w], rel=1e-9)
    assert c.status_names(0)[u.row[0]] == "liquidate" and c.status_names(1)[u.row[0]] == "healthy"
    # cash moved our totals by exactly the cash taken, and nothing else of the wallet's collateral
    assert c.totals[0].equity - (float(np.sum(a.equity))) == pytest.approx(float(cash[w] - snap.accounts.cash_usd[w]),
                                                                            rel=1e-9)
    assert c.collateral[0, u.row[0]] == pytest.approx(a.collateral[w], rel=1e-12)


def test_hand_made_wallets_pairs_of_three_policies_by_shortfall() -> None:
    wallets = [f"0x{i:040x}" for i in range(7)]
    #         0: venue +100     1: +0.001   2: less     3: stress flip   4: flip (+5,000)   5: idle   6: +100
    ours = wallet_arrays([50.0, 10.0, 80.0, 20.0, -4_000.0, 0.0, 30.0], [10.0, 1.0, 5.0, -1.0, -9_000.0, 0.0, 5.0],
                         [H, H, H, H, LQ, H, H], im=[100.0, 10, 10, 10, 8_000, 0, 10])
    venue = wallet_arrays([150.0, 10.001, 60.0, 19.0, 1_000.0, 1e9, 130.0], [40.0, 1.0, 4.0, 3.0, 200.0, 1e9, 9.0],
                          [H, H, H, H, H, H, H], im=[100.0, 10, 10, 10, 8_000, 0, 10])
    other = wallet_arrays([50.0, 10.0, 80.0, 20.0, -4_000.0, 0.0, 5_030.0], [10.0, 1.0, 5.0, -1.0, -9_000.0, 0.0, 9.0],
                          [H, H, H, H, LQ, H, H], im=[100.0, 10, 10, 10, 8_000, 0, 10])
    active = np.array([True, True, True, True, True, False, True])  # wallet 5 holds nothing and has no position
    c = compare_wallets([ours, venue, other], ["ours", "venue", "other"], wallets, active)

    u = c.under
    pairs = [(str(c.wallets[r]), c.names[k]) for r, k in zip(u.row, u.policy, strict=True)]
    # 6 against "other" and 4 against "venue" share the 5,000 shortfall: venue order first, then wallet
    assert pairs == [(wallets[4], "venue"), (wallets[6], "other"), (wallets[0], "venue"), (wallets[6], "venue"),
                     (wallets[3], "venue")]
    np.testing.assert_allclose(u.shortfall, [5_000.0, 5_000.0, 100.0, 100.0, -1.0])
    np.testing.assert_allclose(u.stressed_shortfall, [9_200.0, 4.0, 30.0, 4.0, 4.0])
    assert u.status_flip.tolist() == [True, False, False, False, False]
    assert u.stress_flip.tolist() == [True, False, False, False, True]
    assert [t.under_reserved for t in c.totals] == [0, 4, 1]
    assert [t.shortfall for t in c.totals] == [0.0, pytest.approx(5_199.0), pytest.approx(5_000.0)]
    # the idle wallet is in the totals, not in the comparison
    assert [t.wallets for t in c.totals] == [7, 7, 7] and [t.active_wallets for t in c.totals] == [6, 6, 6]
    assert c.totals[1].excess == pytest.approx(1e9 + 150 + 10.001 + 60 + 19 + 1_000 + 130)
    assert wallets[5] not in set(c.wallets) and c.excess.shape == c.status.shape == (3, 6)
    assert c.totals[0].status_counts == {"healthy": 6, "margin_call": 0, "liquidate": 1, "unpriced": 0}

    # a wider tolerance drops the 100-dollar gaps, never the flips
    wide = compare_wallets([ours, venue], ["ours", "venue"], wallets, active, tolerance_usd=1_000.0)
    assert [str(wide.wallets[r]) for r in wide.under.row] == [wallets[4], wallets[3]]


def test_the_same_policy_twice_has_nothing_under_reserved_and_bad_inputs_are_refused(world) -> None:
    snap, ours, _, wallets = world
    run = run_risk(snap, ours)
    c = compare_runs([run, run], ["a", "b"], wallets)
    assert len(c.under) == 0 and c.totals[1].under_reserved == 0
    assert c.totals[0] == replace(c.totals[1], name="a")
    with pytest.raises(ValueError, match="at least two"):
        compare_runs([run], ["a"], wallets)
    with pytest.raises(ValueError, match="distinct"):
        compare_runs([run, run], ["a", "a"], wallets)
    with pytest.raises(ValueError, match="for 3 wallets"):
        compare_runs([run, run], ["a", "b"], wallets[:3])
    empty = compare_wallets([wallet_arrays([], [], []), wallet_arrays([], [], [])], ["a", "b"], [],
                            np.zeros(0, dtype=bool))
    assert len(empty.under) == 0 and empty.totals[1].wallets == 0 and empty.excess.shape == (2, 0)
