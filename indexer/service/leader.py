"""One writer per chain: whoever holds the lock is the leader; the others stand by.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a dedicated connection.
When the leader dies, even by SIGKILL, the server ends its session and frees the lock, and a standby
polling every second takes over. Before every job the leader checks that its lock connection is
still alive; if the connection is gone it steps down instead of writing.

SQLite: an exclusive `flock` on `<database>.chain-<id>.lock` beside the file, released by the kernel when the
process dies. Several processes on one SQLite file behave the same way.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)


def lock_key(chain_id: int) -> int:
    """A signed 64-bit advisory-lock key for this program and chain."""
    digest = hashlib.sha256(f"collateral-indexer/leader/{chain_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    def __init__(self, engine: Engine, chain_id: int) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.key = lock_key(chain_id)
        self._conn = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def try_acquire(self) -> bool:
        if self.held:
            return self.still_held()
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            try:
                got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
                conn.commit()
            except Exception:
                conn.close()
                raise
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        path = _sqlite_lock_path(self.engine, self.chain_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        """True while the lock is ours; on a lost PostgreSQL session, step down."""
        if self._fd is not None:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except Exception as exc:  # the session (and with it the lock) is gone
            log.error("leader lock connection lost (%s): stepping down", exc)
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except Exception:  # noqa: S110 - the lock dies with the session anyway
                pass
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: S110
                pass
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _sqlite_lock_path(engine: Engine, chain_id: int) -> str:
    db = engine.url.database
    if not db or db == ":memory:":
        raise ValueError("leader election needs a SQLite file, not an in-memory database")
    return f"{Path(db).resolve()}.chain-{chain_id}.lock"
