"""The readable form of a wallet lookup (rich tables), from the same document the JSON output prints.

A number is never cut, whatever the width (COLUMNS, or 80 when the output is not a terminal): a table is
drawn only when every number fits whole in its column (text columns wrap at spaces); otherwise each of
its rows becomes an entry of "label value" pieces packed into lines, never broken inside a piece.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"healthy": "green", "margin_call": "yellow", "liquidate": "bold red", "unpriced": "bold magenta"}
FLAG_STYLE = "bold white on red"
PANEL_EDGE = 4  # a panel's border and padding, left and right
MIN_TEXT_COLUMN = 14  # a text column is not squeezed below this (or its longest word): the rows become a list


@dataclass(frozen=True)
class Col:
    header: str
    number: bool = False  # right-aligned, never wrapped: shown whole, or the table becomes a list
    label: str | None = None  # its name in the list form (default: the header; "" for none)


HOLDING_COLUMNS = (Col("token"), Col("balance", number=True), Col("price · age · market", label="price"),
                   Col("value", number=True),
                   Col("haircut = base + vol + size + gap + stale", label="haircut (base + vol + size + gap + stale)"),
                   Col("collateral", number=True), Col("eligibility", label=""))
POSITION_COLUMNS = (Col("instrument"), Col("base"), Col("size", number=True), Col("entry", number=True),
                    Col("leverage", number=True), Col("mark · quality · age", label="mark"),
                    Col("uPnL", number=True))


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def column_widths(cols: Sequence[Col], rows: Sequence[Sequence[str | Text]], width: int) -> list[int] | None:
    """Column widths (without padding) that fit a boxed table into `width` cells with no number and no
    word cut: a number column as wide as its widest cell, a text column wrapped at spaces but never
    narrower than its longest word (nor than MIN_TEXT_COLUMN when its text is longer). None: none fit."""
    frame = 3 * len(cols) + 1  # a space either side of each column, a rule between and around them
    lo, hi = [], []
    for i, col in enumerate(cols):
        cells = [col.header, *(_plain(r[i]) for r in rows)]
        widest = max(cell_len(line) for c in cells for line in (c.splitlines() or [""]))
        longest_word = max((cell_len(word) for c in cells for word in c.split()), default=1)
        lo.append(widest if col.number else max(longest_word, min(widest, MIN_TEXT_COLUMN)))
        hi.append(max(widest, 1))
    room = width - frame
    if sum(lo) > room:
        return None
    widths = list(hi)
    for _ in range(sum(widths) - room):  # narrow the column with the most to spare, one cell at a time
        i = max(range(len(cols)), key=lambda j: widths[j] - lo[j])
        widths[i] -= 1
    return widths


def pack(pieces: Sequence[Text], width: int, *, sep: str = "  ", indent: str = "  ") -> list[Text]:
    """`pieces` left to right in lines of at most `width` cells, never broken inside a piece (a piece
    longer than a line starts a line and is broken at its spaces only); continuation lines indented."""
    lines: list[Text] = []
    line: Text | None = None
    for piece in pieces:
        if line is not None and line.cell_len + len(sep) + piece.cell_len <= width:
            line.append(sep)
            line.append_text(piece)
            continue
        if line is not None:
            lines.append(line)
        first = not lines and line is None
        parts = _at_spaces(piece, width - (0 if first else len(indent)))
        for part in parts:
            lines.append(part if first else Text(indent) + part)
            first = False
        line = None if len(parts) > 1 else lines.pop()  # what follows a broken piece starts a line
    if line is not None:
        lines.append(line)
    return lines


def _at_spaces(piece: Text, width: int) -> list[Text]:
    """`piece` broken at spaces into parts of at most `width` cells (a longer word stays whole)."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", piece.plain)]
    if not words or piece.cell_len <= width:
        return [piece.copy()]
    parts, start, end = [], words[0][0], words[0][1]
    for s, e in words[1:]:
        if cell_len(piece.plain[start:e]) <= width:
            end = e
        else:
            parts.append(piece[start:end])
            start, end = s, e
    parts.append(piece[start:end])
    return parts


def _piece(label: str, value: str | Text, style: str = "") -> Text:
    """"label value" with the label dimmed."""
    return Text.assemble((f"{label} ", "dim"), value if isinstance(value, Text) else (value, style))


def table_or_list(title: str, cols: Sequence[Col], rows: Sequence[Sequence[str | Text]], width: int) -> RenderableType:
    """A table when one fits `width` with every number whole (:func:`column_widths`); else one entry per
    row: its first cell, then "label value" for the others, packed into lines (:func:`pack`)."""
    widths = column_widths(cols, rows, width)
    if widths is not None:
        t = Table(title=title, title_justify="left")
        for col, w in zip(cols, widths, strict=True):
            t.add_column(col.header, justify="right" if col.number else "left", width=w, no_wrap=col.number,
                         overflow="fold")
        for r in rows:
            t.add_row(*r)
        return t
    out: list[RenderableType] = [Text(title, style="italic")]
    for r in rows:
        first = r[0] if isinstance(r[0], Text) else Text(r[0], style="bold")
        rest = [cell if (label := col.header if col.label is None else col.label) == "" else _piece(label, cell)
                for col, cell in zip(cols[1:], r[1:], strict=True) if _plain(cell)]
        out += pack([first, *(Text(c) if isinstance(c, str) else c for c in rest)], width)
    return Group(*out)


def flags(w: dict[str, Any]) -> list[Text]:
    """The wallet's sanction and freezes, as the header's first pieces."""
    out = []
    if w.get("sanctioned"):
        out.append(Text("SANCTIONED", style=FLAG_STYLE))
    if w.get("frozen_on"):
        out.append(Text.assemble(("FROZEN", FLAG_STYLE), (" on ", "dim"), ", ".join(w["frozen_on"])))
    return out


def _share(share: float | None) -> str:
    """A holding against the depth: a percentage below it, a multiple above."""
    if share is None:
        return "-"
    return f"{share:.1%} of it" if share < 1 else f"{share:,.1f}x it"


def usd(v: float | None) -> str:
    return "-" if v is None else f"{v:,.2f}"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def age(seconds: int | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def render(doc: dict[str, Any], console: Console) -> None:
    run = doc["run"]
    when = datetime.fromtimestamp(run["block_timestamp"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    asked = run["asked"]
    asked_text = (f" (asked: block {asked['block']})" if asked.get("block") is not None else
                  f" (asked: time {asked['at']})" if asked.get("at") is not None else "")
    console.print(f"risk run {run['id']} · block {run['block_number']} · {when} · XNYS {run['market_state']} · "
                  f"policy {run['policy_version']}{asked_text}", highlight=False)
    for note in run.get("notes", []):
        console.print(f"  [yellow]note:[/yellow] {note}", highlight=False)
    for w in doc["wallets"]:
        console.print(_wallet(w, max(console.width - PANEL_EDGE, 20)))


def invalid_lines(doc: dict[str, Any]) -> list[str]:
    """One line (rich markup) per input that is not an address; the command prints them on stderr."""
    return [f"[red]invalid address[/red] {escape(repr(bad['input']))}: {escape(bad['error'])}" for bad in doc["invalid"]]


def _wallet(w: dict[str, Any], width: int) -> Panel:
    title = Text(w["checksummed"], style="bold")
    parts: list[Any] = []
    if title.cell_len + 4 > width:  # a panel's title is cut to its top edge: the address goes inside
        parts.append(title)
        title = None
    if not w["found"]:
        return Panel(Group(*parts, *pack(flags(w), width), Text(w.get("note", "not found"), style="yellow")),
                     title=title, title_align="left")
    margin = w["margin"]
    head = flags(w)
    if margin is not None:
        status = margin["status"]
        head += [_piece("status", status.upper(), STATUS_STYLE.get(status, "")),
                 Text.assemble(_piece("collateral", usd(margin["collateral"])), " ",
                               _piece("of market value", usd(margin["market_value"]))),
                 _piece("equity", usd(margin["equity"])), _piece("IM", usd(margin["im"])),
                 _piece("MM", usd(margin["mm"])), _piece("excess", usd(margin["excess"]))]
    parts += pack(head, width)
    if margin is not None:
        if margin.get("stale_driven"):
            parts.append(Text("a stale price drives this status: with fresh prices it would be better (an oracle "
                              "stall alone never liquidates)", style="yellow"))
        if margin.get("unpriced_positions"):
            parts.append(Text(f"{margin['unpriced_positions']} position(s) have no usable mark: margin unknown",
                              style="magenta"))
    acct = w["account"]
    parts.append(Text("account: " + (f"{acct['jurisdiction']}, {acct['tier']}, KYC {acct['kyc_status']}, "
                                     f"cash {usd(acct['cash_usd'])}" if acct else "none on file"), style="dim"))
    rows = []
    for h in w["holdings"]:
        hc, pr = h["haircut"], h["price"]
        caps = h["platform_cut"] + h["wallet_cut"]
        reasons = ", ".join(h["reasons"]) if h["reasons"] else "eligible"
        if h.get("valuation_flags"):
            reasons += "; valued at the pool price: " + ", ".join(h["valuation_flags"])
        rows.append([h["symbol"], f"{h['balance']:,.4f}",
                     f"{usd(pr['value'])} · {age(pr['age_s'])} · {pr['market_state']}", usd(h["market_value"]),
                     f"{pct(hc['total'])} = {pct(hc['base'])} + {pct(hc['volatility'])} + {pct(hc['size'])} + "
                     f"{pct(hc['gap'])} + {pct(hc.get('stale', 0.0))}" + (f"; caps -{usd(caps)}" if caps > 0.005 else "")
                     + (f"; price x{pr['action_factor']:.6g} across a corporate action"
                        if pr.get("action_factor", 1.0) != 1.0 else ""),
                     usd(h["collateral_value"]), Text(reasons, style="green" if not h["reasons"] else "red")])
    parts.append(table_or_list("holdings", HOLDING_COLUMNS, rows, width))
    for h in w["holdings"]:
        liq = h.get("liquidity")
        if liq is None:
            continue
        premium = liq["premium_bp"]
        parts += pack([Text(f"{h['symbol']} on DEX:", style="bold"),
                       _piece("pools", str(len(liq["pools"]))),
                       _piece("2% depth", f"{liq['depth_2pct']:,.4f} ({usd(liq['depth_2pct_usd'])})"),
                       _piece("this holding", _share(liq["share_of_depth_2pct"])),
                       _piece("24h volume", f"{liq['volume_24h']:,.4f}"),
                       _piece("pool price", usd(liq["price_usd"])),
                       _piece("vs NAV", "-" if premium is None else f"{premium:+,.1f} bp",
                              "" if premium is None or abs(premium) < 100 else "yellow")], width)
    for h in w["holdings"]:
        v = h.get("vault")
        if v is None:
            continue
        jumped = "VAULT_RATE_JUMP" in h["reasons"]
        parts += pack([Text(f"{h['symbol']}: ERC-4626 vault over {v['asset']}:", style="bold"),
                       _piece("rate", "none read" if v["rate"] is None else f"{v['rate']:,.6f} {v['asset']} per share"),
                       _piece("largest move in the window", "-" if v["jump"] is None else f"{v['jump']:+.2%}",
                              "red" if jumped else "")], width)
    if w["positions"]:
        rows = []
        for pos in w["positions"]:
            mk = pos.get("mark")
            mark = "not in this run" if mk is None else (
                f"{usd(mk['used'])} · {mk['quality']}" + (f" (-{pct(mk['adverse'])} against)" if mk["adverse"] else "")
                + f" · {age(mk['age_s'])}")
            rows.append([pos["instrument"], pos["base_asset"], f"{pos['size']:,.6f}", usd(pos["entry_price"]),
                         f"{pos['leverage']:g}x", Text(mark, style="" if mk is None or mk["quality"] == "ok" else "yellow"),
                         "" if mk is None else usd(mk["upnl"])])
        parts.append(table_or_list("positions", POSITION_COLUMNS, rows, width))
    if margin is not None:
        parts += pack([Text(f"unrealized PnL {usd(margin['upnl'])}", style="dim"),
                       Text(f"cash {usd(margin['cash'])}", style="dim")], width)
    s = w["stress"]
    if s is not None:
        parts += pack([
            Text.assemble(("stress: ", "bold"), _piece("L_joint", usd(s["l_joint"]))), _piece("L_indep", usd(s["l_indep"])),
            _piece("wrong-way add-on", usd(s["wrong_way"])),
            _piece("worst scenario", f"{s['worst_scenario']} ({usd(s['worst_scenario_loss'])})"),
            _piece("stressed excess", usd(s["stressed_excess"]), "red" if s["stressed_excess"] < 0 else "green"),
            _piece("binding", s["binding"]), _piece("regime", s.get("regime", "positive"))], width)
    if w.get("note"):
        parts.append(Text(w["note"], style="yellow"))
    return Panel(Group(*parts), title=title, title_align="left")
