"""Uniswap v3 pool state read at one block through Multicall3: what a pool is (its tokens, fee, spacing),
slot0 and the in-range liquidity, and its initialized ticks (by the tick bitmap, or the ticks named).

The functions are `UniswapV3Pool`'s of `@uniswap/v3-core` 1.0.1, by signature; nothing here needs the
periphery (TickLens), which a chain may not have.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode

from indexer.chain.multicall import Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.chain.tokens import Read
from indexer.errors import ChainDataError
from indexer.liquidity.pools import PoolSnapshot, Tick
from indexer.liquidity.v3 import MAX_TICK, MIN_TICK

TOKEN0 = Read("token0()", ("address",))
TOKEN1 = Read("token1()", ("address",))
FEE = Read("fee()", ("uint24",))
TICK_SPACING = Read("tickSpacing()", ("int24",))
DECIMALS = Read("decimals()", ("uint8",))
SLOT0 = Read("slot0()", ("uint160", "int24", "uint16", "uint16", "uint16", "uint8", "bool"))
LIQUIDITY = Read("liquidity()", ("uint128",))
TICK_BITMAP = Read("tickBitmap(int16)", ("uint256",))
TICKS = Read("ticks(int24)", ("uint128", "int128", "uint256", "uint256", "int56", "uint160", "uint32", "bool"))


@dataclass(frozen=True)
class PoolMeta:
    """What a pool is, read once at start-up."""

    address: str
    token0: str
    token1: str
    fee: int  # pips: hundredths of a basis point
    tick_spacing: int
    decimals0: int
    decimals1: int


def read_pool_meta(rpc: RpcClient, pools: list[str], block: int, multicall: str | None) -> dict[str, PoolMeta]:
    """Each pool's tokens, fee, tick spacing and its tokens' decimals; ChainDataError naming a pool that does
    not answer as a Uniswap v3 pool."""
    calls = [Call(p, r.selector) for p in pools for r in (TOKEN0, TOKEN1, FEE, TICK_SPACING)]
    results = read_calls(rpc, calls, block, multicall=multicall)
    firsts: dict[str, tuple] = {}
    for i, pool in enumerate(pools):
        answers = results[4 * i:4 * i + 4]
        if not all(ok for ok, _ in answers):
            raise ChainDataError(f"pool {pool} does not answer token0(), token1(), fee() and tickSpacing(): "
                                 "not a Uniswap v3 pool")
        try:
            firsts[pool] = tuple(r.decode(data) for r, (_, data) in zip((TOKEN0, TOKEN1, FEE, TICK_SPACING), answers,
                                                                        strict=True))
        except ValueError as exc:
            raise ChainDataError(f"pool {pool}: {exc}") from None
    tokens = sorted({str(t).lower() for v in firsts.values() for t in v[:2]})
    dec = read_calls(rpc, [Call(t, DECIMALS.selector) for t in tokens], block, multicall=multicall)
    decimals = {}
    for t, (ok, data) in zip(tokens, dec, strict=True):
        if not ok or len(data) < 32:
            raise ChainDataError(f"token {t} of a configured pool does not answer decimals()")
        decimals[t] = int(DECIMALS.decode(data))
    out = {}
    for pool, (t0, t1, fee, spacing) in firsts.items():
        t0, t1 = str(t0).lower(), str(t1).lower()
        out[pool] = PoolMeta(pool, t0, t1, int(fee), int(spacing), decimals[t0], decimals[t1])
    return out


def read_slots(rpc: RpcClient, pools: list[str], block: int, multicall: str | None
               ) -> dict[str, PoolSnapshot | None]:
    """slot0 and the in-range liquidity of each pool at `block` (no ticks); None for a pool with no code there
    yet (a configured pool created later: both calls answer nothing)."""
    calls = [Call(p, r.selector, allow_failure=False) for p in pools for r in (SLOT0, LIQUIDITY)]
    results = read_calls(rpc, calls, block, multicall=multicall)
    out: dict[str, PoolSnapshot | None] = {}
    for i, pool in enumerate(pools):
        if not results[2 * i][1] and not results[2 * i + 1][1]:
            out[pool] = None
            continue
        slot0 = SLOT0.decode(results[2 * i][1])
        out[pool] = PoolSnapshot(block, int(slot0[0]), int(slot0[1]), int(LIQUIDITY.decode(results[2 * i + 1][1])))
    return out


def read_ticks(rpc: RpcClient, pool: str, ticks: list[int], block: int, multicall: str | None) -> dict[int, Tick]:
    """The named ticks' liquidityGross and liquidityNet at `block` (an uninitialized tick reads 0 / 0)."""
    calls = [Call(pool, TICKS.selector + encode(["int24"], [t]), allow_failure=False) for t in ticks]
    out = {}
    for t, (_, data) in zip(ticks, read_calls(rpc, calls, block, multicall=multicall), strict=True):
        gross, net = TICKS.decode(data)[:2]
        out[t] = Tick(int(gross), int(net))
    return out


def initialized_ticks(rpc: RpcClient, pool: str, tick_spacing: int, block: int, multicall: str | None
                      ) -> dict[int, Tick]:
    """Every initialized tick of the pool at `block`: each word of the tick bitmap, then the ticks whose
    bits are set (`TickBitmap`: bit `compressed & 255` of word `compressed >> 8`, `compressed = tick //
    spacing`). A tick with gross 0 under a set bit cannot happen in a v3 pool and is refused."""
    words = list(range((MIN_TICK // tick_spacing) >> 8, ((MAX_TICK // tick_spacing) >> 8) + 1))
    calls = [Call(pool, TICK_BITMAP.selector + encode(["int16"], [w]), allow_failure=False) for w in words]
    set_ticks = []
    for w, (_, data) in zip(words, read_calls(rpc, calls, block, multicall=multicall), strict=True):
        bits = int(TICK_BITMAP.decode(data))
        while bits:
            low = bits & -bits
            set_ticks.append(((w << 8) + low.bit_length() - 1) * tick_spacing)
            bits ^= low
    ticks = read_ticks(rpc, pool, set_ticks, block, multicall)
    empty = [t for t, k in ticks.items() if k.gross == 0]
    if empty:
        raise ChainDataError(f"pool {pool}: tick {empty[0]} is set in the bitmap at block {block} with no liquidity")
    return ticks
