"""The service as operators run it (`collateral-indexer run`, a real process) against a dev chain on
SQLite and PostgreSQL: it syncs, runs risk, serves /metrics and /healthz, picks up a new transfer
within two ticks, stops cleanly on SIGTERM, and on PostgreSQL exactly one of two instances writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from indexer.chain.abi import load_abi
from indexer.chain.rpc import RpcClient
from indexer.config import load_settings
from indexer.devchain.anvil import free_port
from indexer.devchain.chain import DevChain, short_timeline, start_devchain
from indexer.devchain.live import produce_blocks
from indexer.offchain import load_files
from indexer.store import models as m
from indexer.store.engine import make_engine, open_store
from tests.service.waiting import head, wait_until
from tests.sync.checks import assert_balances_match_chain, assert_transfers_match_logs, synced_block

FAST = {
    "INDEXER_SERVICE__SYNC_INTERVAL_S": "0.5",
    "INDEXER_SERVICE__RISK_MIN_INTERVAL_S": "0.5",
    "INDEXER_SERVICE__LEADER_POLL_S": "0.5",
    "INDEXER_SERVICE__RECONCILE_INTERVAL_S": "5",
    "INDEXER_SERVICE__STALENESS_INTERVAL_S": "1",
}


@pytest.fixture
def chain(tmp_path) -> Iterator[DevChain]:
    c = start_devchain(port=free_port(), state_dir=tmp_path / "chain", seed=11, scale="small",
                       timeline=short_timeline(4))
    yield c
    c.node.stop(remove_state=True)


class Instance:
    def __init__(self, chain: DevChain, db_url: str, tmp_path, name: str, **env: str) -> None:
        self.port = free_port()
        self.log = open(tmp_path / f"{name}.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "indexer.cli", "run", "--config", str(chain.manifest_path),
             "--database-url", db_url, "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **FAST, **env})

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def health(self) -> dict:
        code, body = self.get("/healthz")
        return json.loads(body) if code else {}

    def metric(self, name: str, labels: str = "") -> float | None:
        code, body = self.get("/metrics")
        for line in body.splitlines():
            if line.startswith(f"collateral_indexer_{name}{labels} ") :
                return float(line.rsplit(" ", 1)[1])
        return None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)




def send_transfer(rpc: RpcClient, token: str, holder: str, to: str, amount: int) -> int:
    """A real transfer from an existing holder (impersonated) to a new wallet, in its own block."""
    fn = load_abi("PlainToken").fn("transfer")
    rpc.call("anvil_impersonateAccount", [holder])
    rpc.call("anvil_setBalance", [holder, hex(10**18)])
    tx = rpc.call("eth_sendTransaction", [{"from": holder, "to": token, "data": fn.encode(to, amount),
                                           "gas": hex(200_000)}])
    rpc.call("evm_mine", [])
    receipt = rpc.call("eth_getTransactionReceipt", [tx])
    assert receipt is not None and receipt["status"] == "0x1", receipt
    return int(receipt["blockNumber"], 16)


def test_service_syncs_runs_risk_serves_metrics_and_sees_a_transfer_within_two_ticks(chain, db_url, tmp_path):
    settings = load_settings(chain.manifest_path, database_url=db_url)
    engine = open_store(settings)
    load_files(engine, settings, accounts=settings.world["accounts_csv"], positions=settings.world["positions_csv"])
    rpc = RpcClient(chain.url, timeout=60)
    svc = Instance(chain, db_url, tmp_path, "svc")
    try:
        wait_until(lambda: svc.health().get("role") == "leader", 60, "the service to take the lead")
        wait_until(lambda: (svc.metric("synced_block") or 0) >= head(rpc), 120, "the backfill")
        wait_until(lambda: (svc.metric("risk_runs_total") or 0) >= 1, 60, "a risk run")
        code, text = svc.get("/metrics")
        assert code == 200
        for name in ("head_lag_blocks", "head_lag_seconds", "last_tick_success_timestamp_seconds", "rpc_requests_total",
                     "rows_written_total", "reorgs_total", "reconcile_mismatches_total", "risk_run_duration_seconds",
                     "wallets", "feed_age_seconds", "leader"):
            assert f"# TYPE collateral_indexer_{name} " in text, name
        assert svc.metric("leader") == 1
        assert svc.metric("head_lag_blocks") == 0
        assert svc.metric("rows_written_total", '{kind="transfers"}') > 1_000
        assert svc.metric("wallets", '{status="healthy"}') > 100
        health = svc.health()
        assert health["role"] == "leader" and health["lag_blocks"] == 0
        assert svc.get("/nope")[0] == 404

        # a transfer to a brand-new wallet in a new block reaches the risk tables within two ticks
        msft = next(t.address for t in settings.tokens if t.symbol == "MSFT")
        with engine.connect() as conn:
            holder, balance = conn.execute(select(m.Balance.wallet, m.Balance.balance_raw).where(
                m.Balance.token == msft).order_by(m.Balance.balance_raw.desc()).limit(1)).one()
        newcomer = "0x" + "be" * 20
        ticks_before = svc.metric("ticks_total")
        block = send_transfer(rpc, msft, holder, newcomer, balance // 2)

        def newcomer_margin():
            with engine.connect() as conn:
                return conn.execute(select(m.RiskWallet.market_value, m.RiskRunRecord.block_number).join(
                    m.RiskRunRecord, m.RiskRunRecord.id == m.RiskWallet.run_id).where(
                    m.RiskWallet.wallet == newcomer).order_by(m.RiskRunRecord.id.desc()).limit(1)).first()

        value, run_block = wait_until(newcomer_margin, 30, "the new wallet in risk_wallets")
        assert run_block >= block and value > 0
        assert svc.metric("ticks_total") - ticks_before <= 2
        with engine.connect() as conn:
            got = conn.execute(select(m.RiskHolding.balance_raw).where(
                m.RiskHolding.wallet == newcomer, m.RiskHolding.token == msft)).scalars().first()
        assert got == balance // 2

        assert svc.stop(signal.SIGTERM) == 0, svc.output()
        assert "stopped; the database is consistent" in svc.output()
        assert assert_balances_match_chain(engine, settings, rpc) > 100
        assert synced_block(engine, settings.chain.chain_id) == head(rpc)
    finally:
        svc.stop(signal.SIGKILL)
        rpc.close()
        engine.dispose()


def test_sigterm_during_a_backfill_tick_leaves_a_consistent_database(chain, db_url, tmp_path):
    settings = load_settings(chain.manifest_path, database_url=db_url)
    rpc = RpcClient(chain.url, timeout=60)
    svc = Instance(chain, db_url, tmp_path, "svc", INDEXER_SERVICE__BLOCKS_PER_TICK="5")
    engine = make_engine(db_url)
    try:
        wait_until(lambda: (svc.metric("ticks_total") or 0) >= 3, 60, "the backfill to start")
        assert svc.stop(signal.SIGTERM, timeout=60) == 0, svc.output()
        partial = synced_block(engine, settings.chain.chain_id)
        assert partial is not None and partial < head(rpc), "the backfill should have been cut short"
        assert assert_balances_match_chain(engine, settings, rpc) > 0
        assert_transfers_match_logs(engine, settings, rpc)
        # a restart resumes from the checkpoint and finishes
        again = Instance(chain, db_url, tmp_path, "again")
        wait_until(lambda: (again.metric("synced_block") or 0) >= head(rpc), 120, "the resumed backfill")
        assert again.stop() == 0
        assert assert_balances_match_chain(engine, settings, rpc) > 100
    finally:
        svc.stop(signal.SIGKILL)
        rpc.close()
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_instances_one_writer_and_a_takeover_after_sigkill(chain, db_url, tmp_path):
    settings = load_settings(chain.manifest_path, database_url=db_url)
    rpc = RpcClient(chain.url, timeout=60)
    first = Instance(chain, db_url, tmp_path, "first")
    wait_until(lambda: first.health().get("role") == "leader", 60, "the first instance to lead")
    second = Instance(chain, db_url, tmp_path, "second")
    engine = make_engine(db_url)
    try:
        wait_until(lambda: second.health().get("role") == "standby", 60, "the second instance to stand by")
        wait_until(lambda: (first.metric("synced_block") or 0) >= head(rpc), 120, "the leader's backfill")
        produce_blocks(rpc, chain.sim, 6, 900)
        wait_until(lambda: (first.metric("synced_block") or 0) >= head(rpc), 60, "the leader to follow")
        assert second.metric("leader") == 0
        assert (second.metric("ticks_total") or 0) == 0 and (second.metric("risk_runs_total") or 0) == 0

        first.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: second.health().get("role") == "leader", 30, "the standby to take over")
        takeover_s = time.monotonic() - killed_at
        assert takeover_s < 15, takeover_s
        produce_blocks(rpc, chain.sim, 6, 900)
        wait_until(lambda: (second.metric("synced_block") or 0) >= head(rpc), 60, "the new leader to follow")
        assert (second.metric("ticks_total") or 0) >= 1
        assert second.stop() == 0, second.output()
        # every fact once: the stored transfers are exactly the chain's logs, balances equal balanceOf
        assert_transfers_match_logs(engine, settings, rpc)
        assert assert_balances_match_chain(engine, settings, rpc) > 100
        with engine.connect() as conn:
            blocks = conn.execute(select(m.Block.number)).scalars().all()
        assert len(blocks) == len(set(blocks))
    finally:
        first.stop(signal.SIGKILL)
        second.stop(signal.SIGKILL)
        rpc.close()
        engine.dispose()
