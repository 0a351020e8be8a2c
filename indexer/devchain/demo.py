"""The demo's orchestration: a dev chain kept live by a producer thread, synced into a database with the
world's off-chain book loaded, ready for the service. The command line (`collateral-indexer demo`,
`devchain up --foreground`) prints; this module runs things and stops them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from indexer.chain.headers import read_target
from indexer.chain.rpc import RpcClient
from indexer.config import Settings
from indexer.devchain.chain import DevChain
from indexer.devchain.live import run_live
from indexer.offchain import load_files
from indexer.store.engine import open_store
from indexer.sync.context import SyncContext
from indexer.sync.startup import prepare

Backfill = Callable[[Engine, SyncContext, int], None]
OnBlock = Callable[[int, int, int], None]  # (block number, block time, transactions)


class LiveProducer:
    """Produces the world's live blocks on a thread of its own until `stop()` (or `seconds` pass)."""

    def __init__(self, chain: DevChain, *, interval: float, step: int, seconds: float | None = None,
                 on_block: OnBlock | None = None) -> None:
        self._stop = threading.Event()
        self._rpc = RpcClient(chain.url)
        self._thread = threading.Thread(target=run_live, name="live", daemon=True, kwargs=dict(
            rpc=self._rpc, sim=chain.sim, interval=interval, step=step, stop=self._stop, seconds=seconds,
            on_block=on_block))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._rpc.close()


def remove_sqlite_database(url: str) -> None:
    """A fresh demo database each run: an SQLite file and its WAL companions go."""
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)


def sync_world(settings: Settings, backfill: Backfill) -> dict[str, int]:
    """Backfill the dev chain into the configured database with `backfill` (engine, context, goal), then
    load the world's off-chain book; returns the rows loaded per kind."""
    engine = open_store(settings)
    rpc = RpcClient.for_chain(settings.chain)
    try:
        ctx = prepare(settings, rpc)
        backfill(engine, ctx, read_target(rpc, settings.chain.confirmations))
        book = {k: settings.world[f"{k}_csv"] for k in ("accounts", "positions") if f"{k}_csv" in settings.world}
        return load_files(engine, settings, **book) if book else {}
    finally:
        rpc.close()
        engine.dispose()


def with_free_metrics_port(settings: Settings) -> Settings:
    """The configured metrics port when it is free, else any free one (0)."""
    with socket.socket() as probe:
        taken = probe.connect_ex(("127.0.0.1", settings.service.http_port)) == 0
    if not taken:
        return settings
    return settings.model_copy(update={"service": settings.service.model_copy(update={"http_port": 0})})
