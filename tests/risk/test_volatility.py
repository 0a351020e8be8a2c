"""Returns at equity closes and the EWMA volatility (RISK.md sections 4 and 7)."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.risk.inputs import FeedHistory
from indexer.risk.uint256 import int_array
from indexer.risk.volatility import ewma_volatility, log_returns, prices_at_closes

from .worlds import ny


def history(*feeds: list[tuple[int, int]]) -> FeedHistory:
    ts, ans, offsets = [], [], [0]
    for rounds in feeds:
        ts += [t for t, _ in rounds]
        ans += [a for _, a in rounds]
        offsets.append(len(ts))
    return FeedHistory(np.array(offsets, dtype=np.int64), np.array(ts, dtype=np.int64), int_array(ans))


def test_price_at_a_close_is_the_last_round_at_or_before_it() -> None:
    fri, mon = ny("2025-11-21 16:00"), ny("2025-11-24 16:00")
    rounds = [(fri - 60, 100), (fri, 101), (fri + 1, 150), (ny("2025-11-22 12:00"), 170), (mon - 5, 102)]
    prices = prices_at_closes(history(rounds), np.array([0]), np.array([fri, mon]))
    np.testing.assert_array_equal(prices[:, 0], [101.0, 102.0])  # the Saturday round never becomes a return


def test_missing_and_non_positive_rounds_give_no_price() -> None:
    c = np.array([ny("2025-11-20 16:00"), ny("2025-11-21 16:00")])
    prices = prices_at_closes(history([(int(c[1]) - 10, 0)], []), np.array([8, 8]), c)
    assert np.isnan(prices).all()


def test_constant_returns_give_sigma_equal_to_the_return() -> None:
    r = np.full((50, 1), 0.013)
    est = ewma_volatility(r, 0.94)
    assert est.sigma_raw[0] == pytest.approx(0.013, rel=1e-12)
    assert est.sigma_last[0] == pytest.approx(0.013, rel=1e-12)


def test_sigma_keeps_the_peak_of_the_window_after_calm_days() -> None:
    r = np.concatenate([np.full(20, 0.01), [0.10], np.full(100, 0.005)])[:, None]
    est = ewma_volatility(r, 0.94)
    # the anti-procyclical sigma remembers the spike; the EWMA at the last close has decayed
    assert est.sigma_last[0] < 0.02 < est.sigma_raw[0]
    v0 = np.mean(r[:, 0] ** 2)
    v = v0
    peak = 0.0
    for x in r[:, 0]:
        v = 0.94 * v + 0.06 * x * x
        peak = max(peak, v)
    assert est.sigma_raw[0] == pytest.approx(np.sqrt(peak), rel=1e-12)


def test_correlation_of_identical_and_opposite_series() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.01, 200)
    est = ewma_volatility(np.column_stack([x, x, -x, np.full(200, np.nan)]), 0.94)
    np.testing.assert_allclose(est.corr[:3, :3], [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-12)
    assert np.isnan(est.sigma_raw[3]) and est.n_returns[3] == 0
    np.testing.assert_array_equal(est.corr[3], [0, 0, 0, 1])


def test_log_returns_of_prices() -> None:
    r = log_returns(np.array([[100.0], [110.0], [np.nan], [121.0]]))
    assert r[0, 0] == pytest.approx(np.log(1.1))
    assert np.isnan(r[1:, 0]).all()
