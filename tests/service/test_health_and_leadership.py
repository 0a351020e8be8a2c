"""The service in this process on a real anvil chain and real databases: /healthz follows the chain's data
(the leader's last successful tick, stored in the lease row) on the leader and on a standby alike; the
read-only `analyst` role can neither take nor block the lead; a leader deposed during a tick writes
nothing; normal events are logged at INFO and a standby's status line says what the leader did."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import ProgrammingError

from indexer.chain.rpc import RpcClient
from indexer.cli import _summary_line
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import free_port
from indexer.devchain.chain import DevChain, short_timeline, start_devchain
from indexer.devchain.live import produce_blocks
from indexer.service.leader import Deposed, Leadership
from indexer.service.service import Service
from indexer.store import models as m
from indexer.store.engine import make_engine, open_store, upgrade
from indexer.store.leases import read_lease
from indexer.store.progress import read_checkpoint
from indexer.sync.startup import prepare
from indexer.sync.tick import sync_tick
from tests.conftest import PG_ADMIN
from tests.service.waiting import head, wait_until
from tests.test_views import ROLES, run_script

FAST = dict(http_port=0, sync_interval_s=0.3, leader_poll_s=0.5, risk_min_interval_s=3600.0,  # a 5 s lease
            reconcile_interval_s=3600.0, staleness_interval_s=1.0, unhealthy_on_stale_feed=False)


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Iterator[DevChain]:
    """Four days of the demo world; tests only add blocks to it."""
    c = start_devchain(port=free_port(), state_dir=tmp_path_factory.mktemp("chain"), seed=11, scale="small",
                       timeline=short_timeline(4))
    yield c
    c.node.stop(remove_state=True)


def settings_for(chain: DevChain, db_url: str, **service) -> Settings:
    s = load_settings(chain.manifest_path, database_url=db_url)
    retry = s.chain.retry.model_copy(update={"patience_s": 1.0, "max_retries": 0, "timeout": 5.0})
    return s.model_copy(update={"chain": s.chain.model_copy(update={"retry": retry}),
                                "service": s.service.model_copy(update={**FAST, **service})})


@contextmanager
def running(settings: Settings, rpc_url: str | None = None) -> Iterator[Service]:
    svc = Service(settings, rpc=RpcClient(rpc_url or settings.chain.rpc_urls[0], timeout=5, max_retries=0))
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


class Outage:
    """An HTTP forwarder to the node that can go down: then it closes every connection unanswered."""

    def __init__(self, upstream: str) -> None:
        self.down = threading.Event()
        outer = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a connection per request: going down takes effect at once

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.down.is_set():
                    return  # no answer; the connection closes
                r = requests.post(upstream, data=body, headers={"Content-Type": "application/json"}, timeout=60)
                self.send_response(r.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Outage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def healthz(svc: Service) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{svc.http.port}/healthz", timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())




def test_an_instance_that_cannot_reach_the_chain_is_unhealthy_and_leaves_the_lease_free(chain, db_url, caplog):
    caplog.set_level(logging.WARNING, logger="indexer")
    settings = settings_for(chain, db_url, max_lag_seconds=600.0)
    cid = settings.chain.chain_id
    with running(settings, f"http://127.0.0.1:{free_port()}") as svc:
        wait_until(lambda: sum("leader job failed" in r.getMessage() for r in caplog.records) >= 2, 30,
                   "the leader job to fail twice")
        code, body = healthz(svc)
        lease = svc.leader.read()
    assert code == 503
    assert body["healthy"] is False and body["role"] == "standby"
    assert body["last_tick"] is None and body["last_tick_age_s"] is None and body["synced_block"] is None
    assert body["leader"] is None and body["instance"] == svc.leader.holder
    assert body["reasons"] == [f"no successful sync tick recorded for chain {cid} and no instance leads it"]
    assert body["max_lag_seconds"] == 600.0 and body["max_lag_blocks"] == settings.service.max_lag_blocks
    # it took the lease at each poll and gave it up when it could not start: another instance may lead
    assert lease.token >= 2 and not lease.live and lease.last_tick_at is None


def test_health_and_status_follow_the_leaders_ticks_on_leader_and_standby(chain, db_url, caplog):
    caplog.set_level(logging.INFO)
    rpc = RpcClient(chain.url, timeout=60)
    top = head(rpc)
    try:
        with Outage(chain.url) as outage, running(settings_for(chain, db_url, max_lag_seconds=3.0), outage.url) as leader:
            wait_until(lambda: leader.health().role == "leader", 30, "the first instance to lead")
            with running(settings_for(chain, db_url, max_lag_seconds=3.0)) as standby:
                wait_until(lambda: healthz(standby)[1].get("synced_block") == top, 90, "the leader's backfill")
                me = leader.leader.holder
                code, lb = healthz(leader)
                scode, sb = healthz(standby)
                assert (code, lb["healthy"], lb["role"], lb["reasons"]) == (200, True, "leader", [])
                assert (scode, sb["healthy"], sb["role"], sb["reasons"]) == (200, True, "standby", [])
                for body in (lb, sb):
                    assert body["leader"] == me and body["last_tick_by"] == me and body["fencing_token"] == 1
                    assert body["synced_block"] == top and body["head_block"] == top and body["lag_blocks"] == 0
                    assert body["lag_seconds"] == 0 and 0 <= body["last_tick_age_s"] < 3.0
                    assert 0 < body["lease_expires_in_s"] <= 5.0 if db_url.startswith("postgresql") \
                        else body["lease_expires_in_s"] is None
                assert sb["instance"] == standby.leader.holder != me
                assert standby.metrics.value("leader") == 0 and (standby.metrics.value("ticks_total") or 0) == 0

                # the status lines: the standby says it stands by and shows the leader's last tick
                line = _summary_line(standby)
                assert re.fullmatch(rf"standby \(leader: {re.escape(me)}\) · leader's last tick \d+ s ago by "
                                    rf"{re.escape(me)}: synced {top:,}, lag 0 blocks( · stale: .*)?", line), line
                assert re.fullmatch(rf"leader · synced {top:,} · lag 0 blocks( · stale: .*)?", _summary_line(leader))

                # the node goes away: nothing syncs, and past the threshold both instances say so
                outage.down.set()
                wait_until(lambda: healthz(standby)[0] == 503, 30, "the standby to turn unhealthy")
                code, lb = healthz(leader)
                scode, sb = healthz(standby)
                assert (code, lb["role"], scode, sb["role"]) == (503, "leader", 503, "standby")
                for body in (lb, sb):
                    assert body["last_tick_age_s"] > 3.0 and body["synced_block"] == top
                    assert re.fullmatch(rf"no successful sync tick for \d+ s > 3 s \(the last by {re.escape(me)}; "
                                        rf"leader now: {re.escape(me)}\)", body["reasons"][0]), body["reasons"]
                assert "· unhealthy: no successful sync tick for" in _summary_line(standby)
                assert standby.health().role == "standby"  # the leader still holds its lease
    finally:
        rpc.close()
    leading = [r for r in caplog.records if "is now the leader for chain" in r.getMessage()]
    assert [(r.levelno, r.name) for r in leading] == [(logging.INFO, "indexer.service.service")]
    took = [r for r in caplog.records if r.getMessage().startswith("took the lease of chain")]
    assert took and all(r.levelno == logging.INFO for r in took)
    warned = [r.getMessage() for r in caplog.records if r.name.startswith("indexer.service") and r.levelno >= logging.WARNING]
    assert warned and all(w.startswith("sync job failed") for w in warned), warned  # only the outage's


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_analyst_role_can_neither_take_nor_block_the_lead(chain, db_url):
    """Before 0007 the lead was a session advisory lock keyed by the chain id, which any role that connects
    can take: an analyst holding it kept the service standing by for good. Now it is the lease row."""
    settings = settings_for(chain, db_url)
    cid = settings.chain.chain_id
    upgrade(db_url)
    run_script(db_url, ROLES)
    login = f"ci_analyst_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{login}" LOGIN IN ROLE analyst'))
    analyst = make_engine(db_url.replace("postgres@", f"{login}@"))
    rpc = RpcClient(chain.url, timeout=60)
    try:
        with analyst.connect() as session:  # the analyst's session stays open for the whole test
            old_key = int.from_bytes(hashlib.sha256(f"collateral-indexer/leader/{cid}".encode()).digest()[:8], "big",
                                     signed=True)
            assert session.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": old_key}).scalar() is True
            session.commit()
            with pytest.raises(ProgrammingError, match="permission denied for table leader_leases"):
                Leadership(analyst, cid).try_acquire()

            with running(settings) as svc:
                wait_until(lambda: svc.health().role == "leader", 30, "the service to lead")
                top = head(rpc)
                wait_until(lambda: svc.health().detail["synced_block"] == top, 90, "the backfill")
                token = svc.leader.token
                assert token == 1
                # while it leads: the analyst can take, renew, end, lock or hold up nothing
                for sql in ("UPDATE leader_leases SET holder = 'analyst', token = token + 1, expires_at = 1e12",
                            "UPDATE leader_leases SET expires_at = 0",
                            "DELETE FROM leader_leases",
                            "SELECT * FROM leader_leases FOR UPDATE",
                            "SELECT * FROM leader_leases FOR SHARE",
                            "LOCK TABLE leader_leases IN SHARE MODE"):
                    with analyst.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
                        conn.execute(text(sql))
                intruder = Leadership(analyst, cid)
                with pytest.raises(ProgrammingError, match="permission denied"):
                    intruder.try_acquire()
                assert not intruder.held
                # it can read who leads
                assert tuple(session.execute(text("SELECT holder, token FROM leader_leases WHERE chain_id = :c"),
                                             {"c": cid}).one()) == (svc.leader.holder, token)
                session.commit()
                # the service goes on leading and syncing under the same lease
                produce_blocks(rpc, chain.sim, 2, 900)
                top = head(rpc)
                wait_until(lambda: svc.health().detail["synced_block"] == top, 30, "the new blocks")
                h = svc.health()
                assert (h.healthy, h.role, h.detail["leader"], h.detail["fencing_token"]) == (
                    True, "leader", svc.leader.holder, token)
                assert svc.metrics.value("leader") == 1 and svc.metrics.value("ticks_total") >= 2
    finally:
        rpc.close()
        analyst.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{login}"'))
        admin.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_leader_deposed_during_its_tick_writes_nothing(chain, db_url):
    """A stalls in the middle of a tick past its lease (1 s here); B takes over; A's commit is refused and
    rolled back: no block, fact or checkpoint of A's tick is stored. B's tick then commits."""
    settings = load_settings(chain.manifest_path, database_url=db_url)
    cid = settings.chain.chain_id
    a_engine = open_store(settings)
    b_engine = make_engine(db_url)
    rpc = RpcClient(chain.url, timeout=60)
    a, b = Leadership(a_engine, cid, poll_s=0.1), Leadership(b_engine, cid, poll_s=0.1)
    a.install_fence()
    b.install_fence()
    try:
        assert a.try_acquire() is True and a.token == 1
        taken: list[bool] = []

        def stall(block: int, logs: int) -> None:
            if not taken:
                time.sleep(1.2)
                taken.append(b.try_acquire())

        with pytest.raises(Deposed, match=r"lost the lease \(its token 1\).*fencing token 2"):
            sync_tick(a_engine, prepare(settings, rpc, max_blocks_per_tick=100_000), on_page=stall)
        assert taken == [True] and b.token == 2 and not a.held
        with b_engine.connect() as conn:
            assert read_checkpoint(conn, cid) is None
            for model in (m.Block, m.Transfer, m.BalanceChange, m.PriceRound, m.TokenState):
                assert conn.execute(select(func.count()).select_from(model)).scalar() == 0, model.__tablename__
        result = sync_tick(b_engine, prepare(settings, rpc, max_blocks_per_tick=100_000))
        assert result is not None and result.transfers > 1_000
        with b_engine.connect() as conn:
            assert read_checkpoint(conn, cid).block_number == result.to_block
            assert conn.execute(select(func.count()).select_from(m.Transfer)).scalar() == result.transfers
        # B's tick outlasted its 1 s lease, and committed: no one had taken the lease over (the service's
        # leader job renews it meanwhile). Renewed, it keeps A out.
        assert b.try_acquire() is True and b.token == 2
        assert a.try_acquire() is False
        lease = b.read()
        assert (lease.holder, lease.token) == (b.holder, 2)
    finally:
        a.release()
        b.release()
        rpc.close()
        a_engine.dispose()
        b_engine.dispose()


def test_the_lease_row_is_what_a_standby_reads(chain, db_url):
    """No leader yet: the standby's /healthz and status line say so, from the (absent) lease row."""
    settings = settings_for(chain, db_url)
    engine = open_store(settings)
    holder = Leadership(make_engine(db_url), settings.chain.chain_id, poll_s=100.0)  # a lease outliving the test
    try:
        assert holder.try_acquire() is True  # an instance that leads but has not ticked yet
        with running(settings) as standby:
            wait_until(lambda: standby.health().detail["leader"] == holder.holder, 10, "the standby to see the lease")
            code, body = healthz(standby)
            assert code == 503 and body["role"] == "standby" and body["last_tick"] is None
            assert body["reasons"] == [f"no successful sync tick recorded for chain {settings.chain.chain_id}"]
            line = _summary_line(standby)
            assert line.startswith(f"standby (leader: {holder.holder}) · no leader's tick recorded · unhealthy: ")
            assert holder.record_tick(synced_block=41, head_block=45, head_lag_seconds=7200) is True
            body = healthz(standby)[1]
            assert (body["synced_block"], body["head_block"], body["lag_blocks"], body["lag_seconds"]) == (41, 45, 4, 7200)
            assert body["healthy"] is True and body["last_tick_by"] == holder.holder
            assert re.search(r"leader's last tick \d+ s ago by [^ ]+: synced 41, lag 4 blocks( · stale: .*)?$",
                             _summary_line(standby))
        with engine.connect() as conn:
            assert read_lease(conn, settings.chain.chain_id).holder == holder.holder
    finally:
        holder.release()
        holder.engine.dispose()
        engine.dispose()
