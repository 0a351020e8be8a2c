"""Bench: DEX depth of every configured pool at one block (issue: wrapper liquidity).

Target: depth at 1%, 2% and 5% of 20 Uniswap v3 pools with about 100 initialized ticks each, at one block,
in under 50 ms.

    .venv/bin/python bench/bench_depth.py [--pools 20] [--positions 55] [--runs 30] [--seed 7]

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

from indexer.chain.rpc import RpcClient  # noqa: E402
from indexer.devchain.anvil import AnvilNode, free_port  # noqa: E402
from indexer.liquidity.v3 import depths, get_sqrt_ratio_at_tick, price_bound  # noqa: E402
from tests.liquidity.uniswap import (  # noqa: E402
    FEE_TIERS,
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", type=int, default=20)
    ap.add_argument("--positions", type=int, default=55, help="positions minted per pool (plus one full-range)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    with tempfile.TemporaryDirectory(prefix="bench-depth-") as folder:
        node = AnvilNode.start(free_port(), Path(folder), prune_history=256)
        rpc = RpcClient(node.url, timeout=120.0)
        try:
            t0 = time.perf_counter()
            u = deploy_uniswap(rpc)
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
        finally:
            rpc.close()
            node.stop(remove_state=True)


if __name__ == "__main__":
    main()
