"""The dev chain's command line: bad input gets one clear line and leaves nothing running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import tomli_w

from indexer.chain.rpc import RpcClient
from indexer.config import load_settings
from indexer.devchain.anvil import free_port

CLI = [sys.executable, "-m", "indexer.cli"]


def run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def anvil_running_on(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_seed_that_is_not_a_number_is_refused(tmp_path):
    port = free_port()
    r = run("devchain", "up", "--port", str(port), "--seed", "seven", "--state-dir", str(tmp_path))
    assert r.returncode == 1
    assert "seed 'seven' is not a number" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not anvil_running_on(port)


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("devchain", "up", "--port", str(port), "--state-dir", str(tmp_path))
    assert r.returncode == 1
    assert f"port {port} is in use" in r.stderr
    assert not (tmp_path / "anvil.pid").exists()


def test_a_missing_anvil_binary_is_named(tmp_path):
    port = free_port()
    r = run("devchain", "up", "--port", str(port), "--state-dir", str(tmp_path),
            env={"ANVIL_BIN": str(tmp_path / "no-such-anvil")})
    assert r.returncode == 1
    assert "ANVIL_BIN=" in r.stderr and "not an executable" in r.stderr
    assert not anvil_running_on(port)


def test_an_unreadable_manifest_is_named(tmp_path):
    missing = tmp_path / "nope.toml"
    r = run("devchain", "show", "--manifest", str(missing))
    assert r.returncode == 1 and f"{missing} does not exist" in r.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[chain\nchain_id = ")
    r = run("devchain", "show", "--manifest", str(broken))
    assert r.returncode == 1 and "not valid TOML" in r.stderr


def test_up_show_down_leaves_no_process_behind(tmp_path):
    port = free_port()
    state = tmp_path / "chain"
    r = run("devchain", "up", "--port", str(port), "--state-dir", str(state), "--days", "3", "--live",
            "--interval", "0.2")
    assert r.returncode == 0, r.stderr
    pids = [int((state / f).read_text()) for f in ("anvil.pid", "live.pid")]
    settings = load_settings(state / "manifest.toml")
    assert settings.chain.rpc_urls == [f"http://127.0.0.1:{port}"]
    rpc = RpcClient(settings.chain.rpc_urls[0])
    head = int(rpc.call("eth_blockNumber"), 16)
    assert head >= settings.world["head_block"]
    shown = run("devchain", "show", "--manifest", str(state / "manifest.toml"))
    assert shown.returncode == 0, shown.stderr
    assert "TSLAx" in shown.stdout and "BTC/USD" in shown.stdout
    r = run("devchain", "down", "--state-dir", str(state))
    assert r.returncode == 0 and "anvil" in r.stdout and "live producer" in r.stdout
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not anvil_running_on(port)
    assert not (state / "home").exists()


def test_an_inconsistent_manifest_names_the_field(tmp_path):
    data = {
        "chain": {"chain_id": 31337, "rpc_url": "http://127.0.0.1:1", "deployment_block": 1},
        "tokens": [{"symbol": "X", "address": "0x" + "11" * 20, "decimals": 18, "asset_class": "single_stock",
                    "accounting": "rebasing_shares", "feed": "X/USD"}],
        "feeds": [],
    }
    path = tmp_path / "m.toml"
    path.write_text(tomli_w.dumps(data))
    r = run("devchain", "show", "--manifest", str(path))
    assert r.returncode == 1
    assert "tokens[X].feed: no feed named 'X/USD'" in r.stderr
