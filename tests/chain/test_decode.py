"""Decoding `eth_getLogs` answers: the fast path (one pattern per node layout, read from the bytes)
gives exactly what parsing the JSON and decoding the logs gives, for every layout, and falls back to
parsing whenever it cannot be sure."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chain.decode import (
    ADDRESS_FROZEN,
    PAUSED,
    TRANSFER,
    TRANSFER_SHARES,
    UI_MULTIPLIER_UPDATED,
    AnswerError,
    RawAnswer,
    TransferRecord,
    _decode_fast,
    decode_logs,
    decode_logs_answer,
)

KEYS = ["address", "topics", "data", "blockHash", "blockNumber", "blockTimestamp", "transactionHash",
        "transactionIndex", "logIndex", "removed"]

hex_word = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
address = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
address_word = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + "00" * 12 + b.hex())
quantity = st.integers(0, 2**40).map(hex)


@st.composite
def a_log(draw) -> dict:
    kind = draw(st.sampled_from(["transfer", "shares", "paused", "multiplier", "frozen", "other", "nft", "none"]))
    if kind in ("transfer", "shares"):
        topics = [TRANSFER if kind == "transfer" else TRANSFER_SHARES, draw(address_word), draw(address_word)]
        data = "0x" + draw(st.integers(0, 2**256 - 1)).to_bytes(32, "big").hex()
    elif kind == "nft":  # an ERC-721 Transfer: four topics, no data
        topics, data = [TRANSFER, draw(address_word), draw(address_word), draw(hex_word)], "0x"
    elif kind == "paused":
        topics, data = [PAUSED], "0x" + "00" * 12 + draw(address)[2:]
    elif kind == "multiplier":
        topics = [UI_MULTIPLIER_UPDATED]
        data = "0x" + b"".join(draw(st.integers(0, 2**200)).to_bytes(32, "big") for _ in range(4)).hex()
    elif kind == "frozen":
        topics, data = [ADDRESS_FROZEN, draw(address_word), "0x" + "00" * 31 + "01", draw(address_word)], "0x"
    elif kind == "other":
        topics, data = [draw(hex_word)], draw(st.binary(max_size=64).map(lambda b: "0x" + b.hex()))
    else:
        topics, data = [], "0x"
    token = draw(address)
    if draw(st.booleans()):
        token = token.upper().replace("0X", "0x")  # some nodes answer checksummed or upper-case addresses
    return {"address": token, "topics": topics, "data": data, "blockHash": draw(hex_word),
            "blockNumber": draw(quantity), "blockTimestamp": draw(quantity), "transactionHash": draw(hex_word),
            "transactionIndex": draw(quantity), "logIndex": draw(quantity), "removed": False}


def answer(logs: list[dict], order: list[str], *, envelope_first: bool = True) -> bytes:
    ordered = [{k: lg[k] for k in order if k in lg} for lg in logs]
    env = {"jsonrpc": "2.0", "id": 7, "result": ordered} if envelope_first else {"result": ordered, "id": 7,
                                                                                 "jsonrpc": "2.0"}
    return orjson.dumps(env)


def reference(body: bytes):
    return decode_logs(orjson.loads(body)["result"])


def same(a, b) -> bool:
    return (a.transfers, a.share_transfers, a.events, a.skipped) == (b.transfers, b.share_transfers, b.events,
                                                                      b.skipped)


layouts = st.permutations(KEYS).map(list) | st.just(KEYS) | st.permutations(
    [k for k in KEYS if k != "blockTimestamp"]).map(list)


@settings(max_examples=300, deadline=None)
@given(st.lists(a_log(), max_size=12), layouts, st.booleans())
def test_the_fast_path_reads_any_node_layout_exactly(logs, order, envelope_first):
    body = answer(logs, order, envelope_first=envelope_first)
    fast = _decode_fast(body)
    assert fast is not None  # one layout, compact JSON, hex only: no reason to fall back
    assert same(fast, reference(body))
    assert same(decode_logs_answer(body), reference(body))
    assert len(RawAnswer(body)) == len(logs) == len(fast)


@settings(max_examples=150, deadline=None)
@given(st.lists(a_log(), min_size=2, max_size=8), layouts, layouts)
def test_logs_of_two_layouts_fall_back_to_the_same_result(logs, first, second):
    half = len(logs) // 2
    one = orjson.loads(answer(logs[:half], first))["result"]
    two = orjson.loads(answer(logs[half:], second))["result"]
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": one + two})
    assert same(decode_logs_answer(body), reference(body))


@settings(max_examples=100, deadline=None)
@given(st.lists(a_log(), max_size=6))
def test_pretty_printed_and_escaped_answers_fall_back_to_the_same_result(logs):
    pretty = json.dumps({"jsonrpc": "2.0", "id": 1, "result": logs}, indent=2).encode()
    assert _decode_fast(pretty) is None or not logs
    assert same(decode_logs_answer(pretty), reference(pretty))
    escaped = json.dumps({"jsonrpc": "2.0", "id": 1, "result": logs, "note": "a \"quoted\" word"}).encode()
    assert _decode_fast(escaped) is None
    assert same(decode_logs_answer(escaped), reference(escaped))


def test_a_transfer_reads_its_addresses_and_amount():
    sender, receiver = "0x" + "ab" * 20, "0x" + "cd" * 20
    log = {"address": "0x" + "EF" * 20, "topics": [TRANSFER, "0x" + "00" * 12 + sender[2:],
                                                   "0x" + "00" * 12 + receiver[2:]],
           "data": "0x" + (10**30).to_bytes(32, "big").hex(), "blockHash": "0x" + "11" * 32, "blockNumber": "0x10",
           "transactionHash": "0x" + "22" * 32, "transactionIndex": "0x0", "logIndex": "0x3", "removed": False}
    d = decode_logs_answer(answer([log], list(log)))
    assert d.transfers == [TransferRecord(16, 3, "0x" + "22" * 32, "0x" + "11" * 32, "0x" + "ef" * 20, sender,
                                          receiver, 10**30)]
    assert d.share_transfers == [] and d.events == [] and d.skipped == 0


def test_a_removed_log_is_refused_on_both_paths():
    log = {"address": "0x" + "ef" * 20, "topics": [TRANSFER, "0x" + "00" * 32, "0x" + "00" * 32], "data": "0x01",
           "blockHash": "0x" + "11" * 32, "blockNumber": "0x1", "transactionHash": "0x" + "22" * 32,
           "transactionIndex": "0x0", "logIndex": "0x0", "removed": True}
    with pytest.raises(ValueError, match="removed"):
        decode_logs_answer(answer([log], list(log)))
    with pytest.raises(ValueError, match="removed"):
        decode_logs_answer(json.dumps({"result": [log]}, indent=1).encode())


def test_an_empty_answer_holds_no_logs():
    assert len(decode_logs_answer(b'{"jsonrpc":"2.0","id":1,"result":[]}')) == 0
    assert len(decode_logs_answer(b'{"jsonrpc": "2.0", "id": 1, "result": [ ]}')) == 0


@pytest.mark.parametrize("body", [b'{"jsonrpc":"2.0","id":1,"result":null}', b'{"jsonrpc":"2.0","id":1}',
                                  b"<html>bad gateway</html>", b'{"result":{"logs":[]}}'])
def test_an_answer_without_a_list_of_logs_is_refused(body):
    with pytest.raises(AnswerError):
        decode_logs_answer(body)
    with pytest.raises(AnswerError):
        RawAnswer(body) if b'"result"' not in body else RawAnswer(body).decode()


def test_the_blocks_an_answer_names_are_read_off_its_bytes():
    logs = [{"blockNumber": "0x5", "logIndex": "0x0"}, {"blockNumber": "0x7", "logIndex": "0x1"},
            {"blockNumber": "0x5", "logIndex": "0x2"}]
    raw = RawAnswer(orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": logs}))
    assert raw.block_numbers() == {5, 7} and len(raw) == 3
