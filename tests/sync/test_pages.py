"""Pages of logs: read ahead on a thread in order, errors raised where their page would have come,
the thread stopped on close; each page checked against the chain's headers before it is used."""

from __future__ import annotations

import time

import orjson
import pytest

from indexer.chain.decode import TRANSFER, RawAnswer
from indexer.chain.logs import LogBatch
from indexer.sync.pages import Answer, ReadAhead, ReorgDetected, check_page


def test_read_ahead_keeps_the_order_and_stays_at_most_depth_ahead():
    produced = []

    def items():
        for i in range(20):
            produced.append(i)
            yield i

    seen = []
    with ReadAhead(items(), depth=2) as stream:
        for item in stream:
            time.sleep(0.01)
            # the reader holds one item, the queue at most two, the thread at most one more in hand
            assert len(produced) - len(seen) <= 4
            seen.append(item)
    assert seen == list(range(20))


def test_an_error_of_the_thread_is_raised_where_its_item_would_have_come():
    def items():
        yield 1
        yield 2
        raise ValueError("the node went away")

    got = []
    with pytest.raises(ValueError, match="went away"), ReadAhead(items()) as stream:
        for item in stream:
            got.append(item)
    assert got == [1, 2]


def test_closing_stops_the_thread_and_drops_what_it_read_ahead():
    stream = ReadAhead(iter(range(10**9)), depth=2)
    first = next(iter(stream))
    stream.close()
    assert first == 0
    assert not stream._thread.is_alive()


# ---------------------------------------------------------------------------------- page checks
def _word(addr_byte: str) -> str:
    return "0x" + "00" * 12 + addr_byte * 20


def _header(n: int, h: str, parent: str) -> dict:
    return {"number": hex(n), "hash": h, "parentHash": parent, "timestamp": hex(1_700_000_000 + n)}


def _logs(blocks: dict[int, str]) -> list[dict]:
    return [{"address": "0x" + "ee" * 20, "topics": [TRANSFER, _word("aa"), _word("bb")], "data": hex(n),
             "blockHash": h, "blockNumber": hex(n), "transactionHash": "0x" + "11" * 32, "transactionIndex": "0x0",
             "logIndex": "0x0", "removed": False} for n, h in blocks.items()]


def _batch(blocks: dict[int, str], pinned: str, start: int, end: int, extra: list[dict] = ()) -> LogBatch:
    logs = _logs(blocks) + list(extra)
    return LogBatch(start, end, RawAnswer(orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": logs})), pinned)


def _hash(n: int) -> str:
    return f"0x{n:064x}"


CHAIN = {n: _hash(n) for n in range(10, 14)}
HEADERS = {n: _header(n, CHAIN[n], _hash(n - 1)) for n in CHAIN}


def test_a_page_that_agrees_with_the_headers_is_decoded():
    page = check_page(None, Answer(_batch({11: CHAIN[11], 12: CHAIN[12]}, CHAIN[13], 10, 13), HEADERS), _hash(9))
    assert [t.block_number for t in page.decoded.transfers] == [11, 12]
    assert page.end_hash == CHAIN[13]


def test_a_log_sent_twice_is_kept_once_and_logs_read_by_hash_are_added():
    twice = _logs({12: CHAIN[12]})
    answer = Answer(_batch({11: CHAIN[11], 12: CHAIN[12]}, CHAIN[13], 10, 13, extra=twice), HEADERS,
                    by_hash=(RawAnswer(orjson.dumps({"jsonrpc": "2.0", "id": 2, "result": _logs({13: CHAIN[13]})})),))
    page = check_page(None, answer, _hash(9))
    assert [t.block_number for t in page.decoded.transfers] == [11, 12, 13]
    assert page.recovered == 1


@pytest.mark.parametrize("case", ["log_block_changed", "end_changed_while_reading", "does_not_extend"])
def test_a_page_that_disagrees_with_the_headers_is_a_reorg(case):
    logs = {11: CHAIN[11]}
    pinned, previous = CHAIN[13], _hash(9)
    if case == "log_block_changed":
        logs = {11: "0x" + "ff" * 32}
    elif case == "end_changed_while_reading":
        pinned = "0x" + "ee" * 32
    else:
        previous = "0x" + "dd" * 32
    with pytest.raises(ReorgDetected):
        check_page(None, Answer(_batch(logs, pinned, 10, 13), HEADERS), previous)
