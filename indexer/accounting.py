"""How tokenized stocks turn raw balances into shares: pure integer rules, no I/O.

Three accounting models (see docs/architecture.md):
- `plain`: balanceOf is raw token units, nothing scales it;
- `ui_multiplier` (ERC-8056): balanceOf is raw units; shares = raw * uiMultiplier / 1e18, where the
  multiplier in force at time t comes from a schedule of updates announced ahead by events;
- `rebasing_shares` (xStocks style): the contract keeps shares; balanceOf = shares * m(t) / 1e18,
  with m(t) moved by scheduled corporate actions and a per-period management fee, neither of
  which emits an event when it takes effect. `rebasing_multiplier_at` reproduces the contract's
  `getCurrentMultiplier()` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.types import Accounting, BalanceSource

WAD = 10**18


@dataclass(frozen=True)
class RebasingParams:
    """The stored state of a rebasing token that fixes its multiplier at every later time."""

    multiplier: int
    last_time_fee_applied: int
    fee_per_period: int
    period_length: int
    new_multiplier: int = 0
    new_multiplier_activation_time: int = 0  # 0: nothing scheduled
    multiplier_nonce: int = 0


def rebasing_multiplier_at(p: RebasingParams, t: int) -> tuple[int, int, int]:
    """(multiplier, periods passed, nonce) the contract reports at block time `t`.

    A scheduled corporate action replaces the base at its activation time and fee periods restart
    from there; each fee period then removes `fee_per_period` (18-decimal fraction), rounding down
    at every step as the contract's loop does.
    """
    m, last, nonce = p.multiplier, p.last_time_fee_applied, p.multiplier_nonce
    if p.new_multiplier_activation_time != 0 and t >= p.new_multiplier_activation_time:
        m, last, nonce = p.new_multiplier, p.new_multiplier_activation_time, nonce + 1
    periods = 0
    if p.period_length > 0 and p.fee_per_period > 0 and t > last:
        periods = (t - last) // p.period_length
        keep = WAD - p.fee_per_period
        for _ in range(periods):
            m = m * keep // WAD
        nonce += periods
    return m, periods, nonce


def rebasing_fold(p: RebasingParams, t: int) -> RebasingParams:
    """The stored state after the contract folds pending changes in at time `t` (its `_applyMultiplier`)."""
    m, last, nonce = p.multiplier, p.last_time_fee_applied, p.multiplier_nonce
    activation = p.new_multiplier_activation_time
    if activation != 0 and t >= activation:
        m, last, nonce, activation = p.new_multiplier, activation, nonce + 1, 0
    if p.period_length > 0 and p.fee_per_period > 0 and t > last:
        periods = (t - last) // p.period_length
        keep = WAD - p.fee_per_period
        for _ in range(periods):
            m = m * keep // WAD
        last += periods * p.period_length
        nonce += periods
    return RebasingParams(m, last, p.fee_per_period, p.period_length, p.new_multiplier, activation, nonce)


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
