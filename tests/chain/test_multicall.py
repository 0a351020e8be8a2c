"""Multicall3 reads pinned to one block equal single eth_calls, and so does the fallback without it.

The chain: Multicall3 at its canonical address (anvil_setCode, as the dev world does), a token minted to
thirty holders in one block and again in the next (so reads at the first block must not see the second),
and an OCR price aggregator with no rounds yet (getRoundData of an id above uint32 reverts with a reason,
whoever calls it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_abi import decode, encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chain.abi import load_abi
from indexer.chain.multicall import AGGREGATE3_SELECTOR, MULTICALL3, Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.devchain.checkout import load_artifact
from indexer.devchain.deploy import ChainWriter
from indexer.devchain.world import Tx
from indexer.errors import RpcError

from .faultproxy import FaultProxy, Faults

NO_CODE = "0x" + "42" * 20


@dataclass(frozen=True)
class Reads:
    token: str
    feed: str
    holders: list[str]
    block: int  # after the first mint
    later: int  # after the second mint


def _holder(i: int) -> str:
    return "0x" + keccak(b"holder" + i.to_bytes(4, "big"))[-20:].hex()


@pytest.fixture(scope="module")
def reads(rpc: RpcClient) -> Iterator[Reads]:
    rpc.call("anvil_setCode", [MULTICALL3, load_artifact("Multicall3")["deployedBytecode"]])
    writer = ChainWriter(rpc)
    issuer = rpc.call("eth_accounts")[0].lower()
    holders = [_holder(i) for i in range(30)]
    mint = load_abi("PlainToken").fn("batchMint")
    rpc.call("evm_setAutomine", [False])  # mine each block explicitly: no waiting on receipts
    try:
        hashes = writer.send_all([
            writer.deploy(issuer, "PlainToken", ["string", "string", "uint8", "address"],
                          ["Token", "TKN", 6, issuer]),
            writer.deploy(issuer, "OcrAggregator", ["int192", "int192", "uint8", "string", "address"],
                          [1, 10**30, 8, "TKN / USD", issuer]),
        ])
        writer.check_block(_mine(rpc), 2)
        token, feed = (rpc.call("eth_getTransactionReceipt", [h])["contractAddress"].lower() for h in hashes)
        writer.send_all([Tx(issuer, token, mint.encode(holders, [1_000 + i for i in range(30)]), 5_000_000)])
        block = _mine(rpc)
        writer.check_block(block, 1)
        writer.send_all([Tx(issuer, token, mint.encode(holders[:10], [5] * 10), 5_000_000)])
        later = _mine(rpc)
        writer.check_block(later, 1)
    finally:
        rpc.call("evm_setAutomine", [True])
    yield Reads(token, feed, holders, block, later)


def _mine(rpc: RpcClient) -> int:
    rpc.call("evm_mine")
    return int(rpc.call("eth_blockNumber"), 16)


def _calls(r: Reads) -> list[Call]:
    token, feed = load_abi("PlainToken"), load_abi("OcrAggregator")
    calls = [Call(r.token, token.fn("balanceOf").encode_bytes(h)) for h in r.holders]
    calls += [
        Call(r.token, token.fn("totalSupply").encode()),
        Call(r.token, token.fn("name").encode()),
        Call(r.feed, feed.fn("decimals").encode_bytes()),
        Call(r.feed, feed.fn("getRoundData").encode_bytes(2**32)),  # beyond uint32: reverts with a reason
        Call(r.token, "0xdeadbeef"),  # no such function, no fallback: reverts without data
        Call(NO_CODE, token.fn("totalSupply").encode()),  # no code: succeeds with nothing
    ]
    return calls


def _one_by_one(rpc: RpcClient, calls: list[Call], block: int) -> list[tuple[bool, bytes]]:
    """Each call as its own eth_call, the way a reader without Multicall3 or batching would do it."""
    out = []
    for c in calls:
        data = c.data if isinstance(c.data, str) else "0x" + c.data.hex()
        try:
            result = rpc.call("eth_call", [{"to": c.target, "data": data}, hex(block)])
        except RpcError as exc:
            assert exc.kind == "reverted", exc
            out.append((False, bytes.fromhex(exc.data[2:]) if exc.data else b""))
        else:
            out.append((True, bytes.fromhex(result[2:])))
    return out


def _balances(results: list[tuple[bool, bytes]], n: int) -> list[int]:
    return [decode(["uint256"], data)[0] for _, data in results[:n]]


def test_multicall_results_equal_single_eth_calls(rpc, reads) -> None:
    calls = _calls(reads)
    got = read_calls(rpc, calls, reads.block)
    assert got == _one_by_one(rpc, calls, reads.block)
    assert _balances(got, 30) == [1_000 + i for i in range(30)]
    revert = got[33]
    assert revert[0] is False and revert[1][:4] == keccak(text="Error(string)")[:4]
    assert got[34] == (False, b"") and got[35] == (True, b"")


@pytest.mark.parametrize("multicall", [None, NO_CODE], ids=["multicall_off", "address_without_code"])
def test_the_fallback_gives_the_same_results(rpc, reads, multicall) -> None:
    calls = _calls(reads)
    assert read_calls(rpc, calls, reads.block, multicall=multicall) == read_calls(rpc, calls, reads.block)


def test_reads_are_pinned_to_the_block_number(anvil, reads) -> None:
    calls = _calls(reads)[:30]
    with FaultProxy(anvil.url) as proxy:
        client = RpcClient(proxy.url, max_retries=0)
        at_block = read_calls(client, calls, reads.block)
        at_later = read_calls(client, calls, reads.later)
        fallback = read_calls(client, calls, reads.block, multicall=None)
    assert _balances(at_block, 30) == [1_000 + i for i in range(30)]
    assert _balances(at_later, 30) == [1_005 + i if i < 10 else 1_000 + i for i in range(30)]
    assert fallback == at_block
    tags = {params[-1] for method, params in proxy.seen if method in ("eth_call", "eth_getCode")}
    assert tags == {hex(reads.block), hex(reads.later)}, "a block number must never become 'latest'"


def test_all_chunks_and_the_code_check_go_out_in_one_request(anvil, rpc, reads) -> None:
    calls = _calls(reads)
    with FaultProxy(anvil.url) as proxy:
        got = read_calls(RpcClient(proxy.url, max_retries=0), calls, reads.block, chunk=7)
    assert got == read_calls(rpc, calls, reads.block)
    assert proxy.requests == 1
    methods = [m for m, _ in proxy.seen]
    assert methods == ["eth_getCode"] + ["eth_call"] * 6  # 36 calls in chunks of 7
    sent = [params[0]["data"] for m, params in proxy.seen if m == "eth_call"]
    assert all(bytes.fromhex(d[2:10]) == AGGREGATE3_SELECTOR for d in sent)


def test_a_provider_batch_cap_splits_the_chunks_and_the_results_stay_the_same(anvil, rpc, reads) -> None:
    calls = _calls(reads)
    with FaultProxy(anvil.url, Faults(batch_cap=2, batch_wordings=("geth",))) as proxy:
        client = RpcClient(proxy.url, max_retries=0)
        got = read_calls(client, calls, reads.block, chunk=5)
        plain = read_calls(client, calls, reads.block, multicall=None)
    assert got == plain == read_calls(rpc, calls, reads.block)
    assert proxy.injected["batch:geth"] >= 1 and client.max_batch == 2


def test_aggregate3_is_encoded_as_multicall3_expects(rpc, reads) -> None:
    # Independent of read_calls: aggregate3 called by hand returns what read_calls returns.
    calls = _calls(reads)[:3]
    args = [(c.target, c.allow_failure, c.calldata) for c in calls]
    data = "0x" + (AGGREGATE3_SELECTOR + encode(["(address,bool,bytes)[]"], [args])).hex()
    raw = rpc.call("eth_call", [{"to": MULTICALL3, "data": data}, hex(reads.block)])
    (results,) = decode(["(bool,bytes)[]"], bytes.fromhex(raw[2:]))
    assert [(ok, bytes(d)) for ok, d in results] == read_calls(rpc, calls, reads.block)


@pytest.mark.parametrize("multicall", [MULTICALL3, None], ids=["multicall", "fallback"])
def test_a_failing_call_that_must_not_fail_raises(rpc, reads, multicall) -> None:
    calls = [Call(reads.token, load_abi("PlainToken").fn("totalSupply").encode()),
             Call(reads.token, "0xdeadbeef", allow_failure=False)]
    with pytest.raises(RpcError, match="allow_failure") as info:
        read_calls(rpc, calls, reads.block, multicall=multicall)
    assert info.value.kind == "reverted"


def test_no_calls_need_no_request(anvil) -> None:
    with FaultProxy(anvil.url) as proxy:
        assert read_calls(RpcClient(proxy.url), [], 1) == []
    assert proxy.requests == 0


def test_a_tag_is_passed_through(rpc, reads) -> None:
    calls = _calls(reads)[:30]
    assert read_calls(rpc, calls, "latest") == read_calls(rpc, calls, reads.later)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=20, max_size=20), st.booleans(), st.binary(max_size=100)), max_size=8),
       st.lists(st.tuples(st.booleans(), st.binary(max_size=100)), max_size=8))
def test_hand_rolled_aggregate3_codec_equals_eth_abi(calls, results):
    from indexer.chain.multicall import _decode_aggregate3, _encode_aggregate3

    ours = _encode_aggregate3([Call("0x" + t.hex(), d, allow_failure=f) for t, f, d in calls])
    theirs = AGGREGATE3_SELECTOR + encode(["(address,bool,bytes)[]"], [[("0x" + t.hex(), f, d) for t, f, d in calls]])
    assert ours == "0x" + theirs.hex()
    answer = "0x" + encode(["(bool,bytes)[]"], [results]).hex()
    assert _decode_aggregate3(answer, "0xca11", "0x1") == [(ok, data) for ok, data in results]
