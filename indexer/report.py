"""Risk report: one self-contained HTML page of charts for a stored risk run.

`write_report` reads a run (the latest stored for the chain, or a given id) and the history of all the
chain's runs from the `risk_*` tables, and writes `OUT_DIR/index.html`: inline CSS and inline SVG drawn
here, no script, no network, nothing else to ship. Every text taken from the database is escaped.
What each chart shows: docs/report.md.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, and_, func, select

from indexer.errors import IndexerError
from indexer.risk import Eligibility, Policy
from indexer.store import models as m


class ReportError(IndexerError):
    """No risk run to report on: none stored for the chain, or no run with the given id."""


# Section titles, in page order (tests look for them).
SECTIONS = (
    "Collateral by token",
    "Collateral by asset class",
    "Haircut components per token",
    "Wallets nearest margin call",
    "Concentration against caps",
    "Stress losses",
    "Wrong-way add-on",
    "Collateral over time",
    "Eligibility codes",
)

STATUS_COLOURS = {"healthy": "#2e9d5b", "margin_call": "#e39b12", "liquidate": "#d43d3d"}
SERIES = (  # the parts a holding's market value splits into, in stacking order
    ("collateral", "collateral", "#2e9d5b"),
    ("base", "base haircut", "#4a78c2"),
    ("vol", "volatility add-on", "#7fa6e0"),
    ("size", "size add-on", "#9b7fd1"),
    ("gap", "market-closed gap", "#c98bd6"),
    ("conc", "concentration cut", "#e39b12"),
    ("excluded", "ineligible", "#b8bcc4"),
)
RATE_SERIES = SERIES[1:5]
MAX_SCATTER_POINTS = 3_000
NEAREST_BELOW = 8  # wallets under initial margin shown, worst first
NEAREST_HEALTHY = 12  # healthy wallets nearest a margin call shown

# ------------------------------------------------------------------------------------------ formatting


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def usd(x: float) -> str:
    """Whole dollars with thousands separators ("$1,234,567"); cents below $100."""
    if not math.isfinite(x):
        return "n/a"
    sign = "-" if x < 0 else ""
    a = abs(x)
    return f"{sign}${a:,.2f}" if 0 < a < 100 else f"{sign}${a:,.0f}"


def usd_short(x: float) -> str:
    """Axis labels: $950, $12k, $3.4M, $1.2B."""
    sign = "-" if x < 0 else ""
    a = abs(x)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            v = a / div
            return f"{sign}${v:.{0 if v >= 100 or v == int(v) else 1}f}{suffix}"
    return f"{sign}${a:.0f}" if a >= 10 or a == int(a) else f"{sign}${a:.1f}"


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%" if math.isfinite(x) else "n/a"


def num(n: float) -> str:
    return f"{n:,.0f}"


def utc(ts: int) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def short_addr(a: str) -> str:
    return f"{a[:8]}…{a[-6:]}" if len(a) > 16 else a


# ------------------------------------------------------------------------------------------ reading


@dataclass
class ReportData:
    run: dict[str, Any]
    holdings: dict[str, np.ndarray]
    wallets: dict[str, np.ndarray]
    supply: dict[str, float]  # token address -> total supply in token units at the run's block
    history: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


_HOLDING_TEXT = ("wallet", "token", "symbol", "asset_class")
_HOLDING_NUM = ("balance", "market_value", "h_base", "h_vol", "h_size", "h_gap", "haircut",
                "collateral_before_caps", "platform_cut", "wallet_cut", "collateral_value")
_WALLET_TEXT = ("wallet", "status", "worst_scenario", "binding")
_WALLET_NUM = ("market_value", "collateral", "im", "mm", "upnl", "cash", "equity", "excess", "l_joint", "l_indep",
               "wrong_way", "worst_scenario_loss", "stressed_excess")


def _columns(rows: Sequence[Sequence[Any]], text: Sequence[str], nums: Sequence[str],
             ints: Sequence[str] = (), bools: Sequence[str] = ()) -> dict[str, np.ndarray]:
    names = [*text, *nums, *ints, *bools]
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    out: dict[str, np.ndarray] = {}
    for name, values in zip(names, cols, strict=True):
        if name in text:
            out[name] = np.array([v if v is not None else "" for v in values], dtype=object)
        elif name in nums:
            out[name] = np.array(values, dtype=np.float64)
        elif name in ints:
            out[name] = np.array(values, dtype=np.int64)
        else:
            out[name] = np.array(values, dtype=bool)
    return out


def load_report_data(conn: Connection, chain_id: int, run_id: int | None = None) -> ReportData:
    """The run (latest stored for the chain when `run_id` is None), its rows and the chain's run history."""
    R, H, W, T = m.RiskRunRecord, m.RiskHolding, m.RiskWallet, m.Token
    stmt = select(R).where(R.chain_id == chain_id)
    stmt = stmt.where(R.id == run_id) if run_id is not None else stmt.order_by(R.block_number.desc(), R.id.desc()).limit(1)
    run = conn.execute(stmt).mappings().first()
    if run is None:
        if run_id is not None:
            raise ReportError(f"no risk run {run_id} for chain {chain_id}: list the stored runs with "
                              "SELECT id, block_number FROM risk_runs")
        raise ReportError(f"no risk runs stored for chain {chain_id}: run `collateral-indexer risk run` first")
    run = dict(run)
    rid = run["id"]

    h_rows = conn.execute(
        select(H.wallet, H.token, H.symbol, T.asset_class, *(getattr(H, c) for c in _HOLDING_NUM), H.codes, H.eligible)
        .select_from(H)
        .outerjoin(T, and_(T.chain_id == chain_id, T.address == H.token))
        .where(H.run_id == rid)
        .order_by(H.wallet, H.token)
    ).all()
    holdings = _columns(h_rows, _HOLDING_TEXT, _HOLDING_NUM, ("codes",), ("eligible",))
    holdings["asset_class"] = np.array([c or "unknown" for c in holdings["asset_class"]], dtype=object)

    w_rows = conn.execute(
        select(W.wallet, W.status, W.worst_scenario, W.binding, *(getattr(W, c) for c in _WALLET_NUM))
        .where(W.run_id == rid).order_by(W.wallet)
    ).all()
    wallets = _columns(w_rows, _WALLET_TEXT, _WALLET_NUM)

    # total supply per token: the token state in force at the run's block (the platform cap's base)
    S = m.TokenState
    last = (select(S.token, func.max(S.block_number).label("block"))
            .where(S.chain_id == chain_id, S.block_number <= run["block_number"])
            .group_by(S.token).subquery())
    supply_rows = conn.execute(
        select(S.token, S.total_supply_raw, T.decimals)
        .join(last, and_(S.token == last.c.token, S.block_number == last.c.block))
        .join(T, and_(T.chain_id == chain_id, T.address == S.token))
        .where(S.chain_id == chain_id)
    ).all()
    supply = {t: int(raw) / 10 ** int(dec) for t, raw, dec in supply_rows}

    runs = conn.execute(
        select(R.id, R.block_number, R.block_timestamp, R.collateral_usd, R.wallets)
        .where(R.chain_id == chain_id).order_by(R.block_timestamp, R.id)
    ).mappings().all()
    sums = {r: (mv, coll) for r, mv, coll in conn.execute(
        select(W.run_id, func.sum(W.market_value), func.sum(W.collateral))
        .join(R, R.id == W.run_id).where(R.chain_id == chain_id).group_by(W.run_id))}
    counts: dict[int, dict[str, int]] = {}
    for r, status, n in conn.execute(
            select(W.run_id, W.status, func.count())
            .join(R, R.id == W.run_id).where(R.chain_id == chain_id, W.status != "healthy")
            .group_by(W.run_id, W.status)):
        counts.setdefault(r, {})[status] = int(n)
    history = []
    for r in runs:
        mv, coll = sums.get(r["id"], (0.0, 0.0))
        c = counts.get(r["id"], {})
        history.append(dict(r, market_value=float(mv or 0.0), collateral=float(coll or 0.0),
                            margin_call=c.get("margin_call", 0), liquidate=c.get("liquidate", 0)))
    return ReportData(run=run, holdings=holdings, wallets=wallets, supply=supply, history=history)


# ------------------------------------------------------------------------------------------ SVG helpers

FONT = 12
TEXT = "#1f2430"
MUTED = "#6b7280"
GRID = "#e5e7eb"


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, s: str, *, anchor: str = "start", size: int = FONT, fill: str = TEXT,
          weight: str = "normal", extra: str = "") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"'
            f'{" font-weight=" + chr(34) + weight + chr(34) if weight != "normal" else ""}{extra}>{esc(s)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str = "") -> str:
    tip = f"<title>{esc(title)}</title>" if title else ""
    return (f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 0.0))}" height="{_f(h)}" fill="{fill}">'
            f"{tip}</rect>")


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = GRID, width: float = 1, dash: str = "",
          title: str = "") -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    tip = f"<title>{esc(title)}</title>" if title else ""
    return (f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{stroke}" '
            f'stroke-width="{width}"{d}>{tip}</line>')


def _svg(width: int, height: float, body: list[str], label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {_f(height)}" width="{width}" height="{_f(height)}" '
            f'role="img" aria-label="{esc(label)}" font-family="system-ui, sans-serif">'
            f"<title>{esc(label)}</title>{''.join(body)}</svg>")


def _empty(label: str, message: str, width: int = 1100) -> str:
    return _svg(width, 60, [_rect(0, 0, width, 60, "#f7f7f9"),
                            _text(width / 2, 35, message, anchor="middle", fill=MUTED)], label)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about n intervals)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= step * mult:
            step *= mult
            break
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [k * step for k in range(first, last + 1)]


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    out = []
    for name, colour in items:
        out.append(_rect(x, y - 10, 12, 12, colour))
        out.append(_text(x + 17, y, name, size=FONT - 1))
        x += 17 + 7 * len(name) + 18
    return out


def stacked_bars(label: str, rows: Sequence[tuple[str, Sequence[float]]], series: Sequence[tuple[str, str]],
                 fmt: Callable[[float], str], *, totals: Sequence[str] | None = None, width: int = 1100,
                 label_w: int = 150, note_w: int = 230, bar_h: int = 18, gap: int = 8) -> str:
    """Horizontal stacked bars (values >= 0), one row per label, a legend on top and an axis below."""
    if not rows:
        return _empty(label, "no data")
    top, plot_w = 34, width - label_w - note_w
    vmax = max((sum(v) for _, v in rows), default=0.0)
    ticks = nice_ticks(0.0, vmax if vmax > 0 else 1.0)
    dom = ticks[-1]
    sx = lambda v: label_w + plot_w * v / dom  # noqa: E731
    height = top + len(rows) * (bar_h + gap) + 28
    body = _legend(series, label_w, 16)
    for t in ticks:
        body.append(_line(sx(t), top - 4, sx(t), height - 24))
        body.append(_text(sx(t), height - 8, fmt(t), anchor="middle", size=FONT - 1, fill=MUTED))
    for i, (name, values) in enumerate(rows):
        y = top + i * (bar_h + gap)
        body.append(_text(label_w - 8, y + bar_h - 5, name, anchor="end"))
        x = 0.0
        for v, (sname, colour) in zip(values, series, strict=True):
            if v > 0:
                body.append(_rect(sx(x), y, plot_w * v / dom, bar_h, colour, f"{name}: {sname} {fmt(v)}"))
                x += v
        if totals:
            body.append(_text(sx(x) + 6, y + bar_h - 5, totals[i], size=FONT - 1, fill=MUTED))
    return _svg(width, height, body, label)


def bars(label: str, rows: Sequence[tuple[str, float, str, str]], fmt: Callable[[float], str], *,
         markers: Sequence[float | None] | None = None, marker_name: str = "cap",
         width: int = 1100, label_w: int = 190, note_w: int = 240, bar_h: int = 16, gap: int = 7,
         domain: tuple[float, float] | None = None) -> str:
    """Horizontal bars, signed values around a zero line: rows of (label, value, colour, note).
    `markers`: an optional per-row value drawn as a dark tick (a cap)."""
    if not rows:
        return _empty(label, "no data")
    vals = [v for _, v, _, _ in rows] + [mk for mk in (markers or []) if mk is not None]
    lo, hi = domain or (min(0.0, *vals), max(0.0, *vals))
    ticks = nice_ticks(lo, hi if hi > lo else lo + 1.0)
    d0, d1 = ticks[0], ticks[-1]
    top, plot_w = 12, width - label_w - note_w
    sx = lambda v: label_w + plot_w * (min(max(v, d0), d1) - d0) / (d1 - d0)  # noqa: E731
    height = top + len(rows) * (bar_h + gap) + 28
    body = []
    for t in ticks:
        body.append(_line(sx(t), top - 4, sx(t), height - 24, "#9ca3af" if t == 0 else GRID))
        body.append(_text(sx(t), height - 8, fmt(t), anchor="middle", size=FONT - 1, fill=MUTED))
    for i, (name, v, colour, note) in enumerate(rows):
        y = top + i * (bar_h + gap)
        body.append(_text(label_w - 8, y + bar_h - 4, name, anchor="end", size=FONT - 1,
                          extra=' font-family="ui-monospace, monospace"' if name.startswith("0x") else ""))
        x0, x1 = sorted((sx(0.0), sx(v)))
        body.append(_rect(x0, y, x1 - x0, bar_h, colour, f"{name}: {fmt(v)}" + (f" ({note})" if note else "")))
        mk = markers[i] if markers else None
        if mk is not None:
            body.append(_line(sx(mk), y - 3, sx(mk), y + bar_h + 3, "#111827", 2.5,
                              title=f"{name}: {marker_name} {fmt(mk)}"))
        if note:
            body.append(_text(label_w + plot_w + 8, y + bar_h - 4, note, size=FONT - 1, fill=MUTED))
    return _svg(width, height, body, label)


def columns(label: str, labels: Sequence[str], values: Sequence[float], colour: str,
            fmt: Callable[[float], str], *, width: int = 1100, height: int = 260, x_title: str = "") -> str:
    """Vertical columns (a histogram when the labels are bins)."""
    if not labels:
        return _empty(label, "no data")
    left, right, top, bottom = 60, 10, 14, 48 if x_title else 34
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = nice_ticks(0.0, max(max(values), 1.0))
    dom = ticks[-1]
    sy = lambda v: top + plot_h * (1 - v / dom)  # noqa: E731
    body = []
    for t in ticks:
        body.append(_line(left, sy(t), width - right, sy(t)))
        body.append(_text(left - 6, sy(t) + 4, fmt(t), anchor="end", size=FONT - 1, fill=MUTED))
    slot = plot_w / len(labels)
    for i, (name, v) in enumerate(zip(labels, values, strict=True)):
        x = left + i * slot
        body.append(_rect(x + slot * 0.1, sy(v), slot * 0.8, sy(0) - sy(v), colour, f"{name}: {fmt(v)}"))
        if v > 0:
            body.append(_text(x + slot / 2, sy(v) - 3, fmt(v), anchor="middle", size=FONT - 2, fill=MUTED))
        body.append(_text(x + slot / 2, top + plot_h + 15, name, anchor="middle", size=FONT - 2))
    if x_title:
        body.append(_text(left + plot_w / 2, height - 6, x_title, anchor="middle", size=FONT - 1, fill=MUTED))
    return _svg(width, height, body, label)


def line_chart(label: str, xs: Sequence[float], series: Sequence[tuple[str, str, Sequence[float]]],
               fmt: Callable[[float], str], *, width: int = 1100, height: int = 240) -> str:
    """Lines over block time (x: unix seconds), one per series, a point per run."""
    if not xs:
        return _empty(label, "no runs")
    left, right, top, bottom = 70, 20, 28, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 3600, x1 + 3600
    allv = [v for _, _, ys in series for v in ys]
    ticks = nice_ticks(min(0.0, *allv), max(max(allv), 1.0))
    d0, d1 = ticks[0], ticks[-1]
    sx = lambda t: left + plot_w * (t - x0) / (x1 - x0)  # noqa: E731
    sy = lambda v: top + plot_h * (1 - (v - d0) / (d1 - d0))  # noqa: E731
    body = _legend([(n, c) for n, c, _ in series], left, 14)
    for t in ticks:
        body.append(_line(left, sy(t), width - right, sy(t)))
        body.append(_text(left - 6, sy(t) + 4, fmt(t), anchor="end", size=FONT - 1, fill=MUTED))
    span = x1 - x0
    tfmt = "%m-%d %H:%M" if span < 5 * 86400 else "%Y-%m-%d"
    for k in range(6):
        t = x0 + span * k / 5
        body.append(_line(sx(t), top, sx(t), top + plot_h))
        body.append(_text(sx(t), height - 10, dt.datetime.fromtimestamp(t, dt.UTC).strftime(tfmt),
                          anchor=("start", "middle", "middle", "middle", "middle", "end")[k], size=FONT - 1,
                          fill=MUTED))
    for name, colour, ys in series:
        pts = " ".join(f"{_f(sx(x))},{_f(sy(y))}" for x, y in zip(xs, ys, strict=True))
        body.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in zip(xs, ys, strict=True):
            body.append(f'<circle cx="{_f(sx(x))}" cy="{_f(sy(y))}" r="3.5" fill="{colour}">'
                        f"<title>{esc(f'{utc(x)}: {name} {fmt(y)}')}</title></circle>")
    return _svg(width, height, body, label)


def scatter(label: str, xs: np.ndarray, ys: np.ndarray, colours: Sequence[str], *, x_title: str, y_title: str,
            legend: Sequence[tuple[str, str]], floor: float = 1.0, width: int = 1100, height: int = 420) -> str:
    """Log-log scatter of two USD amounts (values below `floor` drawn at the floor), with the diagonal."""
    if len(xs) == 0:
        return _empty(label, "no wallet with stress losses")
    left, right, top, bottom = 70, 20, 30, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    lx, ly = np.log10(np.maximum(xs, floor)), np.log10(np.maximum(ys, floor))
    lo = math.floor(min(lx.min(), ly.min()))
    hi = max(math.ceil(max(lx.max(), ly.max())), lo + 1)
    sx = lambda v: left + plot_w * (v - lo) / (hi - lo)  # noqa: E731
    sy = lambda v: top + plot_h * (1 - (v - lo) / (hi - lo))  # noqa: E731
    body = _legend(legend, left, 16)
    for k in range(lo, hi + 1):
        body.append(_line(sx(k), top, sx(k), top + plot_h))
        body.append(_line(left, sy(k), left + plot_w, sy(k)))
        body.append(_text(sx(k), top + plot_h + 15, usd_short(10.0 ** k), anchor="middle", size=FONT - 1,
                          fill=MUTED))
        body.append(_text(left - 6, sy(k) + 4, usd_short(10.0 ** k), anchor="end", size=FONT - 1, fill=MUTED))
    body.append(_line(sx(lo), sy(lo), sx(hi), sy(hi), "#9ca3af", 1.5, "5 4", "equal losses"))
    body.append(_text(left + plot_w / 2, height - 8, x_title, anchor="middle", size=FONT - 1, fill=MUTED))
    body.append(_text(14, top + plot_h / 2, y_title, anchor="middle", size=FONT - 1, fill=MUTED,
                      extra=f' transform="rotate(-90 14 {_f(top + plot_h / 2)})"'))
    for x, y, c, rx, ry in zip(lx, ly, colours, xs, ys, strict=True):
        body.append(f'<circle cx="{_f(sx(x))}" cy="{_f(sy(y))}" r="3" fill="{c}" fill-opacity="0.6">'
                    f"<title>{esc(f'L_joint {usd(rx)}, worst scenario {usd(ry)}')}</title></circle>")
    return _svg(width, height, body, label)


# ------------------------------------------------------------------------------------------ analysis


def _group(keys: np.ndarray, *values: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Sums of each value array per distinct key."""
    if len(keys) == 0:
        return [], [np.zeros(0) for _ in values]
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    return list(uniq), [np.bincount(inv, weights=v, minlength=len(uniq)) for v in values]


def decompose(h: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Split each holding's market value into collateral, the USD each haircut component took (scaled
    down pro rata where the components add up to more than the 100% cap), the concentration cuts, and
    the value of ineligible holdings."""
    mv, elig = h["market_value"], h["eligible"]
    parts = np.vstack([h["h_base"], h["h_vol"], h["h_size"], h["h_gap"]])
    total = parts.sum(axis=0)
    scale = np.divide(h["haircut"], total, out=np.zeros_like(total), where=total > 0)
    usd_parts = parts * (mv * scale * elig)
    return dict(collateral=h["collateral_value"], base=usd_parts[0], vol=usd_parts[1], size=usd_parts[2],
                gap=usd_parts[3], conc=(h["platform_cut"] + h["wallet_cut"]) * elig, excluded=mv * ~elig)


@dataclass
class TokenLine:
    token: str
    symbol: str
    asset_class: str
    holders: int
    market_value: float
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
    weights = np.where(mv[inv] > 0, h["market_value"], 1.0)
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
            holders=int(holders[i]), market_value=float(mv[i]), parts={k: float(v[i]) for k, v in sums.items()},
            rates={k: float(v[i]) for k, v in rates.items()}, haircut=float(haircut[i]), pledged=float(pledged[i]),
            supply=float(d.supply.get(tok, math.nan)),
            platform_cut=float(np.sum(h["platform_cut"][sel])), wallet_cut=float(np.sum(h["wallet_cut"][sel])),
            wallets_over_cap=int(over[i]),
            top1=float(vals[0] / total) if total > 0 else 0.0,
            top10=float(vals[:10].sum() / total) if total > 0 else 0.0,
            weighted_share=float(weighted[i] / ap_sum[i]) if ap_sum[i] > 0 else 0.0))
    out.sort(key=lambda t: (-t.market_value, t.symbol))
    return out


def code_table(h: dict[str, np.ndarray]) -> list[tuple[str, int, float]]:
    """Per eligibility code: holdings with that bit set and their market value (which counts zero)."""
    out = []
    codes, mv = h["codes"], h["market_value"]
    for code in Eligibility:
        hit = (codes & int(code)) != 0
        if hit.any():
            out.append((str(code.name), int(hit.sum()), float(mv[hit].sum())))
    out.sort(key=lambda r: (-r[2], r[0]))
    return out


# ------------------------------------------------------------------------------------------ page


CSS = """
:root{--fg:#1f2430;--muted:#6b7280;--line:#e5e7eb;--bg:#f4f5f7}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 20px 40px}
header{background:#1f2937;color:#f9fafb;padding:18px 24px;border-radius:10px;margin-bottom:16px}
header h1{margin:0 0 4px;font-size:22px}
header .meta{color:#d1d5db;font-size:13px}
header .meta code{color:#f9fafb}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin-top:14px}
.card{background:#374151;border-radius:8px;padding:8px 12px}
.card .k{font-size:12px;color:#d1d5db}
.card .v{font-size:19px;font-weight:600;font-variant-numeric:tabular-nums}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 20px 18px;margin-bottom:16px}
section h2{margin:0 0 4px;font-size:17px}
p.lead{margin:0 0 10px;color:var(--muted);font-size:13px}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin-top:8px;font-variant-numeric:tabular-nums}
.tw{overflow-x:auto}
th,td{padding:4px 7px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{color:var(--muted);font-weight:600;background:#fafafa}
td.l,th.l{text-align:left}
td.addr{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:11.5px}
.pill{display:inline-block;padding:0 8px;border-radius:9px;color:#fff;font-size:11.5px}
.note{background:#fff7e6;border:1px solid #f5d38a;border-radius:6px;padding:6px 10px;font-size:13px;margin:6px 0}
h3{font-size:14px;margin:14px 0 2px}
footer{color:var(--muted);font-size:12px;text-align:center}
"""


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,),
           raw: Sequence[int] = (), mono: Sequence[int] = ()) -> str:
    """A table; cells are escaped except the columns in `raw` (already HTML); `mono`: address columns."""
    th = "".join(f'<th class="l">{esc(h)}</th>' if i in left else f"<th>{esc(h)}</th>" for i, h in enumerate(head))
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            text = c if i in raw else esc(c)
            cls = " ".join(c for c, on in (("l", i in left), ("addr", i in mono)) if on)
            cells.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="tw"><table><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _pill(status: str) -> str:
    return f'<span class="pill" style="background:{STATUS_COLOURS.get(status, MUTED)}">{esc(status)}</span>'


def _section(title: str, lead: str, *content: str) -> str:
    anchor = title.lower().replace(" ", "-")
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2><p class="lead">{esc(lead)}</p>{"".join(content)}</section>'


def _header(d: ReportData, policy_note: str) -> str:
    r, w = d.run, d.wallets
    status = {s: int(np.sum(w["status"] == s)) for s in STATUS_COLOURS}
    wait = int(r["seconds_to_next_open"])
    state = str(r["market_state"])
    if wait > 0:
        state += f" (next open in {wait // 3600}h {wait % 3600 // 60:02d}m)"
    cards = [
        ("wallets", num(len(w["wallet"]))), ("holdings", num(len(d.holdings["wallet"]))),
        ("positions", num(int(r["positions"]))), ("market value", usd(float(np.sum(w["market_value"])))),
        ("collateral", usd(float(np.sum(w["collateral"])))),
        *((s.replace("_", " "), num(n)) for s, n in status.items()),
        ("stressed excess < 0", num(int(np.sum(w["stressed_excess"] < 0)))),
    ]
    name, version = str(r["policy_name"]), str(r["policy_version"])
    policy_label = version if version.startswith(name + "/") else f"{name}/{version}"
    card_html = "".join(f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>'
                        for k, v in cards)
    meta = (f"chain {esc(r['chain_id'])} · block <b>{esc(r['block_number'])}</b> · {esc(utc(r['block_timestamp']))}"
            f" · XNYS {esc(state)}<br>policy <code>{esc(policy_label)}</code> "
            f"sha256 <code>{esc(r['policy_hash'])}</code> · computed {esc(utc(int(r['started_at'])))} "
            f"in {float(r['seconds']):.2f} s")
    note = f'<div class="note" style="color:#1f2430">{esc(policy_note)}</div>' if policy_note else ""
    return (f'<header><h1>Collateral risk report · run {esc(r["id"])}</h1><div class="meta">{meta}</div>{note}'
            f'<div class="cards">{card_html}</div></header>')


def _collateral_sections(lines: list[TokenLine]) -> tuple[str, str, str]:
    series = [(name, colour) for _, name, colour in SERIES]
    keys = [k for k, _, _ in SERIES]

    def total_note(mv: float, coll: float) -> str:
        return f"{usd_short(mv)} → {usd_short(coll)} ({pct(coll / mv, 0) if mv > 0 else 'n/a'})"

    by_token = stacked_bars(
        "Collateral by token", [(t.symbol, [t.parts[k] for k in keys]) for t in lines], series, usd_short,
        totals=[total_note(t.market_value, t.parts["collateral"]) for t in lines])
    token_rows = [(t.symbol, t.asset_class, num(t.holders), usd(t.market_value), usd(t.parts["collateral"]),
                   usd(t.parts["base"] + t.parts["vol"] + t.parts["size"] + t.parts["gap"]), usd(t.parts["conc"]),
                   usd(t.parts["excluded"])) for t in lines]
    token_table = _table(["token", "asset class", "holders", "market value", "collateral", "haircuts",
                          "concentration cut", "ineligible"], token_rows, left=(0, 1))

    classes: dict[str, dict[str, float]] = {}
    for t in lines:
        c = classes.setdefault(t.asset_class, dict.fromkeys([*keys, "mv"], 0.0))
        for k in keys:
            c[k] += t.parts[k]
        c["mv"] += t.market_value
    ordered = sorted(classes.items(), key=lambda kv: -kv[1]["mv"])
    by_class = stacked_bars("Collateral by asset class", [(k, [v[s] for s in keys]) for k, v in ordered], series,
                            usd_short, totals=[total_note(v["mv"], v["collateral"]) for _, v in ordered])

    rates = stacked_bars(
        "Haircut components per token", [(t.symbol, [t.rates[k] for k, _, _ in RATE_SERIES]) for t in lines],
        [(name, colour) for _, name, colour in RATE_SERIES], lambda v: pct(v, 0),
        totals=[f"haircut {pct(t.haircut)}" + (" (capped at 100%)" if sum(t.rates.values()) > 1 else "")
                for t in lines])
    return (
        _section(SECTIONS[0], "Market value held per token, split into what counts as collateral and what each "
                 "haircut component, the concentration caps and ineligibility took (USD).", by_token, token_table),
        _section(SECTIONS[1], "The same split per asset class (tokens.asset_class).", by_class),
        _section(SECTIONS[2], "Value-weighted average haircut rates per token: base (policy, per asset class), "
                 "volatility (EWMA sigma), size (value bands and liquidity), market-closed gap. Their sum is "
                 "capped at 100%.", rates),
    )


def nearest_margin_call(w: dict[str, np.ndarray], *, below: int = NEAREST_BELOW,
                        healthy: int = NEAREST_HEALTHY) -> np.ndarray:
    """Indices of wallets with positions, by excess / IM ascending: the `below` lowest of those already
    under initial margin, then the `healthy` ones nearest to it (ties by address)."""
    idx = np.flatnonzero(w["im"] > 0)
    ratio = w["excess"][idx] / w["im"][idx]
    order = idx[np.lexsort((w["wallet"][idx].astype(str), ratio))]
    ok = w["status"][order] == "healthy"
    return np.concatenate([order[~ok][:below], order[ok][:healthy]])


def _nearest_section(d: ReportData) -> str:
    w = d.wallets
    with_pos = w["im"] > 0
    if not with_pos.any():
        return _section(SECTIONS[3], "Wallets with positions, by excess / initial margin.",
                        _empty(SECTIONS[3], "no wallet has positions in this run"))
    order = nearest_margin_call(w)
    rows, marks, trows = [], [], []
    for i in order:
        r = float(w["excess"][i] / w["im"][i])
        st = str(w["status"][i])
        rows.append((str(w["wallet"][i]), r, STATUS_COLOURS.get(st, MUTED),
                     f"{pct(r)} · {st.replace('_', ' ')} · excess {usd_short(float(w['excess'][i]))}"))
        marks.append(float((w["mm"][i] - w["im"][i]) / w["im"][i]))
        trows.append((esc(w["wallet"][i]), _pill(st),
                      esc(usd(float(w["collateral"][i]))), esc(usd(float(w["equity"][i]))),
                      esc(usd(float(w["im"][i]))), esc(usd(float(w["mm"][i]))), esc(usd(float(w["excess"][i]))),
                      esc(pct(r)), esc(usd(float(w["stressed_excess"][i]))), esc(str(w["binding"][i]))))
    ratios = [r for _, r, _, _ in rows]
    domain = (max(min(min(ratios), 0.0), -1.0), max(max(ratios) * 1.05, 0.05))
    chart = bars(SECTIONS[3], rows, lambda v: pct(v, 0), markers=marks, marker_name="liquidation at",
                 label_w=320, note_w=300, domain=domain)
    counts = {s: int(np.sum(w["status"][with_pos] == s)) for s in STATUS_COLOURS}
    lead = ("Excess over initial margin as a share of it, for the wallets with positions: the worst already under "
            "IM (below 0: margin call), then the healthy ones nearest to a margin call. Black tick: where "
            "liquidation starts (equity = MM); bars are clipped at -100%. With positions: "
            + ", ".join(f"{num(n)} {s.replace('_', ' ')}" for s, n in counts.items()) + ".")
    table = _table(["wallet", "status", "collateral", "equity", "IM", "MM", "excess", "excess / IM",
                    "stressed excess", "binding stress"], trows, left=(0, 1, 9), raw=range(10), mono=(0,))
    return _section(SECTIONS[3], lead, chart, table)


def _concentration_section(lines: list[TokenLine], policy: Policy | None, caps_ok: bool) -> str:
    plat_cap = policy.concentration.platform_supply_share_cap if policy and caps_ok else None
    rows, marks = [], []
    for t in lines:
        share = t.pledged / t.supply if t.supply and t.supply > 0 else 0.0
        over = plat_cap is not None and share > plat_cap
        note = f"{pct(share)} of supply" + (f" · cut {usd_short(t.platform_cut)}" if t.platform_cut > 0.005 else "")
        rows.append((t.symbol, share, "#d43d3d" if over or t.platform_cut > 0.005 else "#4a78c2", note))
        marks.append(plat_cap)
    platform = bars("Pledged share of supply", rows, lambda v: pct(v, 0), markers=marks if plat_cap else None,
                    marker_name="platform cap", label_w=150)
    rows2, marks2 = [], []
    for t in lines:
        cap = policy.token_wallet_share_cap(t.symbol) if policy and caps_ok else None
        note = (f"{num(t.wallets_over_cap)} wallets over cap, cut {usd_short(t.wallet_cut)}"
                if t.wallets_over_cap else "no wallet over cap")
        rows2.append((t.symbol, t.weighted_share, "#e39b12" if t.wallets_over_cap else "#4a78c2", note))
        marks2.append(cap)
    wallet = bars("Share of holders' eligible collateral", rows2, lambda v: pct(v, 0),
                  markers=marks2 if any(c is not None for c in marks2) else None, marker_name="wallet share cap",
                  label_w=150, domain=(0.0, 1.0))
    table = _table(["token", "holders", "top holder", "top 10 holders", "pledged / supply", "platform cut",
                    "wallets over cap", "wallet cut"],
                   [(t.symbol, num(t.holders), pct(t.top1), pct(t.top10),
                     pct(t.pledged / t.supply) if t.supply and t.supply > 0 else "n/a", usd(t.platform_cut),
                     num(t.wallets_over_cap), usd(t.wallet_cut)) for t in lines])
    caps = (f"Black ticks: the policy's caps (platform {pct(plat_cap, 0)} of supply; wallet share per token)."
            if plat_cap is not None else "No policy file matching this run was given: shares are shown without "
            "their caps.")
    return _section(
        SECTIONS[4], "Platform cap: eligible (pledged) units of each token against its total supply. Wallet cap: the "
        "value-weighted share each token takes of its holders' eligible collateral; the excess of one token over "
        "the cap counts zero. " + caps,
        "<h3>Platform: pledged share of supply</h3>", platform,
        "<h3>Wallets: share of the holder's eligible collateral (value-weighted)</h3>", wallet,
        "<h3>Top holders' share of each token</h3>", table)


def _stress_section(d: ReportData) -> str:
    w = d.wallets
    sel = np.flatnonzero((w["l_joint"] > 0) | (w["worst_scenario_loss"] > 0))
    if len(sel) > MAX_SCATTER_POINTS:  # the largest losses, then an even sample of the rest
        worst = np.maximum(w["l_joint"][sel], w["worst_scenario_loss"][sel])
        order = sel[np.argsort(-worst, kind="stable")]
        head = order[: MAX_SCATTER_POINTS // 2]
        tail = order[MAX_SCATTER_POINTS // 2:]
        sel = np.concatenate([head, tail[:: max(1, len(tail) // (MAX_SCATTER_POINTS // 2))]])
    shown = f" ({num(len(sel))} shown)" if len(sel) < int(np.sum(w["l_joint"] > 0)) else ""
    param = np.asarray([str(b) == "parametric" for b in w["binding"][sel]], dtype=bool)
    colours = np.where(param, "#4a78c2", "#d43d3d")
    plot = scatter(
        "Stress losses per wallet", w["l_joint"][sel], w["worst_scenario_loss"][sel], list(colours),
        x_title="parametric joint loss L_joint (USD, log)", y_title="worst scenario loss (USD, log)",
        legend=[("parametric binds", "#4a78c2"), ("a scenario binds", "#d43d3d")])
    names, (counts,) = _group(w["binding"][w["im"] > 0], np.ones(int(np.sum(w["im"] > 0))))
    order = np.argsort(-counts, kind="stable") if len(counts) else []
    binding = bars("Binding stress per wallet", [(names[i], float(counts[i]),
                                                  "#4a78c2" if names[i] == "parametric" else "#d43d3d",
                                                  f"{num(counts[i])} wallet{'' if counts[i] == 1 else 's'}")
                                                 for i in order], num, label_w=260)
    neg = int(np.sum(w["stressed_excess"] < 0))
    return _section(
        SECTIONS[5], f"Each wallet's parametric joint equity-crypto loss L_joint against its worst scenario loss "
        f"(points above the diagonal: a scenario binds){shown}. {num(neg)} wallets have a negative stressed excess.",
        plot, "<h3>Binding stress, wallets with positions</h3>", binding)


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


def _wrong_way_section(d: ReportData) -> str:
    w = d.wallets
    has = w["im"] > 0
    ww = w["wrong_way"][has]
    labels, counts = log_bins(ww)
    chart = (columns(SECTIONS[6], labels, counts, "#c0504d", num, x_title="wrong-way add-on (USD, log bins)")
             if labels else _empty(SECTIONS[6], "no wallet has positions in this run"))
    pos = ww[ww > 0]
    stats = (f"{num(len(pos))} of {num(len(ww))} wallets with positions carry a wrong-way add-on; "
             f"median {usd(float(np.median(pos)))}, largest {usd(float(pos.max()))}, total {usd(float(pos.sum()))}."
             if len(pos) else f"No wrong-way add-on among {num(len(ww))} wallets with positions.")
    return _section(SECTIONS[6], "wrong_way = max(0, L_joint - L_indep): what the equity-crypto correlation adds to "
                    "the stress loss (long crypto against stock collateral). " + stats, chart)


def _history_section(d: ReportData) -> str:
    hist = d.history
    xs = [float(h["block_timestamp"]) for h in hist]
    money = line_chart("Collateral over time", xs, [
        ("market value", "#4a78c2", [h["market_value"] for h in hist]),
        ("collateral", "#2e9d5b", [h["collateral"] for h in hist])], usd_short)
    status = line_chart("Wallets in margin call or liquidation over time", xs, [
        ("margin call", STATUS_COLOURS["margin_call"], [float(h["margin_call"]) for h in hist]),
        ("liquidate", STATUS_COLOURS["liquidate"], [float(h["liquidate"]) for h in hist])], num, height=200)
    rows = [(str(h["id"]), num(h["block_number"]), utc(h["block_timestamp"]), usd(h["market_value"]),
             usd(h["collateral"]), num(h["margin_call"]), num(h["liquidate"])) for h in hist[-20:]]
    table = _table(["run", "block", "block time", "market value", "collateral", "margin call", "liquidate"], rows,
                   left=(2,))
    return _section(SECTIONS[7], f"Every stored run of this chain ({num(len(hist))}), by block time: total market "
                    "value and collateral, and the wallets in margin call or liquidation (last 20 runs in the table).",
                    money, status, table)


def _codes_section(d: ReportData) -> str:
    rows = code_table(d.holdings)
    mv = float(np.sum(d.holdings["market_value"]))
    excluded = float(np.sum(d.holdings["market_value"][~d.holdings["eligible"]]))
    if not rows:
        return _section(SECTIONS[8], "Every holding is eligible.", _empty(SECTIONS[8], "no ineligible holding"))
    chart = bars(SECTIONS[8], [(n, v, "#b8bcc4", f"{num(c)} holdings") for n, c, v in rows], usd_short, label_w=220)
    table = _table(["code", "holdings", "market value excluded"], [(n, num(c), usd(v)) for n, c, v in rows])
    return _section(
        SECTIONS[8], f"Holdings refused per eligibility code (a holding can carry several codes, so the rows overlap). "
        f"Ineligible in all: {usd(excluded)} of {usd(mv)} market value ({pct(excluded / mv) if mv > 0 else 'n/a'}).",
        chart, table)


def render_report(d: ReportData, policy: Policy | None = None) -> str:
    """The page as one HTML string."""
    caps_ok = policy is not None and policy.content_hash == d.run["policy_hash"]
    note = ""
    if policy is not None and not caps_ok:
        note = (f"The policy given ({policy.version_string}) is not the one this run used (sha256 "
                f"{str(d.run['policy_hash'])[:12]}): its caps are not drawn.")
    lines = token_lines(d)
    by_token, by_class, rates = _collateral_sections(lines)
    parts = [
        _header(d, note), by_token, by_class, rates, _nearest_section(d), _concentration_section(lines, policy, caps_ok),
        _stress_section(d), _wrong_way_section(d), _history_section(d), _codes_section(d),
    ]
    title = f"Collateral risk report · run {d.run['id']} · block {d.run['block_number']}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            + "".join(parts)
            + "<footer>collateral-indexer risk report · all figures in USD at the run's block · hover a bar for its "
              "value</footer></main></body></html>\n")


def write_report(engine: Engine, chain_id: int, out_dir: Path, *, run_id: int | None = None,
                 policy: Policy | None = None) -> Path:
    """Write `out_dir/index.html` for run `run_id` (default: the latest stored for `chain_id`); return its path.

    `policy`: the policy file the run used (e.g. `load_policy(settings.policy_path)`); when its content hash
    matches the run's, the concentration chart draws its caps. Raises ReportError when there is no such run.
    """
    with engine.connect() as conn:
        data = load_report_data(conn, chain_id, run_id)
    page = render_report(data, policy)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
