"""Uniswap v3 pool math in exact integers, as the deployed contracts compute it. Pure: no I/O.

Ported from the Solidity of the npm package `@uniswap/v3-core` 1.0.1 (`contracts/libraries/`):
`TickMath.sol` (getSqrtRatioAtTick, getTickAtSqrtRatio), `SqrtPriceMath.sol` (next prices from amounts,
amount deltas), `SwapMath.sol` (computeSwapStep, the fee taken from the input), `FullMath.sol` (mulDiv,
mulDivRoundingUp), `UnsafeMath.sol` (divRoundingUp), `LiquidityMath.sol` (addDelta) and `TickBitmap.sol`
(nextInitializedTickWithinOneWord: a swap step never spans more than one bitmap word of 256 spaced ticks,
which matters because every step rounds on its own). The swap loop is `UniswapV3Pool.swap` of the same
release, whose compiled artifact that package ships (the pool the factory deploys; its creation code hashes to
the periphery's `PoolAddress.POOL_INIT_CODE_HASH`): step to the next initialized tick or word boundary, the
price limit or the end of the input, crossing initialized ticks with their `liquidityNet` (negated when the
price falls). The default price limits are those of `@uniswap/v3-periphery` 1.4.4's QuoterV2 and SwapRouter
(one above the minimum, one below the maximum sqrt ratio). The arithmetic keeps Solidity 0.7.6's behaviour:
a product that wraps modulo 2**256 where the contract lets it wrap, a revert (`PoolMathError`, with the
contract's reason) where it reverts.

A pool is a `PoolState`: slot0's sqrtPriceX96 and tick, the in-range liquidity, the fee (pips), the tick
spacing and the `liquidityNet` of every initialized tick. From it:

- `quote_exact_input`: what an exact-input swap returns, to the wei, with the price, tick and liquidity after;
- `mid_price`: the pool's price of one whole token in the other, as an exact fraction;
- `depth` / `depths`: the largest input whose execution moves the price by at most a move in basis points,
  solved exactly by walking the ticks to the target sqrt price (no search over quotes);
- `premium_bp`: a price against the oracle's NAV, in basis points. It is the one float boundary here: every
  other value is an integer or an exact `Fraction`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from math import isqrt

MAX_U256 = (1 << 256) - 1
MAX_U160 = (1 << 160) - 1
MAX_U128 = (1 << 128) - 1
MAX_I256 = (1 << 255) - 1
RESOLUTION = 96
Q96 = 1 << RESOLUTION

MIN_TICK = -887272
MAX_TICK = -MIN_TICK
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342

FEE_DENOMINATOR = 1_000_000  # fees are in pips: hundredths of a basis point
BP = 10_000


class PoolMathError(ValueError):
    """Where the contract reverts. `reason` is its revert string ('T', 'R', 'LS', 'SPL', 'AS', ...) or the
    name of the check that fails without one."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _require(condition: bool, reason: str, detail: str = "") -> None:
    if not condition:
        raise PoolMathError(reason, detail)


# ------------------------------------------------------------------------------- FullMath, UnsafeMath
def mul_div(a: int, b: int, denominator: int) -> int:
    """FullMath.mulDiv: floor(a * b / denominator) at full precision; reverts on a zero denominator or a
    result above uint256."""
    _require(denominator > 0, "mulDiv", "zero denominator")
    result = a * b // denominator
    _require(result <= MAX_U256, "mulDiv", "result overflows uint256")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """FullMath.mulDivRoundingUp: ceil(a * b / denominator)."""
    result = mul_div(a, b, denominator)
    if a * b % denominator:
        _require(result < MAX_U256, "mulDivRoundingUp", "result overflows uint256")
        result += 1
    return result


def div_rounding_up(x: int, y: int) -> int:
    """UnsafeMath.divRoundingUp: ceil(x / y); the EVM's division by zero gives 0."""
    if y == 0:
        return 0
    return x // y + (1 if x % y else 0)


# ------------------------------------------------------------------------------------------ TickMath
_RATIO_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


@lru_cache(maxsize=1 << 16)
def get_sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001^tick) * 2^96, rounded up from Q128.128 to Q64.96."""
    abs_tick = -tick if tick < 0 else tick
    _require(abs_tick <= MAX_TICK, "T")
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 0x1 else 1 << 128
    for bit, factor in _RATIO_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = MAX_U256 // ratio
    return ((ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)) & MAX_U160


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio: the greatest tick whose sqrt ratio is at most `sqrt_price_x96`, by the
    contract's own route (a base-2 logarithm to 14 fractional bits, two candidate ticks, one check)."""
    _require(MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO, "R")
    ratio = sqrt_price_x96 << 32
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    for shift in range(63, 49, -1):
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << shift
        r >>= f
    log_sqrt10001 = log_2 * 255738958999603826347141  # Q128.128
    tick_low = (log_sqrt10001 - 3402992956809132418596140100660247210) >> 128
    tick_high = (log_sqrt10001 + 291339464771989622907027621153398088495) >> 128
    if tick_low == tick_high:
        return tick_low
    return tick_high if get_sqrt_ratio_at_tick(tick_high) <= sqrt_price_x96 else tick_low


# ------------------------------------------------------------------------------------- SqrtPriceMath
def get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp: liquidity * sqrtP / (liquidity +- amount * sqrtP),
    or liquidity / (liquidity / sqrtP +- amount) when the product overflows, rounded up."""
    if amount == 0:
        return sqrt_px96
    numerator1 = liquidity << RESOLUTION
    product = (amount * sqrt_px96) & MAX_U256  # unchecked in Solidity 0.7: it may wrap, and is checked below
    if add:
        if product // amount == sqrt_px96:
            denominator = (numerator1 + product) & MAX_U256
            if denominator >= numerator1:
                return mul_div_rounding_up(numerator1, sqrt_px96, denominator) & MAX_U160
        divisor = numerator1 // sqrt_px96 + amount
        _require(divisor <= MAX_U256, "LowGasSafeMath.add")
        return div_rounding_up(numerator1, divisor) & MAX_U160
    _require(product // amount == sqrt_px96 and numerator1 > product, "getNextSqrtPriceFromAmount0RoundingUp")
    result = mul_div_rounding_up(numerator1, sqrt_px96, numerator1 - product)
    _require(result <= MAX_U160, "SafeCast.toUint160")
    return result


def get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown: sqrtP +- amount / liquidity, rounded down."""
    if add:
        quotient = (amount << RESOLUTION) // liquidity if amount <= MAX_U160 else mul_div(amount, Q96, liquidity)
        result = sqrt_px96 + quotient
        _require(result <= MAX_U256, "LowGasSafeMath.add")
        _require(result <= MAX_U160, "SafeCast.toUint160")
        return result
    quotient = (div_rounding_up(amount << RESOLUTION, liquidity) if amount <= MAX_U160
                else mul_div_rounding_up(amount, Q96, liquidity))
    _require(sqrt_px96 > quotient, "getNextSqrtPriceFromAmount1RoundingDown")
    return sqrt_px96 - quotient


def get_next_sqrt_price_from_input(sqrt_px96: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromInput: rounded so as never to pass the target price."""
    _require(sqrt_px96 > 0, "getNextSqrtPriceFromInput", "zero price")
    _require(liquidity > 0, "getNextSqrtPriceFromInput", "zero liquidity")
    if zero_for_one:
        return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_in, True)
    return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(sqrt_px96: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromOutput."""
    _require(sqrt_px96 > 0, "getNextSqrtPriceFromOutput", "zero price")
    _require(liquidity > 0, "getNextSqrtPriceFromOutput", "zero liquidity")
    if zero_for_one:
        return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_out, False)
    return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_out, False)


def get_amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta: liquidity * (sqrt(upper) - sqrt(lower)) / (sqrt(upper) * sqrt(lower))."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    numerator1 = liquidity << RESOLUTION
    numerator2 = sqrt_b - sqrt_a
    _require(sqrt_a > 0, "getAmount0Delta", "zero price")
    if round_up:
        return div_rounding_up(mul_div_rounding_up(numerator1, numerator2, sqrt_b), sqrt_a)
    return mul_div(numerator1, numerator2, sqrt_b) // sqrt_a


def get_amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta: liquidity * (sqrt(upper) - sqrt(lower))."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if round_up:
        return mul_div_rounding_up(liquidity, sqrt_b - sqrt_a, Q96)
    return mul_div(liquidity, sqrt_b - sqrt_a, Q96)


# ------------------------------------------------------------------------------------------ SwapMath
def compute_swap_step(
    sqrt_ratio_current_x96: int, sqrt_ratio_target_x96: int, liquidity: int, amount_remaining: int, fee_pips: int
) -> tuple[int, int, int, int]:
    """SwapMath.computeSwapStep: (sqrtRatioNextX96, amountIn, amountOut, feeAmount) of one step toward the
    target. `amount_remaining` > 0 is an exact input, < 0 an exact output."""
    zero_for_one = sqrt_ratio_current_x96 >= sqrt_ratio_target_x96
    exact_in = amount_remaining >= 0
    amount_in = amount_out = 0
    if exact_in:
        remaining_less_fee = mul_div(amount_remaining, FEE_DENOMINATOR - fee_pips, FEE_DENOMINATOR)
        amount_in = (get_amount0_delta(sqrt_ratio_target_x96, sqrt_ratio_current_x96, liquidity, True) if zero_for_one
                     else get_amount1_delta(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity, True))
        if remaining_less_fee >= amount_in:
            sqrt_ratio_next_x96 = sqrt_ratio_target_x96
        else:
            sqrt_ratio_next_x96 = get_next_sqrt_price_from_input(
                sqrt_ratio_current_x96, liquidity, remaining_less_fee, zero_for_one)
    else:
        amount_out = (get_amount1_delta(sqrt_ratio_target_x96, sqrt_ratio_current_x96, liquidity, False) if zero_for_one
                      else get_amount0_delta(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity, False))
        if -amount_remaining >= amount_out:
            sqrt_ratio_next_x96 = sqrt_ratio_target_x96
        else:
            sqrt_ratio_next_x96 = get_next_sqrt_price_from_output(
                sqrt_ratio_current_x96, liquidity, -amount_remaining, zero_for_one)

    reached = sqrt_ratio_target_x96 == sqrt_ratio_next_x96
    if zero_for_one:
        if not (reached and exact_in):
            amount_in = get_amount0_delta(sqrt_ratio_next_x96, sqrt_ratio_current_x96, liquidity, True)
        if not (reached and not exact_in):
            amount_out = get_amount1_delta(sqrt_ratio_next_x96, sqrt_ratio_current_x96, liquidity, False)
    else:
        if not (reached and exact_in):
            amount_in = get_amount1_delta(sqrt_ratio_current_x96, sqrt_ratio_next_x96, liquidity, True)
        if not (reached and not exact_in):
            amount_out = get_amount0_delta(sqrt_ratio_current_x96, sqrt_ratio_next_x96, liquidity, False)

    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and sqrt_ratio_next_x96 != sqrt_ratio_target_x96:
        fee_amount = amount_remaining - amount_in  # the target was not reached: the rest of the input is fee
    else:
        fee_amount = mul_div_rounding_up(amount_in, fee_pips, FEE_DENOMINATOR - fee_pips)
    return sqrt_ratio_next_x96, amount_in, amount_out, fee_amount


def add_delta(liquidity: int, delta: int) -> int:
    """LiquidityMath.addDelta: reverts 'LS' below zero and 'LA' above uint128."""
    result = liquidity + delta
    if delta < 0:
        _require(result >= 0, "LS")
    else:
        _require(result <= MAX_U128, "LA")
    return result


# ------------------------------------------------------------------------------------------ the pool
@dataclass(frozen=True)
class PoolState:
    """A pool at one block: slot0 (`sqrt_price_x96`, `tick`), the in-range `liquidity`, the `fee` in pips, the
    `tick_spacing`, and `ticks`: the `liquidityNet` of every initialized tick (liquidityGross > 0; a net of 0
    is still an initialized tick, a step still stops there)."""

    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int
    tick_spacing: int
    ticks: Mapping[int, int]
    _compressed: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _require(self.tick_spacing > 0, "PoolState", "tick spacing must be positive")
        _require(0 <= self.fee < FEE_DENOMINATOR, "PoolState", "fee out of range")
        ticks = dict(self.ticks)
        off_grid = [t for t in ticks if t % self.tick_spacing or not MIN_TICK <= t <= MAX_TICK]
        _require(not off_grid, "PoolState", f"ticks off the spacing or out of range: {off_grid[:3]}")
        object.__setattr__(self, "ticks", ticks)
        object.__setattr__(self, "_compressed", tuple(sorted(t // self.tick_spacing for t in ticks)))

    def next_initialized_tick_within_one_word(self, tick: int, lte: bool) -> tuple[int, bool]:
        """TickBitmap.nextInitializedTickWithinOneWord: the next initialized tick at or left of `tick` (`lte`)
        or right of it, looking no further than the bitmap word (256 spaced ticks) the search starts in; the
        word's edge, uninitialized, when there is none."""
        spacing, compressed_ticks = self.tick_spacing, self._compressed
        compressed = tick // spacing  # rounds toward negative infinity, as the contract does for negative ticks
        if lte:
            word_start = compressed & ~0xFF
            i = bisect_right(compressed_ticks, compressed) - 1
            if i >= 0 and compressed_ticks[i] >= word_start:
                return compressed_ticks[i] * spacing, True
            return word_start * spacing, False
        word_end = ((compressed + 1) & ~0xFF) + 0xFF
        i = bisect_left(compressed_ticks, compressed + 1)
        if i < len(compressed_ticks) and compressed_ticks[i] <= word_end:
            return compressed_ticks[i] * spacing, True
        return word_end * spacing, False


@dataclass(frozen=True)
class Quote:
    """An exact-input swap's outcome. `amount_in` is what the pool takes, fee included: less than offered
    only when the price limit stops the swap (QuoterV2 reports the output of such a partial fill too).
    `initialized_ticks_crossed` counts the crossings the loop made (not QuoterV2's count of the same name,
    which counts bitmap bits between the ticks before and after, for its gas estimate)."""

    amount_in: int
    amount_out: int
    fee_amount: int
    sqrt_price_x96_after: int
    tick_after: int
    liquidity_after: int
    initialized_ticks_crossed: int


def default_price_limit(zero_for_one: bool) -> int:
    """The limit QuoterV2 and SwapRouter use when given 0: just inside the range of sqrt ratios."""
    return MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1


def _check_limit(state: PoolState, zero_for_one: bool, limit: int) -> None:
    if zero_for_one:
        _require(MIN_SQRT_RATIO < limit < state.sqrt_price_x96, "SPL")
    else:
        _require(state.sqrt_price_x96 < limit < MAX_SQRT_RATIO, "SPL")


def _next_step(state: PoolState, tick: int, zero_for_one: bool, limit: int) -> tuple[int, bool, int, int]:
    """The swap loop's next step: (tickNext, initialized, sqrtPriceNextX96, the step's target price)."""
    tick_next, initialized = state.next_initialized_tick_within_one_word(tick, zero_for_one)
    tick_next = min(max(tick_next, MIN_TICK), MAX_TICK)
    sqrt_next = get_sqrt_ratio_at_tick(tick_next)
    beyond = sqrt_next < limit if zero_for_one else sqrt_next > limit
    return tick_next, initialized, sqrt_next, limit if beyond else sqrt_next


def quote_exact_input(
    state: PoolState, zero_for_one: bool, amount_in: int, sqrt_price_limit_x96: int | None = None
) -> Quote:
    """UniswapV3Pool.swap with a positive amountSpecified, on `state`: token0 in for token1 out when
    `zero_for_one`, else token1 in for token0 out. The limit defaults to the quoter's (no limit in effect)."""
    _require(amount_in > 0, "AS")
    _require(amount_in <= MAX_I256, "SafeCast.toInt256")
    limit = default_price_limit(zero_for_one) if sqrt_price_limit_x96 is None else sqrt_price_limit_x96
    _check_limit(state, zero_for_one, limit)
    remaining, amount_out, fees, crossed = amount_in, 0, 0, 0
    price, tick, liquidity, fee = state.sqrt_price_x96, state.tick, state.liquidity, state.fee
    while remaining != 0 and price != limit:
        start = price
        tick_next, initialized, sqrt_next, target = _next_step(state, tick, zero_for_one, limit)
        price, step_in, step_out, step_fee = compute_swap_step(price, target, liquidity, remaining, fee)
        remaining -= step_in + step_fee
        amount_out += step_out
        fees += step_fee
        if price == sqrt_next:
            if initialized:
                net = state.ticks[tick_next]
                liquidity = add_delta(liquidity, -net if zero_for_one else net)
                crossed += 1
            tick = tick_next - 1 if zero_for_one else tick_next
        elif price != start:
            tick = get_tick_at_sqrt_ratio(price)
    return Quote(amount_in - remaining, amount_out, fees, price, tick, liquidity, crossed)


def swapped(state: PoolState, quote: Quote) -> PoolState:
    """The pool after the swap `quote` describes (its ticks' liquidityNet do not change in a swap)."""
    return replace(state, sqrt_price_x96=quote.sqrt_price_x96_after, tick=quote.tick_after,
                   liquidity=quote.liquidity_after)


# ---------------------------------------------------------------------------------- price and depth
def mid_price(state: PoolState, decimals0: int, decimals1: int, *, base: int = 0) -> Fraction:
    """The pool's marginal price, exact: whole units of the other token for one whole unit of token `base`
    (0: token0 priced in token1, as slot0 holds it; 1: the inverse)."""
    _require(base in (0, 1), "mid_price", "base is 0 or 1")
    square = state.sqrt_price_x96 * state.sqrt_price_x96
    price = Fraction(square * 10**decimals0, (1 << 192) * 10**decimals1)
    return price if base == 0 else 1 / price


def price_bound(sqrt_price_x96: int, zero_for_one: bool, move_bp: int) -> int:
    """The farthest sqrt price a sale may end at and have moved the price by at most `move_bp`: the price of
    the token sold, in the token bought, falls by at most move_bp / 10,000. Selling token0 the sqrt price falls
    to the least s with s^2 >= sqrtP^2 (1 - move); selling token1 it rises to the greatest s with
    s^2 (1 - move) <= sqrtP^2."""
    _require(0 < move_bp < BP, "price_bound", "the move is in basis points, between 0 and 10,000")
    square = sqrt_price_x96 * sqrt_price_x96
    if zero_for_one:
        least_square = -(-square * (BP - move_bp) // BP)
        s = isqrt(least_square)
        return s if s * s == least_square else s + 1
    return isqrt(square * BP // (BP - move_bp))


def _within(price: int, bound: int, zero_for_one: bool) -> bool:
    return price >= bound if zero_for_one else price <= bound


def _largest_step_input(price: int, target: int, liquidity: int, fee: int, bound: int, zero_for_one: bool) -> int:
    """The largest input (fee included) of one swap step from `price` toward `target`, with `bound` strictly
    between them or at `price`, that ends within the bound. Such an input does not reach the target, so the
    step ends at getNextSqrtPriceFromInput of its fee-less part, and all of it is taken."""
    if liquidity == 0:
        return 0  # any input jumps to the target, past the bound
    to_target = (get_amount0_delta(target, price, liquidity, True) if zero_for_one
                 else get_amount1_delta(price, target, liquidity, True))  # fee-less input that reaches the target

    def ends_within(less_fee: int) -> bool:
        return _within(get_next_sqrt_price_from_input(price, liquidity, less_fee, zero_for_one), bound, zero_for_one)

    # The largest fee-less input d, in closed form where the contract takes its no-overflow branch:
    # token0 in: ceil(N c / (N + d c)) >= b  <=>  d < N (c - b + 1) / (c (b - 1)), N = liquidity << 96;
    # token1 in: c + floor(d 2^96 / L) <= b  <=>  d < (b - c + 1) L / 2^96.
    if zero_for_one:
        numerator = (liquidity << RESOLUTION) * (price - bound + 1)
        d = -(-numerator // (price * (bound - 1))) - 1
    else:
        d = -(-(bound - price + 1) * liquidity // Q96) - 1
    d = min(max(d, 0), to_target - 1)
    if not (ends_within(d) and (d + 1 == to_target or not ends_within(d + 1))):
        low, high = 0, to_target - 1  # the overflow branches: the same answer by the contract's own function
        while low < high:
            mid = (low + high + 1) // 2
            if ends_within(mid):
                low = mid
            else:
                high = mid - 1
        d = low
    # the largest input whose fee-less part floor(r (1e6 - fee) / 1e6) is d
    return ((d + 1) * FEE_DENOMINATOR - 1) // (FEE_DENOMINATOR - fee)


def depths(state: PoolState, zero_for_one: bool, moves_bp: Iterable[int]) -> dict[int, int]:
    """For each move (basis points), the largest exact input (token0 when `zero_for_one`, else token1; fee
    included) whose swap moves the price by at most the move (`price_bound`), in one walk of the ticks.

    The walk is the swap loop with no input limit: every step whose target stays within the bound is taken
    whole (its input is what computeSwapStep charges to reach the target, crossing the tick as the pool
    does); in the step that would pass the bound the largest input is solved exactly (`_largest_step_input`).
    An input the pool cannot take (it stops at the quoter's price limit first) counts as what it takes."""
    moves = sorted(set(moves_bp))
    if not moves:
        return {}
    limit = default_price_limit(zero_for_one)
    bounds = [(m, price_bound(state.sqrt_price_x96, zero_for_one, m)) for m in moves]
    out: dict[int, int] = {}
    price, tick, liquidity, fee = state.sqrt_price_x96, state.tick, state.liquidity, state.fee
    taken = 0
    i = 0
    while i < len(bounds):
        move, bound = bounds[i]
        if price == limit:
            out[move] = taken
            i += 1
            continue
        tick_next, initialized, sqrt_next, target = _next_step(state, tick, zero_for_one, limit)
        if _within(target, bound, zero_for_one):
            step_in = (get_amount0_delta(target, price, liquidity, True) if zero_for_one
                       else get_amount1_delta(price, target, liquidity, True))
            taken += step_in + mul_div_rounding_up(step_in, fee, FEE_DENOMINATOR - fee)
            if target == sqrt_next:
                if initialized:
                    net = state.ticks[tick_next]
                    liquidity = add_delta(liquidity, -net if zero_for_one else net)
                tick = tick_next - 1 if zero_for_one else tick_next
            price = target
            continue
        out[move] = taken + _largest_step_input(price, target, liquidity, fee, bound, zero_for_one)
        i += 1
    return out


def depth(state: PoolState, zero_for_one: bool, move_bp: int) -> int:
    """The largest exact input whose execution moves the price by at most `move_bp` (`depths`)."""
    return depths(state, zero_for_one, (move_bp,))[move_bp]


def premium_bp(pool_price: Fraction | int, nav: Fraction | int) -> float:
    """The pool's price against the oracle's NAV, both in the same units: (price / NAV - 1) x 10,000, a
    premium when positive, a discount when negative. The module's one float boundary: exact until the
    single, correctly rounded conversion here."""
    nav = Fraction(nav)
    _require(nav > 0, "premium_bp", "the NAV must be positive")
    return float((Fraction(pool_price) - nav) * BP / nav)
