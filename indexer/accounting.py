"""How tokenized stocks turn raw balances into shares: pure integer rules, no I/O.

Three accounting models (see docs/architecture.md):
- `plain`: balanceOf is raw token units, nothing scales it;
- `ui_multiplier` (ERC-8056): balanceOf is raw units; shares = raw * uiMultiplier / 1e18, where the
  multiplier in force at time t comes from a schedule of updates announced ahead by events;
- `rebasing_shares` (Backed xStocks): the contract keeps shares; balanceOf = shares * m(t) / 1e18,
  with m(t) moved by scheduled corporate actions and a per-period management fee, neither of
  which emits an event when it takes effect. `rebasing_multiplier_at` reproduces the contract's
  `getCurrentMultiplier()` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from indexer.types import Accounting, BalanceSource

WAD = 10**18


@dataclass(frozen=True)
class RebasingParams:
    """The stored state of a Backed auto-fee token (xStocks) that fixes its multiplier at every later time:
    the values its getters answer (`lastMultiplier`, `lastTimeFeeApplied`, ...). Implementations older
    than the activation-time version keep one stored `multiplier` and no pending update: pass it as
    `last_multiplier` and leave `new_multiplier` None."""

    last_multiplier: int
    last_time_fee_applied: int
    fee_per_period: int  # 18-decimal fraction removed per period (1e15 = 0.1 %)
    period_length: int  # seconds
    new_multiplier: int | None = None  # the update that is (or was) scheduled; None: no activation logic
    activation_time: int = 0  # newMultiplierActivationTime; 0: nothing pending
    last_nonce: int = 0
    new_nonce: int | None = None


class MultiplierUndefined(ValueError):
    """The contract itself cannot compute its multiplier now (it reverts): a period length of 0, or a
    last fee time in the future."""


def rebasing_multiplier_at(p: RebasingParams, t: int) -> tuple[int, int, int]:
    """(multiplier, periods passed, nonce) that the token's `getCurrentMultiplier()` answers at block
    time `t` (BackedAutoFeeTokenImplementation, docs/contracts.md).

    While a scheduled update is pending (`t < activation_time`) the last multiplier holds, with no fee.
    Otherwise fee periods are counted from `last_time_fee_applied` (an activation does not restart that
    clock) and each removes `fee_per_period` from the new multiplier, rounding down at every step; the
    nonce grows by one per period only while a fee is charged.
    """
    if t < p.activation_time:
        return p.last_multiplier, 0, p.last_nonce
    if p.period_length <= 0:
        raise MultiplierUndefined(f"period length {p.period_length}: the contract divides by it")
    if t < p.last_time_fee_applied:
        raise MultiplierUndefined(f"last fee time {p.last_time_fee_applied} is after {t}: the contract underflows")
    m = p.last_multiplier if p.new_multiplier is None else p.new_multiplier
    nonce = p.last_nonce if p.new_nonce is None else p.new_nonce
    periods = (t - p.last_time_fee_applied) // p.period_length
    if p.fee_per_period > 0:
        keep = WAD - p.fee_per_period
        for _ in range(periods):
            m = m * keep // WAD
        nonce += periods
    return m, periods, nonce


def rebasing_fold(p: RebasingParams, t: int) -> RebasingParams:
    """The stored state after a state-changing call at time `t` folds what has accrued (the token's
    `updateMultiplier` modifier): the fee clock moves on by whole periods, and when the multiplier in
    force differs from the last stored one, it becomes the last and the new one and nothing is pending."""
    m, periods, nonce = rebasing_multiplier_at(p, t)
    last_fee = p.last_time_fee_applied + periods * p.period_length
    if m == p.last_multiplier:
        return replace(p, last_time_fee_applied=last_fee)
    return RebasingParams(m, last_fee, p.fee_per_period, p.period_length,
                          None if p.new_multiplier is None else m, 0, nonce, None if p.new_nonce is None else nonce)


def balance_from_shares(shares: int, multiplier: int) -> int:
    """balanceOf of a rebasing token: shares * multiplier / 1e18, rounded down."""
    return shares * multiplier // WAD


def balance_of_units(acc: Accounting, units: int, multiplier: int) -> tuple[int, int | None]:
    """(balanceOf, shares) of a holder with `units` event-sourced units under `multiplier`.

    Units are shares for `rebasing_shares` (balanceOf = shares x multiplier) and raw balances for
    `ui_multiplier` (shares = balance x multiplier, balanceOf unchanged) and `plain` (no shares).
    """
    if acc == Accounting.REBASING_SHARES:
        return balance_from_shares(units, multiplier), units
    if acc == Accounting.UI_MULTIPLIER:
        return units, units * multiplier // WAD
    return units, None


def units_model(accounting: Accounting, source: BalanceSource | str = BalanceSource.LOGS) -> Accounting:
    """The rule that turns a token's stored units into its balance. A polled token's units are its
    balanceOf as read (whatever its accounting model), so they turn into balances as plain units do."""
    return Accounting.PLAIN if source == BalanceSource.POLL else accounting


def shares_from_amount(amount: int, multiplier: int) -> int:
    """Shares a rebasing transfer of `amount` balance units moves (getSharesByUnderlyingAmount)."""
    return amount * WAD // multiplier


@dataclass(frozen=True)
class UiMultiplierUpdate:
    """One ERC-8056 scheduled update, as its UIMultiplierUpdated event announced it."""

    new_multiplier: int
    effective_at: int
    set_at: int = 0


def ui_multiplier_at(updates: list[UiMultiplierUpdate], t: int, initial: int = WAD) -> int:
    """The uiMultiplier in force at time `t` given every update announced so far (in event order)."""
    m = initial
    for u in updates:
        if u.effective_at <= t:
            m = u.new_multiplier
    return m
