"""The one JSON-RPC client every chain read and write goes through.

A request is encoded (orjson), sent (`transport`), its answer classified (`classify`), and acted on:
returned, sent again after the policy's delay (`retry`), sent at once to the next URL, split when a
provider refuses a batch for its size, or raised. Counters per error kind are kept. It knows nothing
about tables or contracts. docs/rpc.md describes the behaviour and the provider wordings it recognises.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import requests

from indexer.chain import classify
from indexer.chain.retry import RetryPolicy
from indexer.chain.transport import HttpTransport, TransportError
from indexer.errors import RpcError

log = logging.getLogger(__name__)


@dataclass
class RpcStats:
    """Counters a metrics endpoint can read: requests sent and errors by kind."""

    requests: int = 0
    calls: int = 0
    errors: Counter = field(default_factory=Counter)
    retries: int = 0
    batch_splits: int = 0
    failovers: int = 0


class ChainRpc(Protocol):
    """What `RpcClient.for_chain` reads: a chain's URLs and its retry policy (`indexer.config.ChainConfig`)."""

    @property
    def rpc_urls(self) -> Sequence[str]: ...

    @property
    def retry(self) -> RetryPolicy: ...


class _BatchRefused(Exception):
    """The provider refused a batch for its size; `limit` is the size it named, if any."""

    def __init__(self, detail: str, limit: int | None) -> None:
        super().__init__(detail)
        self.limit = limit


_PENDING = object()


@dataclass
class _BatchState:
    """One `batch()` in progress: an outcome per call, the calls for the next round, and the round's news."""

    out: list[Any]
    last_error: dict[int, RpcError] = field(default_factory=dict)  # of each call to send again
    again: list[int] = field(default_factory=list)
    progressed: bool = False  # the round answered a call or split a batch
    throttled: bool = False  # the round met a rate limit

    def next_round(self) -> list[int]:
        pending, self.again = sorted(self.again), []
        self.progressed = self.throttled = False
        return pending


class RpcClient:
    """JSON-RPC over HTTP with batching, retries and failover.

    `urls` are tried in order; a transport failure (refused or dropped connection, timeout, HTTP 5xx)
    moves to the next URL at once, and the client stays there. Errors the node returns for one call are
    raised as `RpcError` with the node's code and message, never retried blindly. `max_batch` caps the
    calls per HTTP request; it starts at the policy's value (None: no cap) and is lowered when a provider
    refuses a batch for its size.

    `policy` holds the retry and failover numbers; keyword `overrides` (RetryPolicy field names:
    `timeout`, `max_retries`, `backoff_base`, `backoff_cap`, `retry_after_cap`, `max_batch`) replace
    single fields of it.
    """

    def __init__(self, urls: str | Sequence[str], *, policy: RetryPolicy | None = None, **overrides: Any) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("RpcClient needs at least one URL")
        self.policy = _policy_with(policy, overrides)
        self.max_batch = self.policy.max_batch
        self._transport = HttpTransport(self.policy.timeout)
        self._ids = itertools.count(1)
        self._url_index = 0
        self._lock = threading.Lock()
        self.stats = RpcStats()

    @classmethod
    def for_chain(cls, chain: ChainRpc) -> RpcClient:
        """The client for a configured chain: its `rpc_urls` and its `retry` policy."""
        return cls(chain.rpc_urls, policy=chain.retry)

    @property
    def url(self) -> str:
        return self.urls[self._url_index]

    @property
    def timeout(self) -> float:
        return self.policy.timeout

    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    @property
    def backoff_base(self) -> float:
        return self.policy.backoff_base

    @property
    def backoff_cap(self) -> float:
        return self.policy.backoff_cap

    @property
    def retry_after_cap(self) -> float:
        return self.policy.retry_after_cap

    @property
    def _session(self) -> requests.Session:
        return self._transport.session()

    @property
    def _sessions(self) -> dict[threading.Thread, requests.Session]:
        return self._transport.sessions

    def close(self) -> None:
        self._transport.close()

    # -- public API ---------------------------------------------------------------------------
    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call; returns its `result` or raises RpcError."""
        answer = self._post(self._request(method, params), n_calls=1)
        if not isinstance(answer, dict):
            raise RpcError(f"{method}: unexpected answer {answer!r:.200}", kind="bad_response")
        return self._result_of(answer, method)

    def call_raw(self, method: str, params: Sequence[Any] = ()) -> bytes:
        """One call; returns the node's whole answer unparsed (its `result` is for the caller to read),
        or raises RpcError as `call` does. For large answers read by a dedicated decoder (eth_getLogs)."""
        answer = self._post(self._request(method, params), n_calls=1, raw=True)
        if isinstance(answer, bytes):
            return answer
        if not isinstance(answer, dict):
            raise RpcError(f"{method}: unexpected answer {answer!r:.200}", kind="bad_response")
        self._result_of(answer, method)  # raises the node's error
        return orjson.dumps(answer)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, raise_errors: bool = True) -> list[Any]:
        """Several calls in as few HTTP requests as the provider accepts; results in the order of `calls`.

        A batch the provider refuses for its size is split in halves (or to the size it names) and sent
        again; calls answered with a rate-limit error inside an otherwise good batch are sent again after
        a backoff. With `raise_errors=False` a failed call yields its RpcError in place of a result.
        """
        if not calls:
            return []
        out = self._batch_outcomes(list(calls))
        if raise_errors:
            for item in out:
                if isinstance(item, RpcError):
                    raise item
        return out

    # -- batches ------------------------------------------------------------------------------
    def _batch_outcomes(self, calls: list[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Rounds over the calls not yet answered. A round that answers nothing spends the retry budget
        and backs off; a round that made progress only pauses when it met a rate limit."""
        state = _BatchState(out=[_PENDING] * len(calls))
        pending = list(range(len(calls)))
        idle_rounds = 0
        while pending:
            self._batch_round(calls, pending, state)
            if not state.again:
                break
            if not state.progressed:
                idle_rounds += 1
                if idle_rounds > self.policy.max_retries:
                    self._give_up(calls, state)
                    break
                self._sleep_before_retry(idle_rounds - 1, None)
            elif state.throttled:
                self._sleep_before_retry(idle_rounds, None)  # rate limited: pause, but spend no budget
            pending = state.next_round()
        return state.out

    def _batch_round(self, calls: list[tuple[str, Sequence[Any]]], pending: list[int], state: _BatchState) -> None:
        """Send the pending calls in chunks of the size known at the start of the round."""
        size = min(self.max_batch or len(pending), len(pending))
        for start in range(0, len(pending), size):
            self._send_chunk(calls, pending[start : start + size], state)

    def _send_chunk(self, calls: list[tuple[str, Sequence[Any]]], chunk: list[int], state: _BatchState) -> None:
        if len(chunk) == 1:
            # A batch of one is no batch: a plain request also passes providers that cap batches.
            (i,) = chunk
            state.out[i] = self._call_outcome(*calls[i])
            state.progressed = True
            return
        try:
            answers = self._send_batch([calls[i] for i in chunk])
        except _BatchRefused as exc:
            self._learn_batch_limit(len(chunk), exc.limit)
            state.again.extend(chunk)
            state.progressed = True  # splitting is progress: it ends at batches of one
            return
        for i, item in zip(chunk, answers, strict=True):
            self._take_answer(i, calls[i][0], item, state)

    def _take_answer(self, i: int, method: str, item: dict | RpcError | None, state: _BatchState) -> None:
        """Place one call's answer from a batch, or keep the call for the next round."""
        if item is None:
            self.stats.errors["missing_answer"] += 1
            state.last_error[i] = RpcError(f"{method}: missing from the batch answer", kind="bad_response")
            state.again.append(i)
            return
        if isinstance(item, RpcError) or "error" not in item:
            state.out[i] = item if isinstance(item, RpcError) else item.get("result")
            state.progressed = True
            return
        error = item.get("error")
        if isinstance(error, dict) and (kind := classify.error_kind(error)) in classify.RESEND_KINDS:
            # a rate limit, or a backend's trouble: pause before the next round (spending no budget while
            # other calls of the batch get answered)
            state.throttled = state.throttled or kind != "response_too_large"
            self.stats.errors[kind] += 1
            message = f"{method}: {error.get('message', error)}"
            state.last_error[i] = RpcError(message, code=error.get("code"), kind=kind)
            state.again.append(i)
            return
        state.out[i] = self._error_of(item, method)
        state.progressed = True

    def _call_outcome(self, method: str, params: Sequence[Any]) -> Any:
        try:
            return self.call(method, params)
        except RpcError as exc:
            return exc

    def _give_up(self, calls: list[tuple[str, Sequence[Any]]], state: _BatchState) -> None:
        for i in state.again:
            state.out[i] = state.last_error.get(i) or RpcError(f"{calls[i][0]}: no answer", kind="bad_response")

    def _send_batch(self, calls: list[tuple[str, Sequence[Any]]]) -> list[dict | RpcError | None]:
        """One HTTP request carrying `calls`; answers aligned with `calls` (None where one is missing)."""
        payload = [self._request(m, p) for m, p in calls]
        ids = [request["id"] for request in payload]
        answer = self._post(payload, n_calls=len(calls))
        if isinstance(answer, dict):
            # One error object for the whole batch (e.g. Erigon's batch limit with id null).
            self._raise_if_refused(answer.get("error"))
            err = self._error_of(answer, "batch")
            return [err] * len(calls)
        if not isinstance(answer, list):
            self.stats.errors["bad_response"] += 1
            return [None] * len(calls)
        by_id: dict[Any, dict] = {}
        for item in answer:
            if isinstance(item, dict):
                # geth answers an oversized batch with one error carrying the first call's id.
                self._raise_if_refused(item.get("error"))
                by_id[item.get("id")] = item
        return [by_id.get(i) for i in ids]

    @staticmethod
    def _raise_if_refused(error: Any) -> None:
        if isinstance(error, dict) and classify.is_batch_too_large(error):
            raise _BatchRefused(str(error.get("message")), classify.batch_limit_of(error))

    def _learn_batch_limit(self, size: int, named: int | None) -> None:
        new = named if named is not None and 0 < named < size else max(1, size // 2)
        self.stats.batch_splits += 1
        self.stats.errors["batch_too_large"] += 1
        if self.max_batch is None or new < self.max_batch:
            log.info("rpc batch of %d refused as too large; sending at most %d calls per batch", size, new)
            self.max_batch = new

    # -- one request --------------------------------------------------------------------------
    def _request(self, method: str, params: Sequence[Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}

    def _post(self, payload: Any, *, n_calls: int, raw: bool = False) -> Any:
        """POST one request; returns the parsed answer or raises RpcError (or _BatchRefused for batches).
        `raw`: a successful answer with no error object anywhere is returned as bytes, unparsed.

        Transport failures fail over to an untried URL at once; when every URL has failed, the client
        backs off and tries again, `max_retries` times.
        """
        body = orjson.dumps(payload)
        is_batch = isinstance(payload, list)
        attempt = 0
        tried = {self._url_index}
        while True:
            verdict = self._send(body, n_calls=n_calls, is_batch=is_batch, raw=raw)
            if isinstance(verdict, classify.Accept):
                return verdict.answer
            if isinstance(verdict, classify.BatchTooLarge):
                raise _BatchRefused(verdict.detail, verdict.limit)
            self.stats.errors[verdict.kind] += 1
            if isinstance(verdict, classify.Fail):
                raise verdict.error
            if verdict.failover and self._failover(tried):
                continue
            attempt += 1
            if attempt > self.policy.max_retries:
                raise verdict.error
            self._sleep_before_retry(attempt - 1, verdict.retry_after)
            tried = {self._url_index}

    def _send(self, body: bytes, *, n_calls: int, is_batch: bool, raw: bool) -> classify.Verdict:
        """One HTTP request to the current URL, and what its answer means."""
        url = self.url
        self.stats.requests += 1
        self.stats.calls += n_calls
        try:
            http = self._transport.post(url, body)
        except TransportError as exc:
            return classify.transport_failure(exc.kind, exc.message)
        if raw and classify.is_plain_success(http.status, http.content):
            return classify.Accept(http.content)
        return classify.classify_http(
            http.status, _json_or_none(http.content), http.content, is_batch=is_batch, url=url,
            retry_after=http.headers.get("Retry-After"),
        )

    def _result_of(self, answer: dict, method: str) -> Any:
        if "error" in answer:
            raise self._error_of(answer, method)
        return answer.get("result")

    def _error_of(self, answer: dict, method: str) -> RpcError:
        error = answer.get("error")
        if not isinstance(error, dict):
            error = {"message": str(error)}
        kind = classify.call_error_kind(error)
        self.stats.errors[kind] += 1
        return RpcError(f"{method}: {error.get('message', str(error))}", code=error.get("code"), kind=kind,
                        data=error.get("data"))

    def _sleep_before_retry(self, attempt: int, retry_after: float | None) -> None:
        delay = self.policy.delay(attempt, retry_after)
        self.stats.retries += 1
        if delay > 0:
            time.sleep(delay)

    def _failover(self, tried: set[int]) -> bool:
        """Move to the next URL not yet tried in this round; False when every URL has been tried."""
        with self._lock:
            for step in range(1, len(self.urls)):
                index = (self._url_index + step) % len(self.urls)
                if index not in tried:
                    self._url_index = index
                    tried.add(index)
                    self.stats.failovers += 1
                    log.warning("rpc failover to %s", self.url)
                    return True
        return False


def _policy_with(policy: RetryPolicy | None, overrides: dict[str, Any]) -> RetryPolicy:
    """`policy` (the defaults when None) with the fields named in `overrides` replaced."""
    unknown = sorted(set(overrides) - set(RetryPolicy.model_fields))
    if unknown:
        raise TypeError(f"RpcClient() got an unexpected keyword argument {unknown[0]!r}")
    if policy is None:
        return RetryPolicy(**overrides)
    if not overrides:
        return policy
    return RetryPolicy.model_validate({**policy.model_dump(), **overrides})


def _json_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
