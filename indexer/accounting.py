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
    old_multiplier: int | None = None  # as the event names it (ERC-8056); None where it names none (B20)


def ui_multiplier_at(updates: list[UiMultiplierUpdate], t: int, initial: int = WAD) -> int:
    """The uiMultiplier in force at time `t` given every update announced so far (in event order)."""
    m = initial
    for u in updates:
        if u.effective_at <= t:
            m = u.new_multiplier
    return m


# -- corporate actions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorporateAction:
    """A multiplier change that is a corporate action on the underlying share: a split, a reverse split, a
    stock dividend or a distribution folded into the multiplier. From `effective_at` on, one share before
    it is `new / old` shares (3/1 for a 3-for-1 split, 1/2 for a 1-for-2 reverse split). A management fee
    is not one: it takes tokens from holders while the share price stays where it is."""

    effective_at: int
    new: int
    old: int


@dataclass(frozen=True)
class StateRead:
    """One stored read of a token's state: its time, the multiplier in force then, and (Backed xStocks)
    the parameters that fix its later values, None where they were not read."""

    timestamp: int
    multiplier: int
    params: RebasingParams | None = None


FOLD_AT_MOST = 0.01  # a fee fold takes less than this share of the multiplier at once (fees are bp a year)


@dataclass(frozen=True)
class MultiplierEvent:
    """A stored multiplier event of a Backed xStock, with its block's time."""

    timestamp: int
    event: str  # MultiplierUpdated, MultiplierScheduled, MultiplierScheduleOverridden
    args: dict


def rebasing_event_actions(events: list[MultiplierEvent], until: int) -> list[CorporateAction]:
    """The corporate actions of a Backed xStock up to `until` from its events alone, where no state read
    brackets them (blocks synced from a node that no longer held their state).

    Every change of the stored multiplier logs `MultiplierUpdated(value)`, a fold in the same transaction
    as the call that caused it; so the last value logged is the multiplier a `MultiplierScheduled(new, at)`
    scales, and that schedule is an action of `new / last` at `at` once a later event or `until` passes it
    (`MultiplierScheduleOverridden` replaces it first). A `MultiplierUpdated` that raises the multiplier,
    or lowers it by `FOLD_AT_MOST` or more, is an update in force at once; a smaller fall is a fee fold.
    Without an earlier value, an event's ratio is unknown and it is left to the state reads."""
    out: list[CorporateAction] = []
    current: int | None = None
    pending: tuple[int, int, int | None] | None = None  # (new, activation, old)

    def settle(t: int) -> None:
        nonlocal pending, current
        if pending is not None and pending[1] <= t:
            new, at, old = pending
            if old is not None and old > 0 and new != old:
                out.append(CorporateAction(at, new, old))
            current, pending = new, None

    for e in events:
        if e.timestamp > until:
            break
        settle(e.timestamp)
        a = e.args
        if e.event == "MultiplierScheduled":
            pending = (int(a["new_multiplier"]), int(a["activation_time"]), current)
        elif e.event == "MultiplierScheduleOverridden":
            pending = (int(a["new_multiplier"]), int(a["new_activation_time"]),
                       pending[2] if pending is not None else current)
        elif e.event == "MultiplierUpdated":
            value = int(a["value"])
            if current is not None and (value > current or value < current * (1 - FOLD_AT_MOST)):
                out.append(CorporateAction(e.timestamp, value, current))
            current = value
    settle(until)
    return out


def rebasing_actions(reads: list[StateRead], until: int) -> list[CorporateAction]:
    """The corporate actions of a Backed xStock up to time `until`, from its state reads in time order.

    Between two reads the contract's rule (`rebasing_multiplier_at`) says what fees alone make of the
    multiplier. An update pending at the first read that activates before the second is an action of
    `new_multiplier / last_multiplier` at its activation time (the fee clock stands still while it is
    pending). A read that differs from what the rule predicts is an action at that read (an update in
    force at once). Without stored parameters, any change between reads counts as an action, since a
    fee cannot be told apart from one."""
    out: list[CorporateAction] = []
    for i, r in enumerate(reads):
        nxt = reads[i + 1] if i + 1 < len(reads) else None
        end = until if nxt is None else nxt.timestamp
        p = r.params
        if p is None:
            if nxt is not None and nxt.multiplier != r.multiplier:
                out.append(CorporateAction(nxt.timestamp, nxt.multiplier, r.multiplier))
            continue
        if (p.new_multiplier is not None and r.timestamp < p.activation_time <= end
                and p.new_multiplier != p.last_multiplier):
            out.append(CorporateAction(p.activation_time, p.new_multiplier, p.last_multiplier))
        if nxt is None:
            continue
        try:
            predicted = rebasing_multiplier_at(p, nxt.timestamp)[0]
        except MultiplierUndefined:
            predicted = r.multiplier
        if nxt.multiplier != predicted:
            out.append(CorporateAction(nxt.timestamp, nxt.multiplier, predicted))
    return out


def rebasing_stored_actions(events: list[MultiplierEvent], reads: list[StateRead], until: int) -> list[CorporateAction]:
    """A Backed xStock's corporate actions up to `until` from everything stored: its events up to its first
    state read (`rebasing_event_actions`), then its reads (`rebasing_actions`). An event logged in the block
    of the first read is before that read (the read answers with the event's effect in place), so it belongs
    to the events' part: a multiplier raised in that very block is an action there, not lost between the two."""
    first = reads[0].timestamp if reads else until
    early = [e for e in events if e.timestamp <= first]
    return rebasing_event_actions(early, min(first, until)) + rebasing_actions(reads, until)


def ui_actions(reads: list[StateRead], updates: list[UiMultiplierUpdate], until: int) -> list[CorporateAction]:
    """The corporate actions of an ERC-8056 token up to time `until`: every change of its multiplier (the
    standard has no fee). Before the first read, each update that took effect is an action of the new
    multiplier over the old one its event names (or over the update before it). From the first read on the
    multiplier follows the announced updates; a later read that disagrees with them is an action at that
    read, and the updates go on from its value."""
    first = reads[0].timestamp if reads else until + 1
    out: list[CorporateAction] = []
    previous: int | None = None
    for u in sorted((u for u in updates if u.effective_at < first and u.effective_at <= until),
                    key=lambda u: u.effective_at):
        old = u.old_multiplier if u.old_multiplier is not None else previous
        if old is not None and old > 0 and old != u.new_multiplier:
            out.append(CorporateAction(u.effective_at, u.new_multiplier, old))
        previous = u.new_multiplier
    if not reads:
        return out
    base_t, base_m = reads[0].timestamp, reads[0].multiplier
    later = [u for u in updates if u.effective_at > base_t]
    marks = sorted({u.effective_at for u in later if u.effective_at <= until} | {r.timestamp for r in reads[1:]})
    read_at = {r.timestamp: r.multiplier for r in reads[1:]}
    m = base_m
    for t in marks:
        new = ui_multiplier_at([u for u in later if u.effective_at > base_t], t, initial=base_m)
        if t in read_at and read_at[t] != new:
            new = read_at[t]
            base_t, base_m = t, new
        if new != m:
            out.append(CorporateAction(t, new, m))
            m = new
    return out
