"""Daily returns, EWMA volatility and correlation (RISK.md sections 4 and 7; docs/risk.md section 4).

Each leg is sampled on its own clock, so that neither waits for the other's calendar:
- a stock feed at the XNYS session closes, and, while a session is open, at the block time too: the move
  since the last close is a return as soon as the market has reopened;
- a 24/7 feed (crypto, stablecoins) every 24 hours back from the block time: a weekend crash counts on
  the weekend.
The correlation is estimated on the session grid (with the block time while open), where every feed has a
price at the same instants. Prices are corporate-action adjusted by the caller (``row_factor``).
Loops here run over feeds or over the few hundred return dates, never over wallets or holdings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.risk.inputs import FeedHistory
from indexer.risk.policy import VolatilityPolicy
from indexer.risk.uint256 import to_float_units
from indexer.types import FeedKind

DAY_S = 86_400


def session_grid(closes: np.ndarray, now: int, is_open: bool) -> np.ndarray:
    """The stock leg's sampling instants: the session closes, then the block time while a session is open."""
    closes = np.asarray(closes, dtype=np.int64)
    if is_open and (len(closes) == 0 or now > closes[-1]):
        return np.concatenate([closes, [np.int64(now)]])
    return closes


def continuous_grid(now: int, returns: int) -> np.ndarray:
    """The 24/7 leg's sampling instants: ``returns + 1`` points a day apart, the last at the block time."""
    return now - DAY_S * np.arange(returns, -1, -1, dtype=np.int64)


def prices_at_closes(history: FeedHistory, feed_decimals: np.ndarray, closes: np.ndarray,
                     row_factor: np.ndarray | None = None) -> np.ndarray:
    """Price of each feed at each sampling instant: the answer of its last round with ``updated_at <= t``,
    times its row's ``row_factor`` (the corporate-action factor of the round's own time; 1 when None).

    Returns ``(len(closes), n_feeds)`` float64; NaN where the feed had no round yet or a
    non-positive answer.
    """
    n_feeds = len(history.offsets) - 1
    out = np.full((len(closes), n_feeds), np.nan)
    if len(history.updated_at) == 0 or len(closes) == 0:
        return out
    row_feed = np.repeat(np.arange(n_feeds), np.diff(history.offsets))
    answers = to_float_units(history.answer_raw, np.asarray(feed_decimals, dtype=np.int64)[row_feed])
    answers = np.where(answers > 0, answers, np.nan)
    if row_factor is not None:
        answers = answers * row_factor
    for f in range(n_feeds):
        lo, hi = int(history.offsets[f]), int(history.offsets[f + 1])
        if hi == lo:
            continue
        k = np.searchsorted(history.updated_at[lo:hi], closes, side="right") - 1
        has = k >= 0
        out[has, f] = answers[lo + k[has]]
    return out


def log_returns(prices: np.ndarray) -> np.ndarray:
    """``ln(p_i / p_{i-1})`` per feed; NaN where either price is missing."""
    if len(prices) < 2:
        return np.zeros((0, prices.shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(prices[1:] / prices[:-1])


@dataclass(frozen=True)
class VolatilityEstimate:
    sigma_raw: np.ndarray  # max over the window of the EWMA sigma path; NaN when no valid return
    sigma_last: np.ndarray  # EWMA sigma at the last close (for reporting)
    corr: np.ndarray  # EWMA correlation at the last close, unit diagonal
    n_returns: np.ndarray  # valid returns per feed


def ewma_volatility(returns: np.ndarray, lam: float) -> VolatilityEstimate:
    """RiskMetrics EWMA: ``v_i = lam * v_{i-1} + (1 - lam) * r_i**2`` (RiskMetrics 1996, zero mean).

    Seed ``v_0`` = mean of the squared valid returns in the window (the sample second moment), so
    the path does not depend on returns outside the window. A missing return leaves ``v`` unchanged.
    ``sigma_raw`` = ``sqrt(max_i v_i)`` over the window: the anti-procyclical maximum.

    Correlation: the same recursion on outer products with missing returns as 0 (a PSD sum of PSD
    terms), seeded with their mean; ``corr_ij = C_ij / sqrt(C_ii C_jj)``, 0 where a variance is 0.
    """
    n, n_feeds = returns.shape
    valid = ~np.isnan(returns)
    n_valid = valid.sum(axis=0)
    z = np.where(valid, returns, 0.0)
    sq = z * z
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(n_valid > 0, sq.sum(axis=0) / n_valid, np.nan)
    vmax = np.full(n_feeds, -np.inf)
    for i in range(n):
        v = np.where(valid[i], lam * v + (1.0 - lam) * sq[i], v)
        vmax = np.maximum(vmax, v)
    sigma_raw = np.where(n_valid > 0, np.sqrt(np.maximum(vmax, 0.0)), np.nan)
    sigma_last = np.where(n_valid > 0, np.sqrt(np.maximum(v, 0.0)), np.nan)

    if n:
        c = (z.T @ z) / n
        weights = (1.0 - lam) * lam ** np.arange(n - 1, -1, -1, dtype=np.float64)
        c = lam**n * c + (z * weights[:, None]).T @ z
        c = 0.5 * (c + c.T)
    else:
        c = np.zeros((n_feeds, n_feeds))
    d = np.sqrt(np.clip(np.diag(c), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = c / np.outer(d, d)
    corr = np.where(np.outer(d > 0, d > 0), corr, 0.0)
    corr = np.clip(corr, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return VolatilityEstimate(sigma_raw=sigma_raw, sigma_last=sigma_last, corr=corr, n_returns=n_valid)


@dataclass(frozen=True)
class FeedSigma:
    """Per feed at one instant: the daily sigma a haircut uses and what it came from."""

    sigma: np.ndarray  # max(floor[kind], sigma_raw, or sigma_without_history where there is no return)
    sigma_raw: np.ndarray  # each feed on its own grid (stock: sessions; 24/7: days); NaN = no history
    sigma_last: np.ndarray
    n_returns: np.ndarray
    session: VolatilityEstimate  # the session-grid estimate: its correlation is the run's
    grid: np.ndarray  # the session grid it was sampled on


def feed_sigma(history: FeedHistory, decimals: np.ndarray, kinds: np.ndarray, factors: np.ndarray | None,
               now: int, closes: np.ndarray, is_open: bool, vol: VolatilityPolicy) -> FeedSigma:
    """The volatility the policy sets at ``now`` for every feed (docs/risk.md section 4): stock feeds on the
    last ``lookback_days`` session ``closes`` (and ``now`` while open), 24/7 feeds on their own daily grid,
    both on corporate-action adjusted prices (``factors``: per history row), floored per feed kind. Only
    rounds up to ``now`` enter: the same history gives the sigma of any earlier instant."""
    kinds = np.asarray(kinds, dtype=np.int8)
    stock = kinds == FeedKind.STOCK.code
    grid = session_grid(closes, now, is_open)
    est = ewma_volatility(log_returns(prices_at_closes(history, decimals, grid, factors)), vol.ewma_lambda)
    sigma_raw, sigma_last, n_returns = est.sigma_raw, est.sigma_last, est.n_returns
    if (~stock).any():
        cont = ewma_volatility(log_returns(prices_at_closes(
            history, decimals, continuous_grid(now, vol.continuous_lookback_days), factors)), vol.ewma_lambda)
        sigma_raw = np.where(stock, sigma_raw, cont.sigma_raw)
        sigma_last = np.where(stock, sigma_last, cont.sigma_last)
        n_returns = np.where(stock, n_returns, cont.n_returns)
    floor = np.array([vol.floor[FeedKind.from_code(int(k)).policy_key] for k in kinds.tolist()], dtype=np.float64)
    sigma = np.maximum(floor, np.where(np.isnan(sigma_raw), vol.sigma_without_history, sigma_raw))
    return FeedSigma(sigma, sigma_raw, sigma_last, n_returns, est, grid)
