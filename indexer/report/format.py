"""Formatting of numbers, times and text for the report page and its charts."""

from __future__ import annotations

import datetime as dt
import html
import math


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
