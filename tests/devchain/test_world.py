"""The demo world on chain matches its manifest and is the world the later issues need."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from indexer.accounting import WAD, RebasingParams, rebasing_multiplier_at
from indexer.chain.abi import TOKEN_CONTRACT as TOKEN_ABI
from indexer.chain.abi import load_abi
from indexer.devchain.specs import CRASH_DAYS, DAY, FROZEN_MSFT, SANCTIONED
from indexer.risk.calendar import xnys
from indexer.types import Accounting


def read(rpc, address, contract, fn, *args, block="latest"):
    f = load_abi(contract).fn(fn)
    out = f.decode(rpc.call("eth_call", [{"to": address, "data": f.encode(*args)}, block]))
    return out[0] if len(out) == 1 else out


def read_many(rpc, calls, block="latest"):
    """[(address, contract, fn, args)] -> decoded first values, in one batch per 2,000 calls."""
    encoded = []
    for address, contract, fn, args in calls:
        f = load_abi(contract).fn(fn)
        encoded.append((f, ("eth_call", [{"to": address, "data": f.encode(*args)}, block])))
    out = []
    for i in range(0, len(encoded), 2000):
        chunk = encoded[i:i + 2000]
        results = rpc.batch([c for _, c in chunk])
        out += [f.decode(r)[0] for (f, _), r in zip(chunk, results, strict=True)]
    return out


def logs(rpc, addresses, topic0, start, end, step=2000):
    found = []
    for lo in range(start, end + 1, step):
        hi = min(end, lo + step - 1)
        found += rpc.call("eth_getLogs", [{"address": addresses, "topics": [topic0],
                                            "fromBlock": hex(lo), "toBlock": hex(hi)}])
    return found


def head_block(rpc):
    return rpc.call("eth_getBlockByNumber", ["latest", False])


def test_manifest_matches_the_chain(manifest, world_rpc):
    assert int(world_rpc.call("eth_chainId"), 16) == manifest.chain.chain_id
    assert manifest.chain.deployment_block < manifest.world["head_block"] == int(head_block(world_rpc)["number"], 16)
    for t in manifest.tokens:
        contract = TOKEN_ABI[t.accounting]
        assert world_rpc.call("eth_getCode", [t.address, "latest"]) not in ("0x", "")
        assert read(world_rpc, t.address, contract, "symbol") == t.symbol
        assert read(world_rpc, t.address, contract, "decimals") == t.decimals
        if t.accounting != Accounting.PLAIN:
            assert read(world_rpc, t.address, contract, "ticker") == t.underlying
            assert read(world_rpc, t.address, contract, "isin") == t.isin
    for f in manifest.feeds:
        assert read(world_rpc, f.address, "PriceFeed", "decimals") == f.decimals
        assert read(world_rpc, f.address, "PriceFeed", "description") == f.name
    multicall = world_rpc.call("eth_getCode", [manifest.chain.multicall3, "latest"])
    assert len(multicall) > 1000


def test_world_has_the_promised_size(manifest, world_rpc):
    w = manifest.world
    assert w["wallets"] >= 1000
    assert w["blocks"] >= 5000
    head = w["head_block"]
    transfer = load_abi("UiMultiplierStock").event("Transfer").topic0
    found = logs(world_rpc, [t.address for t in manifest.tokens], transfer, manifest.chain.deployment_block, head)
    assert len(found) == w["transfers"]
    assert len(found) >= 50_000
    mints = sum(1 for lg in found if lg["topics"][1] == "0x" + "00" * 32)
    burns = sum(1 for lg in found if lg["topics"][2] == "0x" + "00" * 32)
    assert mints > 1000 and burns > 50
    wallets = {lg["topics"][2] for lg in found} | {lg["topics"][1] for lg in found}
    assert len(wallets) >= 1000
    for f in manifest.feeds:
        round_id = read(world_rpc, f.address, "PriceFeed", "latestRound")
        assert round_id >> 64 == 1
        assert round_id & (2**64 - 1) >= 500, f.name


def test_every_balance_on_chain_equals_the_worlds_books(world, manifest, world_rpc):
    """The simulation's integer books (shares x multiplier for rebasing tokens) equal balanceOf."""
    sim = world.sim
    t_head = int(head_block(world_rpc)["timestamp"], 16)
    calls, expected = [], []
    for t in manifest.tokens:
        contract = TOKEN_ABI[t.accounting]
        for w in sim.holders[t.symbol]:
            calls.append((t.address, contract, "balanceOf", (sim.wallets[w],)))
            expected.append(sim.balance(t.symbol, w, t_head))
        calls.append((t.address, contract, "totalSupply", ()))
        m = sim.multiplier(t.symbol, t_head)
        total = sim.total_units[t.symbol]
        expected.append(total * m // WAD if t.accounting == Accounting.REBASING_SHARES else total)
    assert read_many(world_rpc, calls) == expected


def test_rebasing_multiplier_follows_the_pure_rule(manifest, world_rpc):
    t_head = int(head_block(world_rpc)["timestamp"], 16)
    for t in manifest.tokens:
        if t.accounting != Accounting.REBASING_SHARES:
            continue
        c = "RebasingSharesStock"
        params = RebasingParams(*read_many(world_rpc, [(t.address, c, fn, ()) for fn in (
            "multiplier", "lastTimeFeeApplied", "feePerPeriod", "periodLength", "newMultiplier",
            "newMultiplierActivationTime", "multiplierNonce")]))
        on_chain = read(world_rpc, t.address, c, "getCurrentMultiplier")
        assert on_chain[0] == rebasing_multiplier_at(params, t_head)[0]
        assert on_chain[0] < WAD * 4


def test_corporate_actions_and_controls_took_effect(manifest, world_rpc):
    by = {t.symbol: t for t in manifest.tokens}
    tsla = read(world_rpc, by["TSLAx"].address, "RebasingSharesStock", "getCurrentMultiplier")[0]
    assert 2.99 * WAD < tsla < 3.0 * WAD  # 3-for-1 split on top of the fee accrued before it
    assert read(world_rpc, by["AMZN"].address, "UiMultiplierStock", "uiMultiplier") == 2 * WAD
    assert read(world_rpc, by["AAPLx"].address, "RebasingSharesStock", "getCurrentMultiplier")[0] < WAD
    assert read(world_rpc, by["TLT"].address, "UiMultiplierStock", "paused") is True
    assert read(world_rpc, by["MSFT"].address, "UiMultiplierStock", "paused") is False
    frozen_now: dict[tuple[str, str], bool] = {}
    for e in manifest.events:
        if e["kind"] in ("freeze", "unfreeze"):
            for w in e["wallets"]:
                frozen_now[(e["token"], w)] = e["kind"] == "freeze"
    assert len(frozen_now) == len(FROZEN_MSFT) + 1 and sum(frozen_now.values()) == len(FROZEN_MSFT)
    for (sym, w), frozen in frozen_now.items():
        assert read(world_rpc, by[sym].address, "UiMultiplierStock", "isFrozen", w) is frozen
    sanctions = manifest.world["sanctions_list"]
    sanctioned = [w for e in manifest.events if e["kind"] == "sanction" for w in e["wallets"]]
    assert len(sanctioned) == len(SANCTIONED)
    for w in sanctioned:
        assert read(world_rpc, sanctions, "SanctionsList", "isSanctioned", w) is True
    kinds = Counter(e["kind"] for e in manifest.events)
    assert kinds["multiplier_scheduled"] == 2 and kinds["ui_multiplier_scheduled"] == 1


def test_reserve_shortfall_shows_on_the_proof_of_reserve_feed(manifest, world_rpc):
    by = {t.symbol: t for t in manifest.tokens}
    for sym in ("NVDAx", "AAPLx"):
        t = by[sym]
        supply = read(world_rpc, t.address, "RebasingSharesStock", "totalSupply")
        reserve = read(world_rpc, manifest.feed(t.reserve_feed).address, "PriceFeed", "latestAnswer")
        coverage = reserve / (supply * 10 ** (18 - t.decimals))
        if sym == "NVDAx":
            assert 0.95 < coverage < 0.99
        else:
            assert coverage >= 0.999


def _round_times(world_rpc, manifest, feed_name):
    f = manifest.feed(feed_name)
    topic = load_abi("PriceFeed").event("AnswerUpdated").topic0
    found = logs(world_rpc, [f.address], topic, manifest.chain.deployment_block, manifest.world["head_block"])
    return np.array([int(lg["data"], 16) for lg in found]), found


def test_stock_feeds_are_silent_while_the_market_is_closed(manifest, world_rpc):
    cal = xnys()
    times, _ = _round_times(world_rpc, manifest, "AAPL/USD")
    assert len(times) >= 500
    assert (cal.is_open(times) | cal.is_open(times - 1)).all()  # open, or the closing print
    weekdays = {int(t // DAY + 3) % 7 for t in times}  # 1970-01-01 was a Thursday; 0 = Monday
    assert weekdays == {0, 1, 2, 3, 4}
    crypto, _ = _round_times(world_rpc, manifest, "BTC/USD")
    assert not cal.is_open(crypto).all()
    assert {int(t // DAY + 3) % 7 for t in crypto} == set(range(7))


def test_a_stalled_feed_and_an_incomplete_round_are_in_the_history(manifest, world_rpc):
    stall = next(e for e in manifest.events if e["kind"] == "feed_stall")
    times, _ = _round_times(world_rpc, manifest, stall["feed"])
    assert not any(stall["timestamp"] < t < stall["until"] for t in times)
    incomplete = next(e for e in manifest.events if e["kind"] == "incomplete_round")
    f = manifest.feed(incomplete["feed"])
    _, found = _round_times(world_rpc, manifest, incomplete["feed"])
    in_block = [lg for lg in found if int(lg["blockNumber"], 16) == incomplete["block"]]
    assert len(in_block) == 1
    round_id = int(in_block[0]["topics"][2], 16)
    data = read(world_rpc, f.address, "PriceFeed", "getRoundData", round_id)
    assert data[0] == round_id and data[4] == round_id - 1


def _close_price(times, answers, before):
    i = int(np.searchsorted(times, before, side="right")) - 1
    return answers[i]


def test_equities_and_crypto_crash_together(manifest, world_rpc):
    first, last = CRASH_DAYS[0][0], CRASH_DAYS[-1][0] + DAY
    moves = {}
    for name in ("SPYx/USD", "QQQx/USD", "BTC/USD", "ETH/USD"):
        _, found = _round_times(world_rpc, manifest, name)
        times = np.array([int(lg["data"], 16) for lg in found])
        answers = np.array([int(lg["topics"][1], 16) for lg in found], dtype=float)
        moves[name] = math.log(_close_price(times, answers, last) / _close_price(times, answers, first))
    assert moves["SPYx/USD"] < -0.10 and moves["QQQx/USD"] < -0.10
    assert moves["BTC/USD"] < -0.35 and moves["ETH/USD"] < -0.35


@pytest.mark.parametrize("symbol", ["SPYx", "AMZN", "USDC"])
def test_holdings_are_heavy_tailed(world, world_rpc, symbol):
    sim = world.sim
    t = int(head_block(world_rpc)["timestamp"], 16)
    balances = np.array(sorted((sim.balance(symbol, w, t) for w in sim.holders[symbol]), reverse=True), dtype=float)
    top = max(1, len(balances) // 100)
    assert balances[:top].sum() / balances.sum() > 0.15  # the top 1% of holders hold a large share
    assert np.median(balances) < balances.mean() / 4  # most holders are small


@pytest.mark.parametrize("name", ["TSLAx/USD", "AMZN/USD"])
def test_prices_follow_splits_as_their_quote_says(manifest, world_rpc, name):
    """A per-token feed moves smoothly through a split; a per-share feed drops by the ratio."""
    _, found = _round_times(world_rpc, manifest, name)
    times = np.array([int(lg["data"], 16) for lg in found])
    answers = np.array([int(lg["topics"][1], 16) for lg in found], dtype=float)
    event = next(e for e in manifest.events if e["token"] == name.split("/")[0]
                 and e["kind"].endswith("scheduled"))
    i = int(np.searchsorted(times, event["activation_time"]))
    jump = answers[i] / answers[i - 1]
    if manifest.feed(name).quote == "per_token":
        assert 0.8 < jump < 1.25
    else:
        assert 0.4 < jump < 0.62
