"""The computations behind the charts, on the run's column arrays: no HTML, no SQL."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from indexer.report.data import ReportData
from indexer.report.format import usd_short
from indexer.risk import Eligibility

SHORT_SHOWN = 12  # wallets under initial margin shown, largest dollar shortfall first
NEAREST_SHOWN = 12  # healthy wallets nearest the margin-call line shown, in dollars
MAX_SCATTER_POINTS = 3_000


def group(keys: np.ndarray, *values: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Sums of each value array per distinct key."""
    if len(keys) == 0:
        return [], [np.zeros(0) for _ in values]
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    return list(uniq), [np.bincount(inv, weights=v, minlength=len(uniq)) for v in values]


def decompose(h: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Split each holding's market value into collateral, the USD each haircut component took (scaled
    down pro rata where the components add up to more than the 100% cap), the concentration cuts, and
    the value of ineligible holdings; the holdings of non-clients (no account on file: `h["client"]` false) go
    whole to "outside" instead, and count nothing."""
    mv, elig = h["market_value"], h["eligible"]
    client = h.get("client", np.ones(len(mv), dtype=bool))
    parts = np.vstack([h["h_base"], h["h_vol"], h["h_size"], h["h_gap"]])
    total = parts.sum(axis=0)
    scale = np.divide(h["haircut"], total, out=np.zeros_like(total), where=total > 0)
    usd_parts = parts * (mv * scale * elig * client)
    return dict(collateral=h["collateral_value"] * client, base=usd_parts[0], vol=usd_parts[1], size=usd_parts[2],
                gap=usd_parts[3], conc=(h["platform_cut"] + h["wallet_cut"]) * elig * client,
                excluded=mv * ~elig * client, outside=mv * ~client)


@dataclass
class TokenLine:
    token: str
    symbol: str
    asset_class: str
    holders: int
    market_value: float
    client_holders: int  # holders with an account on file
    client_market_value: float  # what they hold; the rest (parts["outside"]) is held by non-clients
    parts: dict[str, float]
    rates: dict[str, float]
    haircut: float
    pledged: float  # eligible token units
    supply: float
    platform_cut: float
    wallet_cut: float
    wallets_over_cap: int
    top1: float  # the largest holder's share of the token's market value held
    top10: float
    weighted_share: float  # value-weighted share this token takes of its holders' eligible collateral


def token_lines(d: ReportData) -> list[TokenLine]:
    h = d.holdings
    if len(h["token"]) == 0:
        return []
    parts = decompose(h)
    tokens, inv = np.unique(h["token"].astype(str), return_inverse=True)
    n = len(tokens)
    sums = {k: np.bincount(inv, weights=v, minlength=n) for k, v in parts.items()}
    mv = np.bincount(inv, weights=h["market_value"], minlength=n)
    holders = np.bincount(inv, minlength=n)
    client = h.get("client", np.ones(len(inv), dtype=bool))
    client_holders = np.bincount(inv, weights=client.astype(float), minlength=n)
    client_mv = np.bincount(inv, weights=h["market_value"] * client, minlength=n)
    # the rates a client's holding gets: weighted by the clients' market value (all holders' where none)
    weights = np.where(client_mv[inv] > 0, h["market_value"] * client,
                       np.where(mv[inv] > 0, h["market_value"], 1.0))
    wsum = np.bincount(inv, weights=weights, minlength=n)
    rates = {k: np.bincount(inv, weights=h[f"h_{k}"] * weights, minlength=n) / wsum for k in ("base", "vol", "size",
                                                                                               "gap")}
    haircut = np.bincount(inv, weights=h["haircut"] * weights, minlength=n) / wsum
    pledged = np.bincount(inv, weights=h["balance"] * h["eligible"], minlength=n)
    # each holding's share of its wallet's eligible collateral after the platform cap (what the wallet cap reads)
    after_platform = h["collateral_before_caps"] - h["platform_cut"]
    w_uniq, w_inv = np.unique(h["wallet"].astype(str), return_inverse=True)
    w_total = np.bincount(w_inv, weights=after_platform, minlength=len(w_uniq))
    share = np.divide(after_platform, w_total[w_inv], out=np.zeros_like(after_platform), where=w_total[w_inv] > 0)
    weighted = np.bincount(inv, weights=share * after_platform, minlength=n)
    ap_sum = np.bincount(inv, weights=after_platform, minlength=n)
    over = np.bincount(inv, weights=(h["wallet_cut"] > 1e-9).astype(float), minlength=n)
    out = []
    for i, tok in enumerate(tokens):
        sel = inv == i
        vals = np.sort(h["market_value"][sel])[::-1]
        total = vals.sum()
        first = int(np.argmax(sel))
        out.append(TokenLine(
            token=tok, symbol=str(h["symbol"][first]), asset_class=str(h["asset_class"][first]),
            holders=int(holders[i]), market_value=float(mv[i]), client_holders=int(client_holders[i]),
            client_market_value=float(client_mv[i]), parts={k: float(v[i]) for k, v in sums.items()},
            rates={k: float(v[i]) for k, v in rates.items()}, haircut=float(haircut[i]), pledged=float(pledged[i]),
            supply=float(d.supply.get(tok, math.nan)),
            platform_cut=float(np.sum(h["platform_cut"][sel])), wallet_cut=float(np.sum(h["wallet_cut"][sel])),
            wallets_over_cap=int(over[i]),
            top1=float(vals[0] / total) if total > 0 else 0.0,
            top10=float(vals[:10].sum() / total) if total > 0 else 0.0,
            weighted_share=float(weighted[i] / ap_sum[i]) if ap_sum[i] > 0 else 0.0))
    out.sort(key=lambda t: (-t.market_value, t.symbol))
    return out


@dataclass
class CodeLine:
    code: str
    client_holdings: int
    client_value: float
    outside_holdings: int  # holdings of non-clients carrying the code
    outside_value: float


def code_table(h: dict[str, np.ndarray]) -> list[CodeLine]:
    """Per eligibility code: the clients' and the non-clients' holdings with that bit set and their market
    value (which counts zero), largest total value first."""
    out = []
    codes, mv = h["codes"], h["market_value"]
    client = h.get("client", np.ones(len(mv), dtype=bool))
    for code in Eligibility:
        hit = (codes & int(code)) != 0
        if hit.any():
            a, b = hit & client, hit & ~client
            out.append(CodeLine(str(code.name), int(a.sum()), float(mv[a].sum()), int(b.sum()), float(mv[b].sum())))
    out.sort(key=lambda r: (-(r.client_value + r.outside_value), r.code))
    return out


def short_of_margin(w: dict[str, np.ndarray], n: int = SHORT_SHOWN) -> np.ndarray:
    """Indices of the `n` wallets with positions under initial margin (equity < IM) with the largest dollar
    shortfall IM - equity, largest first (ties by address)."""
    idx = np.flatnonzero((w["im"] > 0) & (w["excess"] < 0))
    return idx[np.lexsort((w["wallet"][idx].astype(str), w["excess"][idx]))][:n]


def nearest_margin_call(w: dict[str, np.ndarray], n: int = NEAREST_SHOWN) -> np.ndarray:
    """Indices of the `n` healthy wallets with positions nearest the margin-call line in dollars: the smallest
    excess equity - IM first (ties by address)."""
    idx = np.flatnonzero((w["im"] > 0) & (w["status"] == "healthy"))
    return idx[np.lexsort((w["wallet"][idx].astype(str), w["excess"][idx]))][:n]


def log_bins(values: np.ndarray, n: int = 12) -> tuple[list[str], list[float]]:
    """USD amounts in bins: exactly 0, under $1, then log-spaced bins (at most `n`) from $1 to the largest."""
    if len(values) == 0:
        return [], []
    labels, counts = ["0", "< $1"], [float(np.sum(values <= 0)), float(np.sum((values > 0) & (values < 1)))]
    big = values[values >= 1]
    if len(big):
        hi = max(math.ceil(math.log10(big.max()) * 2) / 2, 0.5)
        k = min(n, max(1, round(hi / 0.5)))
        edges = np.linspace(0.0, hi, k + 1)
        hist, _ = np.histogram(np.log10(big), bins=edges)
        for a, b, c in zip(edges[:-1], edges[1:], hist, strict=True):
            labels.append(f"{usd_short(10 ** a)}–{usd_short(10 ** b)}")
            counts.append(float(c))
    return labels, counts


def by_asset_class(lines: list[TokenLine], keys: list[str]) -> list[tuple[str, dict[str, float]]]:
    """The token lines' `parts[k]` for each of `keys`, their market value as "mv" and the clients' part of it
    as "client_mv", summed per asset class, largest market value first."""
    classes: dict[str, dict[str, float]] = {}
    for t in lines:
        c = classes.setdefault(t.asset_class, dict.fromkeys([*keys, "mv", "client_mv"], 0.0))
        for k in keys:
            c[k] += t.parts[k]
        c["mv"] += t.market_value
        c["client_mv"] += t.client_market_value
    return sorted(classes.items(), key=lambda kv: -kv[1]["mv"])


def stress_sample(w: dict[str, np.ndarray], limit: int = MAX_SCATTER_POINTS) -> np.ndarray:
    """Indices of the wallets with a stress loss; over `limit` of them, the `limit // 2` largest losses, then
    an even sample of the rest."""
    sel = np.flatnonzero((w["l_joint"] > 0) | (w["worst_scenario_loss"] > 0))
    if len(sel) > limit:
        worst = np.maximum(w["l_joint"][sel], w["worst_scenario_loss"][sel])
        order = sel[np.argsort(-worst, kind="stable")]
        head = order[: limit // 2]
        tail = order[limit // 2:]
        sel = np.concatenate([head, tail[:: max(1, len(tail) // (limit // 2))]])
    return sel
