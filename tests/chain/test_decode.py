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
    TRANSFER,
    TRANSFER_SHARES,
    AnswerError,
    RawAnswer,
    TransferRecord,
    _decode_fast,
    decode_logs,
    decode_logs_answer,
    topic_of,
)

ADDRESS_FROZEN = topic_of("AddressFrozen(address,bool,address)")
PAUSED = topic_of("Paused(address)")
UI_MULTIPLIER_UPDATED = topic_of("UIMultiplierUpdated(uint256,uint256,uint256,uint256)")

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


# -- events as deployed contracts declare them ---------------------------------------------------------------
def _log(topics: list[str], data: str = "0x", index: int = 0, block: int = 7) -> dict:
    return {"address": "0x" + "ab" * 20, "topics": topics, "data": data, "blockHash": "0x" + "cd" * 32,
            "blockNumber": hex(block), "transactionHash": "0x" + "ef" * 32, "logIndex": hex(index), "removed": False}


def _word(n: int) -> str:
    return n.to_bytes(32, "big").hex()


LIST = "0x" + "12" * 20


def test_new_sanctions_list_decodes_with_its_address_indexed_as_backed_declares_it():
    # Backed's NewSanctionsList(address indexed): the address in a topic, no data (the factory's deployment tx)
    d = decode_logs([_log([topic_of("NewSanctionsList(address)"), "0x" + "00" * 12 + LIST[2:]])])
    assert [(e.event, e.args) for e in d.events] == [("NewSanctionsList", {"sanctions_list": LIST})]
    # the same event with the address in the data decodes as well
    d = decode_logs([_log([topic_of("NewSanctionsList(address)")], "0x" + "00" * 12 + LIST[2:])])
    assert d.events[0].args == {"sanctions_list": LIST} and not d.undecodable


def test_both_drafts_of_erc_8056_decode_to_one_event():
    three = _log([topic_of("UIMultiplierUpdated(uint256,uint256,uint256)")], "0x" + _word(10**18) + _word(2 * 10**18)
                 + _word(1_700_000_000))
    four = _log([topic_of("UIMultiplierUpdated(uint256,uint256,uint256,uint256)")],
                "0x" + _word(10**18) + _word(3 * 10**18) + _word(1_600_000_000) + _word(1_700_000_000), index=1)
    events = decode_logs([three, four]).events
    assert [e.args for e in events] == [
        {"old_multiplier": 10**18, "new_multiplier": 2 * 10**18, "effective_at": 1_700_000_000},
        {"old_multiplier": 10**18, "new_multiplier": 3 * 10**18, "set_at": 1_600_000_000, "effective_at": 1_700_000_000},
    ]


def test_backed_multiplier_and_pause_events():
    logs = [_log([topic_of("MultiplierUpdated(uint256)")], "0x" + _word(999 * 10**15)),
            _log([topic_of("MultiplierScheduled(uint256,uint256)")], "0x" + _word(3 * 10**18) + _word(86_400), index=1),
            _log([topic_of("PauseModeChange(bool)")], "0x" + _word(1), index=2)]
    assert [(e.event, e.args) for e in decode_logs(logs).events] == [
        ("MultiplierUpdated", {"value": 999 * 10**15}),
        ("MultiplierScheduled", {"new_multiplier": 3 * 10**18, "activation_time": 86_400}),
        ("PauseModeChange", {"paused": True}),
    ]


def test_a_log_that_is_not_what_its_topic_declares_is_kept_aside_with_its_coordinates():
    logs = [_log([topic_of("MultiplierScheduled(uint256,uint256)")], "0x" + _word(1)),  # one word short
            _log([topic_of("PauseModeChange(bool)"), "0x" + _word(1), "0x" + _word(2)], index=3)]  # extra topics
    d = decode_logs(logs)
    assert d.events == [] and [(u.block_number, u.log_index) for u in d.undecodable] == [(7, 0), (7, 3)]
    assert all(u.tx_hash == "0x" + "ef" * 32 and u.contract == "0x" + "ab" * 20 for u in d.undecodable)


def test_a_log_sent_twice_is_kept_once():
    transfer = _log([TRANSFER, "0x" + "00" * 12 + "11" * 20, "0x" + "00" * 12 + "22" * 20], "0x" + _word(5))
    paused = _log([topic_of("PauseModeChange(bool)")], "0x" + _word(1), index=1)
    d = decode_logs([transfer, paused, transfer, paused, transfer]).without_duplicates()
    assert (len(d.transfers), len(d.events), d.duplicates) == (1, 1, 3)
    assert decode_logs([transfer]).without_duplicates().duplicates == 0
