"""The metrics text format, and the leader lease with its fence, on both databases."""

import math
import time

import pytest
from sqlalchemy import text

from indexer.service.leader import Deposed, Leadership
from indexer.service.metrics import Registry
from indexer.store.engine import make_engine, upgrade
from indexer.store.leases import read_lease
from indexer.store.progress import read_checkpoint, write_checkpoint


def test_prometheus_text_format():
    r = Registry(prefix="x_")
    r.counter("rpc_errors_total", "RPC errors by kind")
    r.gauge("lag", "Head lag")
    r.gauge("age", "Feed age")
    r.inc("rpc_errors_total", kind="timeout")
    r.inc("rpc_errors_total", 2, kind="timeout")
    r.inc("rpc_errors_total", kind='say "429"\n')
    r.set("lag", 3)
    r.set("age", float("nan"), feed="AAPL/USD")
    r.set("age", 1.5, feed="BTC/USD")
    assert r.render() == (
        "# HELP x_rpc_errors_total RPC errors by kind\n"
        "# TYPE x_rpc_errors_total counter\n"
        'x_rpc_errors_total{kind="say \\"429\\"\\n"} 1\n'
        'x_rpc_errors_total{kind="timeout"} 3\n'
        "# HELP x_lag Head lag\n# TYPE x_lag gauge\nx_lag 3\n"
        "# HELP x_age Feed age\n# TYPE x_age gauge\n"
        'x_age{feed="AAPL/USD"} NaN\nx_age{feed="BTC/USD"} 1.5\n'
    )
    assert r.value("rpc_errors_total", kind="timeout") == 3
    assert math.isnan(r.value("age", feed="AAPL/USD"))
    with pytest.raises(ValueError, match="cannot decrease"):
        r.inc("rpc_errors_total", -1, kind="timeout")


def _lease(engine, chain_id: int = 31337):
    with engine.connect() as conn:
        return read_lease(conn, chain_id)


def test_one_leader_at_a_time_and_the_lease_passes_on_with_a_new_token(db_url):
    upgrade(db_url)
    a_engine, b_engine = make_engine(db_url), make_engine(db_url)
    a, b = Leadership(a_engine, 31337, poll_s=0.1), Leadership(b_engine, 31337, poll_s=0.1)  # PostgreSQL: a 1 s lease
    other_chain = Leadership(b_engine, 1)
    try:
        assert a.try_acquire() is True and a.token == 1
        assert b.try_acquire() is False and not b.held
        assert a.try_acquire() is True and a.still_held() and a.token == 1  # renewing keeps the token
        assert other_chain.try_acquire() is True and other_chain.token == 1  # one leader per chain, not per database
        lease = _lease(a_engine)
        assert (lease.holder, lease.token, lease.live) == (a.holder, 1, True)
        if a.sqlite:
            assert lease.expires_at is None  # held through the file lock
        else:
            assert 0.5 < lease.expires_at - lease.now <= 1.0
        a.release()
        assert not a.held and not a.still_held() and not _lease(a_engine).live
        assert b.try_acquire() is True and b.token == 2  # a takeover: the token moves on
        assert a.try_acquire() is False
        assert not a.still_held()
        if not b.sqlite:  # a leader that stops renewing (paused, cut off) loses the lease when it expires
            time.sleep(1.1)
            assert a.try_acquire() is True and a.token == 3
            assert b.still_held() is False and not b.held
            assert b.try_acquire() is False  # the new lease is live
            assert _lease(a_engine).holder == a.holder
    finally:
        for x in (a, b, other_chain):
            x.release()
        a_engine.dispose()
        b_engine.dispose()


def test_a_transaction_of_a_leader_whose_lease_was_taken_over_is_refused(db_url):
    """The fence: every commit on the leader's engine checks the lease in that transaction."""
    upgrade(db_url)
    engine, other = make_engine(db_url), make_engine(db_url)
    leader = Leadership(engine, 31337)
    leader.install_fence()
    try:
        with pytest.raises(Deposed, match="does not lead"), engine.begin() as conn:  # no lease yet: nothing written
            write_checkpoint(conn, 31337, 5, "0x" + "05" * 32)
        assert leader.try_acquire() is True
        with engine.begin() as conn:
            write_checkpoint(conn, 31337, 7, "0x" + "07" * 32)
        # another writer takes the lease (on PostgreSQL a standby after the lease expired; here the row itself)
        with other.begin() as conn:
            conn.execute(text("UPDATE leader_leases SET holder = 'elsewhere', token = token + 1 WHERE chain_id = 31337"))
        refused = r"lost the lease \(its token 1\).*held by elsewhere \(fencing token 2\)"
        with pytest.raises(Deposed, match=refused), engine.begin() as conn:
            write_checkpoint(conn, 31337, 8, "0x" + "08" * 32)
        assert not leader.held
        with other.connect() as conn:
            cp = read_checkpoint(conn, 31337)
        assert (cp.block_number, cp.block_hash) == (7, "0x" + "07" * 32)
        assert leader.record_tick(synced_block=8, head_block=8, head_lag_seconds=0) is False
        assert _lease(other).last_tick_at is None
    finally:
        leader.release()
        engine.dispose()
        other.dispose()
