"""Uniswap v3 as published, on the dev chain: the factory, the NonfungiblePositionManager, the SwapRouter, QuoterV2
and TickLens deployed from their npm packages' artifacts (`@uniswap/v3-core` 1.0.1, `@uniswap/v3-periphery`
1.4.4, copied into build/contracts/ by the build; never recompiled), and what the dev world and the tests do
with them: pools created and initialized through the position manager, positions minted, decreased and
collected through it, swaps through the router.

Pure parts (no I/O), used by the world's simulation to know every pool to the wei without reading it: pool
addresses (CREATE2 with the periphery's `POOL_INIT_CODE_HASH`), the periphery's `LiquidityAmounts`
(`liquidity_for_amounts`), the amounts a pool takes on `mint` and pays on `burn` (`UniswapV3Pool
._modifyPosition`), a pool state with a position added or removed (`with_liquidity`), and the calldata of the
calls the world makes. The swap itself is `indexer.liquidity.v3.quote_exact_input`.

On a node: `deploy_uniswap`, `create_pool`, `mint_positions` and `send` (one mined block of transactions,
every receipt checked), for tests that build pools of their own (`tests/liquidity/uniswap.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak

from indexer.chain.abi import load_abi
from indexer.chain.decode import topic_of
from indexer.chain.rpc import RpcClient
from indexer.devchain.txs import ChainWriter, Tx
from indexer.liquidity.v3 import (
    MAX_TICK,
    MIN_TICK,
    Q96,
    PoolState,
    add_delta,
    get_amount0_delta,
    get_amount1_delta,
    get_sqrt_ratio_at_tick,
    mul_div,
)

# The position manager and the router are given a WETH9 and the position manager a token descriptor at
# construction. Neither is ever called: every pool pays in ERC-20s (no ETH is wrapped) and no position's
# tokenURI is asked for, so they are fixed addresses with no code.
WETH9 = "0x" + "00" * 19 + "e9"
TOKEN_DESCRIPTOR = "0x" + "00" * 19 + "de"
DEADLINE = 2**64
FEE_TIERS = {100: 1, 500: 10, 3000: 60, 10000: 200}  # fee (pips) -> tick spacing; 100 is enabled by the owner
# PoolAddress.POOL_INIT_CODE_HASH of @uniswap/v3-periphery 1.4.4: the keccak of the published pool's creation code
POOL_INIT_CODE_HASH = "e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
SWAP = topic_of("Swap(address,address,int256,int256,uint160,uint128,int24)")
MAX_U128 = 2**128 - 1

FACTORY = load_abi("UniswapV3Factory")
POOL = load_abi("UniswapV3Pool")
POSITIONS = load_abi("NonfungiblePositionManager")
ROUTER = load_abi("SwapRouter")
QUOTER = load_abi("QuoterV2")
LENS = load_abi("TickLens")
TOKEN = load_abi("PlainToken")

GAS_CREATE_POOL = 8_000_000
GAS_POSITION_CALL = 1_500_000  # one mint, decrease or collect inside the position manager's multicall
GAS_SWAP = 5_000_000  # a swap that crosses many ticks and bitmap words


@dataclass
class Uniswap:
    rpc: RpcClient
    writer: ChainWriter
    owner: str
    factory: str
    positions: str
    router: str
    quoter: str
    lens: str
    pools: dict[str, Pool] = field(default_factory=dict)

    def send(self, txs: list[Tx]) -> list[dict]:
        return send(self.rpc, self.writer, txs)

    def call(self, to: str, data: str, block: int | str = "latest") -> str:
        return self.rpc.call("eth_call", [{"to": to, "data": data}, block if isinstance(block, str) else hex(block)])

    def tx(self, to: str, data: str, gas: int = 2_000_000) -> Tx:
        return Tx(self.owner, to, data, gas)

    @classmethod
    def attach(cls, rpc: RpcClient, addresses: dict[str, str], owner: str = "") -> Uniswap:
        """The contracts already deployed at `addresses` (factory, positions, router, quoter, lens: the dev
        world's manifest lists them under `[world.uniswap]`)."""
        return cls(rpc, ChainWriter(rpc), owner, *(addresses[k] for k in ("factory", "positions", "router",
                                                                        "quoter", "lens")))


@dataclass(frozen=True)
class Pool:
    address: str
    token0: str
    token1: str
    fee: int
    tick_spacing: int


# ------------------------------------------------------------------------------------------ deployment
def factory_txs(writer: ChainWriter, deployer: str) -> list[Tx]:
    """The contracts that need no other: the factory, then TickLens."""
    return [writer.deploy(deployer, "UniswapV3Factory", [], []), writer.deploy(deployer, "TickLens", [], [])]


def periphery_txs(writer: ChainWriter, deployer: str, factory: str) -> list[Tx]:
    """The contracts built on the factory: the position manager, the SwapRouter and QuoterV2."""
    return [
        writer.deploy(deployer, "NonfungiblePositionManager", ["address", "address", "address"],
                      [factory, WETH9, TOKEN_DESCRIPTOR]),
        writer.deploy(deployer, "SwapRouter", ["address", "address"], [factory, WETH9]),
        writer.deploy(deployer, "QuoterV2", ["address", "address"], [factory, WETH9]),
    ]


def send(rpc: RpcClient, writer: ChainWriter, txs: list[Tx]) -> list[dict]:
    """Send `txs` in one mined block; their receipts, every one checked to have succeeded."""
    rpc.call("evm_setAutomine", [False])
    try:
        writer.send_all(txs)
        rpc.call("evm_mine")
    finally:
        rpc.call("evm_setAutomine", [True])
    number = int(rpc.call("eth_blockNumber"), 16)
    writer.check_block(number, len(txs))
    return rpc.call("eth_getBlockReceipts", [hex(number)])


def deploy_uniswap(rpc: RpcClient) -> Uniswap:
    """The factory (with the 0.01% tier enabled, tick spacing 1), the position manager, the router, QuoterV2
    and TickLens, all from the published bytecode, in two blocks."""
    writer = ChainWriter(rpc)
    owner = rpc.call("eth_accounts")[0].lower()
    receipts = send(rpc, writer, factory_txs(writer, owner))
    factory, lens = (r["contractAddress"].lower() for r in receipts)
    receipts = send(rpc, writer, [Tx(owner, factory, FACTORY.fn("enableFeeAmount").encode(100, 1), 200_000),
                                  *periphery_txs(writer, owner, factory)])
    positions, router, quoter = (r["contractAddress"].lower() for r in receipts[1:])
    return Uniswap(rpc, writer, owner, factory, positions, router, quoter, lens)


def create_pool(u: Uniswap, token0: str, token1: str, fee: int, sqrt_price_x96: int) -> Pool:
    u.send([create_pool_tx(u.owner, u.positions, token0, token1, fee, sqrt_price_x96)])
    (address,) = FACTORY.fn("getPool").decode(u.call(u.factory, FACTORY.fn("getPool").encode(token0, token1, fee)))
    pool = Pool(address.lower(), token0, token1, fee, FEE_TIERS[fee])
    u.pools[pool.address] = pool
    return pool


def mint_positions(u: Uniswap, pool: Pool, positions: list[tuple[int, int, int, int]]) -> None:
    """Positions (tickLower, tickUpper, amount0Desired, amount1Desired) minted through the position manager,
    all in one block."""
    u.send([Tx(u.owner, u.positions, "0x" + mint_call(pool.token0, pool.token1, pool.fee, lower, upper, a0, a1,
                                                      u.owner).hex(), GAS_POSITION_CALL)
            for lower, upper, a0, a1 in positions])


def full_range(spacing: int, amount0: int, amount1: int) -> tuple[int, int, int, int]:
    lower, upper = full_range_ticks(spacing)
    return (lower, upper, amount0, amount1)


def full_range_ticks(spacing: int) -> tuple[int, int]:
    """The widest range a pool of this tick spacing takes: its usable ticks nearest MIN_TICK and MAX_TICK."""
    return -(-MIN_TICK // spacing) * spacing, MAX_TICK // spacing * spacing


# ------------------------------------------------------------------------------------------ addresses
def sorted_pair(token_a: str, token_b: str) -> tuple[str, str]:
    """(token0, token1) as a pool orders them: by address."""
    a, b = token_a.lower(), token_b.lower()
    return (a, b) if int(a, 16) < int(b, 16) else (b, a)


def pool_address(factory: str, token_a: str, token_b: str, fee: int) -> str:
    """Where the factory deploys the pool of two tokens and a fee (PoolAddress.computeAddress)."""
    token0, token1 = sorted_pair(token_a, token_b)
    salt = keccak(bytes(12) + bytes.fromhex(token0[2:]) + bytes(12) + bytes.fromhex(token1[2:])
                  + fee.to_bytes(32, "big"))
    digest = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + bytes.fromhex(POOL_INIT_CODE_HASH))
    return "0x" + digest[-20:].hex()


# ------------------------------------------------------------------------------- liquidity arithmetic
def _to_uint128(x: int) -> int:
    if x > MAX_U128:
        raise ValueError("LiquidityAmounts.toUint128: liquidity above uint128")
    return x


def liquidity_for_amount0(sqrt_a: int, sqrt_b: int, amount0: int) -> int:
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    intermediate = mul_div(sqrt_a, sqrt_b, Q96)
    return _to_uint128(mul_div(amount0, intermediate, sqrt_b - sqrt_a))


def liquidity_for_amount1(sqrt_a: int, sqrt_b: int, amount1: int) -> int:
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    return _to_uint128(mul_div(amount1, Q96, sqrt_b - sqrt_a))


def liquidity_for_amounts(sqrt_price: int, sqrt_a: int, sqrt_b: int, amount0: int, amount1: int) -> int:
    """LiquidityAmounts.getLiquidityForAmounts: the liquidity the position manager mints for the amounts
    desired at the pool's sqrt price (the smaller of the two sides' in range)."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if sqrt_price <= sqrt_a:
        return liquidity_for_amount0(sqrt_a, sqrt_b, amount0)
    if sqrt_price < sqrt_b:
        return min(liquidity_for_amount0(sqrt_price, sqrt_b, amount0),
                   liquidity_for_amount1(sqrt_a, sqrt_price, amount1))
    return liquidity_for_amount1(sqrt_a, sqrt_b, amount1)


def position_amounts(state: PoolState, lower: int, upper: int, liquidity_delta: int) -> tuple[int, int]:
    """UniswapV3Pool._modifyPosition's amounts: what a mint of `liquidity_delta` > 0 takes (rounded up) or
    a burn of -`liquidity_delta` pays into the position's tokens owed (rounded down), by where slot0's tick
    lies against the range."""
    sqrt_lower, sqrt_upper = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)
    up, size = liquidity_delta > 0, abs(liquidity_delta)
    if state.tick < lower:
        return get_amount0_delta(sqrt_lower, sqrt_upper, size, up), 0
    if state.tick < upper:
        return (get_amount0_delta(state.sqrt_price_x96, sqrt_upper, size, up),
                get_amount1_delta(sqrt_lower, state.sqrt_price_x96, size, up))
    return 0, get_amount1_delta(sqrt_lower, sqrt_upper, size, up)


def with_liquidity(state: PoolState, gross: dict[int, int], lower: int, upper: int, delta: int) -> PoolState:
    """The pool after a position of [lower, upper) changed by `delta` liquidity: each end's liquidityNet and
    `gross` (liquidityGross per tick, updated in place; a tick whose gross falls to 0 is cleared, as the pool
    clears it), and the in-range liquidity when slot0's tick is inside the range."""
    ticks = dict(state.ticks)
    for tick, net in ((lower, delta), (upper, -delta)):
        gross[tick] = add_delta(gross.get(tick, 0), delta)
        if gross[tick] == 0:
            del gross[tick]
            ticks.pop(tick, None)
        else:
            ticks[tick] = ticks.get(tick, 0) + net
    liquidity = add_delta(state.liquidity, delta) if lower <= state.tick < upper else state.liquidity
    return PoolState(state.sqrt_price_x96, state.tick, liquidity, state.fee, state.tick_spacing, ticks)


# ------------------------------------------------------------------------------------------ calldata
def create_pool_tx(sender: str, positions: str, token0: str, token1: str, fee: int, sqrt_price_x96: int) -> Tx:
    data = POSITIONS.fn("createAndInitializePoolIfNecessary").encode(token0, token1, fee, sqrt_price_x96)
    return Tx(sender, positions, data, GAS_CREATE_POOL)


def mint_call(token0: str, token1: str, fee: int, lower: int, upper: int, amount0: int, amount1: int,
              recipient: str) -> bytes:
    """NonfungiblePositionManager.mint (no slippage minimum)."""
    return POSITIONS.fn("mint").encode_bytes((token0, token1, fee, lower, upper, amount0, amount1, 0, 0, recipient,
                                              DEADLINE))


def decrease_call(token_id: int, liquidity: int) -> bytes:
    return POSITIONS.fn("decreaseLiquidity").encode_bytes((token_id, liquidity, 0, 0, DEADLINE))


def collect_call(token_id: int, recipient: str, amount0_max: int, amount1_max: int) -> bytes:
    return POSITIONS.fn("collect").encode_bytes((token_id, recipient, amount0_max, amount1_max))


def multicall_tx(sender: str, positions: str, calls: list[bytes]) -> Tx:
    """Several position-manager calls in one transaction, in order (its `multicall`)."""
    return Tx(sender, positions, POSITIONS.fn("multicall").encode(calls), GAS_POSITION_CALL * max(1, len(calls)))


def swap_tx(sender: str, router: str, token_in: str, token_out: str, fee: int, recipient: str, amount_in: int,
            sqrt_price_limit_x96: int = 0) -> Tx:
    """SwapRouter.exactInputSingle: `amount_in` of `token_in` (less when the price limit stops the swap), no
    minimum out; a limit of 0 is the router's default (no limit in effect)."""
    params: tuple[Any, ...] = (token_in, token_out, fee, recipient, DEADLINE, amount_in, 0, sqrt_price_limit_x96)
    return Tx(sender, router, ROUTER.fn("exactInputSingle").encode(params), GAS_SWAP)
