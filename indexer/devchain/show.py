"""Read a dev chain's world back from the chain and render it for a person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.console import Group
from rich.table import Table

from indexer.accounting import WAD
from indexer.chain.rpc import RpcClient
from indexer.chain.state import read_latest_rounds, read_token_states
from indexer.chain.tokens import paused_of, probe_surfaces
from indexer.config import Settings


@dataclass
class TokenView:
    symbol: str
    accounting: str
    decimals: int
    total_supply: int
    multiplier: int
    paused: bool | None


@dataclass
class FeedView:
    name: str
    kind: str
    decimals: int
    round_id: int
    answer: int
    updated_at: int


def read_world(settings: Settings, rpc: RpcClient, block: str = "latest") -> tuple[dict, list[TokenView], list[FeedView]]:
    """Head block, token state and latest feed rounds, read at one block with the indexer's own readers
    (each token's surface is found by probing it, as the sync does)."""
    head = rpc.call("eth_getBlockByNumber", [block, False])
    number = int(head["number"], 16)
    mc = settings.chain.multicall3
    addresses = [t.address for t in settings.tokens]
    surfaces = probe_surfaces(rpc, addresses, number, mc)
    reads = {r.address: r for r in read_token_states(rpc, [(a, surfaces[a]) for a in addresses], number, mc)}
    tokens = []
    for t in settings.tokens:
        v = reads[t.address].values
        current = v.get("getCurrentMultiplier")
        m = current[0] if current else v.get("uiMultiplier") or v.get("multiplier") or WAD
        has_pause = surfaces[t.address].has("isPaused") or surfaces[t.address].has("paused")
        tokens.append(TokenView(t.symbol, surfaces[t.address].accounting.value, t.decimals,
                                int(v.get("totalSupply") or 0), int(m), paused_of(v) if has_pause else None))
    rounds = read_latest_rounds(rpc, [f.address for f in settings.feeds], number, mc)
    feeds = [FeedView(f.name, f.kind, f.decimals, 0, 0, 0) if r is None else
             FeedView(f.name, f.kind, f.decimals, r.round_id, r.answer, r.updated_at)
             for f, r in zip(settings.feeds, rounds, strict=True)]
    return head, tokens, feeds


def _units(raw: int, decimals: int, places: int = 2) -> str:
    value = Decimal(raw) / (Decimal(10) ** decimals)
    return f"{value:,.{places}f}"


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def world_renderable(settings: Settings, rpc: RpcClient) -> Group:
    head, tokens, feeds = read_world(settings, rpc)
    now = int(head["timestamp"], 16)
    holders = settings.world.get("holders", {})
    rounds = settings.world.get("rounds", {})
    title = (f"dev chain {settings.chain.rpc_urls[0]} · chain id {settings.chain.chain_id} · "
             f"block {int(head['number'], 16)} at {_when(now)}")
    tt = Table(title="Tokens", title_justify="left")
    for col in ("symbol", "model", "dec", "total supply", "multiplier", "holders*", "paused", "address"):
        tt.add_column(col, justify="right" if col in ("dec", "total supply", "multiplier", "holders*") else "left")
    by_symbol = {t.symbol: t for t in settings.tokens}
    for v in tokens:
        tt.add_row(v.symbol, v.accounting, str(v.decimals), _units(v.total_supply, v.decimals),
                   _units(v.multiplier, 18, 6), str(holders.get(v.symbol, "-")),
                   "-" if v.paused is None else ("yes" if v.paused else "no"), by_symbol[v.symbol].address)
    ft = Table(title="Feeds (latest round)", title_justify="left")
    for col in ("feed", "kind", "quote", "answer", "updated", "age", "rounds*"):
        ft.add_column(col, justify="right" if col in ("answer", "age", "rounds*") else "left")
    for v in feeds:
        cfg = settings.feed(v.name)
        age = now - v.updated_at if v.updated_at else None
        ft.add_row(v.name, v.kind, cfg.quote or "-", _units(v.answer, v.decimals, 4 if v.kind != "reserve" else 2),
                   _when(v.updated_at), "-" if age is None else _age(age), str(rounds.get(v.name, "-")))
    et = Table(title="World events", title_justify="left")
    for col in ("block", "time", "event", "token", "detail"):
        et.add_column(col)
    for ev in settings.events:
        detail = {k: v for k, v in ev.items() if k not in ("block", "timestamp", "kind", "token")}
        et.add_row(str(ev.get("block", "")), _when(int(ev.get("timestamp", 0))), ev["kind"], ev.get("token", ""),
                   ", ".join(f"{k}={_short(v)}" for k, v in detail.items()))
    w = settings.world
    summary = (f"{title}\nworld seed {w.get('seed')} · scale {w.get('scale')} · {w.get('wallets')} wallets · "
               f"{w.get('transfers')} transfers in {w.get('blocks')} blocks · built in {w.get('build_seconds')} s "
               f"· * at build time")
    return Group(summary, tt, ft, et)


def _age(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    s = str(v)
    if s.startswith("0x") and len(s) == 42:
        return s[:8] + "…" + s[-4:]
    return s
