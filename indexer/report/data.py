"""The stored risk run a report shows, read from the `risk_*` tables into column arrays, with the chain's
run history and the tokens' total supply at the run's block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, func, select

from indexer.errors import IndexerError
from indexer.risk import Eligibility
from indexer.store import models as m
from indexer.store.pools import by_token, run_pools
from indexer.store.registry import token_rows
from indexer.store.runs import latest_run
from indexer.store.state import token_state_at


class ReportError(IndexerError):
    """No risk run to report on: none stored for the chain, or no run with the given id."""


@dataclass
class ReportData:
    """The run's rows as column arrays. `holdings["client"]` and `wallets["client"]` say whether the wallet is
    one of the venue's clients: it has an account on file, i.e. none of its holdings carries ACCOUNT_UNKNOWN
    (set by a policy that requires an account)."""

    run: dict[str, Any]
    holdings: dict[str, np.ndarray]
    wallets: dict[str, np.ndarray]
    supply: dict[str, float]  # token address -> total supply in token units at the run's block
    history: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)  # the run's risk_pools rows
    premium_history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # symbol -> (time, bp)


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
    run = _run(conn, chain_id, run_id)
    holdings, wallets = _holdings(conn, chain_id, run["id"]), _wallets(conn, run["id"])
    mark_clients(holdings, wallets)
    return ReportData(run=run, holdings=holdings, wallets=wallets,
                      supply=_supply(conn, chain_id, run["block_number"]), history=_history(conn, chain_id),
                      pools=run_pools(conn, [run["id"]])[run["id"]], premium_history=_premium_history(conn, chain_id))


def mark_clients(holdings: dict[str, np.ndarray], wallets: dict[str, np.ndarray]) -> None:
    """Add the boolean column "client" to both: False for the wallets with no account on file (their holdings
    carry ACCOUNT_UNKNOWN), True for every other wallet, those with no holding included."""
    unknown = (holdings["codes"] & int(Eligibility.ACCOUNT_UNKNOWN)) != 0
    holdings["client"] = ~unknown
    outside = np.unique(holdings["wallet"][unknown].astype(str))
    wallets["client"] = ~np.isin(wallets["wallet"].astype(str), outside)


def _run(conn: Connection, chain_id: int, run_id: int | None) -> dict[str, Any]:
    """By id any run, an orphaned one too (it is kept so that a cited id still resolves); by default the latest
    that is not orphaned (`store.runs.latest_run`, as the `latest_run` view picks it)."""
    R = m.RiskRunRecord
    if run_id is None:
        run = latest_run(conn, chain_id)
    else:
        run = conn.execute(select(R.__table__).where(R.chain_id == chain_id, R.id == run_id)).first()
    if run is None:
        if run_id is not None:
            raise ReportError(f"no risk run {run_id} for chain {chain_id}: list the stored runs with "
                              "SELECT id, block_number FROM risk_runs")
        raise ReportError(f"no risk runs stored for chain {chain_id}: run `collateral-indexer risk run` first")
    return dict(run._mapping)


def _holdings(conn: Connection, chain_id: int, rid: int) -> dict[str, np.ndarray]:
    """The run's holdings by wallet and token, with each token's asset class ("unknown" when unregistered)."""
    H, T = m.RiskHolding, m.Token
    h_rows = conn.execute(
        select(H.wallet, H.token, H.symbol, T.asset_class, *(getattr(H, c) for c in _HOLDING_NUM), H.codes, H.eligible)
        .select_from(H)
        .outerjoin(T, and_(T.chain_id == chain_id, T.address == H.token))
        .where(H.run_id == rid)
        .order_by(H.wallet, H.token)
    ).all()
    holdings = _columns(h_rows, _HOLDING_TEXT, _HOLDING_NUM, ("codes",), ("eligible",))
    holdings["asset_class"] = np.array([c or "unknown" for c in holdings["asset_class"]], dtype=object)
    return holdings


def _wallets(conn: Connection, rid: int) -> dict[str, np.ndarray]:
    W = m.RiskWallet
    w_rows = conn.execute(
        select(W.wallet, W.status, W.worst_scenario, W.binding, *(getattr(W, c) for c in _WALLET_NUM))
        .where(W.run_id == rid).order_by(W.wallet)
    ).all()
    return _columns(w_rows, _WALLET_TEXT, _WALLET_NUM)


def _supply(conn: Connection, chain_id: int, block: int) -> dict[str, float]:
    """{token: total supply in token units} of the registered tokens, from the token state in force at `block`
    (the platform cap's base)."""
    decimals = {t["address"]: int(t["decimals"]) for t in token_rows(conn, chain_id)}
    return {token: int(state["total_supply_raw"]) / 10 ** decimals[token]
            for token, state in token_state_at(conn, chain_id, block).items() if token in decimals}


def _history(conn: Connection, chain_id: int) -> list[dict[str, Any]]:
    """Every run of the chain by block time, with its total market value and collateral, the market value held
    by non-clients (holdings with ACCOUNT_UNKNOWN) and its counts of wallets in margin call and liquidation."""
    R, W, H = m.RiskRunRecord, m.RiskWallet, m.RiskHolding
    runs = conn.execute(
        select(R.id, R.block_number, R.block_timestamp, R.collateral_usd, R.wallets)
        .where(R.chain_id == chain_id, R.orphaned_at.is_(None)).order_by(R.block_timestamp, R.id)
    ).mappings().all()
    sums = {r: (mv, coll) for r, mv, coll in conn.execute(
        select(W.run_id, func.sum(W.market_value), func.sum(W.collateral))
        .join(R, R.id == W.run_id).where(R.chain_id == chain_id).group_by(W.run_id))}
    outside = dict(conn.execute(
        select(H.run_id, func.sum(H.market_value))
        .join(R, R.id == H.run_id)
        .where(R.chain_id == chain_id, H.codes.op("&")(int(Eligibility.ACCOUNT_UNKNOWN)) != 0)
        .group_by(H.run_id)).all())
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
        non_client = float(outside.get(r["id"]) or 0.0)
        history.append(dict(r, market_value=float(mv or 0.0), collateral=float(coll or 0.0),
                            client_market_value=float(mv or 0.0) - non_client, non_client_market_value=non_client,
                            margin_call=c.get("margin_call", 0), liquidate=c.get("liquidate", 0)))
    return history


def _premium_history(conn: Connection, chain_id: int) -> dict[str, list[tuple[int, float]]]:
    """Per token, (block time, premium in bp) of every run that is not orphaned, its pools together as
    `store.pools.by_token` adds them up."""
    R = m.RiskRunRecord
    runs = conn.execute(select(R.id, R.block_timestamp).where(R.chain_id == chain_id, R.orphaned_at.is_(None))
                        .order_by(R.block_timestamp, R.id)).all()
    pools = run_pools(conn, [r for r, _ in runs])
    out: dict[str, list[tuple[int, float]]] = {}
    for rid, ts in runs:
        for t in by_token(pools[rid]).values():
            if t["premium_bp"] is not None:
                out.setdefault(t["symbol"], []).append((int(ts), t["premium_bp"]))
    return out


def load_venues(conn: Connection, chain_id: int, block: int, venues: Sequence[str]):
    """The policies `venues` (ours first, then venues' disclosed rules) compared on the snapshot at `block`
    (the run's), recomputed from the synced tables and not stored (`indexer.runs.compare`); when that
    snapshot or a policy cannot be loaded, the reason in one line (a str) instead."""
    from indexer.runs.compare import compare_at

    try:
        return compare_at(conn, chain_id, venues, block=block)
    except IndexerError as exc:
        return str(exc).splitlines()[0]


def load_backtest(conn: Connection, chain_id: int, block: int, policies: Sequence[str]):
    """The haircut backtest of `policies` (ours first) over every stored round up to `block` (the run's),
    recomputed and not stored (`indexer.runs.backtest`); the reason in one line (a str) when it cannot run."""
    from indexer.runs.backtest import backtest_at

    try:
        return backtest_at(conn, chain_id, policies, block=block)
    except IndexerError as exc:
        return str(exc).splitlines()[0]
