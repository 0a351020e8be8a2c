"""Keep a built dev chain moving: blocks with transfers and price rounds at a steady pace."""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path

from indexer.chain.rpc import RpcClient
from indexer.devchain.deploy import ChainWriter
from indexer.devchain.world import WorldSim

log = logging.getLogger(__name__)

SIM_FILE = "world.pkl"


def save_sim(state_dir: Path, sim: WorldSim) -> None:
    tmp = state_dir / (SIM_FILE + ".tmp")
    tmp.write_bytes(pickle.dumps(sim, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(state_dir / SIM_FILE)


def load_sim(state_dir: Path) -> WorldSim:
    return pickle.loads((state_dir / SIM_FILE).read_bytes())


def produce_blocks(rpc: RpcClient, sim: WorldSim, count: int, step: int,
                   writer: ChainWriter | None = None) -> list[int]:
    """Mine `count` world blocks, each `step` seconds of chain time after the previous; automine stays off.

    Pass the same `writer` across calls to keep its nonces instead of asking the node again."""
    writer = writer or ChainWriter(rpc)
    rpc.call("evm_setAutomine", [False])
    numbers = []
    for _ in range(count):
        head = rpc.call("eth_getBlockByNumber", ["latest", False])
        t = max(sim.last_time, int(head["timestamp"], 16)) + step
        plan = sim.next_block(t)
        writer.send_all(plan.txs)
        number = writer.mine(t)
        writer.check_block(number, len(plan.txs))
        numbers.append(number)
    return numbers


def run_live(
    rpc: RpcClient,
    sim: WorldSim,
    *,
    interval: float,
    step: int,
    stop: threading.Event,
    seconds: float | None = None,
    on_block: Callable[[int, int, int], None] | None = None,
) -> int:
    """Mine one world block every `interval` seconds, each `step` seconds of chain time after the last.

    Chain time runs faster than the wall clock so that market opens and closes pass during a demo.
    Returns the number of blocks mined. Stops when `stop` is set or after `seconds`.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    writer = ChainWriter(rpc)
    mined = 0
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            started = time.monotonic()
            (number,) = produce_blocks(rpc, sim, 1, step, writer)
            mined += 1
            if on_block is not None:
                on_block(number, sim.last_time, len(sim.last_plan.txs))
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        try:
            rpc.call("evm_setAutomine", [True])
        except Exception:  # noqa: BLE001 - the node may already be gone at shutdown
            pass
    return mined
