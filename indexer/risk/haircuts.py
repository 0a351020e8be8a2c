"""Haircut components and concentration cuts (RISK.md section 4), vectorized over holdings."""

from __future__ import annotations

import numpy as np

from indexer.risk.policy import SizePolicy


def sigma_haircut(z: float, sigma, days):
    """``min(1, z * sigma * sqrt(days))``: the volatility-scaled haircut of ``h_vol`` (days = the horizon),
    ``h_gap`` (the closure's business days) and ``h_stale`` (the round's age in trading days), section 4."""
    return np.minimum(1.0, z * np.asarray(sigma, dtype=np.float64) * np.sqrt(days))


def band_haircut(value: np.ndarray, bands_from: np.ndarray, bands_addon: np.ndarray) -> np.ndarray:
    """Tiered value bands, applied marginally: the part of ``value`` inside band k takes ``addon[k]``.

    Returns the effective rate ``sum_k addon_k * part_k / value`` (the first band's add-on at
    value 0). Marginal bands keep the haircut amount continuous in the value, so adding one dollar
    never removes collateral from the dollars already held (Bybit-style tiered collateral ratios).
    The amount is piecewise linear in the value, so one ``np.interp`` over the band edges computes
    it; a far knot carries the last band's slope past the last edge.
    """
    edges = np.asarray(bands_from, dtype=np.float64)
    addon = np.asarray(bands_addon, dtype=np.float64)
    cum = np.concatenate(([0.0], np.cumsum(addon[:-1] * np.diff(edges))))
    far = max(1e300, float(edges[-1]) * 2.0)
    knots_x = np.append(edges, far)
    knots_y = np.append(cum, cum[-1] + addon[-1] * (far - edges[-1]))
    rate = np.interp(value, knots_x, knots_y)  # the amount, divided by the value in place
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(rate, value, out=rate)
    not_positive = value <= 0
    if not_positive.any():
        rate[not_positive] = addon[0]
    return rate


def size_haircut(
    market_value: np.ndarray,
    units: np.ndarray,
    token_idx: np.ndarray,
    daily_liquidity_usd: np.ndarray,
    supply_units: np.ndarray,
    size: SizePolicy,
    value_factor: np.ndarray | None = None,
    measured_coef: np.ndarray | None = None,
    measured_cap: float = 1.0,
    terms: bool = False,
):
    """``h_size = min(1, band(value) + k * sqrt(value / daily_liquidity) + k_s * sqrt(b / supply))``.

    Per-token inputs (``daily_liquidity_usd``, ``supply_units``) are indexed by ``token_idx``. The
    impact term applies only where a daily liquidity figure is configured (NaN = none). The supply
    term measures the holding against the token's on-chain supply; the ratio is clipped to [0, 1]
    (a holder cannot own more than the supply; a zero supply counts as fully held).
    ``value_factor``: optional, per token, with ``market_value == units * value_factor[token_idx]``;
    it lets both terms share one square root (same result to an ulp or two).

    ``measured_coef``: optional, per token, ``Y sigma sqrt(H) / sqrt(A)`` for the tokens with fresh DEX
    measures (0 elsewhere; inf where the market absorbs nothing): their liquidity term is the square-root
    impact ``min(measured_cap, coef * sqrt(b))`` in token units (docs/risk.md section 15), in place of the
    configured one (give those tokens NaN in ``daily_liquidity_usd``). With ``terms`` the result is
    ``(h_size, liquidity term per holding or None when there is none, h_size without the measured term or
    None when no token is measured)``.
    """
    bands_from = np.array([b.from_usd for b in size.bands])
    bands_addon = np.array([b.addon for b in size.bands])
    h = band_haircut(market_value, bands_from, bands_addon)
    # Both square-root terms are (per-token coefficient) * sqrt(per-holding amount):
    # k * sqrt(v / L) = (k / sqrt(L)) * sqrt(v), and k_s * sqrt(min(b / S, 1)) = min((k_s / sqrt(S)) * sqrt(b), k_s).
    # Both terms need a square root per holding; with ``value_factor`` (USD per unit, per token, so
    # that value = units * value_factor[token]) one root serves both: sqrt(v) = sqrt(b) sqrt(f).
    measured = measured_coef is not None and bool((measured_coef != 0).any())
    root_units = np.sqrt(units) if size.supply_k > 0 or value_factor is not None or measured else None
    impact = None
    if size.impact_k > 0:
        has_liq = ~np.isnan(daily_liquidity_usd)
        if has_liq.any():
            coef = np.where(
                has_liq, size.impact_k / np.sqrt(np.where(has_liq, daily_liquidity_usd, 1.0)), 0.0
            )
            if value_factor is not None and root_units is not None:
                impact = np.sqrt(np.asarray(value_factor, dtype=np.float64)) * coef
                impact = impact[token_idx]
                impact *= root_units
            else:
                impact = np.sqrt(market_value)
                impact *= coef[token_idx]
            h += impact
    if size.supply_k > 0 and root_units is not None:
        # a zero supply counts as fully held: an infinite coefficient, clipped to k_s below (0 * inf -> 0)
        with np.errstate(divide="ignore"):
            coef = np.where(
                supply_units > 0,
                size.supply_k / np.sqrt(np.where(supply_units > 0, supply_units, 1.0)),
                np.inf,
            )
        term = coef[token_idx]
        with np.errstate(invalid="ignore"):
            term *= root_units
        if np.isinf(coef).any():
            term[units == 0] = 0.0
        np.minimum(term, size.supply_k, out=term)
        h += term
    if not measured:
        return (np.minimum(h, 1.0, out=h), impact, None) if terms else np.minimum(h, 1.0, out=h)
    before = np.minimum(h, 1.0)
    assert measured_coef is not None and root_units is not None
    with np.errstate(invalid="ignore"):
        liq = measured_coef[token_idx] * root_units  # inf * 0 (nothing absorbed, nothing held) -> NaN -> 0
    np.minimum(liq, measured_cap, out=liq)
    np.copyto(liq, 0.0, where=np.isnan(liq))
    h += liq
    if impact is not None:
        liq += impact
    return (np.minimum(h, 1.0, out=h), liq, before) if terms else np.minimum(h, 1.0, out=h)


def wallet_concentration(
    collateral: np.ndarray,
    wallet_idx: np.ndarray,
    token_idx: np.ndarray,
    n_wallets: int,
    share_cap: np.ndarray,
    usd_cap: np.ndarray,
) -> np.ndarray:
    """Per-wallet caps: ``min(c, share_cap * C_wallet, usd_cap)``, ``C_wallet`` the wallet's
    eligible collateral before this cut; ``share_cap`` and ``usd_cap`` are per token.

    The excess of a token over ``share_cap`` of the wallet's eligible collateral takes a 100%
    haircut (RISK.md section 4); the share is measured against the total before the cut, so the
    result is exact and monotone (a larger collateral never yields a smaller capped value).
    """
    total = np.bincount(wallet_idx, weights=collateral, minlength=n_wallets)
    cap = share_cap[token_idx] * total[wallet_idx]
    if np.isfinite(usd_cap).any():
        np.minimum(cap, usd_cap[token_idx], out=cap)
    return np.minimum(collateral, cap, out=cap)
