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
- proof of reserve: the latest round of the token's reserve feed, with its update time;
- corporate actions: from every stored state read of each token up to B (and, for ERC-8056 tokens, the
  announced schedule), by the token's model (`indexer.accounting.rebasing_stored_actions`, `ui_actions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy import Connection

from indexer.accounting import (
    WAD,
    CorporateAction,
    MultiplierUndefined,
    StateRead,
    UiMultiplierUpdate,
    balance_of_units,
    rebasing_multiplier_at,
    rebasing_stored_actions,
    ui_actions,
    ui_multiplier_at,
    units_model,
)
from indexer.errors import IndexerError
from indexer.liquidity.vaults import rate_at, rate_moves
from indexer.risk.inputs import (
    Accounts,
    CorporateActions,
    FeedHistory,
    Feeds,
    Holdings,
    Positions,
    Snapshot,
    Tokens,
)
from indexer.risk.uint256 import int_array, limbs_from_ints
from indexer.runs.liquidity import LiquidityAt, liquidity_input, load_liquidity
from indexer.store.balances import balances_now, units_at
from indexer.store.pools import pool_rows
from indexer.store.progress import block_at_or_before, block_timestamp, stored_block_below, synced_head
from indexer.store.registry import account_rows, feed_rows, position_rows, token_rows
from indexer.store.state import (
    PRICE_QUALITIES,
    account_status,
    first_token_state_block,
    flagged_round_counts,
    latest_round_at,
    rebasing_params_of_row,
    stored_multiplier_events,
    stored_ui_schedule,
    token_state_at,
    token_state_history,
    usable_rounds,
)
from indexer.store.vaults import vault_reads
from indexer.types import Accounting, FeedKind, PriceQuote

HISTORY_DAYS = 420  # > the policy's 250-session look-back plus holidays, in calendar days
VAULT_HISTORY_S = 90 * 86_400  # a vault's rate reads a run looks at: the policy's window must be shorter


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
    instruments: list[str] = field(default_factory=list)  # per position row: its instrument
    liquidity: LiquidityAt | None = None  # the configured pools' measures at B (None: no pool configured)


def resolve_block(conn: Connection, chain_id: int, block: int | None = None, at: int | None = None) -> tuple[int, int, int]:
    """(block, its timestamp, synced head) for a block number, a unix time (the last stored block at
    or before it) or neither (the synced head)."""
    synced = synced_head(conn, chain_id)
    if synced is None:
        raise SnapshotUnavailable("nothing is synced yet: run `collateral-indexer sync` first")
    head = synced[0]
    if at is not None:
        found = block_at_or_before(conn, chain_id, at, head)
        if found is None:
            raise SnapshotUnavailable(f"no synced block at or before unix time {at}")
        return found[0], found[1], head
    number = head if block is None else block
    if number > head:
        raise SnapshotUnavailable(f"block {number} is above the synced head {head}: sync further or pick a lower block")
    ts = block_timestamp(conn, chain_id, number)
    if ts is None:
        near = stored_block_below(conn, chain_id, number)
        raise SnapshotUnavailable(
            f"block {number} is not stored (the indexer keeps the blocks its facts come from); "
            f"the nearest stored block below it is {near}, or ask by time with --at")
    return number, ts, head


@dataclass
class Market:
    """Everything at block B but the holders: tokens, feeds, their round history and corporate actions."""

    keys: SnapshotKeys
    token_rows: list[dict]
    tokens: Tokens
    feeds: Feeds
    history: FeedHistory
    actions: CorporateActions | None
    multipliers: dict[str, int]
    feed_index: dict[str, int]


def load_market(conn: Connection, chain_id: int, block: int | None = None, *, at: int | None = None,
                history_days: int | None = HISTORY_DAYS) -> Market:
    """The tokens and feeds at B with every usable round of the last ``history_days`` days (all stored
    rounds for None) and every corporate action up to B."""
    number, ts, head = resolve_block(conn, chain_id, block, at)
    toks = token_rows(conn, chain_id)
    all_feeds = feed_rows(conn, chain_id)
    priced = [f for f in all_feeds if FeedKind(f["kind"]).priced]
    by_name = {f["name"]: f for f in all_feeds}
    keys = SnapshotKeys(chain_id, number, ts, head, [], [t["address"] for t in toks],
                        [t["symbol"] for t in toks], [f["address"] for f in priced], [f["name"] for f in priced])

    latest = _latest_rounds(conn, chain_id, all_feeds, number, ts, keys)
    feeds = _feeds(priced, latest)
    history = _history(conn, chain_id, [f["address"] for f in priced], ts, history_days)
    state_rows = token_state_history(conn, chain_id, number)  # every read up to B, once: state and actions
    multipliers, states = tokens_in_force(conn, chain_id, toks, number, ts, history=state_rows)
    feed_index = {f["name"]: i for i, f in enumerate(priced)}
    tokens = _tokens(toks, feed_index, by_name, multipliers, states, latest, keys)
    if any(t["vault_asset"] for t in toks):
        tokens = _with_vaults(conn, chain_id, toks, tokens, number, ts, multipliers, keys)
    actions = _actions(conn, chain_id, toks, number, ts, state_rows)
    return Market(keys, toks, tokens, feeds, history, actions, multipliers, feed_index)


def load_snapshot(conn: Connection, chain_id: int, block: int | None = None, *, at: int | None = None
                  ) -> tuple[Snapshot, SnapshotKeys]:
    m = load_market(conn, chain_id, block, at=at)
    keys, toks, multipliers, feed_index = m.keys, m.token_rows, m.multipliers, m.feed_index
    number, ts, head = keys.block_number, keys.block_timestamp, keys.head_block
    tokens, feeds, history, actions = m.tokens, m.feeds, m.history, m.actions

    balances = _balances(conn, chain_id, toks, multipliers, number, head)
    frozen, sanctioned = _account_flags(conn, chain_id, number)
    acct_rows = account_rows(conn)
    pos_rows = position_rows(conn)
    wallets = sorted({w for (_, w) in balances} | set(acct_rows) | {p["wallet"] for p in pos_rows})
    keys.wallets = wallets
    w_index = {w: i for i, w in enumerate(wallets)}
    t_index = {t["address"]: i for i, t in enumerate(toks)}

    pairs = sorted(((w_index[w], t_index[t], v) for (t, w), v in balances.items()))
    holdings = Holdings(
        wallet_idx=np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs)),
        token_idx=np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs)),
        balance_raw=limbs_from_ints([p[2] for p in pairs]),  # fixed-width uint256: the engine's fast path
        frozen=np.fromiter(((toks[p[1]]["address"], wallets[p[0]]) in frozen for p in pairs), dtype=bool,
                           count=len(pairs)),
    )
    accounts = _accounts(wallets, acct_rows, sanctioned)
    positions = _positions(pos_rows, w_index, feed_index)
    keys.instruments = [p["instrument"] for p in pos_rows]
    liquidity = None
    if pool_rows(conn, chain_id):
        keys.liquidity = load_liquidity(conn, chain_id, number, ts)
        keys.notes += [f"pool {keys.liquidity.names[p]} ({p}): {why}; its token keeps the policy's configured "
                       "liquidity figure unless another of its pools is measured"
                       for p, why in keys.liquidity.unmeasured.items()]
        liquidity = liquidity_input(keys.liquidity, keys.token_addresses)
    snap = Snapshot(number, ts, tokens, feeds, history, holdings, accounts, positions, actions, liquidity)
    snap.validate()
    return snap, keys


# -- parts ------------------------------------------------------------------------------------------

def _latest_rounds(conn: Connection, cid: int, feeds: list[dict], number: int, ts: int, keys: SnapshotKeys
                   ) -> dict[str, dict]:
    """{feed address: the round that prices it at B}: its latest round that carries a price. A later round
    that does not (0, negative, no update time: stored with its quality flag) is never used as a price,
    and the run's notes say which feeds had one."""
    out = {}
    for f in feeds:  # one indexed query per feed: a few dozen feeds
        newest = latest_round_at(conn, cid, f["address"], number, ts)
        if newest is None:
            continue
        priced = newest if newest["quality"] in PRICE_QUALITIES else latest_round_at(
            conn, cid, f["address"], number, ts, priced=True)
        if priced is not newest:
            keys.notes.append(f"{f['name']}: its latest round {newest['round_id']} at block {number} is "
                              f"{newest['quality']} (answer {newest['answer_raw']}): valued at the round before it"
                              if priced is not None else
                              f"{f['name']}: no round carries a price at block {number} (latest: {newest['quality']})")
        if priced is not None:
            out[f["address"]] = priced
    return out


def _feeds(priced: list[dict], latest: dict[str, dict]) -> Feeds:
    rounds = [latest.get(f["address"]) for f in priced]
    return Feeds(
        name=np.array([f["name"] for f in priced], dtype=object),
        kind=np.array([FeedKind(f["kind"]).code for f in priced], dtype=np.int8),
        decimals=np.array([f["decimals"] for f in priced], dtype=np.int64),
        has_round=np.array([r is not None for r in rounds], dtype=bool),
        round_id=int_array([r["round_id"] if r else 0 for r in rounds]),
        answer_raw=int_array([r["answer_raw"] if r else 0 for r in rounds]),
        updated_at=np.array([r["updated_at"] if r else 0 for r in rounds], dtype=np.int64),
        answered_in_round=int_array([r["answered_in_round"] if r else 0 for r in rounds]),
        heartbeat_s=np.array([f["heartbeat"] for f in priced], dtype=np.int64),
    )


def _history(conn: Connection, cid: int, feeds: list[str], ts: int, days: int | None = HISTORY_DAYS) -> FeedHistory:
    offsets, times, answers = [0], [], []
    since = 0 if days is None else ts - days * 86_400
    for feed in feeds:
        rows = [r for r in usable_rounds(conn, cid, feed, since, ts) if r[1] > 0]
        times += [r[0] for r in rows]
        answers += [r[1] for r in rows]
        offsets.append(len(times))
    fits = all(-(2**62) < a < 2**62 for a in answers)
    flagged = flagged_round_counts(conn, cid, since, ts)
    return FeedHistory(np.array(offsets, dtype=np.int64), np.array(times, dtype=np.int64),
                       np.array(answers, dtype=np.int64) if fits else int_array(answers),
                       np.array([flagged.get(f, 0) for f in feeds], dtype=np.int64))


def _actions(conn: Connection, cid: int, toks: list[dict], number: int, ts: int,
             history: dict[str, list[dict]]) -> CorporateActions | None:
    """Every token's corporate actions up to B, from its stored state reads and its events: a Backed
    xStock's events before its first stored read (blocks synced from a node without their state), an
    ERC-8056 token's announced schedule. `history`: `token_state_history` at B."""
    ui = [t["address"] for t in toks if t["accounting"] == Accounting.UI_MULTIPLIER]
    schedule = stored_ui_schedule(conn, cid, up_to=number, tokens=ui) if ui else {}
    rebasing = [t["address"] for t in toks if t["accounting"] == Accounting.REBASING_SHARES]
    events = stored_multiplier_events(conn, cid, number, rebasing) if rebasing else {}
    per_token: list[list[CorporateAction]] = []
    for t in toks:
        rows = history.get(t["address"], [])
        acc = Accounting(t["accounting"])
        if acc == Accounting.REBASING_SHARES:
            reads = [StateRead(int(r["block_timestamp"]), int(r["multiplier_raw"]), rebasing_params_of_row(r))
                     for r in rows]
            per_token.append(rebasing_stored_actions(events.get(t["address"], []), reads, ts))
        elif acc == Accounting.UI_MULTIPLIER:
            reads = [StateRead(int(r["block_timestamp"]), int(r["multiplier_raw"])) for r in rows]
            per_token.append(ui_actions(reads, schedule.get(t["address"], []), ts))
        else:
            per_token.append([])
    if not any(per_token):
        return None
    flat = [a for acts in per_token for a in acts]
    return CorporateActions(
        offsets=np.concatenate(([0], np.cumsum([len(a) for a in per_token]))).astype(np.int64),
        effective_at=np.array([a.effective_at for a in flat], dtype=np.int64),
        new=int_array([a.new for a in flat]), old=int_array([a.old for a in flat]))


def tokens_in_force(conn: Connection, cid: int, toks: list[dict], number: int, ts: int, *,
                    history: dict[str, list[dict]] | None = None) -> tuple[dict[str, int], dict[str, dict]]:
    """Multiplier in force at B per token, and the last stored state row at or before B (the last row of
    `history`, `token_state_history` at B, when the caller has read it)."""
    states = token_state_at(conn, cid, number) if history is None else {t: rows[-1] for t, rows in history.items()}
    schedule = stored_ui_schedule(conn, cid, up_to=number,
                                  tokens=[t["address"] for t in toks if t["accounting"] == Accounting.UI_MULTIPLIER])
    multipliers = {}
    for t in toks:
        row = states.get(t["address"])
        if row is None:
            first = first_token_state_block(conn, cid, t["address"])
            raise SnapshotUnavailable(
                f"{t['symbol']}: no token state (multiplier, pause, supply) is stored at or before block {number}"
                + (f"; it is stored from block {first} on (those blocks were synced from a node that no longer "
                   "held older state): value a block from there on, or sync from an archive node"
                   if first is not None else "; run a sync tick first"))
        multipliers[t["address"]] = multiplier_at(Accounting(t["accounting"]), row, number, ts,
                                                  schedule.get(t["address"], []))
    return multipliers, states


def multiplier_at(acc: Accounting, row: dict, number: int, ts: int, schedule: list[UiMultiplierUpdate]) -> int:
    """The token's multiplier in force at block `number` (time `ts`), from its last state row at or before it.

    The contract's own value comes first: a row read at that very block is the answer. Between reads the
    rule of the token's model carries the last read forward: a Backed xStock's fee periods and pending
    update (`accounting.rebasing_multiplier_at`, from the row's stored parameters), an ERC-8056 token's
    pending update and the updates announced since (`ui_multiplier_at`)."""
    if row["block_number"] == number or acc == Accounting.PLAIN:
        return int(row["multiplier_raw"]) if acc != Accounting.PLAIN else WAD
    if acc == Accounting.REBASING_SHARES:
        params = rebasing_params_of_row(row)
        if params is None:
            return int(row["multiplier_raw"])
        try:
            return rebasing_multiplier_at(params, ts)[0]
        except MultiplierUndefined:
            return int(row["multiplier_raw"])
    m = int(row["multiplier_raw"])
    pending, effective = row["new_multiplier_raw"], row["activation_time"]
    if pending is not None and effective and row["block_timestamp"] < int(effective) <= ts:
        m = int(pending)
    later = [u for u in schedule if u.set_at > row["block_timestamp"]]  # announced after the read
    return ui_multiplier_at(later, ts, initial=m)


def _tokens(toks: list[dict], feed_index: dict[str, int], by_name: dict[str, dict], multipliers: dict[str, int],
            states: dict[str, dict], latest: dict[str, dict], keys: SnapshotKeys) -> Tokens:
    reserve_raw, reserve_dec, has_reserve, feed_idx, quote, reserve_at = [], [], [], [], [], []
    for t in toks:
        feed = by_name.get(t["feed"]) if t["feed"] else None
        feed_idx.append(feed_index.get(feed["name"], -1) if feed is not None else -1)
        quote.append((PriceQuote.PER_TOKEN if feed is not None and feed["quote"] == PriceQuote.PER_TOKEN
                      else PriceQuote.PER_SHARE).code)
        rf = by_name.get(t["reserve_feed"]) if t["reserve_feed"] else None
        r = latest.get(rf["address"]) if rf is not None else None
        has_reserve.append(r is not None and r["answer_raw"] >= 0)
        reserve_raw.append(r["answer_raw"] if r is not None and r["answer_raw"] >= 0 else 0)
        reserve_dec.append(rf["decimals"] if rf is not None else 0)
        reserve_at.append(int(r["updated_at"] or keys.block_timestamp) if r is not None else keys.block_timestamp)
        if rf is not None and r is None:
            keys.notes.append(f"{t['symbol']}: reserve feed {rf['name']} has no round at block {keys.block_number}")
    return Tokens(
        symbol=np.array([t["symbol"] for t in toks], dtype=object),
        decimals=np.array([t["decimals"] for t in toks], dtype=np.int64),
        accounting=np.array([Accounting(t["accounting"]).code for t in toks], dtype=np.int8),
        multiplier_raw=int_array([multipliers[t["address"]] for t in toks]),
        paused=np.array([bool(states[t["address"]].get("paused", False)) for t in toks], dtype=bool),
        feed_idx=np.array(feed_idx, dtype=np.int64),
        quote=np.array(quote, dtype=np.int8),
        total_supply_raw=int_array([states[t["address"]].get("total_supply_raw", 0) for t in toks]),
        has_reserve=np.array(has_reserve, dtype=bool),
        reserve_raw=int_array(reserve_raw),
        reserve_decimals=np.array(reserve_dec, dtype=np.int64),
        reserve_updated_at=np.array(reserve_at, dtype=np.int64),
    )


def _with_vaults(conn: Connection, cid: int, toks: list[dict], tokens: Tokens, number: int, ts: int,
                 multipliers: dict[str, int], keys: SnapshotKeys) -> Tokens:
    """The ERC-4626 vaults' part of the token table (docs/risk.md section 16): each vault's asset, priced by the
    asset's feed, its rate at B and the moves of its rate between the reads of the last `VAULT_HISTORY_S`. The
    rate at B is the last read at or before B, carried to B by a rebasing asset's multiplier (`rate_at`)."""
    index = {t["address"]: i for i, t in enumerate(toks)}
    reads = vault_reads(conn, cid, number, ts - VAULT_HISTORY_S)
    n_t = len(toks)
    asset_idx, feed_idx = np.full(n_t, -1, dtype=np.int64), np.asarray(tokens.feed_idx, dtype=np.int64).copy()
    rate = np.zeros(n_t, dtype=object)
    offsets, at, move = [0], [], []
    for i, t in enumerate(toks):
        if t["vault_asset"] and t["vault_asset"] in index:
            a = index[t["vault_asset"]]
            asset_idx[i], feed_idx[i] = a, feed_idx[a]
            series = reads.get(t["address"], [])
            if series:
                rate[i] = rate_at(series[-1][2], multipliers.get(t["vault_asset"]))
            else:
                keys.notes.append(f"{t['symbol']}: no rate of the ERC-4626 vault read at or before block {number}")
            for when, m in rate_moves([(s_ts, r) for _, s_ts, r in series]):
                at.append(when)
                move.append(m)
        offsets.append(len(at))
    return replace(tokens, feed_idx=feed_idx, vault_asset_idx=asset_idx, vault_rate_raw=rate,
                   vault_move_offsets=np.array(offsets, dtype=np.int64), vault_move_at=np.array(at, dtype=np.int64),
                   vault_move=np.array(move, dtype=np.float64))


def _balances(conn: Connection, cid: int, toks: list[dict], multipliers: dict[str, int], number: int, head: int
              ) -> dict[tuple[str, str], int]:
    """{(token, wallet): balanceOf at B} for every non-zero balance."""
    if number == head:
        return balances_now(conn, cid)
    models = {t["address"]: units_model(Accounting(t["accounting"]), t["balance_source"]) for t in toks}
    out = {}
    for token, wallet, units in units_at(conn, cid, number):
        if token in models:
            bal = balance_of_units(models[token], units, multipliers.get(token, WAD))[0]
            if bal > 0:
                out[(token, wallet)] = bal
    return out


def _account_flags(conn: Connection, cid: int, number: int) -> tuple[set[tuple[str, str]], set[str]]:
    """((token, wallet) frozen, wallets sanctioned on any list) at B, replayed from events."""
    status = account_status(conn, cid, up_to=number)
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


def _positions(rows: list[dict], w_index: dict[str, int], feed_index: dict[str, int]) -> Positions:
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
