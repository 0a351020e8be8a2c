"""What a provider's answer means, as data: pure functions, no I/O.

Two questions are answered here. Of an HTTP answer: take it, send it again (here or at the next URL),
split the batch, or fail now (`classify_http`, `transport_failure`). Of a JSON-RPC error object: what
kind of error it is (`error_kind`), read from `WORDINGS`, the table of provider wordings with an
example of each and where it was seen. docs/rpc.md describes the behaviour and lists the sources.
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from indexer.errors import RpcError

ErrorKind = Literal[
    "reverted", "rate_limited", "response_too_large", "batch_too_large", "state_unavailable", "transient",
    "block_unavailable", "node_error",
]

# JSON-RPC error codes that a retry cannot fix: the request itself is wrong or the call reverted.
FINAL_CODES = frozenset({-32600, -32601, -32602, 3})

# Kinds of a batch item's error that are worth sending again in the next round of the batch.
RESEND_KINDS = frozenset({"rate_limited", "response_too_large", "transient", "block_unavailable"})
# Kinds of a call's error that a retry, after a pause or at another URL, can fix.
RETRY_KINDS = frozenset({"transient", "block_unavailable"})


# ------------------------------------------------------------------------------------- wordings
@dataclass(frozen=True)
class Wording:
    """One way a provider says what went wrong.

    `pattern` is a JSON-RPC error code, or a regex searched (ignoring case) in the error's text: the
    message, and for `batch_too_large` the message and the data together (jsonrpsee puts the limit in
    `data`). `example` is one message as the provider sends it, with the `code` and `data` it comes
    with; `source` says which provider and where it was seen.
    """

    kind: ErrorKind
    pattern: re.Pattern[str] | int
    example: str
    source: str
    code: int | None = None
    data: str | None = None

    def example_error(self) -> dict[str, Any]:
        """The example as the error object the provider sends."""
        error: dict[str, Any] = {"code": self.code, "message": self.example}
        if self.data is not None:
            error["data"] = self.data
        return error

    def matches_code(self, code: Any) -> bool:
        return isinstance(self.pattern, int) and code == self.pattern

    def matches_text(self, text: str) -> bool:
        return isinstance(self.pattern, re.Pattern) and self.pattern.search(text) is not None


def _words(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text), re.IGNORECASE)


# Batch-size refusals. A pattern may serve several providers' wordings.
_BATCH_TOO_LARGE = re.compile(r"batch(?: request| size)?(?: is| was)? too (?:large|big)", re.IGNORECASE)
_BATCH_LIMIT_EXCEEDED = re.compile(r"batch limit(?: \d+)? exceeded", re.IGNORECASE)
_EXCEEDS_BATCH_LIMIT = re.compile(r"exceeds? (?:the )?batch (?:size |request )?limit", re.IGNORECASE)
_REQUESTS_IN_BATCH_EXCEED = re.compile(r"requests in (?:a |the )?batch exceeds", re.IGNORECASE)
_EXCEEDED_MAX_BATCH_SIZE = re.compile(r"exceeded (?:the )?max(?:imum)? batch size", re.IGNORECASE)
_BATCH_SIZE_EXCEEDED = re.compile(r"batch size (?:limit )?exceeded", re.IGNORECASE)

_NO_PROVIDER_ON_FILE = "no provider's message on file: a generic form of the wording"

WORDINGS: tuple[Wording, ...] = (
    # -- the call reverted: the contract's answer, never retried
    Wording("reverted", 3, "execution reverted: pool over capacity, try again later",
            "geth and nodes built on it: code 3 for a revert that carries revert data", code=3),
    Wording("reverted", _words("revert"), "execution reverted",
            "geth (a revert without revert data, code -32000), anvil", code=-32000),
    # -- slow down: sent again after a backoff
    Wording("rate_limited", 429, "Your app has exceeded its compute units per second capacity. If you have "
            "retries enabled, you can safely ignore this message. If not, check out "
            "https://docs.alchemy.com/reference/throughput",
            "Alchemy: latticexyz/mud#1522, namehash/ensnode#1022", code=429),
    Wording("rate_limited", _words("capacity"), "Your app has exceeded its compute units per second capacity.",
            "Alchemy (code 429): namehash/ensnode#1022", code=429),
    Wording("rate_limited", _words("rate limit"), "daily request count exceeded, request rate limited",
            "Infura: xclud/web3dart#24, blockscout/blockscout#7339", code=-32005),
    Wording("rate_limited", _words("rate limit"), "rate limit exceeded",
            "Tenderly gateway: fluencelabs/dev-rewards#20; Ankr (code -31999): Ankr-network/ankr-docs#1645",
            code=-32005),
    Wording("rate_limited", _words("rate limit"), "Rate limit exceeded", "TheRPC: therpc.io docs, rate limits",
            code=-32029),
    Wording("rate_limited", _words("too many requests"),
            '429 Too Many Requests: {"jsonrpc":"2.0","error":{"code":-32016,"message":"over rate limit"},'
            '"id":2239375}\n', "Base's public endpoint: base/node#368", code=-32000),
    Wording("rate_limited", _words("too many requests"), "Too many requests", "Wetez: docs.wetez.io, errors",
            code=429),
    Wording("rate_limited", _words("rate-limit"), "rate-limited", _NO_PROVIDER_ON_FILE, code=-32000),
    Wording("rate_limited", _words("try again"), "server busy, try again later", _NO_PROVIDER_ON_FILE,
            code=-32000),
    Wording("rate_limited", _words("throttl"), "request throttled", _NO_PROVIDER_ON_FILE, code=-32000),
    Wording("rate_limited", _words("limit exceeded"), "limit exceeded",
            "Infura and providers that follow EIP-1474's -32005: viem LimitExceededRpcError, alloy, eRPC", code=-32005),
    Wording("rate_limited", _words("credits limited"), "credits limited to 6000/sec",
            "alloy's retry rules (-32012)", code=-32012),
    Wording("rate_limited", _words("request limit reached"), "100/second request limit reached - reduce calls "
            "per second or upgrade your account at quicknode.com", "QuickNode (-32007): alloy, eRPC", code=-32007),
    Wording("rate_limited", _words("rate exceeded"), "rate exceeded", "alloy's retry rules", code=-32000),
    Wording("rate_limited", _words("maximum number of concurrent requests"),
            "maximum number of concurrent requests exceeded", "alloy's retry rules", code=-32000),
    Wording("rate_limited", _words("exceeded the quota"), "Exceeded the quota usage", "eRPC's capacity rules",
            code=-32000),
    # -- the backend behind the provider is down or overloaded: sent again, at another URL when there is one
    Wording("transient", _words("unable to complete request at this time"), "Unable to complete request at this time.",
            "public providers, sent with HTTP 200 (the issue brief; eRPC and Infura name code -32001)", code=-32001),
    Wording("transient", _words("no backend is currently healthy"), "no backend is currently healthy to serve traffic",
            "public load-balanced providers (Base's public endpoint: Ponder getLogsRetryHelper.ts, 'base')",
            code=-32000),
    Wording("transient", _words("upstream connect error"),
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            "Envoy-fronted providers (eRPC retries it as a server error)", code=-32000),
    Wording("transient", _words("request timed out"), "request timed out", "Ponder and eRPC retry it",
            code=-32000),
    Wording("transient", _words("execution aborted (timeout"), "execution aborted (timeout = 5s)",
            "go-ethereum's RPC EVM timeout (eth_call)", code=-32000),
    Wording("transient", _words("under too much load"), "server is under too much load, try later",
            "eRPC's capacity rules", code=-32000),
    Wording("transient", _words("no server available"), "No server available", "eRPC's capacity rules",
            code=-32000),
    Wording("transient", -32603, "internal error", "EIP-1474 -32603 (viem InternalRpcError, retried)",
            code=-32603),
    # -- geth's answer to the calls past its batch response size limit: sent again, in a later round
    Wording("response_too_large", -32003, "response too large",
            "go-ethereum rpc/errors.go errMsgResponseTooLarge (errcodeResponseTooLarge)", code=-32003),
    # -- a batch refused for its size: split and sent again
    Wording("batch_too_large", _BATCH_TOO_LARGE, "batch too large",
            "geth and nodes built on it (Base's op-geth): go-ethereum rpc/errors.go errMsgBatchTooLarge, "
            "go-ethereum#26681; base/node#234", code=-32600),
    Wording("batch_too_large", _BATCH_TOO_LARGE, "The batch request was too large",
            "jsonrpsee (Substrate-based EVM nodes): paritytech/jsonrpsee#1107", code=-32010,
            data="Exceeded max limit of 100"),
    Wording("batch_too_large", _BATCH_TOO_LARGE, "Batch size too large", "a form named in the issue brief",
            code=-32600),
    Wording("batch_too_large", _BATCH_LIMIT_EXCEEDED, "batch limit 100 exceeded: 142 requests given",
            "Erigon (id null): erigontech/erigon#7072, #7090", code=-32000),
    Wording("batch_too_large", _BATCH_LIMIT_EXCEEDED, "batch limit exceeded",
            "a TRON gateway: fystack/multichain-indexer#19", code=-32007),
    Wording("batch_too_large", _EXCEEDS_BATCH_LIMIT, "request exceeds batch limit",
            "a form named in the issue brief", code=-32600),
    Wording("batch_too_large", _REQUESTS_IN_BATCH_EXCEED,
            "Number of requests in batch exceeds --rpc-max-batch-size.", "Besu: besu-eth/besu#4951", code=-32602),
    Wording("batch_too_large", _EXCEEDED_MAX_BATCH_SIZE, "Exceeded maximum batch size",
            "Acala's EVM adapter: AcalaNetwork/bodhi.js#383", code=-32600),
    Wording("batch_too_large", _BATCH_SIZE_EXCEEDED, "Batch size limit exceeded",
            "Nethermind: src/Nethermind/Nethermind.JsonRpc/JsonRpcProcessor.cs (ErrorCodes.LimitExceeded)",
            code=-32005),
    # -- the node holds no state for an old block (not an archive node)
    Wording("state_unavailable", _words("blockoutofrange"),
            "BlockOutOfRangeError: block height is 0 but requested was 16", "anvil, a block past its head",
            code=-32000),
    Wording("state_unavailable", _words("missing trie node"),
            "missing trie node 9d3f2a0c5e71b0f4a6c8e2d1b3a5f7e9c1d3b5a7f9e1c3d5b7a9f1e3c5d7b9a1 (path )",
            "go-ethereum trie MissingNodeError (hash scheme, state pruned)", code=-32000),
    Wording("state_unavailable", _words("header not found"), "header not found",
            "go-ethereum eth/api_backend.go, a block it does not hold", code=-32000),
    Wording("state_unavailable", _words("state not available"), "state not available", _NO_PROVIDER_ON_FILE,
            code=-32000),
    Wording("state_unavailable", _words("historical state"),
            "historical state 9d3f2a0c5e71b0f4a6c8e2d1b3a5f7e9c1d3b5a7f9e1c3d5b7a9f1e3c5d7b9a1 is not available",
            "go-ethereum triedb/pathdb (path scheme)", code=-32000),
    Wording("state_unavailable", _words("pruned"), "state at block #17000000 is pruned",
            "reth ProviderError::StateAtBlockPruned", code=-32000),
    Wording("state_unavailable", _words("state histories"), "state histories haven't been fully indexed yet",
            "go-ethereum triedb/pathdb (path scheme)", code=-32000),
    Wording("state_unavailable", _words("required data unavailable"), "required data unavailable",
            _NO_PROVIDER_ON_FILE, code=-32000),
    # -- the provider's backend has not seen the block yet (a load-balanced backend behind the head)
    Wording("block_unavailable", _words("unknown block"), "unknown block",
            "go-ethereum eth/filters/api.go errUnknownBlock (eth_getLogs by blockHash): go-ethereum#24078",
            code=-32000),
    Wording("block_unavailable", _words("block not found"), "block not found", "eRPC's missing-data rules",
            code=-32000),
    Wording("block_unavailable", _words("could not find block"), "could not find block", "eRPC's missing-data rules",
            code=-32000),
    Wording("block_unavailable", _words("not yet available on the node"),
            "block not found for eth_getLogs, requested toBlock 120 is not yet available on the node "
            "(latestBlock: 118, finalizedBlock: 86)", "eRPC enforceGetLogsBlockRange", code=-32000),
    Wording("block_unavailable", _words("after last accepted block"),
            "requested to block is after last accepted block", "Avalanche (subsquid ds-rpc tests)", code=-32000),
    Wording("block_unavailable", _words("beyond current head block"), "block range extends beyond current head block",
            "reth FilterBlockRangeError (subsquid retries it)", code=-32602),
    Wording("block_unavailable", _words("not currently canonical"), "block 0x3a... not currently canonical",
            "eRPC's missing-data rules", code=-32000),
    Wording("state_unavailable", _words("not available for block"),
            "World state not available for block number (block hash): 17000000 "
            "(0x9d3f2a0c5e71b0f4a6c8e2d1b3a5f7e9c1d3b5a7f9e1c3d5b7a9f1e3c5d7b9a1)",
            "Besu BlockSimulator (the world state of an old block)", code=-32000),
)


def wordings(kind: ErrorKind) -> tuple[Wording, ...]:
    return tuple(w for w in WORDINGS if w.kind == kind)


_BY_KIND: dict[str, tuple[Wording, ...]] = {w.kind: wordings(w.kind) for w in WORDINGS}


def _code_says(kind: str, code: Any) -> bool:
    return any(w.matches_code(code) for w in _BY_KIND[kind])


def _text_says(kind: str, text: str) -> bool:
    return any(w.matches_text(text) for w in _BY_KIND[kind])


def _message(error: dict) -> str:
    return str(error.get("message", ""))


def _error_text(error: dict) -> str:
    data = error.get("data")
    return f"{error.get('message', '')} {data if data is not None else ''}"


# ------------------------------------------------------------------------------ error objects
def is_batch_too_large(error: dict) -> bool:
    """The provider refused the whole batch for its size (read from the message and the data)."""
    return _text_says("batch_too_large", _error_text(error))


def is_rate_limited(error: dict) -> bool:
    """An error object that says "slow down", as some providers send instead of HTTP 429.

    Code 429 always is. Otherwise a revert never is, whatever its reason says ("over capacity, try
    again" is a contract's answer), nor is an error with a final code (the request itself is wrong).
    """
    code = error.get("code")
    if _code_says("rate_limited", code):
        return True
    message = _message(error)
    if code in FINAL_CODES or _text_says("reverted", message):
        return False
    return _text_says("rate_limited", message)


def is_reverted(error: dict) -> bool:
    """The call reverted: code 3, or "revert" in the message (in the whole object when it has none)."""
    return _code_says("reverted", error.get("code")) or _text_says("reverted", str(error.get("message", str(error))))


def error_kind(error: dict, *, in_batch: bool = False) -> ErrorKind:
    """The kind of a JSON-RPC error object; the first that applies wins.

    `batch_too_large` only for the answer to a batch (`in_batch`), then `rate_limited`,
    `response_too_large` (code -32003), `reverted`, `transient` (a backend's trouble), `block_unavailable`
    (a backend that has not seen the block yet), `state_unavailable` (no state for an old block), else
    `node_error`.
    """
    if in_batch and is_batch_too_large(error):
        return "batch_too_large"
    if is_rate_limited(error):
        return "rate_limited"
    if _code_says("response_too_large", error.get("code")):
        return "response_too_large"
    if is_reverted(error):
        return "reverted"
    if _code_says("transient", error.get("code")) or _text_says("transient", _message(error)):
        return "transient"
    if _text_says("block_unavailable", _message(error)):
        return "block_unavailable"
    if _text_says("state_unavailable", _message(error)):
        return "state_unavailable"
    return "node_error"


def call_error_kind(error: dict) -> Literal["reverted", "node_error"]:
    """The kind an RpcError carries for an error the node returned for the call itself."""
    return "reverted" if is_reverted(error) else "node_error"


def is_state_unavailable(exc: RpcError) -> bool:
    """The node answered that it holds no state for the block asked for."""
    return _text_says("state_unavailable", str(exc))


# Wordings that say the state was there and is gone (pruned), never that the block is still to come.
_PRUNED = re.compile(r"missing trie node|is pruned|historical state .* is not available|state histories|"
                     r"world state not available for block", re.IGNORECASE)
# anvil: "BlockOutOfRangeError: block height is 728 but requested was 16"
_OUT_OF_RANGE = re.compile(r"block height is (\d+) but requested was (\d+)", re.IGNORECASE)


def is_state_pruned(exc: RpcError) -> bool:
    """The node says it held the block's state and no longer does: no wait makes it come back. Unlike
    "header not found" (a block a lagging backend has not seen yet, or one it does not hold), these say so
    plainly: a pruned trie or history, or anvil's height at or above the block asked for."""
    text = str(exc)
    if _PRUNED.search(text):
        return True
    m = _OUT_OF_RANGE.search(text)
    return m is not None and int(m.group(2)) <= int(m.group(1))


# A limit the refusal names: Erigon "batch limit 100 exceeded", jsonrpsee data "Exceeded max limit of 100".
_BATCH_LIMIT = re.compile(r"batch limit (\d+)|max(?:imum)? (?:batch )?(?:size|limit) of (\d+)", re.IGNORECASE)


def batch_limit_of(error: dict) -> int | None:
    """The batch size a refusal names, if any."""
    return batch_limit_in(_error_text(error).encode())


def batch_limit_in(text: bytes) -> int | None:
    match = _BATCH_LIMIT.search(text.decode(errors="replace"))
    if match is None:
        return None
    return int(next(g for g in match.groups() if g))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds or as an HTTP date (RFC 9110 section 10.2.3); a past date is 0.

    `now` is the current Unix time for the date form (the clock when not given).
    """
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
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# ------------------------------------------------------------------------------ HTTP answers
@dataclass(frozen=True)
class Accept:
    """The answer stands: parsed JSON, or the raw bytes of a plain success."""

    answer: Any


@dataclass(frozen=True)
class Retry:
    """Send the request again. `failover`: at once to an untried URL, when there is one.
    `retry_after`: the seconds the provider asked for, if it did. `error` is raised when the
    retries run out; its kind is the counter the failure goes to."""

    error: RpcError
    failover: bool = False
    retry_after: float | None = None

    @property
    def kind(self) -> str:
        return self.error.kind


@dataclass(frozen=True)
class BatchTooLarge:
    """The provider refused the batch for its size; `limit` is the size it named, if any."""

    detail: str
    limit: int | None


@dataclass(frozen=True)
class Fail:
    """No retry can fix this: raise `error`."""

    error: RpcError

    @property
    def kind(self) -> str:
        return self.error.kind


Verdict = Accept | Retry | BatchTooLarge | Fail


def transport_failure(kind: str, message: str) -> Retry:
    """No answer at all (a timeout, a refused or dropped connection): try the next URL."""
    return Retry(RpcError(message, kind=kind), failover=True)


def is_plain_success(status: int, content: bytes) -> bool:
    """A 200 with no error object anywhere in it: good to hand back unparsed."""
    return status == 200 and b'"error"' not in content


def _error_dict(answer: Any) -> dict | None:
    error = answer.get("error") if isinstance(answer, dict) else None
    return error if isinstance(error, dict) else None


def _is_call_error(answer: Any) -> bool:
    """A JSON-RPC error object about the call itself (not about the request's size)."""
    error = _error_dict(answer)
    return error is not None and not is_batch_too_large(error)


def classify_http(
    status: int, answer: Any, content: bytes, *, is_batch: bool, url: str, retry_after: str | None = None
) -> Verdict:
    """What to do with one HTTP answer: `answer` is the parsed body (None when it is not JSON),
    `content` the raw body, `retry_after` the Retry-After header."""
    if status == 429:
        error = RpcError(f"{url}: rate limited (HTTP 429)", kind="rate_limited", code=429)
        return Retry(error, retry_after=parse_retry_after(retry_after))
    if status >= 500:
        return Retry(_http_5xx(status, answer, url), failover=True)
    if status == 413 and not _is_call_error(answer):
        # Request Entity Too Large with no JSON-RPC error of its own: the body was too big.
        if is_batch:
            return BatchTooLarge(f"HTTP 413 from {url}", batch_limit_in(content))
        return Fail(RpcError(f"{url}: HTTP 413, request body too large", kind="too_large", code=413))
    if answer is None:
        kind = "http_4xx" if status >= 400 else "bad_response"
        error = RpcError(f"{url}: HTTP {status}, not JSON: {content[:200]!r}", kind=kind)
        return Retry(error, failover=status >= 400)  # a misconfigured URL (403, 404): try another one
    if status >= 400 and isinstance(answer, dict) and "error" not in answer:
        return Fail(RpcError(f"{url}: HTTP {status}: {answer!r:.200}", kind="http_4xx", code=status))
    error = _error_dict(answer)
    if error is not None:
        kind = error_kind(error, in_batch=is_batch)
        if kind == "batch_too_large":
            return BatchTooLarge(str(error.get("message")), batch_limit_of(error))
        if kind == "rate_limited":
            # A rate limit sent as an error object instead of HTTP 429.
            return Retry(RpcError(f"{url}: rate limited: {error.get('message', error)}", code=error.get("code"),
                                  kind="rate_limited", data=error.get("data")))
        if kind in RETRY_KINDS and not is_batch:
            # A backend's trouble, or a backend behind the others (sent with HTTP 200): another try, at
            # another URL when there is one, may meet a healthy or an up-to-date backend.
            return Retry(RpcError(f"{url}: {error.get('message', error)}", code=error.get("code"), kind=kind,
                                  data=error.get("data")), failover=True)
    # Providers answer JSON-RPC errors with 200, 400 (Alchemy) or 413 (QuickNode): the error object,
    # not the status, says what went wrong.
    return Accept(answer)


def _http_5xx(status: int, answer: Any, url: str) -> RpcError:
    error = _error_dict(answer)
    detail = f": {error.get('message')}" if error is not None else ""
    return RpcError(f"{url}: HTTP {status}{detail}", kind="http_5xx", code=status,
                    data=error.get("data") if error is not None else None)
