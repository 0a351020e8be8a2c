"""The dev world's Uniswap v3 pools (indexer/devchain/pools.py, docs/liquidity.md "The dev world's pools"), on real
anvil: the manifest lists them and loads; on chain they are the published contracts' pools of the manifest's token
and USDC at the manifest's fee; in a normal session each trades at the oracle's NAV per token; in the crash window
the liquidity is out and the tokens trade at a discount; the thin pool's weekend buy moves its price by tens of
percent; after TSLAx's 3-for-1 split the pool is three times too high until the arbitrage brings it to the new NAV;
and the world's books of the pools and their actors are the chain's, to the wei.

The module plays the first 71 days of the seed-7 world (to 2026-03-14) on its own node, 50 blocks at a time, and
reads the pools and feeds at the blocks the tests look at right after each stretch, while the node still holds
their state (it keeps 256)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import pytest
from eth_abi import decode

from indexer.accounting import WAD
from indexer.chain.abi import load_abi
from indexer.chain.rpc import RpcClient
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import AnvilNode, free_port
from indexer.devchain.chain import short_timeline
from indexer.devchain.deploy import (
    BuildReport,
    ChainWriter,
    deploy_world,
    mine_initial_distribution,
    play_blocks,
)
from indexer.devchain.manifest import manifest_data, write_manifest
from indexer.devchain.pools import ARBITRAGEUR, LIQUIDITY_PROVIDER, TRADERS
from indexer.devchain.specs import CRYPTO, POOLS, SCALES, TIMELINE, TOKENS, VAULTS, utc
from indexer.devchain.uniswap import FEE_TIERS, POOL, POSITIONS, SWAP, Pool, Uniswap, pool_address
from indexer.devchain.world import Deployment, WorldSim, price_feed_name, token_contract
from indexer.liquidity.v3 import PoolState, mid_price, premium_bp
from indexer.types import Accounting, PriceQuote
from tests.liquidity.uniswap import read_pool_state

SEED = 7
DAYS = 71
SCALE = SCALES["small"]
NORMAL = [utc(2026, 2, 4, 15) + k * 1800 for k in range(13)]  # a Wednesday's session, 15:00-21:00 UTC
MAIN = utc(2026, 2, 4, 19)
THIN = utc(2026, 2, 7, 15)  # the thin pool's weekend buy (specs.scheduled_events)
ACTIVATION = utc(2026, 2, 14, 12)  # TSLAx's 3-for-1 split takes effect, no transaction touches TSLAx for 3 days
QUIET_END = ACTIVATION + 3 * 86_400  # Tuesday 12:00 UTC, before the open
SPLIT = [ACTIVATION - 1800, QUIET_END - 1800, QUIET_END, QUIET_END + 1800, utc(2026, 2, 17, 15), utc(2026, 2, 17, 19)]
WITHDRAWN = utc(2026, 3, 10, 15)
CRASH = [WITHDRAWN - 1800, utc(2026, 3, 11, 19), utc(2026, 3, 13, 19)]  # before, in the window, after it
FULL = {MAIN, THIN - 1800, THIN, *SPLIT, *CRASH}  # read whole (every initialized tick), the others slot0 only

FEED = load_abi("FeedProxy")
TOKEN_OF = {t.symbol: t for t in TOKENS}


@dataclass
class Snapshot:
    block: int
    timestamp: int
    pools: dict[str, PoolState]  # by pool name
    nav: dict[str, Fraction]  # the oracle's NAV per token at the block, by token symbol


@dataclass
class PoolsWorld:
    settings: Settings
    sim: WorldSim
    rpc: RpcClient
    uniswap: Uniswap
    pools: dict[str, Pool]
    snapshots: dict[int, Snapshot] = field(default_factory=dict)  # by block timestamp

    def at(self, t: int) -> Snapshot:
        return self.snapshots[t]

    def event(self, kind: str, token: str | None = None) -> dict:
        (ev,) = [e for e in self.settings.events if e["kind"] == kind and token in (None, e["token"])]
        return ev


def _nav(rpc: RpcClient, settings: Settings, symbol: str, block: int) -> Fraction:
    """The oracle's NAV per token at `block` (docs/risk.md section 2): the feed's answer, times the ERC-8056
    multiplier for a per_share feed of a ui_multiplier token (an xStock's token is one share either way)."""
    token = settings.token(symbol)
    feed = settings.feed(token.feed)
    answer = FEED.fn("latestRoundData").decode(rpc.call("eth_call", [{"to": feed.address, "data": FEED.fn(
        "latestRoundData").encode()}, hex(block)]))[1]
    nav = Fraction(answer, 10**feed.decimals)
    if token.accounting == Accounting.UI_MULTIPLIER and feed.quote == PriceQuote.PER_SHARE:
        fn = load_abi(token_contract(symbol)).fn("uiMultiplier")
        nav *= Fraction(fn.decode(rpc.call("eth_call", [{"to": token.address, "data": fn.encode()}, hex(block)]))[0],
                        WAD)
    return nav


def _slot0_state(u: Uniswap, pool: Pool, block: int) -> PoolState:
    tag = hex(block)
    slot0, liquidity = u.rpc.batch([("eth_call", [{"to": pool.address, "data": POOL.fn(fn).encode()}, tag])
                                    for fn in ("slot0", "liquidity")])
    sqrt_price, tick = POOL.fn("slot0").decode(slot0)[:2]
    return PoolState(sqrt_price, tick, POOL.fn("liquidity").decode(liquidity)[0], pool.fee, pool.tick_spacing, {})


def _snapshot(w: PoolsWorld, block: int, t: int) -> Snapshot:
    read = read_pool_state if t in FULL else _slot0_state
    states = {name: read(w.uniswap, pool, block) for name, pool in w.pools.items()}
    return Snapshot(block, t, states, {p.token: _nav(w.rpc, w.settings, p.token, block) for p in w.settings.pools})


@pytest.fixture(scope="module")
def pools_world(tmp_path_factory) -> PoolsWorld:
    folder = tmp_path_factory.mktemp("pools")
    timeline = short_timeline(DAYS)
    node = AnvilNode.start(free_port(), folder, genesis_timestamp=timeline.start - 3 * 3600, prune_history=256)
    rpc = RpcClient(node.url, timeout=120)
    try:
        dep = deploy_world(rpc, timeline.start - 7_200)
        deployment_block = int(rpc.call("eth_blockNumber"), 16) - 2
        sim = WorldSim(SEED, SCALE, timeline, dep)
        writer = ChainWriter(rpc)
        rpc.call("evm_setAutomine", [False])
        mine_initial_distribution(writer, sim)
        times = sim.block_times()
        wanted = {*NORMAL, *FULL}
        events: list[dict] = []
        path = folder / "manifest.toml"

        def manifest(head: int) -> Settings:  # the settings (the pools' addresses) as the world writes them
            report = BuildReport(deployment_block, head, len(times) + 1, writer.sent, sim.transfers_planned, 0.0,
                                 events)
            write_manifest(path, manifest_data(rpc_url=node.url, seed=SEED, scale=SCALE, timeline=timeline, dep=dep,
                                               report=report))
            return load_settings(path)

        w: PoolsWorld | None = None
        for i in range(0, len(times), 50):
            chunk = times[i:i + 50]
            head = play_blocks(writer, sim, chunk, events)
            found = [(head - (len(chunk) - 1 - k), t) for k, t in enumerate(chunk) if t in wanted]
            if found and w is None:
                settings = manifest(head)
                u = Uniswap.attach(rpc, settings.world["uniswap"])
                w = PoolsWorld(settings, sim, rpc, u, {p.name: _pool(u, p.address) for p in settings.pools})
            for block, t in found:
                w.snapshots[t] = _snapshot(w, block, t)
        rpc.call("evm_setAutomine", [True])
        assert w is not None and set(w.snapshots) == wanted
        w.settings = manifest(head)  # with every event
        yield w
    finally:
        rpc.close()
        node.stop(remove_state=True)


def _pool(u: Uniswap, address: str) -> Pool:
    t0, t1, fee, spacing = (POOL.fn(fn).decode(u.call(address, POOL.fn(fn).encode()))[0]
                            for fn in ("token0", "token1", "fee", "tickSpacing"))
    return Pool(address, t0.lower(), t1.lower(), fee, spacing)


def price_of_token(w: PoolsWorld, name: str, state: PoolState) -> Fraction:
    """The pool's mid price of one whole token in USDC."""
    pool, cfg = w.pools[name], next(p for p in w.settings.pools if p.name == name)
    token, usdc = w.settings.token(cfg.token), w.settings.token("USDC")
    if pool.token0 == token.address:
        return mid_price(state, token.decimals, usdc.decimals)
    return mid_price(state, usdc.decimals, token.decimals, base=1)


def premium(w: PoolsWorld, name: str, snap: Snapshot) -> float:
    token = next(p.token for p in w.settings.pools if p.name == name)
    return premium_bp(price_of_token(w, name, snap.pools[name]), snap.nav[token])


DEEP = [s.name for s in POOLS if not s.thin]
THIN_POOL = next(s.name for s in POOLS if s.thin)


# ------------------------------------------------------------------------------------------ the manifest
def test_the_manifest_lists_the_pools_and_loads(pools_world):
    w = pools_world
    settings = w.settings
    assert [(p.name, p.token, p.protocol, p.quote_feed) for p in settings.pools] == [
        (s.name, s.token, "uniswap_v3", "USDC/USD") for s in POOLS]
    assert {s.fee for s in POOLS} >= {500, 3000} and sum(s.thin for s in POOLS) == 1
    assert {"AAPLx", "NVDAx", "TSLAx", "SPYx", "GOOGL", "MSTRx"} <= {p.token for p in settings.pools}
    assert set(settings.world["uniswap"]) >= {"factory", "positions", "router", "quoter", "lens"}
    for p in settings.pools:
        assert settings.pools_of(p.token) == [p]
        assert settings.feed(p.quote_feed).token == "USDC"


def test_each_pool_on_chain_is_the_published_factorys_pool_of_the_manifest(pools_world):
    w = pools_world
    factory = load_abi("UniswapV3Factory")
    uni = w.settings.world["uniswap"]
    usdc = w.settings.token("USDC").address
    for cfg, spec in zip(w.settings.pools, POOLS, strict=True):
        pool = w.pools[cfg.name]
        token = w.settings.token(cfg.token).address
        assert {pool.token0, pool.token1} == {token, usdc} and pool.token0 < pool.token1
        assert (pool.fee, pool.tick_spacing) == (spec.fee, FEE_TIERS[spec.fee])
        (got,) = factory.fn("getPool").decode(w.uniswap.call(uni["factory"], factory.fn("getPool").encode(
            token, usdc, spec.fee)))
        assert got.lower() == cfg.address == pool_address(uni["factory"], token, usdc, spec.fee)
        assert POOL.fn("factory").decode(w.uniswap.call(cfg.address, POOL.fn("factory").encode()))[0].lower() \
            == uni["factory"]
    # the published periphery: the position manager and the router know the factory
    for contract, key in (("NonfungiblePositionManager", "positions"), ("SwapRouter", "router"), ("QuoterV2", "quoter")):
        fn = load_abi(contract).fn("factory")
        assert fn.decode(w.uniswap.call(uni[key], fn.encode()))[0].lower() == uni["factory"]


def test_the_liquidity_provider_holds_several_ranges_around_the_price(pools_world):
    w = pools_world
    state = w.at(MAIN).pools
    for name in DEEP:
        s = state[name]
        ticks = sorted(s.ticks)
        assert len(ticks) >= 8, (name, ticks)  # the full range and three narrower ranges, at least
        spacing = w.pools[name].tick_spacing
        assert ticks[0] <= -887272 + spacing and ticks[-1] >= 887272 - spacing  # the full range
        assert sum(1 for t in ticks if abs(t - s.tick) < 1_000) >= 2  # a range within ~10% of the price
        assert s.liquidity > 0


# ------------------------------------------------------------------------------------------ prices
def test_in_a_normal_session_each_pool_trades_at_the_oracles_nav(pools_world):
    w = pools_world
    snap = w.at(MAIN)
    for name in DEEP:
        assert abs(premium(w, name, snap)) < 100, (name, premium(w, name, snap))
    assert abs(premium(w, THIN_POOL, snap)) < 800
    # the whole session: the deep pools within 1% at every block, most of them far closer
    for name in DEEP:
        off = sorted(abs(premium(w, name, w.at(t))) for t in NORMAL)
        assert off[-1] < 100 and off[len(off) // 2] < 40, (name, off)


def test_in_the_crash_the_liquidity_is_out_and_the_tokens_trade_at_a_discount(pools_world):
    w = pools_world
    before, during, after = (w.at(t) for t in CRASH)
    withdrawn = w.event("pool_liquidity_withdrawn")
    assert withdrawn["timestamp"] == WITHDRAWN and set(withdrawn["pools"]) == set(w.pools)
    assert w.event("pool_liquidity_restored")["timestamp"] == withdrawn["until"]
    for name in w.pools:
        assert during.pools[name].liquidity < 0.5 * before.pools[name].liquidity, name
        assert after.pools[name].liquidity > 0.5 * before.pools[name].liquidity, name  # back after the crash
        assert abs(premium(w, name, before)) < (100 if name != THIN_POOL else 800), name
    for name in DEEP:
        assert -500 < premium(w, name, during) < -150, (name, premium(w, name, during))
        assert abs(premium(w, name, after)) < 100, (name, premium(w, name, after))
    assert premium(w, THIN_POOL, during) < -400  # larger on the thin pool
    assert premium(w, THIN_POOL, during) < min(premium(w, name, during) for name in DEEP)


def test_the_thin_pools_weekend_buy_moves_its_price_by_tens_of_percent(pools_world):
    w = pools_world
    event = w.event("pool_thin_buy")
    assert event["timestamp"] == THIN and event["pool"] == THIN_POOL and event["usd"] == 500
    before, after = w.at(THIN - 1800), w.at(THIN)
    assert after.block == event["block"]
    move = price_of_token(w, THIN_POOL, after.pools[THIN_POOL]) / price_of_token(w, THIN_POOL, before.pools[THIN_POOL])
    assert move > Fraction(125, 100), float(move)
    assert after.nav["MSTRx"] == before.nav["MSTRx"]  # Saturday: the oracle stands still
    # the buy is $500 of USDC in one swap through the router, in the event's block
    pool = w.pools[THIN_POOL]
    (log,) = w.rpc.call("eth_getLogs", [{"address": pool.address, "topics": [SWAP], "fromBlock": hex(after.block),
                                          "toBlock": hex(after.block)}])
    amount0, amount1 = decode(["int256", "int256", "uint160", "uint128", "int24"], bytes.fromhex(log["data"][2:]))[:2]
    usdc_in = amount0 if pool.token0 == w.settings.token("USDC").address else amount1
    assert usdc_in == 500 * 10**6
    # the arbitrage brings it back a few hours later
    realigned = [e for e in w.settings.events if e["kind"] == "pool_realigned" and e["pool"] == THIN_POOL
                 and THIN < e["timestamp"] <= THIN + 6 * 3600]
    assert len(realigned) == 1 and realigned[0]["price_after"] < realigned[0]["price_before"] / 1.15


def test_after_the_tslax_split_the_pool_comes_back_to_the_new_nav(pools_world):
    w = pools_world
    name = next(s.name for s in POOLS if s.token == "TSLAx")
    split = next(e for e in w.settings.events if e["kind"] == "multiplier_scheduled" and e["token"] == "TSLAx")
    assert split["activation_time"] == ACTIVATION
    before, quiet, realigned, *later = (w.at(t) for t in SPLIT)
    # nothing touches TSLAx for three days after the split: the pool stands where it stood
    assert quiet.pools[name].sqrt_price_x96 == before.pools[name].sqrt_price_x96
    first, last = (w.at(t) for t in (SPLIT[4], SPLIT[5]))  # Tuesday in session: the feed prints the new price
    for snap in (first, last):
        assert abs(premium(w, name, snap)) < 100, premium(w, name, snap)
    # a token is a share: the pool's price per token was three times the new NAV until the arbitrage came
    ratio = price_of_token(w, name, quiet.pools[name]) / first.nav["TSLAx"]
    assert 2.6 < ratio < 3.6, float(ratio)
    event = next(e for e in w.settings.events if e["kind"] == "pool_realigned" and e["token"] == "TSLAx")
    assert event["timestamp"] == QUIET_END and event["block"] == realigned.block
    assert 2.6 < event["price_before"] / event["price_after"] < 3.6
    # to the pools' guess while the market is closed, then to the feed's first print
    assert abs(price_of_token(w, name, realigned.pools[name]) / first.nav["TSLAx"] - 1) < 0.10


# ------------------------------------------------------------------------------------------ the books
def test_the_worlds_books_of_the_pools_and_their_actors_are_the_chains(pools_world):
    """Every balance of the actors and the pools, every pool's price, tick and liquidity, and every position's
    liquidity, as the simulation computed them with the contracts' own arithmetic."""
    w = pools_world
    sim, dex = w.sim, w.sim.dex
    t_head = sim.last_time
    calls, expected = [], []
    for holder in (LIQUIDITY_PROVIDER, ARBITRAGEUR, *TRADERS, *(p.address for p in dex.pools.values())):
        for sym in dex.units[holder]:
            fn = load_abi(token_contract(sym)).fn("balanceOf")
            calls.append(("eth_call", [{"to": w.settings.token(sym).address, "data": fn.encode(holder)}, "latest"]))
            expected.append(dex.balance(sim, holder, sym, t_head))
    assert [int(r, 16) for r in w.rpc.batch(calls)] == expected
    for pool in dex.pools.values():
        state = _slot0_state(w.uniswap, w.pools[pool.name], int(w.rpc.call("eth_blockNumber"), 16))
        assert (state.sqrt_price_x96, state.tick, state.liquidity) == \
            (pool.state.sqrt_price_x96, pool.state.tick, pool.state.liquidity), pool.name
        for position in pool.positions:
            got = POSITIONS.fn("positions").decode(w.uniswap.call(w.settings.world["uniswap"]["positions"],
                                                                   POSITIONS.fn("positions").encode(position.token_id)))
            assert (got[5], got[6], got[7]) == (position.lower, position.upper, position.liquidity)
    # the token supplies count the actors' and the pools' holdings (test_world's rule, here with the pools)
    for spec in TOKENS:
        fn = load_abi(token_contract(spec.symbol)).fn("totalSupply")
        supply = fn.decode(w.uniswap.call(w.settings.token(spec.symbol).address, fn.encode()))[0]
        m = sim.multiplier(spec.symbol, t_head)
        assert supply == (sim.all_shares(spec.symbol) * m // WAD if spec.accounting == Accounting.REBASING_SHARES
                          else sim.total_units[spec.symbol]), spec.symbol


# ------------------------------------------------------------------------------------------ pure plan
def fake_deployment(*, uniswap: bool = False, vault: bool = False) -> Deployment:
    """A deployment at made-up addresses, for planning the world without a chain; with the DEX pools' contracts
    and with the vault as asked."""
    from eth_utils import keccak

    def a(s: str) -> str:
        return "0x" + keccak(s.encode())[-20:].hex()

    feeds = {price_feed_name(t): a("feed" + t.symbol) for t in TOKENS} | {c.pair: a(c.pair) for c in CRYPTO}
    return Deployment(a("issuer"), a("updater"), a("sanctions"), {t.symbol: a("token" + t.symbol) for t in TOKENS},
                      feeds, {t.symbol: a("por" + t.symbol) for t in TOKENS}, TIMELINE.start - 7200,
                      factory=a("factory"), proxy_admin=a("admin"), implementations={"XStockV3": a("v3"),
                                                                                        "XStockV4": a("v4")},
                      disperse=a("disperse"),
                      aggregators={n: [a(n + "1"), a(n + "2"), a(n + "3")]
                                   for n in (*feeds, *(f"{t.symbol} PoR" for t in TOKENS))},
                      uniswap={k: a(k) for k in ("factory", "positions", "router", "quoter", "lens")} if uniswap
                      else {},
                      vaults={v.symbol: a("vault" + v.symbol) for v in VAULTS}
                      if vault else {})


def played(deployment: Deployment, seed: int = SEED, blocks: int = 600) -> tuple[WorldSim, list]:
    """The world planned on `deployment` for `blocks` blocks: the simulation and every transaction it sent."""
    sim = WorldSim(seed, SCALE, TIMELINE, deployment)
    txs = [(tx.sender, tx.to, tx.data) for stage in sim.initial_mints(TIMELINE.start - 1800) for tx in stage]
    for t in sim.block_times()[:blocks]:
        txs += [(tx.sender, tx.to, tx.data) for tx in sim.next_block(t).txs]
    return sim, txs


def _played(uniswap: bool, seed: int = SEED) -> tuple[WorldSim, list]:
    return played(fake_deployment(uniswap=uniswap), seed)


def test_the_pools_plan_is_seeded_and_leaves_the_rest_of_the_world_as_it_was():
    with_pools, txs = _played(True)
    assert txs == _played(True)[1] and txs != _played(True, seed=SEED + 1)[1]
    without, plain = _played(False)
    # the same prices, the same holders' books: the pools draw from a generator of their own
    assert (with_pools.log_fair == without.log_fair).all()
    assert with_pools.units == without.units
    actors = {LIQUIDITY_PROVIDER, ARBITRAGEUR, *TRADERS}
    dex = {with_pools.dep.uniswap["positions"], with_pools.dep.uniswap["router"]}
    pool_txs = [tx for tx in txs if tx[0] in actors or tx[1] in dex]
    # an actor calls the position manager or the router, or a token: approvals, and a dust `transferShares` that
    # lets a pool receive an xStock mint whole (pools.DexSim._lift)
    to_tokens = {"0x" + load_abi("XStockV4").fn(f).selector.hex() for f in ("approve", "transferShares")}
    assert pool_txs and all(tx[1] in dex or tx[2][:10] in to_tokens for tx in pool_txs if tx[0] in actors)
    # a few pool transactions per world block: well under 15% more transactions than a world without pools
    assert len(txs) - len(plain) < 0.15 * len(plain)
