"""The logs of a tick's block range, page by page, read ahead on a thread of their own.

A page is one `eth_getLogs` answer (the `LogFetcher` sizes the ranges), decoded, with the headers of
its first and last block and of every block that holds a log. Each page is checked before it is
handed on: every log's block hash equals its header's, the last block's hash did not change while
the logs were read (a reorg there could hide logs in blocks that had none), and its first block's
parent is the previous page's last block, so a tick's pages form one chain from the stored checkpoint.

The reading thread only waits on the node and decodes; the caller writes one page while the next is
read. Both share the RPC client (one HTTP session per thread) and the fetcher, which only the
reading thread uses while a stream is open.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from indexer.chain.decode import TOPICS, DecodedLogs, decode_logs_answer
from indexer.chain.logs import LogFetcher
from indexer.chain.rpc import RpcClient


class ReorgDetected(Exception):
    """The chain no longer holds a block this tick relied on; the tick is abandoned."""


@dataclass
class Page:
    start: int
    end: int
    decoded: DecodedLogs
    headers: dict[int, dict]  # first and last block, and every block that holds a log

    @property
    def end_hash(self) -> str:
        return self.headers[self.end]["hash"]


def headers(rpc: RpcClient, numbers: list[int]) -> dict[int, dict]:
    """Block headers by number, in batches; ReorgDetected when the node no longer has one."""
    out: dict[int, dict] = {}
    numbers = sorted(set(numbers))
    for i in range(0, len(numbers), 500):
        chunk = numbers[i:i + 500]
        for n, h in zip(chunk, rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk]), strict=True):
            if h is None:
                raise ReorgDetected(f"block {n} is gone")
            out[n] = h
    return out


def block_hash(rpc: RpcClient, number: int) -> str:
    block = rpc.call("eth_getBlockByNumber", [hex(number), False])
    if block is None:
        raise ReorgDetected(f"block {number} is gone")
    return block["hash"]


def read_pages(rpc: RpcClient, fetcher: LogFetcher, addresses: list[str], start: int, end: int,
               parent_hash: str | None) -> Iterator[Page]:
    """The checked pages of blocks [start, end], in order. `parent_hash`: the stored hash of block
    start - 1 (None on the first tick of an empty database)."""
    previous = parent_hash
    for batch in fetcher.iter_logs(rpc, addresses, [TOPICS], start, end, decode=decode_logs_answer,
                                   pin=lambda to: block_hash(rpc, to)):
        decoded: DecodedLogs = batch.logs
        by_block = decoded.block_hashes()
        found = headers(rpc, [batch.from_block, batch.to_block, *by_block])
        for n, h in by_block.items():
            if found[n]["hash"] != h:
                raise ReorgDetected(f"block {n} changed while its logs were read")
        if found[batch.to_block]["hash"] != batch.pinned:
            raise ReorgDetected(f"block {batch.to_block} changed while the logs up to it were read")
        if previous is not None and found[batch.from_block]["parentHash"] != previous:
            raise ReorgDetected(f"block {batch.from_block} does not extend the block before it")
        page = Page(batch.from_block, batch.to_block, decoded, found)
        previous = page.end_hash
        yield page


_END = object()


class PageStream:
    """Runs a page iterator on a thread, at most `depth` pages ahead of the reader.

    Iterate it to get the pages in order; an exception of the reading thread is raised in the reader
    at the point where its page would have come. `close()` stops the thread (after the request in
    flight) and drops what it read ahead; use the stream as a context manager.
    """

    def __init__(self, pages: Iterator[Page], *, depth: int = 2) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pages,), name="log-pages", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, pages: Iterator[Page]) -> None:
        try:
            for page in pages:
                if not self._put(page):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the reader, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[Page]:
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

    def __enter__(self) -> PageStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
