"""The report page: one section per chart, the run's header, the HTML around them, and the file written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from indexer.report.analysis import (
    TokenLine,
    by_asset_class,
    code_table,
    group,
    log_bins,
    nearest_margin_call,
    short_of_margin,
    stress_sample,
    token_lines,
)
from indexer.report.data import ReportData, load_backtest, load_report_data, load_venues
from indexer.report.format import esc, num, pct, usd, usd_short, utc
from indexer.report.svg import MUTED, bars, columns, empty_chart, line_chart, scatter, stacked_bars
from indexer.risk import Policy
from indexer.store.pools import by_token

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
    "Venues side by side",
    "Haircuts against history",
    "DEX liquidity",
)

STATUS_COLOURS = {"healthy": "#2e9d5b", "margin_call": "#e39b12", "liquidate": "#d43d3d", "unpriced": "#8e44ad"}
SERIES = (  # the parts a client's holding's market value splits into, in stacking order
    ("collateral", "collateral", "#2e9d5b"),
    ("base", "base haircut", "#4a78c2"),
    ("vol", "volatility add-on", "#7fa6e0"),
    ("size", "size add-on", "#9b7fd1"),
    ("gap", "market-closed gap", "#c98bd6"),
    ("conc", "concentration cut", "#e39b12"),
    ("excluded", "ineligible", "#b8bcc4"),
)
NON_CLIENTS = "non-clients (no account on file: ACCOUNT_UNKNOWN)"
NON_CLIENT_COLOUR = "#c9b68f"
RATE_SERIES = SERIES[1:5]


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
.group{margin-top:14px;font-size:13px;color:#d1d5db;font-weight:600}
.group+.cards{margin-top:6px}
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
    r, w, h = d.run, d.wallets, d.holdings
    wait = int(r["seconds_to_next_open"])
    state = str(r["market_state"])
    if wait > 0:
        state += f" (next open in {wait // 3600}h {wait % 3600 // 60:02d}m)"
    total_mv = float(np.sum(w["market_value"]))

    def cards(client: bool) -> list[tuple[str, str]]:
        sel, hsel = w["client"] == client, h["client"] == client
        mv = float(np.sum(w["market_value"][sel]))
        out = [("wallets", num(int(sel.sum()))), ("holdings", num(int(hsel.sum()))),
               ("market value", usd(mv)), ("share of market value", pct(mv / total_mv) if total_mv > 0 else "n/a"),
               ("collateral", usd(float(np.sum(w["collateral"][sel])))),
               ("with positions", num(int(np.sum(sel & (w["im"] > 0)))))]
        if client:
            out += [(s.replace("_", " "), num(int(np.sum(sel & (w["status"] == s))))) for s in STATUS_COLOURS]
            out.append(("stressed excess < 0", num(int(np.sum(sel & (w["stressed_excess"] < 0))))))
        return out

    name, version = str(r["policy_name"]), str(r["policy_version"])
    policy_label = version if version.startswith(name + "/") else f"{name}/{version}"

    def card_html(items: list[tuple[str, str]]) -> str:
        return "".join(f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>'
                       for k, v in items)

    meta = (f"chain {esc(r['chain_id'])} · block <b>{esc(r['block_number'])}</b> · {esc(utc(r['block_timestamp']))}"
            f" · XNYS {esc(state)}<br>policy <code>{esc(policy_label)}</code> "
            f"sha256 <code>{esc(r['policy_hash'])}</code> · computed {esc(utc(int(r['started_at'])))} "
            f"in {float(r['seconds']):.2f} s<br>{esc(num(len(w['wallet'])))} wallets, "
            f"{esc(num(len(h['wallet'])))} holdings, {esc(num(int(r['positions'])))} positions, "
            f"{esc(usd(total_mv))} market value in all")
    note = f'<div class="note" style="color:#1f2430">{esc(policy_note)}</div>' if policy_note else ""
    return (f'<header><h1>Collateral risk report · run {esc(r["id"])}</h1><div class="meta">{meta}</div>{note}'
            f'<div class="group">Clients (account on file)</div><div class="cards">{card_html(cards(True))}</div>'
            '<div class="group">Not clients (no account on file: ACCOUNT_UNKNOWN; their holdings count zero)</div>'
            f'<div class="cards">{card_html(cards(False))}</div></header>')


def _collateral_sections(lines: list[TokenLine]) -> tuple[str, str, str]:
    series = [(name, colour) for _, name, colour in SERIES]
    keys = [k for k, _, _ in SERIES]

    def total_note(client_mv: float, coll: float, outside: float) -> str:
        return (f"clients {usd_short(client_mv)} → {usd_short(coll)} "
                f"({pct(coll / client_mv, 0) if client_mv > 0 else 'n/a'})"
                + (f" · non-clients {usd_short(outside)}" if outside > 0 else ""))

    by_token = stacked_bars(
        "Collateral by token", [(t.symbol, [t.parts[k] for k in keys]) for t in lines], series, usd_short,
        totals=[total_note(t.client_market_value, t.parts["collateral"], t.parts["outside"]) for t in lines],
        note_w=300)
    token_rows = [(t.symbol, t.asset_class, num(t.client_holders), usd(t.client_market_value),
                   usd(t.parts["collateral"]),
                   usd(t.parts["base"] + t.parts["vol"] + t.parts["size"] + t.parts["gap"]), usd(t.parts["conc"]),
                   usd(t.parts["excluded"]), num(t.holders - t.client_holders), usd(t.parts["outside"]))
                  for t in lines]
    token_table = _table(["token", "asset class", "client holders", "clients' value", "collateral", "haircuts",
                          "concentration cut", "ineligible", "non-client holders", "non-clients' value"], token_rows,
                         left=(0, 1))

    ordered = by_asset_class(lines, [*keys, "outside"])
    by_class = stacked_bars("Collateral by asset class", [(k, [v[s] for s in keys]) for k, v in ordered], series,
                            usd_short, totals=[total_note(v["client_mv"], v["collateral"], v["outside"])
                                               for _, v in ordered], note_w=300)
    class_table = _table(["asset class", "client market value", "collateral", "collateral / client value",
                          "non-client market value"],
                         [(k, usd(v["client_mv"]), usd(v["collateral"]),
                           pct(v["collateral"] / v["client_mv"]) if v["client_mv"] > 0 else "n/a", usd(v["outside"]))
                          for k, v in ordered])

    rates = stacked_bars(
        "Haircut components per token", [(t.symbol, [t.rates[k] for k, _, _ in RATE_SERIES]) for t in lines],
        [(name, colour) for _, name, colour in RATE_SERIES], lambda v: pct(v, 0),
        totals=[f"haircut {pct(t.haircut)}" + (" (capped at 100%)" if sum(t.rates.values()) > 1 else "")
                for t in lines])
    return (
        _section(SECTIONS[0], "The market value the clients (wallets with an account on file) hold per token, split "
                 "into what counts as collateral and what each haircut component, the concentration caps and "
                 "ineligibility took; the value held by " + NON_CLIENTS + ", which counts nothing, is given beside "
                 "each bar and in the table (USD).", by_token, token_table),
        _section(SECTIONS[1], "The same split per asset class (tokens.asset_class), clients apart from "
                 "non-clients.", by_class, class_table),
        _section(SECTIONS[2], "Value-weighted average haircut rates per token over the clients' holdings: base "
                 "(policy, per asset class), volatility (EWMA sigma), size (value bands and liquidity), market-closed "
                 "gap. Their sum is capped at 100%.", rates),
    )


def _nearest_section(d: ReportData) -> str:
    w = d.wallets
    with_pos = w["im"] > 0
    if not with_pos.any():
        return _section(SECTIONS[3], "Wallets with positions, ranked by their margin in dollars.",
                        empty_chart(SECTIONS[3], "no wallet has positions in this run"))

    def cells(i: int, gap: float) -> tuple[str, ...]:
        st = str(w["status"][i])
        return (esc(w["wallet"][i]), _pill(st), esc(usd(float(w["collateral"][i]))), esc(usd(float(w["equity"][i]))),
                esc(usd(float(w["im"][i]))), esc(usd(float(w["mm"][i]))), esc(usd(gap)),
                esc(pct(gap / float(w["im"][i]))), esc(usd(float(w["stressed_excess"][i]))), esc(str(w["binding"][i])))

    parts = []
    under = with_pos & (w["excess"] < 0)
    short = short_of_margin(w)
    total_short = float(-np.sum(w["excess"][under]))
    n_under = int(under.sum())
    parts.append(f"<h3>Under initial margin: {num(n_under)} wallets, {usd(total_short)} short of IM in all; "
                 "largest shortfall (IM - equity) first"
                 + (f", the first {num(len(short))} shown" if len(short) < n_under else "") + "</h3>")
    if len(short):
        rows, marks, trows = [], [], []
        for i in short:
            gap, st = float(-w["excess"][i]), str(w["status"][i])
            rows.append((str(w["wallet"][i]), gap, STATUS_COLOURS.get(st, MUTED),
                         f"{st.replace('_', ' ')} · {pct(gap / float(w['im'][i]))} of IM short"))
            marks.append(float(w["im"][i] - w["mm"][i]))
            trows.append(cells(int(i), gap))
        parts += [bars("Shortfall under initial margin", rows, usd_short, markers=marks,
                       marker_name="liquidation beyond", label_w=320, note_w=300),
                  _table(["wallet", "status", "collateral", "equity", "IM", "MM", "short (IM - equity)",
                          "short / IM", "stressed excess", "binding stress"], trows, left=(0, 1, 9), raw=range(10),
                         mono=(0,))]
    else:
        parts.append(empty_chart("Shortfall under initial margin", "no wallet is under initial margin"))
    near = nearest_margin_call(w)
    healthy = int(np.sum(with_pos & (w["status"] == "healthy")))
    parts.append(f"<h3>Healthy: {num(healthy)} wallets; nearest the margin-call line (equity - IM, in dollars) first"
                 + (f", the first {num(len(near))} shown" if len(near) < healthy else "") + "</h3>")
    if len(near):
        rows, trows = [], []
        for i in near:
            gap = float(w["excess"][i])
            rows.append((str(w["wallet"][i]), gap, STATUS_COLOURS["healthy"],
                         f"{pct(gap / float(w['im'][i]))} of IM above the line"))
            trows.append(cells(int(i), gap))
        parts += [bars("Distance to the margin-call line", rows, usd_short, label_w=320, note_w=300),
                  _table(["wallet", "status", "collateral", "equity", "IM", "MM", "above (equity - IM)",
                          "above / IM", "stressed excess", "binding stress"], trows, left=(0, 1, 9), raw=range(10),
                         mono=(0,))]
    else:
        parts.append(empty_chart("Distance to the margin-call line", "no wallet with positions is healthy"))
    counts = {s: int(np.sum(w["status"][with_pos] == s)) for s in STATUS_COLOURS}
    lead = ("Wallets with positions, ranked in dollars. Under initial margin (equity < IM): by how much equity falls "
            "short of IM, largest first; the black tick is the shortfall at which liquidation starts (IM - MM: "
            "equity = MM). Healthy: by how far equity stands above IM, nearest first, with that distance in percent "
            "of IM. With positions: " + ", ".join(f"{num(n)} {s.replace('_', ' ')}" for s, n in counts.items())
            + ".")
    return _section(SECTIONS[3], lead, *parts)


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
    sel = stress_sample(w)
    shown = f" ({num(len(sel))} shown)" if len(sel) < int(np.sum(w["l_joint"] > 0)) else ""
    param = np.asarray([str(b) == "parametric" for b in w["binding"][sel]], dtype=bool)
    colours = np.where(param, "#4a78c2", "#d43d3d")
    plot = scatter(
        "Stress losses per wallet", w["l_joint"][sel], w["worst_scenario_loss"][sel], list(colours),
        x_title="parametric joint loss L_joint (USD, log)", y_title="worst scenario loss (USD, log)",
        legend=[("parametric binds", "#4a78c2"), ("a scenario binds", "#d43d3d")])
    names, (counts,) = group(w["binding"][w["im"] > 0], np.ones(int(np.sum(w["im"] > 0))))
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


def _wrong_way_section(d: ReportData) -> str:
    w = d.wallets
    has = w["im"] > 0
    ww = w["wrong_way"][has]
    labels, counts = log_bins(ww)
    chart = (columns(SECTIONS[6], labels, counts, "#c0504d", num, x_title="wrong-way add-on (USD, log bins)")
             if labels else empty_chart(SECTIONS[6], "no wallet has positions in this run"))
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
        ("clients' market value", "#4a78c2", [h["client_market_value"] for h in hist]),
        ("collateral", "#2e9d5b", [h["collateral"] for h in hist]),
        ("non-clients' market value", "#b59f6b", [h["non_client_market_value"] for h in hist])], usd_short)
    status = line_chart("Wallets in margin call or liquidation over time", xs, [
        ("margin call", STATUS_COLOURS["margin_call"], [float(h["margin_call"]) for h in hist]),
        ("liquidate", STATUS_COLOURS["liquidate"], [float(h["liquidate"]) for h in hist])], num, height=200)
    rows = [(str(h["id"]), num(h["block_number"]), utc(h["block_timestamp"]), usd(h["client_market_value"]),
             usd(h["collateral"]), usd(h["non_client_market_value"]), num(h["margin_call"]), num(h["liquidate"]))
            for h in hist[-20:]]
    table = _table(["run", "block", "block time", "client market value", "collateral", "non-client market value",
                    "margin call", "liquidate"], rows, left=(2,))
    return _section(SECTIONS[7], f"Every stored run of this chain ({num(len(hist))}), by block time: the market "
                    "value the clients hold and their collateral, the market value held by " + NON_CLIENTS
                    + " (counted zero), and the wallets in margin call or liquidation (last 20 runs in the table).",
                    money, status, table)


def _codes_section(d: ReportData) -> str:
    h = d.holdings
    rows = code_table(h)
    mv, client = h["market_value"], h["client"]
    client_mv, outside = float(np.sum(mv[client])), float(np.sum(mv[~client]))
    excluded = float(np.sum(mv[client & ~h["eligible"]]))
    if not rows:
        return _section(SECTIONS[8], "Every holding is eligible.", empty_chart(SECTIONS[8], "no ineligible holding"))
    # each code's bar: the clients' value it refused; ACCOUNT_UNKNOWN's (only non-clients carry it): theirs
    bar_rows = [(r.code, r.outside_value, NON_CLIENT_COLOUR, f"{num(r.outside_holdings)} holdings of non-clients")
                if r.code == "ACCOUNT_UNKNOWN" else
                (r.code, r.client_value, "#b8bcc4", f"{num(r.client_holdings)} holdings of clients"
                 + (f" (and {num(r.outside_holdings)} of non-clients)" if r.outside_holdings else ""))
                for r in rows]
    chart = bars(SECTIONS[8], bar_rows, usd_short, label_w=220, note_w=300)
    table = _table(["code", "client holdings", "client market value excluded", "non-client holdings",
                    "non-client market value"],
                   [(r.code, num(r.client_holdings), usd(r.client_value), num(r.outside_holdings), usd(r.outside_value))
                    for r in rows])
    return _section(
        SECTIONS[8], "Holdings refused per eligibility code (a holding can carry several codes, so the rows overlap). "
        f"Clients: {usd(excluded)} of their {usd(client_mv)} market value ineligible "
        f"({pct(excluded / client_mv) if client_mv > 0 else 'n/a'}). Held by {NON_CLIENTS}: {usd(outside)} "
        f"({pct(outside / (client_mv + outside)) if client_mv + outside > 0 else 'n/a'} of all market value), none "
        "of it counted.", chart, table)


VENUE_TOP = 20  # under-reserved wallets in the venues section


def _venues_section(v) -> str:
    """Ours against venues' disclosed rules on the run's snapshot (`ComparedRuns`, a reason, or None)."""
    title = "Venues side by side"
    if v is None or isinstance(v, str):
        why = v or "no venue policies were given (`collateral-indexer report` sets the configuration's policy " \
                    "beside the bundled kraken_2026)"
        return _section(title, "Our policy and venues' disclosed rules on the same snapshot.",
                        f'<div class="note">Not compared: {esc(why)}</div>')
    c, u = v.comparison, v.comparison.under
    names = c.names
    head = ["", *(f"{n} (ours)" if k == 0 else n for k, n in enumerate(names))]
    rows = [(label, *(usd(getattr(t, key)) for t in c.totals))
            for label, key in (("market value", "market_value"), ("collateral", "collateral"), ("equity", "equity"),
                               ("IM", "im"), ("excess", "excess"), ("stressed excess", "stressed_excess"))]
    rows += [(s.replace("_", " "), *(num(t.status_counts[s]) for t in c.totals)) for s in c.totals[0].status_counts]
    rows += [("stressed excess < 0", *(num(t.stressed_negative) for t in c.totals)),
             ("under-reserved against ours", "–", *(num(t.under_reserved) for t in c.totals[1:])),
             ("their shortfall (sum)", "–", *(usd(t.shortfall) for t in c.totals[1:]))]
    totals = _table(head, rows)
    n = min(VENUE_TOP, len(u))
    status = [c.status_names(k) for k in range(len(names))]
    bar_rows, trows = [], []
    for i in range(n):
        row, k = int(u.row[i]), int(u.policy[i])
        a, b = status[0][row], status[k][row]
        wallet = str(c.wallets[row])
        bar_rows.append((wallet, float(u.shortfall[i]), STATUS_COLOURS.get(a, MUTED),
                         f"{names[k]} · {a.replace('_', ' ')} → {b.replace('_', ' ')}"))
        trows.append((esc(wallet), esc(names[k]), _pill(a), _pill(b), esc(usd(float(c.collateral[0, row]))),
                      esc(usd(float(c.collateral[k, row]))), esc(usd(float(c.excess[0, row]))),
                      esc(usd(float(c.excess[k, row]))), esc(usd(float(u.shortfall[i]))),
                      esc(usd(float(c.stressed_excess[0, row]))), esc(usd(float(c.stressed_excess[k, row])))))
    chart = (bars("Shortfall of our excess against the venue's", bar_rows, usd_short, label_w=320, note_w=300)
             if bar_rows else empty_chart(title, "no wallet is under-reserved against ours"))
    table = _table(["wallet", "venue", "status ours", "status venue", "collateral ours", "collateral venue",
                    "excess ours", "excess venue", "shortfall", "stressed ours", "stressed venue"], trows,
                   left=(0, 1, 2, 3), raw=range(11), mono=(0,))
    flips, stress_flips = int(u.status_flip.sum()), int(u.stress_flip.sum())
    lead = (f"The snapshot at block {v.block_number} ({utc(v.block_timestamp)}), recomputed from the synced tables "
            f"with the book as loaded now, under our policy ({c.versions[0]}) and under "
            + ", ".join(c.versions[1:]) + " (not stored). Totals are over every wallet. Under-reserved: a wallet "
            f"the venue counts more excess for than ours (by more than {usd(c.tolerance_usd)}), or healthy under "
            f"it but under margin under ours, or with a stressed excess >= 0 under it but < 0 under ours; "
            f"{num(len(u))} such wallet-venue pairs, {num(flips)} healthy only under the venue, "
            f"{num(stress_flips)} stressed-positive only under it. The {num(n)} largest shortfalls "
            "(excess venue - excess ours), coloured by our status:")
    return _section(title, lead, "<h3>Totals per policy</h3>", totals,
                    f"<h3>Top {num(n)} under-reserved wallets</h3>", chart, table)


def _backtest_section(b) -> str:
    """The haircut backtest of ours and the venues' rules (`BacktestRun`, a reason, or None)."""
    title = SECTIONS[10]
    if b is None or isinstance(b, str):
        why = b or "no policies were given"
        return _section(title, "Would the haircuts have covered the moves that followed?",
                        f'<div class="note">Not backtested: {esc(why)}</div>')
    from indexer.risk.backtest import ALL

    colours = ["#2563eb", "#f59e0b", "#10b981", "#ef4444"]
    ref = b.results[0]
    bar_rows, markers, trows = [], [], []
    for cell in ref.classes:
        if not cell.windows:
            continue
        for k, (name, bt) in enumerate(zip(b.names, b.results, strict=True)):
            c = next((x for x in bt.classes if (x.group, x.kind) == (cell.group, cell.kind)), None)
            if c is None or not c.windows:
                continue
            stat = (f"vol part {c.statistical_failures}/{c.statistical_windows} ({pct(c.statistical_rate)}), "
                    f"Kupiec p {c.statistical_p_value:.3f} {c.statistical_verdict}" if c.statistical_windows
                    else "no vol part")
            bar_rows.append((f"{cell.group} · {cell.kind} · {name}", c.rate, colours[k % len(colours)],
                             f"{name}: {c.failures}/{c.windows} failed; {stat}"))
            markers.append(bt.expected)
            trows.append((cell.group, cell.kind, name, num(c.windows), f"{num(c.failures)} ({pct(c.rate)})",
                          f"{c.p_value:.3f} {c.verdict}",
                          f"{num(c.statistical_failures)} ({pct(c.statistical_rate)})" if c.statistical_windows else "–",
                          f"{c.statistical_p_value:.3f} {c.statistical_verdict}" if c.statistical_windows else "–",
                          pct(c.mean_haircut), pct(c.worst_loss), utc(c.worst_start) if c.worst_start else "–"))
    if not bar_rows:
        return _section(title, "Would the haircuts have covered the moves that followed?",
                        '<div class="note">No window counted: the stored history is shorter than the warm-up '
                        f"({ref.skipped.warm_up} windows in warm-up).</div>")
    chart = bars("Share of windows whose adverse move exceeded the whole haircut", bar_rows, pct,
                 markers=markers, marker_name="expected at the policy's confidence", label_w=330, note_w=430)
    table = _table(["asset class", "window", "policy", "windows", "failed", "Kupiec p", "vol part failed",
                    "Kupiec p (vol part)", "mean haircut", "worst move", "worst window from"], trows,
                   left=(0, 1, 2, 5, 7))
    every = next(c for c in ref.classes if c.group == ALL and c.kind == "horizon")
    lead = (f"Every stored round up to block {b.block_number} ({num(b.rounds)} rounds), recomputed and not stored: "
            f"for each listed token, windows of {ref.horizon_sessions} sessions (non-overlapping) and every weekend "
            "and holiday gap, each against the haircut the policy sets at its start from the history before it "
            "(base + volatility + gap + the smallest holding's size add-on). A window fails when the adverse move, "
            "on prices carried across corporate actions, exceeds that haircut; the vol part counts moves beyond "
            f"h_vol (h_gap for a gap) alone, the part that claims {pct(ref.confidence)} coverage. Kupiec's "
            "proportion-of-failures test at 5%: consistent, under-covers (too many failures) or over-covers "
            f"(fewer than expected). Our policy: {num(every.failures)} of {num(every.windows)} horizon windows failed "
            f"against an expected {pct(ref.expected)}. The tick on each bar is the expected rate.")
    return _section(title, lead, chart, table)


def _liquidity_section(d: ReportData) -> str:
    """Where the tokens trade: each pool's price against the run's value of one token, its depth and volume, the
    cost of liquidating the pledged collateral into the pools, and the premium over time."""
    title = SECTIONS[11]
    if not d.pools:
        return _section(title, "Where the tokens trade on DEX pools.",
                        '<div class="note">No pool measured in this run: the configuration lists no [[pools]], or '
                        "the pool sync has no state of them at the run's block (docs/liquidity.md).</div>")
    cost_rows, trows = [], []
    for t in sorted(by_token(d.pools).values(), key=lambda t: t["symbol"]):
        symbol, cost = t["symbol"], t["sale_cost"]
        pledged_usd = t["sale_offered"] * (t["nav_usd"] or 0.0)
        if cost is not None:
            cost_rows.append((symbol, cost, "#d43d3d" if cost > 0.1 else "#e39b12" if cost > 0.02 else "#2e9d5b",
                              f"{usd(pledged_usd)} pledged pays {usd(t['sale_proceeds_usd'])} sold at once"))
        trows.append((symbol, num(len(t["pools"])), f"{t['depth_2pct']:,.2f}", usd(t["depth_2pct_usd"]),
                      f"{t['volume_24h']:,.2f}", usd(pledged_usd),
                      "–" if cost is None else usd(t["sale_proceeds_usd"]), "–" if cost is None else pct(cost)))
    prow = [(p["symbol"], p["name"], "–" if p["price_usd"] is None else usd(p["price_usd"]),
             "–" if p["nav_usd"] is None else usd(p["nav_usd"]),
             "–" if p["premium_bp"] is None else f"{p['premium_bp']:+,.1f}", f"{p['depth_1pct']:,.2f}",
             f"{p['depth_2pct']:,.2f}", f"{p['depth_5pct']:,.2f}", f"{p['volume_24h']:,.2f}", num(p["swaps_24h"]))
            for p in d.pools]
    history = d.premium_history
    xs = sorted({ts for series in history.values() for ts, _ in series})
    colours = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#84cc16", "#ec4899"]
    series = []
    for k, (symbol, points) in enumerate(sorted(history.items())):
        at = dict(points)
        series.append((symbol, colours[k % len(colours)], [at.get(x) for x in xs]))
    chart = line_chart("Pool price against NAV over time (bp)", [float(x) for x in xs], series,
                       lambda v: f"{v:+,.0f}", height=260) if xs else ""
    cost = bars("Cost of liquidating the pledged collateral into the pools at once", cost_rows, pct,
                label_w=120, note_w=430) if cost_rows else ""
    return _section(
        title, "Each configured pool at the run's block (risk_pools, docs/liquidity.md): its mid price against the "
        "run's value of one token (the oracle's price carried across corporate actions; negative is a discount), "
        "the tokens a sale can hold before its price moves by 1%, 2% and 5%, and the last 24 hours' volume. The "
        "liquidation cost sells what the run counts as pledged in each token (its eligible units), split across "
        "its pools by 2% depth, into each pool at once as the pool would execute it; units a pool cannot take "
        "count as lost.",
        chart, cost,
        _table(["token", "pools", "2% depth", "2% depth (USD)", "24h volume", "pledged", "proceeds", "cost"], trows),
        _table(["token", "pool", "pool price", "NAV", "premium (bp)", "1% depth", "2% depth", "5% depth",
                "24h volume", "24h swaps"], prow, left=(0, 1)))


def render_report(d: ReportData, policy: Policy | None = None, venues=None, backtest=None) -> str:
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
        _venues_section(venues), _backtest_section(backtest), _liquidity_section(d),
    ]
    title = f"Collateral risk report · run {d.run['id']} · block {d.run['block_number']}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            + "".join(parts)
            + "<footer>collateral-indexer risk report · all figures in USD at the run's block · hover a bar for its "
              "value</footer></main></body></html>\n")


def write_report(engine: Engine, chain_id: int, out_dir: Path, *, run_id: int | None = None,
                 policy: Policy | None = None, venues: Sequence[str] | None = None) -> Path:
    """Write `out_dir/index.html` for run `run_id` (default: the latest stored for `chain_id`); return its path.

    `policy`: the policy file the run used (e.g. `load_policy(settings.policy_path)`); when its content hash
    matches the run's, the concentration chart draws its caps. `venues`: policies (bundled names or paths, ours
    first, e.g. `venue_policies(settings.policy_path)`) compared on the run's snapshot in "Venues side by side" and
    backtested over the stored history up to the run's block in "Haircuts against history".
    Raises ReportError when there is no such run.
    """
    with engine.connect() as conn:
        data = load_report_data(conn, chain_id, run_id)
        block = int(data.run["block_number"])
        compared = load_venues(conn, chain_id, block, venues) if venues else None
        tested = load_backtest(conn, chain_id, block, venues) if venues else None
    page = render_report(data, policy, compared, tested)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
