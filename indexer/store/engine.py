"""Engines and schema creation. Library code takes a connection or session; callers own engines."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = PROJECT_ROOT / "db" / "migrations"
SQLITE_PAGE_SIZE = 16_384
SQLITE_BUSY_TIMEOUT_S = 30


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """SQLite gets WAL when new and a busy timeout (one writer, many readers); PostgreSQL a small pool.

    The journal mode of an existing SQLite database is left as it is: WAL, except while a first
    backfill writes through a rollback journal (indexer.sync.pipeline._sqlite_journal). Switching it
    needs the database to itself, so a reader must not try (`use_wal` is for writers at start-up)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            # 16 KiB pages for a new database (an existing one keeps its own): a backfill writes a quarter
            # of the pages, and makes a quarter of the system calls, that 4 KiB pages need (docs/benchmarks.md)
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            if cur.execute("PRAGMA schema_version").fetchone()[0] == 0:  # a new, empty database
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, echo=echo, pool_size=5, max_overflow=5, pool_pre_ping=True)


def use_wal(engine: Engine) -> None:
    """SQLite: write-ahead logging, unless another connection holds the database (then as it is)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        set_journal_mode(conn, "wal")
        conn.commit()


def set_journal_mode(conn: Connection, mode: str) -> str | None:
    """Switch an SQLite database's journal mode (outside a transaction); returns the mode now in force,
    or None when another connection holds the database and the mode stays as it is. Waits 0.1 s at
    most for the database, not the usual busy timeout."""
    conn.exec_driver_sql("PRAGMA busy_timeout = 100")
    try:
        return conn.exec_driver_sql(f"PRAGMA journal_mode={mode}").scalar()
    except OperationalError:  # "database is locked"
        return None
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (the only way the schema is created)."""
    command.upgrade(alembic_config(url), revision)

