"""The leader lease of a chain (`leader_leases`, 0007): take it over, renew it, check it, give it up, and
record the leader's ticks under it. The rules of leadership are the service's (service/leader.py); these
are its statements.

Every statement that changes the row names the fencing token it expects, so it is atomic on both
databases: of two instances taking over an expired lease at once, one UPDATE matches and the other finds
a lease that no longer expired. `fence_token` reads the row inside the caller's write transaction
(PostgreSQL: FOR SHARE, so a takeover waits until that transaction ends, and a transaction that commits
has checked the token in force at its commit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, select, text, update

from indexer.store import models as m
from indexer.store.writes import insert_ignore

_lease = m.LeaderLease.__table__


@dataclass(frozen=True)
class Lease:
    """A chain's lease row as read, with the database's time of the read."""

    chain_id: int
    holder: str
    token: int
    acquired_at: float
    renewed_at: float
    expires_at: float | None  # None: held while the holder's process holds the SQLite file's lock
    last_tick_at: float | None
    last_tick_holder: str | None
    synced_block: int | None
    head_block: int | None
    head_lag_seconds: int | None
    now: float

    @property
    def live(self) -> bool:
        """Someone holds it: taken (token > 0), not given up and not expired."""
        return self.token > 0 and (self.expires_at is None or self.expires_at > self.now)


def db_now(conn: Connection) -> float:
    """Unix seconds by the database's clock on PostgreSQL (instances on several hosts agree on it), by
    this host's on SQLite (one host)."""
    if conn.dialect.name == "postgresql":
        return float(conn.execute(text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one())
    return time.time()


def read_lease(conn: Connection, chain_id: int) -> Lease | None:
    row = conn.execute(select(_lease).where(_lease.c.chain_id == chain_id)).mappings().first()
    return None if row is None else Lease(**dict(row), now=db_now(conn))


def take_over(conn: Connection, chain_id: int, holder: str, ttl_s: float | None) -> tuple[int, str] | None:
    """Take the lease when it is free (never taken, given up or expired), or at once when `ttl_s` is None
    (SQLite: the caller holds the database file's lock, so no other process leads). Returns (the new
    fencing token, the previous holder), or None when another instance holds it."""
    insert_ignore(conn, _lease, [dict(chain_id=chain_id, holder="", token=0, acquired_at=0.0, renewed_at=0.0,
                                      expires_at=0.0)])
    now = db_now(conn)
    before = conn.execute(select(_lease.c.holder, _lease.c.token).where(_lease.c.chain_id == chain_id)).one()
    q = update(_lease).where(_lease.c.chain_id == chain_id, _lease.c.token == before.token)
    if ttl_s is not None:
        q = q.where(_lease.c.expires_at.is_not(None), _lease.c.expires_at <= now)
    done = conn.execute(q.values(holder=holder, token=_lease.c.token + 1, acquired_at=now, renewed_at=now,
                                 expires_at=None if ttl_s is None else now + ttl_s))
    if not done.rowcount:
        return None
    return int(before.token) + 1, before.holder


def renew(conn: Connection, chain_id: int, holder: str, token: int, ttl_s: float) -> bool:
    """Extend our lease by `ttl_s` from now; False when it is no longer ours (taken over)."""
    now = db_now(conn)
    done = conn.execute(update(_lease).where(_lease.c.chain_id == chain_id, _lease.c.holder == holder,
                                             _lease.c.token == token).values(renewed_at=now, expires_at=now + ttl_s))
    return bool(done.rowcount)


def give_up(conn: Connection, chain_id: int, holder: str, token: int) -> bool:
    """End our lease now (a standby takes over at its next poll); False when it was not ours any more."""
    done = conn.execute(update(_lease).where(_lease.c.chain_id == chain_id, _lease.c.holder == holder,
                                             _lease.c.token == token).values(expires_at=db_now(conn)))
    return bool(done.rowcount)


def record_tick(conn: Connection, chain_id: int, holder: str, token: int, *, synced_block: int | None,
                head_block: int | None, head_lag_seconds: int | None) -> bool:
    """A successful sync tick of the leader, now, under its token; False when the lease is not ours."""
    done = conn.execute(update(_lease).where(_lease.c.chain_id == chain_id, _lease.c.holder == holder,
                                             _lease.c.token == token).values(
        last_tick_at=db_now(conn), last_tick_holder=holder, synced_block=synced_block, head_block=head_block,
        head_lag_seconds=head_lag_seconds))
    return bool(done.rowcount)


def fence_token(conn: Connection, chain_id: int) -> tuple[str, int] | None:
    """(holder, token) of the lease, read in the caller's transaction; on PostgreSQL the row stays share-
    locked until that transaction ends, so no takeover commits between this check and the commit."""
    q = select(_lease.c.holder, _lease.c.token).where(_lease.c.chain_id == chain_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(read=True)
    row = conn.execute(q).first()
    return None if row is None else (row.holder, int(row.token))
