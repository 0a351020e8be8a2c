"""The pure Uniswap v3 math on its own (no chain): TickMath against its definition, the price bound of a move,
`depths` against bisection over quotes on random pools (zero-liquidity gaps, initialized ticks of net zero, many
bitmap words), the final price monotone in the input, mid price and premium exact. Against the contracts
themselves: tests/liquidity/test_v3.py."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.liquidity.v3 import (
    BP,
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    PoolMathError,
    PoolState,
    depth,
    depths,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    mid_price,
    premium_bp,
    price_bound,
    quote_exact_input,
)

from .uniswap import depth_by_bisection

Q96 = 1 << 96


def test_tick_math_ends_and_reverts():
    assert get_sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(0) == Q96
    assert get_tick_at_sqrt_ratio(MIN_SQRT_RATIO) == MIN_TICK
    assert get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1
    for bad in (MIN_TICK - 1, MAX_TICK + 1):
        with pytest.raises(PoolMathError, match="T"):
            get_sqrt_ratio_at_tick(bad)
    for bad in (MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO):
        with pytest.raises(PoolMathError, match="R"):
            get_tick_at_sqrt_ratio(bad)


@settings(max_examples=400, deadline=None)
@given(tick=st.integers(MIN_TICK, MAX_TICK - 1), offset=st.floats(0, 1, exclude_max=True))
def test_get_tick_at_sqrt_ratio_is_the_greatest_tick_at_or_below(tick: int, offset: float):
    low, high = get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1)
    assert low < high
    sqrt_price = low + int((high - low) * offset)
    assert get_tick_at_sqrt_ratio(sqrt_price) == tick
    assert get_tick_at_sqrt_ratio(high - 1) == tick
    if tick + 1 < MAX_TICK:
        assert get_tick_at_sqrt_ratio(high) == tick + 1


@settings(max_examples=200, deadline=None)
@given(sqrt_price=st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1), move=st.integers(1, BP - 1))
def test_price_bound_is_the_farthest_price_within_the_move(sqrt_price: int, move: int):
    square = sqrt_price * sqrt_price
    down = price_bound(sqrt_price, True, move)
    assert down * down * BP >= square * (BP - move) > (down - 1) ** 2 * BP
    up = price_bound(sqrt_price, False, move)
    assert up * up * (BP - move) <= square * BP < (up + 1) ** 2 * (BP - move)


@st.composite
def pools(draw) -> PoolState:
    """A pool as positions leave it: ranges on the spacing around the price, some only on one side, with gaps
    of no liquidity between them, sometimes two ranges meeting at a tick with equal liquidity (net zero)."""
    fee, spacing = draw(st.sampled_from([(100, 1), (500, 10), (3000, 60), (10000, 200)]))
    centre = draw(st.integers(-300_000, 300_000)) // spacing * spacing
    ticks: dict[int, int] = {}
    for _ in range(draw(st.integers(1, 40))):
        lower = centre + spacing * draw(st.integers(-120, 100))
        upper = lower + spacing * draw(st.integers(1, 40))
        liquidity = draw(st.integers(1, 10**24))
        ticks[lower] = ticks.get(lower, 0) + liquidity
        ticks[upper] = ticks.get(upper, 0) - liquidity
        if draw(st.booleans()):  # a neighbour from the upper end with the same liquidity: net zero there
            further = upper + spacing * draw(st.integers(1, 20))
            ticks[upper] += liquidity
            ticks[further] = ticks.get(further, 0) - liquidity
    near = sorted(ticks)
    if draw(st.integers(0, 3)):  # mostly a full-range position behind them (without one, large inputs run dry)
        wide_lower, wide_upper = -(-MIN_TICK // spacing) * spacing, MAX_TICK // spacing * spacing
        wide = draw(st.integers(10**20, 10**24))
        ticks[wide_lower] = ticks.get(wide_lower, 0) + wide
        ticks[wide_upper] = ticks.get(wide_upper, 0) - wide
    low, high = get_sqrt_ratio_at_tick(centre - 10 * spacing), get_sqrt_ratio_at_tick(centre + 10 * spacing)
    sqrt_price = draw(st.integers(low, high))
    if draw(st.booleans()):
        sqrt_price = get_sqrt_ratio_at_tick(draw(st.sampled_from(near)))  # exactly on a tick
    tick = get_tick_at_sqrt_ratio(sqrt_price)
    liquidity = sum(net for t, net in ticks.items() if t <= tick)
    return PoolState(sqrt_price, tick, liquidity, fee, spacing, ticks)


@settings(max_examples=50, deadline=None)  # the bisection is slow: some hundred quotes a depth
@given(state=pools(), zero_for_one=st.booleans())
def test_depths_are_the_bisection_over_quotes(state: PoolState, zero_for_one: bool):
    found = depths(state, zero_for_one, (100, 200, 500, 2_000))
    for move, amount in found.items():
        assert amount == depth_by_bisection(state, zero_for_one, move), move
        assert amount == depth(state, zero_for_one, move)
    assert found[100] <= found[200] <= found[500] <= found[2_000]


@settings(max_examples=150, deadline=None)
@given(state=pools(), zero_for_one=st.booleans(), amounts=st.lists(st.integers(1, 10**30), min_size=2, max_size=6))
def test_the_final_price_is_monotone_in_the_input(state: PoolState, zero_for_one: bool, amounts: list[int]):
    prices = [quote_exact_input(state, zero_for_one, a).sqrt_price_x96_after for a in sorted(amounts)]
    assert prices == sorted(prices, reverse=zero_for_one)
    outs = [quote_exact_input(state, zero_for_one, a).amount_out for a in sorted(amounts)]
    assert outs == sorted(outs)


def test_a_quote_takes_all_it_is_given_unless_the_limit_stops_it():
    state = PoolState(Q96, 0, 10**20, 3000, 60, {-600: 10**20, 600: -(10**20)})
    small = quote_exact_input(state, True, 10**15)
    assert small.amount_in == 10**15 and small.initialized_ticks_crossed == 0
    assert small.fee_amount == 3 * 10**12  # 0.3% of the input, as the pool charges it
    limited = quote_exact_input(state, True, 10**30, get_sqrt_ratio_at_tick(-300))
    assert limited.sqrt_price_x96_after == get_sqrt_ratio_at_tick(-300) and limited.amount_in < 10**30
    drained = quote_exact_input(state, True, 10**30)  # no liquidity below -600: on to the limit
    assert drained.sqrt_price_x96_after == MIN_SQRT_RATIO + 1 and drained.liquidity_after == 0
    assert drained.initialized_ticks_crossed == 1
    for bad in (dict(amount_in=0), dict(amount_in=1, sqrt_price_limit_x96=Q96 + 1)):
        with pytest.raises(PoolMathError):
            quote_exact_input(state, True, **bad)


def test_a_pool_state_keeps_its_ticks_on_the_spacing():
    with pytest.raises(PoolMathError, match="spacing"):
        PoolState(Q96, 0, 1, 3000, 60, {-59: 1, 60: -1})


def test_mid_price_and_premium_are_exact():
    state = PoolState(Q96 * 3 // 2, 4054, 10**18, 500, 10, {})  # raw price 9/4 exactly
    assert mid_price(state, 18, 18) == Fraction(9, 4)
    assert mid_price(state, 18, 6) == Fraction(9, 4) * 10**12
    assert mid_price(state, 18, 6, base=1) == Fraction(4, 9) / 10**12
    assert premium_bp(Fraction(101), 100) == 100.0
    assert premium_bp(Fraction(99, 1), Fraction(100)) == -100.0
    assert premium_bp(Fraction(1, 3), Fraction(1, 3)) == 0.0
    assert premium_bp(Fraction(250_000_001, 1_000_000), 250) == pytest.approx(0.00004, abs=1e-12)
    with pytest.raises(PoolMathError):
        premium_bp(1, 0)
