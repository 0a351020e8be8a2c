"""A JSON-RPC proxy between the indexer and anvil that misbehaves the way real providers do.

Faults are configured per proxy and are deterministic for a given seed: log-count caps and block-range
caps on `eth_getLogs` answered in real providers' wordings (rotating through several), batch-size caps
(HTTP 413 or an error object, in several node implementations' wordings), HTTP 429 with Retry-After,
HTTP 5xx, rate-limit errors on single items of a batch, dropped connections, slow answers. The wordings
and their sources are listed in docs/rpc.md. Loopback only: it binds 127.0.0.1 and forwards to a local
upstream.
"""

from __future__ import annotations

import random
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import orjson
import requests

# An error answer: HTTP status and the JSON-RPC error object.
ErrorAnswer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Refusal:
    """What a capped eth_getLogs request asked for, for building a provider's refusal."""

    from_block: int
    to_block: int
    cap: int
    safe_to: int  # the last block such that [from_block, safe_to] stays within the cap

    @property
    def blocks(self) -> int:
        return self.to_block - self.from_block + 1


def _hexr(r: Refusal) -> str:
    return f"[{hex(r.from_block)}, {hex(r.safe_to)}]"


# Log-count refusals: the answer would hold more than `cap` logs.
LOG_CAP_WORDINGS: dict[str, Callable[[Refusal], ErrorAnswer]] = {
    "alchemy": lambda r: (400, {"code": -32602, "message": (
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no "
        "limit on the response size, or you can request any block range with a cap of 10K logs in the "
        f"response. Based on your parameters and the response size limit, this block range should work: {_hexr(r)}"
    )}),
    "infura": lambda r: (200, {
        "code": -32005,
        "message": f"query returned more than 10000 results. Try with this block range {_hexr(r)}.",
        "data": {"from": hex(r.from_block), "limit": 10000, "to": hex(r.safe_to)},
    }),
    "thirdweb": lambda r: (200, {"code": -32602, "message": "invalid params", "data": (
        f"Query returned more than 10000 results. Try with this block range {_hexr(r)}."
    )}),
    "zksync": lambda r: (200, {"code": -32602, "message": (
        f"Query returned more than 10000 results. Try with this block range {_hexr(r)}."
    )}),
    "arbitrum": lambda r: (200, {"code": -32000, "message": "logs matched by query exceeds limit of 10000"}),
    "zkevm": lambda r: (200, {"code": -32005, "message": "query returned more than 10000 results"}),
    "llamarpc": lambda r: (200, {"code": -32000, "message": "query exceeds max results 20000"}),
    "alchemy-plain": lambda r: (200, {"code": -32602, "message": (
        "Log response size exceeded. Please reduce query block range."
    )}),
    "1rpc": lambda r: (200, {"code": -32000, "message": "response size should not greater than 10000000 bytes"}),
    "optimism": lambda r: (200, {"code": -32000, "message": "backend response too large"}),
    "zksync-big": lambda r: (200, {"code": -32008, "message": "Response is too big",
                                   "data": "Exceeded max limit of 10485760"}),
}

# Block-range refusals: the request spans more than `cap` blocks.
RANGE_CAP_WORDINGS: dict[str, Callable[[Refusal], ErrorAnswer]] = {
    "quicknode": lambda r: (413, {"code": -32614, "message": f"eth_getLogs is limited to a {r.cap:,} range"}),
    "cloudflare": lambda r: (200, {"code": -32047, "message": (
        f"Invalid eth_getLogs request. 'fromBlock'-'toBlock' range too large. Max range: {r.cap}"
    )}),
    "ankr": lambda r: (200, {"code": -32600, "message": "block range is too wide"}),
    "bsc": lambda r: (200, {"code": -32000, "message": f"exceed maximum block range: {r.cap}"}),
    "infura": lambda r: (200, {"code": -32602, "message": f"range {r.blocks} exceeds limit of {r.cap}"}),
    "tenderly": lambda r: (200, {"code": -32602, "message": "invalid params", "data": {
        "error_id": "4ed94073-0317-4648-a167-107fba5f44b3",
        "payload": f"range {r.blocks} is bigger than range limit {r.cap}",
    }}),
    "alchemy": lambda r: (400, {"code": -32600, "message": (
        f"You can make eth_getLogs requests with up to a {r.cap} block range. Based on your parameters, "
        f"this block range should work: [{hex(r.from_block)}, {hex(r.from_block + r.cap - 1)}]"
    )}),
    "reth": lambda r: (200, {"code": -32602, "message": f"query exceeds max block range {r.cap}"}),
    "moonbeam": lambda r: (200, {"code": -32603, "message": f"block range is too wide (maximum {r.cap})"}),
    "base": lambda r: (200, {"code": -32000, "message": "block range too large"}),
    "morph": lambda r: (200, {"code": -32000, "message": (
        f"block range is larger than max block range, block range = {r.blocks}, max block range = {r.cap}"
    )}),
    "avalanche": lambda r: (200, {"code": -32000, "message": (
        f"requested too many blocks from {r.from_block} to {r.to_block}, maximum is set to {r.cap}"
    )}),
}

# Batch-size refusals: (HTTP status, body) for a batch of `n` calls over `cap`, first call id `first_id`.
BATCH_CAP_WORDINGS: dict[str, Callable[[int, int, Any], tuple[int, bytes]]] = {
    "http413": lambda n, cap, first_id: (413, b"Request Entity Too Large"),
    "geth": lambda n, cap, first_id: (200, orjson.dumps(
        [{"jsonrpc": "2.0", "id": first_id, "error": {"code": -32600, "message": "batch too large"}}]
    )),
    "erigon": lambda n, cap, first_id: (200, orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {
        "code": -32000, "message": f"batch limit {cap} exceeded: {n} requests given"}})),
    "jsonrpsee": lambda n, cap, first_id: (200, orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {
        "code": -32010, "message": "The batch request was too large", "data": f"Exceeded max limit of {cap}"}})),
    "besu": lambda n, cap, first_id: (200, orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {
        "code": -32602, "message": "Number of requests in batch exceeds --rpc-max-batch-size."}})),
}

ITEM_RATE_LIMIT = {"code": 429, "message": "Your app has exceeded its compute units per second capacity."}


@dataclass
class Faults:
    """Which faults to inject; None or 0 turns one off. Counts are of HTTP requests (or batch items)."""

    log_cap: int | None = None  # max logs in one eth_getLogs answer
    log_wordings: tuple[str, ...] = tuple(LOG_CAP_WORDINGS)
    range_cap: int | None = None  # max blocks in one eth_getLogs request
    range_wordings: tuple[str, ...] = tuple(RANGE_CAP_WORDINGS)
    batch_cap: int | None = None  # max calls in one batch
    batch_wordings: tuple[str, ...] = tuple(BATCH_CAP_WORDINGS)
    rate_429_every: int | None = None  # every Nth request: HTTP 429
    retry_after: str = "0"  # the Retry-After header of those 429s
    rate_5xx: float = 0.0  # probability of HTTP 502/503 for a request
    item_429_every: int | None = None  # every Nth item of a batch: a rate-limit error object
    drop_every: int | None = None  # every Nth request: close the connection without an answer
    slow_every: int | None = None  # every Nth request: answer after `delay` seconds
    delay: float = 0.0
    seed: int = 0


@dataclass
class _State:
    requests: int = 0
    items: int = 0
    rotation: Counter = field(default_factory=Counter)


class FaultProxy:
    """`with FaultProxy(anvil.url, Faults(...)) as proxy:` then point an RpcClient at `proxy.url`."""

    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        host = urlparse(upstream).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"FaultProxy forwards to loopback only, not to {upstream}")
        self.upstream = upstream
        self.faults = faults or Faults()
        self.injected: Counter = Counter()  # faults actually injected, by kind and wording
        self.seen: deque[tuple[str, list]] = deque(maxlen=50_000)  # (method, params) of forwarded calls
        self._state = _State()
        self._rng = random.Random(self.faults.seed)
        self._order = {
            name: self._shuffled(wordings)
            for name, wordings in (
                ("log", self.faults.log_wordings),
                ("range", self.faults.range_wordings),
                ("batch", self.faults.batch_wordings),
            )
        }
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _shuffled(self, names: tuple[str, ...]) -> list[str]:
        order = list(names)
        self._rng.shuffle(order)
        return order

    @property
    def requests(self) -> int:
        """HTTP requests received so far."""
        return self._state.requests

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real providers do
            # Headers and body go out as two writes: without TCP_NODELAY every answer on a kept-alive
            # connection waits ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                proxy._handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep tests quiet
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.failures = []
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="faultproxy",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        failures: list[BaseException] = []
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            failures = self._server.failures
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        if failures and exc[0] is None:
            raise RuntimeError(f"the fault proxy failed while handling a request: {failures[0]!r}") from failures[0]

    # -- the request path ---------------------------------------------------------------------
    def _next(self, kind: str) -> str:
        with self._lock:
            order = self._order[kind]
            name = order[self._state.rotation[kind] % len(order)]
            self._state.rotation[kind] += 1
        return name

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        f = self.faults
        with self._lock:
            self._state.requests += 1
            n = self._state.requests
            fail_5xx = f.rate_5xx > 0 and self._rng.random() < f.rate_5xx
        if f.drop_every and n % f.drop_every == 0:
            self.injected["drop"] += 1
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if f.rate_429_every and n % f.rate_429_every == 0:
            self.injected["429"] += 1
            _send(handler, 429, b'{"jsonrpc":"2.0","id":null,"error":{"code":429,"message":"Too Many Requests"}}',
                  {"Retry-After": f.retry_after})
            return
        if fail_5xx:
            status = 502 if n % 2 else 503
            self.injected[f"http_{status}"] += 1
            _send(handler, status, b"<html><body>Bad Gateway</body></html>", content_type="text/html")
            return
        if f.slow_every and n % f.slow_every == 0:
            self.injected["slow"] += 1
            time.sleep(f.delay)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            _send(handler, 400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}')
            return
        if isinstance(payload, list):
            if f.batch_cap and len(payload) > f.batch_cap:
                wording = self._next("batch")
                self.injected[f"batch:{wording}"] += 1
                first_id = payload[0].get("id") if payload and isinstance(payload[0], dict) else None
                status, out = BATCH_CAP_WORDINGS[wording](len(payload), f.batch_cap, first_id)
                _send(handler, status, out, content_type="application/json" if status != 413 else "text/plain")
                return
            answers = self._answer_items(payload, in_batch=True)
            _send(handler, 200, orjson.dumps([a for _, a in answers]))
        else:
            ((status, answer),) = self._answer_items([payload], in_batch=False)
            _send(handler, status, orjson.dumps(answer))

    def _answer_items(self, items: list[dict], *, in_batch: bool) -> list[tuple[int, dict]]:
        """Answers for `items` in order: refused ones made up here, the rest forwarded as one batch."""
        f = self.faults
        out: list[tuple[int, dict] | None] = [None] * len(items)
        forward: list[int] = []
        for k, item in enumerate(items):
            if in_batch and f.item_429_every:
                with self._lock:
                    self._state.items += 1
                    hit = self._state.items % f.item_429_every == 0
                if hit:
                    self.injected["item_429"] += 1
                    out[k] = (200, {"jsonrpc": "2.0", "id": item.get("id"), "error": ITEM_RATE_LIMIT})
                    continue
            if item.get("method") == "eth_getLogs" and f.range_cap:
                span = _span(item)
                if span is not None and span[1] - span[0] + 1 > f.range_cap:
                    out[k] = self._refuse("range", item, Refusal(span[0], span[1], f.range_cap,
                                                                 span[0] + f.range_cap - 1))
                    continue
            forward.append(k)
        if forward:
            for k in forward:
                self.seen.append((items[k].get("method"), items[k].get("params")))
            upstream = self._forward([items[k] for k in forward])
            by_id = {a.get("id"): a for a in upstream}
            for k in forward:
                answer = by_id.get(items[k].get("id"))
                if answer is None:
                    answer = {"jsonrpc": "2.0", "id": items[k].get("id"),
                              "error": {"code": -32603, "message": "upstream answered nothing"}}
                out[k] = self._cap_logs(items[k], answer)
        return [a for a in out if a is not None]

    def _cap_logs(self, item: dict, answer: dict) -> tuple[int, dict]:
        cap = self.faults.log_cap
        logs = answer.get("result")
        if item.get("method") != "eth_getLogs" or not cap or not isinstance(logs, list) or len(logs) <= cap:
            return 200, answer
        span = _span(item)
        if span is None:
            return 200, answer
        ordered = sorted(logs, key=lambda lg: (int(lg["blockNumber"], 16), int(lg["logIndex"], 16)))
        safe_to = max(span[0], int(ordered[cap]["blockNumber"], 16) - 1)
        return self._refuse("log", item, Refusal(span[0], span[1], cap, safe_to))

    def _refuse(self, kind: str, item: dict, refusal: Refusal) -> tuple[int, dict]:
        wording = self._next(kind)
        self.injected[f"{kind}:{wording}"] += 1
        table = LOG_CAP_WORDINGS if kind == "log" else RANGE_CAP_WORDINGS
        status, error = table[wording](refusal)
        return status, {"jsonrpc": "2.0", "id": item.get("id"), "error": error}

    def _forward(self, items: list[dict]) -> list[dict]:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        resp = session.post(self.upstream, data=orjson.dumps(items), timeout=60,
                            headers={"Content-Type": "application/json"})
        answer = orjson.loads(resp.content)
        return answer if isinstance(answer, list) else [answer]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    failures: list[BaseException]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out, or a connection the proxy dropped on purpose, breaks the pipe of the
        # handler writing its answer: expected here. Anything else is a bug in the proxy: kept and raised
        # when the proxy closes, so a test cannot pass on a broken proxy.
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, OSError):
            self.failures.append(exc)


def _span(item: dict) -> tuple[int, int] | None:
    params = item.get("params") or [{}]
    flt = params[0] if isinstance(params[0], dict) else {}
    lo, hi = flt.get("fromBlock"), flt.get("toBlock")
    if not (isinstance(lo, str) and lo.startswith("0x") and isinstance(hi, str) and hi.startswith("0x")):
        return None
    return int(lo, 16), int(hi, 16)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)
