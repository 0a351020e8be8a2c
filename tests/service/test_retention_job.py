"""The service's retention job on a synced world, on SQLite and PostgreSQL: only the leader thins runs, each
batch waits for the writer lock and commits through the fence (a leader deposed in the middle of a pass
deletes nothing more), and the scheduled job thins stored runs by itself."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import delete, func, select, text, update

from indexer.chain.rpc import RpcClient
from indexer.config import RetentionConfig
from indexer.runs.job import run_and_store
from indexer.service.service import Service
from indexer.store import models as m
from indexer.store.engine import make_engine
from indexer.store.progress import synced_head
from indexer.store.retention import NOTE_PREFIX
from tests.conftest import DATABASES
from tests.runs.worlds import POLICY, synced_world

DAY, HOUR = 86_400, 3_600
ONLY_THE_NEWEST = RetentionConfig(keep_last=1, hourly_hours=0, hourly_wallets_days=0, daily_days=0,
                                  daily_wallets_days=0, batch_rows=500)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with synced_world(tmp_path_factory.mktemp("retention-job"), 6) as (chain, _rpc, stores):
        yield chain, {s.kind: s for s in stores}


def _service(chain, store, **retention) -> Service:
    settings = store.settings.model_copy(update={
        "retention": ONLY_THE_NEWEST.model_copy(update=retention),
        "service": store.settings.service.model_copy(update={
            "http_port": 0, "sync_interval_s": 0.5, "leader_poll_s": 0.5, "reconcile_interval_s": 3600.0,
            "staleness_interval_s": 3600.0, "unhealthy_on_stale_feed": False})})
    return Service(settings, rpc=RpcClient(chain.url, timeout=30, max_retries=0))


def _relabel(engine, cid: int, run_id: int, ago: int) -> None:
    """Say run `run_id` valued the block `ago` seconds before the synced head (half an hour a block). This
    world's node kept the token state of its head block only, so real runs value the head; the policy reads
    a run's id, block, block time and orphaned_at."""
    with engine.begin() as conn:
        head_block, head = synced_head(conn, cid)
        conn.execute(update(m.RiskRunRecord).where(m.RiskRunRecord.id == run_id).values(
            block_number=head_block - ago // 1_800, block_timestamp=head - ago))


def _fresh_runs(store, agos: list[int]) -> list[int]:
    """Delete every stored run, then store real runs standing for the blocks `agos` seconds before the head."""
    engine, cid = store.engine, store.chain_id
    with engine.begin() as conn:
        for model in (m.RiskHolding, m.RiskPosition, m.RiskWallet, m.RiskRunRecord):
            conn.execute(delete(model))
    ids = [run_and_store(engine, cid, POLICY).run_id for _ in agos]
    for run_id, ago in zip(ids, agos, strict=True):
        _relabel(engine, cid, run_id, ago)
    return ids


def _holding(engine) -> dict[str, set[int]]:
    with engine.connect() as conn:
        return {model.__tablename__: set(conn.execute(select(model.run_id).distinct()).scalars())
                for model in (m.RiskHolding, m.RiskPosition, m.RiskWallet)}


class Gate:
    """The writer lock, telling when someone waits for it."""

    def __init__(self) -> None:
        self.inner = threading.Lock()
        self.waiting = threading.Event()

    def __enter__(self):
        self.waiting.set()
        self.inner.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.inner.release()


@pytest.mark.parametrize("kind", DATABASES)
def test_only_the_leader_thins_each_batch_under_the_writer_lock_and_fenced(world, kind):
    chain, stores = world
    store = stores[kind]
    old, older, newest = _fresh_runs(store, [2 * DAY, 5 * HOUR, 0])
    svc = _service(chain, store)
    other = make_engine(store.settings.database_url)
    try:
        svc.retention_job()  # a standby: nothing
        assert _holding(store.engine)["risk_holdings"] == {old, older, newest}
        svc.elect()
        assert svc.ctx is not None

        # the writer lock is taken: the pass waits for it before its first delete
        gate = Gate()
        gate.inner.acquire()
        svc._writer = gate
        job = threading.Thread(target=svc._job("retention", svc.retention_job))
        job.start()
        assert gate.waiting.wait(30)
        time.sleep(0.2)
        assert _holding(store.engine)["risk_holdings"] == {old, older, newest}
        gate.inner.release()
        job.join(60)
        assert not job.is_alive()
        assert _holding(store.engine) == {t: {newest} for t in ("risk_holdings", "risk_positions", "risk_wallets")}
        assert svc.metrics.value("retention_runs_thinned_total") == 2
        assert svc.metrics.value("retention_rows_deleted_total", table="risk_holdings") > 2 * ONLY_THE_NEWEST.batch_rows

        # two more runs stored by the leader (fenced); then, while the next pass waits for the lock, another
        # instance takes the lease over: the pass's first commit is refused, and nothing more is deleted
        cid = store.chain_id
        later = [run_and_store(svc.engine, cid, POLICY).run_id for _ in range(2)]
        _relabel(other, cid, later[0], HOUR)
        before = _holding(store.engine)
        assert before["risk_holdings"] == {newest, *later}
        gate = Gate()
        gate.inner.acquire()
        svc._writer = gate
        job = threading.Thread(target=svc._job("retention", svc.retention_job))
        job.start()
        assert gate.waiting.wait(30)
        with other.begin() as c:
            c.execute(text("UPDATE leader_leases SET holder = 'elsewhere', token = token + 1 WHERE chain_id = :c"),
                      {"c": cid})
        gate.inner.release()
        job.join(60)
        assert not job.is_alive()
        assert svc.metrics.value("job_errors_total", job="retention", kind="deposed") == 1
        assert svc.ctx is None  # it stands by
        assert _holding(store.engine) == before
        with other.connect() as c:
            notes = c.execute(select(m.RiskRunRecord.id, m.RiskRunRecord.notes)).all()
        assert {i for i, n in notes if NOTE_PREFIX in n} == {old, older}
    finally:
        svc.stop()
        other.dispose()


@pytest.mark.parametrize("kind", DATABASES)
def test_the_scheduled_job_thins_stored_runs(world, kind):
    chain, stores = world
    store = stores[kind]
    old, older, recent = _fresh_runs(store, [DAY, 2 * HOUR, HOUR])
    svc = _service(chain, store, interval_s=0.5)
    svc.start()
    try:
        assert svc.scheduler.get_job("retention").trigger.interval.total_seconds() == 0.5
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            held = _holding(store.engine)
            if not ({old, older} & (held["risk_holdings"] | held["risk_wallets"])):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the retention job did not thin runs {old} and {older}: {held}")
        assert svc.metrics.value("retention_runs_thinned_total") >= 2
    finally:
        svc.stop()
    with store.engine.connect() as conn:
        ids = set(conn.execute(select(m.RiskRunRecord.id)).scalars())
        assert {old, older, recent} <= ids  # the rows stay
        assert conn.execute(select(func.count()).select_from(m.RiskHolding)
                            .where(m.RiskHolding.run_id.in_([old, older]))).scalar() == 0


def test_no_retention_job_when_disabled(world):
    chain, stores = world
    svc = _service(chain, stores["sqlite"], enabled=False)
    svc.start()
    try:
        assert svc.scheduler.get_job("retention") is None
        assert svc.scheduler.get_job("sync") is not None
    finally:
        svc.stop()
