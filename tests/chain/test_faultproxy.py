"""The fault proxy's newer faults against a real anvil: duplicated logs, transient errors with HTTP 200, and a
load-balanced provider with a backend a few blocks behind the head.

The tests talk raw JSON-RPC to the proxy (no client retries in between) and compare each answer with what
anvil answers directly, so they pin exactly what the proxy sends.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import requests
from eth_abi import encode
from eth_utils import keccak

from indexer.chain.abi import load_abi
from indexer.chain.rpc import RpcClient
from indexer.devchain.checkout import load_artifact

from .faultproxy import TRANSIENT_WORDINGS, FaultProxy, Faults

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
N_BLOCKS = 12  # blocks with Transfer logs at the top of the chain
TOKEN = load_abi("PlainToken")

_ids = itertools.count(1)


@dataclass(frozen=True)
class LogChain:
    token: str
    first: int  # every block first..head holds mints
    head: int
    minted: dict[int, list[str]]  # block number -> the holders first minted to in it

    def log_filter(self, lo: int | str, hi: int | str) -> dict:
        return {"address": self.token, "topics": [[TRANSFER]],
                "fromBlock": lo if isinstance(lo, str) else hex(lo),
                "toBlock": hi if isinstance(hi, str) else hex(hi)}


def _receipt(rpc: RpcClient, tx_hash: str) -> dict:
    """The receipt once anvil has mined the transaction (automine answers before the block is in)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        time.sleep(0.005)
    raise AssertionError(f"no receipt for {tx_hash}")


def _holder(i: int) -> str:
    return "0x" + keccak(b"faultproxy" + i.to_bytes(32, "big"))[-20:].hex()


@pytest.fixture(scope="module")
def chain(rpc: RpcClient) -> Iterator[LogChain]:
    """A PlainToken, then N_BLOCKS blocks each minting to 2-4 new holders (a Transfer log each)."""
    issuer = rpc.call("eth_accounts")[0].lower()
    artifact = load_artifact("PlainToken")
    ctor = encode(["string", "string", "uint8", "address"], ["Fault Token", "FLT", 6, issuer]).hex()
    tx = rpc.call("eth_sendTransaction", [{"from": issuer, "data": artifact["bytecode"] + ctor, "gas": hex(8_000_000)}])
    receipt = _receipt(rpc, tx)
    assert receipt["status"] == "0x1"
    token = receipt["contractAddress"].lower()
    rpc.call("anvil_mine", [hex(80)])  # so that anvil's safe (head-32) and finalized (head-64) are blocks of their own
    mint = TOKEN.fn("batchMint")
    minted: dict[int, list[str]] = {}
    serial = itertools.count()
    rpc.call("evm_setAutomine", [False])
    try:
        for b in range(N_BLOCKS):
            group = [_holder(next(serial)) for _ in range(2 + b % 3)]
            rpc.call("eth_sendTransaction", [{"from": issuer, "to": token, "gas": hex(2_000_000),
                                              "data": mint.encode(group, [10**6 + k for k in range(len(group))])}])
            rpc.call("evm_mine")
            minted[int(rpc.call("eth_blockNumber"), 16)] = group
    finally:
        rpc.call("evm_setAutomine", [True])
    head = int(rpc.call("eth_blockNumber"), 16)
    for number, group in minted.items():
        (rcpt,) = rpc.call("eth_getBlockReceipts", [hex(number)])
        assert rcpt["status"] == "0x1" and len(rcpt["logs"]) == len(group)
    yield LogChain(token, head - N_BLOCKS + 1, head, minted)


@pytest.fixture(scope="module")
def logs(rpc: RpcClient, chain: LogChain) -> list[dict]:
    """The chain's Transfer logs as anvil answers them directly."""
    out = rpc.call("eth_getLogs", [chain.log_filter(chain.first, chain.head)])
    assert len(out) == sum(len(g) for g in chain.minted.values())
    return out


def _post(url: str, payload: Any) -> tuple[int, Any]:
    resp = requests.post(url, data=orjson.dumps(payload), headers={"Content-Type": "application/json"}, timeout=10)
    return resp.status_code, orjson.loads(resp.content)


def _req(method: str, params: list | None = None, rid: int | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": next(_ids) if rid is None else rid, "method": method, "params": params or []}


def _call(url: str, method: str, params: list | None = None) -> dict:
    """One single request; the whole JSON-RPC answer (HTTP 200 checked)."""
    status, answer = _post(url, _req(method, params))
    assert status == 200, answer
    return answer


def _result(url: str, method: str, params: list | None = None) -> Any:
    answer = _call(url, method, params)
    assert "error" not in answer, answer
    return answer["result"]


def _key(log: dict) -> tuple[str, str]:
    return log["blockHash"], log["logIndex"]


# ------------------------------------------------------------------------------------ duplicated logs


def test_every_log_repeated_right_after_itself(anvil, chain, logs) -> None:
    with FaultProxy(anvil.url, Faults(dup_logs=1.0, dup_adjacent=1.0)) as proxy:
        got = _result(proxy.url, "eth_getLogs", [chain.log_filter(chain.first, chain.head)])
    assert got == [lg for log in logs for lg in (log, log)]
    assert proxy.injected == Counter({"dup_logs:adjacent": len(logs), "dup_logs:answers": 1})


def test_every_log_repeated_elsewhere_in_the_list(anvil, chain, logs) -> None:
    with FaultProxy(anvil.url, Faults(dup_logs=1.0, dup_adjacent=0.0, seed=4)) as proxy:
        got = _result(proxy.url, "eth_getLogs", [chain.log_filter(chain.first, chain.head)])
    assert len(got) == 2 * len(logs)
    assert Counter(_key(lg) for lg in got) == Counter({_key(lg): 2 for lg in logs})
    by_key = {_key(lg): lg for lg in logs}
    assert all(lg == by_key[_key(lg)] for lg in got), "a repeat is the very same log object"
    assert all(_key(a) != _key(b) for a, b in itertools.pairwise(got)), "no repeat sits next to its original"
    assert proxy.injected == Counter({"dup_logs:elsewhere": len(logs), "dup_logs:answers": 1})


def _positions(got: list[dict]) -> dict[tuple[str, str], list[int]]:
    where: dict[tuple[str, str], list[int]] = {}
    for i, lg in enumerate(got):
        where.setdefault(_key(lg), []).append(i)
    return where


def test_some_logs_repeated_some_adjacent_some_elsewhere_and_reproducible(anvil, chain, logs) -> None:
    flt = chain.log_filter(chain.first, chain.head)
    faults = Faults(dup_logs=0.4, seed=11)
    with FaultProxy(anvil.url, faults) as proxy:
        got = _result(proxy.url, "eth_getLogs", [flt])
    where = _positions(got)
    assert set(where) == {_key(lg) for lg in logs}
    assert all(len(p) in (1, 2) for p in where.values())
    doubled = {k: p for k, p in where.items() if len(p) == 2}
    adjacent = sum(1 for p in doubled.values() if p[1] == p[0] + 1)
    assert adjacent == proxy.injected["dup_logs:adjacent"] > 0
    assert len(doubled) - adjacent == proxy.injected["dup_logs:elsewhere"] > 0
    assert len(got) == len(logs) + len(doubled)
    # removing the second copy of each repeated log gives anvil's answer back (when the repeat went
    # before its original, that removes the original: the same log)
    firsts = [lg for i, lg in enumerate(got) if where[_key(lg)][0] == i]
    assert sorted(firsts, key=lambda lg: (int(lg["blockNumber"], 16), int(lg["logIndex"], 16))) == logs
    # the same seed repeats the same answer; another seed gives another
    with FaultProxy(anvil.url, faults) as again:
        assert _result(again.url, "eth_getLogs", [flt]) == got
    with FaultProxy(anvil.url, Faults(dup_logs=0.4, seed=12)) as other:
        assert _result(other.url, "eth_getLogs", [flt]) != got


def test_repeats_in_a_batch_and_only_in_successful_log_answers(anvil, rpc, chain, logs) -> None:
    flt = chain.log_filter(chain.first, chain.first)  # one block
    block = rpc.call("eth_getBlockByNumber", [hex(chain.first), False])
    empty = chain.log_filter(chain.first - 1, chain.first - 1)  # the deployment block: no Transfer
    unknown = {"blockHash": "0x" + "11" * 32}
    first_logs = [lg for lg in logs if int(lg["blockNumber"], 16) == chain.first]
    with FaultProxy(anvil.url, Faults(dup_logs=1.0, dup_adjacent=1.0)) as proxy:
        status, answers = _post(proxy.url, [
            _req("eth_getLogs", [flt], 1), _req("eth_getBlockByNumber", [hex(chain.first), False], 2),
            _req("eth_getLogs", [empty], 3), _req("eth_getLogs", [unknown], 4),
        ])
    assert status == 200
    assert [a["id"] for a in answers] == [1, 2, 3, 4]
    assert answers[0]["result"] == [lg for log in first_logs for lg in (log, log)]
    assert answers[1]["result"] == block
    assert answers[2]["result"] == []
    assert answers[3]["error"]["code"] == -32000 and "unknown block" in answers[3]["error"]["message"]
    assert proxy.injected == Counter({"dup_logs:adjacent": len(first_logs), "dup_logs:answers": 1})


# --------------------------------------------------------------------------------- transient errors


@pytest.mark.parametrize("wording", list(TRANSIENT_WORDINGS))
def test_a_transient_error_with_http_200_then_the_answer(anvil, rpc, chain, wording) -> None:
    want = rpc.call("eth_getBlockByNumber", [hex(chain.head), False])
    with FaultProxy(anvil.url, Faults(transient_rate=1.0, transient_wordings=(wording,))) as proxy:
        status, first = _post(proxy.url, _req("eth_getBlockByNumber", [hex(chain.head), False], 41))
        assert status == 200
        assert first == {"jsonrpc": "2.0", "id": 41, "error": TRANSIENT_WORDINGS[wording]}
        status, second = _post(proxy.url, _req("eth_getBlockByNumber", [hex(chain.head), False], 42))
        assert status == 200 and second == {"jsonrpc": "2.0", "id": 42, "result": want}
    assert proxy.injected == Counter({f"transient:{wording}": 1})
    assert proxy.seen[-1] == ("eth_getBlockByNumber", [hex(chain.head), False])
    assert len(proxy.seen) == 1, "a refused call never reaches anvil"


def test_the_exact_wordings() -> None:
    assert TRANSIENT_WORDINGS == {
        "alchemy": {"code": -32001, "message": "Unable to complete request at this time."},
        "proxyd": {"code": -32000, "message": "no backend is currently healthy to serve traffic"},
    }


def test_transient_errors_inside_a_batch_then_the_answers(anvil, rpc, chain, logs) -> None:
    calls = [("eth_getBlockByNumber", [hex(n), False]) for n in range(chain.first, chain.first + 3)]
    calls.append(("eth_getLogs", [chain.log_filter(chain.first, chain.head)]))
    want = [*rpc.batch(calls[:3]), logs]
    with FaultProxy(anvil.url, Faults(transient_rate=1.0, transient_repeat=2)) as proxy:
        for round_ in range(2):  # refused twice in a row ...
            status, answers = _post(proxy.url, [_req(m, p, k) for k, (m, p) in enumerate(calls)])
            assert status == 200 and [a["id"] for a in answers] == [0, 1, 2, 3]
            assert all(set(a) == {"jsonrpc", "id", "error"} for a in answers), round_
            assert {orjson.dumps(a["error"]) for a in answers} == {orjson.dumps(w) for w in TRANSIENT_WORDINGS.values()}
        status, answers = _post(proxy.url, [_req(m, p, k) for k, (m, p) in enumerate(calls)])  # ... then answered
        assert status == 200 and [a["result"] for a in answers] == want
    assert sum(proxy.injected.values()) == 8
    assert proxy.injected["transient:alchemy"] == proxy.injected["transient:proxyd"] == 4, "the wordings rotate"


def test_transient_errors_at_a_rate_only_for_chosen_methods(anvil, rpc, chain) -> None:
    numbers = list(range(chain.first, chain.head + 1))
    want = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    faults = Faults(transient_rate=0.5, transient_methods=("eth_getBlockByNumber",), seed=5)
    with FaultProxy(anvil.url, faults) as proxy:
        batch = [_req("eth_getBlockByNumber", [hex(n), False], n) for n in numbers]
        batch.append(_req("eth_blockNumber", [], 0))
        _, answers = _post(proxy.url, batch)
        assert answers[-1] == {"jsonrpc": "2.0", "id": 0, "result": hex(chain.head)}, "other methods pass"
        refused = [a["id"] for a in answers[:-1] if "error" in a]
        assert 0 < len(refused) < len(numbers)
        assert all(a["error"] in TRANSIENT_WORDINGS.values() for a in answers if "error" in a)
        assert sum(proxy.injected.values()) == len(refused)
        _, again = _post(proxy.url, [_req("eth_getBlockByNumber", [hex(n), False], n) for n in refused])
    assert [a["result"] for a in again] == [want[numbers.index(n)] for n in refused], "answered on the next try"
    got = {a["id"]: a["result"] for a in [*answers[:-1], *again] if "result" in a}
    assert [got[n] for n in numbers] == want


def test_the_same_seed_refuses_the_same_calls(anvil, chain) -> None:
    def refused(seed: int) -> list[int]:
        with FaultProxy(anvil.url, Faults(transient_rate=0.3, seed=seed)) as proxy:
            out = [n for n in range(chain.head + 1) if "error" in _call(proxy.url, "eth_getBlockByNumber",
                                                                         [hex(n), False])]
        assert sum(proxy.injected.values()) == len(out)
        return out

    assert refused(1) == refused(1) != refused(2)


# ---------------------------------------------------------------------------- the lagging backend


def _lagging(k: int = 2, **kw) -> Faults:
    return Faults(lag_rate=1.0, lag_blocks=k, lag_head_ttl=0.0, **kw)


def test_the_lagging_backend_head_and_blocks(anvil, rpc, chain) -> None:
    head, k = chain.head, 2
    blocks = {n: rpc.call("eth_getBlockByNumber", [hex(n), False]) for n in range(head - 4, head + 1)}
    safe = int(rpc.call("eth_getBlockByNumber", ["safe", False])["number"], 16)
    finalized = int(rpc.call("eth_getBlockByNumber", ["finalized", False])["number"], 16)
    with FaultProxy(anvil.url, _lagging(k)) as proxy:
        url = proxy.url
        assert _result(url, "eth_blockNumber") == hex(head - k)
        for n in range(head - 4, head + 1):
            want = blocks[n] if n <= head - k else None
            assert _result(url, "eth_getBlockByNumber", [hex(n), False]) == want, n
            assert _result(url, "eth_getBlockByHash", [blocks[n]["hash"], False]) == want, n
        assert _result(url, "eth_getBlockByNumber", ["latest", False]) == blocks[head - k]
        assert _result(url, "eth_getBlockByNumber", ["safe", False]) == rpc.call(
            "eth_getBlockByNumber", [hex(safe - k), False])
        assert _result(url, "eth_getBlockByNumber", ["finalized", False]) == rpc.call(
            "eth_getBlockByNumber", [hex(finalized - k), False])
        assert _result(url, "eth_getBlockByNumber", ["earliest", False]) == rpc.call(
            "eth_getBlockByNumber", ["0x0", False])
    requests_ = 1 + 2 * 5 + 4
    assert proxy.injected == Counter({
        "lag": requests_, f"lag:behind_{k}": requests_, "lag:head": 1, "lag:null_block": 2 * k, "lag:tag": 3,
    })
    assert list(proxy.lagged) == [(n, k, head) for n in range(1, requests_ + 1)]


def test_the_lagging_backend_answers_incomplete_log_ranges(anvil, chain, logs) -> None:
    head, k = chain.head, 3
    kept = [lg for lg in logs if int(lg["blockNumber"], 16) <= head - k]
    hidden = len(logs) - len(kept)
    assert len(kept) > 0 and hidden == sum(len(chain.minted[n]) for n in range(head - k + 1, head + 1))
    with FaultProxy(anvil.url, _lagging(k)) as proxy:
        url = proxy.url
        assert _result(url, "eth_getLogs", [chain.log_filter(chain.first, head)]) == kept
        assert _result(url, "eth_getLogs", [chain.log_filter(chain.first, "latest")]) == kept
        assert _result(url, "eth_getLogs", [chain.log_filter(chain.first, head + 50)]) == kept, "past the head too"
        assert _result(url, "eth_getLogs", [chain.log_filter(head - k + 1, head)]) == []
        assert _result(url, "eth_getLogs", [chain.log_filter(chain.first, head - k)]) == kept, "a range it has"
        assert _result(url, "eth_getLogs", [chain.log_filter("latest", "latest")]) == [
            lg for lg in logs if int(lg["blockNumber"], 16) == head - k]
    assert proxy.injected["lag:logs_incomplete"] == 5
    assert proxy.injected["lag:logs_hidden"] == 5 * hidden
    assert proxy.injected["lag:tag"] == 2


def test_the_lagging_backend_refuses_block_hash_queries_of_blocks_it_has_not_seen(anvil, rpc, chain, logs) -> None:
    head, k = chain.head, 2
    hashes = {n: rpc.call("eth_getBlockByNumber", [hex(n), False])["hash"] for n in range(head - k - 1, head + 1)}
    with FaultProxy(anvil.url, _lagging(k)) as proxy:
        for n, block_hash in hashes.items():
            answer = _call(proxy.url, "eth_getLogs", [{"address": chain.token, "blockHash": block_hash}])
            if n > head - k:
                assert answer["error"] == {"code": -32000, "message": "unknown block"}, n
            else:
                assert answer["result"] == [lg for lg in logs if lg["blockHash"] == block_hash] != [], n
    assert proxy.injected["lag:unknown_block"] == k


def test_the_lagging_backend_calls_at_newer_blocks_fail_with_header_not_found(anvil, rpc, chain) -> None:
    head, k = chain.head, 2
    newest = chain.minted[head][0]  # first minted to in the newest block: nothing at head-k
    data = TOKEN.fn("balanceOf").encode(newest)
    call = {"to": chain.token, "data": data}
    zero, minted = "0x" + "00" * 32, "0x" + (10**6).to_bytes(32, "big").hex()
    assert rpc.call("eth_call", [call, hex(head)]) == minted and rpc.call("eth_call", [call, hex(head - k)]) == zero
    head_hash = rpc.call("eth_getBlockByNumber", [hex(head), False])["hash"]
    with FaultProxy(anvil.url, _lagging(k)) as proxy:
        url = proxy.url
        for n in (head, head - 1):
            assert _call(url, "eth_call", [call, hex(n)])["error"] == {"code": -32000, "message": "header not found"}
        assert _call(url, "eth_call", [call, {"blockNumber": hex(head)}])["error"] == {
            "code": -32000, "message": "header not found"}
        assert _call(url, "eth_call", [call, {"blockHash": head_hash}])["error"] == {
            "code": -32000, "message": "header for hash not found"}
        assert _call(url, "eth_getBalance", [newest, hex(head)])["error"]["message"] == "header not found"
        assert _result(url, "eth_call", [call, hex(head - k)]) == zero
        assert _result(url, "eth_call", [call, "latest"]) == zero, "latest is the lagging backend's own"
        assert _result(url, "eth_call", [call]) == zero
    assert proxy.injected["lag:header_not_found"] == 5
    assert proxy.injected["lag:tag"] == 2


def test_the_lagging_backend_does_not_know_newer_transactions(anvil, rpc, chain) -> None:
    head, k = chain.head, 1
    (old,) = rpc.call("eth_getBlockReceipts", [hex(head - k)])
    (new,) = rpc.call("eth_getBlockReceipts", [hex(head)])
    with FaultProxy(anvil.url, _lagging(k)) as proxy:
        assert _result(proxy.url, "eth_getTransactionReceipt", [new["transactionHash"]]) is None
        assert _result(proxy.url, "eth_getTransactionByHash", [new["transactionHash"]]) is None
        assert _result(proxy.url, "eth_getTransactionReceipt", [old["transactionHash"]]) == old
        assert _result(proxy.url, "eth_getBlockReceipts", [hex(head)]) is None
        assert _result(proxy.url, "eth_getBlockReceipts", ["latest"]) == [old]
    assert proxy.injected["lag:null_tx"] == 2 and proxy.injected["lag:null_block"] == 1


def test_a_batch_goes_to_one_backend_k_drawn_per_request(anvil, rpc, chain) -> None:
    head = chain.head
    blocks = {n: rpc.call("eth_getBlockByNumber", [hex(n), False]) for n in range(head - 3, head + 1)}
    with FaultProxy(anvil.url, Faults(lag_rate=0.5, lag_head_ttl=0.0, seed=8)) as proxy:
        seen: Counter = Counter()
        order: list[int] = []
        for _ in range(60):
            _, answers = _post(proxy.url, [
                _req("eth_blockNumber"), _req("eth_getBlockByNumber", ["latest", False]),
                _req("eth_getBlockByNumber", [hex(head), False]),
                _req("eth_getLogs", [chain.log_filter(head, head)]),
            ])
            top = int(answers[0]["result"], 16)
            behind = head - top
            seen[behind] += 1
            order.append(behind)
            assert answers[1]["result"] == blocks[top], "one backend answers the whole batch"
            assert (answers[2]["result"] is None) == (behind > 0)
            assert (answers[3]["result"] == []) == (behind > 0)
    assert set(seen) == {0, 1, 2, 3}, seen
    assert proxy.injected["lag"] == 60 - seen[0] == len(proxy.lagged)
    assert all(proxy.injected[f"lag:behind_{k}"] == seen[k] for k in (1, 2, 3))
    assert [k for _, k, _ in proxy.lagged] == [k for k in order if k], "K is drawn per request"


def test_the_real_head_is_cached_for_the_configured_time(anvil, rpc, chain) -> None:
    snapshot = rpc.call("evm_snapshot")
    try:
        with FaultProxy(anvil.url, Faults(lag_rate=1.0, lag_blocks=1, lag_head_ttl=60.0)) as cached, \
                FaultProxy(anvil.url, _lagging(1)) as fresh:
            assert _result(cached.url, "eth_blockNumber") == _result(fresh.url, "eth_blockNumber") == hex(chain.head - 1)
            rpc.call("anvil_mine", ["0x5"])
            assert _result(cached.url, "eth_blockNumber") == hex(chain.head - 1)
            assert _result(fresh.url, "eth_blockNumber") == hex(chain.head + 4)
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True
    assert int(rpc.call("eth_blockNumber"), 16) == chain.head


def test_no_lag_and_no_new_fault_by_default(anvil, rpc, chain, logs) -> None:
    with FaultProxy(anvil.url) as proxy:
        assert _result(proxy.url, "eth_blockNumber") == hex(chain.head)
        assert _result(proxy.url, "eth_getLogs", [chain.log_filter(chain.first, chain.head)]) == logs
    assert proxy.injected == Counter() and not proxy.lagged


@pytest.mark.parametrize("bad", [{"transient_repeat": 0}, {"transient_wordings": ("nobody",)},
                                 {"lag_blocks": (3, 1)}, {"lag_blocks": -1}])
def test_bad_options_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        Faults(**bad)
