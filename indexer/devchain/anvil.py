"""Start and stop a local anvil node in a disposable folder.

anvil keeps its state and caches under $HOME/.foundry; it runs here with HOME pointed into the
dev chain's own folder and `--prune-history N` (N states in memory: deep enough for reorg tests,
no gigabytes on disk), and the folder is removed when the chain goes down.

An archive node (`prune_history=None`) keeps every past state: anvil holds the recent ones in memory and
writes each older one to `STATE_DIR/states` (`--cache-path`), up to `--max-persisted-states`; without that
limit it deletes all but the last few thousand, and the sync of a long world then finds no state for its
early blocks. The folder is removed with the chain.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from indexer.chain.rpc import RpcClient
from indexer.devchain.checkout import CHECKOUT
from indexer.errors import DevchainError, RpcError

CHAIN_ID = 31337
# Block gas limit high enough for the world's batches; gas is free (base fee 0, gas price 0).
GAS_LIMIT = 3_000_000_000
# States an archive node keeps on disk: more than any world's blocks (the small world has about 5,800).
ARCHIVE_STATES = 1_000_000
STATES_DIR = "states"  # the archive node's persisted states, inside the state folder


def anvil_binary() -> str:
    """$ANVIL_BIN, or the anvil shipped by the npm package, or one on PATH."""
    override = os.environ.get("ANVIL_BIN")
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise DevchainError(f"ANVIL_BIN={override} is not an executable file: fix it or unset it")
    candidates = [
        str(CHECKOUT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"),
        str(CHECKOUT / "node_modules/.bin/anvil"),
        shutil.which("anvil"),
    ]
    for c in candidates:
        if c and Path(c).exists() and os.access(c, os.X_OK):
            return c
    raise DevchainError(
        "anvil not found: run `make setup` (needs Node.js and npm to install @foundry-rs/anvil), "
        "or set ANVIL_BIN to an anvil binary"
    )


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AnvilNode:
    """A running anvil process (its own process group) and the folder it lives in."""

    port: int
    state_dir: Path
    process: subprocess.Popen | None = None
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        port: int,
        state_dir: Path,
        *,
        genesis_timestamp: int | None = None,
        prune_history: int | None = 256,
        timeout: float = 30.0,
    ) -> AnvilNode:
        if not 0 < port < 65536:
            raise DevchainError(f"port {port} is not a TCP port (1-65535)")
        if not port_is_free(port):
            raise DevchainError(f"port {port} is in use: stop what listens there or pass another --port")
        binary = anvil_binary()
        state_dir.mkdir(parents=True, exist_ok=True)
        home = state_dir / "home"
        home.mkdir(exist_ok=True)
        args = [
            binary,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--chain-id", str(CHAIN_ID),
            *_history_args(prune_history, state_dir / STATES_DIR),
            "--auto-impersonate",
            "--block-base-fee-per-gas", "0",
            "--gas-limit", str(GAS_LIMIT),
            "--code-size-limit", "100000",
            "--accounts", "4",
            "--no-request-size-limit",
        ]
        if genesis_timestamp is not None:
            args += ["--timestamp", str(genesis_timestamp)]
        env = {**os.environ, "HOME": str(home), "FOUNDRY_DISABLE_NIGHTLY_WARNING": "1"}
        log_file = open(state_dir / "anvil.log", "wb")  # noqa: SIM115 - handed to the child process
        try:
            proc = subprocess.Popen(
                args, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                cwd=state_dir,
            )
        finally:
            log_file.close()
        node = cls(port=port, state_dir=state_dir, process=proc, pid=proc.pid)
        try:
            node.wait_ready(timeout)
        except BaseException:
            node.stop()
            raise
        (state_dir / "anvil.pid").write_text(str(proc.pid))
        return node

    def wait_ready(self, timeout: float) -> None:
        rpc = RpcClient(self.url, timeout=2.0, max_retries=0)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    tail = (self.state_dir / "anvil.log").read_text(errors="replace")[-500:]
                    raise DevchainError(f"anvil exited with code {self.process.returncode}: {tail.strip()}")
                try:
                    if int(rpc.call("eth_chainId"), 16) == CHAIN_ID:
                        return
                except RpcError:
                    time.sleep(0.05)
            raise DevchainError(f"anvil did not answer on {self.url} within {timeout:.0f}s")
        finally:
            rpc.close()

    def stop(self, *, remove_state: bool = False) -> None:
        pid = self.pid
        if pid is not None:
            stop_process_group(pid)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self.process = None
        self.pid = None
        pid_file = self.state_dir / "anvil.pid"
        if pid_file.exists():
            pid_file.unlink()
        # the foundry folder under HOME and an archive's persisted states can grow large: never leave them behind
        shutil.rmtree(self.state_dir / "home", ignore_errors=True)
        shutil.rmtree(self.state_dir / STATES_DIR, ignore_errors=True)
        if remove_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def stop_process_group(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM the process group led by `pid`, then SIGKILL it if it lingers. True if it was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def _history_args(prune_history: int | None, states_dir: Path) -> list[str]:
    """None: keep every state (an archive node; states beyond memory go to disk in `states_dir`).
    0: keep none. N: keep the last N states in memory."""
    if prune_history is None or prune_history < 0:
        return ["--max-persisted-states", str(ARCHIVE_STATES), "--cache-path", str(states_dir)]
    return ["--prune-history", str(prune_history)] if prune_history else ["--prune-history"]
