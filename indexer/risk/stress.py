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

Both signs (docs/risk.md section 7). In a crisis equities and crypto can also part ways: a crypto
rally while equities fall hurts a wallet short crypto against equity collateral, which the positive
floor would treat as a hedge. So a second regime blends toward the anti-crisis matrix ``M-``, in which
the equity side and crypto are perfectly anti-correlated (``s s'`` on the block, ``s = +1`` for equity
feeds and ``-1`` for crypto feeds: rank one, PSD), with the smallest weight that brings every
equity-crypto correlation down to ``-rho``. Each wallet is stressed in the regime where it loses more.

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
    # the negative regime: equity-crypto correlations brought down to -rho
    blend_weight_neg: float = 0.0
    corr_neg: np.ndarray | None = None
    min_eigenvalue_neg: float = 1.0
    cov_joint_neg: np.ndarray | None = None
    cov_indep_neg: np.ndarray | None = None

    def regimes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(joint, independent) covariance of each regime: positive first, then negative when built."""
        out = [(self.cov_joint, self.cov_indep)]
        if self.cov_joint_neg is not None and self.cov_indep_neg is not None:
            out.append((self.cov_joint_neg, self.cov_indep_neg))
        return out


def floor_blend_weight(corr: np.ndarray, cross: np.ndarray, rho: float) -> float:
    """Smallest ``w`` in [0, 1] with ``(1 - w) r + w >= rho`` on every cross pair."""
    below = cross & (corr < rho)
    if not below.any():
        return 0.0
    r = corr[below]
    return float(min(1.0, max(0.0, np.max((rho - r) / (1.0 - r)))))


def _blend(corr: np.ndarray, crisis: np.ndarray, w: float) -> tuple[np.ndarray, float]:
    stressed = (1.0 - w) * corr + w * crisis
    stressed = 0.5 * (stressed + stressed.T)
    np.fill_diagonal(stressed, 1.0)
    return stressed, float(np.linalg.eigvalsh(stressed)[0]) if len(stressed) else 1.0


def stressed_covariance(
    corr: np.ndarray,
    sigma: np.ndarray,
    equity_side: np.ndarray,
    kinds: np.ndarray,
    vol_multiplier: float,
    rho_floor: float,
    two_sided: bool = True,
) -> StressedCovariance:
    crypto = np.asarray(kinds) == FeedKind.CRYPTO.code
    equity = np.asarray(equity_side, dtype=bool) & ~crypto
    cross = np.outer(equity, crypto) | np.outer(crypto, equity)
    block = equity | crypto
    outside = np.where(np.outer(~block, ~block), corr, 0.0)
    w = floor_blend_weight(corr, cross, rho_floor)
    stressed, min_eig = _blend(corr, np.where(np.outer(block, block), 1.0, outside), w)
    s = vol_multiplier * np.asarray(sigma, dtype=np.float64)
    scale = np.outer(s, s)
    split = np.outer(crypto, ~crypto) | np.outer(~crypto, crypto)
    cov_joint = stressed * scale
    out = StressedCovariance(
        equity_side=equity,
        crypto_side=crypto,
        blend_weight=w,
        corr=stressed,
        min_eigenvalue=min_eig,
        sigma=s,
        cov_joint=cov_joint,
        cov_indep=np.where(split, 0.0, cov_joint),
    )
    if not two_sided or not cross.any():
        return out
    sign = np.where(crypto, -1.0, 1.0)
    # the ceiling -rho on the cross pairs is the floor rho on the correlations with crypto's sign flipped
    w_neg = floor_blend_weight(-corr, cross, rho_floor)
    stressed_neg, min_neg = _blend(corr, np.where(np.outer(block, block), np.outer(sign, sign), outside), w_neg)
    cov_neg = stressed_neg * scale
    return StressedCovariance(**{**out.__dict__, "blend_weight_neg": w_neg, "corr_neg": stressed_neg,
                                 "min_eigenvalue_neg": min_neg, "cov_joint_neg": cov_neg,
                                 "cov_indep_neg": np.where(split, 0.0, cov_neg)})


def instrument_losses(
    exposure: np.ndarray,
    instrument_feed: np.ndarray,
    stress: StressedCovariance,
    z: float,
    horizon_days: float,
    shocks: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(L_joint, L_indep, scenario P&L, regime)`` per row ``z`` of ``exposure`` (wallets x instruments):
    each wallet's losses in the regime where ``L_joint`` is larger (``regime`` 0 = positive, 1 = negative;
    the first on ties).

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
    crypto = np.flatnonzero(has & stress.crypto_side[f]) if has.any() else np.zeros(0, dtype=np.int64)
    q_joint = q_indep = regime = None
    for k, (cov_feeds, _) in enumerate(stress.regimes()):
        # all zeros when no instrument has a feed (or there are no feeds at all)
        cov = cov_feeds[np.ix_(f, f)] * np.outer(has, has) if has.any() else np.zeros((n_z, n_z))
        y = exposure @ cov
        qj = np.einsum("wi,wi->w", y, exposure)
        if 0 < len(crypto) < n_z:
            x_c = exposure[:, crypto]
            cross = y[:, crypto] - x_c @ cov[np.ix_(crypto, crypto)]
            qi = qj - 2.0 * np.einsum("wc,wc->w", cross, x_c)
        else:
            qi = qj
        if q_joint is None:
            q_joint, q_indep, regime = qj, qi, np.zeros(len(qj), dtype=np.int8)
        else:
            worse = qj > q_joint
            q_joint = np.where(worse, qj, q_joint)
            q_indep = np.where(worse, qi, q_indep)
            regime = np.where(worse, np.int8(k), regime)
    scale = z * np.sqrt(horizon_days)
    return (
        scale * np.sqrt(np.maximum(q_joint, 0.0)),
        scale * np.sqrt(np.maximum(q_indep, 0.0)),
        # (scenarios x wallets) computed as such, returned transposed: each scenario's column is contiguous
        np.dot(np.asarray(shocks, dtype=np.float64).T, exposure.T).T,
        regime,
    )
