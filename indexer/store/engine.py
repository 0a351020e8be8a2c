"""Engines, schema migrations and opening the store. Library code takes a connection; callers own engines."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

from indexer.config import Settings
from indexer.store import sqlite
from indexer.store.registry import register

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """SQLite gets WAL when new and a busy timeout (one writer, many readers); PostgreSQL a small pool.

    The journal mode of an existing SQLite database is left as it is: WAL, except while a first
    backfill writes through a rollback journal (`SqliteDialect.first_backfill`). Switching it needs the
    database to itself, so a reader must not try (`use_wal` is for writers at start-up)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": sqlite.BUSY_TIMEOUT_S})
        event.listen(engine, "connect", lambda dbapi_conn, _record: sqlite.on_connect(dbapi_conn))
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, echo=echo, pool_size=5, max_overflow=5, pool_pre_ping=True)


def use_wal(engine: Engine) -> None:
    """SQLite: write-ahead logging, unless another connection holds the database (then as it is)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        sqlite.set_journal_mode(conn, "wal")
        conn.commit()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (the only way the schema is created)."""
    command.upgrade(alembic_config(url), revision)


def open_writer(url: str) -> Engine:
    """The engine of a process that writes (sync, service, loaders, risk runs): migrations applied
    first, and an SQLite database back in WAL (a first backfill killed while it wrote through a
    rollback journal left one)."""
    upgrade(url)
    engine = make_engine(url)
    use_wal(engine)
    return engine


def open_store(settings: Settings) -> Engine:
    """A writer's engine (`open_writer`) with the configured tokens and feeds registered."""
    engine = open_writer(settings.database_url)
    with engine.begin() as conn:
        register(conn, settings)
    return engine
