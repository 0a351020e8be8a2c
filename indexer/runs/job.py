"""The risk job: load the snapshot at a block, run the engine, store every result row in one
transaction (a run is all there or not there at all).

A stored run names its block, the block's time, the policy's version and content hash, so a result
can be traced to the facts and the numbers that produced it, and reproduced from them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from sqlalchemy import Connection, Engine

from indexer.liquidity.measures import split_by_depth, whole_units
from indexer.risk import (
    Eligibility,
    LiquiditySource,
    MarginStatus,
    MarketState,
    Policy,
    RiskRun,
    Snapshot,
    codes_to_names,
    flag_names,
    load_policy,
    run_risk,
)
from indexer.runs.snapshot import SnapshotKeys, load_snapshot
from indexer.store import models as m
from indexer.store.registry import feed_rows, token_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    block_number: int
    block_timestamp: int
    policy: str
    market_state: str
    wallets: int
    holdings: int
    positions: int
    collateral_usd: float
    status_counts: dict[str, int]
    notes: list[str]
    load_s: float
    compute_s: float
    write_s: float


def policy_for(conn: Connection, chain_id: int, path: str) -> Policy:
    """The policy file, checked against the tokens and feeds this database knows."""
    return load_policy(path, known_tokens=[t["symbol"] for t in token_rows(conn, chain_id)],
                       known_feeds=[f["name"] for f in feed_rows(conn, chain_id)])


def run_and_store(engine: Engine, chain_id: int, policy_path: str, *, block: int | None = None,
                  at: int | None = None) -> RunSummary:
    started = time.time()
    t0 = time.perf_counter()
    with engine.connect() as conn:
        policy = policy_for(conn, chain_id, policy_path)
        snapshot, keys = load_snapshot(conn, chain_id, block, at=at)
    t1 = time.perf_counter()
    run = run_risk(snapshot, policy)
    t2 = time.perf_counter()
    with engine.begin() as conn:
        run_id = store_run(conn, run, snapshot, keys, policy, started_at=started, seconds=t2 - t0)
    t3 = time.perf_counter()
    status = np.bincount(np.asarray(run.wallets.status, dtype=np.int64), minlength=len(MarginStatus))
    summary = RunSummary(
        run_id=run_id, block_number=keys.block_number, block_timestamp=keys.block_timestamp,
        policy=policy.version_string,
        market_state=MarketState(run.market_state).name.lower(), wallets=len(keys.wallets),
        holdings=len(snapshot.holdings), positions=len(snapshot.positions),
        collateral_usd=float(run.wallets.collateral.sum()),
        status_counts={s.name.lower(): int(status[s]) for s in MarginStatus}, notes=run_notes(run, keys, policy),
        load_s=t1 - t0, compute_s=t2 - t1, write_s=t3 - t2)
    log.info("risk run %d at block %d: %d wallets, %d holdings, collateral %.2f USD, %s (load %.2fs, run %.2fs, "
             "write %.2fs)", run_id, keys.block_number, summary.wallets, summary.holdings, summary.collateral_usd,
             summary.status_counts, summary.load_s, summary.compute_s, summary.write_s)
    return summary


def _vault_columns(snapshot: Snapshot, run: RiskRun) -> tuple[list[int | None], list[float | None]]:
    """Per token: an ERC-4626 vault's rate at B (exact) and its largest move in the window; None elsewhere."""
    t = snapshot.tokens
    if t.vault_asset_idx is None or run.tokens.vault_jump is None:
        return [None] * len(t), [None] * len(t)
    rate = [int(r) if a >= 0 and int(r) > 0 else None for a, r in zip(t.vault_asset_idx.tolist(), t.vault_rate_raw,
                                                                       strict=True)]
    jump = [None if np.isnan(j) else float(j) for j in run.tokens.vault_jump.tolist()]
    return rate, jump


def store_run(conn: Connection, run: RiskRun, snapshot: Snapshot, keys: SnapshotKeys, policy: Policy, *,
              started_at: float, seconds: float) -> int:
    """Insert the run, its holdings and its wallets; return the run id."""
    w = run.wallets
    state = MarketState(run.market_state).name.lower()
    run_id = conn.execute(m.RiskRunRecord.__table__.insert().values(
        chain_id=keys.chain_id, block_number=keys.block_number, block_timestamp=keys.block_timestamp,
        policy_name=policy.meta.name, policy_version=run.policy_version, policy_hash=run.policy_hash,
        market_state=state, seconds_to_next_open=run.seconds_to_next_open, wallets=len(keys.wallets),
        holdings=len(run.holdings.wallet_idx), positions=len(run.positions.wallet_idx),
        collateral_usd=float(w.collateral.sum()), started_at=started_at, seconds=seconds,
        notes="\n".join(run_notes(run, keys, policy)))
    ).inserted_primary_key[0]

    h = run.holdings
    names = [",".join(n) for n in codes_to_names(h.codes)]
    feed_of_token = run.tokens.feed_idx
    states = [MarketState(int(s)).name.lower() for s in run.tokens.market_state]
    cols = dict(
        wallet=[keys.wallets[i] for i in h.wallet_idx.tolist()],
        token=[keys.token_addresses[i] for i in h.token_idx.tolist()],
        symbol=[keys.token_symbols[i] for i in h.token_idx.tolist()],
        balance=h.balance.tolist(), shares=h.shares.tolist(), price=h.price.tolist(),
        market_value=h.market_value.tolist(), codes=h.codes.astype(np.int64).tolist(), code_names=names,
        eligible=h.eligible.tolist(), h_base=h.h_base.tolist(), h_vol=h.h_vol.tolist(), h_size=h.h_size.tolist(),
        h_gap=h.h_gap.tolist(), haircut=h.haircut.tolist(), collateral_before_caps=h.collateral_before_caps.tolist(),
        platform_cut=h.platform_cut.tolist(), wallet_cut=h.wallet_cut.tolist(),
        collateral_value=h.collateral_value.tolist(),
        round_age_s=h.round_age_s.tolist(), h_stale=h.h_stale.tolist(),
        action_factor=run.tokens.action_factor[h.token_idx].tolist(),
        liquidity_term=h.liquidity_term.tolist(),
        liquidity_source=[LiquiditySource(int(x)).name.lower() for x in h.liquidity_source.tolist()],
        value_flags=h.value_flags.astype(np.int64).tolist(),
        value_flag_names=[",".join(flag_names(int(x))) for x in h.value_flags.tolist()],
    )
    token_idx = h.token_idx.tolist()
    balances = snapshot.holdings.balance_ints()  # exact, as valued
    feed = [keys.feed_addresses[feed_of_token[t]] if feed_of_token[t] >= 0 else None for t in token_idx]
    rounds = [None if run.tokens.round_id[t] is None else int(run.tokens.round_id[t]) for t in token_idx]
    vault_rate, vault_jump = _vault_columns(snapshot, run)
    rows = [dict(run_id=run_id, balance_raw=balances[i], feed=feed[i], round_id=rounds[i],
                 market_state=states[token_idx[i]], vault_rate_raw=vault_rate[token_idx[i]],
                 vault_jump=vault_jump[token_idx[i]], **{k: v[i] for k, v in cols.items()})
            for i in range(len(token_idx))]
    _insert(conn, m.RiskHolding.__table__, rows)

    scen = run.scenario_names
    wcols = {k: getattr(w, k).tolist() for k in ("market_value", "collateral", "im", "mm", "upnl", "cash", "equity",
                                                   "excess", "l_joint", "l_indep", "wrong_way", "worst_scenario_loss",
                                                   "stressed_excess")}
    status = [MarginStatus(int(s)).name.lower() for s in w.status]
    worst = [scen[int(i)] if scen else "" for i in w.worst_scenario]
    binding = run.binding_names()
    regime = ["negative" if int(r) else "positive" for r in w.regime]
    stale, unpriced = w.stale_driven.tolist(), w.unpriced_positions.tolist()
    liq_loss = (np.zeros(len(keys.wallets)) if w.liquidity_stress_loss is None else w.liquidity_stress_loss).tolist()
    _insert(conn, m.RiskWallet.__table__, [
        dict(run_id=run_id, wallet=keys.wallets[i], status=status[i], worst_scenario=worst[i], binding=binding[i],
             regime=regime[i], stale_driven=stale[i], unpriced_positions=unpriced[i], liquidity_stress_loss=liq_loss[i],
             **{k: v[i] for k, v in wcols.items()}) for i in range(len(keys.wallets))])
    _insert(conn, m.RiskPosition.__table__, position_rows_of(run, snapshot, keys, run_id))
    _insert(conn, m.RiskPool.__table__, pool_rows_of(run, keys, run_id))
    return int(run_id)


def pool_rows_of(run: RiskRun, keys: SnapshotKeys, run_id: int) -> list[dict]:
    """Per configured pool measured at the run's block: its state and measures, and its price against the value
    the run gives one token (the oracle's, carried across corporate actions)."""
    if keys.liquidity is None:
        return []
    index = {t: i for i, t in enumerate(keys.token_addresses)}
    nav = run.tokens.nav if run.tokens.nav is not None else run.tokens.value_factor
    rows = []
    for token, measure in keys.liquidity.tokens.items():
        i = index[token]
        per_token = float(nav[i]) if nav[i] > 0 else None  # USD per whole token
        pledged = int(Fraction(float(run.tokens.pledged_units[i])) * 10**measure.decimals)  # whole units -> raw
        for p, part in zip(measure.pools, split_by_depth(pledged, measure.pools), strict=True):
            price = p.price_usd
            sale = p.sell(part)
            proceeds = None if p.quote_usd is None else \
                whole_units(sale.proceeds_quote_raw, p.side.quote_decimals) * p.quote_usd
            offered = whole_units(part, measure.decimals)
            rows.append(dict(
                run_id=run_id, pool=p.pool, name=keys.liquidity.names[p.pool], token=token,
                symbol=keys.token_symbols[i], sqrt_price_x96=p.sqrt_price_x96, tick=p.tick, liquidity_raw=p.liquidity,
                price_quote=float(p.price_quote), quote_usd=p.quote_usd, price_usd=price, nav_usd=per_token,
                premium_bp=None if price is None or per_token is None else (price / per_token - 1.0) * 1e4,
                depth_1pct_raw=p.depth_raw[100], depth_2pct_raw=p.depth_raw[200], depth_5pct_raw=p.depth_raw[500],
                depth_2pct_usd=None if per_token is None else whole_units(p.depth_raw[200], measure.decimals) * per_token,
                volume_24h_raw=p.volume_24h_raw, volume_7d_raw=p.volume_7d_raw, swaps_24h=p.swaps_24h,
                swaps_7d=p.swaps_7d, **{f"depth_{m // 100}pct": whole_units(p.depth_raw[m], measure.decimals)
                                        for m in (100, 200, 500)},
                volume_24h=whole_units(p.volume_24h_raw, measure.decimals),
                volume_7d=whole_units(p.volume_7d_raw, measure.decimals),
                sale_offered_raw=part, sale_sold_raw=sale.sold_raw, sale_offered=offered, sale_proceeds_usd=proceeds,
                sale_cost=None if proceeds is None or per_token is None or not part
                else 1.0 - proceeds / (offered * per_token)))
    return rows


def mark_quality(run: RiskRun) -> list[str]:
    """Per position: ok, stale, incomplete (used against the position) or unusable (its wallet is unpriced)."""
    p = run.positions
    incomplete = (p.mark_codes & np.uint32(Eligibility.ORACLE_INCOMPLETE)) != 0
    return ["unusable" if not u else "incomplete" if i else "stale" if s else "ok"
            for u, i, s in zip(p.mark_usable.tolist(), incomplete.tolist(), p.mark_stale.tolist(), strict=True)]


def position_rows_of(run: RiskRun, snapshot: Snapshot, keys: SnapshotKeys, run_id: int) -> list[dict]:
    p, sp = run.positions, snapshot.positions
    quality = mark_quality(run)
    return [dict(run_id=run_id, wallet=keys.wallets[int(p.wallet_idx[i])], instrument=keys.instruments[i],
                 feed=keys.feed_addresses[int(p.feed_idx[i])], size=float(sp.size[i]),
                 entry_price=float(sp.entry_price[i]), mark=float(p.mark[i]), mark_price=float(p.mark_price[i]),
                 mark_adverse=float(p.mark_adverse[i]), mark_quality=quality[i],
                 round_id=None if p.mark_round_id[i] is None else int(p.mark_round_id[i]),
                 round_age_s=int(p.mark_age_s[i]), notional=float(p.notional[i]), im=float(p.im[i]),
                 mm=float(p.mm[i]), upnl=float(p.upnl[i]))
            for i in range(len(p.wallet_idx))]


def run_notes(run: RiskRun, keys: SnapshotKeys, policy: Policy | None = None) -> list[str]:
    """What the loader and the engine said about this run, loader first, then (given the policy) each token
    held that the policy does not list."""
    return [*keys.notes, *run.notes, *(unlisted_token_notes(run, keys, policy) if policy is not None else ())]


def unlisted_token_notes(run: RiskRun, keys: SnapshotKeys, policy: Policy) -> list[str]:
    """One note per token present in the run's holdings that `policy` does not list: it counts zero
    (TOKEN_NOT_ELIGIBLE), so the note gives the market value left out."""
    h = run.holdings
    token_idx = np.asarray(h.token_idx, dtype=np.int64)
    n = len(keys.token_symbols)
    value = np.bincount(token_idx, weights=np.asarray(h.market_value, dtype=np.float64), minlength=n)
    count = np.bincount(token_idx, minlength=n)  # one holding per wallet and token: its holders
    return [f"{sym}: not listed in policy {policy.version_string}: held by {count[t]:,} wallets, "
            f"{value[t]:,.2f} USD of market value left out (TOKEN_NOT_ELIGIBLE)"
            for t, sym in enumerate(keys.token_symbols) if count[t] and sym not in policy.tokens]


def _insert(conn: Connection, table, rows: list[dict], chunk: int = 5_000) -> None:
    for i in range(0, len(rows), chunk):
        conn.execute(table.insert(), rows[i:i + chunk])
