"""The demo keeps what a past run needs, and leaves what it needs to go on.

- An archive node (`start_devchain(archive=True)`) keeps every past state on disk in the chain's folder,
  and removes it with the chain; a world synced once from it values a past block, and that run equals
  the run at the same block of the same world synced while it was built (`start_synced_world`, what
  `collateral-indexer demo` does).
- `collateral-indexer demo` stores a risk run per trading day of the world, writes its configuration file
  beside the database, and that file works with `wallet`, `risk run --at` and `report`. A second demo
  that fails (a port in use, or stopped half-way through its build) leaves the first database as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from indexer.chain.rpc import RpcClient
from indexer.config import load_settings
from indexer.devchain.anvil import ARCHIVE_STATES, STATES_DIR, AnvilNode, free_port
from indexer.devchain.chain import short_timeline, start_devchain
from indexer.devchain.demo import DemoFiles, run_times, start_synced_world
from indexer.devchain.specs import TIMELINE, utc
from indexer.offchain import load_files
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.store.engine import open_store
from indexer.sync.startup import prepare
from indexer.sync.tick import sync

CLI = [sys.executable, "-m", "indexer.cli"]
DAYS = 12  # 576 world blocks: more than the 256 states a pruned node keeps
HOLDING = ("wallet", "token", "balance_raw", "shares", "price", "market_value", "round_id")


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DEMO_SECONDS": ""}, stdin=subprocess.DEVNULL)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def holdings(url: str, run_id: int, columns=HOLDING) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            t = m.RiskHolding.__table__
            return [tuple(r) for r in conn.execute(select(*(t.c[c] for c in columns)).where(t.c.run_id == run_id)
                                                   .order_by(t.c.wallet, t.c.token))]
    finally:
        engine.dispose()


def wallets(url: str, run_id: int) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            t = m.RiskWallet.__table__
            cols = [c for c in t.c if c.name != "run_id"]
            return [tuple(r) for r in conn.execute(select(*cols).where(t.c.run_id == run_id).order_by(t.c.wallet))]
    finally:
        engine.dispose()


def tick_ends(url: str, chain_id: int, symbol: str) -> list[int]:
    """The blocks where the sync read a token's state (for a token with no state events: its ticks' ends)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            address = conn.execute(select(m.Token.address).where(m.Token.chain_id == chain_id,
                                                                 m.Token.symbol == symbol)).scalar_one()
            return list(conn.execute(select(m.TokenState.block_number).where(
                m.TokenState.chain_id == chain_id, m.TokenState.token == address)
                .order_by(m.TokenState.block_number)).scalars())
    finally:
        engine.dispose()


def test_an_archive_node_keeps_every_state_on_disk_and_removes_it_with_the_chain(tmp_path):
    """Past the states anvil holds in memory and past its default limit on disk, the state of the first
    blocks can still be read; the persisted states live in the chain's folder and go with it."""
    node = AnvilNode.start(free_port(), tmp_path / "chain", prune_history=None)
    rpc = RpcClient(node.url, timeout=60)
    try:
        args = " ".join(Path(f"/proc/{node.pid}/cmdline").read_text().split("\0"))
        assert f"--max-persisted-states {ARCHIVE_STATES}" in args
        assert f"--cache-path {tmp_path / 'chain' / STATES_DIR}" in args and "--prune-history" not in args
        sender, receiver = rpc.call("eth_accounts")[:2]
        rpc.call("eth_sendTransaction", [{"from": sender, "to": receiver, "value": hex(10**18)}])  # block 1
        rpc.call("anvil_mine", [hex(4_500)])  # beyond anvil's default of 3,600 states on disk
        assert int(rpc.call("eth_blockNumber"), 16) == 4_501
        assert int(rpc.call("eth_getBalance", [receiver, "0x1"]), 16) == int(
            rpc.call("eth_getBalance", [receiver, "0x0"]), 16) + 10**18
        assert any((tmp_path / "chain" / STATES_DIR).rglob("*.json"))
    finally:
        rpc.close()
        node.stop()
    assert not (tmp_path / "chain" / STATES_DIR).exists() and not (tmp_path / "chain" / "home").exists()


def test_a_run_at_a_past_block_from_an_archive_node_equals_the_followed_world(tmp_path):
    """The same world twice: synced while it is built (the demo's way), and built on an archive node and
    synced once afterwards. The archive's sync finds every state it asks for; a run at a past block
    succeeds on both and values every holding the same, and where both read the tokens' state at that
    block every wallet's numbers are the same too."""
    timeline = short_timeline(DAYS)
    followed_url = f"sqlite:///{tmp_path / 'followed.sqlite'}"
    chain, _ = start_synced_world(port=free_port(), state_dir=tmp_path / "followed", seed=7, timeline=timeline,
                                  database_url=followed_url)
    chain.node.stop(remove_state=True)

    archive = start_devchain(port=free_port(), state_dir=tmp_path / "archive", seed=7, scale="small",
                             timeline=timeline, archive=True)
    archive_url = f"sqlite:///{tmp_path / 'archive.sqlite'}"
    try:
        settings = load_settings(archive.manifest_path, database_url=archive_url)
        cid = settings.chain.chain_id
        ends = tick_ends(followed_url, cid, "USDC")
        past = next(b for b in ends if b > 6 * 48)  # a block of day 6 where the followed sync read every token
        rpc = RpcClient(archive.url, timeout=120)
        engine = open_store(settings)
        try:
            ctx = prepare(settings, rpc)
            sync(engine, ctx, to_block=past)
            sync(engine, ctx)  # to the head: 300 blocks later, the states of the first ones are on disk only
            with engine.connect() as conn:
                issues = conn.execute(select(m.SyncIssue.kind, m.SyncIssue.message)).all()
            assert issues == []  # no historical_state_unavailable: every state read was there
            assert any((tmp_path / "archive" / STATES_DIR).rglob("*.json"))
            book = {k: settings.world[f"{k}_csv"] for k in ("accounts", "positions")}
            load_files(engine, settings, **book)
            other = open_store(load_settings(archive.manifest_path, database_url=followed_url))
            try:
                at = run_times(timeline.start, timeline.end)[6]  # 19:00 UTC of the world's seventh trading day
                runs = {}
                for name, eng in (("archive", engine), ("followed", other)):
                    runs[name] = (run_and_store(eng, cid, "default", block=past),
                                  run_and_store(eng, cid, "default", at=at))
            finally:
                other.dispose()
        finally:
            engine.dispose()
            rpc.close()
    finally:
        archive.node.stop(remove_state=True)
    assert not (tmp_path / "archive").exists()  # the persisted states went with the chain

    (a_past, a_at), (f_past, f_at) = runs["archive"], runs["followed"]
    assert a_past.block_number == f_past.block_number == past and a_at.block_number == f_at.block_number > past
    assert a_past.holdings > 1_000
    assert holdings(archive_url, a_past.run_id) == holdings(followed_url, f_past.run_id)
    assert wallets(archive_url, a_past.run_id) == wallets(followed_url, f_past.run_id)
    assert a_past.collateral_usd == f_past.collateral_usd
    # between two reads of the tokens' state: the same balances, shares, prices and values
    assert holdings(archive_url, a_at.run_id) == holdings(followed_url, f_at.run_id)


@pytest.fixture(scope="module")
def demo_done(tmp_path_factory):
    """One short demo run to its end: the folder it wrote into and what it printed."""
    folder = tmp_path_factory.mktemp("demo")
    port = free_port()
    r = run("demo", "--days", "8", "--seconds", "3", "--port", str(port), "--state-dir", str(folder / "chain"),
            "--database-url", f"sqlite:///{folder / 'demo.sqlite'}")
    return folder, port, r


def test_the_demo_stores_a_run_per_trading_day_and_writes_its_configuration(demo_done):
    folder, port, r = demo_done
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (folder / "demo.sqlite").exists() and (folder / "demo.toml").exists()
    assert not list(folder.glob("demo.building*")) and not (folder / "chain").exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # no node left behind
    settings = load_settings(folder / "demo.toml")
    assert settings.database_url == f"sqlite:///{folder / 'demo.sqlite'}"
    assert "accounts_csv" not in settings.world
    days = run_times(int(settings.world["start"]), int(settings.world["end"]))
    assert len(days) == 6  # 2026-01-02 and 01-05..01-09
    assert f"stored {len(days)} risk runs, one at 19:00 UTC per XNYS trading day" in r.stdout
    assert "not run:" not in r.stdout
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        times = list(conn.execute(select(m.RiskRunRecord.block_timestamp).order_by(m.RiskRunRecord.id)).scalars())
    engine.dispose()
    assert len(times) >= len(days)
    # each daily run values the last block at or before 19:00 UTC (blocks are 30 minutes apart)
    assert all(t - 1_800 < at_ <= t for at_, t in zip(times, days, strict=False))
    tail = r.stdout[r.stdout.index("the demo's configuration:"):]
    commands = [line.strip() for line in tail.splitlines() if line.strip().startswith(".venv/bin/")]
    assert len(commands) == 3, tail
    assert commands[0].startswith(".venv/bin/collateral-indexer wallet 0x")
    assert commands[1].startswith(".venv/bin/collateral-indexer risk run --config")
    assert commands[2].startswith(".venv/bin/collateral-indexer report --config")
    assert all(f"--config {folder / 'demo.toml'}" in c for c in commands)


def test_the_configuration_works_with_wallet_risk_run_at_and_report(demo_done):
    folder, _, r = demo_done
    assert r.returncode == 0
    config = str(folder / "demo.toml")
    tail = r.stdout[r.stdout.index("the demo's configuration:"):]
    wallet = tail.split(" wallet ")[1].split()[0]

    looked = run("wallet", wallet, "--config", config, "--json")
    assert looked.returncode == 0, looked.stderr
    doc = json.loads(looked.stdout)
    assert [w["wallet"].lower() for w in doc["wallets"]] == [wallet.lower()]

    past = run("risk", "run", "--config", config, "--at", "2026-01-05T19:00Z", "--json")  # the world's 2nd trading day
    assert past.returncode == 0, past.stderr
    summary = json.loads(past.stdout)
    assert summary["block_timestamp"] == utc(2026, 1, 5, 19)
    assert summary["holdings"] > 1_000 and summary["collateral_usd"] > 0
    looked_then = run("wallet", wallet, "--config", config, "--at", "2026-01-05T19:00Z", "--json")
    assert looked_then.returncode == 0, looked_then.stderr

    report = run("report", "--config", config, "--out", str(folder / "report"))
    assert report.returncode == 0, report.stderr
    page = (folder / "report" / "index.html").read_text()
    assert "Collateral over time" in page


def test_a_failed_second_demo_leaves_the_first_database_as_it_was(demo_done):
    folder, _, r = demo_done
    assert r.returncode == 0
    before = digest(folder / "demo.sqlite"), digest(folder / "demo.toml")
    args = ["--days", "8", "--state-dir", str(folder / "chain2"), "--database-url", f"sqlite:///{folder / 'demo.sqlite'}"]

    with socket.socket() as s:  # the port is taken
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        failed = run("demo", "--port", str(port), *args)
    assert failed.returncode == 1
    assert f"port {port} is in use" in failed.stderr and "is left as it was" in failed.stderr
    assert (digest(folder / "demo.sqlite"), digest(folder / "demo.toml")) == before
    assert not list(folder.glob("demo.building*"))

    # stopped half-way through its build, after it began writing the new database
    proc = subprocess.Popen([*CLI, "demo", "--port", str(free_port()), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "DEMO_SECONDS": ""},
                            stdin=subprocess.DEVNULL)
    try:
        for line in proc.stdout:
            if "world blocks:" in line:
                break
        assert list(folder.glob("demo.building*"))  # the new one is being written beside the old one
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "is left as it was" in err
    assert (digest(folder / "demo.sqlite"), digest(folder / "demo.toml")) == before
    assert not list(folder.glob("demo.building*")) and not (folder / "chain2").exists()


def test_demo_files_build_beside_the_database_and_replace_it_in_one_rename(tmp_path):
    files = DemoFiles.for_url(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    assert files.building_url == f"sqlite:///{tmp_path / 'demo.building.sqlite'}"
    assert files.config == tmp_path / "demo.toml"
    old = create_engine(files.database_url)
    with old.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    old.dispose()
    new = create_engine(files.building_url)
    with new.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    new.dispose()
    files.promote()
    final = create_engine(files.database_url)
    with final.connect() as conn:
        assert conn.exec_driver_sql("SELECT v FROM t").scalars().all() == [2]
    final.dispose()
    assert not list(tmp_path.glob("demo.building*"))
    other = DemoFiles.for_url("postgresql+psycopg://postgres@127.0.0.1:5432/demo")
    assert not other.separate and other.building_url == other.database_url


def test_the_demo_times_are_19_utc_on_trading_days():
    times = run_times(TIMELINE.start, TIMELINE.end)
    stamps = [time.strftime("%Y-%m-%d %H:%M %a", time.gmtime(t)) for t in times]
    assert stamps[0] == "2026-01-02 19:00 Fri" and "2026-03-11 19:00 Wed" in stamps
    assert "2026-01-19 19:00 Mon" not in stamps and "2026-04-03 19:00 Fri" not in stamps  # MLK day, Good Friday
    assert all(s.endswith(("Mon", "Tue", "Wed", "Thu", "Fri")) and " 19:00 " in s for s in stamps)
    assert 75 <= len(times) <= 85
