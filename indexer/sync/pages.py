"""The logs of a tick's block range, page by page, read ahead on a thread of their own.

A page is one `eth_getLogs` answer (the `LogFetcher` sizes the ranges), decoded, with the headers of
its first and last block and of every block that holds a log. Each page is checked before it is
handed on: every log's block hash equals its header's, the last block's hash did not change while
the logs were read (a reorg there could hide logs in blocks that had none), and its first block's
parent is the previous page's last block, so a tick's pages form one chain from the stored checkpoint.

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
from typing import Any

from indexer.chain.decode import TOPICS, DecodedLogs, RawAnswer
from indexer.chain.headers import read_block_hash, read_headers
from indexer.chain.logs import LogBatch, LogFetcher
from indexer.chain.rpc import RpcClient
from indexer.errors import ReorgDetected


@dataclass(frozen=True)
class Page:
    start: int
    end: int
    decoded: DecodedLogs
    headers: dict[int, dict]  # first and last block, and every block that holds a log

    @property
    def end_hash(self) -> str:
        return self.headers[self.end]["hash"]


def read_pages(rpc: RpcClient, fetcher: LogFetcher, addresses: list[str], start: int, end: int,
               parent_hash: str | None) -> Iterator[Page]:
    """The checked pages of blocks [start, end], in order, the answers read one or two ahead on a thread.
    `parent_hash`: the stored hash of block start - 1 (None on the first tick of an empty database).
    Close the iterator (or exhaust it) to stop the reading thread."""
    previous = parent_hash
    with ReadAhead(_answers(rpc, fetcher, addresses, start, end)) as answers:
        for batch, found in answers:
            page = check_page(rpc, batch, found, previous)
            previous = page.end_hash
            yield page


def _answers(rpc: RpcClient, fetcher: LogFetcher, addresses: list[str], start: int, end: int
             ) -> Iterator[tuple[LogBatch, dict[int, dict]]]:
    """On the reading thread: each answer as bytes, and the headers of the blocks it names (a dense
    chain's headers are large: reading them here keeps the node's work off the writer's path)."""
    for batch in fetcher.iter_logs(rpc, addresses, [TOPICS], start, end, decode=RawAnswer,
                                   pin=lambda to: read_block_hash(rpc, to)):
        yield batch, read_headers(rpc, [batch.from_block, batch.to_block, *batch.logs.block_numbers()])


def check_page(rpc: RpcClient, batch: LogBatch, found: dict[int, dict], previous: str | None) -> Page:
    """Decode one answer and check it against the chain's headers (see the module's docstring)."""
    decoded = batch.logs.decode()
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
    return Page(batch.from_block, batch.to_block, decoded, found)


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
