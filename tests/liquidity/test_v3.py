"""The pure Uniswap v3 math (`indexer.liquidity.v3`) against the real contracts on anvil: the factory, the
position manager, the router and QuoterV2 as published on npm, four pools (fee tiers 0.01%, 0.05%, 0.3%, 1%:
tick spacings 1, 10, 60, 200) with positions over different tick ranges, the 0.05% one with about a hundred
initialized ticks, one with no full-range position so that large inputs run it dry.

- quotes: for random inputs, both directions, across tick crossings and bitmap words, the pure quote's output
  and final sqrt price are QuoterV2's, to the wei;
- depth: at 1%, 2% and 5% the quoter's price after `depth` is within the move and after `depth + 1` beyond it;
- execution: a swap through the SwapRouter takes and pays exactly the predicted amounts and leaves the pool at
  the predicted sqrt price, tick and liquidity (including a swap that ends exactly on an initialized tick).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chain.abi import load_abi
from indexer.errors import DevchainError, RpcError
from indexer.liquidity.v3 import (
    MAX_SQRT_RATIO,
    MIN_SQRT_RATIO,
    PoolMathError,
    PoolState,
    depths,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    mid_price,
    price_bound,
    quote_exact_input,
    swapped,
)

from .uniswap import (
    Pool,
    Uniswap,
    balance_of,
    create_pool,
    deploy_token_pair,
    deploy_uniswap,
    depth_by_bisection,
    full_range,
    mint_positions,
    quoter_exact_input,
    random_positions,
    read_pool_state,
    router_swap,
    sqrt_price_at,
)

MOVES = (100, 200, 500)  # 1%, 2%, 5%
STOCK_PRICE = 250  # whole units of the 6-decimal token per whole 18-decimal token
# (fee, positions, half width in ticks, full-range position)
POOLS = ((100, 30, 800, False), (500, 60, 1_500, True), (3000, 25, 3_000, True), (10000, 12, 6_000, True))


@dataclass
class Dex:
    u: Uniswap
    pools: list[Pool]
    decimals: dict[str, int]
    block: int  # the block every quote and depth below is taken at
    states: dict[str, PoolState]  # at `block`
    live: dict[str, PoolState] = field(default_factory=dict)  # as the swaps leave them


@pytest.fixture(scope="module")
def dex(rpc) -> Dex:
    u = deploy_uniswap(rpc)
    token0, token1 = deploy_token_pair(u, "Stock", (18, 6))
    decimals = {t: int(load_abi("PlainToken").fn("decimals").decode(u.call(t, load_abi("PlainToken").fn(
        "decimals").encode()))[0]) for t in (token0, token1)}
    stock_is_token0 = decimals[token0] == 18
    raw_price = STOCK_PRICE * 10**6 / 10**18  # 6-decimal units per 18-decimal unit
    tick = math.log(raw_price if stock_is_token0 else 1 / raw_price) / math.log(1.0001)
    whole = {t: 10**6 * 10**d * (STOCK_PRICE if d == 6 else 1) for t, d in decimals.items()}  # about $250M a side
    rng = random.Random(7)
    pools = []
    for fee, n, half_width, with_full_range in POOLS:
        pool = create_pool(u, token0, token1, fee, sqrt_price_at(tick + rng.uniform(-3, 3)))
        centre = math.floor(tick)
        positions = random_positions(rng, centre, pool.tick_spacing, n, half_width, whole[token0] // 20,
                                     whole[token1] // 20)
        if with_full_range:
            positions.append(full_range(pool.tick_spacing, whole[token0] // 100, whole[token1] // 100))
        mint_positions(u, pool, positions)
        pools.append(pool)
    block = int(rpc.call("eth_blockNumber"), 16)
    states = {p.address: read_pool_state(u, p, block) for p in pools}
    return Dex(u, pools, decimals, block, states, dict(states))


def test_pools_read_back_as_minted(dex: Dex):
    for pool in dex.pools:
        state = dex.states[pool.address]
        assert state.fee == pool.fee and state.tick_spacing == pool.tick_spacing
        assert state.liquidity == sum(net for t, net in state.ticks.items() if t <= state.tick) > 0
        assert sum(state.ticks.values()) == 0
        assert get_tick_at_sqrt_ratio(state.sqrt_price_x96) == state.tick  # slot0 as initialize() set it
    sizes = [len(dex.states[p.address].ticks) for p in dex.pools]
    assert sizes[1] >= 90, sizes  # the 0.05% pool: about a hundred initialized ticks


amounts = st.integers(1, 30).flatmap(lambda k: st.integers(1, 10**k))


@settings(max_examples=80, deadline=None)
@given(index=st.integers(0, len(POOLS) - 1), zero_for_one=st.booleans(), amount=amounts)
def test_quotes_equal_quoter_v2(dex: Dex, index: int, zero_for_one: bool, amount: int):
    pool = dex.pools[index]
    ours = quote_exact_input(dex.states[pool.address], zero_for_one, amount)
    theirs = quoter_exact_input(dex.u, pool, zero_for_one, amount, dex.block)
    assert (ours.amount_out, ours.sqrt_price_x96_after) == (theirs.amount_out, theirs.sqrt_price_x96_after)


def test_quotes_cross_ticks_and_words_as_the_quoter_does(dex: Dex):
    """Inputs sized to end in each of the ticks' ranges: every initialized tick within 5% crossed at least once,
    in both directions, on every pool; each quote the quoter's."""
    crossed = 0
    for pool in dex.pools:
        state = dex.states[pool.address]
        for zero_for_one in (True, False):
            steps = sorted(set(depths(state, zero_for_one, range(25, 525, 25)).values()))
            for amount in steps:
                if amount == 0:
                    continue
                ours = quote_exact_input(state, zero_for_one, amount)
                theirs = quoter_exact_input(dex.u, pool, zero_for_one, amount, dex.block)
                assert (ours.amount_out, ours.sqrt_price_x96_after) == (theirs.amount_out, theirs.sqrt_price_x96_after)
                crossed = max(crossed, ours.initialized_ticks_crossed)
    assert crossed >= 5


def test_an_input_larger_than_the_pool_ends_at_the_price_limit_as_the_quoter_does(dex: Dex):
    pool = dex.pools[0]  # no full-range position
    state = dex.states[pool.address]
    for zero_for_one, limit in ((True, MIN_SQRT_RATIO + 1), (False, MAX_SQRT_RATIO - 1)):
        offered = 10**36
        ours = quote_exact_input(state, zero_for_one, offered)
        theirs = quoter_exact_input(dex.u, pool, zero_for_one, offered, dex.block)
        assert ours.sqrt_price_x96_after == theirs.sqrt_price_x96_after == limit
        assert ours.amount_out == theirs.amount_out > 0
        assert 0 < ours.amount_in < offered and ours.liquidity_after == 0


@pytest.mark.parametrize("move", MOVES)
def test_depth_is_where_the_quoter_passes_the_move(dex: Dex, move: int):
    for pool in dex.pools:
        state = dex.states[pool.address]
        for zero_for_one in (True, False):
            amount = depths(state, zero_for_one, MOVES)[move]
            bound = price_bound(state.sqrt_price_x96, zero_for_one, move)
            at = quoter_exact_input(dex.u, pool, zero_for_one, amount, dex.block)
            past = quoter_exact_input(dex.u, pool, zero_for_one, amount + 1, dex.block)
            if zero_for_one:
                assert at.sqrt_price_x96_after >= bound > past.sqrt_price_x96_after, (pool.fee, move)
            else:
                assert at.sqrt_price_x96_after <= bound < past.sqrt_price_x96_after, (pool.fee, move)
            # the move, as a price ratio: within it at the depth, beyond it one wei later
            ratio = (at.sqrt_price_x96_after / state.sqrt_price_x96) ** 2
            assert abs(math.log(ratio)) <= -math.log(1 - move / 10_000) + 1e-9
            assert at.amount_out == quote_exact_input(state, zero_for_one, amount).amount_out


def test_depth_equals_bisection_over_quotes(dex: Dex):
    for pool in dex.pools:
        state = dex.states[pool.address]
        for zero_for_one in (True, False):
            found = depths(state, zero_for_one, MOVES)
            assert found == {m: depth_by_bisection(state, zero_for_one, m) for m in MOVES}
            assert found[100] < found[200] < found[500]


def test_mid_price_is_slot0s_in_whole_units(dex: Dex):
    for pool in dex.pools:
        state = dex.states[pool.address]
        d0, d1 = dex.decimals[pool.token0], dex.decimals[pool.token1]
        price = mid_price(state, d0, d1)
        assert price == mid_price(state, d0, d1, base=1) ** -1
        stock_price = price if d0 == 18 else 1 / price  # the 6-decimal token per 18-decimal token
        assert abs(float(stock_price) / STOCK_PRICE - 1) < 0.001  # initialised within three ticks of $250


def _swap_and_check(dex: Dex, pool: Pool, zero_for_one: bool, amount: int) -> None:
    """A router swap of `amount` executes exactly the pure prediction from the pool's current state; where the
    pure swap reverts (the price already at the limit: 'SPL') or would pay nothing (only empty ranges ahead), the
    router's swap reverts too."""
    state = dex.live[pool.address]
    try:
        predicted = quote_exact_input(state, zero_for_one, amount)
    except PoolMathError as exc:
        assert exc.reason == "SPL"
        predicted = None
    if predicted is None or predicted.amount_in == 0:
        with pytest.raises(DevchainError, match="reverted"):
            router_swap(dex.u, pool, zero_for_one, amount, 0)
        assert read_pool_state(dex.u, pool, int(dex.u.rpc.call("eth_blockNumber"), 16)) == state
        return
    token_in, token_out = (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
    before = balance_of(dex.u, token_in, dex.u.owner), balance_of(dex.u, token_out, dex.u.owner)
    event = router_swap(dex.u, pool, zero_for_one, amount, predicted.amount_out)
    paid, received = (event["amount0"], -event["amount1"]) if zero_for_one else (event["amount1"], -event["amount0"])
    assert (paid, received) == (predicted.amount_in, predicted.amount_out)
    after = balance_of(dex.u, token_in, dex.u.owner), balance_of(dex.u, token_out, dex.u.owner)
    assert (before[0] - after[0], after[1] - before[1]) == (predicted.amount_in, predicted.amount_out)
    assert (event["sqrt_price_x96"], event["tick"], event["liquidity"]) == (
        predicted.sqrt_price_x96_after, predicted.tick_after, predicted.liquidity_after)
    expected = swapped(state, predicted)
    assert read_pool_state(dex.u, pool, event["block"]) == expected
    dex.live[pool.address] = expected


@settings(max_examples=12, deadline=None)
@given(index=st.sampled_from([0, 2, 3]), zero_for_one=st.booleans(),  # the 0.05% pool is kept for the next test
       amount=st.integers(10, 24).flatmap(lambda k: st.integers(10**(k - 2), 10**k)))
def test_router_swaps_execute_the_predicted_amounts(dex: Dex, index: int, zero_for_one: bool, amount: int):
    pool = dex.pools[index]
    if zero_for_one == (dex.decimals[pool.token0] == 6):
        amount //= 10**6  # the 6-decimal token: keep the trade's value in the same range
    _swap_and_check(dex, pool, zero_for_one, max(amount, 1))


def test_a_depth_sized_swap_moves_the_price_by_the_move_and_no_more(dex: Dex):
    pool = dex.pools[2]
    for zero_for_one in (True, False):
        state = dex.live[pool.address]
        amount = depths(state, zero_for_one, MOVES)[500]
        _swap_and_check(dex, pool, zero_for_one, amount)
        after = dex.live[pool.address].sqrt_price_x96
        bound = price_bound(state.sqrt_price_x96, zero_for_one, 500)
        assert after >= bound if zero_for_one else after <= bound


def test_a_swap_ending_exactly_on_an_initialized_tick_then_one_beyond(dex: Dex):
    """The input that takes the price exactly onto the next initialized tick (what the pool takes with that
    tick's price as its limit): the pool ends on the tick, having crossed it (tick - 1 going down), and the next
    quote from there starts on a tick boundary, as the quoter's does."""
    pool = dex.pools[1]
    for zero_for_one in (True, False):
        state = dex.live[pool.address]
        price = state.sqrt_price_x96  # the next initialized tick strictly beyond the price, in the swap's direction
        side = [t for t in state.ticks if (get_sqrt_ratio_at_tick(t) < price if zero_for_one
                                           else get_sqrt_ratio_at_tick(t) > price)]
        tick = max(side) if zero_for_one else min(side)
        to_tick = quote_exact_input(state, zero_for_one, 10**40, get_sqrt_ratio_at_tick(tick)).amount_in
        _swap_and_check(dex, pool, zero_for_one, to_tick)
        landed = dex.live[pool.address]
        assert landed.sqrt_price_x96 == get_sqrt_ratio_at_tick(tick)
        assert landed.tick == (tick - 1 if zero_for_one else tick)
        block = int(dex.u.rpc.call("eth_blockNumber"), 16)
        for direction in (True, False):
            for amount in (1, 10**6, 10**15):
                ours = quote_exact_input(landed, direction, amount)
                if ours.amount_in == 0:  # only empty ranges ahead: the quoter's callback refuses a swap paying nothing
                    with pytest.raises(RpcError):
                        quoter_exact_input(dex.u, pool, direction, amount, block)
                    continue
                theirs = quoter_exact_input(dex.u, pool, direction, amount, block)
                assert (ours.amount_out, ours.sqrt_price_x96_after) == (theirs.amount_out, theirs.sqrt_price_x96_after)
            for move, amount in depths(landed, direction, MOVES).items():
                bound = price_bound(landed.sqrt_price_x96, direction, move)
                assert amount > 0
                at = quoter_exact_input(dex.u, pool, direction, amount, block).sqrt_price_x96_after
                past = quoter_exact_input(dex.u, pool, direction, amount + 1, block).sqrt_price_x96_after
                assert (at >= bound > past) if direction else (at <= bound < past)


def test_a_pool_run_dry_stops_at_the_limit_and_refuses_more_the_same_way(dex: Dex):
    """Selling more than the 0.01% pool holds (no full-range position) takes the price to the router's limit;
    another sale that way reverts (on chain and in the pure swap alike); a sale back the other way crosses the
    empty ranges at no cost and trades from the first liquidity it meets."""
    pool = dex.pools[0]
    for zero_for_one in (True, False):
        _swap_and_check(dex, pool, zero_for_one, 10**36)
        assert dex.live[pool.address].sqrt_price_x96 == (MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1)
        assert dex.live[pool.address].liquidity == 0
        _swap_and_check(dex, pool, zero_for_one, 10**6)  # reverts: the price is at the limit already
        _swap_and_check(dex, pool, not zero_for_one, 10**9)
        assert dex.live[pool.address].liquidity > 0
