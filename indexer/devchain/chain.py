"""A dev chain's whole life: start anvil, build the world, write the manifest, stop and clean up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from indexer.chain.rpc import RpcClient
from indexer.devchain.anvil import STATES_DIR, AnvilNode, stop_process_group
from indexer.devchain.book import write_book
from indexer.devchain.deploy import build_world
from indexer.devchain.live import save_sim
from indexer.devchain.manifest import manifest_data, write_manifest
from indexer.devchain.specs import SCALES, TIMELINE, Timeline
from indexer.devchain.world import WorldSim
from indexer.errors import DevchainError

MANIFEST = "manifest.toml"
LIVE_PID = "live.pid"


@dataclass
class DevChain:
    node: AnvilNode
    sim: WorldSim
    manifest_path: Path

    @property
    def url(self) -> str:
        return self.node.url


def parse_seed(value: str | int) -> int:
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise DevchainError(f"seed {value!r} is not a number: pass an integer such as --seed 7") from None
    if seed < 0:
        raise DevchainError(f"seed {seed} is negative: pass an integer >= 0")
    return seed


def start_devchain(
    *,
    port: int,
    state_dir: Path,
    seed: int,
    scale: str,
    timeline: Timeline = TIMELINE,
    progress: Callable[[int, int], None] | None = None,
    archive: bool = False,
    phase: Callable[[str], None] | None = None,
) -> DevChain:
    """Start anvil, build the world and write the manifest; on any failure leave nothing running.
    `archive` keeps every past state (on disk in STATE_DIR/states, removed with the chain), so state can be
    read at any block; it costs disk: about 20 GB for the whole small world (`anvil.ARCHIVE_STATES`).
    `phase` is told each step by name as it begins (`indexer.devchain.progress`), `progress` the world
    blocks played so far and their number."""
    if scale not in SCALES:
        raise DevchainError(f"scale {scale!r} is unknown: use one of {', '.join(SCALES)}")
    if (state_dir / "anvil.pid").exists() and _pid_alive(int((state_dir / "anvil.pid").read_text() or 0)):
        raise DevchainError(f"a dev chain already runs from {state_dir}: run `collateral-indexer devchain down` first")
    timeline = replace(timeline, block_seconds=SCALES[scale].block_seconds)
    if phase is not None:
        phase(f"starting anvil on port {port}")
    node = AnvilNode.start(port, state_dir, genesis_timestamp=timeline.start - 3 * 3600,
                           prune_history=None if archive else SCALES[scale].prune_history)
    try:
        rpc = RpcClient(node.url, timeout=120)
        sim, report = build_world(rpc, seed=seed, scale=SCALES[scale], timeline=timeline, progress=progress,
                                  phase=phase)
        if phase is not None:
            phase("writing the manifest and the off-chain book")
        data = manifest_data(rpc_url=node.url, seed=seed, scale=SCALES[scale], timeline=timeline,
                             dep=sim.dep, report=report)
        data["world"]["holders"] = {sym: len(h) for sym, h in sim.holders.items()}
        data["world"]["rounds"] = dict(sim.rounds_planned)
        accounts_csv, positions_csv = write_book(sim, state_dir)
        data["world"]["accounts_csv"] = str(accounts_csv)
        data["world"]["positions_csv"] = str(positions_csv)
        path = state_dir / MANIFEST
        write_manifest(path, data)
        save_sim(state_dir, sim)
        rpc.close()
    except BaseException:
        node.stop(remove_state=True)
        raise
    return DevChain(node, sim, path)


def short_timeline(days: int) -> Timeline:
    """The same calendar with fewer days, for quick tests."""
    return replace(TIMELINE, days=days)


def spawn_live(state_dir: Path, *, interval: float, step: int) -> int:
    """Start the live block producer as a detached process; its pid goes in the state folder."""
    log = open(state_dir / "live.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "indexer.cli", "devchain", "live", "--state-dir", str(state_dir),
             "--interval", str(interval), "--step", str(step)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        log.close()
    (state_dir / LIVE_PID).write_text(str(proc.pid))
    return proc.pid


def stop_devchain(state_dir: Path, *, remove_state: bool = True) -> list[str]:
    """Stop the live producer and anvil started from `state_dir`; returns what was stopped."""
    stopped = []
    for name, label in ((LIVE_PID, "live producer"), ("anvil.pid", "anvil")):
        pid_file = state_dir / name
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().strip())
            except ValueError:
                pid = 0
            if pid and stop_process_group(pid):
                stopped.append(f"{label} (pid {pid})")
            pid_file.unlink(missing_ok=True)
    if remove_state:
        shutil.rmtree(state_dir / "home", ignore_errors=True)
        shutil.rmtree(state_dir / STATES_DIR, ignore_errors=True)  # an archive node's persisted states
    return stopped


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
