"""The dev world's Uniswap v3 pools, simulated to the wei (docs/liquidity.md, "The dev world's pools").

A few tokens trade against USDC in pools of the published contracts (`indexer.devchain.uniswap`, `specs.POOLS`).
Five actors outside the world's wallets move them:

- the **liquidity provider** creates each pool at the token's starting price when the world is deployed
  (`pool_creation_txs`), mints positions through the position manager in the initial distribution (the full
  range and narrower ranges centred on the price), re-centres its narrower ranges when the price has left the
  narrowest, withdraws most of every position as the March crash opens (`decreaseLiquidity` + `collect`) and
  comes back when it is over, once the pool is at NAV again;
- the **arbitrageur** keeps each pool near its target, the NAV per token: when the pool's price is off by more
  than a threshold it swaps through the SwapRouter (`exactInputSingle`, `sqrtPriceLimitX96` = the target) so
  that the pool ends at the target. While the market is closed the oracle stands still, but the pools keep
  trading: the target follows half the fair value's move since the last session. In the crash window the
  tokens trade at a discount to NAV. The thin pool is watched only every six hours (every block in the crash);
- three **traders** make noise trades of random size and side;
- the tokens' **issuers** refill an actor left with less than half its first holding of a token (a creation,
  as an authorized participant gets; the arbitrageur is the other side of every move of the price).

A pool is never touched while its token may not move: TSLAx stands still for three days after its split (so the
split shows on chain only at the first fold after them, `specs.scheduled_events`), and its pool's price per
token stays three times the new NAV until the arbitrage brings it down, in the first block after; MSTRx's pool
waits out its pause.

NAV per token is what the risk engine values one token at (docs/risk.md, section 2), from the world's share
price (`WorldSim.share_price`): a Backed xStock's token is one share, whatever its feed quotes (its balance
carries the multiplier), so its NAV is the share price; an ERC-8056 token's raw unit is `multiplier / 1e18`
shares, so its NAV is the share price times that (which is what its `per_token` feed prints).

The simulation keeps every pool's state (`PoolState`: price, tick, liquidity, initialized ticks) and every
balance of the actors and the pools, and computes each swap, mint and burn with the contracts' own integer
arithmetic (`indexer.liquidity.v3`, `uniswap.liquidity_for_amounts`, `uniswap.position_amounts`), so it knows
what each transaction does before it is sent. That matters for the rebasing xStocks: a transfer of `a` moves
`floor(a * 1e18 / m)` shares, and the receiver's balance may then grow by `a - 1`, which a pool refuses
(`IIA` on a swap, `M0`/`M1` on a mint). Every amount an xStock pays into a pool is chosen so that the pool's
balance grows by all of it (`DexSim._receivable`, `_mint_amounts`, and in the rare case where no mint amount
does, a dust `transferShares` first, `_lift`). A pool's transactions never share a block with another sender's,
so their order is the plan's.

The draws come from a generator of their own (seeded from the world's seed): the world's other draws, its
prices and transfers, are those of a world without pools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from math import isqrt
from typing import TYPE_CHECKING, Any

import numpy as np
from eth_utils import keccak

from indexer.accounting import WAD, balance_from_shares, shares_from_amount
from indexer.devchain.specs import POOL_QUOTE, POOLS, TOKENS, PoolSpec, ScheduledEvent
from indexer.devchain.txs import Tx
from indexer.devchain.uniswap import (
    FEE_TIERS,
    collect_call,
    create_pool_tx,
    decrease_call,
    full_range_ticks,
    liquidity_for_amounts,
    mint_call,
    multicall_tx,
    pool_address,
    position_amounts,
    sorted_pair,
    swap_tx,
    with_liquidity,
)
from indexer.liquidity.v3 import (
    PoolState,
    Quote,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    quote_exact_input,
    swapped,
)
from indexer.types import Accounting

if TYPE_CHECKING:
    from indexer.devchain.world import BlockPlan, WorldSim


def actor_address(name: str) -> str:
    return "0x" + keccak(f"collateral-indexer/world/dex/{name}".encode())[-20:].hex()


LIQUIDITY_PROVIDER = actor_address("liquidity-provider")
ARBITRAGEUR = actor_address("arbitrageur")
TRADERS = tuple(actor_address(f"trader/{k}") for k in range(3))
UNISWAP_DEPLOYER = actor_address("uniswap-deployer")  # deploys the factory and the periphery

KAPPA = 0.5  # while the market is closed, the pools follow this share of the fair value's move since the session
ARB_BP = {500: 25, 3000: 50, 10000: 300}  # deviation from the target (bp) the arbitrageur trades on, per fee tier
THIN_ARB_EVERY = 6 * 3600  # the thin pool is watched at 00, 06, 12 and 18 UTC (every block in the crash window)
NOISE_PER_BLOCK = 0.3  # Poisson mean of noise trades per block, over all pools
NOISE_CAP = 8  # a noise trade is at most this many times its pool's median size
THIN_NOISE_WEIGHT = 0.2  # the thin pool's share of noise trades, against 1 for each deep pool
RECENTER_COOLDOWN = 12 * 3600  # the liquidity provider moves a pool's positions at most this often
REALIGNED = 0.15  # an arbitrage that closes a deviation this large is a world event (`pool_realigned`)
LP_INVENTORY = 2.5  # the liquidity provider holds this many times its capital per side, per pool
ARB_INVENTORY = 2.0  # the arbitrageur: this many times a pool's capital per side, of the token and of USDC
TRADER_USD = 300_000.0  # each trader, per deep pool's token and in USDC x 5; the thin pool's: 1/100 of it
RESIDUE_SHIFT = 10  # an xStock amount paid into a pool lowers its residue by at most 2**-10 of it (_receivable)
MINT_TRIES = 2_000  # amounts desired tried for a mint whose xStock side the pool receives whole
MINT_RESIDUE_SHIFT = 6  # a mint, rarer, may lower it by 2**-6 of it: found in fewer tries
DUST_SHARES = 1 << 16  # the most shares the liquidity provider sends a pool to lift its residue (`_lift`)
REFILL = 0.5  # an actor whose holding of a token is worth less than this share of its first is refilled
REFILL_EVERY = 4 * 3600  # refills come in the blocks of the proof-of-reserve reports (every four hours)
BIG = 2**200  # an input no pool takes whole: the swap stops at its price limit

GAS_TOKEN = 200_000


@dataclass
class Position:
    token_id: int
    lower: int
    upper: int
    liquidity: int
    half_width: float  # 0: the full range


@dataclass
class WorldPool:
    spec: PoolSpec
    address: str
    stock: str  # the token's address
    usdc: str
    stock_is_token0: bool
    decimals: int  # the token's
    state: PoolState
    gross: dict[int, int] = field(default_factory=dict)  # liquidityGross per initialized tick
    positions: list[Position] = field(default_factory=list)
    last_lp: int = 0  # time of the liquidity provider's last move in this pool

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def token0(self) -> str:
        return self.stock if self.stock_is_token0 else self.usdc

    @property
    def token1(self) -> str:
        return self.usdc if self.stock_is_token0 else self.stock

    def price(self, sqrt_price_x96: int | None = None) -> float:
        """USDC per whole token at a sqrt price (the pool's own by default)."""
        s = self.state.sqrt_price_x96 if sqrt_price_x96 is None else sqrt_price_x96
        raw = Fraction(s * s, 1 << 192)  # token1 units per token0 unit
        scale = Fraction(10**self.decimals, 10**USDC_DECIMALS)
        return float(raw * scale if self.stock_is_token0 else scale / raw)

    def sqrt_price_for(self, usd: float) -> int:
        """The sqrt price at which one whole token is worth `usd` USDC."""
        return sqrt_price_for(usd, self.decimals, self.stock_is_token0)


USDC_DECIMALS = next(t.decimals for t in TOKENS if t.symbol == POOL_QUOTE)


def sqrt_price_for(usd: float, decimals: int, stock_is_token0: bool) -> int:
    """The sqrt price (Q64.96) of a pool of a token of `decimals` and USDC at which one whole token is `usd`."""
    per_unit = Fraction(usd) * Fraction(10**USDC_DECIMALS, 10**decimals)  # USDC units per token unit
    raw = per_unit if stock_is_token0 else 1 / per_unit
    return isqrt(math.floor(raw * (1 << 192)))


def initial_sqrt_price(spec: PoolSpec, stock: str, usdc: str) -> int:
    """Where a pool starts: the token's starting price (its NAV when the world begins: no multiplier has moved)."""
    token = next(t for t in TOKENS if t.symbol == spec.token)
    return sqrt_price_for(token.price, token.decimals, int(stock, 16) < int(usdc, 16))


def pool_creation_txs(positions: str, tokens: dict[str, str]) -> list[Tx]:
    """The liquidity provider creates and initializes every pool through the position manager, at the deployment
    (`deploy.deploy_world`), so that a configuration written then finds them; creating a pool reads nothing from
    its tokens."""
    usdc = tokens[POOL_QUOTE]
    return [create_pool_tx(LIQUIDITY_PROVIDER, positions, *sorted_pair(tokens[spec.token], usdc), spec.fee,
                           initial_sqrt_price(spec, tokens[spec.token], usdc)) for spec in POOLS]


@dataclass
class LpBatch:
    """The liquidity provider's transactions of one move in a pool, in the order the simulation applied them:
    position-manager calls gathered into one `multicall`, cut where another transaction must come between (a
    dust transfer to the pool, `DexSim._lift`), so that the chain runs them in the simulation's order."""

    positions: str  # the position manager
    calls: list[bytes] = field(default_factory=list)
    txs: list[Tx] = field(default_factory=list)

    def send(self, tx: Tx) -> None:
        self._flush()
        self.txs.append(tx)

    def done(self) -> list[Tx]:
        self._flush()
        return self.txs

    def _flush(self) -> None:
        if self.calls:
            self.txs.append(multicall_tx(LIQUIDITY_PROVIDER, self.positions, self.calls))
            self.calls = []


def first_in_range(a: int, m: int, lo: int, hi: int) -> int | None:
    """The least x >= 0 with `lo <= (a x) mod m <= hi` (0 <= lo <= hi < m), or None: Euclid's reduction (no
    multiple of a in the interval: look for the least y with `(m y) mod a` in the interval reflected)."""
    a %= m
    if lo == 0:
        return 0
    if a == 0:
        return None
    k = -(-lo // a)
    if k * a <= hi:
        return k
    y = first_in_range(m % a, a, (-hi) % a, (-lo) % a)
    return None if y is None else -(-(lo + m * y) // a)


class DexSim:
    """The pools, their actors' books and their plan, block by block (driven by `WorldSim`)."""

    def __init__(self, sim: WorldSim) -> None:
        self.rng = np.random.default_rng([sim.seed, 19])
        self.uniswap = dict(sim.dep.uniswap)
        self.index = {t.symbol: i for i, t in enumerate(TOKENS)}
        # units per holder (the actors and the pools) and token: shares for xStocks, raw balances otherwise
        self.units: dict[str, dict[str, int]] = {}
        self.pools: dict[str, WorldPool] = {}
        self.next_token_id = 1  # the position manager's first token id
        self.withdrawn: dict[str, Any] | None = None  # the crash window's terms while the liquidity is out
        self.restoring: dict[str, float] = {}  # pools the liquidity provider comes back to: the share taken out
        self.session_log_fair = np.array(sim.log_fair)  # the fair log prices at the last block in session
        self.busy: set[str] = set()  # pools with a transaction in the block being planned
        self.planned = 0  # pool transactions planned (swaps, liquidity moves), after the initial distribution
        self.holdings = self.actor_holdings()
        self.refills = 0  # the issuers' mints refilling an actor
        self.recentred = 0  # the liquidity provider's re-centrings (routine: not world events)
        self.lifts = 0  # dust the liquidity provider sent a pool so that it received an xStock mint whole

    # -- books ----------------------------------------------------------------------------------
    def _rebasing(self, sim: WorldSim, sym: str) -> bool:
        return sim.specs[sym].accounting == Accounting.REBASING_SHARES

    def balance(self, sim: WorldSim, holder: str, sym: str, t: int) -> int:
        """balanceOf(holder) of the token as its contract reports it at time t."""
        units = self.units.get(holder, {}).get(sym, 0)
        return balance_from_shares(units, sim.multiplier(sym, t)) if self._rebasing(sim, sym) else units

    def _units_of(self, sim: WorldSim, sym: str, amount: int, t: int) -> int:
        return shares_from_amount(amount, sim.multiplier(sym, t)) if self._rebasing(sim, sym) else amount

    def _move(self, sim: WorldSim, sym: str, src: str, dst: str, amount: int, t: int) -> None:
        """`transfer(dst, amount)` from src: the shares `floor(amount * 1e18 / m)` for an xStock."""
        if amount == 0:
            return
        units = self._units_of(sim, sym, amount, t)
        held = self.units[src].get(sym, 0)
        assert held >= units, (sym, src, amount)
        self.units[src][sym] = held - units
        self.units.setdefault(dst, {})[sym] = self.units.get(dst, {}).get(sym, 0) + units
        sim.transfers_planned += 1

    def _received_whole(self, sim: WorldSim, sym: str, holder: str, amount: int, t: int) -> bool:
        """Does `holder`'s balance grow by all of `amount` when it is sent (the check a pool makes)?"""
        if not self._rebasing(sim, sym):
            return True
        m = sim.multiplier(sym, t)
        held = self.units.get(holder, {}).get(sym, 0)
        return (held + amount * WAD // m) * m // WAD - held * m // WAD >= amount

    def _residue(self, sim: WorldSim, sym: str, holder: str, t: int) -> tuple[int, int]:
        """(m, r): the token's multiplier at t and `(S m) mod W` of the holder's shares S."""
        m = sim.multiplier(sym, t)
        return m, self.units.get(holder, {}).get(sym, 0) * m % WAD

    def _receivable(self, sim: WorldSim, sym: str, holder: str, amount: int, t: int) -> int:
        """The largest amount up to `amount` that `holder` receives whole and that leaves it able to receive the
        next ones (0 when there is none).

        With S the holder's shares, the balance grows by `floor((S + floor(a W / m)) m / W) - floor(S m / W)`,
        which is at least `a` exactly when `e(a) = (a W) mod m <= r = (S m) mod W` (write `a W = s m + e`), and
        the holder's r is `r - e` after it. So the amount is taken with `e <= min(r, m) / 1024`: r loses at most
        a thousandth of itself (payouts, which add their `e`, move it around). One unit less lowers `e` by
        `W mod m` modulo m, so the nearest such amount is `amount - j` for the least j with `(j (W mod m)) mod m`
        in `[e - T, e]` (`first_in_range`, Euclid's way)."""
        if amount <= 0 or not self._rebasing(sim, sym):
            return max(amount, 0)
        m, r = self._residue(sim, sym, holder, t)
        e, step, most = amount * WAD % m, WAD % m, min(r, m) >> RESIDUE_SHIFT
        if e <= most or step == 0:
            return amount if e <= r else 0
        j = first_in_range(step, m, e - most, e)
        if j is None or j >= amount:
            return 0
        assert self._received_whole(sim, sym, holder, amount - j, t)
        return amount - j

    # -- prices ---------------------------------------------------------------------------------
    def nav(self, sim: WorldSim, sym: str, t: int) -> float:
        """USD per whole token: the share price for an xStock (one token is one share), the share price times
        the multiplier for an ERC-8056 token (its raw unit is multiplier / 1e18 shares)."""
        price = sim.share_price(self.index[sym])
        if sim.specs[sym].accounting == Accounting.UI_MULTIPLIER:
            price *= sim.multiplier(sym, t) / WAD
        return price

    def target(self, sim: WorldSim, pool: WorldPool, t: int, in_session: bool) -> float:
        """Where the arbitrageur takes the pool: NAV in session; while the market is closed, NAV less half its
        move since the session (the pools guess, the oracle stands still); at a discount in the crash window."""
        i = self.index[pool.spec.token]
        value = self.nav(sim, pool.spec.token, t)
        if not in_session:
            value *= math.exp(-(1.0 - KAPPA) * float(sim.log_fair[i] - self.session_log_fair[i]))
        if self.withdrawn is not None:
            value *= 1.0 - self.withdrawn["thin_discount_bp" if pool.spec.thin else "discount_bp"] / 10_000
        return value

    # -- the initial distribution ---------------------------------------------------------------
    def actor_holdings(self) -> dict[tuple[str, str], float]:
        """(holder, token) -> USD the issuer mints to the actors at the start (and refills to, `_refill`)."""
        out: dict[tuple[str, str], float] = {}
        for spec in POOLS:
            out[(LIQUIDITY_PROVIDER, spec.token)] = LP_INVENTORY * spec.usd_per_side
            out[(ARBITRAGEUR, spec.token)] = ARB_INVENTORY * spec.usd_per_side
            out |= {(w, spec.token): TRADER_USD / (100 if spec.thin else 1) for w in TRADERS}
        out[(LIQUIDITY_PROVIDER, POOL_QUOTE)] = LP_INVENTORY * sum(p.usd_per_side for p in POOLS)
        out[(ARBITRAGEUR, POOL_QUOTE)] = ARB_INVENTORY * sum(p.usd_per_side for p in POOLS)
        out |= {(w, POOL_QUOTE): 5 * TRADER_USD for w in TRADERS}
        return out

    def _mint_to(self, sim: WorldSim, holder: str, sym: str, amount: int, t: int) -> Tx:
        """The issuer's `mint(holder, amount)`; the supply counts it (the world's holders, the actors, the pools)."""
        units = self._units_of(sim, sym, amount, t)
        self.units.setdefault(holder, {})[sym] = self.units.get(holder, {}).get(sym, 0) + units
        sim.total_units[sym] += units
        sim.transfers_planned += 1
        return sim._token_call(sym, "mint", holder, amount, gas=GAS_TOKEN)

    def _refill(self, sim: WorldSim, t: int, plan: BlockPlan) -> None:
        """An actor left with less than `REFILL` of its first holding's worth of a token gets it back from the
        issuer (an authorized participant's creation; USDC from its issuer): the arbitrageur is the other side
        of every move of the price, and the liquidity provider of every re-centring. Minted after the block's
        pool transactions (none spends it before the next block), in a block whose reserve reports (planned
        after the pools) count it: the supply never runs ahead of the proof of reserve."""
        if t % REFILL_EVERY:
            return
        for (holder, sym), usd in self.holdings.items():
            if not sim._can_move_token(sym, t):
                continue
            nav = 1.0 if sym == POOL_QUOTE else self.nav(sim, sym, t)
            unit = 10 ** sim.specs[sym].decimals
            value = self.balance(sim, holder, sym, t) / unit * nav
            if value < REFILL * usd:
                plan.txs.append(self._mint_to(sim, holder, sym, int((usd - value) / nav * unit), t))
                self.refills += 1

    def initial_txs(self, sim: WorldSim, t: int) -> list[Tx]:
        """The issuer's mints to the actors and their approvals of the position manager and the router; the
        pools, created at the deployment (`pool_creation_txs`), start in the books at their initial price."""
        txs = [self._mint_to(sim, holder, sym, sim._usd_units(sim.specs[sym], usd, t), t)
               for (holder, sym), usd in self.holdings.items()]
        spenders = {LIQUIDITY_PROVIDER: (self.uniswap["positions"],), ARBITRAGEUR: (self.uniswap["router"],),
                    **{w: (self.uniswap["router"],) for w in TRADERS}}
        for holder, to in spenders.items():
            for sym in (*(p.token for p in POOLS), POOL_QUOTE):
                txs += [sim._token_call(sym, "approve", spender, 2**256 - 1, gas=GAS_TOKEN, sender=holder)
                        for spender in to]
        usdc = sim.dep.tokens[POOL_QUOTE]
        for spec in POOLS:
            stock = sim.dep.tokens[spec.token]
            pool = WorldPool(spec, pool_address(self.uniswap["factory"], stock, usdc, spec.fee), stock, usdc,
                             int(stock, 16) < int(usdc, 16), sim.specs[spec.token].decimals,
                             PoolState(0, 0, 0, spec.fee, FEE_TIERS[spec.fee], {}))
            sqrt_price = initial_sqrt_price(spec, stock, usdc)
            pool.state = PoolState(sqrt_price, get_tick_at_sqrt_ratio(sqrt_price), 0, spec.fee, FEE_TIERS[spec.fee], {})
            self.pools[spec.name] = pool
            self.units.setdefault(pool.address, {})
        return txs

    def initial_positions(self, sim: WorldSim, t: int) -> list[Tx]:
        """The liquidity provider's first positions, one multicall per pool."""
        txs = []
        for pool in self.pools.values():
            batch = LpBatch(self.uniswap["positions"])
            self._mint_ranges(sim, pool, pool.spec.ranges, 1.0, t, batch)
            pool.last_lp = t
            txs += batch.done()
        return txs

    # -- one block ------------------------------------------------------------------------------
    def plan_block(self, sim: WorldSim, t: int, plan: BlockPlan) -> None:
        """Each pool's transaction of the block, if any (after the world's events, which may have taken some):
        the liquidity provider re-centring, else the arbitrageur, else perhaps a noise trade."""
        in_session = bool(sim.calendar.is_open(t) or sim.calendar.is_open(t - 1))
        for pool in self.pools.values():
            if pool.name in self.busy or not self._tradable(sim, pool, t):
                continue
            target = self.target(sim, pool, t, in_session)
            deviation = pool.price() / target - 1.0
            threshold = ARB_BP[pool.spec.fee] / 10_000
            if abs(deviation) <= threshold and pool.name in self.restoring:
                self._restore(sim, pool, t, plan)
            elif abs(deviation) <= threshold and self._needs_recentring(pool, t):
                self._recentre(sim, pool, t, plan)
            elif abs(deviation) > threshold and self._watched(pool, t):
                before = pool.price()
                if self._arbitrage(sim, pool, target, t, plan) and abs(deviation) > REALIGNED:
                    plan.events.append({"kind": "pool_realigned", "token": pool.spec.token, "timestamp": t,
                                        "pool": pool.name, "price_before": round(before, 6),
                                        "price_after": round(pool.price(), 6),
                                        "nav": round(self.nav(sim, pool.spec.token, t), 6)})
        self._noise(sim, t, plan)
        self._refill(sim, t, plan)
        if in_session:
            self.session_log_fair = np.array(sim.log_fair)
        self.busy.clear()

    def _watched(self, pool: WorldPool, t: int) -> bool:
        """Is the arbitrageur looking at the pool in this block: a deep one always, the thin one every few hours,
        and every block in the crash window."""
        return not pool.spec.thin or self.withdrawn is not None or t % THIN_ARB_EVERY == 0

    def _tradable(self, sim: WorldSim, pool: WorldPool, t: int) -> bool:
        return sim._can_move_token(pool.spec.token, t) and sim._can_move_token(POOL_QUOTE, t)

    def _send(self, plan: BlockPlan, pool: WorldPool, tx: Tx) -> None:
        plan.txs.append(tx)
        self.busy.add(pool.name)
        self.planned += 1

    # -- swaps ----------------------------------------------------------------------------------
    def _swap(self, sim: WorldSim, pool: WorldPool, trader: str, sell_stock: bool, amount: int, t: int,
              plan: BlockPlan, limit: int = 0) -> Quote | None:
        """`amount` of the token (sell) or of USDC (buy) through the router; None when the pool would not take
        it all or pay nothing, or would refuse it (an xStock received short of the amount)."""
        zero_for_one = sell_stock == pool.stock_is_token0
        sym_in, sym_out = (pool.spec.token, POOL_QUOTE) if sell_stock else (POOL_QUOTE, pool.spec.token)
        if amount <= 0 or amount > self.balance(sim, trader, sym_in, t):
            return None
        quote = quote_exact_input(pool.state, zero_for_one, amount, limit or None)
        if quote.amount_in != amount or quote.amount_out == 0 or \
                not self._received_whole(sim, sym_in, pool.address, amount, t):
            return None
        token_in, token_out = sim.dep.tokens[sym_in], sim.dep.tokens[sym_out]
        self._move(sim, sym_in, trader, pool.address, amount, t)
        self._move(sim, sym_out, pool.address, trader, quote.amount_out, t)
        pool.state = swapped(pool.state, quote)
        self._send(plan, pool, swap_tx(trader, self.uniswap["router"], token_in, token_out, pool.spec.fee, trader,
                                       amount, limit))
        return quote

    def _arbitrage(self, sim: WorldSim, pool: WorldPool, target: float, t: int, plan: BlockPlan) -> bool:
        """The arbitrageur's swap to the target price: the input the pool takes to reach it (computed on the
        pool's state), with the target as the price limit; for an xStock paid in, the largest amount up to it
        that the pool receives whole, which stops the swap a hair short of the target."""
        limit = pool.sqrt_price_for(target)
        if limit == pool.state.sqrt_price_x96:
            return False
        zero_for_one = limit < pool.state.sqrt_price_x96
        sell_stock = zero_for_one == pool.stock_is_token0
        sym_in = pool.spec.token if sell_stock else POOL_QUOTE
        need = quote_exact_input(pool.state, zero_for_one, BIG, limit).amount_in
        amount = min(need, self.balance(sim, ARBITRAGEUR, sym_in, t))
        amount = self._receivable(sim, sym_in, pool.address, amount, t)
        return amount > 0 and self._swap(sim, pool, ARBITRAGEUR, sell_stock, amount, t, plan, limit) is not None

    def _noise(self, sim: WorldSim, t: int, plan: BlockPlan) -> None:
        rng = self.rng
        pools = list(self.pools.values())
        if not pools:
            return
        weights = np.array([THIN_NOISE_WEIGHT if p.spec.thin else 1.0 for p in pools])
        for _ in range(int(rng.poisson(NOISE_PER_BLOCK))):
            pool = pools[int(rng.choice(len(pools), p=weights / weights.sum()))]
            trader = TRADERS[int(rng.integers(len(TRADERS)))]
            sell = bool(rng.random() < 0.5)
            usd = min(pool.spec.trade_usd * math.exp(float(rng.standard_normal())), NOISE_CAP * pool.spec.trade_usd)
            if self.withdrawn is not None:  # traders size their orders to the liquidity left
                usd *= 1.0 - self.withdrawn["share"]
            if pool.name in self.busy or not self._tradable(sim, pool, t):
                continue
            if sell:
                amount = int(usd / pool.price() * 10**pool.decimals)
                amount = self._receivable(sim, pool.spec.token, pool.address,
                                          min(amount, self.balance(sim, trader, pool.spec.token, t)), t)
            else:
                amount = int(usd * 10**USDC_DECIMALS)
            self._swap(sim, pool, trader, sell, amount, t, plan)

    # -- liquidity ------------------------------------------------------------------------------
    def _range_ticks(self, pool: WorldPool, half_width: float) -> tuple[int, int]:
        spacing = pool.state.tick_spacing
        low, high = full_range_ticks(spacing)
        if half_width == 0:
            return low, high
        width = math.ceil(math.log1p(half_width) / math.log(1.0001))
        tick = pool.state.tick
        lower = max(low, (tick - width) // spacing * spacing)
        upper = min(high, -(-(tick + width) // spacing) * spacing)
        return lower, upper

    def _mint_ranges(self, sim: WorldSim, pool: WorldPool, ranges: tuple[tuple[float, float], ...], scale: float,
                     t: int, batch: LpBatch) -> None:
        """Mints of `ranges` (half width, share of the capital) centred on the pool's price, each with `scale` x
        its share of the pool's capital per side, into `batch`; the books and the pool follow."""
        price = pool.price()
        for half_width, share in ranges:
            usd = pool.spec.usd_per_side * share * scale
            want_stock = int(usd / price * 10**pool.decimals)
            want_usdc = int(usd * 10**USDC_DECIMALS)
            call = self._mint(sim, pool, half_width, want_stock, want_usdc, t, batch)
            if call is not None:
                batch.calls.append(call)

    def _mint(self, sim: WorldSim, pool: WorldPool, half_width: float, want_stock: int, want_usdc: int,
              t: int, batch: LpBatch) -> bytes | None:
        """One mint through the position manager: the liquidity it computes from the amounts desired
        (`getLiquidityForAmounts` at the pool's price), the amounts the pool takes for it; the amounts desired
        nudged down until the pool receives the xStock whole."""
        lower, upper = self._range_ticks(pool, half_width)
        lp, sym = LIQUIDITY_PROVIDER, pool.spec.token
        stock = min(want_stock, self.balance(sim, lp, sym, t) - 1)
        usdc = min(want_usdc, self.balance(sim, lp, POOL_QUOTE, t) - 1)
        best = self._mint_amounts(sim, pool, lower, upper, stock, usdc, t)
        if best is None and self._rebasing(sim, sym) and self._lift(sim, pool, t, batch):
            best = self._mint_amounts(sim, pool, lower, upper, stock, usdc, t)
        if best is None:
            return None
        d0, d1, liquidity, paid_stock, paid_usdc = best
        assert self._received_whole(sim, sym, pool.address, paid_stock, t)
        self._move(sim, sym, lp, pool.address, paid_stock, t)
        self._move(sim, POOL_QUOTE, lp, pool.address, paid_usdc, t)
        pool.state = with_liquidity(pool.state, pool.gross, lower, upper, liquidity)
        pool.positions.append(Position(self.next_token_id, lower, upper, liquidity, half_width))
        self.next_token_id += 1
        return mint_call(pool.token0, pool.token1, pool.spec.fee, lower, upper, d0, d1, lp)

    def _mint_amounts(self, sim: WorldSim, pool: WorldPool, lower: int, upper: int, stock: int, usdc: int,
                      t: int) -> tuple[int, int, int, int, int] | None:
        """(amount0Desired, amount1Desired, liquidity, token paid, USDC paid) of a mint of at most `stock` and
        `usdc` whose xStock side the pool receives whole, preferably leaving its residue nearly as it was
        (`_receivable`); the amounts desired nudged down a little at a time until one does. None: none does."""
        sym = pool.spec.token
        sqrt_lower, sqrt_upper = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)
        m, r = self._residue(sim, sym, pool.address, t)
        rebasing = self._rebasing(sim, sym)
        has_stock = self.balance(sim, LIQUIDITY_PROVIDER, sym, t)
        has_usdc = self.balance(sim, LIQUIDITY_PROVIDER, POOL_QUOTE, t)
        best = None  # the first that passes, replaced by the first that also leaves the residue nearly whole
        for _ in range(MINT_TRIES):
            if stock <= 0 or usdc <= 0:
                break
            d0, d1 = (stock, usdc) if pool.stock_is_token0 else (usdc, stock)
            liquidity = liquidity_for_amounts(pool.state.sqrt_price_x96, sqrt_lower, sqrt_upper, d0, d1)
            if liquidity == 0:
                break
            a0, a1 = position_amounts(pool.state, lower, upper, liquidity)
            paid_stock, paid_usdc = (a0, a1) if pool.stock_is_token0 else (a1, a0)
            e = paid_stock * WAD % m if rebasing else 0
            if e <= r and paid_stock <= has_stock and paid_usdc <= has_usdc:
                best = best or (d0, d1, liquidity, paid_stock, paid_usdc)
                if e <= min(r, m) >> MINT_RESIDUE_SHIFT:
                    return d0, d1, liquidity, paid_stock, paid_usdc
            stock -= max(1, stock // 10**7)
            usdc -= max(1, usdc // 10**7)
        return best

    def _lift(self, sim: WorldSim, pool: WorldPool, t: int, batch: LpBatch) -> bool:
        """The liquidity provider sends the pool a few shares of its xStock (`transferShares`, exact) so that the
        pool's residue `(S m) mod W` is near its top and any amount then reaches it whole: adding k shares moves
        the residue by `k m mod W`, a small step each time it wraps, so a k under `DUST_SHARES` lands in the
        top 1/256 of the range."""
        sym = pool.spec.token
        m, _ = self._residue(sim, sym, pool.address, t)
        held = self.units[pool.address].get(sym, 0)
        top = WAD - (WAD >> 8)
        k = next((k for k in range(1, DUST_SHARES) if (held + k) * m % WAD >= top), None)
        if k is None or self.units[LIQUIDITY_PROVIDER].get(sym, 0) < k:
            return False
        self.units[LIQUIDITY_PROVIDER][sym] -= k
        self.units[pool.address][sym] = held + k
        sim.transfers_planned += 1
        batch.send(sim._token_call(sym, "transferShares", pool.address, k, gas=GAS_TOKEN, sender=LIQUIDITY_PROVIDER))
        self.lifts += 1
        return True

    def _decrease(self, sim: WorldSim, pool: WorldPool, position: Position, liquidity: int, t: int,
                  batch: LpBatch) -> None:
        """`decreaseLiquidity` of a position, then `collect` of exactly what it freed (the fees earned stay in
        the pool, owed to the position), into `batch`."""
        if liquidity <= 0:
            return
        a0, a1 = position_amounts(pool.state, position.lower, position.upper, -liquidity)
        pool.state = with_liquidity(pool.state, pool.gross, position.lower, position.upper, -liquidity)
        position.liquidity -= liquidity
        batch.calls.append(decrease_call(position.token_id, liquidity))
        if a0 or a1:
            batch.calls.append(collect_call(position.token_id, LIQUIDITY_PROVIDER, a0, a1))
            paid_stock, paid_usdc = (a0, a1) if pool.stock_is_token0 else (a1, a0)
            self._move(sim, pool.spec.token, pool.address, LIQUIDITY_PROVIDER, paid_stock, t)
            self._move(sim, POOL_QUOTE, pool.address, LIQUIDITY_PROVIDER, paid_usdc, t)

    def _needs_recentring(self, pool: WorldPool, t: int) -> bool:
        """The price has left every one of the narrowest ranges the provider holds (they earn nothing)."""
        if self.withdrawn is not None or t - pool.last_lp < RECENTER_COOLDOWN:
            return False
        narrow = [p for p in pool.positions if p.half_width > 0 and p.liquidity > 0]
        if not narrow:
            return False
        narrowest = min(p.half_width for p in narrow)
        tick = pool.state.tick
        return not any(p.lower <= tick < p.upper for p in narrow if p.half_width == narrowest)

    def _recentre(self, sim: WorldSim, pool: WorldPool, t: int, plan: BlockPlan, batch: LpBatch | None = None) -> None:
        """Every narrower range out (decrease all, collect), minted again around the price, in one multicall
        (after what `batch` holds already)."""
        if batch is None:
            batch = LpBatch(self.uniswap["positions"])
        for position in pool.positions:
            if position.half_width > 0:
                self._decrease(sim, pool, position, position.liquidity, t, batch)
        self._mint_ranges(sim, pool, tuple(r for r in pool.spec.ranges if r[0] > 0), 1.0, t, batch)
        pool.positions = [p for p in pool.positions if p.liquidity > 0]
        pool.last_lp = t
        for tx in batch.done():
            self._send(plan, pool, tx)
        self.recentred += 1

    # -- the world's scheduled pool events --------------------------------------------------------
    def on_withdrawn(self, sim: WorldSim, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """The liquidity provider takes `share` of every position out of every pool; the discounts hold until
        the liquidity comes back."""
        num, den = (int(x) for x in ev.detail["share"].split("/"))
        done = []
        for pool in self.pools.values():
            if pool.name in self.busy or not self._tradable(sim, pool, t):
                continue
            batch = LpBatch(self.uniswap["positions"])
            for position in pool.positions:
                self._decrease(sim, pool, position, position.liquidity * num // den, t, batch)
            pool.last_lp = t
            for tx in batch.done():
                self._send(plan, pool, tx)
            done.append(pool.name)
        self.withdrawn = {"share": num / den, "discount_bp": ev.detail["discount_bp"],
                          "thin_discount_bp": ev.detail["thin_discount_bp"]}
        record.update(pools=done, share=ev.detail["share"], discount_bp=ev.detail["discount_bp"],
                      thin_discount_bp=ev.detail["thin_discount_bp"], until=ev.detail["until"])

    def on_restored(self, sim: WorldSim, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """The crash window ends: no more discount (the arbitrage takes each pool back to NAV in this block), and
        the liquidity provider comes back to each pool once it is there (`_restore`, in a later block)."""
        self.restoring = {name: self.withdrawn["share"] if self.withdrawn else 0.0 for name in self.pools}
        self.withdrawn = None
        record["pools"] = list(self.restoring)

    def _restore(self, sim: WorldSim, pool: WorldPool, t: int, plan: BlockPlan) -> None:
        """Back in the pool at NAV: the narrower ranges re-centred (`_recentre`) and the full range topped up by
        what was taken out of it."""
        share = self.restoring.pop(pool.name)
        batch = LpBatch(self.uniswap["positions"])
        self._mint_ranges(sim, pool, tuple(r for r in pool.spec.ranges if r[0] == 0), share, t, batch)
        self._recentre(sim, pool, t, plan, batch)

    def on_thin_buy(self, sim: WorldSim, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """A retail-sized buy of the thin pool's token (USDC in, no price limit)."""
        pool = next(p for p in self.pools.values() if p.spec.token == ev.token)
        before = pool.price()
        amount = int(ev.detail["usd"] * 10**USDC_DECIMALS)
        trader = TRADERS[0]
        if pool.name in self.busy or not self._tradable(sim, pool, t) or \
                self._swap(sim, pool, trader, False, amount, t, plan) is None:
            record.update(pool=pool.name, usd=ev.detail["usd"], skipped=True)
            return
        record.update(pool=pool.name, trader=trader, usd=ev.detail["usd"], price_before=round(before, 6),
                      price_after=round(pool.price(), 6), nav=round(self.nav(sim, ev.token, t), 6))
