"""eth_getLogs in adaptive ranges: the provider wordings it reads, and the same logs under every fault.

The pure tests feed `parse_range_error` the messages real providers sent (each cites where it was
seen). The chain tests mint a few thousand Transfer logs over several hundred anvil blocks, then read
them through the fault proxy and compare with one direct eth_getLogs: under every fault the logs must be
exactly the same, in the same order, with batches covering the range without gap or overlap.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_utils import keccak

from indexer.chain.abi import load_abi
from indexer.chain.logs import LogBatch, LogFetcher, RangeAdvice, parse_range_error
from indexer.chain.rpc import RpcClient
from indexer.devchain.anvil import free_port
from indexer.devchain.deploy import ChainWriter
from indexer.devchain.world import Tx
from indexer.errors import RpcError

from .faultproxy import LOG_CAP_WORDINGS, RANGE_CAP_WORDINGS, FaultProxy, Faults

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
PLAIN_CTOR = ["string", "string", "uint8", "address"]

# ------------------------------------------------------------------------------- provider wordings

R = (1_000, 50_999)  # a requested range of 50,000 blocks

SUGGESTED = [
    # (source, message, data, suggested range)
    (
        "Alchemy, ethers-io/ethers.js#4703",
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no "
        "limit on the response size, or you can request any block range with a cap of 10K logs in the "
        "response. Based on your parameters and the response size limit, this block range should work: "
        "[0x3e8, 0x1b57]",
        None,
        (1_000, 6_999),
    ),
    (
        "Alchemy, BobTheBuidler/dank_mids#772",
        "You can make eth_getLogs requests with up to a 500 block range. Based on your parameters, this block "
        "range should work: [0x3e8, 0x5db]",
        None,
        (1_000, 1_499),
    ),
    (
        "Infura, ethers-io/ethers.js#4703",
        "query returned more than 10000 results. Try with this block range [0x3E8, 0xBB7].",
        {"from": "0x3E8", "limit": 10000, "to": "0xBB7"},
        (1_000, 2_999),
    ),
    (
        "zkSync Era, matter-labs/zksync-era#3412",
        "Query returned more than 10000 results. Try with this block range [0x3e8, 0x6f7].",
        None,
        (1_000, 1_783),
    ),
    (
        "Thirdweb (wording in data), ponder-sh/ponder parseGetLogsError.ts",
        "invalid params",
        "Query returned more than 10000 results. Try with this block range [0x3e8, 0x41b].",
        (1_000, 1_051),
    ),
]

NAMED_LIMIT = [
    # (source, message, data, blocks per request)
    ("QuickNode, OffchainLabs/arbitrum-sdk#609", "eth_getLogs is limited to a 10,000 range", None, 10_000),
    ("QuickNode, ethers-io/ethers.js#3612",
     "eth_getLogs and eth_newFilter are limited to a 10,000 blocks range", None, 10_000),
    ("Cloudflare, ponder-sh/ponder#725",
     "Invalid eth_getLogs request. 'fromBlock'-'toBlock' range too large. Max range: 800", None, 800),
    ("Infura, INFURA/infura#237", "range 1000000 exceeds limit of 10000", None, 10_000),
    ("Tenderly (wording in data), bobanetwork/boba_legacy#827", "invalid params",
     {"error_id": "4ed94073-0317-4648-a167-107fba5f44b3", "payload": "range 9009594 is bigger than range limit 2000"},
     2_000),
    ("Thirdweb, ponder-sh/ponder parseGetLogsError.ts", "invalid params",
     "range 20000 is bigger than range limit 2000", 2_000),
    ("reth, paradigmxyz/reth#8558", "query exceeds max block range 5000", None, 5_000),
    ("BSC-style nodes (issue brief), TRON in ponder", "exceed maximum block range: 5000", None, 5_000),
    ("TRON, ponder-sh/ponder getLogsRetryHelper.ts", "exceed max block range: 3000", None, 3_000),
    ("Moonbeam, moonbeam-foundation/moonbeam#3250", "block range is too wide (maximum 1024)", None, 1_024),
    ("Morph, enviodev/hyperindex#605",
     "block range is larger than max block range, block range = 5120, max block range = 5000", None, 5_000),
    ("cdk-erigon, 0xPolygon/cdk-erigon#1706", "block range too large, max range: 1000", None, 1_000),
    ("Avalanche, ponder-sh/ponder avalanche.test.ts",
     "requested too many blocks from 100 to 5000, maximum is set to 2048", None, 2_048),
    ("LlamaRPC on BSC, ponder-sh/ponder#1362", "eth_getLogs range is too large, max is 10k blocks", None, 10_000),
    ("Coinbase, ponder-sh/ponder getLogsRetryHelper.ts", "please limit the query to at most 1,000 blocks", None,
     1_000),
    ("PublicNode, ponder-sh/ponder getLogsRetryHelper.ts", "maximum block range: 5000", None, 5_000),
    ("Thirdweb, ponder-sh/ponder getLogsRetryHelper.ts", "Maximum allowed number of requested blocks is 1000",
     None, 1_000),
    ("Blast (paid), ponder-sh/ponder getLogsRetryHelper.ts",
     "eth_getLogs range exceeds the range allowed for your plan (60000 > 5000)", None, 5_000),
    ("dRPC, ponder-sh/ponder#2239", "ranges over 10000 blocks are not supported on freetier", None, 10_000),
]

SHRINK = [
    # (source, message, data)
    ("Ankr, ponder-sh/ponder and joshstevens19/rindexer", "block range is too wide", None),
    ("Base and Monad, ponder-sh/ponder and graphprotocol/graph-node", "block range too large", None),
    ("Optimism, ponder-sh/ponder", "Block range is too large", None),
    ("Arbitrum, ponder-sh/ponder", "logs matched by query exceeds limit of 10000", None),
    ("zkEVM, ponder-sh/ponder", "query returned more than 10000 results", None),
    ("LlamaRPC and Ankr, ponder-sh/ponder ankr.test.ts", "query exceeds max results 20000", None),
    ("Alchemy, bancorprotocol/webapp#523", "Log response size exceeded. Please reduce query block range.", None),
    ("1RPC, ponder-sh/ponder", "response size should not greater than 10000000 bytes", None),
    ("Optimism, ponder-sh/ponder", "backend response too large", None),
    ("zkSync Era, matter-labs/zksync-era#3412", "Response is too big", "Exceeded max limit of 10485760"),
    ("Scroll, scroll-tech/go-ethereum#529", "block range is bigger than maxBlockRange", None),
    ("Candle, AlphaWallet/alpha-wallet-ios#5277", "block range too high", None),
    ("Chainstack, ponder-sh/ponder", "Block range limit exceeded.", None),
    ("Altitude, ponder-sh/ponder", "allowed block range threshold exceeded", None),
]

NOT_ABOUT_RANGE = [
    "execution reverted",
    "header not found",
    "block range extends beyond current head block",  # ethereum/execution-apis eth_getLogs tests
    "invalid block range params",  # enviodev/hyperindex#263: fromBlock > toBlock
    "BlockOutOfRangeError: block height is 0 but requested was 16",  # anvil, a range past the head
    "One of the blocks specified in filter (fromBlock, toBlock or blockHash) cannot be found",  # hoprnet#2736
    "Your app has exceeded its compute units per second capacity.",  # Alchemy rate limit, namehash/ensnode#1022
    "batch too large",
]


@pytest.mark.parametrize(("source", "message", "data", "suggested"), SUGGESTED, ids=[s[0] for s in SUGGESTED])
def test_a_suggested_range_is_used_as_the_next_range(source, message, data, suggested) -> None:
    advice = parse_range_error(message, data, R)
    assert advice is not None, source
    assert advice.kind == "suggested"
    assert advice.suggested == suggested
    assert advice.retry_to == suggested[1]


@pytest.mark.parametrize(("source", "message", "data", "limit"), NAMED_LIMIT, ids=[s[0] for s in NAMED_LIMIT])
def test_a_named_block_limit_sets_the_next_range(source, message, data, limit) -> None:
    advice = parse_range_error(message, data, R)
    assert advice is not None, source
    assert advice.kind == "max_blocks"
    assert advice.max_blocks == limit
    assert advice.retry_to == R[0] + limit - 1


@pytest.mark.parametrize(("source", "message", "data"), SHRINK, ids=[s[0] for s in SHRINK])
def test_a_plain_refusal_halves_the_range(source, message, data) -> None:
    advice = parse_range_error(message, data, R)
    assert advice is not None, source
    assert advice.kind == "shrink"
    assert advice.retry_to == R[0] + 25_000 - 1


@pytest.mark.parametrize("message", NOT_ABOUT_RANGE)
def test_errors_not_about_range_or_size_give_no_advice(message) -> None:
    assert parse_range_error(message, None, R) is None


def test_a_suggestion_that_does_not_shrink_the_range_halves_it() -> None:
    # rindexer#181 and zksync-era#3412: the suggested range can itself fail; retrying it would loop.
    advice = parse_range_error("Try with this block range [0x3e8, 0xc737].", None, R)
    assert advice is not None and advice.retry_to == R[0] + 25_000 - 1


def test_a_backwards_suggestion_is_read_in_order() -> None:
    # rindexer notes Alchemy answering a negative range; the two ends are what matters.
    advice = parse_range_error("this block range should work: [0x5db, 0x3e8]", None, R)
    assert advice is not None and advice.suggested == (1_499, 1_000) and advice.retry_to == 1_499


def test_a_suggestion_starting_elsewhere_gives_its_size() -> None:
    advice = parse_range_error("this block range should work: [0x0, 0x63]", None, R)  # 100 blocks from 0
    assert advice is not None and advice.retry_to == R[0] + 99


def test_a_limit_larger_than_the_request_still_shrinks_it() -> None:
    advice = parse_range_error("exceed maximum block range: 5000", None, (0, 99))
    assert advice == RangeAdvice("reth/bsc/tron/publicnode/morph", 49, max_blocks=5_000)


def test_a_single_block_cannot_shrink() -> None:
    advice = parse_range_error("block range is too wide", None, (7, 7))
    assert advice is not None and advice.retry_to == 7


# ---------------------------------------------------------------------------------- a chain of logs


@dataclass(frozen=True)
class LogChain:
    tokens: list[str]
    start: int
    end: int
    dense_block: int  # a block with more Transfer logs than any other
    dense_logs: int

    @property
    def topics(self) -> list[list[str]]:
        return [[TRANSFER]]


def _holder(i: int) -> str:
    return "0x" + keccak(i.to_bytes(32, "big"))[-20:].hex()


@pytest.fixture(scope="module")
def chain(rpc: RpcClient) -> Iterator[LogChain]:
    """Two tokens; 240 blocks of batch mints and holder transfers with stretches of empty blocks between."""
    writer = ChainWriter(rpc)
    issuer = rpc.call("eth_accounts")[0].lower()
    token_abi = load_abi("PlainToken")
    deploys = [writer.deploy(issuer, "PlainToken", PLAIN_CTOR, [f"Token {i}", f"T{i}", 6, issuer]) for i in range(2)]
    tokens = []
    for tx_hash in writer.send_all(deploys):
        receipt = _receipt(rpc, tx_hash)
        assert receipt["status"] == "0x1"
        tokens.append(receipt["contractAddress"].lower())
    rng = random.Random(11)
    holders = [_holder(i) for i in range(300)]
    funded: list[str] = []
    mint = token_abi.fn("batchMint")
    transfer = token_abi.fn("transfer")
    rpc.call("evm_setAutomine", [False])
    try:
        start = int(rpc.call("eth_blockNumber"), 16) + 1
        dense_block, dense_logs = 0, 0
        for b in range(240):
            txs: list[Tx] = []
            group = rng.sample(holders, 60 if b == 120 else 10)
            txs.append(Tx(issuer, tokens[0], mint.encode(group, [10**6 + k for k in range(len(group))]), 8_000_000))
            if b % 3 == 0:
                other = rng.sample(holders, 6)
                txs.append(Tx(issuer, tokens[1], mint.encode(other, [7] * 6), 2_000_000))
            if funded and b % 4 == 1:
                for sender in rng.sample(funded, min(3, len(funded))):
                    txs.append(Tx(sender, tokens[0], transfer.encode(rng.choice(holders), 1), 200_000))
            writer.send_all(txs)
            rpc.call("evm_mine")
            number = int(rpc.call("eth_blockNumber"), 16)
            writer.check_block(number, len(txs))
            funded.extend(group)
            if b == 120:
                dense_block, dense_logs = number, len(group)
            if b % 60 == 59:
                rpc.call("anvil_mine", [hex(150)])  # a long stretch without logs
        end = int(rpc.call("eth_blockNumber"), 16)
    finally:
        rpc.call("evm_setAutomine", [True])
    yield LogChain(tokens, start, end, dense_block, dense_logs)


def _receipt(rpc: RpcClient, tx_hash: str) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        time.sleep(0.005)
    raise AssertionError(f"no receipt for {tx_hash}")


@pytest.fixture(scope="module")
def reference(rpc: RpcClient, chain: LogChain) -> list[dict]:
    """The logs as one direct eth_getLogs over the whole range returns them."""
    logs = rpc.call("eth_getLogs", [{"address": chain.tokens, "topics": chain.topics,
                                     "fromBlock": hex(chain.start), "toBlock": hex(chain.end)}])
    assert len(logs) > 2_000
    return logs


def _client(url: str | list[str], **kw) -> RpcClient:
    return RpcClient(url, timeout=kw.pop("timeout", 5.0), max_retries=kw.pop("max_retries", 10),
                     backoff_base=0.005, backoff_cap=0.02, **kw)


def _read(fetcher: LogFetcher, rpc: RpcClient, chain: LogChain, start: int | None = None,
          end: int | None = None) -> tuple[list[LogBatch], list[dict]]:
    start = chain.start if start is None else start
    end = chain.end if end is None else end
    batches = list(fetcher.iter_logs(rpc, chain.tokens, chain.topics, start, end))
    assert batches[0].from_block == start and batches[-1].to_block == end
    for before, after in zip(batches, batches[1:], strict=False):
        assert after.from_block == before.to_block + 1, "batches must cover the range without gap or overlap"
    for batch in batches:
        assert all(batch.from_block <= int(lg["blockNumber"], 16) <= batch.to_block for lg in batch.logs)
    return batches, [lg for b in batches for lg in b.logs]


FAULTS = {
    "clean": Faults(),
    "log_cap": Faults(log_cap=80),
    "range_cap": Faults(range_cap=64),
    "http_429": Faults(rate_429_every=3),
    "http_5xx": Faults(rate_5xx=0.25, seed=5),
    "dropped_connections": Faults(drop_every=4),
    "slow_answers": Faults(slow_every=3, delay=0.03),
    "everything_at_once": Faults(log_cap=80, range_cap=64, rate_429_every=7, rate_5xx=0.1, drop_every=9,
                                 slow_every=5, delay=0.02, seed=3),
}
EXPECTED_FAULTS = {
    "log_cap": "log:", "range_cap": "range:", "http_429": "429", "http_5xx": "http_5",
    "dropped_connections": "drop", "slow_answers": "slow",
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_logs_through_a_faulty_provider_equal_one_direct_read(anvil, chain, reference, name) -> None:
    with FaultProxy(anvil.url, FAULTS[name]) as proxy:
        client = _client(proxy.url)
        fetcher = LogFetcher(initial_range=32, target_logs=200)
        _, logs = _read(fetcher, client, chain)
    assert logs == reference
    if name in EXPECTED_FAULTS:
        assert any(k.startswith(EXPECTED_FAULTS[name]) for k in proxy.injected), proxy.injected
    if name in ("log_cap", "range_cap", "everything_at_once"):
        assert fetcher.stats.ranges_shrunk > 0
    if name == "log_cap":
        assert len({k for k in proxy.injected if ":" in k}) >= 4, "several wordings should have been answered"
    if name == "http_429":
        assert client.stats.errors["rate_limited"] > 0
    if name == "dropped_connections":
        assert client.stats.errors["connection"] > 0


@pytest.mark.parametrize("wording", list(LOG_CAP_WORDINGS))
def test_each_log_count_wording_is_followed(anvil, chain, reference, wording) -> None:
    end = chain.start + 80
    with FaultProxy(anvil.url, Faults(log_cap=80, log_wordings=(wording,))) as proxy:
        fetcher = LogFetcher(initial_range=64)
        _, logs = _read(fetcher, _client(proxy.url), chain, end=end)
    assert logs == [lg for lg in reference if int(lg["blockNumber"], 16) <= end]
    assert proxy.injected[f"log:{wording}"] > 0
    assert fetcher.stats.ranges_shrunk == proxy.injected[f"log:{wording}"]


@pytest.mark.parametrize("wording", list(RANGE_CAP_WORDINGS))
def test_each_block_range_wording_is_followed(anvil, chain, reference, wording) -> None:
    end = chain.start + 300
    with FaultProxy(anvil.url, Faults(range_cap=50, range_wordings=(wording,))) as proxy:
        fetcher = LogFetcher(initial_range=400)
        batches, logs = _read(fetcher, _client(proxy.url), chain, end=end)
    assert logs == [lg for lg in reference if int(lg["blockNumber"], 16) <= end]
    assert proxy.injected[f"range:{wording}"] > 0
    assert max(b.to_block - b.from_block + 1 for b in batches) <= 50


def test_a_named_limit_is_remembered_across_calls(anvil, chain, reference) -> None:
    middle = (chain.start + chain.end) // 2
    with FaultProxy(anvil.url, Faults(range_cap=100, range_wordings=("bsc",))) as proxy:
        client = _client(proxy.url)
        fetcher = LogFetcher()
        _, first = _read(fetcher, client, chain, end=middle)
        refusals = proxy.injected["range:bsc"]
        assert refusals == 1 and fetcher.limit == 100
        _, second = _read(fetcher, client, chain, start=middle + 1)
    assert proxy.injected["range:bsc"] == refusals, "the learned limit should spare further refusals"
    assert first + second == reference


def test_the_range_grows_while_answers_are_small(rpc, chain, reference) -> None:
    fetcher = LogFetcher(initial_range=1, target_logs=10**6, max_range=256)
    batches, logs = _read(fetcher, rpc, chain)
    sizes = [b.to_block - b.from_block + 1 for b in batches]
    assert logs == reference
    assert sizes[:9] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert max(sizes) == 256 and fetcher.stats.ranges_grown == 8


def test_the_range_stops_growing_once_answers_reach_the_target(rpc, chain) -> None:
    fetcher = LogFetcher(initial_range=4, target_logs=20)
    _read(fetcher, rpc, chain, end=chain.start + 50)  # every block here holds at least 10 logs
    assert fetcher.stats.ranges_grown == 0 and fetcher.range == 4


def test_a_single_block_with_too_many_logs_raises_a_clear_error(anvil, chain) -> None:
    with FaultProxy(anvil.url, Faults(log_cap=chain.dense_logs - 1, log_wordings=("arbitrum",))) as proxy:
        fetcher = LogFetcher(initial_range=16)
        with pytest.raises(RpcError, match=f"single block {chain.dense_block}") as info:
            list(fetcher.iter_logs(_client(proxy.url), chain.tokens, chain.topics,
                                   chain.dense_block - 20, chain.dense_block + 20))
    assert info.value.kind == "range_refused"


def test_a_topic_filter_is_sent_as_given(rpc, chain) -> None:
    some = sorted({_holder(i) for i in range(0, 300, 7)})
    to_topics = ["0x" + "00" * 12 + h[2:] for h in some]
    topics = [[TRANSFER], None, to_topics]
    expected = rpc.call("eth_getLogs", [{"address": chain.tokens, "topics": topics,
                                         "fromBlock": hex(chain.start), "toBlock": hex(chain.end)}])
    batches = LogFetcher(initial_range=100).iter_logs(rpc, chain.tokens, topics, chain.start, chain.end)
    logs = [lg for b in batches for lg in b.logs]
    assert logs == expected and len(logs) > 0
    assert {lg["topics"][2] for lg in logs} <= set(to_topics)


def test_timeouts_narrow_the_range_and_the_logs_still_match(anvil, chain, reference) -> None:
    # The client gives up at once (max_retries=0): the fetcher sees each timeout and halves the range,
    # as a heavy range on a real provider times out rather than answering (Ponder PR #2386).
    with FaultProxy(anvil.url, Faults(slow_every=3, delay=0.6)) as proxy:
        client = _client(proxy.url, timeout=0.3, max_retries=0)
        fetcher = LogFetcher(initial_range=128)
        _, logs = _read(fetcher, client, chain)
    assert logs == reference
    assert client.stats.errors["timeout"] == proxy.injected["slow"] > 0
    assert fetcher.stats.refusals["timeout"] == proxy.injected["slow"]


def test_the_client_retries_a_timeout_before_the_fetcher_sees_it(anvil, chain, reference) -> None:
    with FaultProxy(anvil.url, Faults(range_cap=200, slow_every=4, delay=0.6)) as proxy:
        client = _client(proxy.url, timeout=0.3, max_retries=3)
        fetcher = LogFetcher()
        _, logs = _read(fetcher, client, chain)
    assert logs == reference
    assert client.stats.errors["timeout"] > 0 and fetcher.stats.refusals["timeout"] == 0


def test_failover_reads_through_the_second_url_when_the_first_is_down(anvil, chain, reference) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with FaultProxy(anvil.url, Faults(range_cap=100)) as proxy:
        client = _client([dead, proxy.url], max_retries=0)
        _, logs = _read(LogFetcher(), client, chain)
    assert logs == reference
    assert client.stats.errors["connection"] == 1 and client.stats.failovers == 1


def test_empty_address_list_is_refused(rpc) -> None:
    with pytest.raises(ValueError, match="at least one address"):
        list(LogFetcher().iter_logs(rpc, [], [[TRANSFER]], 0, 1))


def test_the_request_carries_every_address_and_topic_in_one_filter(anvil, chain) -> None:
    with FaultProxy(anvil.url) as proxy:
        list(LogFetcher().iter_logs(_client(proxy.url), [t.upper().replace("0X", "0x") for t in chain.tokens],
                                    chain.topics, chain.start, chain.start + 10))
    ((method, params),) = list(proxy.seen)
    assert method == "eth_getLogs"
    assert params == [{"address": chain.tokens, "topics": [[TRANSFER]],
                       "fromBlock": hex(chain.start), "toBlock": hex(chain.start + 10)}]



def test_a_dense_answer_shrinks_the_range_in_proportion():
    from indexer.chain.logs import LogFetcher

    f = LogFetcher(initial_range=100, target_logs=1_000)
    f._after_answer(40_000, full=True)  # 40x the target: aim the next request at the target
    assert f.range == 2 and f.stats.ranges_shrunk_dense == 1
    f._after_answer(3_000, full=True)  # within 4x: kept
    assert f.range == 2
    f._after_answer(500, full=True)  # light: grows again
    assert f.range == 4
    f.range = 1
    f._after_answer(10**6, full=True)  # one block is the floor
    assert f.range == 1
