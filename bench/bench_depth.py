"""Bench: DEX depth of every configured pool at one block (issue: wrapper liquidity).

Target: depth at 1%, 2% and 5% of 20 Uniswap v3 pools with about 100 initialized ticks each, at one block,
in under 50 ms.

    .venv/bin/python bench/bench_depth.py [--pools 20] [--positions 55] [--runs 30] [--swaps 200] [--seed 7]

It starts anvil in a temporary folder and deploys Uniswap v3 as published on npm (the factory, the
NonfungiblePositionManager, QuoterV2, TickLens), creates the pools (token pairs of two PlainTokens, each pair
in the four fee tiers: tick spacings 1, 10, 60 and 200) and mints positions through the position manager,
reads every pool at one block (slot0, liquidity, the tick bitmap, TickLens's populated ticks; timed apart,
it is chain I/O), and checks every pool's depths against QuoterV2 at that block (the quoter's price after
`depth` within the move, after `depth + 1` beyond it). Then, in the same process, on the same states:

- depth: `indexer.liquidity.v3.depths` for every pool, both directions, 1/2/5% (one walk of the ticks per
  pool and direction): the first run with TickMath's cache cleared (cold), then the median of `--runs`;
- baseline: the naive depth, bisection over exact quotes (`tests/liquidity/uniswap.depth_by_bisection`),
  same answers checked; and the naive on-chain way, bisection over QuoterV2 eth_calls, timed on one pool and
  scaled to all pools and both directions.

Then from the stored facts, as a risk run gets them: `--swaps` blocks each with swaps on a few random pools,
both ways, through the SwapRouter; the project's sync (`indexer.sync.tick.sync`, ticks as long as the build,
so every pool's full read is at the build's last block, before the swaps) writes the tokens and all the
pools from the block before the first token deployment to the head into a new SQLite store in a temporary
folder; then `indexer.runs.liquidity.load_liquidity` (every pool's state folded from its stored full read and events,
depth at 1/2/5%, 24h/7d volume, flows) at the synced head and at a block in the middle of the swaps: the
first call on a new connection (cold), then the median of `--runs`; at both blocks the folded states and the
depths are checked against the pools read from the chain there and `depths` on them.

Results: docs/benchmarks.md ("DEX depth") and docs/liquidity.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the deployment helpers live in tests/

from sqlalchemy import func, select  # noqa: E402

from indexer.chain.rpc import RpcClient  # noqa: E402
from indexer.config import Settings  # noqa: E402
from indexer.devchain.anvil import AnvilNode, free_port  # noqa: E402
from indexer.liquidity.v3 import depths, get_sqrt_ratio_at_tick, price_bound  # noqa: E402
from indexer.runs.liquidity import load_liquidity  # noqa: E402
from indexer.store import models as m  # noqa: E402
from indexer.store.engine import make_engine, open_store  # noqa: E402
from indexer.store.pools import full_read_at_or_before  # noqa: E402
from indexer.store.progress import block_timestamp, synced_head  # noqa: E402
from indexer.sync.startup import prepare  # noqa: E402
from indexer.sync.tick import sync  # noqa: E402
from tests.liquidity.uniswap import (  # noqa: E402
    DEADLINE,
    FEE_TIERS,
    ROUTER,
    create_pool,
    deploy_token_pair,
    deploy_uniswap,
    depth_by_bisection,
    full_range,
    mint_positions,
    quoter_exact_input,
    random_positions,
    read_pool_state,
    sqrt_price_at,
)

MOVES = (100, 200, 500)
# half width (ticks) of the positions' ranges per tick spacing: about 100 distinct initialized ticks each
HALF_WIDTH = {1: 800, 10: 1_500, 60: 9_000, 200: 30_000}
SWAPS_PER_BLOCK = 3  # pools swapped in each block of the swaps
TARGET_MS = 50


def build(u, n_pools: int, n_positions: int, rng: random.Random) -> list:
    pools = []
    fees = list(FEE_TIERS)
    for pair in range(math.ceil(n_pools / len(fees))):
        token0, token1 = deploy_token_pair(u, f"P{pair}", (18, 6))
        stock_is_token0 = int(u.call(token0, "0x313ce567"), 16) == 18  # decimals()
        price = rng.uniform(20, 1_000) * 10**6 / 10**18  # 6-decimal units per 18-decimal unit
        tick = math.log(price if stock_is_token0 else 1 / price) / math.log(1.0001)
        amount0, amount1 = (10**24, 10**14) if stock_is_token0 else (10**14, 10**24)
        for fee in fees[: n_pools - len(pools)]:
            pool = create_pool(u, token0, token1, fee, sqrt_price_at(tick + rng.uniform(-3, 3)))
            spacing = pool.tick_spacing
            positions = random_positions(rng, math.floor(tick), spacing, n_positions, HALF_WIDTH[spacing],
                                         amount0, amount1)
            positions.append(full_range(spacing, amount0 // 100, amount1 // 100))
            mint_positions(u, pool, positions)
            pools.append(pool)
    return pools


def all_depths(states: dict) -> dict:
    return {address: (depths(s, True, MOVES), depths(s, False, MOVES)) for address, s in states.items()}


def quoter_bisection(u, pool, state, zero_for_one: bool, move: int, block: int) -> int:
    """The naive on-chain depth: doubling then bisection over QuoterV2 eth_calls."""
    bound = price_bound(state.sqrt_price_x96, zero_for_one, move)

    def within(amount: int) -> bool:
        after = quoter_exact_input(u, pool, zero_for_one, amount, block).sqrt_price_x96_after
        return after >= bound if zero_for_one else after <= bound

    low, high = 1, 2
    while within(high):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if within(mid) else (low, mid)
    return low


def swap_blocks(u, pools: list, found: dict, n_blocks: int, rng: random.Random) -> int:
    """`n_blocks` blocks, each with exactInputSingle swaps on `SWAPS_PER_BLOCK` random pools, random ways, of
    5% to 60% of the pool's 2% depth that way at the build; the number of swaps."""
    swaps = 0
    for _ in range(n_blocks):
        txs = []
        for pool in rng.sample(pools, min(SWAPS_PER_BLOCK, len(pools))):
            zero_for_one = rng.random() < 0.5
            depth = found[pool.address][0 if zero_for_one else 1][200]
            amount = max(1, int(depth * rng.uniform(0.05, 0.6)))
            token_in, token_out = (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
            txs.append(u.tx(u.router, ROUTER.fn("exactInputSingle").encode(
                (token_in, token_out, pool.fee, u.owner, DEADLINE, amount, 0, 0)), 5_000_000))
        u.send(txs)
        swaps += len(txs)
    return swaps


def store_settings(u, url: str, pools: list, deployment_block: int, database_url: str) -> tuple[Settings, dict]:
    """Settings of a sync of the pools' tokens (the 18-decimal one of each pair is the pool's configured token;
    balances polled, as a PlainToken's) and every pool; and which tokens are the pools' configured ones."""
    tokens: dict[str, dict] = {}
    for pool in pools:
        for t in (pool.token0, pool.token1):
            if t not in tokens:
                decimals = int(u.call(t, "0x313ce567"), 16)  # decimals()
                stock = decimals == 18
                tokens[t] = {"symbol": f"{'STK' if stock else 'USD'}{len(tokens) // 2}", "address": t,
                             "decimals": decimals, "asset_class": "single_stock" if stock else "stablecoin",
                             "accounting": "plain", "balance_source": "poll"}
    token_of = {p.address: p.token0 if tokens[p.token0]["decimals"] == 18 else p.token1 for p in pools}
    settings = Settings(
        chain={"chain_id": int(u.rpc.call("eth_chainId"), 16), "rpc_url": url, "deployment_block": deployment_block},
        tokens=list(tokens.values()),
        pools=[{"name": f"{tokens[token_of[p.address]]['symbol']} {p.fee / 10_000}%", "address": p.address,
                "token": tokens[token_of[p.address]]["symbol"]} for p in pools],
        database_url=database_url)
    return settings, token_of


def time_load(url: str, cid: int, block: int, timestamp: int, runs: int) -> tuple[object, float, list[float]]:
    """`load_liquidity` at `block`: (its answer, the first call on a new engine's connection, the next `runs`)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            t0 = time.perf_counter()
            liq = load_liquidity(conn, cid, block, timestamp)
            cold = time.perf_counter() - t0
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                load_liquidity(conn, cid, block, timestamp)
                times.append(time.perf_counter() - t0)
    finally:
        engine.dispose()
    return liq, cold, times


def check_measures(liq, u, pools: list, token_of: dict, block: int) -> None:
    """Every pool measured at `block`; its folded state is the pool's own read from the chain there, and its
    depths (selling the configured token) are `depths` on that state."""
    measures = {pm.pool: pm for t in liq.tokens.values() for pm in t.pools}
    assert not liq.unmeasured and set(measures) == {p.address for p in pools}, liq.unmeasured
    chain = {p.address: read_pool_state(u, p, block) for p in pools}
    found = all_depths(chain)
    for pool in pools:
        pm, token_is_token0 = measures[pool.address], token_of[pool.address] == pool.token0
        assert pm.state.state(pool.fee, pool.tick_spacing) == chain[pool.address], (pool.address, block)
        assert pm.depth_raw == found[pool.address][0 if token_is_token0 else 1], (pool.address, block)


def from_the_store(u, url: str, rpc, pools: list, found: dict, first_block: int, args, rng: random.Random) -> None:
    t0 = time.perf_counter()
    before = int(rpc.call("eth_blockNumber"), 16)
    n_swaps = swap_blocks(u, pools, found, args.swaps, rng)
    head = int(rpc.call("eth_blockNumber"), 16)
    print(f"swaps: {n_swaps} in {args.swaps} blocks ({before + 1}..{head}), {SWAPS_PER_BLOCK} random pools a "
          f"block, both ways: {time.perf_counter() - t0:.1f} s")

    with tempfile.TemporaryDirectory(prefix="bench-depth-store-") as store:
        db_url = f"sqlite:///{Path(store) / 'bench.db'}"
        settings, token_of = store_settings(u, url, pools, first_block - 1, db_url)
        # the first tick holds the whole build: a pool the sync has not read yet is read in full at the end of
        # its first tick, so it must exist there
        per_tick = before - first_block + 2
        engine = open_store(settings)
        try:
            t0 = time.perf_counter()
            ctx = prepare(settings, rpc, max_blocks_per_tick=per_tick)
            ticks = 0
            for _ in range(10):
                ticks += sync(engine, ctx)
                with engine.connect() as conn:
                    synced = synced_head(conn, ctx.chain_id)
                if synced is not None and synced[0] == int(rpc.call("eth_blockNumber"), 16):
                    break
            else:
                raise SystemExit(f"the sync did not reach the chain's head (synced: {synced})")
            seconds = time.perf_counter() - t0
            cid, (block, timestamp) = ctx.chain_id, synced
            with engine.connect() as conn:
                kinds = dict(conn.execute(select(m.PoolEvent.event, func.count()).group_by(m.PoolEvent.event)).all())
                issues = conn.execute(select(func.count()).select_from(m.SyncIssue)).scalar()
                reads = [full_read_at_or_before(conn, cid, p.address, block).block_number for p in pools]
        finally:
            engine.dispose()
        assert issues == 0, f"{issues} sync issues"
        assert max(reads) <= before, "a pool's last full read is not before the swaps"
        older = before + args.swaps // 2
        print(f"synced blocks {first_block - 1}..{block} into SQLite (indexer.sync, {ticks} ticks of "
              f"{per_tick} blocks): {seconds:.1f} s; {sum(kinds.values())} pool events ("
              + ", ".join(f"{kinds.get(k, 0)} {k}" for k in ("Initialize", "Mint", "Burn", "Swap"))
              + f"); every pool's full read before the swaps (blocks {min(reads)}..{max(reads)})")

        engine = make_engine(db_url)
        with engine.connect() as conn:
            older_ts = block_timestamp(conn, cid, older)
        engine.dispose()
        for label, at, ts in (("head", block, timestamp), ("older block", older, older_ts)):
            liq, cold, times = time_load(db_url, cid, at, ts, args.runs)
            check_measures(liq, u, pools, token_of, at)
            warm = statistics.median(times)
            met = {k: "met" if v * 1e3 < TARGET_MS else "NOT met" for k, v in (("cold", cold), ("warm", warm))}
            print(f"from the store, load_liquidity at the {label} {at} ({len(pools)} pools folded from their full "
                  f"read, depth at {len(MOVES)} moves, volumes, flows; states and depths equal the chain's): "
                  f"cold {cold * 1e3:.1f} ms, warm median {warm * 1e3:.1f} ms (max {max(times) * 1e3:.1f} ms); "
                  f"target < {TARGET_MS} ms: cold {met['cold']}, warm {met['warm']}")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", type=int, default=20)
    ap.add_argument("--positions", type=int, default=55, help="positions minted per pool (plus one full-range)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--swaps", type=int, default=200, help="blocks of swaps before the sync into a store")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    with tempfile.TemporaryDirectory(prefix="bench-depth-") as folder:
        # every block's state stays readable: the sync reads the pools at its ticks' last blocks
        node = AnvilNode.start(free_port(), Path(folder), prune_history=256 + args.swaps)
        rpc = RpcClient(node.url, timeout=120.0)
        try:
            t0 = time.perf_counter()
            u = deploy_uniswap(rpc)
            first_block = int(rpc.call("eth_blockNumber"), 16) + 1  # the first token's deployment
            pools = build(u, args.pools, args.positions, rng)
            block = int(rpc.call("eth_blockNumber"), 16)
            print(f"deployed Uniswap v3 and {len(pools)} pools with their positions: {time.perf_counter() - t0:.1f} s")

            t0 = time.perf_counter()
            states = {p.address: read_pool_state(u, p, block) for p in pools}
            ticks = [len(s.ticks) for s in states.values()]
            print(f"read {len(states)} pools at block {block} (chain I/O): {time.perf_counter() - t0:.1f} s; "
                  f"initialized ticks per pool: min {min(ticks)}, median {statistics.median(ticks):.0f}, "
                  f"max {max(ticks)}")

            found = all_depths(states)
            for pool in pools:  # every depth is where the quoter passes the move
                state = states[pool.address]
                for zero_for_one, by_move in zip((True, False), found[pool.address], strict=True):
                    for move, amount in by_move.items():
                        bound = price_bound(state.sqrt_price_x96, zero_for_one, move)
                        at = quoter_exact_input(u, pool, zero_for_one, amount, block).sqrt_price_x96_after
                        past = quoter_exact_input(u, pool, zero_for_one, amount + 1, block).sqrt_price_x96_after
                        assert (at >= bound > past) if zero_for_one else (at <= bound < past), (pool, move)
            print(f"checked against QuoterV2: {len(pools) * 2 * len(MOVES)} depths, each within the move and "
                  "one wei more beyond it")

            get_sqrt_ratio_at_tick.cache_clear()
            t0 = time.perf_counter()
            all_depths(states)
            cold = time.perf_counter() - t0
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                all_depths(states)
                times.append(time.perf_counter() - t0)
            warm = statistics.median(times)
            n = len(pools) * 2 * len(MOVES)
            print(f"depth, {len(pools)} pools x 2 directions x {len(MOVES)} moves ({n} depths): "
                  f"cold {cold * 1e3:.1f} ms, warm median {warm * 1e3:.1f} ms (max {max(times) * 1e3:.1f} ms); "
                  f"target < 50 ms")

            t0 = time.perf_counter()
            naive = {address: tuple({m: depth_by_bisection(s, d, m) for m in MOVES} for d in (True, False))
                     for address, s in states.items()}
            baseline = time.perf_counter() - t0
            assert naive == found, "the bisection over quotes disagrees with depths"
            print(f"baseline, bisection over exact quotes (same answers): {baseline * 1e3:.0f} ms: "
                  f"{baseline / warm:.0f}x the warm depth, {baseline / cold:.0f}x the cold one")

            pool = pools[len(pools) // 2]
            t0 = time.perf_counter()
            onchain = {m: quoter_bisection(u, pool, states[pool.address], True, m, block) for m in MOVES}
            one = time.perf_counter() - t0
            assert onchain == found[pool.address][0]
            scaled = one * len(pools) * 2
            print(f"naive on chain, bisection over QuoterV2 eth_calls: {one:.2f} s for one pool and direction, "
                  f"{scaled:.0f} s scaled to all ({scaled / warm:.0f}x the warm depth)")

            from_the_store(u, node.url, rpc, pools, found, first_block, args, rng)
        finally:
            rpc.close()
            node.stop(remove_state=True)


if __name__ == "__main__":
    main()
