"""Uniswap v3 pools synced as facts: the real factory, position manager and router (published bytecode) on
anvil, two tokens (balances polled: their mints predate the synced range), one pool the sync sees created and one that existed before the deployment block.

- every Initialize, Mint, Burn and Swap log is stored once, exactly as the node returns it;
- the pool's state folded from the stored facts at any synced block equals the pool's own state read there
  (slot0, liquidity, every initialized tick), and so do the quotes computed from it and QuoterV2's;
- a reorg replaces the pool's rows above the fork with the new branch's;
- a pool whose state the logs do not explain is recorded as an issue and read in full;
- a configured pool that does not trade its token, or is no pool, stops start-up with one clear line.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from fractions import Fraction

import pytest
from sqlalchemy import func, select

from indexer.chain.abi import load_abi
from indexer.chain.decode import POOL_EVENT_SPECS
from indexer.config import Settings
from indexer.errors import ConfigError
from indexer.liquidity.v3 import quote_exact_input
from indexer.runs.liquidity import load_liquidity
from indexer.store import models as m
from indexer.store.engine import open_store
from indexer.store.pools import pool_at, pool_rows
from indexer.sync.startup import prepare
from indexer.sync.tick import sync
from tests.liquidity.uniswap import (
    DEADLINE,
    POSITIONS,
    create_pool,
    deploy_token_pair,
    deploy_uniswap,
    full_range,
    mint_positions,
    quoter_exact_input,
    random_positions,
    read_pool_state,
    router_swap,
    sqrt_price_at,
)

PRICE = 250  # whole units of the 6-decimal token per whole 18-decimal token


def _head(rpc) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def _settings(dex, db_url: str, *, deployment_block: int, pools: list[dict] | None = None) -> Settings:
    stock, usd = dex["stock"], dex["usd"]
    return Settings(
        chain={"chain_id": 31337, "rpc_url": dex["url"], "deployment_block": deployment_block},
        tokens=[{"symbol": "STK", "address": stock, "decimals": 18, "asset_class": "single_stock",
                 "accounting": "plain", "balance_source": "poll"},
                {"symbol": "USDC", "address": usd, "decimals": 6, "asset_class": "stablecoin", "accounting": "plain",
                 "balance_source": "poll"}],
        pools=pools if pools is not None else [
            {"name": "STK/USDC 0.3%", "address": dex["created"].address, "token": "STK"},
            {"name": "STK/USDC 0.05%", "address": dex["older"].address, "token": "STK"}],
        database_url=db_url)


@contextmanager
def _synced_store(dex, db_url: str, rpc, blocks_per_tick: int) -> Iterator[tuple]:
    """(engine, context) of a store for the module's pools from the first synced block, prepared (nothing
    synced yet); the engine is disposed after."""
    settings = _settings(dex, db_url, deployment_block=dex["first"])
    engine = open_store(settings)
    try:
        yield engine, prepare(settings, rpc, max_blocks_per_tick=blocks_per_tick)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def dex(rpc, anvil):
    u = deploy_uniswap(rpc)
    token0, token1 = deploy_token_pair(u, "Pool", (18, 6))  # sorted by address: which one is the stock?
    dec = load_abi("PlainToken").fn("decimals")
    decimals = {t: int(dec.decode(u.call(t, dec.encode()))[0]) for t in (token0, token1)}
    stock = token0 if decimals[token0] == 18 else token1
    usd = token1 if stock == token0 else token0
    stock_is_token0 = stock == token0
    raw = PRICE * 10**6 / 10**18
    tick = math.log(raw if stock_is_token0 else 1 / raw) / math.log(1.0001)
    rng = random.Random(19)
    whole = {stock: 10**5 * 10**18, usd: 10**5 * PRICE * 10**6}
    older = create_pool(u, token0, token1, 500, sqrt_price_at(tick))
    mint_positions(u, older, random_positions(rng, math.floor(tick), 10, 12, 1_000, whole[token0] // 10,
                                              whole[token1] // 10) + [full_range(10, whole[token0] // 50,
                                                                                 whole[token1] // 50)])
    first = _head(rpc) + 1  # the sync starts here: the 0.05% pool existed before it
    created = create_pool(u, token0, token1, 3000, sqrt_price_at(tick + 0.4))
    mint_positions(u, created, random_positions(rng, math.floor(tick), 60, 15, 3_000, whole[token0] // 10,
                                                whole[token1] // 10) + [full_range(60, whole[token0] // 50,
                                                                                   whole[token1] // 50)])
    return {"u": u, "url": anvil.url, "stock": stock, "usd": usd, "older": older, "created": created,
            "first": first, "rng": rng, "stock_is_token0": stock_is_token0, "swaps": 0, "burns": 0}


def _trade(dex, n: int) -> None:
    """`n` blocks of swaps both ways on both pools, and one position burnt half."""
    u, rng = dex["u"], dex["rng"]
    for i in range(n):
        for pool in (dex["created"], dex["older"]):
            zero_for_one = rng.random() < 0.5
            amount = rng.randrange(10**15, 10**21) if zero_for_one == dex["stock_is_token0"] \
                else rng.randrange(10**6, 10**9)
            router_swap(u, pool, zero_for_one, amount, 0)
        dex["swaps"] += 1
        if i == n // 2:  # the created pool's first position (the older pool's 13 come first: ids 1..13)
            position = POSITIONS.fn("positions").decode(u.call(u.positions, POSITIONS.fn("positions").encode(14)))
            assert position[4] == 3000
            u.send([u.tx(u.positions, POSITIONS.fn("decreaseLiquidity").encode(
                (14, position[7] // 2, 0, 0, DEADLINE)), 1_000_000)])
            dex["burns"] += 1


def _check_every_block(engine, ctx, dex, blocks) -> None:
    u = dex["u"]
    for block in blocks:
        with engine.connect() as conn:
            for pool in (dex["created"], dex["older"]):
                folded = pool_at(conn, ctx.chain_id, pool.address, block)
                chain = read_pool_state(u, pool, block)
                assert folded is not None, (pool.address, block)
                state = folded.state(pool.fee, pool.tick_spacing)
                assert state == chain, (pool.address, block)


def test_pools_sync_as_facts_and_fold_to_the_chains_state(dex, db_url, rpc):
    _trade(dex, 6)
    with _synced_store(dex, db_url, rpc, 3) as (engine, ctx):
        assert {p: (meta.fee, meta.tick_spacing) for p, meta in ctx.pools.items()} == {
            dex["created"].address: (3000, 60), dex["older"].address: (500, 10)}
        sync(engine, ctx)
        head = _head(rpc)
        # every pool log of the synced range, once, as the node returns it
        topics = [s.topic0 for s in POOL_EVENT_SPECS]
        logs = rpc.call("eth_getLogs", [{"fromBlock": hex(dex["first"]), "toBlock": hex(head),
                                          "address": [dex["created"].address, dex["older"].address],
                                          "topics": [topics]}])
        with engine.connect() as conn:
            stored = conn.execute(select(m.PoolEvent.block_number, m.PoolEvent.log_index, m.PoolEvent.event,
                                         m.PoolEvent.pool, m.PoolEvent.sqrt_price_x96)
                                  .order_by(m.PoolEvent.block_number, m.PoolEvent.log_index)).all()
            assert [(b, i) for b, i, *_ in stored] == [(int(lg["blockNumber"], 16), int(lg["logIndex"], 16))
                                                       for lg in logs]
            kinds = {}
            for _, _, event, pool, _ in stored:
                kinds[(pool, event)] = kinds.get((pool, event), 0) + 1
            created, older = dex["created"].address, dex["older"].address
            assert kinds[(created, "Initialize")] == 1 and kinds[(created, "Mint")] == 16
            assert kinds[(created, "Burn")] == dex["burns"] and kinds[(created, "Swap")] == dex["swaps"]
            assert (older, "Initialize") not in kinds and kinds[(older, "Swap")] == dex["swaps"]
            assert conn.execute(select(func.count()).select_from(m.SyncIssue)).scalar() == 0
            rows = {r["address"]: r for r in pool_rows(conn, ctx.chain_id)}
            assert (rows[created]["fee"], rows[created]["tick_spacing"], rows[created]["decimals0"] +
                    rows[created]["decimals1"]) == (3000, 60, 24)
            # the older pool has no history before its first read: no state is claimed there
            first_read = conn.execute(select(func.min(m.PoolStateRead.block_number)).where(
                m.PoolStateRead.pool == older)).scalar()
            assert pool_at(conn, ctx.chain_id, older, first_read - 1) is None
            assert pool_at(conn, ctx.chain_id, created, dex["first"] - 1) is None
        # at every synced block from the first read on, the folded state is the pool's own
        _check_every_block(engine, ctx, dex, range(first_read, head + 1))
        # and a quote from the stored facts is QuoterV2's at that block
        u = dex["u"]
        with engine.connect() as conn:
            for block in (first_read, head):
                for pool in (dex["created"], dex["older"]):
                    state = pool_at(conn, ctx.chain_id, pool.address, block).state(pool.fee, pool.tick_spacing)
                    for amount in (10**15, 3 * 10**19):
                        zero_for_one = dex["stock_is_token0"]
                        q = quote_exact_input(state, zero_for_one, amount)
                        assert q.amount_out == quoter_exact_input(u, pool, zero_for_one, amount, block).amount_out


def test_a_configured_pool_is_read_from_the_first_tick_that_ends_after_its_creation(dex, db_url, rpc):
    """One-block ticks from before the 0.3% pool exists: its ticks before its creation read nothing of it (no
    code there yet), its first full read is the block of its Initialize log, and nothing is recorded as wrong."""
    settings = _settings(dex, db_url, deployment_block=dex["first"] - 2)
    engine = open_store(settings)
    try:
        ctx = prepare(settings, rpc, max_blocks_per_tick=1)
        head = _head(rpc)
        sync(engine, ctx, to_block=head)
        created = dex["created"].address
        with engine.connect() as conn:
            reads = conn.execute(select(m.PoolStateRead.block_number, m.PoolStateRead.ticks_read)
                                 .where(m.PoolStateRead.pool == created).order_by(m.PoolStateRead.block_number)).all()
            born = conn.execute(select(m.PoolEvent.block_number).where(
                m.PoolEvent.pool == created, m.PoolEvent.event == "Initialize")).scalar()
            assert conn.execute(select(func.count()).select_from(m.SyncIssue)).scalar() == 0
        assert born >= dex["first"] and reads[0] == (born, "all")
        _check_every_block(engine, ctx, dex, range(born, min(head, born + 6) + 1))
    finally:
        engine.dispose()


def test_a_reorg_replaces_the_pools_rows_above_the_fork(dex, db_url, rpc):
    with _synced_store(dex, db_url, rpc, 4) as (engine, ctx):
        sync(engine, ctx)
        fork = _head(rpc)
        snapshot = rpc.call("evm_snapshot")
        _trade(dex, 3)
        sync(engine, ctx)
        assert rpc.call("evm_revert", [snapshot]) is True
        dex["u"].writer.nonces.clear()  # the reverted transactions' nonces are free again
        dex["rng"].seed(5)
        _trade(dex, 4)  # another branch, one block longer (4 swaps blocks + a burn)
        sync(engine, ctx)
        head = _head(rpc)
        with engine.connect() as conn:
            stored = conn.execute(select(m.PoolEvent.block_number, m.PoolEvent.log_index, m.PoolEvent.tx_hash)
                                  .where(m.PoolEvent.block_number > fork)
                                  .order_by(m.PoolEvent.block_number, m.PoolEvent.log_index)).all()
            logs = rpc.call("eth_getLogs", [{"fromBlock": hex(fork + 1), "toBlock": hex(head),
                                              "address": [dex["created"].address, dex["older"].address]}])
            chain = [(int(lg["blockNumber"], 16), int(lg["logIndex"], 16), lg["transactionHash"]) for lg in logs
                     if lg["topics"][0] in {s.topic0 for s in POOL_EVENT_SPECS}]
            assert [tuple(r) for r in stored] == chain
            assert conn.execute(select(func.count()).select_from(m.SyncIssue)).scalar() == 0
        _check_every_block(engine, ctx, dex, range(fork, head + 1))


def test_a_pool_that_is_not_what_its_logs_say_is_recorded_and_read_in_full(dex, db_url, rpc):
    with _synced_store(dex, db_url, rpc, 50) as (engine, ctx):
        sync(engine, ctx)
        # what the sync knows is made wrong, as if a log had been lost: the in-range liquidity, and one tick
        pool, u = dex["created"].address, dex["u"]
        known = ctx.pool_memory.known[pool]
        lost = min(known.ticks)  # the full-range position's lower tick
        ctx.pool_memory.known[pool] = replace(known, liquidity=known.liquidity + 1,
                                              ticks={t: k for t, k in known.ticks.items() if t != lost})
        centre = read_pool_state(u, dex["created"], _head(rpc)).tick // 60 * 60
        mint_positions(u, dex["created"], [(centre - 600, centre + 600, 10**18, 10**8)])  # in range: no swap
        sync(engine, ctx)
        with engine.connect() as conn:
            issues = conn.execute(select(m.SyncIssue.contract, m.SyncIssue.kind, m.SyncIssue.message)).all()
            assert [(c, k) for c, k, _ in issues] == [(pool, "pool_state_mismatch")]
            assert "liquidity" in issues[0][2]
            last = conn.execute(select(m.PoolStateRead.ticks_read, m.PoolStateRead.note).where(
                m.PoolStateRead.pool == pool).order_by(m.PoolStateRead.block_number.desc()).limit(1)).one()
            assert last[0] == "all" and "liquidity" in last[1]
        _check_every_block(engine, ctx, dex, [_head(rpc)])
        # a Burn of a tick the sync does not know cannot be folded at all: recorded the same way
        ctx.pool_memory.known[pool] = replace(ctx.pool_memory.known[pool], ticks={})
        position = POSITIONS.fn("positions").decode(u.call(u.positions, POSITIONS.fn("positions").encode(15)))
        u.send([u.tx(u.positions, POSITIONS.fn("decreaseLiquidity").encode(
            (15, position[7] // 3, 0, 0, DEADLINE)), 1_000_000)])
        sync(engine, ctx)
        with engine.connect() as conn:
            messages = conn.execute(select(m.SyncIssue.message).where(m.SyncIssue.kind == "pool_state_mismatch")
                                    .order_by(m.SyncIssue.id)).scalars().all()
            assert len(messages) == 2 and "liquidityGross below 0" in messages[1]
        _check_every_block(engine, ctx, dex, [_head(rpc)])


def test_a_pool_that_does_not_trade_its_token_stops_start_up(dex, db_url, rpc):
    u = dex["u"]
    other, _ = deploy_token_pair(u, "Other", (18, 18))
    settings = _settings(dex, db_url, deployment_block=dex["first"], pools=[
        {"name": "wrong", "address": dex["created"].address, "token": "USDC"}])
    prepare(settings, rpc)  # USDC is the pool's other token: fine
    bad = _settings(dex, db_url, deployment_block=dex["first"])
    bad = Settings(**{**bad.model_dump(), "tokens": [*bad.model_dump()["tokens"], {
        "symbol": "OTH", "address": other, "decimals": 18, "asset_class": "single_stock", "accounting": "plain",
        "balance_source": "poll"}],
        "pools": [{"name": "wrong", "address": dex["created"].address, "token": "OTH"}]})
    with pytest.raises(ConfigError, match=r"pools\[wrong\]\.token = 'OTH', but the pool at 0x[0-9a-f]{40} trades"):
        prepare(bad, rpc)
    not_a_pool = Settings(**{**bad.model_dump(), "pools": [{"name": "factory", "address": u.factory, "token": "OTH"}]})
    with pytest.raises(ConfigError, match="does not answer token0"):
        prepare(not_a_pool, rpc)


def test_liquidity_measures_are_sums_over_the_logs_and_the_pools_own_quotes(dex, db_url, rpc):
    """Volume and swap counts are sums over the raw Swap logs (decoded here from the data words), the issuer's
    flows sums over the raw Transfer logs from and to the zero address, the mid price is slot0's, and a
    depth-sized sale on QuoterV2 stays within its move while one more unit of the token leaves it."""
    u, stock = dex["u"], dex["stock"]
    token = load_abi("PlainToken")
    u.send([u.tx(stock, token.fn("mint").encode(u.owner, 7 * 10**18), 200_000),
            u.tx(stock, token.fn("burn").encode(u.owner, 3 * 10**18), 200_000)])
    _trade(dex, 3)
    with _synced_store(dex, db_url, rpc, 7) as (engine, ctx):
        sync(engine, ctx)
        head = _head(rpc)
        ts = int(rpc.call("eth_getBlockByNumber", [hex(head), False])["timestamp"], 16)
        with engine.connect() as conn:
            liq = load_liquidity(conn, ctx.chain_id, head, ts)
        measure = liq.tokens[stock]
        assert liq.unmeasured == {} and len(measure.pools) == 2
        swap = next(s for s in POOL_EVENT_SPECS if s.name == "Swap").topic0
        transfer = "0x" + "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        for p in measure.pools:
            logs = rpc.call("eth_getLogs", [{"fromBlock": hex(dex["first"]), "toBlock": hex(head), "address": p.pool,
                                              "topics": [swap]}])
            word = 0 if dex["stock_is_token0"] else 1
            amounts = [abs(int.from_bytes(bytes.fromhex(lg["data"][2:])[32 * word:32 * word + 32], "big", signed=True))
                       for lg in logs]
            assert (p.volume_7d_raw, p.swaps_7d) == (sum(amounts), len(logs))  # all within the week
            assert p.volume_24h_raw == p.volume_7d_raw  # the chain's blocks are seconds apart
            pool = next(x for x in (dex["created"], dex["older"]) if x.address == p.pool)
            chain = read_pool_state(u, pool, head)
            assert (p.sqrt_price_x96, p.tick, p.liquidity) == (chain.sqrt_price_x96, chain.tick, chain.liquidity)
            raw = Fraction(chain.sqrt_price_x96 ** 2, 2**192)  # token1 raw per token0 raw
            per_token = raw * 10**18 / 10**6 if dex["stock_is_token0"] else 1 / raw * 10**18 / 10**6
            assert p.price_quote == per_token and p.price_usd == float(per_token)
            limit_sell = dex["stock_is_token0"]
            for move, amount in p.depth_raw.items():
                before = chain.sqrt_price_x96 ** 2
                after = quoter_exact_input(u, pool, limit_sell, amount, head).sqrt_price_x96_after ** 2
                beyond = quoter_exact_input(u, pool, limit_sell, amount + 1, head).sqrt_price_x96_after ** 2
                moved, moved_beyond = (Fraction(abs(before - x), before) for x in (after, beyond))
                assert moved <= Fraction(move, 10_000) < moved_beyond, (p.pool, move)
        mints = rpc.call("eth_getLogs", [{"fromBlock": hex(dex["first"]), "toBlock": hex(head), "address": stock,
                                           "topics": [transfer, "0x" + "00" * 32]}])
        burns = rpc.call("eth_getLogs", [{"fromBlock": hex(dex["first"]), "toBlock": hex(head), "address": stock,
                                           "topics": [transfer, None, "0x" + "00" * 32]}])
        # (the module's tests share the chain: each test that gets here minted 7 and burnt 3 tokens)
        assert measure.flows_7d.minted_raw == sum(int(lg["data"], 16) for lg in mints) == 7 * 10**18 * len(mints)
        assert measure.flows_7d.burned_raw == sum(int(lg["data"], 16) for lg in burns) == 3 * 10**18 * len(burns)
        assert (measure.flows_24h.mints, measure.flows_24h.burns) == (len(mints), len(burns)) != (0, 0)
        assert measure.depth_raw(200) == sum(p.depth_raw[200] for p in measure.pools) > 0
        weights = [p.depth_raw[200] for p in measure.pools]
        assert measure.price_usd == pytest.approx(
            sum(w * p.price_usd for w, p in zip(weights, measure.pools, strict=True)) / sum(weights), rel=1e-15)
