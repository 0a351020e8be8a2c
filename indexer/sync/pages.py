"""The logs of a tick's block range, page by page, read ahead on a thread of their own.

A page is one `eth_getLogs` answer (the `LogFetcher` sizes the ranges), decoded, with the headers of
its first and last block and of every block that holds a log. Each page is checked before it is
handed on: every log's block hash equals its header's, the last block's hash did not change while
the logs were read (a reorg there could hide logs in blocks that had none), and its first block's
parent is the previous page's last block, so a tick's pages form one chain from the stored checkpoint.
Near the head, where a load-balanced provider may answer from a backend that has not seen the last
blocks yet, every block whose bloom may hold one of our logs and that the answer left out is read again
by its hash (`near_head_suspects`). A log the provider sent twice is kept once.

The reading thread only sends requests and receives the answers' bytes (it waits on the node with
the interpreter released); decoding, checking and writing happen in the caller's thread while the
next answers are read: decoding is interpreter work, and on the reading thread it would only compete
with the writer for the interpreter (docs/benchmarks.md). Both threads share the RPC client (one HTTP
session per thread) and the fetcher, which only the reading thread uses while a stream is open.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from indexer.chain.bloom import bloom_matches, parse_bloom
from indexer.chain.decode import TOPICS, DecodedLogs, RawAnswer, merge_decoded
from indexer.chain.headers import BLOOM_FIELDS, HEADER_FIELDS, read_block_hash, read_headers
from indexer.chain.logs import LogBatch, LogFetcher
from indexer.chain.retry import RetryPolicy, patiently
from indexer.chain.rpc import RpcClient
from indexer.errors import ReorgDetected


@dataclass(frozen=True)
class Page:
    start: int
    end: int
    decoded: DecodedLogs
    headers: dict[int, dict]  # first and last block, and every block that holds a log
    recovered: int = 0  # logs the range answer lacked, read again by block hash (a backend behind the head)

    @property
    def end_hash(self) -> str:
        return self.headers[self.end]["hash"]


@dataclass(frozen=True)
class Answer:
    """What the reading thread hands over for one page: the range answer, the headers it needs, and the
    answers by block hash of near-head blocks whose bloom says they may hold a log the range answer lacked."""

    batch: LogBatch
    headers: dict[int, dict]
    by_hash: tuple[RawAnswer, ...] = ()


def read_pages(rpc: RpcClient, fetcher: LogFetcher, addresses: list[str], start: int, end: int,
               parent_hash: str | None, *, near_head_from: int | None = None,
               patience: RetryPolicy | None = None) -> Iterator[Page]:
    """The checked pages of blocks [start, end], in order, the answers read one or two ahead on a thread.
    `parent_hash`: the stored hash of block start - 1 (None on the first tick of an empty database).
    Blocks from `near_head_from` on are proven complete against their headers' blooms (`near_head`).
    `patience`: reads that fail for a passing reason are tried again where they failed
    (`chain.retry.patiently`). Close the iterator (or exhaust it) to stop the reading thread."""
    previous = parent_hash
    reader = _answers(rpc, fetcher, addresses, start, end, near_head_from, patience)
    with ReadAhead(reader) as answers:
        for answer in answers:
            page = check_page(rpc, answer, previous)
            previous = page.end_hash
            yield page


def _answers(rpc: RpcClient, fetcher: LogFetcher, addresses: list[str], start: int, end: int,
             near_head_from: int | None, patience: RetryPolicy | None) -> Iterator[Answer]:
    """On the reading thread: each answer as bytes, and the headers of the blocks it names (a dense
    chain's headers are large: reading them here keeps the node's work off the writer's path)."""
    def reading(read, what: str):
        return read() if patience is None else patiently(read, patience, what)

    for batch in fetcher.iter_logs(rpc, addresses, [TOPICS], start, end, decode=RawAnswer,
                                   pin=lambda to: read_block_hash(rpc, to), patience=patience):
        numbers = {batch.from_block, batch.to_block, *batch.logs.block_numbers()}
        near = [] if near_head_from is None else list(range(max(batch.from_block, near_head_from), batch.to_block + 1))
        if not near:
            yield Answer(batch, reading(partial(read_headers, rpc, sorted(numbers)), "block headers"))
            continue
        found = reading(partial(read_headers, rpc, sorted(numbers | set(near)), BLOOM_FIELDS), "block headers")
        suspects = near_head_suspects(found, near, batch.logs.block_numbers(), addresses)
        by_hash = tuple(reading(partial(_logs_by_hash, rpc, addresses, found[n]["hash"]), f"logs of block {n}")
                        for n in suspects)
        yield Answer(batch, found, by_hash)


def near_head_suspects(headers: dict[int, dict], near: list[int], with_logs: set[int], addresses: list[str]
                       ) -> list[int]:
    """Near-head blocks the range answer holds no log of, but whose bloom says they may hold one of ours.

    A load-balanced provider can route a range query to a backend a few blocks behind: it answers the
    blocks it has and leaves the others out, silently. Each such block is read again by its hash, which
    a backend that lacks the block refuses instead of answering empty (go-ethereum#24078; Ponder and
    graph-node read near-head logs that way). A bloom can say yes for a block with no log of ours
    (it then costs one request), never no for a block with one."""
    return [n for n in near if n not in with_logs and bloom_matches(parse_bloom(headers[n]["logsBloom"]), addresses,
                                                                    TOPICS)]


def _logs_by_hash(rpc: RpcClient, addresses: list[str], block_hash: str) -> RawAnswer:
    params = [{"blockHash": block_hash, "address": [a.lower() for a in addresses], "topics": [TOPICS]}]
    return RawAnswer(rpc.call_raw("eth_getLogs", params))


def check_page(rpc: RpcClient, answer: Answer, previous: str | None) -> Page:
    """Decode one answer and check it against the chain's headers (see the module's docstring); add the
    logs read again by block hash; drop logs the provider sent twice."""
    batch, found = answer.batch, answer.headers
    decoded = batch.logs.decode()
    recovered = 0
    if answer.by_hash:
        extra = [a.decode() for a in answer.by_hash]
        recovered = sum(len(d) for d in extra)
        if recovered:
            decoded = merge_decoded([decoded, *extra])
    decoded = decoded.without_duplicates()
    by_block = decoded.block_hashes()
    unread = [n for n in by_block if n not in found]
    if unread:  # the bytes named fewer blocks than the decoded logs (an unusual layout)
        found = {**found, **read_headers(rpc, unread)}
    for n, h in by_block.items():
        if found[n]["hash"] != h:
            raise ReorgDetected(f"block {n} changed while its logs were read")
    if found[batch.to_block]["hash"] != batch.pinned:
        raise ReorgDetected(f"block {batch.to_block} changed while the logs up to it were read")
    if previous is not None and found[batch.from_block]["parentHash"] != previous:
        raise ReorgDetected(f"block {batch.from_block} does not extend the block before it")
    headers = {n: {k: h[k] for k in HEADER_FIELDS} for n, h in found.items()}
    return Page(batch.from_block, batch.to_block, decoded, headers, recovered)


_END = object()


class ReadAhead:
    """Runs an iterator on a thread, at most `depth` items ahead of the reader.

    Iterate it to get the items in order; an exception of the thread is raised in the reader at the
    point where its item would have come. `close()` stops the thread (after the request in flight)
    and drops what it read ahead; use it as a context manager.
    """

    def __init__(self, items: Iterator[Any], *, depth: int = 2) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the reader, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
