"""Joint equity-crypto stress and wrong-way risk (RISK.md section 7).

Stressed covariance: every feed's daily sigma times a policy factor, and a correlation matrix in
which every equity-crypto correlation is at least ``rho_stress``.

Raising those entries one by one does not give a correlation matrix in general: stocks that are
weakly correlated among themselves cannot all be 0.8 correlated with BTC, so the entry-wise floor
has negative eigenvalues, and ``x' S x`` can go negative. Repairing it afterwards by eigenvalue
clipping leaves equity-crypto correlations below the floor and can make ``x' S x`` fall as the floor
rises (docs/risk.md section 8). So the floor is reached by a blend that is a correlation matrix by
construction:

    R_s = (1 - w) R + w M

``R`` is the EWMA correlation (PSD: a weighted sum of outer products). ``M`` is the crisis matrix:
equity-side and crypto feeds perfectly correlated with each other, every other feed keeping its
estimated correlations among themselves and none with that block (block diagonal of PSD blocks).
``w`` is the smallest weight that lifts every equity-crypto correlation to the floor,
``w = max(0, max_ij (rho - r_ij) / (1 - r_ij))`` over pairs below it. Consequences, each tested:
R_s is PSD; every equity-crypto correlation is >= rho; when all already are, R_s = R; every entry
inside the equity-and-crypto block is non-decreasing in rho, so the loss of a long-only exposure
to that block never falls when rho rises (correlations between the block and the other feeds are
scaled by 1 - w, so exposures outside it carry no such guarantee). The price: correlations among equities rise with the same weight
(they rise in crises too), which makes the stress stronger than an entry-wise floor would.

L_indep uses the same matrix with the correlations between crypto feeds and every non-crypto feed
set to zero: a block diagonal of principal blocks of R_s, hence PSD as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.types import FeedKind


@dataclass(frozen=True)
class StressedCovariance:
    equity_side: np.ndarray  # bool per feed: a stock feed pricing a token of a policy equity class
    crypto_side: np.ndarray  # bool per feed: a crypto feed
    blend_weight: float  # w
    corr: np.ndarray  # R_s
    min_eigenvalue: float  # of R_s (>= 0 up to rounding)
    sigma: np.ndarray  # stressed daily sigma per feed
    cov_joint: np.ndarray  # diag(sigma) R_s diag(sigma)
    cov_indep: np.ndarray  # cov_joint with crypto x non-crypto entries set to zero


def floor_blend_weight(corr: np.ndarray, cross: np.ndarray, rho: float) -> float:
    """Smallest ``w`` in [0, 1] with ``(1 - w) r + w >= rho`` on every cross pair."""
    below = cross & (corr < rho)
    if not below.any():
        return 0.0
    r = corr[below]
    return float(min(1.0, max(0.0, np.max((rho - r) / (1.0 - r)))))


def stressed_covariance(
    corr: np.ndarray,
    sigma: np.ndarray,
    equity_side: np.ndarray,
    kinds: np.ndarray,
    vol_multiplier: float,
    rho_floor: float,
) -> StressedCovariance:
    crypto = np.asarray(kinds) == FeedKind.CRYPTO.code
    equity = np.asarray(equity_side, dtype=bool) & ~crypto
    cross = np.outer(equity, crypto) | np.outer(crypto, equity)
    w = floor_blend_weight(corr, cross, rho_floor)
    block = equity | crypto
    crisis = np.where(np.outer(block, block), 1.0, np.where(np.outer(~block, ~block), corr, 0.0))
    stressed = (1.0 - w) * corr + w * crisis
    stressed = 0.5 * (stressed + stressed.T)
    np.fill_diagonal(stressed, 1.0)
    min_eig = float(np.linalg.eigvalsh(stressed)[0]) if len(stressed) else 1.0
    s = vol_multiplier * np.asarray(sigma, dtype=np.float64)
    cov_joint = stressed * np.outer(s, s)
    cov_indep = np.where(np.outer(crypto, ~crypto) | np.outer(~crypto, crypto), 0.0, cov_joint)
    return StressedCovariance(
        equity_side=equity,
        crypto_side=crypto,
        blend_weight=w,
        corr=stressed,
        min_eigenvalue=min_eig,
        sigma=s,
        cov_joint=cov_joint,
        cov_indep=cov_indep,
    )


def instrument_losses(
    exposure: np.ndarray,
    instrument_feed: np.ndarray,
    stress: StressedCovariance,
    z: float,
    horizon_days: float,
    shocks: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(L_joint, L_indep, scenario P&L)`` per row ``z`` of ``exposure`` (wallets x instruments).

    An instrument is priced by one feed, ``instrument_feed`` (-1: by none, no market risk), so the
    feed exposure is ``x = B'z`` with ``B`` one-hot and ``x'Sx = z'(B S B')z``, computed without
    building ``x``: ``L = z sqrt(H) sqrt(x' S x)``. ``shocks`` (instruments x scenarios) are the scenario
    returns; ``z @ shocks`` is each scenario's P&L. Two products, ``Z (B S B')`` and ``Z shocks``.

    The independent form drops the crypto x non-crypto cross term (an instrument is on the crypto side
    when its feed is): ``x' S_indep x = x' S x - 2 x_C' (S_CN x_N)``, where ``S_CN x_N`` is
    ``Y_C - S_CC x_C``. The subtraction cannot cancel badly: for a PSD ``S``,
    ``|x_N' S_NC x_C| <= (x_N' S_NN x_N + x_C' S_CC x_C) / 2``.
    """
    feed = np.asarray(instrument_feed, dtype=np.int64)
    has = feed >= 0
    f = np.where(has, feed, 0)
    n_z = len(feed)
    if has.any():
        cov = stress.cov_joint[np.ix_(f, f)] * np.outer(has, has)
        crypto = np.flatnonzero(has & stress.crypto_side[f])
    else:  # no instrument has a feed (or there are no feeds at all)
        cov, crypto = np.zeros((n_z, n_z)), np.zeros(0, dtype=np.int64)
    y = exposure @ cov
    q_joint = np.einsum("wi,wi->w", y, exposure)
    if 0 < len(crypto) < n_z:
        x_c = exposure[:, crypto]
        cross = y[:, crypto] - x_c @ cov[np.ix_(crypto, crypto)]
        q_indep = q_joint - 2.0 * np.einsum("wc,wc->w", cross, x_c)
    else:
        q_indep = q_joint
    scale = z * np.sqrt(horizon_days)
    return (
        scale * np.sqrt(np.maximum(q_joint, 0.0)),
        scale * np.sqrt(np.maximum(q_indep, 0.0)),
        # (scenarios x wallets) computed as such, returned transposed: each scenario's column is contiguous
        np.dot(np.asarray(shocks, dtype=np.float64).T, exposure.T).T,
    )
