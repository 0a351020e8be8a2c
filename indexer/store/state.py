"""What the store says about contract state: token state rows, token events, price rounds."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select

from indexer.accounting import MultiplierEvent, RebasingParams, UiMultiplierUpdate
from indexer.store import models as m
from indexer.store.writes import insert_ignore, upsert
from indexer.token_events import (
    ACCOUNT_EVENTS,
    REBASING_MULTIPLIER_EVENTS,
    UI_SCHEDULE_EVENTS,
    AccountKey,
    fold_account_events,
    status_rows,
    ui_schedule,
)

_ts = m.TokenState.__table__
_te = m.TokenEvent.__table__
_pr = m.PriceRound.__table__
_as = m.AccountStatus.__table__


# -------------------------------------------------------------------------------- token state
def token_state_at(conn: Connection, cid: int, block: int | None = None) -> dict[str, dict]:
    """{token: its last `token_state` row at or before `block`} (the last row of all when None)."""
    where = [_ts.c.chain_id == cid] + ([_ts.c.block_number <= block] if block is not None else [])
    last = select(_ts.c.token, func.max(_ts.c.block_number).label("b")).where(*where).group_by(_ts.c.token).subquery()
    rows = conn.execute(select(_ts).join(last, and_(_ts.c.token == last.c.token, _ts.c.block_number == last.c.b))
                        .where(_ts.c.chain_id == cid)).mappings()
    return {r["token"]: dict(r) for r in rows}


def rebasing_params_of_row(row: Mapping[str, Any]) -> RebasingParams | None:
    """A Backed xStock's multiplier state as a stored `token_state` row holds it (None: not read)."""
    if row.get("base_multiplier_raw") is None or row.get("period_length") is None:
        return None
    return RebasingParams(int(row["base_multiplier_raw"]), int(row["last_time_fee_applied"] or 0),
                          int(row["fee_per_period_raw"] or 0), int(row["period_length"]),
                          None if row["new_multiplier_raw"] is None else int(row["new_multiplier_raw"]),
                          int(row["activation_time"] or 0), int(row["last_multiplier_nonce"] or 0),
                          None if row["new_multiplier_nonce"] is None else int(row["new_multiplier_nonce"]))


def token_state_history(conn: Connection, cid: int, up_to: int) -> dict[str, list[dict]]:
    """{token: every stored `token_state` row at or before block `up_to`, in block order}."""
    rows = conn.execute(select(_ts).where(_ts.c.chain_id == cid, _ts.c.block_number <= up_to)
                        .order_by(_ts.c.token, _ts.c.block_number)).mappings()
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["token"], []).append(dict(r))
    return out


def multipliers_at(conn: Connection, cid: int, block: int | None = None) -> dict[str, int]:
    """{token: multiplier_raw} of `token_state_at`."""
    return {t: int(r["multiplier_raw"]) for t, r in token_state_at(conn, cid, block).items()}


def first_token_state_block(conn: Connection, cid: int, token: str) -> int | None:
    return conn.execute(select(func.min(_ts.c.block_number)).where(_ts.c.chain_id == cid,
                                                                    _ts.c.token == token)).scalar()


# -------------------------------------------------------------------------------- token events
def account_status(conn: Connection, cid: int, up_to: int | None = None) -> dict[AccountKey, dict]:
    """Account status replayed from the stored freeze and sanction events (all, or up to block `up_to`)."""
    q = select(_te.c.contract, _te.c.event, _te.c.args, _te.c.block_number).where(
        _te.c.chain_id == cid, _te.c.event.in_(ACCOUNT_EVENTS))
    if up_to is not None:
        q = q.where(_te.c.block_number <= up_to)
    rows = conn.execute(q.order_by(_te.c.block_number, _te.c.log_index))
    return fold_account_events((c, e, json.loads(a), b) for c, e, a, b in rows)


def write_account_status(conn: Connection, rows: list[dict]) -> None:
    upsert(conn, _as, rows, ["chain_id", "contract", "wallet"])


def replace_account_status(conn: Connection, cid: int, status: dict[AccountKey, dict]) -> None:
    """The chain's account status rows, all replaced by `status`."""
    conn.execute(delete(_as).where(_as.c.chain_id == cid))
    write_account_status(conn, status_rows(cid, status))


def stored_ui_schedule(conn: Connection, cid: int, up_to: int | None = None,
                       tokens: Iterable[str] | None = None) -> dict[str, list[UiMultiplierUpdate]]:
    """Every multiplier update of UI-multiplier tokens announced up to block `up_to` (all of them when
    None), per token, in event order (`token_events.ui_schedule`). `tokens`: only these contracts."""
    b = m.Block.__table__
    q = select(_te.c.contract, _te.c.event, _te.c.args, b.c.timestamp).join(
        b, (b.c.chain_id == _te.c.chain_id) & (b.c.number == _te.c.block_number)).where(
        _te.c.chain_id == cid, _te.c.event.in_(UI_SCHEDULE_EVENTS))
    if up_to is not None:
        q = q.where(_te.c.block_number <= up_to)
    if tokens is not None:
        q = q.where(_te.c.contract.in_(sorted(tokens)))
    rows = conn.execute(q.order_by(_te.c.block_number, _te.c.log_index))
    return ui_schedule((contract, event, json.loads(args), int(ts)) for contract, event, args, ts in rows)


def stored_multiplier_events(conn: Connection, cid: int, up_to: int, tokens: Iterable[str]
                             ) -> dict[str, list[MultiplierEvent]]:
    """Every Backed multiplier event of `tokens` up to block `up_to`, per token, in log order, with its
    block's time."""
    b = m.Block.__table__
    rows = conn.execute(select(_te.c.contract, _te.c.event, _te.c.args, b.c.timestamp).join(
        b, (b.c.chain_id == _te.c.chain_id) & (b.c.number == _te.c.block_number)).where(
        _te.c.chain_id == cid, _te.c.event.in_(REBASING_MULTIPLIER_EVENTS), _te.c.block_number <= up_to,
        _te.c.contract.in_(sorted(tokens))).order_by(_te.c.block_number, _te.c.log_index))
    out: dict[str, list[MultiplierEvent]] = {}
    for contract, event, args, ts in rows:
        out.setdefault(contract, []).append(MultiplierEvent(int(ts), event, json.loads(args)))
    return out


# -------------------------------------------------------------------------------- price rounds
def write_token_state(conn: Connection, rows: list[dict]) -> None:
    upsert(conn, _ts, rows, ["chain_id", "token", "block_number"])


def write_rounds(conn: Connection, rows: list[dict]) -> None:
    insert_ignore(conn, _pr, rows)


def latest_round_ids(conn: Connection, cid: int) -> dict[str, dict[int, int]]:
    """{feed: {phase: the highest stored round of that phase (its aggregator's own round number)}}."""
    out: dict[str, dict[int, int]] = {}
    for feed, phase, rid in conn.execute(select(_pr.c.feed, _pr.c.phase, func.max(_pr.c.round_id)).where(
            _pr.c.chain_id == cid).group_by(_pr.c.feed, _pr.c.phase)).all():
        out.setdefault(feed, {})[int(phase)] = int(rid) & (2**64 - 1)
    return out


PRICE_QUALITIES = ("ok", "carried_over")  # rounds that carry a price (a carried-over one is judged by the engine)


def latest_round_at(conn: Connection, cid: int, feed: str, block: int, timestamp: int, *,
                    priced: bool = False) -> dict | None:
    """The highest round of `feed` published by block `block` (time `timestamp`): `0 < updatedAt <=
    timestamp`, or, for a round with no update time, read at a block at or before `block`. `priced`:
    the highest such round that carries a price (`PRICE_QUALITIES`: not a 0 or negative answer, which
    tokenized-equity feeds can report outside market hours, and not a round with no update time)."""
    published = or_(and_(_pr.c.updated_at > 0, _pr.c.updated_at <= timestamp),
                    and_(_pr.c.updated_at == 0, _pr.c.block_number <= block))
    q = select(_pr).where(_pr.c.chain_id == cid, _pr.c.feed == feed, published)
    if priced:
        q = q.where(_pr.c.quality.in_(PRICE_QUALITIES))
    row = conn.execute(q.order_by(_pr.c.round_id.desc()).limit(1)).mappings().first()
    return None if row is None else dict(row)


def usable_rounds(conn: Connection, cid: int, feed: str, since: int, until: int) -> Iterator[tuple[int, int]]:
    """(updated_at, answer) of the feed's rounds of quality `ok` with `since < updatedAt <= until`, in time order."""
    rows = conn.execute(select(_pr.c.updated_at, _pr.c.answer_raw).where(
        _pr.c.chain_id == cid, _pr.c.feed == feed, _pr.c.quality == "ok", _pr.c.updated_at > since,
        _pr.c.updated_at <= until).order_by(_pr.c.updated_at, _pr.c.round_id))
    return ((int(t), int(a)) for t, a in rows)


def flagged_round_counts(conn: Connection, cid: int, since: int, until: int) -> dict[str, int]:
    """{feed: its rounds with `since < updatedAt <= until` whose quality is not `ok` (left out of the
    volatility history)}."""
    return {f: int(n) for f, n in conn.execute(select(_pr.c.feed, func.count()).where(
        _pr.c.chain_id == cid, _pr.c.quality != "ok", _pr.c.updated_at > since, _pr.c.updated_at <= until)
        .group_by(_pr.c.feed)).all()}


def last_updates(conn: Connection, cid: int, until: int) -> dict[str, int]:
    """{feed: the latest `updatedAt` at or before `until`}."""
    return {f: int(u) for f, u in conn.execute(select(_pr.c.feed, func.max(_pr.c.updated_at)).where(
        _pr.c.chain_id == cid, _pr.c.updated_at <= until).group_by(_pr.c.feed)).all()}
