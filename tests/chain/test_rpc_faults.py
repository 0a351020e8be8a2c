"""The RPC client against a misbehaving provider: batch-size refusals, rate limits, 5xx, dropped and slow
connections, a URL that is down. Each test compares what the client returns through the fault proxy
with what anvil answers directly, and checks the counter of the fault it met.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import orjson
import pytest

from indexer.chain.classify import batch_limit_of, is_batch_too_large, is_rate_limited
from indexer.chain.rpc import RpcClient
from indexer.devchain.anvil import free_port
from indexer.errors import RpcError

from .faultproxy import BATCH_CAP_WORDINGS, FaultProxy, Faults

N_BLOCKS = 60


@pytest.fixture(scope="module")
def blocks(rpc: RpcClient) -> list[dict]:
    """N_BLOCKS empty blocks on the module's chain, as anvil returns them directly."""
    rpc.call("anvil_mine", [hex(N_BLOCKS)])
    return rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(N_BLOCKS)])


def _calls(n: int = N_BLOCKS) -> list[tuple[str, list]]:
    return [("eth_getBlockByNumber", [hex(i), False]) for i in range(n)]


def _client(url: str | list[str], **kw) -> RpcClient:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("max_retries", 8)
    kw.setdefault("backoff_base", 0.005)
    kw.setdefault("backoff_cap", 0.02)
    return RpcClient(url, **kw)


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback URL nothing listens on: connections are refused."""
    yield f"http://127.0.0.1:{free_port()}"


# ------------------------------------------------------------------------------------------ wordings

BATCH_REFUSALS = [
    # (source, error object, the limit it names)
    ("geth rpc/errors.go, base/node#234", {"code": -32600, "message": "batch too large"}, None),
    ("Erigon, erigontech/erigon#7072", {"code": -32000, "message": "batch limit 100 exceeded: 142 requests given"},
     100),
    ("TRON gateway, fystack/multichain-indexer#19", {"code": -32007, "message": "batch limit exceeded"}, None),
    ("jsonrpsee, paritytech/jsonrpsee#1107",
     {"code": -32010, "message": "The batch request was too large", "data": "Exceeded max limit of 50"}, 50),
    ("Besu, besu-eth/besu#4951",
     {"code": -32602, "message": "Number of requests in batch exceeds --rpc-max-batch-size."}, None),
    ("Acala, AcalaNetwork/bodhi.js#383", {"code": -32600, "message": "Exceeded maximum batch size"}, None),
    ("issue brief", {"code": -32600, "message": "Batch size too large"}, None),
    ("issue brief", {"code": -32600, "message": "request exceeds batch limit"}, None),
]


@pytest.mark.parametrize(("source", "error", "limit"), BATCH_REFUSALS, ids=[b[0] for b in BATCH_REFUSALS])
def test_batch_size_refusals_are_recognised(source, error, limit) -> None:
    assert is_batch_too_large(error), source
    assert batch_limit_of(error) == limit


@pytest.mark.parametrize("error", [
    {"code": 429, "message": "Your app has exceeded its compute units per second capacity."},  # Alchemy
    {"code": -32005, "message": "request rate limited"},
    {"code": -32000, "message": "Too Many Requests"},
])
def test_rate_limit_error_objects_are_recognised(error) -> None:
    assert is_rate_limited(error) and not is_batch_too_large(error)


@pytest.mark.parametrize("error", [
    {"code": 3, "message": "execution reverted: pool over capacity, try again later", "data": "0x08c379a0"},
    {"code": -32000, "message": "execution reverted: rate limit of the vault reached"},
    {"code": -32602, "message": "query exceeds max block range 5000"},
    {"code": -32005, "message": "query returned more than 10000 results"},
])
def test_reverts_and_range_errors_are_not_rate_limits(error) -> None:
    assert not is_rate_limited(error) and not is_batch_too_large(error)


# ------------------------------------------------------------------------------------------ batches


@pytest.mark.parametrize("wording", list(BATCH_CAP_WORDINGS))
def test_a_batch_refused_as_too_large_is_split_and_completed(anvil, blocks, wording) -> None:
    with FaultProxy(anvil.url, Faults(batch_cap=7, batch_wordings=(wording,))) as proxy:
        client = _client(proxy.url)
        assert client.batch(_calls()) == blocks
        assert proxy.injected[f"batch:{wording}"] >= 1
        assert client.stats.batch_splits >= 1 and client.stats.errors["batch_too_large"] >= 1
        assert client.max_batch is not None and client.max_batch <= 7
        if wording in ("erigon", "jsonrpsee"):
            assert client.max_batch == 7, "the limit the refusal names is learned as it is"
        refused = proxy.injected[f"batch:{wording}"]
        assert client.batch(_calls()) == blocks
        assert proxy.injected[f"batch:{wording}"] == refused, "the learned size must spare further refusals"


def test_a_batch_cap_of_one_falls_back_to_single_requests(anvil, blocks) -> None:
    with FaultProxy(anvil.url, Faults(batch_cap=1, batch_wordings=("http413",))) as proxy:
        client = _client(proxy.url)
        assert client.batch(_calls(10)) == blocks[:10]
    assert client.max_batch == 1


def test_a_configured_max_batch_is_respected(anvil, blocks) -> None:
    with FaultProxy(anvil.url) as proxy:
        client = _client(proxy.url, max_batch=16)
        assert client.batch(_calls()) == blocks
    assert proxy.requests == 4  # 60 calls in batches of at most 16


def test_rate_limited_items_in_a_batch_are_sent_again(anvil, blocks) -> None:
    with FaultProxy(anvil.url, Faults(item_429_every=4)) as proxy:
        client = _client(proxy.url)
        assert client.batch(_calls()) == blocks
    assert proxy.injected["item_429"] >= N_BLOCKS // 4
    assert client.stats.errors["rate_limited"] == proxy.injected["item_429"]


def test_node_errors_stay_in_place_in_a_split_batch(anvil, blocks) -> None:
    calls = _calls(20)
    calls[5] = ("eth_noSuchMethod", [])
    calls[13] = ("eth_call", [{"to": "0x" + "00" * 19 + "01", "data": "0x"}, "0xffffffffff"])
    with FaultProxy(anvil.url, Faults(batch_cap=3)) as proxy:
        out = _client(proxy.url).batch(calls, raise_errors=False)
    assert isinstance(out[5], RpcError) and out[5].code == -32601
    assert isinstance(out[13], RpcError)
    assert [o for i, o in enumerate(out) if i not in (5, 13)] == [b for i, b in enumerate(blocks[:20])
                                                                  if i not in (5, 13)]


def test_a_batch_raises_its_first_error_by_default(anvil, blocks) -> None:
    with FaultProxy(anvil.url) as proxy, pytest.raises(RpcError, match="eth_noSuchMethod"):
        _client(proxy.url).batch([*_calls(3), ("eth_noSuchMethod", [])])


# ----------------------------------------------------------------------- rate limits and transport


def test_http_429_honours_retry_after(anvil, blocks) -> None:
    # Backoff alone would wait 5-10 s here; Retry-After: 1 must win.
    with FaultProxy(anvil.url, Faults(rate_429_every=2, retry_after="1")) as proxy:
        client = _client(proxy.url, backoff_base=10.0, backoff_cap=10.0)
        assert client.call("eth_getBlockByNumber", ["0x1", False]) == blocks[1]  # request 1
        started = time.monotonic()
        assert client.call("eth_getBlockByNumber", ["0x2", False]) == blocks[2]  # 429, then request 3
        waited = time.monotonic() - started
    assert 0.9 <= waited < 2.5
    assert client.stats.errors["rate_limited"] == 1 and client.stats.retries == 1


def test_retry_after_as_an_http_date_is_honoured(anvil, blocks) -> None:
    past = "Wed, 21 Oct 2015 07:28:00 GMT"  # RFC 9110's date form; in the past means "now"
    with FaultProxy(anvil.url, Faults(rate_429_every=2, retry_after=past)) as proxy:
        client = _client(proxy.url, backoff_base=10.0, backoff_cap=10.0)
        started = time.monotonic()
        assert client.batch(_calls(5)) == blocks[:5]
        assert client.batch(_calls(5)) == blocks[:5]
    assert time.monotonic() - started < 1.0
    assert client.stats.errors["rate_limited"] == 1


def test_rate_limits_that_never_end_raise_a_rate_limited_error(anvil) -> None:
    with FaultProxy(anvil.url, Faults(rate_429_every=1)) as proxy:
        client = _client(proxy.url, max_retries=2)
        with pytest.raises(RpcError) as info:
            client.call("eth_blockNumber")
    assert info.value.kind == "rate_limited" and info.value.code == 429
    assert proxy.requests == 3 and client.stats.errors["rate_limited"] == 3


@pytest.mark.parametrize(
    ("faults", "kind"),
    [
        (Faults(rate_5xx=0.5, seed=2), "http_5xx"),
        (Faults(drop_every=2), "connection"),
        (Faults(slow_every=3, delay=0.3), "timeout"),
    ],
    ids=["http_5xx", "dropped_connection", "slow_answer"],
)
def test_transport_faults_are_retried_and_counted(anvil, blocks, faults, kind) -> None:
    with FaultProxy(anvil.url, faults) as proxy:
        client = _client(proxy.url, timeout=0.15)
        got = [client.call("eth_getBlockByNumber", [hex(n), False]) for n in range(8)]
        got += client.batch(_calls(8))
    assert got == blocks[:8] + blocks[:8]
    assert client.stats.errors[kind] > 0
    assert client.stats.retries == client.stats.errors[kind]


def test_failover_to_the_second_url_when_the_first_refuses_connections(anvil, blocks, dead_url) -> None:
    with FaultProxy(anvil.url) as proxy:
        client = _client([dead_url, proxy.url], max_retries=0)
        assert client.call("eth_getBlockByNumber", ["0x3", False]) == blocks[3]
        assert client.batch(_calls(10)) == blocks[:10]
        assert client.url == proxy.url, "the client stays on the URL that answers"
    assert client.stats.errors["connection"] == 1 and client.stats.failovers == 1
    assert client.stats.retries == 0, "moving to an untried URL needs no backoff"


def test_failover_when_the_first_url_answers_5xx(anvil, blocks) -> None:
    with FaultProxy(anvil.url, Faults(rate_5xx=1.0)) as broken, FaultProxy(anvil.url) as good:
        client = _client([broken.url, good.url], max_retries=0)
        assert client.batch(_calls(4)) == blocks[:4]
    assert client.stats.errors["http_5xx"] == 1 and client.stats.failovers == 1


def test_every_url_down_raises_a_connection_error_after_the_retries(dead_url) -> None:
    other = f"http://127.0.0.1:{free_port()}"
    client = _client([dead_url, other], max_retries=1)
    with pytest.raises(RpcError) as info:
        client.call("eth_blockNumber")
    assert info.value.kind == "connection"
    assert client.stats.errors["connection"] == 4  # two rounds over two URLs
    assert client.stats.retries == 1


def test_everything_at_once_still_answers_like_anvil(anvil, blocks, dead_url) -> None:
    faults = Faults(batch_cap=9, rate_429_every=5, rate_5xx=0.1, item_429_every=7, drop_every=6,
                    slow_every=4, delay=0.02, seed=9)
    with FaultProxy(anvil.url, faults) as proxy:
        client = _client([dead_url, proxy.url])
        for _ in range(3):
            assert client.batch(_calls()) == blocks
        assert [client.call("eth_getBlockByNumber", [hex(n), False]) for n in range(10)] == blocks[:10]
    kinds = {k.split(":")[0] for k in proxy.injected}
    assert {"batch", "429", "item_429", "drop", "slow"} <= kinds
    assert set(client.stats.errors) >= {"connection", "rate_limited", "batch_too_large"}


# ------------------------------------------------------------------------------------------ raw answers
@pytest.mark.parametrize(
    "faults",
    [Faults(rate_429_every=2), Faults(rate_5xx=0.5, seed=3), Faults(drop_every=2), Faults(slow_every=3, delay=0.3)],
    ids=["429", "5xx", "dropped", "slow"],
)
def test_raw_answers_come_through_faults_as_the_node_sent_them(anvil, blocks, faults) -> None:
    """`call_raw` (eth_getLogs' path) retries the same faults as `call` and hands back the node's bytes."""
    direct = RpcClient(anvil.url, timeout=5.0)
    want = orjson.loads(direct.call_raw("eth_getBlockByNumber", [hex(5), False]))["result"]
    assert want == blocks[5]
    with FaultProxy(anvil.url, faults) as proxy:
        client = _client(proxy.url, timeout=0.2 if faults.slow_every else 5.0)
        got = [orjson.loads(client.call_raw("eth_getBlockByNumber", [hex(n), False]))["result"] for n in range(8)]
    assert got == blocks[:8]
    assert sum(client.stats.errors.values()) >= 1
    direct.close()


def test_a_raw_call_that_the_node_refuses_raises_its_error(anvil) -> None:
    client = RpcClient(anvil.url, timeout=5.0)
    with pytest.raises(RpcError) as exc:
        client.call_raw("eth_noSuchMethod", [])
    assert exc.value.code == -32601 or "not" in str(exc.value).lower()
    client.close()


def test_each_thread_has_its_own_connection(anvil, blocks) -> None:
    client = RpcClient(anvil.url, timeout=5.0)
    results: dict[int, list] = {}

    def read(k: int) -> None:
        results[k] = [client.call("eth_getBlockByNumber", [hex(n), False]) for n in range(k, N_BLOCKS, 4)]

    threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == blocks[k::4] for k in range(4))
    assert len(client._sessions) == 4
    # the threads have ended: a new thread takes one of their sessions, the others are closed
    later = threading.Thread(target=read, args=(0,))
    later.start()
    later.join()
    assert results[0] == blocks[0::4] and len(client._sessions) == 1
    client.close()
    assert client._sessions == {}
