"""The pure layers of the RPC client: provider wordings and HTTP answers classified, the retry policy's
delays, and `[chain.retry]` read from a configuration. No node and no network.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import tomli_w
from pydantic import ValidationError

from indexer.chain import classify
from indexer.chain.classify import (
    WORDINGS,
    Accept,
    BatchTooLarge,
    Fail,
    Retry,
    classify_http,
    error_kind,
    is_batch_too_large,
    is_rate_limited,
    is_state_pruned,
    is_state_unavailable,
    parse_retry_after,
)
from indexer.chain.retry import RetryPolicy
from indexer.chain.rpc import RpcClient
from indexer.config import Settings, load_settings
from indexer.errors import ConfigError, RpcError

URL = "http://127.0.0.1:1"

# ------------------------------------------------------------------------------------------ wordings


@pytest.mark.parametrize("wording", WORDINGS, ids=[f"{w.kind}:{w.example[:40]}" for w in WORDINGS])
def test_each_wording_classifies_as_its_kind(wording: classify.Wording) -> None:
    error = wording.example_error()
    if isinstance(wording.pattern, int):
        assert wording.matches_code(error["code"]), wording.source
    else:
        text = f"{error['message']} {error.get('data', '')}"
        assert wording.matches_text(text), wording.source
    assert error_kind(error, in_batch=True) == wording.kind, wording.source


@pytest.mark.parametrize("wording", classify.wordings("state_unavailable"),
                         ids=lambda w: w.example[:40])
def test_state_unavailable_wordings_are_recognised_in_an_rpc_error(wording: classify.Wording) -> None:
    assert is_state_unavailable(RpcError(f"eth_call: {wording.example}", code=wording.code, kind="node_error"))


@pytest.mark.parametrize(("text", "pruned"), [
    ("BlockOutOfRangeError: block height is 728 but requested was 700", True),  # anvil --prune-history 16
    ("BlockOutOfRangeError: block height is 698 but requested was 700", False),  # anvil behind: lag
    ("missing trie node 9d3f2a (path )", True),
    ("state at block #17000000 is pruned", True),
    ("historical state 9d3f is not available", True),
    ("World state not available for block number (block hash): 17000000 (0x9d)", True),
    ("header not found", False),  # a lagging backend, or a block a node does not hold: the recency rule decides
    ("state not available", False),
])
def test_pruned_state_is_told_from_a_block_still_to_come(text: str, pruned: bool) -> None:
    """A node keeping fewer states than the sync's recent window (anvil --prune-history 16) says plainly
    that a recent block's state is gone: the sync must not wait for it as for a lagging backend."""
    assert is_state_pruned(RpcError(f"eth_call: {text}", kind="node_error")) is pruned


def test_every_kind_but_node_error_has_wordings_with_a_source() -> None:
    kinds = {w.kind for w in WORDINGS}
    assert kinds == {"reverted", "rate_limited", "response_too_large", "batch_too_large", "state_unavailable",
                     "transient", "block_unavailable"}
    assert all(w.example and w.source for w in WORDINGS)


@pytest.mark.parametrize("error", [
    {"code": 3, "message": "execution reverted: pool over capacity, try again later", "data": "0x08c379a0"},
    {"code": -32000, "message": "execution reverted: rate limit of the vault reached"},
    {"code": 3, "message": "Too Many Requests"},  # a revert code, whatever the reason says
    {"code": -32602, "message": "query exceeds max block range 5000"},
    {"code": -32602, "message": "invalid params: try again with a smaller range"},  # a final code
    {"code": -32600, "message": "block range is too wide"},
    {"code": -32005, "message": "query returned more than 10000 results"},
    {"code": -32614, "message": "eth_getLogs is limited to a 10,000 range"},
    {"code": -32601, "message": "the method eth_foo does not exist, rate limit or not"},
    {"code": -32000, "data": "too many requests"},  # the wording counts in the message only
])
def test_reverts_and_range_errors_are_not_rate_limits(error: dict) -> None:
    assert not is_rate_limited(error)
    assert error_kind(error) != "rate_limited"


def test_code_429_is_a_rate_limit_even_with_revert_in_its_message() -> None:
    assert error_kind({"code": 429, "message": "reverted by the gateway"}) == "rate_limited"


def test_a_batch_refusal_counts_only_for_a_batch() -> None:
    geth = {"code": -32600, "message": "batch too large"}
    assert error_kind(geth, in_batch=True) == "batch_too_large"
    assert error_kind(geth) == "node_error"
    assert is_batch_too_large({"code": -32010, "message": "too large", "data": "the batch request was too large"})


def test_the_kind_a_returned_error_carries_is_reverted_or_node_error() -> None:
    assert classify.call_error_kind({"code": 3, "message": "execution reverted"}) == "reverted"
    assert classify.call_error_kind({"code": -32000, "data": "execution reverted"}) == "reverted"  # no message
    assert classify.call_error_kind({"code": -32000, "message": "missing trie node 00 (path )"}) == "node_error"
    assert error_kind({"code": -32000, "message": "missing trie node 00 (path )"}) == "state_unavailable"


@pytest.mark.parametrize(("error", "limit"), [
    ({"message": "batch limit 100 exceeded: 142 requests given"}, 100),
    ({"message": "The batch request was too large", "data": "Exceeded max limit of 50"}, 50),
    ({"message": "batch too large"}, None),
])
def test_the_limit_a_refusal_names_is_read(error: dict, limit: int | None) -> None:
    assert classify.batch_limit_of(error) == limit


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = "Wed, 21 Oct 2015 07:28:00 GMT"  # 1445412480
    assert parse_retry_after(date, now=1445412470.0) == 10.0
    assert parse_retry_after(date, now=1445412490.0) == 0.0  # in the past means "now"


# ------------------------------------------------------------------------------------ HTTP answers

OK = {"jsonrpc": "2.0", "id": 1, "result": "0x1"}


def _verdict(status: int, answer, content: bytes = b"", *, is_batch: bool = False, retry_after=None):
    return classify_http(status, answer, content, is_batch=is_batch, url=URL, retry_after=retry_after)


def test_http_answers_are_classified() -> None:
    assert _verdict(200, OK) == Accept(OK)
    v = _verdict(429, None, retry_after="3")
    assert isinstance(v, Retry) and (v.kind, v.failover, v.retry_after, v.error.code) == ("rate_limited", False, 3.0, 429)
    v = _verdict(503, {"error": {"message": "upstream down"}})
    assert isinstance(v, Retry) and v.failover and v.kind == "http_5xx" and "upstream down" in str(v.error)
    v = _verdict(404, None, b"<html>not found</html>")
    assert isinstance(v, Retry) and v.failover and v.kind == "http_4xx"
    v = _verdict(200, None, b"<html>")
    assert isinstance(v, Retry) and not v.failover and v.kind == "bad_response"
    v = _verdict(400, {"detail": "bad key"})
    assert isinstance(v, Fail) and v.kind == "http_4xx" and v.error.code == 400


def test_http_413_is_a_batch_refusal_unless_it_carries_a_call_error() -> None:
    assert _verdict(413, None, b"batch limit 8 exceeded", is_batch=True) == BatchTooLarge(f"HTTP 413 from {URL}", 8)
    v = _verdict(413, None, b"Request Entity Too Large")
    assert isinstance(v, Fail) and v.kind == "too_large"
    quicknode = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32614, "message": "eth_getLogs is limited to a 10,000 range"}}
    assert _verdict(413, quicknode) == Accept(quicknode)


def test_error_objects_in_http_answers() -> None:
    erigon = {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": "batch limit 5 exceeded: 9 requests given"}}
    assert _verdict(200, erigon, is_batch=True) == BatchTooLarge("batch limit 5 exceeded: 9 requests given", 5)
    assert _verdict(200, erigon) == Accept(erigon)  # a single call: the node's error for the caller
    limited = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "daily request count exceeded, request rate limited"}}
    v = _verdict(200, limited)
    assert isinstance(v, Retry) and not v.failover and v.kind == "rate_limited" and v.retry_after is None
    reverted = {"jsonrpc": "2.0", "id": 1, "error": {"code": 3, "message": "execution reverted: try again"}}
    assert _verdict(200, reverted) == Accept(reverted)


def test_no_answer_at_all_fails_over() -> None:
    v = classify.transport_failure("timeout", f"{URL}: timed out after 1.0s")
    assert v.failover and v.kind == "timeout" and v.retry_after is None


# ------------------------------------------------------------------------------------ retry policy


def test_the_policy_defaults() -> None:
    p = RetryPolicy()
    assert (p.timeout, p.max_retries, p.backoff_base, p.backoff_cap, p.retry_after_cap, p.max_batch) == (
        30.0, 5, 0.25, 8.0, 60.0, None)


@pytest.mark.parametrize("attempt", range(12))
def test_backoff_is_exponential_capped_and_jittered_in_its_upper_half(attempt: int) -> None:
    p = RetryPolicy(backoff_base=0.25, backoff_cap=8.0)
    ceiling = min(8.0, 0.25 * 2**attempt)
    rng = random.Random(attempt)
    delays = [p.delay(attempt, rng=rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 4, "the delay is drawn, not fixed"
    assert p.delay(attempt, rng=random.Random(7)) == p.delay(attempt, rng=random.Random(7))


class _NoRandom:
    def uniform(self, a: float, b: float) -> float:
        raise AssertionError("a Retry-After wait has no jitter")


def test_retry_after_is_waited_exactly_and_capped() -> None:
    p = RetryPolicy(retry_after_cap=60.0, backoff_base=10.0)
    assert p.delay(0, 1.5, rng=_NoRandom()) == 1.5  # type: ignore[arg-type]
    assert p.delay(3, 0.0, rng=_NoRandom()) == 0.0  # type: ignore[arg-type]
    assert p.delay(0, 3600.0, rng=_NoRandom()) == 60.0  # type: ignore[arg-type]


@pytest.mark.parametrize("max_batch", [0, -1])
def test_max_batch_must_be_at_least_one(max_batch: int) -> None:
    with pytest.raises(ValidationError, match="max_batch"):
        RetryPolicy(max_batch=max_batch)
    with pytest.raises(ValueError):
        RpcClient(URL, max_batch=max_batch)
    assert RetryPolicy(max_batch=1).max_batch == 1


def test_the_policy_is_a_frozen_value_with_no_unknown_fields() -> None:
    p = RetryPolicy(max_retries=2)
    with pytest.raises(ValidationError):
        p.max_retries = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="retries"):
        RetryPolicy(retries=2)  # type: ignore[call-arg]
    assert p == RetryPolicy(max_retries=2) and hash(p) == hash(RetryPolicy(max_retries=2))


def test_the_client_takes_a_policy_and_field_overrides() -> None:
    client = RpcClient(URL, timeout=3, max_retries=0, max_batch=16, backoff_base=0.01)
    assert (client.timeout, client.max_retries, client.max_batch, client.backoff_base) == (3.0, 0, 16, 0.01)
    assert client.policy == RetryPolicy(timeout=3, max_retries=0, max_batch=16, backoff_base=0.01)
    policy = RetryPolicy(timeout=9.0, max_batch=4)
    assert RpcClient(URL, policy=policy).policy is policy
    both = RpcClient(URL, policy=policy, max_retries=1)
    assert (both.timeout, both.max_retries, both.max_batch) == (9.0, 1, 4)
    assert RpcClient(URL).policy == RetryPolicy()
    with pytest.raises(TypeError, match="retries"):
        RpcClient(URL, retries=3)
    with pytest.raises(ValueError, match="at least one URL"):
        RpcClient([])


def test_the_client_for_a_chain_uses_its_urls_and_policy() -> None:
    chain = SimpleNamespace(rpc_urls=[URL, "http://127.0.0.1:2"], retry=RetryPolicy(max_retries=1, max_batch=8))
    client = RpcClient.for_chain(chain)
    assert client.urls == chain.rpc_urls and client.policy is chain.retry and client.max_batch == 8


# ------------------------------------------------------------------------------- [chain.retry]

TOKEN = {"symbol": "AAPLx", "address": "0x" + "ab" * 20, "decimals": 18, "asset_class": "single_stock",
         "accounting": "plain"}


def _settings(**chain) -> Settings:
    return Settings(chain={"chain_id": 31337, "rpc_url": URL, "deployment_block": 1, **chain}, tokens=[TOKEN])


def test_chain_retry_defaults_to_the_default_policy() -> None:
    assert _settings().chain.retry == RetryPolicy()


def test_chain_retry_sets_the_policy() -> None:
    s = _settings(retry={"timeout": 10, "max_retries": 2, "max_batch": 50})
    assert s.chain.retry == RetryPolicy(timeout=10.0, max_retries=2, max_batch=50)
    client = RpcClient.for_chain(s.chain)
    assert (client.timeout, client.max_retries, client.max_batch, client.urls) == (10.0, 2, 50, [URL])


def test_chain_retry_from_a_toml_file(tmp_path) -> None:
    data = {"chain": {"chain_id": 31337, "rpc_url": URL, "deployment_block": 1,
                      "retry": {"backoff_cap": 2.0, "retry_after_cap": 5.0}}, "tokens": [TOKEN]}
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(data))
    assert "[chain.retry]" in path.read_text()
    retry = load_settings(path).chain.retry
    assert (retry.backoff_cap, retry.retry_after_cap, retry.max_retries) == (2.0, 5.0, 5)


@pytest.mark.parametrize(("retry", "message"), [
    ({"retries": 3}, "chain.retry.retries"),
    ({"max_batch": 0}, "chain.retry.max_batch"),
])
def test_a_bad_chain_retry_is_named(tmp_path, retry: dict, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps({"chain": {"chain_id": 31337, "rpc_url": URL, "deployment_block": 1,
                                             "retry": retry}, "tokens": [TOKEN]}))
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


@pytest.mark.parametrize("error, kind", [
    ({"code": -32001, "message": "Unable to complete request at this time."}, "transient"),
    ({"code": -32000, "message": "no backend is currently healthy to serve traffic"}, "transient"),
    ({"code": -32000, "message": "unknown block"}, "block_unavailable"),
])
def test_provider_faults_sent_with_http_200_are_retried_at_another_url(error, kind) -> None:
    verdict = classify_http(200, {"jsonrpc": "2.0", "id": 1, "error": error}, b"", is_batch=False, url="http://a")
    assert isinstance(verdict, Retry) and verdict.failover and verdict.kind == kind
