"""A JSON-RPC proxy between the indexer and anvil that misbehaves the way real providers do.

Faults are configured per proxy and are deterministic for a given seed: log-count caps and block-range
caps on `eth_getLogs` answered in real providers' wordings (rotating through several), batch-size caps
(HTTP 413 or an error object, in several node implementations' wordings), HTTP 429 with Retry-After,
HTTP 5xx, rate-limit errors on single items of a batch, dropped connections, slow answers. The wordings
and their sources are listed in docs/rpc.md. Loopback only: it binds 127.0.0.1 and forwards to a local
upstream.

Three faults of public providers come on top, each with its own seeded random stream (turning one on
changes nothing in the others' draws):

- duplicated logs: a successful eth_getLogs answer repeats some log objects (same blockHash and
  logIndex), right after the original or elsewhere in the list (thirdweb on BSC, Sepolia providers:
  ponder-sh/ponder#2182, #2309);
- transient errors with HTTP 200: a call, single or inside a batch, is answered with an error object
  such as Alchemy's -32001 "Unable to complete request at this time." or proxyd's "no backend is
  currently healthy to serve traffic", and answered normally when it is sent again;
- a load balancer with a backend behind the head: a request (a whole batch) is served, now and then,
  by a backend K blocks behind the real head, which knows nothing of the newer blocks: its head is
  head-K, newer blocks are null, eth_getLogs ranges are silently cut at head-K, blockHash filters of
  newer blocks are refused ("unknown block"), state calls at newer blocks fail ("header not found").
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

# Transient refusals, sent with HTTP 200 as one call's error object: sending the call again later works.
TRANSIENT_WORDINGS: dict[str, dict[str, Any]] = {
    # Alchemy shedding load (HTTP 503 on some endpoints, 200 on others)
    "alchemy": {"code": -32001, "message": "Unable to complete request at this time."},
    # op-stack proxyd with every backend out of its pool (Base Sepolia, other public op-stack endpoints)
    "proxyd": {"code": -32000, "message": "no backend is currently healthy to serve traffic"},
}

# What a backend behind the head answers for what it has not seen yet (geth's wordings; anvil says the same
# "unknown block" for a blockHash filter of a block it does not know).
LAG_UNKNOWN_BLOCK = {"code": -32000, "message": "unknown block"}
LAG_HEADER_NOT_FOUND = {"code": -32000, "message": "header not found"}
LAG_HASH_NOT_FOUND = {"code": -32000, "message": "header for hash not found"}

# Methods reading state at a block, and the position of their block parameter.
STATE_METHODS = {"eth_call": 1, "eth_getBalance": 1, "eth_getCode": 1, "eth_getTransactionCount": 1,
                 "eth_estimateGas": 1, "eth_getStorageAt": 2, "eth_getProof": 2}


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
    # duplicated logs
    dup_logs: float = 0.0  # probability for each log of a successful eth_getLogs answer to be sent twice
    dup_adjacent: float = 0.5  # probability for such a repeat to follow its original (else: elsewhere)
    # transient error objects with HTTP 200
    transient_rate: float = 0.0  # probability for a call (single or in a batch) to be refused for now
    transient_wordings: tuple[str, ...] = tuple(TRANSIENT_WORDINGS)
    transient_repeat: int = 1  # the same call (method and params) is refused at most this many times in a row
    transient_methods: tuple[str, ...] = ()  # only calls of these methods (empty: every method)
    # a load-balanced provider with a backend behind the head
    lag_rate: float = 0.0  # probability for a request (a whole batch) to go to the lagging backend
    lag_blocks: int | tuple[int, int] = (1, 3)  # how far behind it is: fixed, or drawn per request in [lo, hi]
    lag_head_ttl: float = 0.05  # seconds the real head (anvil's eth_blockNumber) is cached
    seed: int = 0

    def __post_init__(self) -> None:
        if self.transient_repeat < 1:
            raise ValueError("transient_repeat must be at least 1: a transient error ends")
        unknown = set(self.transient_wordings) - set(TRANSIENT_WORDINGS)
        if unknown or not self.transient_wordings:
            raise ValueError(f"unknown transient wordings {sorted(unknown)}; known: {sorted(TRANSIENT_WORDINGS)}")
        lo, hi = (self.lag_blocks, self.lag_blocks) if isinstance(self.lag_blocks, int) else self.lag_blocks
        if not 0 <= lo <= hi:
            raise ValueError(f"lag_blocks must be an int >= 0 or a range (lo, hi) with 0 <= lo <= hi, "
                             f"not {self.lag_blocks!r}")


@dataclass(frozen=True)
class LagView:
    """The backend one request went to: `behind` blocks behind the real head `head`."""

    behind: int
    head: int

    @property
    def top(self) -> int:
        """The lagging backend's own head."""
        return max(0, self.head - self.behind)


@dataclass
class _State:
    requests: int = 0
    items: int = 0
    rotation: Counter = field(default_factory=Counter)


class FaultProxy:
    """`with FaultProxy(anvil.url, Faults(...)) as proxy:` then point an RpcClient at `proxy.url`.

    `injected` counts what was injected. Besides the older keys ("drop", "429", "http_502", "http_503",
    "slow", "item_429", "batch:<wording>", "log:<wording>", "range:<wording>"):

    - "dup_logs:adjacent", "dup_logs:elsewhere": repeated log objects, by where the repeat went;
      "dup_logs:answers": eth_getLogs answers holding at least one repeat;
    - "transient:<wording>": calls answered with a transient error object;
    - "lag": requests served by the lagging backend, "lag:behind_<K>" of them K blocks behind;
      "lag:head": eth_blockNumber answered head-K; "lag:tag": a block tag (latest, pending, safe,
      finalized) read as the lagging backend's own; "lag:null_block": blocks (by number, by hash, their
      receipts) answered null; "lag:null_tx": transactions and receipts of newer blocks answered null;
      "lag:logs_incomplete": eth_getLogs answers ending at head-K where the up-to-date backend's would
      go further (a toBlock above head-K, or "latest"), "lag:logs_hidden": the logs left out of them; "lag:unknown_block": blockHash filters refused; "lag:header_not_found": state calls refused.

    `lagged` holds, per request the lagging backend served, (request number, K, real head).
    """

    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        host = urlparse(upstream).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"FaultProxy forwards to loopback only, not to {upstream}")
        self.upstream = upstream
        self.faults = faults or Faults()
        self.injected: Counter = Counter()  # faults actually injected, by kind and wording
        # (method, params) of the calls that reached a backend: anvil, or the lagging one
        self.seen: deque[tuple[str, list]] = deque(maxlen=50_000)
        self.lagged: deque[tuple[int, int, int]] = deque(maxlen=50_000)  # (request, K, real head)
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
        # The newer faults draw from streams of their own, so that turning one on leaves the draws of the
        # others (and so every older seeded configuration) as they were.
        seed = self.faults.seed
        self._rng_dup = random.Random(f"{seed}:dup_logs")
        self._rng_transient = random.Random(f"{seed}:transient")
        self._rng_lag = random.Random(f"{seed}:lag")
        order = list(self.faults.transient_wordings)
        random.Random(f"{seed}:transient_wordings").shuffle(order)
        self._order["transient"] = order
        self._streaks: dict[tuple[Any, bytes], int] = {}  # transient refusals in a row, by call
        self._head: tuple[float, int] | None = None  # (monotonic time, real head) last read
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
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
            answers = self._answer_items(payload, in_batch=True, lag=self._pick_backend(n))
            _send(handler, 200, orjson.dumps([a for _, a in answers]))
        else:
            ((status, answer),) = self._answer_items([payload], in_batch=False, lag=self._pick_backend(n))
            _send(handler, status, orjson.dumps(answer))

    def _count(self, key: str, n: int = 1) -> None:
        with self._count_lock:
            self.injected[key] += n

    def _answer_items(self, items: list[dict], *, in_batch: bool,
                      lag: LagView | None = None) -> list[tuple[int, dict]]:
        """Answers for `items` in order: refused ones made up here, the rest forwarded as one batch.

        With `lag`, the lagging backend serves the calls that get past the faults: it makes up some
        answers, rewrites some calls and trims some answers.
        """
        f = self.faults
        out: list[tuple[int, dict] | None] = [None] * len(items)
        forward: list[int] = []
        sent: dict[int, dict] = {}  # what is forwarded in place of items[k]
        trims: dict[int, Callable[[dict], dict]] = {}
        for k, item in enumerate(items):
            if in_batch and f.item_429_every:
                with self._lock:
                    self._state.items += 1
                    hit = self._state.items % f.item_429_every == 0
                if hit:
                    self.injected["item_429"] += 1
                    out[k] = (200, {"jsonrpc": "2.0", "id": item.get("id"), "error": ITEM_RATE_LIMIT})
                    continue
            refusal = self._transient(item)
            if refusal is not None:
                out[k] = (200, refusal)
                continue
            if item.get("method") == "eth_getLogs" and f.range_cap:
                span = _span(item)
                if span is not None and span[1] - span[0] + 1 > f.range_cap:
                    out[k] = self._refuse("range", item, Refusal(span[0], span[1], f.range_cap,
                                                                 span[0] + f.range_cap - 1))
                    continue
            self.seen.append((item.get("method"), item.get("params")))
            if lag is not None:
                made, rewritten, trim = self._lag_plan(item, lag)
                if made is not None:
                    out[k] = (200, made)
                    continue
                if rewritten is not item:
                    sent[k] = rewritten
                if trim is not None:
                    trims[k] = trim
            forward.append(k)
        if forward:
            upstream = self._forward([sent.get(k, items[k]) for k in forward])
            by_id = {a.get("id"): a for a in upstream}
            for k in forward:
                answer = by_id.get(items[k].get("id"))
                if answer is None:
                    answer = {"jsonrpc": "2.0", "id": items[k].get("id"),
                              "error": {"code": -32603, "message": "upstream answered nothing"}}
                elif k in trims:
                    answer = trims[k](answer)
                status, answer = self._cap_logs(items[k], answer)
                if status == 200:
                    answer = self._duplicate_logs(items[k], answer)
                out[k] = (status, answer)
        return [a for a in out if a is not None]

    # -- transient errors ---------------------------------------------------------------------
    def _transient(self, item: dict) -> dict | None:
        """A transient error object for `item`, or None to answer it."""
        f = self.faults
        if not f.transient_rate:
            return None
        method = item.get("method")
        if f.transient_methods and method not in f.transient_methods:
            return None
        key = (method, orjson.dumps(item.get("params"), option=orjson.OPT_SORT_KEYS))
        with self._lock:
            streak = self._streaks.pop(key, 0)
            if streak >= f.transient_repeat or self._rng_transient.random() >= f.transient_rate:
                return None
            self._streaks[key] = streak + 1
        wording = self._next("transient")
        self._count(f"transient:{wording}")
        return {"jsonrpc": "2.0", "id": item.get("id"), "error": dict(TRANSIENT_WORDINGS[wording])}

    # -- duplicated logs ----------------------------------------------------------------------
    def _duplicate_logs(self, item: dict, answer: dict) -> dict:
        """`answer` with some of its logs sent twice: right after the original, or elsewhere."""
        f = self.faults
        logs = answer.get("result")
        if not f.dup_logs or item.get("method") != "eth_getLogs" or not isinstance(logs, list) or not logs:
            return answer
        # A repeat goes right after its original, or just before another log (or at the end), never next
        # to its original.
        n = len(logs)
        before: list[list[dict]] = [[] for _ in range(n + 1)]
        after: list[dict | None] = [None] * n
        placed: Counter = Counter()
        with self._lock:
            rng = self._rng_dup
            for i, log in enumerate(logs):
                if rng.random() >= f.dup_logs:
                    continue
                if rng.random() < f.dup_adjacent or n < 2:
                    after[i] = dict(log)
                    placed["adjacent"] += 1
                else:
                    slot = rng.randrange(n - 1)  # any slot but i and i + 1
                    before[slot if slot < i else slot + 2].append(dict(log))
                    placed["elsewhere"] += 1
        out: list[dict] = []
        for i, log in enumerate(logs):
            out += before[i]
            out.append(log)
            if after[i] is not None:
                out.append(after[i])
        out += before[n]
        if not placed:
            return answer
        for where, count in placed.items():
            self._count(f"dup_logs:{where}", count)
        self._count("dup_logs:answers")
        return {**answer, "result": out}

    # -- the lagging backend ------------------------------------------------------------------
    def _pick_backend(self, request: int) -> LagView | None:
        """The lagging backend's view for this request, or None for the up-to-date backend."""
        f = self.faults
        if not f.lag_rate:
            return None
        with self._lock:
            if self._rng_lag.random() >= f.lag_rate:
                return None
            lo, hi = (f.lag_blocks, f.lag_blocks) if isinstance(f.lag_blocks, int) else f.lag_blocks
            behind = self._rng_lag.randint(lo, hi)
        head = self._real_head()
        if head is None:  # the upstream cannot say: the up-to-date backend answers
            return None
        self._count("lag")
        self._count(f"lag:behind_{behind}")
        self.lagged.append((request, behind, head))
        return LagView(behind, head)

    def _real_head(self) -> int | None:
        ttl = self.faults.lag_head_ttl
        with self._lock:
            if self._head is not None and time.monotonic() - self._head[0] < ttl:
                return self._head[1]
        number = self._ask("eth_blockNumber", [])
        if not isinstance(number, str):
            return None
        head = int(number, 16)
        with self._lock:
            self._head = (time.monotonic(), head)
        return head

    def _ask(self, method: str, params: list) -> Any:
        """One call to the upstream for the proxy's own needs (not in `seen`); None when it fails."""
        try:
            (answer,) = self._forward([{"jsonrpc": "2.0", "id": "faultproxy", "method": method, "params": params}])
        except (requests.RequestException, ValueError):
            return None
        return answer.get("result") if isinstance(answer, dict) else None

    def _hash_number(self, block_hash: Any) -> int | None:
        """The number of the block with this hash, None when the upstream does not know it."""
        block = self._ask("eth_getBlockByHash", [block_hash, False]) if isinstance(block_hash, str) else None
        return int(block["number"], 16) if isinstance(block, dict) else None

    def _lag_number(self, tag: Any, lag: LagView) -> tuple[int, int, bool] | None:
        """A block parameter read by the lagging backend: (its number there, the number the up-to-date
        backend reads, whether it was a tag); None when it is not one the proxy understands.

        "pending" is read as "latest"; "safe" and "finalized" lag as much as the head does.
        """
        if tag is None or tag in ("latest", "pending"):
            return lag.top, lag.head, True
        if tag == "earliest":
            return 0, 0, False
        if tag in ("safe", "finalized"):
            block = self._ask("eth_getBlockByNumber", [tag, False])
            if not isinstance(block, dict):
                return None
            real = int(block["number"], 16)
            return min(lag.top, max(0, real - lag.behind)), real, True
        if isinstance(tag, str) and tag.startswith("0x"):
            try:
                number = int(tag, 16)
            except ValueError:
                return None
            return number, number, False
        return None

    def _lag_plan(self, item: dict, lag: LagView) -> tuple[dict | None, dict, Callable[[dict], dict] | None]:
        """How the lagging backend serves `item`: (a made-up answer, or None and the call to forward, with
        an optional trim of the upstream answer)."""
        method = item.get("method")
        params = list(item.get("params") or [])
        rid = item.get("id")

        def result(value: Any) -> dict:
            return {"jsonrpc": "2.0", "id": rid, "result": value}

        def error(err: dict[str, Any]) -> dict:
            return {"jsonrpc": "2.0", "id": rid, "error": dict(err)}

        def with_param(i: int, value: Any) -> dict:
            new = params + [None] * (i + 1 - len(params)) if len(params) <= i else list(params)
            new[i] = value
            return {**item, "params": new}

        def null_above(key: str, counter: str) -> Callable[[dict], dict]:
            def trim(answer: dict) -> dict:
                got = answer.get("result")
                number = got.get(key) if isinstance(got, dict) else None
                if isinstance(number, str) and int(number, 16) > lag.top:
                    self._count(counter)
                    return {**answer, "result": None}
                return answer
            return trim

        if method == "eth_blockNumber":
            self._count("lag:head")
            return result(hex(lag.top)), item, None

        if method in ("eth_getBlockByNumber", "eth_getBlockReceipts") and params:
            block = params[0]
            if isinstance(block, dict):  # EIP-1898 form of eth_getBlockReceipts
                if "blockHash" in block:
                    number = self._hash_number(block["blockHash"])
                    if number is not None and number > lag.top:
                        self._count("lag:null_block")
                        return result(None), item, None
                    return None, item, None
                block = block.get("blockNumber")
            read = self._lag_number(block, lag)
            if read is None:
                return None, item, None
            number, _, was_tag = read
            if number > lag.top:
                self._count("lag:null_block")
                return result(None), item, None
            if was_tag:
                self._count("lag:tag")
                return None, with_param(0, hex(number)), None
            return None, item, None

        if method == "eth_getBlockByHash":
            return None, item, null_above("number", "lag:null_block")

        if method in ("eth_getTransactionReceipt", "eth_getTransactionByHash"):
            return None, item, null_above("blockNumber", "lag:null_tx")

        if method == "eth_getLogs" and params and isinstance(params[0], dict):
            flt = params[0]
            if "blockHash" in flt:
                number = self._hash_number(flt["blockHash"])
                if number is not None and number > lag.top:
                    self._count("lag:unknown_block")
                    return error(LAG_UNKNOWN_BLOCK), item, None
                return None, item, None
            lo_read = self._lag_number(flt.get("fromBlock"), lag)
            hi_read = self._lag_number(flt.get("toBlock"), lag)
            if lo_read is None or hi_read is None:
                return None, item, None
            lo, _, lo_tag = lo_read
            hi, hi_real, hi_tag = hi_read
            if lo_tag or hi_tag:
                self._count("lag:tag")
            upper = min(hi, lag.top)  # the last block the lagging backend has logs of
            reach = min(hi_real, lag.head)  # the last one the up-to-date backend would answer
            if reach <= upper:
                if not (lo_tag or hi_tag):
                    return None, item, None
                return None, with_param(0, {**flt, "fromBlock": hex(lo), "toBlock": hex(hi)}), None
            # The range reaches past the lagging backend's head: it answers what it has, silently.
            self._count("lag:logs_incomplete")
            if lo > reach:
                return result([]), item, None

            def cut(answer: dict) -> dict:
                logs = answer.get("result")
                if not isinstance(logs, list):
                    return answer
                kept = [lg for lg in logs if int(lg["blockNumber"], 16) <= upper]
                if len(kept) < len(logs):
                    self._count("lag:logs_hidden", len(logs) - len(kept))
                return {**answer, "result": kept}

            # ask for what the up-to-date backend would answer, to count what is left out
            return None, with_param(0, {**flt, "fromBlock": hex(lo), "toBlock": hex(reach)}), cut

        if method in STATE_METHODS:
            at = STATE_METHODS[method]
            block = params[at] if len(params) > at else "latest"
            if isinstance(block, dict):  # EIP-1898: {"blockHash": ...} or {"blockNumber": ...}
                if "blockHash" in block:
                    number = self._hash_number(block["blockHash"])
                    if number is not None and number > lag.top:
                        self._count("lag:header_not_found")
                        return error(LAG_HASH_NOT_FOUND), item, None
                    return None, item, None
                block = block.get("blockNumber")
            read = self._lag_number(block, lag)
            if read is None:
                return None, item, None
            number, _, was_tag = read
            if number > lag.top:
                self._count("lag:header_not_found")
                return error(LAG_HEADER_NOT_FOUND), item, None
            if was_tag:
                self._count("lag:tag")
                return None, with_param(at, hex(number)), None
            return None, item, None

        return None, item, None

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
        self._count(f"{kind}:{wording}")
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
