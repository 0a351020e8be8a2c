"""The readable form of a wallet lookup (rich tables), from the same document the JSON output prints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"healthy": "green", "margin_call": "yellow", "liquidate": "bold red", "unpriced": "bold magenta"}


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
    for bad in doc["invalid"]:
        console.print(f"[red]invalid address[/red] {bad['input']!r}: {bad['error']}", highlight=False)
    for note in run.get("notes", []):
        console.print(f"  [yellow]note:[/yellow] {note}", highlight=False)
    for w in doc["wallets"]:
        console.print(_wallet(w))


def _wallet(w: dict[str, Any]) -> Panel:
    title = Text(w["checksummed"], style="bold")
    if not w["found"]:
        return Panel(Text(w.get("note", "not found"), style="yellow"), title=title, title_align="left")
    parts: list[Any] = []
    margin = w["margin"]
    if margin is not None:
        status = margin["status"]
        parts.append(Text.assemble(
            ("status ", "dim"), (status.upper(), STATUS_STYLE.get(status, "")),
            ("   collateral ", "dim"), usd(margin["collateral"]), ("  of market value ", "dim"), usd(margin["market_value"]),
            ("   equity ", "dim"), usd(margin["equity"]), ("  IM ", "dim"), usd(margin["im"]),
            ("  MM ", "dim"), usd(margin["mm"]), ("  excess ", "dim"), usd(margin["excess"])))
        if margin.get("stale_driven"):
            parts.append(Text("a stale price drives this status: with fresh prices it would be better (an oracle "
                              "stall alone never liquidates)", style="yellow"))
        if margin.get("unpriced_positions"):
            parts.append(Text(f"{margin['unpriced_positions']} position(s) have no usable mark: margin unknown",
                              style="magenta"))
    acct = w["account"]
    parts.append(Text("account: " + (f"{acct['jurisdiction']}, {acct['tier']}, KYC {acct['kyc_status']}, "
                                     f"cash {usd(acct['cash_usd'])}" if acct else "none on file"), style="dim"))
    t = Table(title="holdings", title_justify="left", expand=False)
    for col, just in (("token", "left"), ("balance", "right"), ("price · age · market", "left"),
                      ("value", "right"), ("haircut = base + vol + size + gap + stale", "left"), ("collateral", "right"),
                      ("eligibility", "left")):
        t.add_column(col, justify=just)
    for h in w["holdings"]:
        hc, pr = h["haircut"], h["price"]
        caps = h["platform_cut"] + h["wallet_cut"]
        reasons = ", ".join(h["reasons"]) if h["reasons"] else "eligible"
        t.add_row(h["symbol"], f"{h['balance']:,.4f}", f"{usd(pr['value'])} · {age(pr['age_s'])} · {pr['market_state']}",
                  usd(h["market_value"]),
                  f"{pct(hc['total'])} = {pct(hc['base'])} + {pct(hc['volatility'])} + {pct(hc['size'])} + "
                  f"{pct(hc['gap'])} + {pct(hc.get('stale', 0.0))}" + (f"; caps -{usd(caps)}" if caps > 0.005 else "")
                  + (f"; price x{pr['action_factor']:.6g} across a corporate action"
                     if pr.get("action_factor", 1.0) != 1.0 else ""),
                  usd(h["collateral_value"]), Text(reasons, style="green" if not h["reasons"] else "red"))
    parts.append(t)
    if w["positions"]:
        p = Table(title="positions", title_justify="left")
        for col in ("instrument", "base", "size", "entry", "leverage", "mark · quality · age", "uPnL"):
            p.add_column(col, justify="left" if col in ("instrument", "base", "mark · quality · age") else "right")
        for pos in w["positions"]:
            mk = pos.get("mark")
            mark = "not in this run" if mk is None else (
                f"{usd(mk['used'])} · {mk['quality']}" + (f" (-{pct(mk['adverse'])} against)" if mk["adverse"] else "")
                + f" · {age(mk['age_s'])}")
            p.add_row(pos["instrument"], pos["base_asset"], f"{pos['size']:,.6f}", usd(pos["entry_price"]),
                      f"{pos['leverage']:g}x", Text(mark, style="" if mk is None or mk["quality"] == "ok" else "yellow"),
                      "" if mk is None else usd(mk["upnl"]))
        parts.append(p)
    if margin is not None:
        parts.append(Text(f"unrealized PnL {usd(margin['upnl'])} · cash {usd(margin['cash'])}", style="dim"))
    s = w["stress"]
    if s is not None:
        parts.append(Text.assemble(
            ("stress: ", "bold"), ("L_joint ", "dim"), usd(s["l_joint"]), ("  L_indep ", "dim"), usd(s["l_indep"]),
            ("  wrong-way add-on ", "dim"), usd(s["wrong_way"]), ("  worst scenario ", "dim"),
            f"{s['worst_scenario']} ({usd(s['worst_scenario_loss'])})", ("  stressed excess ", "dim"),
            (usd(s["stressed_excess"]), "red" if s["stressed_excess"] < 0 else "green"),
            ("  binding ", "dim"), s["binding"], ("  regime ", "dim"), s.get("regime", "positive")))
    if w.get("note"):
        parts.append(Text(w["note"], style="yellow"))
    return Panel(Group(*parts), title=title, title_align="left")
