"""Every read the indexer makes and every event it decodes is in the ABI of an imitation of the real
contract (indexer/abis/, docs/contracts.md), with the same outputs and the same indexed arguments; the few
variants no imitation emits are named here."""

from __future__ import annotations

import json
from pathlib import Path

from indexer.chain import pools as pool_reads
from indexer.chain import state
from indexer.chain.abi import load_abi
from indexer.chain.decode import EVENT_SPECS, POOL_EVENT_SPECS, TRANSFER, TRANSFER_SHARES, topic_of
from indexer.chain.tokens import READS

ABIS = Path(__file__).resolve().parents[2] / "indexer" / "abis"

# decoded although no imitation emits them (the same signature with its arguments in the data, or an event
# of a draft standard no imitation follows), so that such a log is stored rather than skipped
VARIANTS = {
    ("NewSanctionsList(address)", (False,)),
    ("UIMultiplierUpdateCancelled(uint256,uint256)", (False, False)),
    ("AddressFrozen(address,bool,address)", (False, False, False)),
}


def _type(p: dict) -> str:
    if p["type"].startswith("tuple"):
        return "(" + ",".join(_type(c) for c in p["components"]) + ")" + p["type"][5:]
    return p["type"]


def _surfaces() -> tuple[dict[str, dict[str, tuple]], dict[tuple[str, tuple], set[str]]]:
    functions: dict[str, dict[str, tuple]] = {}
    events: dict[tuple[str, tuple], set[str]] = {}
    for f in sorted(ABIS.glob("*.json")):
        for item in json.loads(f.read_text()):
            if item["type"] not in ("function", "event"):
                continue
            sig = f"{item['name']}({','.join(_type(p) for p in item['inputs'])})"
            if item["type"] == "function":
                functions.setdefault(sig, {})[f.stem] = tuple(_type(o) for o in item["outputs"])
            else:
                events.setdefault((sig, tuple(p["indexed"] for p in item["inputs"])), set()).add(f.stem)
    return functions, events


def test_every_read_is_a_function_of_an_imitation_with_the_same_outputs():
    functions, _ = _surfaces()
    reads = [*READS.values(), state.LATEST_ROUND_DATA, state.GET_ROUND_DATA, state.PHASE_AGGREGATORS,
             state.LATEST_ROUND, state.BALANCE_OF, state.IS_FROZEN, state.IS_SANCTIONED]
    for r in reads:
        found = functions.get(r.signature, {})
        assert found, r.signature
        assert all(outputs == tuple(r.outputs) for outputs in found.values()), (r.signature, found)
    assert set(functions["getCurrentMultiplier()"]) == {"XStockV3", "XStockV4"}
    assert set(functions["latestRoundData()"]) >= {"FeedProxy", "OcrAggregator"}


def test_every_decoded_event_is_an_event_of_an_imitation_or_a_named_variant():
    _, events = _surfaces()
    for spec in EVENT_SPECS:
        key = (spec.signature, spec.indexed)
        assert events.get(key) or key in VARIANTS, key
        assert not (events.get(key) and key in VARIANTS), key
    assert events[("Transfer(address,address,uint256)", (True, True, False))] >= {"XStockV4", "PlainToken"}
    assert events[("TransferShares(address,address,uint256)", (True, True, False))] == {"XStockV3", "XStockV4"}
    assert (topic_of("Transfer(address,address,uint256)"),
                                           topic_of("TransferShares(address,address,uint256)")) == (TRANSFER, TRANSFER_SHARES)
    assert events[("NewSanctionsList(address)", (True,))] == {"XStockV3", "XStockV4"}


def test_the_pool_events_and_reads_are_the_published_pools():
    """The pool logs the sync stores and the functions it reads are `UniswapV3Pool`'s of @uniswap/v3-core 1.0.1,
    by signature, indexed flags and return types (the ABI copied from the npm package at setup)."""
    reads = pool_reads
    pool = load_abi("UniswapV3Pool")
    for spec in POOL_EVENT_SPECS:
        item = next(e for e in pool.abi if e.get("type") == "event" and e["name"] == spec.name)
        assert spec.signature == f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
        assert spec.indexed == tuple(i["indexed"] for i in item["inputs"])
        assert spec.topic0 == pool.event(spec.name).topic0
    for read in (reads.TOKEN0, reads.TOKEN1, reads.FEE, reads.TICK_SPACING, reads.SLOT0, reads.LIQUIDITY,
                 reads.TICK_BITMAP, reads.TICKS):
        fn = pool.functions[read.signature]
        assert fn.outputs == read.outputs, read.signature
