"""Engines and schema creation. Library code takes a connection or session; callers own engines."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = PROJECT_ROOT / "db" / "migrations"
SQLITE_PAGE_SIZE = 16_384


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """SQLite gets WAL and a busy timeout (one writer, many readers); PostgreSQL a small pool."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            # 16 KiB pages for a new database (an existing one keeps its own): a backfill writes a quarter
            # of the pages, and makes a quarter of the system calls, that 4 KiB pages need (docs/benchmarks.md)
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, echo=echo, pool_size=5, max_overflow=5, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (the only way the schema is created)."""
    command.upgrade(alembic_config(url), revision)


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
