"""Inline SVG charts for the report: drawing primitives, axes and legends, and the chart kinds the page uses
(horizontal stacked and signed bars, columns, lines over time, a log-log scatter)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence

import numpy as np

from indexer.report.format import esc, usd, usd_short, utc

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


def empty_chart(label: str, message: str, width: int = 1100) -> str:
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
        return empty_chart(label, "no data")
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
        return empty_chart(label, "no data")
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
        return empty_chart(label, "no data")
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


def line_chart(label: str, xs: Sequence[float], series: Sequence[tuple[str, str, Sequence[float | None]]],
               fmt: Callable[[float], str], *, width: int = 1100, height: int = 240) -> str:
    """Lines over block time (x: unix seconds), one per series, a point per run (None: no point, the line breaks)."""
    if not xs:
        return empty_chart(label, "no runs")
    left, right, top, bottom = 70, 20, 28, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 3600, x1 + 3600
    allv = [v for _, _, ys in series for v in ys if v is not None] or [0.0]
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
        runs: list[list[tuple[float, float]]] = [[]]  # a value of None (not measured then) breaks the line
        for x, y in zip(xs, ys, strict=True):
            if y is None:
                runs.append([])
            else:
                runs[-1].append((x, y))
        for run in runs:
            if run:
                pts = " ".join(f"{_f(sx(x))},{_f(sy(y))}" for x, y in run)
                body.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in ((x, y) for x, y in zip(xs, ys, strict=True) if y is not None):
            body.append(f'<circle cx="{_f(sx(x))}" cy="{_f(sy(y))}" r="3.5" fill="{colour}">'
                        f"<title>{esc(f'{utc(x)}: {name} {fmt(y)}')}</title></circle>")
    return _svg(width, height, body, label)


def scatter(label: str, xs: np.ndarray, ys: np.ndarray, colours: Sequence[str], *, x_title: str, y_title: str,
            legend: Sequence[tuple[str, str]], floor: float = 1.0, width: int = 1100, height: int = 420) -> str:
    """Log-log scatter of two USD amounts (values below `floor` drawn at the floor), with the diagonal."""
    if len(xs) == 0:
        return empty_chart(label, "no wallet with stress losses")
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
