"""`eth_getLogs` over block ranges that adapt to what the provider accepts.

One filter per range covers every configured address and topic. The range grows while answers are
small and shrinks when a provider refuses it, to the range the provider suggests when its message names
one. Providers word their refusals in many ways; `parse_range_error` is the one place that reads them
(docs/rpc.md lists each wording with its source). Logs stay the raw JSON dicts the node returned: the
hot path decodes topics and data directly, never through web3's per-log formatting.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from indexer.chain.retry import PASSING_KINDS, RetryPolicy
from indexer.chain.rpc import RpcClient
from indexer.errors import RpcError

log = logging.getLogger(__name__)

Topics = Sequence[Sequence[str] | str | None]

# ------------------------------------------------------------------------------------- parsing errors

_HEX_RANGE = r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]"
_NUM = r"(\d[\d,._]*\s*[kK]?)"


@dataclass(frozen=True)
class RangeAdvice:
    """What a provider's refusal of an `eth_getLogs` range says to do next.

    `retry_to` is the toBlock to ask for next, from the same fromBlock; it equals the requested
    toBlock only when the request was already a single block (nothing left to shrink).
    """

    wording: str  # which recognised wording matched (a provider family), for counters and logs
    retry_to: int
    suggested: tuple[int, int] | None = None  # the (fromBlock, toBlock) the provider named
    max_blocks: int | None = None  # the blocks-per-request limit the provider named

    @property
    def kind(self) -> Literal["suggested", "max_blocks", "shrink"]:
        if self.suggested is not None:
            return "suggested"
        if self.max_blocks is not None:
            return "max_blocks"
        return "shrink"


# A provider names a range to use instead: (wording, pattern with two hex groups).
_SUGGESTS_RANGE: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("alchemy", re.compile(r"this block range should work:\s*" + _HEX_RANGE, re.IGNORECASE)),
    ("infura/zksync/thirdweb", re.compile(r"try with this block range\s*" + _HEX_RANGE, re.IGNORECASE)),
)

# A provider names its blocks-per-request limit: (wording, pattern with one number group).
_NAMES_LIMIT: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("cloudflare/cdk-erigon", r"max range:\s*" + _NUM),
        ("quicknode/1rpc/blast", r"limited to an? " + _NUM + r"(?: blocks?)? range"),
        ("blockpi", r"limited to " + _NUM + r" blocks?"),
        ("alchemy", r"up to an? " + _NUM + r" block range"),
        ("avalanche", r"maximum is set to " + _NUM),
        ("thirdweb", r"maximum allowed number of requested blocks is " + _NUM),
        ("tenderly/thirdweb", r"range \d+ is bigger than range limit " + _NUM),
        ("infura", r"range \d+ exceeds limit of " + _NUM),
        ("blast", r"exceeds the range allowed for your plan \(\d+ > " + _NUM + r"\)"),
        ("coinbase", r"limit the query to at most " + _NUM + r" blocks"),
        ("moonbeam", r"block range is too wide \(maximum " + _NUM + r"\)"),
        ("reth/bsc/tron/publicnode/morph", r"max(?:imum)? block range(?: is)?\s*[:=]?\s*" + _NUM),
        ("ankr", r"maximum \[from, to\] blocks distance:\s*" + _NUM),
        ("swell", r"block range greater than " + _NUM + r" max"),
        ("somnia", r"block range exceeds " + _NUM),
        ("llamarpc/merkle", r"range is too large, max is " + _NUM + r" blocks"),
        ("harmony", r"query must be smaller than size " + _NUM),
        ("drpc", r"ranges over " + _NUM + r" blocks are not supported"),
    )
)

# A provider says the range or the answer is too big without a number: halve.
_SAYS_TOO_BIG: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("geth/zkevm", r"query returned more than \d+ results"),
        ("arbitrum", r"logs matched by query exceeds limit of \d+"),
        ("llamarpc/ankr", r"query exceeds max results"),
        ("alchemy", r"log response size exceeded"),
        ("response size", r"response size exceeded"),
        ("1rpc", r"response size should not greater than \d+ bytes"),
        ("optimism", r"backend response too large"),
        ("zksync", r"response is too big"),
        ("ankr", r"block range is too wide"),
        ("base/monad/optimism", r"block range (?:is )?too large"),
        ("cloudflare", r"range too large"),
        ("scroll", r"block range is bigger than maxblockrange"),
        ("candle", r"block range too high"),
        ("chainstack", r"block range limit exceeded"),
        ("altitude/erpc", r"range threshold exceeded"),
        ("erpc", r"exceeded max allowed"),
        ("morph", r"block range is larger than max block range"),
    )
)


def parse_range_error(message: str, data: object | None, requested: tuple[int, int]) -> RangeAdvice | None:
    """Read a provider's refusal of `eth_getLogs` over `requested` (fromBlock, toBlock, inclusive).

    Returns the provider's suggested range when its message names one, else the blocks-per-request
    limit it names, else a plain "shrink" when it says the range or the answer is too big; None when
    the error is not about range or size. `data` is the error object's `data` member: some providers
    put the wording there (Thirdweb, Tenderly) or the suggested range as fields (Infura's from/to).
    Pure: no I/O.
    """
    start, end = requested
    if end < start:
        raise ValueError(f"requested range {requested} ends before it starts")
    text = f"{message} {_flatten(data)}"
    for wording, pattern in _SUGGESTS_RANGE:
        match = pattern.search(text)
        if match:
            lo, hi = int(match.group(1), 16), int(match.group(2), 16)
            return _advice_for_suggestion(wording, (lo, hi), requested)
    if isinstance(data, dict) and _is_hex(data.get("from")) and _is_hex(data.get("to")):
        # Infura's -32005 carries the range as data {"from": "0x..", "to": "0x..", "limit": 10000}.
        return _advice_for_suggestion("infura", (int(data["from"], 16), int(data["to"], 16)), requested)
    for wording, pattern in _NAMES_LIMIT:
        match = pattern.search(text)
        if match:
            limit = _parse_number(match.group(1))
            if limit > 0:
                return RangeAdvice(wording, _shrunk_to(start, end, start + limit - 1), max_blocks=limit)
    for wording, pattern in _SAYS_TOO_BIG:
        if pattern.search(text):
            return RangeAdvice(wording, _halved_to(start, end))
    return None


def _advice_for_suggestion(wording: str, suggested: tuple[int, int], requested: tuple[int, int]) -> RangeAdvice:
    start, end = requested
    lo, hi = sorted(suggested)  # Alchemy has been seen to answer the range backwards (rindexer)
    # A suggestion that starts elsewhere still tells the size of a range that works.
    to = hi if lo == start else start + (hi - lo)
    return RangeAdvice(wording, _shrunk_to(start, end, to), suggested=suggested)


def _shrunk_to(start: int, end: int, to: int) -> int:
    """`to` when it shrinks [start, end]; a halving when it does not (the suggestion failed before)."""
    if start <= to < end:
        return to
    return _halved_to(start, end)


def _halved_to(start: int, end: int) -> int:
    return start + (end - start + 1) // 2 - 1 if end > start else start


def _parse_number(text: str) -> int:
    text = text.strip()
    scale = 1000 if text[-1] in "kK" else 1
    digits = re.sub(r"[^\d]", "", text)
    return int(digits) * scale if digits else 0


def _is_hex(value: object) -> bool:
    return isinstance(value, str) and value.startswith("0x") and len(value) > 2


def _flatten(data: object | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    try:
        return orjson.dumps(data).decode()
    except TypeError:
        return str(data)


# ------------------------------------------------------------------------------------- fetching logs


@dataclass(frozen=True)
class LogBatch:
    """The logs of blocks [from_block, to_block] in block order: the node's parsed JSON, or what the
    fetcher's `decode` made of its answer."""

    from_block: int
    to_block: int
    logs: Any  # list[dict] by default; the decoder's result (a Sized) when one is given
    pinned: Any = None  # what `pin(to_block)` answered just before the logs were read


@dataclass
class LogFetchStats:
    requests: int = 0
    batches: int = 0
    logs: int = 0
    ranges_shrunk: int = 0
    ranges_grown: int = 0
    refusals: Counter = field(default_factory=Counter)  # by wording (provider family)
    ranges_shrunk_dense: int = 0  # shrunk after an answer far above target_logs


class LogFetcher:
    """Fetches logs in adaptive block ranges and remembers what it learned across calls.

    The range starts at `initial_range` blocks, doubles after an answer with fewer than `target_logs`
    logs up to `max_range`, shrinks in proportion after an answer of more than four times
    `target_logs` (memory stays bounded on dense stretches), and shrinks when a provider refuses: to its suggested range, to the limit
    it names (kept as a hard ceiling from then on), or by half. A refusal without a named limit also
    caps growth at the size that worked, for `regrow_after` answers, so the fetcher does not bounce
    off the same wall every other request. Keep one LogFetcher per provider and reuse it across ticks.
    """

    def __init__(
        self,
        *,
        initial_range: int = 2_000,
        target_logs: int = 5_000,
        max_range: int = 100_000,
        regrow_after: int = 16,
    ) -> None:
        if not 1 <= initial_range <= max_range:
            raise ValueError(f"initial_range must be in [1, max_range={max_range}] (got {initial_range})")
        self.range = initial_range
        self.target_logs = target_logs
        self.max_range = max_range
        self.regrow_after = regrow_after
        self.limit: int | None = None  # a blocks-per-request limit a provider named: never exceeded
        self.soft_limit: int | None = None  # the size that worked after an unnamed refusal
        self._answers_at_soft_limit = 0
        self.stats = LogFetchStats()

    def iter_logs(
        self, rpc: RpcClient, addresses: Sequence[str], topics: Topics, start: int, end: int,
        *, decode: Callable[[bytes], Sized] | None = None, pin: Callable[[int], Any] | None = None,
        patience: RetryPolicy | None = None,
    ) -> Iterator[LogBatch]:
        """Logs of `addresses` matching `topics` in blocks [start, end], in block order.

        Batches cover [start, end] with no gap or overlap. Raises RpcError when the provider refuses
        even a single block, or for any error that is not about the range. `decode` takes the node's
        whole answer as bytes (no JSON parsing on the way) and returns the batch's logs, raising
        ValueError when the answer holds no list of logs. `pin` is called with each request's toBlock
        just before the request; its answer rides on the batch (the caller compares a block hash read
        before the logs with one read after them).
        """
        if not addresses:
            raise ValueError("iter_logs needs at least one address: an empty filter would match every contract")
        if start < 0 or end < start:
            raise ValueError(f"block range [{start}, {end}] is empty or negative")
        base = {"address": [a.lower() for a in addresses], "topics": _topics(topics)}
        pos = start
        deadline: float | None = None  # while a request keeps failing for a passing reason: when to give up
        waits = 0
        while pos <= end:
            size = self._size()
            to = min(end, pos + size - 1)
            self.stats.requests += 1
            params = [{**base, "fromBlock": hex(pos), "toBlock": hex(to)}]
            try:
                pinned = pin(to) if pin is not None else None
                logs = rpc.call("eth_getLogs", params) if decode is None else rpc.call_raw("eth_getLogs", params)
            except RpcError as exc:
                if self._shrink_after(exc, pos, to):
                    continue
                if patience is None or exc.kind not in PASSING_KINDS:
                    raise
                deadline = deadline if deadline is not None else time.monotonic() + patience.patience_s
                if time.monotonic() >= deadline:
                    raise
                delay = min(patience.delay(waits), max(0.0, deadline - time.monotonic()))
                log.warning("eth_getLogs [%d, %d] failed (%s: %s); trying again in %.1fs", pos, to, exc.kind, exc,
                            delay)
                time.sleep(delay)
                waits += 1
                continue
            deadline, waits = None, 0
            if decode is not None:
                try:
                    logs = decode(logs)
                except ValueError as exc:
                    raise RpcError(f"eth_getLogs [{pos}, {to}]: {exc}", kind="bad_response") from None
            elif not isinstance(logs, list):
                raise RpcError(f"eth_getLogs [{pos}, {to}]: expected a list, got {logs!r:.200}", kind="bad_response")
            self.stats.batches += 1
            self.stats.logs += len(logs)
            yield LogBatch(pos, to, logs, pinned)
            # Only an answer for the whole current range says whether a larger one would do; the short
            # tail of a sync tick says nothing about it.
            self._after_answer(len(logs), full=(to - pos + 1 >= size))
            pos = to + 1

    def _size(self) -> int:
        return max(1, self.range if self.limit is None else min(self.range, self.limit))

    def _shrink_after(self, exc: RpcError, start: int, end: int) -> bool:
        """Shrink the range after a refusal that says (or suggests) the range is too big; False when the
        error is about something else."""
        advice = parse_range_error(str(exc), exc.data, (start, end))
        if advice is None and exc.kind in ("timeout", "http_5xx", "transient") and end > start:
            # No wording, but a heavy range can time out or take the backend down (graph-node counts
            # Alchemy's 503 as "too many logs"; Ponder PR #2386 narrows the range on timeouts, and its
            # getLogsRetryHelper halves it on "no backend is currently healthy to serve traffic").
            advice = RangeAdvice(exc.kind, _halved_to(start, end))
        if advice is None:
            return False
        if end == start:
            raise RpcError(
                f"eth_getLogs refused even the single block {start} ({advice.wording}: {exc}); the logs of "
                "one block cannot be split, so use a provider without this limit for this range",
                code=exc.code, kind="range_refused", data=exc.data,
            ) from exc
        self.stats.ranges_shrunk += 1
        self.stats.refusals[advice.wording] += 1
        size = advice.retry_to - start + 1
        if advice.max_blocks is not None:
            self.limit = advice.max_blocks if self.limit is None else min(self.limit, advice.max_blocks)
        else:
            self.soft_limit = size
            self._answers_at_soft_limit = 0
        self.range = size
        log.info("eth_getLogs [%d, %d] refused (%s); next range %d blocks", start, end, advice.wording, size)
        return True

    def _after_answer(self, n_logs: int, *, full: bool) -> None:
        if self.soft_limit is not None:
            self._answers_at_soft_limit += 1
            if self._answers_at_soft_limit >= self.regrow_after:
                self.soft_limit = None  # the dense stretch may be over: let the range grow again
        if n_logs > 4 * self.target_logs and self.range > 1:
            # a dense stretch: answers this large cost memory and time; aim the next one at the target
            self.range = max(1, self.range * self.target_logs // n_logs)
            self.stats.ranges_shrunk_dense += 1
            return
        if not full or n_logs >= self.target_logs:
            return
        grown = min(self.range * 2, self.max_range)
        for cap in (self.limit, self.soft_limit):
            if cap is not None:
                grown = min(grown, cap)
        if grown > self.range:
            self.range = grown
            self.stats.ranges_grown += 1


def _topics(topics: Topics) -> list[Any]:
    out: list[Any] = []
    for t in topics:
        if t is None or isinstance(t, str):
            out.append(t.lower() if isinstance(t, str) else None)
        else:
            out.append([x.lower() for x in t])
    return out

