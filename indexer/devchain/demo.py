"""The demo's orchestration: a dev chain kept live by a producer thread, synced into a database with the
world's off-chain book loaded, ready for the service. The command line (`collateral-indexer demo`,
`devchain up --foreground`) prints; this module runs things and stops them.

`collateral-indexer demo` builds the world on a node that keeps the last 256 states and syncs it while it
is built (`start_synced_world`: a tick after every 50 world blocks), so every token state the sync reads,
at its ticks' ends and where state events happened, is still held by the node; a risk run at any past
block of the world then finds the state it needs. It stores a risk run per XNYS trading day of the world
(`daily_runs`), builds the database in a file of its own and puts it in place only when all that
succeeded (`DemoFiles`), and writes the configuration file beside it (`write_demo_config`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy import Engine, func, select

from indexer.addresses import checksum
from indexer.chain.headers import read_target
from indexer.chain.rpc import RpcClient
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import AnvilNode
from indexer.devchain.book import write_book
from indexer.devchain.chain import MANIFEST, DevChain, _pid_alive
from indexer.devchain.deploy import BuildReport, deploy_world, play_world
from indexer.devchain.live import run_live, save_sim
from indexer.devchain.manifest import manifest_data, write_manifest
from indexer.devchain.specs import SCALES, TIMELINE, Timeline
from indexer.devchain.world import WorldSim
from indexer.errors import DevchainError
from indexer.offchain import load_files
from indexer.store import models as m
from indexer.store.engine import make_engine, open_store
from indexer.sync.context import SyncContext
from indexer.sync.startup import prepare
from indexer.sync.tick import sync

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


SQLITE = "sqlite:///"
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
# world blocks between syncs while the world is built: a multiple of the 50 after which the builder reports,
# well inside the 256 states the node keeps (a tick reads state at its state events and bisects between reads)
FOLLOW_EVERY = 50
RUN_HOUR_UTC = 19  # the daily risk runs' time: 14:00 in New York in winter, 15:00 in summer, in session


@dataclass(frozen=True)
class DemoFiles:
    """Where the demo's database is built, where it ends up, and its configuration file.

    An SQLite database is built in a file of its own beside the final one (`NAME.building.sqlite`) and
    replaces it only once the world is synced, loaded and its daily runs are stored: a demo that fails
    leaves the previous database as it was. Another database (a PostgreSQL URL) is synced into in place."""

    database_url: str
    building_url: str
    config: Path

    @classmethod
    def for_url(cls, url: str, config: Path | None = None) -> DemoFiles:
        if not url.startswith(SQLITE) or url == f"{SQLITE}:memory:":
            return cls(url, url, config or Path("demo.toml").resolve())
        final = Path(url.removeprefix(SQLITE)).resolve()
        building = final.with_name(f"{final.stem}.building{final.suffix or '.sqlite'}")
        return cls(f"{SQLITE}{final}", f"{SQLITE}{building}", config or final.with_suffix(".toml"))

    @property
    def separate(self) -> bool:
        return self.building_url != self.database_url

    def discard_building(self) -> None:
        """Remove a database being built (and its journal files); the final one is never touched."""
        if self.separate:
            _remove_sqlite(Path(self.building_url.removeprefix(SQLITE)))

    def promote(self) -> None:
        """Put the built database in place of the previous one, in one rename."""
        if not self.separate:
            return
        built = Path(self.building_url.removeprefix(SQLITE))
        final = Path(self.database_url.removeprefix(SQLITE))
        with contextlib.closing(sqlite3.connect(built)) as conn:  # everything into the main file
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for suffix in SQLITE_COMPANIONS:  # the previous database's journal must not meet the new file
            Path(f"{final}{suffix}").unlink(missing_ok=True)
        os.replace(built, final)
        for suffix in SQLITE_COMPANIONS:
            Path(f"{built}{suffix}").unlink(missing_ok=True)


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", *SQLITE_COMPANIONS):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def start_synced_world(
    *,
    port: int,
    state_dir: Path,
    seed: int,
    database_url: str,
    timeline: Timeline = TIMELINE,
    scale: str = "small",
    progress: Callable[[int, int], None] | None = None,
    phase: Callable[[str], None] | None = None,
) -> tuple[DevChain, dict[str, int]]:
    """`chain.start_devchain`'s world, synced into `database_url` while it is built: a sync after every
    `FOLLOW_EVERY` world blocks reads each token's state at the blocks where it changed while the node still
    holds them, so a risk run at any past block finds what it needs (no archive node, no extra disk). Then
    the last blocks and the world's off-chain book; returns the chain and the book's rows loaded per kind.
    On any failure nothing is left running (the database being written stays for the caller to discard)."""
    if (state_dir / "anvil.pid").exists() and _pid_alive(int((state_dir / "anvil.pid").read_text() or 0)):
        raise DevchainError(f"a dev chain already runs from {state_dir}: run `collateral-indexer devchain down` first")
    size = SCALES[scale]
    timeline = replace(timeline, block_seconds=size.block_seconds)
    if phase is not None:
        phase(f"starting anvil on port {port}")
    node = AnvilNode.start(port, state_dir, genesis_timestamp=timeline.start - 3 * 3600,
                           prune_history=size.prune_history)
    rpc = RpcClient(node.url, timeout=120)
    engine = None
    sync_rpc = None
    try:
        # deploy.build_world's steps, with the sync set up between the deployment and the world's blocks
        if phase is not None:
            phase("deploying the world's contracts")
        dep = deploy_world(rpc, timeline.start - 7_200)
        deployment_block = int(rpc.call("eth_blockNumber"), 16) - 2  # the block of the sanctions oracle
        if phase is not None:
            phase(f"planning the world (seed {seed}, scale {size.name}, {size.wallets:,} wallets)")
        sim = WorldSim(seed, size, timeline, dep)
        path = state_dir / MANIFEST
        so_far = BuildReport(deployment_block, deployment_block, 0, 0, 0, 0.0, [])
        write_manifest(path, manifest_data(rpc_url=node.url, seed=seed, scale=size, timeline=timeline, dep=dep,
                                           report=so_far))
        settings = load_settings(path, database_url=database_url)
        engine = open_store(settings)
        sync_rpc = RpcClient.for_chain(settings.chain)
        ctx = prepare(settings, sync_rpc)

        synced = [0]  # world blocks synced so far

        def follow(done: int, total: int) -> None:  # told every 50 world blocks
            if done - synced[0] >= FOLLOW_EVERY or done >= total:
                sync(engine, ctx)
                synced[0] = done
            if progress is not None:
                progress(done, total)

        def next_step(text: str) -> None:
            # what the last step mined is synced before the next begins: the state after the initial
            # distribution is read before the first world block, so a run from the world's first day finds it
            sync(engine, ctx)
            if phase is not None:
                phase(text)

        report = play_world(rpc, sim, deployment_block=deployment_block, progress=follow, phase=next_step)
        rpc.call("evm_setAutomine", [True])
        # chain.start_devchain's manifest, book and saved world
        if phase is not None:
            phase("writing the manifest and the off-chain book")
        data = manifest_data(rpc_url=node.url, seed=seed, scale=size, timeline=timeline, dep=dep, report=report)
        data["world"]["holders"] = {sym: len(h) for sym, h in sim.holders.items()}
        data["world"]["rounds"] = dict(sim.rounds_planned)
        accounts_csv, positions_csv = write_book(sim, state_dir)
        data["world"]["accounts_csv"] = str(accounts_csv)
        data["world"]["positions_csv"] = str(positions_csv)
        write_manifest(path, data)
        save_sim(state_dir, sim)
        if phase is not None:
            phase("syncing the last blocks and loading the off-chain book")
        sync(engine, ctx)
        settings = load_settings(path, database_url=database_url)
        loaded = load_files(engine, settings, accounts=accounts_csv, positions=positions_csv)
    except BaseException:
        node.stop(remove_state=True)
        raise
    finally:
        if engine is not None:
            engine.dispose()
        if sync_rpc is not None:
            sync_rpc.close()
        rpc.close()
    return DevChain(node, sim, path), loaded


def run_times(start: int, end: int, *, hour: int = RUN_HOUR_UTC) -> list[int]:
    """`hour`:00 UTC of every XNYS trading day from `start` to `end` (unix seconds), moved into the
    session where it closes early."""
    from indexer.risk.calendar import xnys

    cal = xnys()
    out = []
    for open_, close in zip(cal.opens.tolist(), cal.closes.tolist(), strict=True):
        if close <= start or open_ > end:
            continue
        day = datetime.fromtimestamp(open_, UTC).replace(hour=hour, minute=0, second=0)
        t = min(max(int(day.timestamp()), open_), close - 1_800)
        if start <= t <= end:
            out.append(t)
    return out


@dataclass
class DailyRuns:
    run_ids: list[int]
    refused: list[str]  # per run the loader refused: its time and why


def daily_runs(settings: Settings, *, start: int | None = None, on_run: Callable[[int, int], None] | None = None
               ) -> DailyRuns:
    """A stored risk run at 19:00 UTC of every XNYS trading day from the world's start (or `start`) to the
    synced head, under the configuration's policy. A run the snapshot loader refuses is left out and said
    why. `on_run(done, total)` after each."""
    from indexer.runs.job import run_and_store
    from indexer.runs.snapshot import SnapshotUnavailable
    from indexer.store.progress import synced_head

    engine = open_store(settings)
    out = DailyRuns([], [])
    try:
        with engine.connect() as conn:
            head = synced_head(conn, settings.chain.chain_id)
        if head is None:
            return out
        times = run_times(int(settings.world.get("start", 0)) if start is None else start, head[1])
        for i, t in enumerate(times):
            try:
                out.run_ids.append(run_and_store(engine, settings.chain.chain_id, settings.policy_path, at=t).run_id)
            except SnapshotUnavailable as exc:
                out.refused.append(f"{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M} UTC: {exc}")
            if on_run is not None:
                on_run(i + 1, len(times))
        return out
    finally:
        engine.dispose()


CONFIG_HEADER = """\
# The demo's configuration, written by `collateral-indexer demo`: the demo world's chain, tokens and feeds,
# and the database it was synced into. Every command takes it (`--config {name}`); the commands that read
# the chain (sync, reconcile, run) need the demo's chain, which runs only while the demo does.
"""


def write_demo_config(manifest: Path, config: Path, database_url: str) -> None:
    """The dev chain's manifest with the demo's database, written to `config` (replaced whole, never half
    written); the off-chain book's files, removed with the chain, are left out (the book is in the database)."""
    import tomllib

    data: dict[str, Any] = tomllib.loads(manifest.read_text())
    data["database_url"] = database_url
    for key in ("accounts_csv", "positions_csv"):
        data.get("world", {}).pop(key, None)
    config.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.with_name(config.name + ".tmp")
    tmp.write_text(CONFIG_HEADER.format(name=config.name) + "\n" + tomli_w.dumps(data))
    tmp.replace(config)


def commands_to_try(settings: Settings, config: Path, *, at: str = "2026-03-11T19:00Z") -> list[str]:
    """Three commands on the demo's database: a wallet lookup (the wallet with the most collateral in the
    latest run), a risk run at a past time (`at`, the crash's worst day, or the middle of a shorter world)
    and the report."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            latest = conn.execute(select(func.max(m.RiskRunRecord.id)).where(
                m.RiskRunRecord.chain_id == settings.chain.chain_id)).scalar()
            wallet = None if latest is None else conn.execute(
                select(m.RiskWallet.wallet).where(m.RiskWallet.run_id == latest)
                .order_by(m.RiskWallet.collateral.desc()).limit(1)).scalar()
    finally:
        engine.dispose()
    start, end = int(settings.world.get("start", 0)), int(settings.world.get("end", 0))
    when = at
    if start and end and not start <= _iso_seconds(at) < end and (times := run_times(start, end)):
        when = datetime.fromtimestamp(times[len(times) // 2], UTC).strftime("%Y-%m-%dT%H:%MZ")
    shown = _shown(config)
    cli = ".venv/bin/collateral-indexer"
    out = []
    if wallet is not None:
        out.append(f"{cli} wallet {checksum(wallet.removeprefix('0x'))} --config {shown}")
    out.append(f"{cli} risk run --config {shown} --at {when}")
    out.append(f"{cli} report --config {shown} --out report")
    return out


def _iso_seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
