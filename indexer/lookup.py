"""Wallet lookup for risk and support staff: one wallet's holdings, prices, haircuts, eligibility,
collateral, positions, margin and stress, from the stored risk run (JSON schema in
docs/wallet-lookup.schema.json, version SCHEMA_VERSION), led by a sanction or freeze in force at the
run's block (the wallet's events replayed as the run's snapshot replays them).

Which run: the latest stored run, or with ``block`` / ``at`` the latest run that valued a block at or
before it. Every query binds its inputs as parameters; addresses are parsed (with their EIP-55
checksum) before any query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, select

from indexer.addresses import AddressError, checksum, parse_address
from indexer.errors import IndexerError
from indexer.store import models as m
from indexer.store.balances import held_tokens
from indexer.store.pools import by_token, run_pools
from indexer.store.registry import account_row, feed_names, position_rows
from indexer.store.runs import latest_run
from indexer.token_events import ACCOUNT_EVENTS, fold_account_events

SCHEMA_VERSION = "1.4"


class LookupError_(IndexerError):  # noqa: N801 - LookupError is a builtin
    """No run to answer from, or a block with no run at or before it."""


@dataclass(frozen=True)
class RunRef:
    id: int
    block_number: int
    block_timestamp: int
    policy_version: str
    policy_hash: str
    market_state: str
    notes: str = ""


def addresses_in(text: str) -> list[str]:
    """The address strings of a wallet list (`--file`, stdin): one address per line (several separated
    by spaces also do); blank lines, lines starting with ``#`` and the ``# ...`` after an address are skipped."""
    return [word for line in text.splitlines() for word in line.split("#", 1)[0].split()]


def parse_wallets(values: list[str]) -> tuple[list[str], list[dict]]:
    """(valid lowercase addresses in input order without duplicates, [{input, error}] for the rest)."""
    good: list[str] = []
    bad: list[dict] = []
    for raw in values:
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            addr = parse_address(text, "wallet")
        except AddressError as exc:
            bad.append({"input": text, "error": str(exc)})
            continue
        if addr not in good:
            good.append(addr)
    return good, bad


def find_run(conn: Connection, chain_id: int, *, block: int | None = None, at: int | None = None) -> RunRef:
    """The run a lookup answers from: the latest that is not orphaned (`store.runs.latest_run`), or the latest
    at or before `block` / `at`."""
    found = latest_run(conn, chain_id, block=block, at=at)
    if found is None:
        where = f" at or before block {block}" if block is not None else f" at or before time {at}" if at is not None else ""
        raise LookupError_(f"no risk run is stored{where}: run `collateral-indexer risk run` (or the service) first")
    return RunRef(found.id, found.block_number, found.block_timestamp, found.policy_version, found.policy_hash,
                  found.market_state, found.notes)


def lookup_wallet(conn: Connection, chain_id: int, run: RunRef, wallet: str,
                  feeds: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything about one (already parsed) wallet in one run, as plain JSON-ready data.
    `feeds` ({address: name}, from :func:`feed_names`) is read once per lookup of many wallets."""
    h, w, rr = m.RiskHolding.__table__, m.RiskWallet.__table__, m.RiskRunRecord.__table__
    rp = m.RiskPosition.__table__
    holdings = conn.execute(select(h).where(h.c.run_id == run.id, h.c.wallet == wallet)
                            .order_by(h.c.collateral_value.desc(), h.c.symbol)).mappings().all()
    margin = conn.execute(select(w).where(w.c.run_id == run.id, w.c.wallet == wallet)).mappings().first()
    positions = position_rows(conn, wallet)
    marks = {r["instrument"]: r for r in conn.execute(select(rp).where(rp.c.run_id == run.id, rp.c.wallet == wallet))
             .mappings()}
    account = account_row(conn, wallet)
    feeds = feed_names(conn, chain_id) if feeds is None else feeds
    markets = token_markets(conn, run.id)
    vaults = vault_assets(conn, chain_id) if holdings else {}
    sanctioned, frozen_on = restrictions(conn, chain_id, wallet, run.block_number)
    out: dict[str, Any] = {
        "wallet": wallet,
        "checksummed": checksum(wallet[2:]),
        "found": margin is not None or bool(holdings),
        "headline": headline(sanctioned, frozen_on, None if margin is None else margin["status"]),
        "sanctioned": sanctioned,
        "frozen_on": frozen_on,
        "account": None if account is None else {
            "jurisdiction": account["jurisdiction"], "tier": account["tier"], "kyc_status": account["kyc_status"],
            "cash_usd": account["cash_usd"]},
        "holdings": [_holding(r, feeds, markets.get(r["token"]), vaults.get(r["token"])) for r in holdings],
        "positions": [{**{k: p[k] for k in ("instrument", "base_asset", "size", "entry_price", "leverage")},
                       "mark": _mark(marks.get(p["instrument"]))} for p in positions],
        "margin": None,
        "stress": None,
    }
    if margin is not None:
        out["margin"] = {k: margin[k] for k in ("market_value", "collateral", "cash", "upnl", "equity", "im", "mm",
                                                "excess", "status", "unpriced_positions")}
        out["margin"]["stale_driven"] = bool(margin["stale_driven"])
        out["stress"] = {k: margin[k] for k in ("l_joint", "l_indep", "wrong_way", "worst_scenario",
                                                "worst_scenario_loss", "stressed_excess", "binding", "regime")}
    if not out["found"]:
        # not in the run: is the wallet known at all (a holder since then, a transfer party, an account)?
        t = m.Transfer.__table__
        now_held = held_tokens(conn, chain_id, wallet)
        seen = conn.execute(select(t.c.block_number).where(t.c.chain_id == chain_id, t.c.to_address == wallet)
                            .limit(1)).first() or conn.execute(select(t.c.block_number).where(
                                t.c.chain_id == chain_id, t.c.from_address == wallet).limit(1)).first()
        later = conn.execute(select(func.max(rr.c.block_number)).where(rr.c.chain_id == chain_id,
                                                                       rr.c.orphaned_at.is_(None))).scalar()
        if now_held:
            out["note"] = (f"holds {now_held} token(s) now but was not in run {run.id} (block {run.block_number}); "
                           + ("a later run covers it" if later and later > run.block_number else
                              "the next risk run will value it"))
        elif seen or account is not None or positions:
            out["note"] = f"known to the indexer, but held no indexed token at block {run.block_number}"
        else:
            out["note"] = "nothing indexed for this wallet: no balance, transfer, account or position"
    return out


def restrictions(conn: Connection, chain_id: int, wallet: str, block: int) -> tuple[bool, list[str]]:
    """(on a sanctions list, the symbols of the tokens that froze it) at `block`: the wallet's freeze and
    sanction events up to it, replayed as the risk run's snapshot replays them."""
    te = m.TokenEvent.__table__
    rows = conn.execute(select(te.c.contract, te.c.event, te.c.args, te.c.block_number).where(
        te.c.chain_id == chain_id, te.c.event.in_(ACCOUNT_EVENTS), te.c.block_number <= block,
        te.c.args.contains(wallet, autoescape=True)).order_by(te.c.block_number, te.c.log_index))
    status = fold_account_events((c, e, json.loads(a), b) for c, e, a, b in rows)
    mine = {contract: v for (contract, w), v in status.items() if w == wallet}
    frozen = sorted(c for c, v in mine.items() if v["frozen"])
    if frozen:
        t = m.Token.__table__
        symbols = dict(conn.execute(select(t.c.address, t.c.symbol).where(t.c.chain_id == chain_id,
                                                                            t.c.address.in_(frozen))).all())
        frozen = sorted(symbols.get(c, c) for c in frozen)
    return any(v["sanctioned"] for v in mine.values()), frozen


def headline(sanctioned: bool, frozen_on: list[str], status: str | None) -> str | None:
    """What a lookup leads with: a sanction, then a freeze, before the margin status (None: no run row)."""
    return "sanctioned" if sanctioned else "frozen" if frozen_on else status


def _mark(r) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"used": r["mark"], "price": r["mark_price"], "adverse": r["mark_adverse"], "quality": r["mark_quality"],
            "round_id": None if r["round_id"] is None else str(r["round_id"]), "age_s": r["round_age_s"],
            "notional": r["notional"], "im": r["im"], "mm": r["mm"], "upnl": r["upnl"]}


def token_markets(conn: Connection, run_id: int) -> dict[str, dict[str, Any]]:
    """Per token, its pools in the run together (`store.pools.by_token`, as the `token_liquidity` view shows
    them), in the lookup's shape."""
    keys = ("depth_1pct", "depth_2pct", "depth_5pct", "depth_2pct_usd", "volume_24h", "volume_7d", "nav_usd",
            "price_usd", "premium_bp")
    return {token: {"pools": [{k: p[k] for k in ("name", "pool", "price_usd", "premium_bp", "depth_2pct")}
                              for p in t["pools"]], **{k: t[k] for k in keys}}
            for token, t in by_token(run_pools(conn, [run_id])[run_id]).items()}


def _liquidity(r, market: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the holding's token trades, and how much of the 2% depth the holding would take (None: no pool)."""
    if market is None:
        return None
    depth = market["depth_2pct"]
    return {**market, "share_of_depth_2pct": (r["balance"] / depth) if depth > 0 else None}


def vault_assets(conn: Connection, chain_id: int) -> dict[str, tuple[str, int]]:
    """{ERC-4626 vault: (its asset's symbol, the asset's decimals)} of the chain's configured vaults."""
    t, a = m.Token.__table__, m.Token.__table__.alias("asset")
    return {v: (sym, dec) for v, sym, dec in conn.execute(
        select(t.c.address, a.c.symbol, a.c.decimals).join(a, (a.c.chain_id == t.c.chain_id)
                                                          & (a.c.address == t.c.vault_asset))
        .where(t.c.chain_id == chain_id))}


def _vault(r, asset: tuple[str, int] | None) -> dict[str, Any] | None:
    """An ERC-4626 vault's rate as the run valued it (None: not a vault)."""
    if asset is None:
        return None
    rate = r["vault_rate_raw"]
    return {"asset": asset[0], "rate_raw": None if rate is None else str(rate),
            "rate": None if rate is None else int(rate) / 10 ** asset[1], "jump": r["vault_jump"]}


def _holding(r, feeds: dict[str, str], market: dict[str, Any] | None = None,
             vault: tuple[str, int] | None = None) -> dict[str, Any]:
    return {
        "symbol": r["symbol"], "token": r["token"], "balance_raw": str(r["balance_raw"]), "balance": r["balance"],
        "shares": r["shares"],
        "price": {"value": r["price"], "feed": feeds.get(r["feed"]) if r["feed"] else None, "round_id":
                  None if r["round_id"] is None else str(r["round_id"]), "age_s": r["round_age_s"],
                  "market_state": r["market_state"], "action_factor": r["action_factor"]},
        "market_value": r["market_value"],
        "eligible": bool(r["eligible"]), "codes": int(r["codes"]),
        "reasons": [c for c in (r["code_names"] or "").split(",") if c],
        "haircut": {"base": r["h_base"], "volatility": r["h_vol"], "size": r["h_size"], "gap": r["h_gap"],
                    "stale": r["h_stale"], "total": r["haircut"], "size_liquidity": r["liquidity_term"],
                    "liquidity_source": r["liquidity_source"]},
        "valuation_flags": [c for c in (r["value_flag_names"] or "").split(",") if c],
        "collateral_before_caps": r["collateral_before_caps"], "platform_cut": r["platform_cut"],
        "wallet_cut": r["wallet_cut"], "collateral_value": r["collateral_value"],
        "liquidity": _liquidity(r, market),
        "vault": _vault(r, vault),
    }


def lookup(conn: Connection, chain_id: int, inputs: list[str], *, block: int | None = None,
           at: int | None = None, clients_only: bool = False) -> dict[str, Any]:
    """The JSON document for a list of address strings (bad ones are reported, not raised). `clients_only`:
    a wallet with no account on file is refused like a malformed input (in `invalid`, error NOT_A_CLIENT)."""
    wallets, invalid = parse_wallets(inputs)
    if clients_only:
        clients = client_wallets(conn, wallets)
        invalid += [{"input": checksum(w[2:]), "error": NOT_A_CLIENT} for w in wallets if w not in clients]
        wallets = [w for w in wallets if w in clients]
    run = find_run(conn, chain_id, block=block, at=at)
    feeds = feed_names(conn, chain_id)
    return {
        "schema_version": SCHEMA_VERSION,
        "chain_id": chain_id,
        "run": {"id": run.id, "block_number": run.block_number, "block_timestamp": run.block_timestamp,
                "policy_version": run.policy_version, "policy_hash": run.policy_hash,
                "market_state": run.market_state, "asked": {"block": block, "at": at},
                "notes": [n for n in (run.notes or "").split("\n") if n]},
        "wallets": [lookup_wallet(conn, chain_id, run, w, feeds) for w in wallets],
        "invalid": invalid,
    }


# -------------------------------------------------------------------------------- the venue's clients
# A client is a wallet with an account on file (`accounts`, the book as loaded now), as in the
# `client_margin` and `client_collateral` views (migration 0008).
NOT_A_CLIENT = "no account on file: not one of the venue's clients (--clients-only)"


def client_wallets(conn: Connection, wallets: list[str]) -> set[str]:
    """The wallets among these (parsed, lowercase) with an account on file."""
    a = m.Account.__table__
    out: set[str] = set()
    for i in range(0, len(wallets), 500):
        out.update(conn.execute(select(a.c.wallet).where(a.c.wallet.in_(wallets[i:i + 500]))).scalars())
    return out


def clients_nearest_margin_call(conn: Connection, chain_id: int, *, top: int = 20, block: int | None = None,
                                at: int | None = None) -> dict[str, Any]:
    """The venue's clients in the run (the latest that is not orphaned, as `client_margin` shows it, or the
    latest at or before `block` / `at`) nearest a margin call, first `top` of them: those with margin to
    meet by equity / IM, lowest first (a margin call is below 1, liquidation below MM / IM), then those with
    no margin requirement by excess, then clients the run did not value (accounts loaded since). With the
    count of clients per status."""
    run = find_run(conn, chain_id, block=block, at=at)
    a, w = m.Account.__table__, m.RiskWallet.__table__
    ratio = w.c.equity / func.nullif(w.c.im, 0)
    joined = a.outerjoin(w, (w.c.run_id == run.id) & (w.c.wallet == a.c.wallet))
    group = case((w.c.wallet.is_(None), 2), (w.c.im > 0, 0), else_=1)
    rows = conn.execute(
        select(a.c.wallet, a.c.jurisdiction, a.c.tier, a.c.kyc_status, w.c.wallet.is_not(None).label("in_run"),
               w.c.status, w.c.collateral, w.c.equity, w.c.im, w.c.mm, w.c.excess, ratio.label("equity_to_im"),
               (w.c.equity / func.nullif(w.c.mm, 0)).label("equity_to_mm"), w.c.stressed_excess, w.c.stale_driven,
               w.c.unpriced_positions)
        .select_from(joined).order_by(group, ratio, w.c.excess, a.c.wallet).limit(max(0, top))).mappings().all()
    counts = {status or "not_in_run": n for status, n in conn.execute(
        select(w.c.status, func.count()).select_from(joined).group_by(w.c.status)).all()}
    return {
        "chain_id": chain_id,
        "run": {"id": run.id, "block_number": run.block_number, "block_timestamp": run.block_timestamp,
                "policy_version": run.policy_version, "policy_hash": run.policy_hash,
                "market_state": run.market_state, "asked": {"block": block, "at": at}},
        "clients": sum(counts.values()),
        "status_counts": {k: int(v) for k, v in sorted(counts.items())},
        "nearest_margin_call": [{
            **{k: r[k] for k in ("wallet", "jurisdiction", "tier", "kyc_status", "status", "collateral", "equity",
                                 "im", "mm", "excess", "equity_to_im", "equity_to_mm", "stressed_excess",
                                 "unpriced_positions")},
            "checksummed": checksum(r["wallet"][2:]), "in_run": bool(r["in_run"]),
            "stale_driven": None if r["stale_driven"] is None else bool(r["stale_driven"])} for r in rows],
    }
