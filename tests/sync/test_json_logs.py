"""`collateral-indexer --log-format json sync` on a short world: the backfill and the ticks that follow the
head log one JSON object per line on stderr, the ticks with their chain and blocks."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from indexer.chain.rpc import RpcClient


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def _wait_for(q: queue.Queue, seen: list[str], found, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=0.5)
        except queue.Empty:
            continue
        assert line is not None, "the sync ended early:\n" + "\n".join(seen[-20:])
        seen.append(line)
        if found(line):
            return line
    raise AssertionError("not seen in time; last lines:\n" + "\n".join(seen[-20:]))


def test_following_the_head_logs_each_tick_as_json_with_chain_and_block(short_chain, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("INDEXER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "indexer.cli", "--log-format", "json", "-v", "sync", "--config",
         str(short_chain.manifest_path), "--database-url", f"sqlite:///{tmp_path / 'json.sqlite'}", "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
    out, err = queue.Queue(), queue.Queue()
    readers = [threading.Thread(target=_lines, args=(s, q), daemon=True) for s, q in ((proc.stdout, out),
                                                                                       (proc.stderr, err))]
    for r in readers:
        r.start()
    stdout, stderr = [], []
    rpc = RpcClient(short_chain.url)
    try:
        _wait_for(out, stdout, lambda line: line.startswith("following the head"), 180)
        head = int(rpc.call("eth_blockNumber"), 16)
        for _ in range(3):
            rpc.call("evm_mine")
        tick = json.loads(_wait_for(err, stderr, lambda line: '"block": ' in line
                                    and json.loads(line)["block"] == head + 3, 60))
    finally:
        rpc.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        for r in readers:
            r.join(timeout=10)
    while (line := err.get_nowait() if not err.empty() else None) is not None:
        stderr.append(line)
    assert tick["logger"] == "indexer.sync" and tick["level"] == "info"
    assert tick["chain"] == 31337 and head < tick["from_block"] <= tick["block"] == head + 3
    assert (tick["logs"], tick["transfers"], tick["rounds"], tick["reorg_to"]) == (0, 0, 0, None)
    assert tick["event"].startswith(f"tick {tick['from_block']}..{head + 3} logs=0 ")
    docs = [json.loads(line) for line in stderr]  # every line of stderr is one JSON object
    assert len(docs) > 10
    assert all(d["time"].endswith("Z") and d["level"] in {"debug", "info", "warning", "error"} for d in docs)
    assert any(d["logger"] == "indexer.sync" and d["event"].startswith("first backfill") for d in docs)
