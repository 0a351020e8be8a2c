"""The haircut backtest (docs/risk.md section 14): windows, failures and Kupiec's test on hand-made histories
whose moves are known, and the economic invariants (a split is no loss; an oracle's silence is no window)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexer.risk.backtest import (
    ALL,
    CONSISTENT,
    GAP,
    HORIZON,
    MIN_RETURNS,
    OVER,
    UNDER,
    backtest,
    kupiec_pof,
    verdict,
)
from indexer.risk.calendar import xnys
from indexer.risk.policy import load_policy
from indexer.types import Accounting, PriceQuote

from .worlds import WorldBuilder, default_policy, ny

CAL = xnys()
NOW = ny("2026-11-25 17:00")  # a Wednesday after the close


# -- Kupiec's test --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "accepted"), [(255, range(1, 7)), (510, range(2, 11)), (1000, range(5, 17))])
def test_kupiec_non_rejection_regions_match_the_published_table(n: int, accepted: range) -> None:
    """Jorion, Value at Risk (3rd ed.), table 6-3 (from Kupiec 1995), p = 1%, 95% confidence: no rejection
    for N < 7 at T = 255, 1 < N < 11 at T = 510, 4 < N < 17 at T = 1000. The table shows no lower bound at
    T = 255; the statistic itself rejects N = 0 there (LR = -2 * 255 * ln 0.99 = 5.13 > 3.84)."""
    for x in range(0, 30):
        lr, pv = kupiec_pof(n, x, 0.01)
        v = verdict(n, x, 0.01, pv)
        if x in accepted:
            assert v == CONSISTENT, (n, x, lr)
        else:
            assert v == (OVER if x < accepted.start else UNDER), (n, x, lr)


def test_kupiec_statistic_and_p_value() -> None:
    lr, pv = kupiec_pof(250, 0, 0.01)
    assert lr == pytest.approx(-2 * 250 * math.log(0.99))  # 5.025
    assert pv == pytest.approx(0.02498, abs=1e-5)
    assert kupiec_pof(100, 1, 0.01) == (0.0, 1.0)  # exactly the expected rate
    assert all(math.isnan(v) for v in kupiec_pof(0, 0, 0.01))


# -- hand-made histories --------------------------------------------------------------------------------

def closes(n: int) -> np.ndarray:
    return CAL.closes_up_to(NOW, n)


def world(prices: np.ndarray, *, times: np.ndarray | None = None, extra: list[tuple[int, float]] = (),
          ratio: tuple[int, int] | None = None, effective: int = 0):
    """AAPLx on one feed that prints ``prices`` at ``times`` (default: the last len(prices) closes), plus
    ``extra`` rounds; a corporate action ``ratio`` from ``effective`` divides the printed price from then on."""
    ts = closes(len(prices)) if times is None else times
    r = 1.0 if ratio is None else ratio[0] / ratio[1]
    hist = sorted([(int(t), float(p) / (r if ratio and t >= effective else 1.0))
                   for t, p in zip(ts, prices, strict=True)] + list(extra))
    b = WorldBuilder()
    f = b.feed("AAPL/USD", hist[-1][1], updated_at=hist[-1][0], history=hist)
    b.token("AAPLx", f, accounting=Accounting.REBASING_SHARES, quote=PriceQuote.PER_SHARE,
            actions=[(effective, *ratio)] if ratio else None)
    return b.build(NOW)


def run(snap, policy=None, **kw):
    return backtest(snap.tokens, snap.feeds, snap.history, snap.actions, NOW, policy or default_policy(), CAL, **kw)


def calm(n: int, seed: int = 1, sigma: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))


def cell(bt, group: str, kind: str):
    return next(c for c in (*bt.tokens, *bt.classes) if c.group == group and c.kind == kind)


def test_windows_are_non_overlapping_horizons_after_the_warm_up() -> None:
    bt = run(world(calm(200)))
    w = bt.windows
    h = w.kind == 0
    starts = w.start[h]
    assert bt.horizon_sessions == 2
    # each start is a session close two sessions after the previous one: no window shares a return
    idx = np.searchsorted(CAL.closes, starts)
    assert (np.diff(idx) == 2).all()
    # the first window's sigma rests on MIN_RETURNS returns (a window every other session from the first close)
    assert idx[0] - np.searchsorted(CAL.closes, closes(200)[0]) in (MIN_RETURNS, MIN_RETURNS + 1)
    assert bt.skipped.warm_up >= MIN_RETURNS // 2
    c = cell(bt, "AAPLx", HORIZON)
    assert c.windows == int(h.sum()) and c.windows >= 85
    # calm 1% days: no window loses more than the 25% base haircut, and the loss is the price move itself
    assert c.failures == 0 and c.verdict in (CONSISTENT, OVER)
    t0 = int(starts[3])
    k0, k1 = np.searchsorted(closes(200), [t0, w.end[h][3]])
    p = calm(200)
    assert w.loss[h][3] == pytest.approx(1 - p[k1] / p[k0], abs=1e-7)  # answers carry 8 decimals


def test_a_crash_fails_the_window_it_falls_in_and_only_that_one() -> None:
    p = calm(120, sigma=0.005)
    p[100:] *= 0.55  # -45% at session 100, after which the market stays there
    bt = run(world(p))
    w = bt.windows
    failed = w.start[w.failed]
    assert len(failed) == 1  # 45% exceeds 25% + h_vol + h_gap + the smallest size add-on
    k = int(np.searchsorted(closes(120), failed[0]))
    assert k in (98, 99)  # the window that spans session 99 -> 100
    assert 0.44 < w.loss[w.failed][0] < 0.46
    assert w.haircut[w.failed][0] < 0.35
    c = cell(bt, ALL, HORIZON)
    assert c.failures == 1 and c.worst_loss == pytest.approx(w.loss[w.failed][0])
    assert c.worst_start == failed[0]


def test_statistical_failures_count_moves_beyond_the_volatility_part_alone() -> None:
    p = calm(120, sigma=0.005)
    p[100:] *= 0.9  # -10%: beyond z * sigma * sqrt(2) (about 3.3% at the 1% floor), well inside 25% + that
    bt = run(world(p))
    w = bt.windows
    h = w.kind == 0
    assert int(w.failed[h].sum()) == 0
    assert int(w.failed_statistical[h].sum()) == 1
    assert (w.statistical[h] == pytest.approx(2.3263478740 * w.sigma[h] * math.sqrt(2.0)))
    c = cell(bt, "AAPLx", HORIZON)
    assert (c.statistical_windows, c.statistical_failures) == (c.windows, 1)


def test_a_split_with_no_market_move_is_no_loss() -> None:
    p = calm(150, sigma=0.01)
    effective = int(closes(150)[90]) + 14 * 3_600  # 06:00 after session 90's close
    plain = run(world(p))
    split = run(world(p, ratio=(3, 1), effective=effective))
    assert len(split.windows) == len(plain.windows)
    # equal up to the 8-decimal rounding of the printed price divided by 3
    np.testing.assert_allclose(split.windows.loss, plain.windows.loss, atol=1e-7)
    np.testing.assert_allclose(split.windows.haircut, plain.windows.haircut, rtol=1e-6)
    assert split.windows.failed.sum() == 0
    # without the action record the same prints are a 67% crash
    unrecorded = world(p, ratio=(3, 1), effective=effective)
    unrecorded = type(unrecorded)(**{**unrecorded.__dict__, "actions": None})
    crash = run(unrecorded)
    assert crash.windows.loss.max() == pytest.approx(2 / 3, abs=0.03)


def test_an_oracle_stall_is_no_window() -> None:
    ts = closes(150)
    p = calm(150)
    keep = np.ones(150, dtype=bool)
    keep[100:110] = False  # ten sessions without a round
    bt = run(world(p[keep], times=ts[keep]))
    full = run(world(p))
    assert bt.skipped.stalled >= 4
    assert cell(bt, "AAPLx", HORIZON).windows == cell(full, "AAPLx", HORIZON).windows - bt.skipped.stalled


def test_gap_windows_span_weekends_and_holidays_to_the_first_print_after() -> None:
    ts = closes(150)
    p = calm(150, sigma=0.004)
    # a first round 5 minutes after each open that follows a closure of a day or more
    opens = [int(CAL.next_open_at_or_after(int(t))) for t in ts[:-1]]
    extra = [(o + 300, float(p[i]) * 1.001) for i, o in enumerate(opens) if o - int(ts[i]) > 86_400]
    thanksgiving_eve = ny("2026-11-25 16:00")
    bt = run(world(p, extra=extra))
    w = bt.windows
    g = w.kind == 1
    assert int(g.sum()) == cell(bt, "AAPLx", GAP).windows > 20
    assert set(w.days[g].tolist()) <= {1.0, 2.0}  # weekends 1 business day, Good Friday or a holiday 2
    ends = w.end[g]
    assert (ends - np.array([int(CAL.next_open_at_or_after(int(t))) for t in w.start[g]]) == 300).all()
    # a 0.1% move over a weekend fails nothing; the gap's statistical part is z * sigma * sqrt(days)
    assert not w.failed[g].any() and not w.failed_statistical[g].any()
    np.testing.assert_allclose(w.statistical[g], np.minimum(0.15, 2.3263478740 * w.sigma[g] * np.sqrt(w.days[g])))
    assert thanksgiving_eve not in set(w.start.tolist())  # NOW is that evening: no session after it yet


def test_flat_haircut_policies_have_no_statistical_part() -> None:
    p = calm(150, sigma=0.02)
    p[120:] *= 0.85
    kraken = load_policy("kraken_2026")
    bt = run(world(p), kraken)
    w = bt.windows
    assert len(w) and np.isnan(w.statistical).all()
    c = cell(bt, "AAPLx", HORIZON)
    assert c.statistical_windows == 0 and c.windows > 0
    base = kraken.token_base_haircut("AAPLx") + kraken.size.bands[0].addon
    np.testing.assert_allclose(w.haircut, base)


def test_the_haircut_at_a_start_uses_only_the_history_before_it() -> None:
    p = calm(200, sigma=0.01)
    p[180:] *= 0.7  # a crash late in the history
    full = run(world(p))
    ts = closes(200)
    cut = int(ts[170])
    early = backtest(*(lambda s: (s.tokens, s.feeds, s.history, s.actions))(world(p[:171], times=ts[:171])),
                     cut, default_policy(), CAL)
    a = full.windows
    keep = a.end <= cut
    assert keep.sum() == len(early.windows) > 40
    np.testing.assert_allclose(a.haircut[keep], early.windows.haircut, rtol=1e-12)
    np.testing.assert_allclose(a.sigma[keep], early.windows.sigma, rtol=1e-12)
