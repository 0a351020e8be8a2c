"""The one JSON-RPC client every chain read and write goes through.

Transport only: HTTP POST of single or batch requests, fast JSON (orjson), timeouts, retries with
exponential backoff and jitter, HTTP 429 with Retry-After honoured, failover across several URLs,
batches split when a provider refuses their size, and counters per error kind. It knows nothing about
tables or contracts. docs/rpc.md describes the behaviour and the provider wordings it recognises.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
import urllib3

from indexer.errors import RpcError

log = logging.getLogger(__name__)

# JSON-RPC error codes that a retry cannot fix: the request itself is wrong or the call reverted.
_FINAL_CODES = {-32600, -32601, -32602, 3}

# Providers that refuse a batch for its size say so in many ways (docs/rpc.md lists the sources):
# geth "batch too large", jsonrpsee "The batch request was too large", Erigon "batch limit 100 exceeded:
# 142 requests given", Besu "Number of requests in batch exceeds --rpc-max-batch-size.", Acala "Exceeded
# maximum batch size", a TRON gateway "batch limit exceeded".
_BATCH_TOO_LARGE = re.compile(
    r"batch(?: request| size)?(?: is| was)? too (?:large|big)"
    r"|batch limit(?: \d+)? exceeded"
    r"|exceeds? (?:the )?batch (?:size |request )?limit"
    r"|requests in (?:a |the )?batch exceeds"
    r"|exceeded (?:the )?max(?:imum)? batch size"
    r"|batch size (?:limit )?exceeded",
    re.IGNORECASE,
)
# A limit the refusal names: Erigon "batch limit 100 exceeded", jsonrpsee data "Exceeded max limit of 100".
_BATCH_LIMIT = re.compile(r"batch limit (\d+)|max(?:imum)? (?:batch )?(?:size|limit) of (\d+)", re.IGNORECASE)

# Per-call errors worth sending again rather than reporting: rate limits answered inside a batch (Alchemy
# "Your app has exceeded its compute units per second capacity", code 429) and geth's "response too large"
# (-32003) for the calls past its batch response size limit.
_RATE_LIMIT_WORDS = ("rate limit", "rate-limit", "too many requests", "capacity", "try again", "throttl")
_RESPONSE_TOO_LARGE_CODE = -32003


@dataclass
class RpcStats:
    """Counters a metrics endpoint can read: requests sent and errors by kind."""

    requests: int = 0
    calls: int = 0
    errors: Counter = field(default_factory=Counter)
    retries: int = 0
    batch_splits: int = 0
    failovers: int = 0


class _BatchRefused(Exception):
    """The provider refused a batch for its size; `limit` is the size it named, if any."""

    def __init__(self, detail: str, limit: int | None) -> None:
        super().__init__(detail)
        self.limit = limit


_PENDING = object()


class RpcClient:
    """JSON-RPC over HTTP with batching, retries and failover.

    `urls` are tried in order; a transport failure (refused or dropped connection, timeout, HTTP 5xx)
    moves to the next URL at once, and the client stays there. Errors the node returns for one call are
    raised as `RpcError` with the node's code and message, never retried blindly. `max_batch` caps the
    calls per HTTP request; it starts at the given value (None: no cap) and is lowered when a provider
    refuses a batch for its size.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 8.0,
        retry_after_cap: float = 60.0,
        max_batch: int | None = None,
    ) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("RpcClient needs at least one URL")
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be at least 1 (got {max_batch})")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.max_batch = max_batch
        # one HTTP session (connection pool) per live thread: a sync reads logs on a thread of its own,
        # one per tick; a session whose thread has ended goes to the next new thread, connection and all
        self._sessions: dict[threading.Thread, requests.Session] = {}
        self._ids = itertools.count(1)
        self._url_index = 0
        self._lock = threading.Lock()
        self.stats = RpcStats()

    @property
    def url(self) -> str:
        return self.urls[self._url_index]

    @property
    def _session(self) -> requests.Session:
        me = threading.current_thread()
        session = self._sessions.get(me)
        if session is None:
            with self._lock:
                ended = [t for t in self._sessions if not t.is_alive()]
                session = self._sessions.pop(ended[0]) if ended else requests.Session()
                for t in ended[1:]:
                    self._sessions.pop(t).close()
                self._sessions[me] = session
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

    # -- public API ---------------------------------------------------------------------------
    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call; returns its `result` or raises RpcError."""
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        answer = self._post(payload, n_calls=1)
        if not isinstance(answer, dict):
            raise RpcError(f"{method}: unexpected answer {answer!r:.200}", kind="bad_response")
        return self._result_of(answer, method)

    def call_raw(self, method: str, params: Sequence[Any] = ()) -> bytes:
        """One call; returns the node's whole answer unparsed (its `result` is for the caller to read),
        or raises RpcError as `call` does. For large answers read by a dedicated decoder (eth_getLogs)."""
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        answer = self._post(payload, n_calls=1, raw=True)
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
        out: list[Any] = [_PENDING] * len(calls)
        pending = list(range(len(calls)))
        idle_rounds = 0  # rounds that answered nothing new: these spend the retry budget
        last_error: dict[int, RpcError] = {}
        while pending:
            size = min(self.max_batch or len(pending), len(pending))
            again: list[int] = []
            progressed = False
            throttled = False
            for start in range(0, len(pending), size):
                chunk = pending[start : start + size]
                if len(chunk) == 1:
                    # A batch of one is no batch: a plain request also passes providers that cap batches.
                    (i,) = chunk
                    method, params = calls[i]
                    try:
                        out[i] = self.call(method, params)
                    except RpcError as exc:
                        out[i] = exc
                    progressed = True
                    continue
                try:
                    answers = self._send_batch([calls[i] for i in chunk])
                except _BatchRefused as exc:
                    self._learn_batch_limit(len(chunk), exc.limit)
                    again.extend(chunk)
                    progressed = True  # splitting is progress: it ends at batches of one
                    continue
                for i, item in zip(chunk, answers, strict=True):
                    method = calls[i][0]
                    if item is None:
                        self.stats.errors["missing_answer"] += 1
                        last_error[i] = RpcError(f"{method}: missing from the batch answer", kind="bad_response")
                        again.append(i)
                    elif isinstance(item, RpcError):
                        out[i] = item
                        progressed = True
                    elif "error" in item:
                        error = item.get("error")
                        if isinstance(error, dict) and _is_retryable_item(error):
                            kind = "rate_limited" if _is_rate_limited(error) else "response_too_large"
                            throttled = throttled or kind == "rate_limited"
                            self.stats.errors[kind] += 1
                            last_error[i] = RpcError(
                                f"{method}: {error.get('message', error)}", code=error.get("code"), kind=kind
                            )
                            again.append(i)
                        else:
                            out[i] = self._error_of(item, method)
                            progressed = True
                    else:
                        out[i] = item.get("result")
                        progressed = True
            if not again:
                break
            if not progressed:
                idle_rounds += 1
                if idle_rounds > self.max_retries:
                    for i in again:
                        out[i] = last_error.get(i) or RpcError(f"{calls[i][0]}: no answer", kind="bad_response")
                    break
                self._sleep_before_retry(idle_rounds - 1, None)
            elif throttled:
                self._sleep_before_retry(idle_rounds, None)  # rate limited: pause, but spend no budget
            pending = sorted(again)
        return out

    def _send_batch(self, calls: list[tuple[str, Sequence[Any]]]) -> list[dict | RpcError | None]:
        """One HTTP request carrying `calls`; answers aligned with `calls` (None where one is missing)."""
        ids = [next(self._ids) for _ in calls]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        answer = self._post(payload, n_calls=len(calls))
        if isinstance(answer, dict):
            # One error object for the whole batch (e.g. Erigon's batch limit with id null).
            error = answer.get("error")
            if isinstance(error, dict) and _is_batch_too_large(error):
                raise _BatchRefused(str(error.get("message")), _batch_limit_of(error))
            err = self._error_of(answer, "batch")
            return [err] * len(calls)
        if not isinstance(answer, list):
            self.stats.errors["bad_response"] += 1
            return [None] * len(calls)
        by_id: dict[Any, dict] = {}
        for item in answer:
            if not isinstance(item, dict):
                continue
            error = item.get("error")
            if isinstance(error, dict) and _is_batch_too_large(error):
                # geth answers an oversized batch with one error carrying the first call's id.
                raise _BatchRefused(str(error.get("message")), _batch_limit_of(error))
            by_id[item.get("id")] = item
        return [by_id.get(i) for i in ids]

    def _learn_batch_limit(self, size: int, named: int | None) -> None:
        new = named if named is not None and 0 < named < size else max(1, size // 2)
        self.stats.batch_splits += 1
        self.stats.errors["batch_too_large"] += 1
        if self.max_batch is None or new < self.max_batch:
            log.info("rpc batch of %d refused as too large; sending at most %d calls per batch", size, new)
            self.max_batch = new

    # -- internals ----------------------------------------------------------------------------
    def _result_of(self, answer: dict, method: str) -> Any:
        if "error" in answer:
            raise self._error_of(answer, method)
        return answer.get("result")

    def _error_of(self, answer: dict, method: str) -> RpcError:
        error = answer.get("error")
        if not isinstance(error, dict):
            error = {"message": str(error)}
        code = error.get("code")
        message = error.get("message", str(error))
        kind = "reverted" if code == 3 or "revert" in str(message).lower() else "node_error"
        self.stats.errors[kind] += 1
        return RpcError(f"{method}: {message}", code=code, kind=kind, data=error.get("data"))

    def _sleep_before_retry(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(retry_after, self.retry_after_cap)  # the provider said how long: no jitter
        else:
            delay = min(self.backoff_cap, self.backoff_base * (2**attempt))
            delay = random.uniform(delay / 2, delay)  # jitter keeps clients from retrying in step
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

    def _post(self, payload: Any, *, n_calls: int, raw: bool = False) -> Any:
        """POST one request; returns the parsed answer or raises RpcError (or _BatchRefused for batches).
        `raw`: a successful answer with no error object anywhere is returned as bytes, unparsed.

        Transport failures fail over to an untried URL at once; when every URL has failed, the client
        backs off and tries again, `max_retries` times.
        """
        body = orjson.dumps(payload)
        is_batch = isinstance(payload, list)
        last_error: RpcError | None = None
        attempt = 0
        tried = {self._url_index}
        while True:
            url = self.url
            self.stats.requests += 1
            self.stats.calls += n_calls
            retry_after: float | None = None
            transport_failure = False
            try:
                resp = self._session.post(
                    url, data=body, headers={"Content-Type": "application/json"}, timeout=self.timeout, stream=True
                )
                content = _read_body(resp)
            except requests.Timeout:
                self.stats.errors["timeout"] += 1
                last_error = RpcError(f"{url}: timed out after {self.timeout}s", kind="timeout")
                transport_failure = True
            except requests.ConnectionError as exc:
                self.stats.errors["connection"] += 1
                last_error = RpcError(f"{url}: connection failed ({exc.__class__.__name__})", kind="connection")
                transport_failure = True
            else:
                status = resp.status_code
                if raw and status == 200 and b'"error"' not in content:
                    return content
                answer = _json_or_none(content)
                if status == 429:
                    self.stats.errors["rate_limited"] += 1
                    retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
                    last_error = RpcError(f"{url}: rate limited (HTTP 429)", kind="rate_limited", code=429)
                elif status >= 500:
                    self.stats.errors["http_5xx"] += 1
                    error = answer.get("error") if isinstance(answer, dict) else None
                    detail = f": {error.get('message')}" if isinstance(error, dict) else ""
                    last_error = RpcError(
                        f"{url}: HTTP {status}{detail}", kind="http_5xx", code=status,
                        data=error.get("data") if isinstance(error, dict) else None,
                    )
                    transport_failure = True
                elif status == 413 and not _is_call_error(answer):
                    # Request Entity Too Large with no JSON-RPC error of its own: the body was too big.
                    if is_batch:
                        raise _BatchRefused(f"HTTP 413 from {url}", _batch_limit_in(content))
                    self.stats.errors["too_large"] += 1
                    raise RpcError(f"{url}: HTTP 413, request body too large", kind="too_large", code=413)
                elif answer is None:
                    kind = "http_4xx" if status >= 400 else "bad_response"
                    self.stats.errors[kind] += 1
                    last_error = RpcError(f"{url}: HTTP {status}, not JSON: {content[:200]!r}", kind=kind)
                    transport_failure = status >= 400  # a misconfigured URL (403, 404): try another one
                elif status >= 400 and isinstance(answer, dict) and "error" not in answer:
                    self.stats.errors["http_4xx"] += 1
                    raise RpcError(f"{url}: HTTP {status}: {answer!r:.200}", kind="http_4xx", code=status)
                elif isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                    error = answer["error"]
                    if is_batch and _is_batch_too_large(error):
                        raise _BatchRefused(str(error.get("message")), _batch_limit_of(error))
                    if _is_rate_limited(error):
                        # A rate limit sent as an error object instead of HTTP 429.
                        self.stats.errors["rate_limited"] += 1
                        last_error = RpcError(
                            f"{url}: rate limited: {error.get('message', error)}", code=error.get("code"),
                            kind="rate_limited", data=error.get("data"),
                        )
                    else:
                        return answer
                else:
                    # Providers answer JSON-RPC errors with 200, 400 (Alchemy) or 413 (QuickNode):
                    # the error object, not the status, says what went wrong.
                    return answer
            if transport_failure and self._failover(tried):
                continue
            attempt += 1
            if attempt > self.max_retries:
                break
            self._sleep_before_retry(attempt - 1, retry_after)
            tried = {self._url_index}
        assert last_error is not None
        raise last_error


def _read_body(resp: requests.Response) -> bytes:
    """The whole body in one read (requests' `.content` joins 10 KiB chunks: slow for answers of tens of
    MB); urllib3's failures reported as requests reports them, so callers see one set of exceptions."""
    try:
        content = resp.raw.read(decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as exc:
        resp.close()
        raise requests.Timeout(str(exc)) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        resp.close()
        raise requests.ConnectionError(str(exc)) from None
    resp.raw.release_conn()  # read to the end: the connection goes back to the pool for the next request
    return content or b""


def _json_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _is_call_error(answer: Any) -> bool:
    """A JSON-RPC error object about the call itself (not about the request's size)."""
    if not isinstance(answer, dict):
        return False
    error = answer.get("error")
    return isinstance(error, dict) and not _is_batch_too_large(error)


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or as an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(error: dict) -> str:
    data = error.get("data")
    return f"{error.get('message', '')} {data if data is not None else ''}"


def _is_batch_too_large(error: dict) -> bool:
    return bool(_BATCH_TOO_LARGE.search(_error_text(error)))


def _batch_limit_of(error: dict) -> int | None:
    return _batch_limit_in(_error_text(error).encode())


def _batch_limit_in(text: bytes) -> int | None:
    match = _BATCH_LIMIT.search(text.decode(errors="replace"))
    if match is None:
        return None
    return int(next(g for g in match.groups() if g))


def _is_rate_limited(error: dict) -> bool:
    """An error object that says "slow down", as some providers send instead of HTTP 429.

    A revert is never one, whatever its reason says ("over capacity, try again" is a contract's answer).
    """
    code = error.get("code")
    if code == 429:
        return True
    message = str(error.get("message", "")).lower()
    if code in _FINAL_CODES or "revert" in message:
        return False
    return any(w in message for w in _RATE_LIMIT_WORDS)


def _is_retryable_item(error: dict) -> bool:
    return _is_rate_limited(error) or error.get("code") == _RESPONSE_TOO_LARGE_CODE


