"""Uniswap v3 as published, on anvil, for the tests: the deployment, pool creation and position minting come from
the dev chain's module (`indexer.devchain.uniswap`, the one place for them, which the dev world uses too); here
are what only tests need: pools of two PlainTokens, sqrt prices inside a tick, random positions, swaps through
the router in a block of their own, quotes by eth_call, and a pool's state read at a block (slot0, liquidity,
the tick bitmap, TickLens's populated ticks).

Also the naive depth: bisection over quotes, the baseline the bench compares `depths` with and a second
opinion in the tests."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from eth_abi import decode

from indexer.devchain.uniswap import (  # noqa: F401 - re-exported: the tests and benches import them from here
    DEADLINE,
    FACTORY,
    FEE_TIERS,
    LENS,
    POOL,
    POSITIONS,
    QUOTER,
    ROUTER,
    SWAP,
    TOKEN,
    TOKEN_DESCRIPTOR,
    WETH9,
    Pool,
    Uniswap,
    create_pool,
    deploy_uniswap,
    full_range,
    mint_positions,
    send,
)
from indexer.liquidity.v3 import (
    MAX_TICK,
    MIN_TICK,
    PoolState,
    get_sqrt_ratio_at_tick,
    price_bound,
    quote_exact_input,
)

PLAIN_CTOR = ["string", "string", "uint8", "address"]


def deploy_token_pair(u: Uniswap, name: str, decimals: tuple[int, int] = (18, 6)) -> tuple[str, str]:
    """Two PlainTokens minted to the owner and approved to the position manager and the router, sorted as a
    pool orders them (token0 < token1)."""
    receipts = u.send([u.writer.deploy(u.owner, "PlainToken", PLAIN_CTOR, [f"{name} {i}", f"{name}{i}", d, u.owner])
                       for i, d in enumerate(decimals)])
    tokens = [r["contractAddress"].lower() for r in receipts]
    approve = TOKEN.fn("approve")
    u.send([u.tx(t, TOKEN.fn("mint").encode(u.owner, 10**40), 200_000) for t in tokens]
           + [u.tx(t, approve.encode(spender, 2**256 - 1), 200_000) for t in tokens for spender in (u.positions, u.router)])
    token0, token1 = sorted(tokens)
    return token0, token1


def sqrt_price_at(tick: float) -> int:
    """A sqrt price inside tick floor(tick), a fraction of the way to the next one (never on a tick)."""
    t = math.floor(tick)
    low, high = get_sqrt_ratio_at_tick(t), get_sqrt_ratio_at_tick(t + 1)
    return low + (high - low) * 3 // 7


def tick_of_price(price_of_token0_raw: float) -> float:
    return math.log(price_of_token0_raw) / math.log(1.0001)


def random_positions(rng: random.Random, tick: int, spacing: int, n: int, half_width: int,
                     amount0: int, amount1: int) -> list[tuple[int, int, int, int]]:
    """`n` positions with ends on the spacing within `half_width` ticks of `tick`: some around the price, some
    only below or above it, of random sizes up to `amount0` / `amount1`."""
    out = []
    for _ in range(n):
        lower = (tick + rng.randrange(-half_width, half_width)) // spacing * spacing
        upper = lower + spacing * rng.randrange(1, max(2, 2 * half_width // (3 * spacing)))
        out.append((lower, min(upper, MAX_TICK // spacing * spacing), rng.randrange(1, amount0),
                    rng.randrange(1, amount1)))
    return out


# ------------------------------------------------------------------------------------------ reads
def read_pool_state(u: Uniswap, pool: Pool, block: int) -> PoolState:
    """The pool at `block`: slot0, liquidity, fee, spacing, and every initialized tick's liquidityNet (each
    non-empty word of the tick bitmap through TickLens)."""
    tag = hex(block)

    def call(fn, *args):
        return ("eth_call", [{"to": pool.address, "data": POOL.fn(fn).encode(*args)}, tag])

    slot0, liquidity, fee, spacing = u.rpc.batch([call("slot0"), call("liquidity"), call("fee"), call("tickSpacing")])
    sqrt_price_x96, tick = POOL.fn("slot0").decode(slot0)[:2]
    (spacing,) = POOL.fn("tickSpacing").decode(spacing)
    words = range((MIN_TICK // spacing) >> 8, ((MAX_TICK // spacing) >> 8) + 1)
    bitmaps = u.rpc.batch([call("tickBitmap", w) for w in words])
    used = [w for w, raw in zip(words, bitmaps, strict=True) if int(raw, 16)]
    lens = LENS.fn("getPopulatedTicksInWord")
    answers = u.rpc.batch([("eth_call", [{"to": u.lens, "data": lens.encode(pool.address, w)}, tag]) for w in used])
    ticks = {t: net for raw in answers for t, net, _gross in lens.decode(raw)[0]}
    return PoolState(sqrt_price_x96, tick, POOL.fn("liquidity").decode(liquidity)[0],
                     POOL.fn("fee").decode(fee)[0], spacing, ticks)


@dataclass(frozen=True)
class QuoterAnswer:
    amount_out: int
    sqrt_price_x96_after: int
    initialized_ticks_crossed: int
    gas_estimate: int


def quoter_exact_input(u: Uniswap, pool: Pool, zero_for_one: bool, amount_in: int, block: int) -> QuoterAnswer:
    """QuoterV2.quoteExactInputSingle by eth_call at `block` (no price limit)."""
    token_in, token_out = (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
    fn = QUOTER.fn("quoteExactInputSingle")
    return QuoterAnswer(*fn.decode(u.call(u.quoter, fn.encode((token_in, token_out, amount_in, pool.fee, 0)), block)))


def router_swap(u: Uniswap, pool: Pool, zero_for_one: bool, amount_in: int, amount_out_minimum: int) -> dict:
    """SwapRouter.exactInputSingle in its own block; the pool's Swap event, decoded."""
    token_in, token_out = (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
    data = ROUTER.fn("exactInputSingle").encode(
        (token_in, token_out, pool.fee, u.owner, DEADLINE, amount_in, amount_out_minimum, 0))
    (receipt,) = u.send([u.tx(u.router, data, 1_000_000_000)])  # running a pool dry crosses thousands of words
    (log,) = [g for g in receipt["logs"] if g["address"].lower() == pool.address and g["topics"][0] == SWAP]
    amount0, amount1, sqrt_price_x96, liquidity, tick = decode(
        ["int256", "int256", "uint160", "uint128", "int24"], bytes.fromhex(log["data"][2:]))
    return {"amount0": amount0, "amount1": amount1, "sqrt_price_x96": sqrt_price_x96, "liquidity": liquidity,
            "tick": tick, "block": int(receipt["blockNumber"], 16)}


def balance_of(u: Uniswap, token: str, holder: str, block: int | str = "latest") -> int:
    return TOKEN.fn("balanceOf").decode(u.call(token, TOKEN.fn("balanceOf").encode(holder), block))[0]


# ---------------------------------------------------------------------------------- naive depth
def depth_by_bisection(state: PoolState, zero_for_one: bool, move_bp: int) -> int:
    """The largest input whose quote ends within the move's bound, by doubling then bisecting over quotes:
    the same answer as `depths` (the final price is monotone in the input), some hundred quotes later."""
    bound = price_bound(state.sqrt_price_x96, zero_for_one, move_bp)

    def within(amount: int) -> bool:
        after = quote_exact_input(state, zero_for_one, amount).sqrt_price_x96_after
        return after >= bound if zero_for_one else after <= bound

    if not within(1):
        return 0
    low, high = 1, 2
    while within(high):
        low, high = high, high * 2
        if high > 2**255:  # every input ends at the price limit, within the bound: what the pool takes
            return quote_exact_input(state, zero_for_one, low).amount_in
    while high - low > 1:
        mid = (low + high) // 2
        if within(mid):
            low = mid
        else:
            high = mid
    return low
