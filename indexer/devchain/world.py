"""The demo world as a deterministic simulation: pure Python, no I/O.

`WorldSim` plays the world forward block by block and returns, for each block, the transactions to
send (`BlockPlan`). It keeps its own books (balances, shares, multipliers, supplies) with the same
integer rules the contracts use, so every transaction it plans succeeds on chain. Given the same
seed, scale and deployed addresses it plans the same chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from eth_abi import encode
from eth_utils import keccak

from indexer.accounting import (
    WAD,
    RebasingParams,
    UiMultiplierUpdate,
    balance_from_shares,
    rebasing_fold,
    rebasing_multiplier_at,
    shares_from_amount,
    ui_multiplier_at,
)
from indexer.chain.abi import load_abi
from indexer.devchain.pools import DexSim
from indexer.devchain.specs import (
    CRASH_DAYS,
    CRYPTO,
    DAY,
    PRICE_DECIMALS,
    RESERVE_DECIMALS,
    SANCTIONED,
    TOKENS,
    WHALES,
    Scale,
    ScheduledEvent,
    Timeline,
    TokenSpec,
    scheduled_events,
)
from indexer.devchain.txs import Tx
from indexer.devchain.vaults import VAULT_CONTRACT, VAULT_SYMBOLS, VaultSim
from indexer.risk.calendar import xnys
from indexer.types import Accounting

YEAR = 365 * DAY
MAX_BATCH = 400  # transfers per batchForcedTransfer / batchMint / disperse transaction
MAX_UINT = 2**256 - 1
CONTRACT_ABI = {"xstock": "XStockV4", "scaled_ui": "ScaledUiStock", "scaled_ui_draft": "ScaledUiStockDraft",
                 "b20": "B20Asset", "plain": "PlainToken"}



def token_contract(symbol: str) -> str:
    """The name of the ABI (in indexer/abis) of the world's token `symbol` (a vault's: StockVault)."""
    if symbol in VAULT_SYMBOLS:
        return VAULT_CONTRACT
    return CONTRACT_ABI[next(t.contract for t in TOKENS if t.symbol == symbol)]


GAS_TRANSFER = 150_000
GAS_TRANSMIT = 250_000
GAS_ADMIN = 500_000


def gas_for_batch(n: int) -> int:
    return 80_000 + 75_000 * n


@dataclass
class BlockPlan:
    timestamp: int
    txs: list[Tx] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # world events happening in this block


@dataclass
class Deployment:
    """Addresses the simulation needs: one per token, per feed, plus the actors."""

    issuer: str  # owner, minter, burner, pauser and multiplier updater of the tokens; ProxyAdmin owner
    updater: str  # owner and transmitter of the feeds
    sanctions_list: str
    tokens: dict[str, str]  # symbol -> address (an xStock's: its proxy)
    price_feeds: dict[str, str]  # feed name -> its proxy
    reserve_feeds: dict[str, str]  # token symbol -> its proof-of-reserve feed proxy
    deployed_at: int  # timestamp of the deployment block: rebasing fee periods count from it
    factory: str = ""
    proxy_admin: str = ""
    implementations: dict[str, str] = field(default_factory=dict)  # XStockV3, XStockV4
    disperse: str = ""
    aggregators: dict[str, list[str]] = field(default_factory=dict)  # feed name -> aggregator per phase
    # Uniswap v3 as published: factory, positions (the NonfungiblePositionManager), router, quoter, lens; none
    # deployed: a world without pools
    uniswap: dict[str, str] = field(default_factory=dict)
    pools: dict[str, str] = field(default_factory=dict)  # pool name (specs.PoolSpec.name) -> address
    vaults: dict[str, str] = field(default_factory=dict)  # ERC-4626 vault symbol (specs.VaultSpec) -> address; none: no vault

    @property
    def market_maker(self) -> str:
        """The wallet that receives the issuer's mints and distributes them (disperse.app-style)."""
        return "0x" + keccak(b"collateral-indexer/world/market-maker")[-20:].hex()


def wallet_address(seed: int, index: int) -> str:
    return "0x" + keccak(f"collateral-indexer/world/{seed}/wallet/{index}".encode())[-20:].hex()


def price_feed_name(spec: TokenSpec) -> str:
    return f"{spec.symbol}/USD" if spec.quote == "per_token" else f"{spec.underlying}/USD"


def reserve_feed_name(symbol: str) -> str:
    return f"{symbol} PoR"


def _factor_loadings() -> tuple[np.ndarray, np.ndarray]:
    eq = np.array([t.equity_loading for t in TOKENS] + [c.equity_loading for c in CRYPTO])
    cr = np.array([t.crypto_loading for t in TOKENS] + [c.crypto_loading for c in CRYPTO])
    return eq, cr


class WorldSim:
    """Deterministic world: wallets, balances, prices and dated events."""

    def __init__(self, seed: int, scale: Scale, timeline: Timeline, deployment: Deployment):
        self.seed = seed
        self.scale = scale
        self.tl = timeline
        self.dep = deployment
        self.rng = np.random.default_rng(seed)
        self.calendar = xnys()
        self.wallets = [wallet_address(seed, i) for i in range(scale.wallets)]
        self.token_abi = {t.symbol: load_abi(CONTRACT_ABI[t.contract]) for t in TOKENS}
        self.aggregator_abi = load_abi("OcrAggregatorWithFaults")
        self.proxy_abi = load_abi("FeedProxy")
        self.sanctions_abi = load_abi("ChainalysisOracle")
        self.admin_abi = load_abi("ProxyAdmin")
        self.disperse_abi = load_abi("Disperse")
        self.specs = {t.symbol: t for t in TOKENS}
        # books: per token, wallet index -> raw balance (plain, ui) or shares (rebasing); after the tokens, the
        # vaults' shares (vaults.py), which only the vaults' moves change
        booked = [t.symbol for t in TOKENS] + sorted(VAULT_SYMBOLS)
        self.units: dict[str, dict[int, int]] = {s_: {} for s_ in booked}
        self.holders: dict[str, list[int]] = {s_: [] for s_ in booked}
        self._holder_pos: dict[str, dict[int, int]] = {s_: {} for s_ in booked}
        self.total_units: dict[str, int] = {s_: 0 for s_ in booked}
        # an xStock's stored multiplier state, as its initializer leaves it (fee clock from the deployment)
        self.rebasing: dict[str, RebasingParams] = {
            t.symbol: RebasingParams(WAD, deployment.deployed_at - 1, t.fee_per_period, t.period_length,
                                     new_multiplier=WAD, last_nonce=0, new_nonce=0)
            for t in TOKENS if t.accounting == Accounting.REBASING_SHARES
        }
        self.explicit_updates: dict[str, list[tuple[int, int, int]]] = {s_: [] for s_ in self.rebasing}
        self.ui_updates: dict[str, list[UiMultiplierUpdate]] = {
            t.symbol: [] for t in TOKENS if t.accounting == Accounting.UI_MULTIPLIER
        }
        self.held_by_issuer: dict[str, int] = {s_: 0 for s_ in self.rebasing}  # shares sent to the burner
        self.held_by_maker: dict[str, int] = {s_: 0 for s_ in self.rebasing}  # shares of the market maker
        self.frozen: dict[str, set[int]] = {t.symbol: set() for t in TOKENS}
        self.sanctioned: set[int] = set()
        self.paused: set[str] = set()
        self.paused_until: dict[str, int] = {}  # xStocks paused with setPause, until
        self.oracle_paused_until: dict[str, int] = {}  # ERC-8056 tokens whose issuer paused their oracle
        self.quiet_until: dict[str, int] = {}  # no transaction touches the token before this time
        self.reserve_coverage: dict[str, tuple[int, int]] = {}
        self.stalled_until: dict[str, int] = {}
        self.pending_incomplete: set[str] = set()
        self.pending_zero: set[str] = set()
        self.phase = 1  # of every feed proxy
        self.report_counter: dict[str, int] = {}  # per aggregator: the OCR epoch-and-round of its last report
        self.aggregator_rounds: dict[str, int] = {}  # per aggregator: rounds published
        self.split_factor: dict[str, float] = {t.symbol: 1.0 for t in TOKENS}  # share-price divisor
        # fair value per original share (log), then the crypto pairs
        self.log_fair = np.log(np.array([t.price for t in TOKENS] + [c.price for c in CRYPTO]))
        self.vols = np.array([t.vol for t in TOKENS] + [c.vol for c in CRYPTO])
        eq, cr = _factor_loadings()
        self.eq_loading, self.cr_loading = eq, cr
        self.idio = np.sqrt(np.clip(1.0 - eq**2 - cr**2, 0.05, None))
        self.crash = {day: (e, c) for day, e, c in CRASH_DAYS}
        self.events = scheduled_events(timeline)
        self._next_event = 0
        self.last_time = timeline.start
        self.block_index = 0
        self.transfers_planned = 0
        self.rounds_planned: dict[str, int] = {}
        self._m_cache: dict[tuple[str, int], int] = {}
        self._pending_splits: list[tuple[int, str, float]] = []
        self.last_plan = BlockPlan(timestamp=0)
        # the DEX pools and their actors (pools.py), with draws of their own: the rest of the world is the same
        self.dex = DexSim(self) if deployment.uniswap else None
        # the ERC-4626 vault and its depositors (vaults.py), with draws of their own as well
        self.vault = VaultSim(self) if deployment.vaults else None

    # -- books --------------------------------------------------------------------------------
    def _credit(self, sym: str, w: int, units: int) -> None:
        book = self.units[sym]
        before = book.get(w, 0)
        book[w] = before + units
        self.total_units[sym] += units
        if before == 0 and units > 0:
            self._holder_pos[sym][w] = len(self.holders[sym])
            self.holders[sym].append(w)

    def _debit(self, sym: str, w: int, units: int) -> None:
        book = self.units[sym]
        after = book[w] - units
        assert after >= 0, (sym, w, units)
        book[w] = after
        self.total_units[sym] -= units
        if after == 0:
            del book[w]
            pos = self._holder_pos[sym].pop(w)
            last = self.holders[sym].pop()
            if last != w:
                self.holders[sym][pos] = last
                self._holder_pos[sym][last] = pos

    def multiplier(self, sym: str, t: int) -> int:
        spec = self.specs.get(sym)
        if spec is None:  # a vault's shares: plain units
            return WAD
        if spec.accounting == Accounting.REBASING_SHARES:
            key = (sym, t)
            m = self._m_cache.get(key)
            if m is None:
                m = self._m_cache[key] = rebasing_multiplier_at(self.rebasing[sym], t)[0]
            return m
        if spec.accounting == Accounting.UI_MULTIPLIER:
            return ui_multiplier_at(self.ui_updates[sym], t)
        return WAD

    def balance(self, sym: str, w: int, t: int) -> int:
        """balanceOf(wallet) as the contract reports it at time t."""
        units = self.units[sym].get(w, 0)
        if sym in self.specs and self.specs[sym].accounting == Accounting.REBASING_SHARES:
            return balance_from_shares(units, self.multiplier(sym, t))
        return units

    def all_shares(self, sym: str) -> int:
        """Every share of an xStock: the holders', the market maker's and the burner's."""
        return self.total_units[sym] + self.held_by_maker.get(sym, 0) + self.held_by_issuer.get(sym, 0)

    def shares_outstanding(self, sym: str, t: int) -> int:
        """Underlying shares (18 decimals) the token's supply stands for: what a reserve must cover."""
        spec = self.specs[sym]
        m = self.multiplier(sym, t)
        if spec.accounting == Accounting.REBASING_SHARES:
            balance = balance_from_shares(self.all_shares(sym), m)  # totalSupply: shares x multiplier
            return balance * 10**RESERVE_DECIMALS // 10**spec.decimals
        return self.total_units[sym] * m // WAD * 10**RESERVE_DECIMALS // 10**spec.decimals

    # -- transactions -------------------------------------------------------------------------
    def _token_call(self, sym: str, fn: str, *args: Any, gas: int = GAS_ADMIN, sender: str | None = None) -> Tx:
        return Tx(sender or self.dep.issuer, self.dep.tokens[sym], self.token_abi[sym].fn(fn).encode(*args), gas)

    def _aggregator(self, feed: str) -> str:
        return self.dep.aggregators[feed][self.phase - 1]

    def _report(self, aggregator: str, answer: int) -> bytes:
        """An OCR report of one observation: (rawReportContext, rawObservers, observations), each report's
        epoch-and-round one above the aggregator's last."""
        n = self.report_counter[aggregator] = self.report_counter.get(aggregator, 0) + 1
        return encode(["bytes32", "bytes32", "int192[]"], [n.to_bytes(32, "big"), bytes(32), [answer]])

    def _transmit(self, feed: str, address: str | None, answer: int) -> Tx:
        """A report to the feed's current aggregator (`address` is the feed's proxy, not written to)."""
        self.rounds_planned[feed] = self.rounds_planned.get(feed, 0) + 1
        aggregator = self._aggregator(feed)
        self.aggregator_rounds[aggregator] = self.aggregator_rounds.get(aggregator, 0) + 1
        data = self.aggregator_abi.fn("transmit").encode(self._report(aggregator, answer), [], [], bytes(32))
        return Tx(self.dep.updater, aggregator, data, GAS_TRANSMIT)

    def _usd_units(self, spec: TokenSpec, usd: float, t: int) -> int:
        """Raw token units worth about `usd`, for minting: balance units, not shares."""
        per_token = spec.price if spec.accounting == Accounting.REBASING_SHARES else \
            spec.price * self.multiplier(spec.symbol, t) / WAD
        tokens = usd / max(per_token, 1e-9)
        return max(1, int(tokens * 10**spec.decimals))

    # -- the initial distribution ---------------------------------------------------------------
    def initial_mints(self, t: int) -> list[list[Tx]]:
        """Heavy-tailed holdings: a few whales, many small holders, each on a few tokens. Two stages, each
        mined in blocks of its own: the issuer's mints (to the holders of ERC-3643 tokens, to the market
        maker for xStocks, with its approval of Disperse; with the DEX pools, the mints to their actors, the
        actors' approvals and the pools' creation), then the market maker's distributions (and the liquidity
        provider's first positions)."""
        rng = self.rng
        n = self.scale.wallets
        holders = np.flatnonzero(rng.random(n) < self.scale.initial_holders)
        holders = np.union1d(holders, np.array(WHALES + SANCTIONED + (10, 11, 12)))
        per_token: dict[str, list[tuple[int, int]]] = {t_.symbol: [] for t_ in TOKENS}
        symbols = [t_.symbol for t_ in TOKENS]
        popularity = np.array([3, 3, 3, 2, 4, 3, 1.5, 2, 2, 2, 1.5, 1, 4], dtype=float)
        popularity /= popularity.sum()
        for w in holders:
            k = 1 + min(int(rng.pareto(1.5)), len(symbols) - 1)
            if w in WHALES:
                k = len(symbols)
            chosen = rng.choice(len(symbols), size=k, replace=False, p=popularity)
            for j in chosen:
                spec = TOKENS[j]
                usd = 50.0 * (1.0 + rng.pareto(1.16))  # Pareto tail, 80/20-like
                if w in WHALES:
                    usd = 5e6 * (1 + rng.random())
                usd = min(usd, 2e7)
                per_token[symbols[j]].append((int(w), self._usd_units(spec, usd, t)))
        # wallets in SANCTIONED and the frozen ones must hold the tokens their events touch
        for w in SANCTIONED:
            for sym in ("AAPLx", "MSTRx"):
                per_token[sym].append((w, self._usd_units(self.specs[sym], 25_000, t)))
        for w, sym in ((10, "MSFT"), (11, "MSFT"), (12, "AMZN")):
            per_token[sym].append((w, self._usd_units(self.specs[sym], 40_000, t)))
        mints, distributions = [], []
        maker = self.dep.market_maker
        for sym, rows in per_token.items():
            if self.specs[sym].contract == "xstock":
                total = sum(a for _, a in rows)
                self.held_by_maker[sym] += shares_from_amount(total, self.multiplier(sym, t))
                mints.append(self._token_call(sym, "mint", maker, total, gas=GAS_TRANSFER))
                mints.append(self._token_call(sym, "approve", self.dep.disperse, MAX_UINT, gas=GAS_TRANSFER,
                                              sender=maker))
                distributions += self._disperse(sym, rows, t)
                continue
            for i in range(0, len(rows), MAX_BATCH):
                chunk = rows[i:i + MAX_BATCH]
                for w, a in chunk:
                    self._credit(sym, w, a)
                mints.append(self._token_call(sym, "batchMint", [self.wallets[w] for w, _ in chunk],
                                              [a for _, a in chunk], gas=gas_for_batch(len(chunk))))
                self.transfers_planned += len(chunk)
        if self.dex is not None:  # the pools' actors funded and the pools created, then the first positions
            mints += self.dex.initial_txs(self, t)
            distributions += self.dex.initial_positions(self, t)
        if self.vault is not None:  # the vault's attacker funded, its depositors drawn (they deposit later)
            mints += self.vault.initial_txs(self, t)
        return [mints, distributions]

    def _disperse(self, sym: str, rows: list[tuple[int, int]], t: int) -> list[Tx]:
        """The market maker sends xStocks to wallets through Disperse: one transferFrom per leg."""
        txs = []
        m = self.multiplier(sym, t)
        for i in range(0, len(rows), MAX_BATCH):
            chunk = rows[i:i + MAX_BATCH]
            for w, a in chunk:
                shares = shares_from_amount(a, m)
                self.held_by_maker[sym] -= shares
                self._credit(sym, w, shares)
            data = self.disperse_abi.fn("disperseTokenSimple").encode(
                self.dep.tokens[sym], [self.wallets[w] for w, _ in chunk], [a for _, a in chunk])
            txs.append(Tx(self.dep.market_maker, self.dep.disperse, data, gas_for_batch(len(chunk))))
            self.transfers_planned += len(chunk)
        return txs

    # -- one block ----------------------------------------------------------------------------
    def next_block(self, t: int) -> BlockPlan:
        """Plan the block with timestamp `t` (strictly after the previous one)."""
        assert t > self.last_time or self.block_index == 0
        plan = BlockPlan(timestamp=t)
        self._m_cache.clear()
        # fold fee periods into the books as the contract would: values stay the same, loops stay short
        self.rebasing = {sym: rebasing_fold(p, t) for sym, p in self.rebasing.items()}
        self._advance_prices(self.last_time, t)
        self._fire_events(t, plan)
        self._end_pauses(t, plan)
        if self.vault is not None:  # before the transfers: a depositor's later moves see its balance after it
            self.vault.plan_block(self, t, plan)
        self._plan_burns(t, plan)
        self._plan_transfers(t, plan)
        if self.dex is not None:  # before the rounds: a reserve report counts what the pools' refills minted
            self._apply_due_splits(t)  # the pools price today's shares
            self.dex.plan_block(self, t, plan)
        self._plan_rounds(t, plan)
        self.last_time = t
        self.block_index += 1
        self.last_plan = plan
        return plan

    def _advance_prices(self, t0: int, t1: int) -> None:
        dt = max(t1 - t0, 0)
        if dt == 0:
            return
        z_eq, z_cr = self.rng.standard_normal(2)
        eps = self.rng.standard_normal(len(self.vols))
        shock = self.eq_loading * z_eq + self.cr_loading * z_cr + self.idio * eps
        sigma = self.vols * math.sqrt(dt / YEAR)
        move = sigma * shock - 0.5 * sigma**2
        day = t0 - (t0 % DAY)
        if day in self.crash:
            eq_move, cr_move = self.crash[day]
            frac = dt / DAY
            move += (self.eq_loading * eq_move / 0.7 + self.cr_loading * cr_move / 0.9) * frac
        self.log_fair += move

    def share_price(self, index: int) -> float:
        spec = TOKENS[index]
        return float(math.exp(self.log_fair[index])) / self.split_factor[spec.symbol]

    def _fire_events(self, t: int, plan: BlockPlan) -> None:
        while self._next_event < len(self.events) and self.events[self._next_event].at <= t:
            ev = self.events[self._next_event]
            self._next_event += 1
            plan.events.append(self._apply_event(ev, t, plan))

    def _apply_event(self, ev: ScheduledEvent, t: int, plan: BlockPlan) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": ev.kind, "token": ev.token, "timestamp": t}
        handler = getattr(self, f"_on_{ev.kind}")
        handler(ev, t, plan, record)
        return record

    # -- events of xStocks (Backed's auto-fee token) -------------------------------------------
    def _on_multiplier_scheduled(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """`updateMultiplierValue(new, current, activation)`: the ratio applies to the multiplier in force;
        the activation must come before the fee period's end (the contract's rule)."""
        num, den = (int(x) for x in ev.detail["ratio"].split("/"))
        activation = ev.detail["activation"]
        p = self.rebasing[ev.token]  # folded at t already
        current = rebasing_multiplier_at(p, t)[0]
        assert activation < p.last_time_fee_applied + p.period_length, "activation after the fee period"
        new_m = current * num // den
        self.rebasing[ev.token] = replace(p, new_multiplier=new_m, activation_time=activation, new_nonce=p.last_nonce + 1)
        self._record_update(ev.token, current, new_m, max(activation, t))
        plan.txs.append(self._token_call(ev.token, "updateMultiplierValue", new_m, current, activation))
        if not ev.detail.get("overrides"):
            self._split_price_at(ev.token, activation, num / den if num / den > 1.5 else 1.0)
        if ev.detail.get("quiet_days"):
            self.quiet_until[ev.token] = activation + ev.detail["quiet_days"] * DAY
        record.update(new_multiplier=str(new_m), activation_time=activation, ratio=ev.detail["ratio"])

    def _on_multiplier_updated(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """`updateMultiplierValue(new, current, 0)`: in force at once."""
        num, den = (int(x) for x in ev.detail["ratio"].split("/"))
        p = self.rebasing[ev.token]
        current = rebasing_multiplier_at(p, t)[0]
        new_m = current * num // den
        self.rebasing[ev.token] = replace(p, last_multiplier=new_m, new_multiplier=new_m, activation_time=0,
                                          last_nonce=p.last_nonce + 1, new_nonce=p.last_nonce + 1)
        self._record_update(ev.token, current, new_m, t)
        plan.txs.append(self._token_call(ev.token, "updateMultiplierValue", new_m, current, 0))
        record.update(new_multiplier=str(new_m), ratio=ev.detail["ratio"])

    def _record_update(self, sym: str, previous: int, new: int, activation: int) -> None:
        """The token's history of explicit updates (what `initialize_v4` is given at the upgrade); a pending
        entry is replaced, as the contract overwrites it."""
        history = self.explicit_updates[sym]
        if history and history[-1][2] > self.last_time:
            history[-1] = (previous, new, activation)
        else:
            history.append((previous, new, activation))

    def _on_fee_change(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """`updateFeePerPeriod(fee)`: folds what accrued, then charges the new fee; no event of its own."""
        fee = ev.detail["fee_per_period"]
        self.rebasing[ev.token] = replace(self.rebasing[ev.token], fee_per_period=fee)
        plan.txs.append(self._token_call(ev.token, "updateFeePerPeriod", fee))
        record["fee_per_period"] = str(fee)

    def _on_upgrade(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """Every xStock's proxy to the implementation with multiplier history, through the ProxyAdmin,
        with `initialize_v4(past explicit updates)` in the same call."""
        impl = self.dep.implementations[ev.detail["implementation"]]
        init = load_abi("XStockV4").fn("initialize_v4")
        for sym in sorted(self.rebasing):
            data = self.admin_abi.fn("upgradeAndCall").encode(self.dep.tokens[sym], impl,
                                                              init.encode_bytes(self.explicit_updates[sym]))
            plan.txs.append(Tx(self.dep.issuer, self.dep.proxy_admin, data, GAS_ADMIN * 2))
        record["implementation"] = impl

    def _on_xstock_pause(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        self.paused.add(ev.token)
        self.paused_until[ev.token] = ev.detail["until"]
        plan.txs.append(self._token_call(ev.token, "setPause", True))
        record["until"] = ev.detail["until"]

    def _end_pauses(self, t: int, plan: BlockPlan) -> None:
        for sym, until in list(self.paused_until.items()):
            if t >= until:
                del self.paused_until[sym]
                self.paused.discard(sym)
                plan.txs.append(self._token_call(sym, "setPause", False))
        for sym, until in list(self.oracle_paused_until.items()):
            if t >= until:
                del self.oracle_paused_until[sym]
                plan.txs.append(self._token_call(sym, "unpauseOracle"))

    # -- events of ERC-8056 and ERC-3643 tokens -----------------------------------------------
    def _on_ui_multiplier_scheduled(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        num, den = (int(x) for x in ev.detail["ratio"].split("/"))
        activation = ev.detail["activation"]
        new_m = ui_multiplier_at(self.ui_updates[ev.token], t) * num // den
        self.ui_updates[ev.token].append(UiMultiplierUpdate(new_m, activation, t))
        plan.txs.append(self._token_call(ev.token, "updateMultiplier(uint256,uint256)", new_m, activation))
        self._split_price_at(ev.token, activation, num / den if num / den > 1.5 else 1.0)
        record.update(new_multiplier=str(new_m), activation_time=activation, ratio=ev.detail["ratio"])

    def _on_ui_multiplier_updated(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        num, den = (int(x) for x in ev.detail["ratio"].split("/"))
        new_m = ui_multiplier_at(self.ui_updates[ev.token], t) * num // den
        self.ui_updates[ev.token].append(UiMultiplierUpdate(new_m, t, t))
        plan.txs.append(self._token_call(ev.token, "updateMultiplier(uint256)", new_m))
        record.update(new_multiplier=str(new_m), ratio=ev.detail["ratio"])

    def _on_oracle_pause(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        self.oracle_paused_until[ev.token] = ev.detail["until"]
        plan.txs.append(self._token_call(ev.token, "pauseOracle"))
        record["until"] = ev.detail["until"]

    def _on_freeze(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict, frozen: bool = True) -> None:
        for w in ev.detail["wallets"]:
            (self.frozen[ev.token].add if frozen else self.frozen[ev.token].discard)(w)
            plan.txs.append(self._token_call(ev.token, "setAddressFrozen", self.wallets[w], frozen))
        record["wallets"] = [self.wallets[w] for w in ev.detail["wallets"]]

    def _on_unfreeze(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        self._on_freeze(ev, t, plan, record, frozen=False)

    def _on_pause(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        self.paused.add(ev.token)
        plan.txs.append(self._token_call(ev.token, "pause"))

    def _on_sanction(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        addrs = [self.wallets[w] for w in ev.detail["wallets"]]
        self.sanctioned.update(ev.detail["wallets"])
        plan.txs.append(Tx(self.dep.issuer, self.dep.sanctions_list,
                           self.sanctions_abi.fn("addToSanctionsList").encode(addrs), GAS_ADMIN))
        record["wallets"] = addrs

    # -- events of the DEX pools (pools.py) -----------------------------------------------------
    def _on_pool_thin_buy(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        if self.dex is not None:
            self.dex.on_thin_buy(self, ev, t, plan, record)

    def _on_pool_liquidity_withdrawn(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        if self.dex is not None:
            self.dex.on_withdrawn(self, ev, t, plan, record)

    def _on_pool_liquidity_restored(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        if self.dex is not None:
            self.dex.on_restored(self, ev, t, plan, record)

    # -- the vault's event (vaults.py) ----------------------------------------------------------
    def _on_vault_donation(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        if self.vault is None:
            record["skipped"] = True
            return
        self.vault.on_donation(self, ev, t, plan, record)

    # -- events of feeds ----------------------------------------------------------------------
    def _on_reserve_shortfall(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        num, den = (int(x) for x in ev.detail["coverage"].split("/"))
        self.reserve_coverage[ev.token] = (num, den)
        record["coverage"] = ev.detail["coverage"]

    def _on_feed_stall(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        self.stalled_until[ev.token] = ev.detail["until"]
        record.update(feed=price_feed_name(self.specs[ev.token]), until=ev.detail["until"])

    def _on_incomplete_round(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        self.pending_incomplete.add(ev.token)
        record["feed"] = price_feed_name(self.specs[ev.token])

    def _on_zero_round(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        self.pending_zero.add(ev.token)
        record["feed"] = price_feed_name(self.specs[ev.token])

    def _on_aggregator_change(self, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """Every feed proxy moves to its next aggregator (a new phase): propose, then confirm."""
        self.phase = ev.detail["phase"]
        for feed, proxy in sorted({**self.dep.price_feeds, **{reserve_feed_name(s_): a for s_, a in
                                                               self.dep.reserve_feeds.items()}}.items()):
            new = self._aggregator(feed)
            for fn in ("proposeAggregator", "confirmAggregator"):
                plan.txs.append(Tx(self.dep.updater, proxy, self.proxy_abi.fn(fn).encode(new), GAS_ADMIN))
        record["phase"] = self.phase

    def _split_price_at(self, sym: str, activation: int, ratio: float) -> None:
        self._pending_splits.append((activation, sym, ratio))

    def _apply_due_splits(self, t: int) -> None:
        keep = []
        for activation, sym, ratio in self._pending_splits:
            if t >= activation:
                self.split_factor[sym] *= ratio
            else:
                keep.append((activation, sym, ratio))
        self._pending_splits = keep

    # -- holders' moves -----------------------------------------------------------------------
    def _can_move(self, sym: str, w: int, t: int) -> bool:
        if sym in self.paused or w in self.frozen[sym] or self.quiet_until.get(sym, 0) > t:
            return False
        return not (self.specs[sym].accounting == Accounting.REBASING_SHARES and w in self.sanctioned)

    def _plan_burns(self, t: int, plan: BlockPlan) -> None:
        """The burner burns what holders sent it in earlier blocks (a redemption: Backed's burner can
        only burn its own balance)."""
        for sym, shares in self.held_by_issuer.items():
            if shares == 0 or sym in self.paused or self.quiet_until.get(sym, 0) > t:
                continue
            m = self.multiplier(sym, t)
            amount = balance_from_shares(shares, m)
            if amount == 0:
                continue
            self.held_by_issuer[sym] -= shares_from_amount(amount, m)
            plan.txs.append(self._token_call(sym, "burn", self.dep.issuer, amount, gas=GAS_TRANSFER))
            self.transfers_planned += 1

    def _plan_transfers(self, t: int, plan: BlockPlan) -> None:
        rng = self.rng
        n_ops = int(rng.poisson(self.scale.transfers_per_block))
        if n_ops == 0:
            return
        symbols = [s_ for s_ in self.specs if self.holders[s_] and self._can_move_token(s_, t)]
        if not symbols:
            return
        weights = np.array([len(self.holders[s_]) for s_ in symbols], dtype=float)
        weights /= weights.sum()
        picks = rng.choice(len(symbols), size=n_ops, p=weights)
        kinds = rng.random(n_ops)
        fracs = rng.uniform(0.02, 0.6, n_ops)
        moves = _Moves()
        for op in range(n_ops):
            self._plan_one(symbols[picks[op]], float(kinds[op]), float(fracs[op]), t, plan, moves)
        moves.flush(self, plan)

    def _can_move_token(self, sym: str, t: int) -> bool:
        return sym not in self.paused and self.quiet_until.get(sym, 0) <= t

    def _plan_one(self, sym: str, kind: float, frac: float, t: int, plan: BlockPlan, moves: _Moves) -> None:
        rng, spec, holders = self.rng, self.specs[sym], self.holders[sym]
        xstock = spec.contract == "xstock"
        if kind < 0.015:  # the issuer mints to a buyer
            w = int(rng.integers(self.scale.wallets))
            if (sym, w) in moves.used or w in self.frozen[sym] or (xstock and w in self.sanctioned):
                return
            amount = self._usd_units(spec, 100.0 * (1 + rng.pareto(1.3)), t)
            self._credit(sym, w, shares_from_amount(amount, self.multiplier(sym, t)) if xstock else amount)
            moves.used.add((sym, w))
            if xstock:
                plan.txs.append(self._token_call(sym, "mint", self.wallets[w], amount, gas=GAS_TRANSFER))
                self.transfers_planned += 1
            else:
                moves.mint(sym, self.wallets[w], amount)
            return
        src = holders[int(rng.integers(len(holders)))]
        if (sym, src) in moves.used or not self._can_move(sym, src, t):
            return
        balance = self.balance(sym, src, t)
        amount = int(balance * frac)
        if kind > 0.985 and amount > 0:  # a redemption
            moves.used.add((sym, src))
            self.transfers_planned += 1
            if xstock:  # to the burner, which burns it in a later block
                shares = shares_from_amount(amount, self.multiplier(sym, t))
                self._debit(sym, src, shares)
                self.held_by_issuer[sym] += shares
                plan.txs.append(self._token_call(sym, "transfer", self.dep.issuer, amount, gas=GAS_TRANSFER,
                                                 sender=self.wallets[src]))
            else:  # ERC-3643: the agent burns from the holder
                self._debit(sym, src, amount)
                plan.txs.append(self._token_call(sym, "burn", self.wallets[src], amount))
            return
        if not xstock and kind > 0.93:
            amount = balance  # a full exit: the holder leaves the token
        if amount <= 0:
            return
        dst = int(rng.integers(self.scale.wallets)) if rng.random() < 0.5 else int(holders[int(rng.integers(len(holders)))])
        if dst == src or (sym, dst) in moves.used or not self._can_move(sym, dst, t):
            return
        moves.used.update({(sym, src), (sym, dst)})
        self.transfers_planned += 1
        if xstock:
            self._xstock_transfer(sym, src, dst, amount, kind, t, plan)
            return
        self._debit(sym, src, amount)
        self._credit(sym, dst, amount)
        if rng.random() < self.scale.direct_share:
            plan.txs.append(self._token_call(sym, "transfer", self.wallets[dst], amount, gas=GAS_TRANSFER,
                                             sender=self.wallets[src]))
        else:
            moves.forced(sym, self.wallets[src], self.wallets[dst], amount)

    def _xstock_transfer(self, sym: str, src: int, dst: int, amount: int, kind: float, t: int, plan: BlockPlan) -> None:
        """A holder's own move of an xStock: `transfer` of an amount, or now and then `transferShares`."""
        m = self.multiplier(sym, t)
        if kind > 0.9:
            shares = shares_from_amount(amount, m)
            tx = self._token_call(sym, "transferShares", self.wallets[dst], shares, gas=GAS_TRANSFER,
                                  sender=self.wallets[src])
        else:
            shares = shares_from_amount(amount, m)
            tx = self._token_call(sym, "transfer", self.wallets[dst], amount, gas=GAS_TRANSFER, sender=self.wallets[src])
        self._debit(sym, src, shares)
        self._credit(sym, dst, shares)
        plan.txs.append(tx)

    # -- prices -------------------------------------------------------------------------------
    def _plan_rounds(self, t: int, plan: BlockPlan) -> None:
        self._apply_due_splits(t)
        # stock feeds publish from the open to the close inclusive (the closing print)
        in_session = bool(self.calendar.is_open(t) or self.calendar.is_open(t - 1))
        hourly = t % 3600 == 0
        four_hourly = t % (4 * 3600) == 0
        for i, spec in enumerate(TOKENS):
            feed = price_feed_name(spec)
            price = self.share_price(i)
            if spec.accounting == Accounting.PLAIN:
                if four_hourly:
                    answer = round((1.0 + 0.0004 * float(self.rng.standard_normal())) * 10**PRICE_DECIMALS)
                    plan.txs.append(self._transmit(feed, None, answer))
                continue
            if spec.symbol in self.pending_zero:  # outside the session: one round of 0
                self.pending_zero.discard(spec.symbol)
                plan.txs.append(self._transmit(feed, None, 0))
            stalled = self.stalled_until.get(spec.symbol, 0) > t or self.oracle_paused_until.get(spec.symbol, 0) > t
            if in_session and not stalled:
                plan.txs.append(self._price_round(spec, feed, price, t))
            if four_hourly and spec.has_reserve_feed:
                need = self.shares_outstanding(spec.symbol, t)
                num, den = self.reserve_coverage.get(spec.symbol, (1001, 1000))  # custodians hold a buffer
                name = reserve_feed_name(spec.symbol)
                plan.txs.append(self._transmit(name, None, need * num // den))
        if hourly:
            for j, c in enumerate(CRYPTO):
                price = float(math.exp(self.log_fair[len(TOKENS) + j]))
                plan.txs.append(self._transmit(c.pair, None, round(price * 10**PRICE_DECIMALS)))

    def _price_round(self, spec: TokenSpec, feed: str, price: float, t: int) -> Tx:
        """A stock feed's round. A `per_token` feed quotes one token: for an xStock that is one share (its
        balance already carries the multiplier), for an ERC-8056 token the share price times its multiplier."""
        if spec.quote == "per_token" and spec.accounting == Accounting.UI_MULTIPLIER:
            price = price * self.multiplier(spec.symbol, t) / WAD
        answer = round(price * 10**PRICE_DECIMALS)
        if spec.symbol in self.pending_incomplete:
            self.pending_incomplete.discard(spec.symbol)
            return self._transmit_incomplete(feed, answer, t)
        return self._transmit(feed, None, answer)

    def _transmit_incomplete(self, feed: str, answer: int, t: int) -> Tx:
        """A round whose answeredInRound lags its roundId, as a stuck aggregator reports (the test-only
        function of the aggregator with faults)."""
        self.rounds_planned[feed] = self.rounds_planned.get(feed, 0) + 1
        aggregator = self._aggregator(feed)
        n = self.aggregator_rounds[aggregator] = self.aggregator_rounds.get(aggregator, 0) + 1
        data = self.aggregator_abi.fn("testOnlyPublishFaultyRound").encode(answer, t, n - 1)
        return Tx(self.dep.updater, aggregator, data, GAS_TRANSMIT)

    def block_times(self) -> list[int]:
        """Timestamps of the planned world blocks after the initial distribution."""
        return [self.tl.start + k * self.tl.block_seconds for k in range(1, self.tl.n_blocks + 1)]


@dataclass
class _Moves:
    """One block's batched moves of ERC-3643 tokens (the issuer's forced transfers and mints) and the
    (token, wallet) pairs already moved in the block."""

    used: set[tuple[str, int]] = field(default_factory=set)
    batches: dict[str, tuple[list[str], list[str], list[int]]] = field(default_factory=dict)
    mints: dict[str, tuple[list[str], list[int]]] = field(default_factory=dict)

    def forced(self, sym: str, src: str, dst: str, amount: int) -> None:
        b_from, b_to, b_amt = self.batches.setdefault(sym, ([], [], []))
        b_from.append(src)
        b_to.append(dst)
        b_amt.append(amount)

    def mint(self, sym: str, to: str, amount: int) -> None:
        m_to, m_amt = self.mints.setdefault(sym, ([], []))
        m_to.append(to)
        m_amt.append(amount)

    def flush(self, sim: WorldSim, plan: BlockPlan) -> None:
        for sym, (b_from, b_to, b_amt) in self.batches.items():
            for i in range(0, len(b_from), MAX_BATCH):
                n = len(b_from[i:i + MAX_BATCH])
                plan.txs.append(sim._token_call(sym, "batchForcedTransfer", b_from[i:i + MAX_BATCH], b_to[i:i + MAX_BATCH],
                                                b_amt[i:i + MAX_BATCH], gas=gas_for_batch(n)))
        for sym, (m_to, m_amt) in self.mints.items():
            plan.txs.append(sim._token_call(sym, "batchMint", m_to, m_amt, gas=gas_for_batch(len(m_to))))
            sim.transfers_planned += len(m_to)
