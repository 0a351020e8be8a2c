"""The demo world as a deterministic simulation: pure Python, no I/O.

`WorldSim` plays the world forward block by block and returns, for each block, the transactions to
send (`BlockPlan`). It keeps its own books (balances, shares, multipliers, supplies) with the same
integer rules the contracts use, so every transaction it plans succeeds on chain. Given the same
seed, scale and deployed addresses it plans the same chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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
from indexer.risk.calendar import xnys
from indexer.types import Accounting

YEAR = 365 * DAY
MAX_BATCH = 400  # transfers per batchForcedTransfer / batchMint transaction

GAS_TRANSFER = 150_000
GAS_TRANSMIT = 250_000
GAS_ADMIN = 500_000


def gas_for_batch(n: int) -> int:
    return 80_000 + 75_000 * n


@dataclass
class Tx:
    sender: str
    to: str | None  # None creates a contract
    data: str
    gas: int


@dataclass
class BlockPlan:
    timestamp: int
    txs: list[Tx] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # world events happening in this block


@dataclass
class Deployment:
    """Addresses the simulation needs: one per token, per feed, plus the actors."""

    issuer: str
    updater: str
    sanctions_list: str
    tokens: dict[str, str]  # symbol -> address
    price_feeds: dict[str, str]  # feed name -> address
    reserve_feeds: dict[str, str]  # token symbol -> PoR feed address
    deployed_at: int  # timestamp of the deployment block: rebasing fee periods count from it


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
        self.token_abi = {Accounting.REBASING_SHARES: load_abi("RebasingSharesStock"),
                          Accounting.UI_MULTIPLIER: load_abi("UiMultiplierStock"),
                          Accounting.PLAIN: load_abi("PlainToken")}
        self.feed_abi = load_abi("PriceFeed")
        self.sanctions_abi = load_abi("SanctionsList")
        self.specs = {t.symbol: t for t in TOKENS}
        # books: per token, wallet index -> raw balance (plain, ui) or shares (rebasing)
        self.units: dict[str, dict[int, int]] = {t.symbol: {} for t in TOKENS}
        self.holders: dict[str, list[int]] = {t.symbol: [] for t in TOKENS}
        self._holder_pos: dict[str, dict[int, int]] = {t.symbol: {} for t in TOKENS}
        self.total_units: dict[str, int] = {t.symbol: 0 for t in TOKENS}
        self.rebasing: dict[str, RebasingParams] = {
            t.symbol: RebasingParams(WAD, deployment.deployed_at, t.fee_per_period, t.period_length)
            for t in TOKENS if t.accounting == Accounting.REBASING_SHARES
        }
        self.ui_updates: dict[str, list[UiMultiplierUpdate]] = {
            t.symbol: [] for t in TOKENS if t.accounting == Accounting.UI_MULTIPLIER
        }
        self.frozen: dict[str, set[int]] = {t.symbol: set() for t in TOKENS}
        self.sanctioned: set[int] = set()
        self.paused: set[str] = set()
        self.reserve_coverage: dict[str, tuple[int, int]] = {}
        self.stalled_until: dict[str, int] = {}
        self.pending_incomplete: set[str] = set()
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
        spec = self.specs[sym]
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
        if self.specs[sym].accounting == Accounting.REBASING_SHARES:
            return balance_from_shares(units, self.multiplier(sym, t))
        return units

    def shares_outstanding(self, sym: str, t: int) -> int:
        """Underlying shares (18 decimals) the token's supply stands for: what a reserve must cover."""
        spec = self.specs[sym]
        total = self.total_units[sym]
        m = self.multiplier(sym, t)
        if spec.accounting == Accounting.REBASING_SHARES:
            balance = balance_from_shares(total, m)
            return balance * 10**RESERVE_DECIMALS // 10**spec.decimals
        return total * m // WAD * 10**RESERVE_DECIMALS // 10**spec.decimals

    # -- transactions -------------------------------------------------------------------------
    def _token_call(self, sym: str, fn: str, *args: Any, gas: int = GAS_ADMIN, sender: str | None = None) -> Tx:
        abi = self.token_abi[self.specs[sym].accounting]
        return Tx(sender or self.dep.issuer, self.dep.tokens[sym], abi.fn(fn).encode(*args), gas)

    def _transmit(self, feed: str, address: str, answer: int) -> Tx:
        self.rounds_planned[feed] = self.rounds_planned.get(feed, 0) + 1
        return Tx(self.dep.updater, address, self.feed_abi.fn("transmit").encode(answer), GAS_TRANSMIT)

    def _usd_units(self, spec: TokenSpec, usd: float, t: int) -> int:
        """Raw token units worth about `usd`, for minting: balance units, not shares."""
        price_per_token = spec.price * self.multiplier(spec.symbol, t) / WAD
        tokens = usd / max(price_per_token, 1e-9)
        return max(1, int(tokens * 10**spec.decimals))

    # -- the initial distribution ---------------------------------------------------------------
    def initial_mints(self, t: int) -> list[Tx]:
        """Heavy-tailed holdings: a few whales, many small holders, each on a few tokens."""
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
        txs = []
        for sym, rows in per_token.items():
            for i in range(0, len(rows), MAX_BATCH):
                chunk = rows[i:i + MAX_BATCH]
                to = [self.wallets[w] for w, _ in chunk]
                amounts = [a for _, a in chunk]
                for w, a in chunk:
                    self._credit(sym, w, self._units_for_amount(sym, a, t))
                txs.append(self._token_call(sym, "batchMint", to, amounts, gas=gas_for_batch(len(chunk))))
                self.transfers_planned += len(chunk)
        return txs

    def _units_for_amount(self, sym: str, amount: int, t: int) -> int:
        if self.specs[sym].accounting == Accounting.REBASING_SHARES:
            return shares_from_amount(amount, self.multiplier(sym, t))
        return amount

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
        self._plan_transfers(t, plan)
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
        if ev.kind == "multiplier_scheduled":
            num, den = (int(x) for x in ev.detail["ratio"].split("/"))
            activation = ev.detail["activation"]
            params = rebasing_fold(self.rebasing[ev.token], t)
            at_activation = rebasing_multiplier_at(params, activation - 1)[0]
            new_m = at_activation * num // den
            self.rebasing[ev.token] = RebasingParams(
                params.multiplier, params.last_time_fee_applied, params.fee_per_period, params.period_length,
                new_m, activation, params.multiplier_nonce)
            plan.txs.append(self._token_call(ev.token, "scheduleMultiplier", new_m, activation))
            self._split_price_at(ev.token, activation, num / den if num / den > 1.5 else 1.0)
            record.update(new_multiplier=str(new_m), activation_time=activation, ratio=ev.detail["ratio"])
        elif ev.kind == "ui_multiplier_scheduled":
            num, den = (int(x) for x in ev.detail["ratio"].split("/"))
            activation = ev.detail["activation"]
            new_m = ui_multiplier_at(self.ui_updates[ev.token], t) * num // den
            self.ui_updates[ev.token].append(UiMultiplierUpdate(new_m, activation, t))
            plan.txs.append(self._token_call(ev.token, "updateUIMultiplier", new_m, activation))
            self._split_price_at(ev.token, activation, num / den)
            record.update(new_multiplier=str(new_m), activation_time=activation, ratio=ev.detail["ratio"])
        elif ev.kind in ("freeze", "unfreeze"):
            frozen = ev.kind == "freeze"
            for w in ev.detail["wallets"]:
                (self.frozen[ev.token].add if frozen else self.frozen[ev.token].discard)(w)
                plan.txs.append(self._token_call(ev.token, "setAddressFrozen", self.wallets[w], frozen))
            record["wallets"] = [self.wallets[w] for w in ev.detail["wallets"]]
        elif ev.kind == "sanction":
            addrs = [self.wallets[w] for w in ev.detail["wallets"]]
            self.sanctioned.update(ev.detail["wallets"])
            plan.txs.append(Tx(self.dep.issuer, self.dep.sanctions_list,
                                     self.sanctions_abi.fn("addToSanctionsList").encode(addrs), GAS_ADMIN))
            record["wallets"] = addrs
        elif ev.kind == "pause":
            self.paused.add(ev.token)
            plan.txs.append(self._token_call(ev.token, "pause"))
        elif ev.kind == "reserve_shortfall":
            num, den = (int(x) for x in ev.detail["coverage"].split("/"))
            self.reserve_coverage[ev.token] = (num, den)
            record["coverage"] = ev.detail["coverage"]
        elif ev.kind == "feed_stall":
            self.stalled_until[ev.token] = ev.detail["until"]
            record.update(feed=price_feed_name(self.specs[ev.token]), until=ev.detail["until"])
        elif ev.kind == "incomplete_round":
            self.pending_incomplete.add(ev.token)
            record["feed"] = price_feed_name(self.specs[ev.token])
        return record

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

    def _can_move(self, sym: str, w: int) -> bool:
        if sym in self.paused or w in self.frozen[sym]:
            return False
        return not (self.specs[sym].accounting == Accounting.REBASING_SHARES and w in self.sanctioned)

    def _plan_transfers(self, t: int, plan: BlockPlan) -> None:
        rng = self.rng
        n_ops = int(rng.poisson(self.scale.transfers_per_block))
        if n_ops == 0:
            return
        symbols = [s for s in self.holders if s not in self.paused and self.holders[s]]
        if not symbols:
            return
        weights = np.array([len(self.holders[s]) for s in symbols], dtype=float)
        weights /= weights.sum()
        picks = rng.choice(len(symbols), size=n_ops, p=weights)
        kinds = rng.random(n_ops)
        fracs = rng.uniform(0.02, 0.6, n_ops)
        used: set[tuple[str, int]] = set()  # (token, wallet) that sent or received in this block
        batches: dict[str, tuple[list[str], list[str], list[int]]] = {}
        mints: dict[str, tuple[list[str], list[int]]] = {}
        for op in range(n_ops):
            sym = symbols[picks[op]]
            spec = self.specs[sym]
            holders = self.holders[sym]
            kind = kinds[op]
            if kind < 0.015:  # issuer mints to a buyer
                w = int(rng.integers(self.scale.wallets))
                if not self._can_move(sym, w) or (sym, w) in used:
                    continue
                amount = self._usd_units(spec, 100.0 * (1 + rng.pareto(1.3)), t)
                self._credit(sym, w, self._units_for_amount(sym, amount, t))
                used.add((sym, w))
                m_to, m_amt = mints.setdefault(sym, ([], []))
                m_to.append(self.wallets[w])
                m_amt.append(amount)
                continue
            src = holders[int(rng.integers(len(holders)))]
            if (sym, src) in used or not self._can_move(sym, src):
                continue
            balance = self.balance(sym, src, t)
            amount = int(balance * fracs[op])
            if kind > 0.985 and amount > 0:  # redemption: the issuer burns
                self._debit(sym, src, min(self.units[sym][src], self._units_for_amount(sym, amount, t)))
                used.add((sym, src))
                plan.txs.append(self._token_call(sym, "burn", self.wallets[src], amount))
                self.transfers_planned += 1
                continue
            if spec.accounting != Accounting.REBASING_SHARES and kind > 0.93:
                amount = balance  # a full exit: the holder leaves the token
            if amount <= 0:
                continue
            dst = int(rng.integers(self.scale.wallets)) if rng.random() < 0.5 else int(
                holders[int(rng.integers(len(holders)))])
            if dst == src or (sym, dst) in used or not self._can_move(sym, dst):
                continue
            units = self._units_for_amount(sym, amount, t)
            self._debit(sym, src, units)
            self._credit(sym, dst, units)
            used.add((sym, src))
            used.add((sym, dst))
            self.transfers_planned += 1
            if rng.random() < self.scale.direct_share:
                sender = self.wallets[src]
                plan.txs.append(self._token_call(sym, "transfer", self.wallets[dst], amount,
                                                 gas=GAS_TRANSFER, sender=sender))
            else:
                b_from, b_to, b_amt = batches.setdefault(sym, ([], [], []))
                b_from.append(self.wallets[src])
                b_to.append(self.wallets[dst])
                b_amt.append(amount)
        for sym, (b_from, b_to, b_amt) in batches.items():
            for i in range(0, len(b_from), MAX_BATCH):
                plan.txs.append(self._token_call(
                    sym, "batchForcedTransfer", b_from[i:i + MAX_BATCH], b_to[i:i + MAX_BATCH],
                    b_amt[i:i + MAX_BATCH], gas=gas_for_batch(len(b_from[i:i + MAX_BATCH]))))
        for sym, (m_to, m_amt) in mints.items():
            plan.txs.append(self._token_call(sym, "batchMint", m_to, m_amt, gas=gas_for_batch(len(m_to))))
            self.transfers_planned += len(m_to)

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
                    plan.txs.append(self._transmit(feed, self.dep.price_feeds[feed], answer))
                continue
            stalled = self.stalled_until.get(spec.symbol, 0) > t
            if in_session and not stalled:
                if spec.quote == "per_token":
                    price = price * self.multiplier(spec.symbol, t) / WAD
                answer = round(price * 10**PRICE_DECIMALS)
                address = self.dep.price_feeds[feed]
                if spec.symbol in self.pending_incomplete:
                    self.pending_incomplete.discard(spec.symbol)
                    plan.txs.append(self._transmit_incomplete(feed, address, answer, t))
                else:
                    plan.txs.append(self._transmit(feed, address, answer))
            if four_hourly and spec.has_reserve_feed:
                need = self.shares_outstanding(spec.symbol, t)
                num, den = self.reserve_coverage.get(spec.symbol, (1001, 1000))  # custodians hold a buffer
                reserve = need * num // den
                name = reserve_feed_name(spec.symbol)
                plan.txs.append(self._transmit(name, self.dep.reserve_feeds[spec.symbol], reserve))
        if hourly:
            for j, c in enumerate(CRYPTO):
                price = float(math.exp(self.log_fair[len(TOKENS) + j]))
                answer = round(price * 10**PRICE_DECIMALS)
                plan.txs.append(self._transmit(c.pair, self.dep.price_feeds[c.pair], answer))

    def _transmit_incomplete(self, feed: str, address: str, answer: int, t: int) -> Tx:
        """A round whose answeredInRound lags its roundId, as a stuck aggregator reports."""
        self.rounds_planned[feed] = self.rounds_planned.get(feed, 0) + 1
        phase_round = self.rounds_planned[feed]
        round_id = (1 << 64) | phase_round
        data = self.feed_abi.fn("transmitRaw").encode(answer, t, t, round_id - 1)
        return Tx(self.dep.updater, address, data, GAS_TRANSMIT)

    def block_times(self) -> list[int]:
        """Timestamps of the planned world blocks after the initial distribution."""
        return [self.tl.start + k * self.tl.block_seconds for k in range(1, self.tl.n_blocks + 1)]
