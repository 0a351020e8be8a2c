"""The one snapshot loader: the sync engine's tables (and the off-chain accounts and positions) at
block B, as the risk engine's :class:`Snapshot`.

Everything comes from stored facts, so a run at any synced block is reproducible:
- balances: at the synced head, the ``balances`` table; at an earlier block, each holder's last
  ``balance_changes`` row at or before B (event-sourced units), turned into ``balanceOf`` by the
  token's accounting model with the multiplier in force at B;
- multiplier at B: ``rebasing_shares`` from the last stored contract parameters and the contract's
  own rule (indexer.accounting); ``ui_multiplier`` from the ``UIMultiplierUpdated`` schedule;
- paused and total supply: the last ``token_state`` row at or before B;
- frozen and sanctioned: the freeze and sanctions-list events up to B, replayed in log order;
- the latest round per feed: the highest round id published by B (``0 < updatedAt <= time(B)``,
  or, for a round with no update time, read at a block <= B); volatility history: every usable
  round of the last ``HISTORY_DAYS`` days up to B;
- proof of reserve: the latest round of the token's reserve feed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, and_, func, or_, select

from indexer.accounting import (
    WAD,
    Accounting,
    RebasingParams,
    balance_of_units,
    rebasing_multiplier_at,
    ui_multiplier_at,
)
from indexer.errors import IndexerError
from indexer.risk.inputs import (
    AccountingModel,
    Accounts,
    FeedHistory,
    FeedKind,
    Feeds,
    Holdings,
    Positions,
    PriceQuote,
    Snapshot,
    Tokens,
    int_array,
    limbs_from_ints,
)
from indexer.store import models as m
from indexer.sync.history import stored_account_status, stored_ui_schedule

HISTORY_DAYS = 420  # > the policy's 250-session look-back plus holidays, in calendar days
CHECKPOINT = "head"

_ACCOUNTING = {Accounting.PLAIN: AccountingModel.PLAIN, Accounting.UI_MULTIPLIER: AccountingModel.UI_MULTIPLIER,
               Accounting.REBASING_SHARES: AccountingModel.REBASING_SHARES}
_KIND = {"stock": FeedKind.STOCK, "crypto": FeedKind.CRYPTO, "stablecoin": FeedKind.STABLE}


class SnapshotUnavailable(IndexerError):
    """The block asked for is not synced, or nothing is synced yet."""


@dataclass
class SnapshotKeys:
    """What the snapshot's row indices stand for, to write results back with their real keys."""

    chain_id: int
    block_number: int
    block_timestamp: int
    head_block: int
    wallets: list[str]
    token_addresses: list[str]
    token_symbols: list[str]
    feed_addresses: list[str]
    feed_names: list[str]
    notes: list[str] = field(default_factory=list)


def synced_head(conn: Connection, chain_id: int) -> int | None:
    cp = m.SyncCheckpoint.__table__
    return conn.execute(select(cp.c.block_number).where(cp.c.chain_id == chain_id, cp.c.name == CHECKPOINT)).scalar()


def resolve_block(conn: Connection, chain_id: int, block: int | None = None, at: int | None = None) -> tuple[int, int, int]:
    """(block, its timestamp, synced head) for a block number, a unix time (the last stored block at
    or before it) or neither (the synced head)."""
    head = synced_head(conn, chain_id)
    if head is None:
        raise SnapshotUnavailable("nothing is synced yet: run `collateral-indexer sync` first")
    b = m.Block.__table__
    if at is not None:
        row = conn.execute(select(b.c.number, b.c.timestamp).where(
            b.c.chain_id == chain_id, b.c.timestamp <= at, b.c.number <= head)
            .order_by(b.c.number.desc()).limit(1)).first()
        if row is None:
            raise SnapshotUnavailable(f"no synced block at or before unix time {at}")
        return int(row[0]), int(row[1]), head
    number = head if block is None else block
    if number > head:
        raise SnapshotUnavailable(f"block {number} is above the synced head {head}: sync further or pick a lower block")
    ts = conn.execute(select(b.c.timestamp).where(b.c.chain_id == chain_id, b.c.number == number)).scalar()
    if ts is None:
        near = conn.execute(select(func.max(b.c.number)).where(b.c.chain_id == chain_id, b.c.number < number)).scalar()
        raise SnapshotUnavailable(
            f"block {number} is not stored (the indexer keeps the blocks its facts come from); "
            f"the nearest stored block below it is {near}, or ask by time with --at")
    return number, int(ts), head


def load_snapshot(conn: Connection, chain_id: int, block: int | None = None, *, at: int | None = None
                  ) -> tuple[Snapshot, SnapshotKeys]:
    number, ts, head = resolve_block(conn, chain_id, block, at)
    tok_rows = conn.execute(select(m.Token.__table__).where(m.Token.chain_id == chain_id)
                            .order_by(m.Token.symbol)).mappings().all()
    feed_rows = conn.execute(select(m.Feed.__table__).where(m.Feed.chain_id == chain_id)
                             .order_by(m.Feed.name)).mappings().all()
    priced = [f for f in feed_rows if f["kind"] in _KIND]
    by_name = {f["name"]: f for f in feed_rows}
    keys = SnapshotKeys(chain_id, number, ts, head, [], [t["address"] for t in tok_rows],
                        [t["symbol"] for t in tok_rows], [f["address"] for f in priced], [f["name"] for f in priced])

    latest = _latest_rounds(conn, chain_id, [f["address"] for f in feed_rows], number, ts)
    feeds = _feeds(priced, latest)
    history = _history(conn, chain_id, [f["address"] for f in priced], ts)
    multipliers, states = _token_state(conn, chain_id, tok_rows, number, ts)
    feed_index = {f["name"]: i for i, f in enumerate(priced)}
    tokens = _tokens(tok_rows, feed_index, by_name, multipliers, states, latest, keys)

    balances = _balances(conn, chain_id, tok_rows, multipliers, number, head)
    frozen, sanctioned = _account_flags(conn, chain_id, number)
    acct_rows = {r["wallet"]: r for r in conn.execute(select(m.Account.__table__)).mappings()}
    pos_rows = conn.execute(select(m.Position.__table__).order_by(m.Position.wallet, m.Position.instrument)).mappings().all()
    wallets = sorted({w for (_, w) in balances} | set(acct_rows) | {p["wallet"] for p in pos_rows})
    keys.wallets = wallets
    w_index = {w: i for i, w in enumerate(wallets)}
    t_index = {t["address"]: i for i, t in enumerate(tok_rows)}

    pairs = sorted(((w_index[w], t_index[t], v) for (t, w), v in balances.items()))
    holdings = Holdings(
        wallet_idx=np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs)),
        token_idx=np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs)),
        balance_raw=limbs_from_ints([p[2] for p in pairs]),  # fixed-width uint256: the engine's fast path
        frozen=np.fromiter(((tok_rows[p[1]]["address"], wallets[p[0]]) in frozen for p in pairs), dtype=bool,
                           count=len(pairs)),
    )
    accounts = _accounts(wallets, acct_rows, sanctioned)
    positions = _positions(pos_rows, w_index, feed_index)
    snap = Snapshot(number, ts, tokens, feeds, history, holdings, accounts, positions)
    snap.validate()
    return snap, keys


# -- parts ------------------------------------------------------------------------------------------

def _latest_rounds(conn: Connection, cid: int, feeds: list[str], number: int, ts: int) -> dict[str, dict]:
    pr = m.PriceRound.__table__
    out = {}
    published = or_(and_(pr.c.updated_at > 0, pr.c.updated_at <= ts), and_(pr.c.updated_at == 0, pr.c.block_number <= number))
    for feed in feeds:  # one indexed query per feed: a few dozen feeds
        row = conn.execute(select(pr).where(pr.c.chain_id == cid, pr.c.feed == feed, published)
                           .order_by(pr.c.round_id.desc()).limit(1)).mappings().first()
        if row is not None:
            out[feed] = dict(row)
    return out


def _feeds(priced, latest: dict[str, dict]) -> Feeds:
    rounds = [latest.get(f["address"]) for f in priced]
    return Feeds(
        name=np.array([f["name"] for f in priced], dtype=object),
        kind=np.array([int(_KIND[f["kind"]]) for f in priced], dtype=np.int8),
        decimals=np.array([f["decimals"] for f in priced], dtype=np.int64),
        has_round=np.array([r is not None for r in rounds], dtype=bool),
        round_id=int_array([r["round_id"] if r else 0 for r in rounds]),
        answer_raw=int_array([r["answer_raw"] if r else 0 for r in rounds]),
        updated_at=np.array([r["updated_at"] if r else 0 for r in rounds], dtype=np.int64),
        answered_in_round=int_array([r["answered_in_round"] if r else 0 for r in rounds]),
        heartbeat_s=np.array([f["heartbeat"] for f in priced], dtype=np.int64),
    )


def _history(conn: Connection, cid: int, feeds: list[str], ts: int) -> FeedHistory:
    pr = m.PriceRound.__table__
    offsets, times, answers = [0], [], []
    for feed in feeds:
        rows = conn.execute(select(pr.c.updated_at, pr.c.answer_raw).where(
            pr.c.chain_id == cid, pr.c.feed == feed, pr.c.quality == "ok", pr.c.updated_at > ts - HISTORY_DAYS * 86_400,
            pr.c.updated_at <= ts).order_by(pr.c.updated_at, pr.c.round_id)).all()
        rows = [r for r in rows if r[1] > 0]
        times += [r[0] for r in rows]
        answers += [r[1] for r in rows]
        offsets.append(len(times))
    fits = all(-(2**62) < a < 2**62 for a in answers)
    return FeedHistory(np.array(offsets, dtype=np.int64), np.array(times, dtype=np.int64),
                       np.array(answers, dtype=np.int64) if fits else int_array(answers))


def _token_state(conn: Connection, cid: int, tok_rows, number: int, ts: int) -> tuple[dict[str, int], dict[str, dict]]:
    """Multiplier in force at B per token, and the last stored state row at or before B."""
    tsr = m.TokenState.__table__
    schedule = stored_ui_schedule(conn, cid, up_to=number)
    multipliers, states = {}, {}
    for t in tok_rows:
        row = conn.execute(select(tsr).where(tsr.c.chain_id == cid, tsr.c.token == t["address"],
                                             tsr.c.block_number <= number)
                           .order_by(tsr.c.block_number.desc()).limit(1)).mappings().first()
        if row is None:
            first = conn.execute(select(func.min(tsr.c.block_number)).where(
                tsr.c.chain_id == cid, tsr.c.token == t["address"])).scalar()
            raise SnapshotUnavailable(
                f"{t['symbol']}: no token state (multiplier, pause, supply) is stored at or before block {number}"
                + (f"; it is stored from block {first} on (those blocks were synced from a node that no longer "
                   "held older state): value a block from there on, or sync from an archive node"
                   if first is not None else "; run a sync tick first"))
        states[t["address"]] = dict(row)
        acc = Accounting(t["accounting"])
        if acc == Accounting.REBASING_SHARES and row is not None and row["base_multiplier_raw"] is not None:
            params = RebasingParams(row["base_multiplier_raw"], row["last_time_fee_applied"] or 0,
                                    row["fee_per_period_raw"] or 0, row["period_length"] or 0,
                                    row["new_multiplier_raw"] or 0, row["activation_time"] or 0)
            multipliers[t["address"]] = rebasing_multiplier_at(params, ts)[0]
        elif acc == Accounting.UI_MULTIPLIER:
            multipliers[t["address"]] = ui_multiplier_at(schedule.get(t["address"], []), ts)
        elif acc == Accounting.REBASING_SHARES and row is not None:
            multipliers[t["address"]] = int(row["multiplier_raw"])
        else:
            multipliers[t["address"]] = WAD
    return multipliers, states


def _tokens(tok_rows, feed_index, by_name, multipliers, states, latest, keys: SnapshotKeys) -> Tokens:
    reserve_raw, reserve_dec, has_reserve, feed_idx, quote = [], [], [], [], []
    for t in tok_rows:
        feed = by_name.get(t["feed"]) if t["feed"] else None
        feed_idx.append(feed_index.get(feed["name"], -1) if feed is not None else -1)
        quote.append(int(PriceQuote.PER_TOKEN if feed is not None and feed["quote"] == "per_token" else PriceQuote.PER_SHARE))
        rf = by_name.get(t["reserve_feed"]) if t["reserve_feed"] else None
        r = latest.get(rf["address"]) if rf is not None else None
        has_reserve.append(r is not None and r["answer_raw"] >= 0)
        reserve_raw.append(r["answer_raw"] if r is not None and r["answer_raw"] >= 0 else 0)
        reserve_dec.append(rf["decimals"] if rf is not None else 0)
        if rf is not None and r is None:
            keys.notes.append(f"{t['symbol']}: reserve feed {rf['name']} has no round at block {keys.block_number}")
    return Tokens(
        symbol=np.array([t["symbol"] for t in tok_rows], dtype=object),
        decimals=np.array([t["decimals"] for t in tok_rows], dtype=np.int64),
        accounting=np.array([int(_ACCOUNTING[Accounting(t["accounting"])]) for t in tok_rows], dtype=np.int8),
        multiplier_raw=int_array([multipliers[t["address"]] for t in tok_rows]),
        paused=np.array([bool(states[t["address"]].get("paused", False)) for t in tok_rows], dtype=bool),
        feed_idx=np.array(feed_idx, dtype=np.int64),
        quote=np.array(quote, dtype=np.int8),
        total_supply_raw=int_array([states[t["address"]].get("total_supply_raw", 0) for t in tok_rows]),
        has_reserve=np.array(has_reserve, dtype=bool),
        reserve_raw=int_array(reserve_raw),
        reserve_decimals=np.array(reserve_dec, dtype=np.int64),
    )


def _balances(conn: Connection, cid: int, tok_rows, multipliers: dict[str, int], number: int, head: int
              ) -> dict[tuple[str, str], int]:
    """{(token, wallet): balanceOf at B} for every non-zero balance."""
    if number == head:
        b = m.Balance.__table__
        return {(t, w): v for t, w, v in conn.execute(select(b.c.token, b.c.wallet, b.c.balance_raw).where(
            b.c.chain_id == cid)) if v > 0}
    bc = m.BalanceChange.__table__
    ranked = select(bc.c.token, bc.c.wallet, bc.c.units_raw, func.row_number().over(
        partition_by=(bc.c.token, bc.c.wallet), order_by=(bc.c.block_number.desc(), bc.c.log_index.desc()))
        .label("rn")).where(bc.c.chain_id == cid, bc.c.block_number <= number).subquery()
    # a polled token's units are balanceOf as read (indexer.sync.pipeline.apply_polled)
    acc = {t["address"]: Accounting.PLAIN if t["balance_source"] == "poll" else Accounting(t["accounting"])
           for t in tok_rows}
    out = {}
    for token, wallet, units in conn.execute(select(ranked.c.token, ranked.c.wallet, ranked.c.units_raw)
                                             .where(ranked.c.rn == 1)):
        if token in acc:
            bal = balance_of_units(acc[token], int(units), multipliers.get(token, WAD))[0]
            if bal > 0:
                out[(token, wallet)] = bal
    return out


def _account_flags(conn: Connection, cid: int, number: int) -> tuple[set[tuple[str, str]], set[str]]:
    """((token, wallet) frozen, wallets sanctioned on any list) at B, replayed from events."""
    status = stored_account_status(conn, cid, up_to=number)
    return ({k for k, v in status.items() if v["frozen"]},
            {w for (_, w), v in status.items() if v["sanctioned"]})


def _accounts(wallets: list[str], rows: dict[str, dict], sanctioned: set[str]) -> Accounts:
    recs = [rows.get(w) for w in wallets]
    return Accounts(
        wallet=np.array(wallets, dtype=object),
        has_account=np.array([r is not None for r in recs], dtype=bool),
        jurisdiction=np.array([r["jurisdiction"] if r else "" for r in recs], dtype="<U2"),
        tier=np.array([r["tier"] if r else "" for r in recs], dtype="<U32"),
        kyc_approved=np.array([bool(r) and r["kyc_status"] == "approved" for r in recs], dtype=bool),
        sanctioned=np.array([w in sanctioned for w in wallets], dtype=bool),
        cash_usd=np.array([float(r["cash_usd"]) if r else 0.0 for r in recs], dtype=np.float64),
    )


def _positions(rows, w_index: dict[str, int], feed_index: dict[str, int]) -> Positions:
    missing = sorted({p["base_asset"] for p in rows if f"{p['base_asset']}/USD" not in feed_index})
    if missing:
        raise SnapshotUnavailable(f"positions in {', '.join(missing)} have no configured price feed "
                                  f"({', '.join(a + '/USD' for a in missing)}): add the feed or reload positions")
    return Positions(
        wallet_idx=np.array([w_index[p["wallet"]] for p in rows], dtype=np.int64),
        feed_idx=np.array([feed_index[f"{p['base_asset']}/USD"] for p in rows], dtype=np.int64),
        size=np.array([p["size"] for p in rows], dtype=np.float64),
        entry_price=np.array([p["entry_price"] for p in rows], dtype=np.float64),
        leverage=np.array([p["leverage"] for p in rows], dtype=np.float64),
    )
