"""The one JSON-RPC client every chain read and write goes through.

Transport only: HTTP POST of single or batch requests, fast JSON (orjson), timeouts, retries with
exponential backoff and jitter, HTTP 429 with Retry-After honoured, failover across several URLs,
and counters per error kind. It knows nothing about tables or contracts.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests

from indexer.errors import RpcError

log = logging.getLogger(__name__)

# JSON-RPC error codes that a retry cannot fix: the request itself is wrong or the call reverted.
_FINAL_CODES = {-32600, -32601, -32602, 3}


@dataclass
class RpcStats:
    """Counters a metrics endpoint can read: requests sent and errors by kind."""

    requests: int = 0
    calls: int = 0
    errors: Counter = field(default_factory=Counter)
    retries: int = 0


class RpcClient:
    """JSON-RPC over HTTP with batching, retries and failover.

    `urls` are tried in order; a transport failure moves to the next one. Errors the node returns
    for one call are raised as `RpcError` with the node's code and message, never retried blindly.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 8.0,
        session: requests.Session | None = None,
    ) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("RpcClient needs at least one URL")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._session = session or requests.Session()
        self._ids = itertools.count(1)
        self._url_index = 0
        self._lock = threading.Lock()
        self.stats = RpcStats()

    @property
    def url(self) -> str:
        return self.urls[self._url_index]

    def close(self) -> None:
        self._session.close()

    # -- public API ---------------------------------------------------------------------------
    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call; returns its `result` or raises RpcError."""
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        answer = self._post(payload, n_calls=1)
        if not isinstance(answer, dict):
            raise RpcError(f"{method}: unexpected answer {answer!r:.200}", kind="bad_response")
        return self._result_of(answer, method)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, raise_errors: bool = True) -> list[Any]:
        """Several calls in one HTTP request; results in the order of `calls`.

        With `raise_errors=False` a failed call yields its RpcError in place of a result.
        """
        if not calls:
            return []
        first = next(self._ids)
        ids = list(range(first, first + len(calls)))
        # keep the id counter ahead of the ids used here
        for _ in range(len(calls) - 1):
            next(self._ids)
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        answer = self._post(payload, n_calls=len(calls))
        if isinstance(answer, dict):
            # Some nodes answer a whole batch with one error object (e.g. batch too large).
            raise self._error_of(answer, "batch")
        by_id = {item.get("id"): item for item in answer}
        out: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            item = by_id.get(i)
            if item is None:
                err = RpcError(f"{method}: missing from batch answer", kind="bad_response")
                if raise_errors:
                    raise err
                out.append(err)
                continue
            if "error" in item:
                err = self._error_of(item, method)
                if raise_errors:
                    raise err
                out.append(err)
            else:
                out.append(item.get("result"))
        return out

    # -- internals ----------------------------------------------------------------------------
    def _result_of(self, answer: dict, method: str) -> Any:
        if "error" in answer:
            raise self._error_of(answer, method)
        return answer.get("result")

    def _error_of(self, answer: dict, method: str) -> RpcError:
        error = answer.get("error") or {}
        code = error.get("code")
        message = error.get("message", str(error))
        kind = "reverted" if code == 3 or "revert" in str(message).lower() else "node_error"
        self.stats.errors[kind] += 1
        return RpcError(f"{method}: {message}", code=code, kind=kind, data=error.get("data"))

    def _sleep_before_retry(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(retry_after, 60.0)
        else:
            delay = min(self.backoff_cap, self.backoff_base * (2**attempt))
            delay = random.uniform(delay / 2, delay)  # full jitter keeps clients from retrying in step
        self.stats.retries += 1
        time.sleep(delay)

    def _failover(self) -> None:
        with self._lock:
            if len(self.urls) > 1:
                self._url_index = (self._url_index + 1) % len(self.urls)
                log.warning("rpc failover to %s", self.url)

    def _post(self, payload: Any, *, n_calls: int) -> Any:
        body = orjson.dumps(payload)
        last_error: RpcError | None = None
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            url = self.url
            self.stats.requests += 1
            self.stats.calls += n_calls
            retry_after: float | None = None
            try:
                resp = self._session.post(
                    url, data=body, headers={"Content-Type": "application/json"}, timeout=self.timeout
                )
            except requests.Timeout:
                self.stats.errors["timeout"] += 1
                last_error = RpcError(f"{url}: timed out after {self.timeout}s", kind="timeout")
                self._failover()
            except requests.ConnectionError as exc:
                self.stats.errors["connection"] += 1
                last_error = RpcError(f"{url}: connection failed ({exc.__class__.__name__})", kind="connection")
                self._failover()
            else:
                status = resp.status_code
                if status == 429:
                    self.stats.errors["rate_limited"] += 1
                    retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
                    last_error = RpcError(f"{url}: rate limited (HTTP 429)", kind="rate_limited", code=429)
                elif status >= 500:
                    self.stats.errors["http_5xx"] += 1
                    last_error = RpcError(f"{url}: HTTP {status}", kind="http_5xx", code=status)
                    self._failover()
                else:
                    try:
                        answer = orjson.loads(resp.content)
                    except orjson.JSONDecodeError:
                        self.stats.errors["bad_response"] += 1
                        last_error = RpcError(
                            f"{url}: HTTP {status}, not JSON: {resp.content[:200]!r}", kind="bad_response"
                        )
                    else:
                        if status >= 400 and isinstance(answer, dict) and "error" not in answer:
                            self.stats.errors["http_4xx"] += 1
                            raise RpcError(f"{url}: HTTP {status}: {answer!r:.200}", kind="http_4xx", code=status)
                        if isinstance(answer, dict) and _is_transient(answer):
                            self.stats.errors["node_busy"] += 1
                            last_error = self._error_of(answer, "request")
                        else:
                            return answer
            if attempt + 1 < attempts:
                self._sleep_before_retry(attempt, retry_after)
        assert last_error is not None
        raise last_error


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _is_transient(answer: dict) -> bool:
    """A top-level error object that says 'try again', as some providers send instead of HTTP 429."""
    error = answer.get("error")
    if not isinstance(error, dict) or error.get("code") in _FINAL_CODES:
        return False
    message = str(error.get("message", "")).lower()
    return any(s in message for s in ("rate limit", "too many requests", "capacity", "try again"))
