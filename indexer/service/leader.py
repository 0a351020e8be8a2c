"""One writer per chain: whoever holds the chain's lease is the leader; the others stand by.

The lease is a row of `leader_leases` (store/leases.py): holder, fencing token, expiry. Only the role
that owns the schema can write it: the read-only `analyst` role of db/roles.sql (and any role with no
write grant) can read who leads but can neither take the lease nor hold it up, whatever else it locks.

- PostgreSQL: the lease lasts `LEASE_POLLS` leader polls (`service.leader_poll_s`, 10 s by default) and
  the leader renews it at every poll. When the leader dies, even by SIGKILL, its lease expires and the
  first standby to poll after that takes it over, with the token one higher. A leader that stops gives
  its lease up, and a standby takes over at its next poll.
- SQLite (one host): the same row, taken by whoever holds an exclusive `flock` on
  `<database>.chain-<id>.lock` beside the file (released by the kernel when the process dies), with no
  expiry: the lock says the holder lives. Several processes on one SQLite file behave the same way.

Fencing, on both: `install_fence` makes every commit on the service's engine first read the lease in
that transaction and compare holder and token with ours (PostgreSQL share-locks the row, so a takeover
waits for the commit). An instance whose lease was taken over, because it stalled past its expiry, say,
has its transaction refused (`Deposed`) and rolled back: a sync tick, a risk run or a reconcile of a
deposed leader writes nothing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import threading
from pathlib import Path

from sqlalchemy import Connection, Engine, event

from indexer.errors import IndexerError
from indexer.store import leases

log = logging.getLogger(__name__)

LEASE_POLLS = 10  # a PostgreSQL lease lasts this many leader polls; the leader renews it at each
LEASE_OPTION = "indexer_lease"  # execution option of the lease's own transactions (not fenced)


class Deposed(IndexerError):
    """This instance's lease was taken over: the transaction that found out is refused."""

    kind = "deposed"


def instance_id() -> str:
    """host:pid:random, unique per service instance (the lease's holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leadership:
    """This instance's claim on one chain's lease.

    Thread-safe: the leader job takes and renews the lease while the writing jobs check it. No Python
    lock is held across a database call (a renewal may wait for a committing tick's share lock, and that
    commit checks the lease)."""

    def __init__(self, engine: Engine, chain_id: int, *, poll_s: float = 1.0, holder: str | None = None) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.holder = holder or instance_id()
        self.sqlite = engine.dialect.name == "sqlite"
        self.ttl_s: float | None = None if self.sqlite else LEASE_POLLS * poll_s
        self.token: int | None = None  # our fencing token while we hold the lease
        self._fd: int | None = None  # SQLite: the file lock
        self._state = threading.Lock()

    @property
    def held(self) -> bool:
        return self.token is not None

    def _lease_tx(self):
        """A connection for the lease's own statements: outside the fence (they name our token themselves)."""
        return self.engine.connect().execution_options(**{LEASE_OPTION: True})

    def try_acquire(self) -> bool:
        """Renew the lease when it is ours, else take it over when it is free; True while we hold it."""
        token = self.token
        if token is not None:
            return self._renew(token)
        if self.sqlite and not self._flock():
            return False
        try:
            with self._lease_tx() as conn, conn.begin():
                got = leases.take_over(conn, self.chain_id, self.holder, self.ttl_s)
        except Exception:
            self._unflock()
            raise
        if got is None:
            self._unflock()
            return False
        new, previous = got
        with self._state:
            self.token = new
        log.info("took the lease of chain %d (fencing token %d)%s", self.chain_id, new,
                 f" over from {previous}" if previous else "")
        return True

    def _renew(self, token: int) -> bool:
        if self.sqlite:
            return True  # no expiry: the file lock says we live; the fence still checks the token at each commit
        with self._lease_tx() as conn, conn.begin():
            ok = leases.renew(conn, self.chain_id, self.holder, token, self.ttl_s)
        if not ok:
            self._lost(token, "it was taken over")
        return ok

    def still_held(self) -> bool:
        """True while the lease row names us with our token (read from the database)."""
        token = self.token
        if token is None:
            return False
        with self.engine.connect() as conn:
            lease = leases.read_lease(conn, self.chain_id)
        if lease is None or (lease.holder, lease.token) != (self.holder, token):
            self._lost(token, "it was taken over" if lease is None else
                       f"{lease.holder} holds it with fencing token {lease.token}")
            return False
        return True

    def read(self):
        """The chain's lease row (who leads, the last tick), or None when no instance ever led."""
        with self.engine.connect() as conn:
            return leases.read_lease(conn, self.chain_id)

    def record_tick(self, *, synced_block: int | None, head_block: int | None, head_lag_seconds: int | None) -> bool:
        """Store a successful sync tick in the lease row, under our token; False (and standing by) when the
        lease is no longer ours."""
        token = self.token
        if token is None:
            return False
        with self._lease_tx() as conn, conn.begin():
            ok = leases.record_tick(conn, self.chain_id, self.holder, token, synced_block=synced_block,
                                    head_block=head_block, head_lag_seconds=head_lag_seconds)
        if not ok:
            self._lost(token, "it was taken over")
        return ok

    def release(self) -> None:
        """Give the lease up (a standby takes over at its next poll) and drop the file lock."""
        with self._state:
            token, self.token = self.token, None
        try:
            if token is not None:
                with self._lease_tx() as conn, conn.begin():
                    leases.give_up(conn, self.chain_id, self.holder, token)
                log.info("gave the lease of chain %d up (fencing token %d)", self.chain_id, token)
        except Exception as exc:  # it expires by itself
            log.warning("could not give the lease of chain %d up (%s): it expires by itself", self.chain_id, exc)
        finally:
            self._unflock()

    # -- the fence -------------------------------------------------------------------------------
    def check(self, conn: Connection) -> None:
        """In `conn`'s transaction: raise `Deposed` unless the lease names us with our token."""
        token = self.token
        found = leases.fence_token(conn, self.chain_id)
        if token is not None and found == (self.holder, token):
            return
        who = "no instance" if found is None else f"{found[0]} (fencing token {found[1]})"
        if token is not None:
            self._lost(token, f"{who} holds it")
        raise Deposed(f"chain {self.chain_id}: write refused, this instance ({self.holder}) "
                      + (f"lost the lease (its token {token}) and " if token is not None else "")
                      + f"does not lead: the lease is held by {who}; the transaction is rolled back")

    def install_fence(self) -> None:
        """Check the lease before every commit on this engine (the lease's own statements excepted)."""
        def before_commit(conn: Connection) -> None:
            if not conn.get_execution_options().get(LEASE_OPTION):
                self.check(conn)

        event.listen(self.engine, "commit", before_commit)

    # -- state -----------------------------------------------------------------------------------
    def _lost(self, token: int, why: str) -> None:
        with self._state:
            if self.token != token:
                return
            self.token = None
        log.warning("lost the lease of chain %d (fencing token %d): %s; standing by", self.chain_id, token, why)
        self._unflock()

    def _flock(self) -> bool:
        with self._state:
            if self._fd is not None:
                return True
            fd = os.open(_sqlite_lock_path(self.engine, self.chain_id), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True

    def _unflock(self) -> None:
        with self._state:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _sqlite_lock_path(engine: Engine, chain_id: int) -> str:
    db = engine.url.database
    if not db or db == ":memory:":
        raise ValueError("leader election needs a SQLite file, not an in-memory database")
    return f"{Path(db).resolve()}.chain-{chain_id}.lock"
