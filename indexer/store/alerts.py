"""The webhook alerts' statements (0009): the cursor of compared runs, the feed states alerted, the outbox of
deliveries and the dead letters. The rules are the service's (service/alerts.py); these are its queries,
shared with the command line (`collateral-indexer alerts`).

Times are unix seconds of the database's clock on PostgreSQL and of the host's on SQLite (`leases.db_now`),
so instances on several hosts agree on when a retry is due.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from indexer.store import models as m
from indexer.store.leases import db_now
from indexer.store.writes import insert_ignore, upsert

_cursor = m.AlertCursor.__table__
_feeds = m.AlertFeedState.__table__
_outbox = m.AlertOutbox.__table__
_dead = m.AlertDeadLetter.__table__
_runs = m.RiskRunRecord.__table__
_wallets = m.RiskWallet.__table__


@dataclass(frozen=True)
class RunRef:
    id: int
    block_number: int
    block_timestamp: int
    policy_name: str
    wallets: int  # wallets the run valued (its `risk_wallets` rows, unless retention deleted them)


@dataclass(frozen=True)
class Delivery:
    """A row of `alert_outbox`."""

    id: int
    chain_id: int
    event_id: str
    event_type: str
    url: str
    body: str
    created_at: float
    attempts: int
    next_attempt_at: float
    last_error: str | None


@dataclass(frozen=True)
class DeadLetter:
    """A row of `alert_dead_letters`."""

    id: int
    chain_id: int
    event_id: str
    event_type: str
    url: str
    body: str
    attempts: int
    last_error: str
    created_at: float
    failed_at: float
    replayed_at: float | None


# ------------------------------------------------------------------------------ runs and the cursor
def read_cursor(conn: Connection, chain_id: int) -> int | None:
    """The last run compared for the chain, or None before the first comparison."""
    return conn.execute(select(_cursor.c.run_id).where(_cursor.c.chain_id == chain_id)).scalar()


def set_cursor(conn: Connection, chain_id: int, run_id: int) -> None:
    upsert(conn, _cursor, [dict(chain_id=chain_id, run_id=run_id, compared_at=db_now(conn))], ["chain_id"])


def _ref(row) -> RunRef | None:
    return None if row is None else RunRef(int(row.id), int(row.block_number), int(row.block_timestamp),
                                           row.policy_name, int(row.wallets))


def _run_q():
    return select(_runs.c.id, _runs.c.block_number, _runs.c.block_timestamp, _runs.c.policy_name, _runs.c.wallets)


def run_ref(conn: Connection, run_id: int) -> RunRef | None:
    return _ref(conn.execute(_run_q().where(_runs.c.id == run_id)).first())


def next_run(conn: Connection, chain_id: int, after: int, policy_name: str) -> RunRef | None:
    """The first run of the chain stored after run `after` under the policy, whose block is on the chain."""
    return _ref(conn.execute(_run_q().where(
        _runs.c.chain_id == chain_id, _runs.c.id > after, _runs.c.policy_name == policy_name,
        _runs.c.orphaned_at.is_(None)).order_by(_runs.c.id).limit(1)).first())


def runs_after(conn: Connection, chain_id: int, after: int, policy_name: str) -> int:
    """How many runs of the chain under the policy, on the chain, were stored after run `after`."""
    return int(conn.execute(select(func.count()).select_from(_runs).where(
        _runs.c.chain_id == chain_id, _runs.c.id > after, _runs.c.policy_name == policy_name,
        _runs.c.orphaned_at.is_(None))).scalar_one())


def last_run(conn: Connection, chain_id: int, policy_name: str) -> RunRef | None:
    """The chain's run stored last under the policy, whose block is on the chain."""
    return _ref(conn.execute(_run_q().where(
        _runs.c.chain_id == chain_id, _runs.c.policy_name == policy_name,
        _runs.c.orphaned_at.is_(None)).order_by(_runs.c.id.desc()).limit(1)).first())


def run_wallet_columns(conn: Connection, run_id: int) -> dict[str, list]:
    """{column: values} of the run's wallets (wallet, status, equity, im, mm, excess), by wallet."""
    cols = ("wallet", "status", "equity", "im", "mm", "excess")
    rows = conn.execute(select(*(_wallets.c[c] for c in cols)).where(_wallets.c.run_id == run_id)
                        .order_by(_wallets.c.wallet)).all()
    return {c: [r[i] for r in rows] for i, c in enumerate(cols)}


# ------------------------------------------------------------------------------ feeds
def feed_states(conn: Connection, chain_id: int) -> dict[str, tuple[bool, int | None]]:
    """{feed name: (stale, its latest round's updatedAt then)} as last alerted."""
    return {r.feed: (bool(r.stale), r.updated_at) for r in conn.execute(
        select(_feeds.c.feed, _feeds.c.stale, _feeds.c.updated_at).where(_feeds.c.chain_id == chain_id))}


def set_feed_states(conn: Connection, chain_id: int, block_number: int,
                    states: dict[str, tuple[bool, int | None]]) -> None:
    now = db_now(conn)
    upsert(conn, _feeds, [dict(chain_id=chain_id, feed=f, stale=s, updated_at=u, block_number=block_number,
                               changed_at=now) for f, (s, u) in sorted(states.items())], ["chain_id", "feed"])


# ------------------------------------------------------------------------------ the outbox
def enqueue(conn: Connection, chain_id: int, events: Iterable[tuple[str, str, str]], urls: Sequence[str]) -> int:
    """Queue each event (id, type, JSON body) for each URL, due now; an (event, URL) already pending is left
    as it is. Returns the rows given."""
    now = db_now(conn)
    rows = [dict(chain_id=chain_id, event_id=eid, event_type=etype, url=url, body=body, created_at=now,
                 attempts=0, next_attempt_at=now, last_error=None) for eid, etype, body in events for url in urls]
    insert_ignore(conn, _outbox, rows)
    return len(rows)


def _delivery(row) -> Delivery:
    return Delivery(**{k: row._mapping[k] for k in Delivery.__dataclass_fields__})


def due(conn: Connection, chain_id: int, url: str, limit: int = 50) -> list[Delivery]:
    """The URL's deliveries due now, in the order queued (a retry keeps its place)."""
    return [_delivery(r) for r in conn.execute(select(_outbox).where(
        _outbox.c.chain_id == chain_id, _outbox.c.url == url, _outbox.c.next_attempt_at <= db_now(conn))
        .order_by(_outbox.c.id).limit(limit))]


def seconds_to_next(conn: Connection, chain_id: int, url: str) -> float | None:
    """Seconds until the URL's next delivery is due (0 when one is due), None when none is pending."""
    at = conn.execute(select(func.min(_outbox.c.next_attempt_at)).where(
        _outbox.c.chain_id == chain_id, _outbox.c.url == url)).scalar()
    return None if at is None else max(0.0, float(at) - db_now(conn))


def pending(conn: Connection, chain_id: int | None = None) -> list[Delivery]:
    q = select(_outbox).order_by(_outbox.c.id)
    if chain_id is not None:
        q = q.where(_outbox.c.chain_id == chain_id)
    return [_delivery(r) for r in conn.execute(q)]


def delivered(conn: Connection, delivery_id: int) -> None:
    conn.execute(delete(_outbox).where(_outbox.c.id == delivery_id))


def retry_later(conn: Connection, delivery_id: int, *, attempts: int, delay_s: float, error: str) -> None:
    conn.execute(update(_outbox).where(_outbox.c.id == delivery_id).values(
        attempts=attempts, next_attempt_at=db_now(conn) + delay_s, last_error=error))


def dead_letter(conn: Connection, d: Delivery, *, attempts: int, error: str) -> None:
    """Move the delivery from the outbox to `alert_dead_letters`."""
    conn.execute(_dead.insert().values(chain_id=d.chain_id, event_id=d.event_id, event_type=d.event_type, url=d.url,
                                       body=d.body, attempts=attempts, last_error=error, created_at=d.created_at,
                                       failed_at=db_now(conn)))
    delivered(conn, d.id)


# ------------------------------------------------------------------------------ dead letters
def dead_letters(conn: Connection, chain_id: int | None = None, *, replayed: bool = False) -> list[DeadLetter]:
    """Dead letters, oldest first: those not replayed yet, or (`replayed`) all of them."""
    q = select(_dead).order_by(_dead.c.id)
    if chain_id is not None:
        q = q.where(_dead.c.chain_id == chain_id)
    if not replayed:
        q = q.where(_dead.c.replayed_at.is_(None))
    return [DeadLetter(**{k: r._mapping[k] for k in DeadLetter.__dataclass_fields__}) for r in conn.execute(q)]


def replay(conn: Connection, ids: Sequence[int] | None, chain_id: int | None = None) -> list[int]:
    """Queue dead letters again (the same event, body and URL, attempts from 0, due now) and mark them
    replayed; `ids` None: every one not replayed yet (of the chain, when given). Returns the ids replayed;
    unknown ids and letters replayed before are left out."""
    q = select(_dead).where(_dead.c.replayed_at.is_(None)).order_by(_dead.c.id)
    if ids is not None:
        q = q.where(_dead.c.id.in_(list(ids)))
    if chain_id is not None:
        q = q.where(_dead.c.chain_id == chain_id)
    letters = conn.execute(q).all()
    if not letters:
        return []
    now = db_now(conn)
    insert_ignore(conn, _outbox, [dict(chain_id=r.chain_id, event_id=r.event_id, event_type=r.event_type, url=r.url,
                                       body=r.body, created_at=now, attempts=0, next_attempt_at=now,
                                       last_error=f"replayed dead letter {r.id}") for r in letters])
    done = [int(r.id) for r in letters]
    conn.execute(update(_dead).where(_dead.c.id.in_(done)).values(replayed_at=now))
    return done
