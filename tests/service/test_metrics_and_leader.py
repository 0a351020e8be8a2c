"""The metrics text format and the leader lock, on both databases."""

import math

import pytest

from indexer.service.leader import Leadership, lock_key
from indexer.service.metrics import Registry
from indexer.store.engine import make_engine, upgrade


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


def test_lock_keys_are_per_chain_and_signed_64_bit():
    keys = {lock_key(c) for c in (1, 10, 31337, 8453)}
    assert len(keys) == 4 and all(-(2**63) <= k < 2**63 for k in keys)


def test_one_leader_at_a_time_and_the_lock_passes_on(db_url):
    upgrade(db_url)
    a_engine, b_engine = make_engine(db_url), make_engine(db_url)
    a, b = Leadership(a_engine, 31337), Leadership(b_engine, 31337)
    other_chain = Leadership(b_engine, 1)
    try:
        assert a.try_acquire() is True
        assert b.try_acquire() is False and not b.held
        assert a.try_acquire() is True and a.still_held()  # holding it again is a no-op
        assert other_chain.try_acquire() is True  # one leader per chain, not per database
        a.release()
        assert not a.held and not a.still_held()
        assert b.try_acquire() is True
        assert a.try_acquire() is False
    finally:
        for x in (a, b, other_chain):
            x.release()
        a_engine.dispose()
        b_engine.dispose()
