"""The rows a tick derives from what it read: pure functions, no I/O.

- per page: the movements of units in log order and the balance changes with running units;
- at the tick's last block: balances (each moved holder once), token state rows and the multipliers in
  force, price rounds, polled balances, account status; the problems found on the way, as `Issue`s.

Units are raw token units for `plain` and `ui_multiplier` tokens and shares for `rebasing_shares`
tokens; a polled token's units are its balanceOf as read (indexer.accounting.units_model).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from operator import itemgetter

from indexer.accounting import (
    WAD,
    MultiplierUndefined,
    RebasingParams,
    UiMultiplierUpdate,
    balance_of_units,
    rebasing_fold,
    rebasing_multiplier_at,
    ui_multiplier_at,
)
from indexer.chain.decode import ZERO_ADDRESS, DecodedLogs, EventRecord, TransferRecord
from indexer.chain.state import RoundRead, TokenRead, round_quality
from indexer.chain.tokens import paused_of
from indexer.errors import ChainDataError
from indexer.sync.context import Issue
from indexer.token_events import AccountKey, fold_account_events, status_rows
from indexer.types import Accounting

Holder = tuple[str, str]  # (token, wallet)
POLL_LOG_INDEX = 2**31 - 1  # balance_changes.log_index of a polled balance: read at the end of its block
PHASE_SHIFT = 64  # a feed proxy's round id: phase << 64 | the aggregator's round id
_log_position = itemgetter(0, 1)  # a TransferRecord's (block_number, log_index)


# ---------------------------------------------------------------------------------- per page
def movements(d: DecodedLogs, by_transfer: set[str], by_shares: set[str]) -> list[TransferRecord]:
    """The page's movements of units in log order: `Transfer` logs of the tokens in `by_transfer`
    (units are raw amounts), `TransferShares` logs of the tokens in `by_shares` (units are shares)."""
    moves = [t for t in d.transfers if t[4] in by_transfer]
    moves += [t for t in d.share_transfers if t[4] in by_shares]
    if d.share_transfers:  # two kinds of movement: put them in log order
        moves.sort(key=_log_position)
    return moves


def unseen_holders(moves: list[TransferRecord], units: Mapping[Holder, int], fresh: set[str]) -> dict[str, set[str]]:
    """{token: wallets} the movements name whose running units are not known yet (tokens in `fresh` had
    no stored holder when the tick began: their holders start at zero)."""
    unseen: dict[str, set[str]] = defaultdict(set)
    for _, _, _, _, token, src, dst, _ in moves:
        if token in fresh:
            continue
        if (token, src) not in units:
            unseen[token].add(src)
        if (token, dst) not in units:
            unseen[token].add(dst)
    for wallets in unseen.values():
        wallets.discard(ZERO_ADDRESS)
    return {t: ws for t, ws in unseen.items() if ws}


def apply_movements(cid: int, moves: list[TransferRecord], units: dict[Holder, int]) -> list[tuple]:
    """Balance-change rows (`store.balances.CHANGE_COLS`) for the movements, in log order; `units`, the
    running units of every holder met so far, moves with them. A self-transfer gives one row (its key
    is one): the "to" side, with the same net units."""
    changes: list[tuple] = []
    append = changes.append
    get = units.get
    zero = ZERO_ADDRESS
    for block, index, _, _, token, src, dst, amount in moves:
        if src != zero:
            key = (token, src)
            new_units = get(key, 0) - amount
            if new_units < 0:
                raise ChainDataError(f"{src} would hold a negative balance of {token} after log "
                                     f"{block}#{index}: the stored history is incomplete")
            units[key] = new_units
            if src != dst:
                append((cid, token, src, block, index, -amount, new_units))
        if dst != zero:
            key = (token, dst)
            new_units = get(key, 0) + amount
            units[key] = new_units
            append((cid, token, dst, block, index, amount, new_units))
    return changes


def polled_holders(d: DecodedLogs, polled: frozenset[str]) -> set[Holder]:
    """Holders of polled tokens that the page's transfers name (their balances are read at the tick's end)."""
    return {(t.token, w) for t in d.transfers if t.token in polled
            for w in (t.from_address, t.to_address) if w != ZERO_ADDRESS}


# ---------------------------------------------------------------------------------- balances
def balance_rows(cid: int, block: int, units: Mapping[Holder, int], models: Mapping[str, Accounting],
                 multipliers: Mapping[str, int], fresh: set[str]) -> tuple[list[tuple], list[tuple]]:
    """(rows that may exist, rows of tokens that had no holder: new) of every moved holder's balance
    (`store.balances.BALANCE_COLS`) at `block`, under the multipliers in force there."""
    rows, new_rows = [], []
    for (token, wallet), u in units.items():
        bal, shares = balance_of_units(models[token], u, multipliers.get(token, WAD))
        (new_rows if token in fresh else rows).append((cid, token, wallet, bal, shares, u, block))
    return rows, new_rows


def rescaled_rows(cid: int, token: str, model: Accounting, multiplier: int, block: int,
                  holders: Iterable[tuple[str, int, int, int | None]]) -> list[tuple]:
    """Balance rows of the stored holders (wallet, units, balance, shares) whose balance or shares change
    under `multiplier` (their units stay as they are)."""
    rows = []
    for wallet, u, bal, shares in holders:
        new_bal, new_shares = balance_of_units(model, u, multiplier)
        if new_bal != bal or new_shares != shares:
            rows.append((cid, token, wallet, new_bal, new_shares, u, block))
    return rows


def polled_rows(cid: int, block: int, reads: Mapping[Holder, int | None], stored: Mapping[Holder, int]
                ) -> tuple[list[tuple], list[tuple], list[Issue]]:
    """Polled tokens: balances are what balanceOf answered at the tick's block. Returns (balance changes
    at (block, POLL_LOG_INDEX) with the difference, so history keeps its running total; balance rows;
    problems). A holder the logs named is kept, at 0 too; a failed read keeps the stored balance."""
    issues = [Issue(token, "balance_read_failed",
                    f"balanceOf failed for some holders at block {block}: their stored balances are kept")
              for token in sorted({t for (t, _), v in reads.items() if v is None})]
    changes, rows = [], []
    for (token, wallet), value in sorted(reads.items()):
        if value is None:
            continue
        old = stored.get((token, wallet))
        if old == value:
            continue
        if value != (old or 0):
            changes.append((cid, token, wallet, block, POLL_LOG_INDEX, value - (old or 0), value))
        rows.append((cid, token, wallet, value, None, value, block))
    return changes, rows, issues


# ---------------------------------------------------------------------------------- token state
def rebasing_params_of(v: Mapping[str, object]) -> RebasingParams | None:
    """A Backed auto-fee token's stored multiplier state from its getters (None when they did not answer).
    The activation-time versions keep `lastMultiplier` and a pending `newMultiplier`; the first versions
    one stored `multiplier`."""
    fee, period, last_fee = v.get("feePerPeriod"), v.get("periodLength"), v.get("lastTimeFeeApplied")
    if fee is None or period is None or last_fee is None:
        return None
    if v.get("lastMultiplier") is not None:
        return RebasingParams(int(v["lastMultiplier"]), int(last_fee), int(fee), int(period),
                              None if v.get("newMultiplier") is None else int(v["newMultiplier"]),
                              int(v.get("newMultiplierActivationTime") or 0), int(v.get("lastMultiplierNonce") or 0),
                              None if v.get("newMultiplierNonce") is None else int(v["newMultiplierNonce"]))
    if v.get("multiplier") is not None:
        return RebasingParams(int(v["multiplier"]), int(last_fee), int(fee), int(period),
                              last_nonce=int(v.get("multiplierNonce") or 0))
    return None


def token_state_rows(cid: int, reads: Iterable[TokenRead], models: Mapping[str, Accounting], block: int,
                     timestamp: int, ui_schedule: Mapping[str, list[UiMultiplierUpdate]]
                     ) -> tuple[list[dict], dict[str, int], list[Issue]]:
    """Token state rows read at `block`, the multiplier in force per token, and the problems found: a
    failed call, a multiplier the stored rule or schedule does not reproduce (the contract's value wins)."""
    rows, multipliers, issues = [], {}, []
    for read in reads:
        v = read.values
        if read.failed:
            issues.append(Issue(read.address, "state_read_failed",
                                f"calls failed at block {block}: {', '.join(read.failed)}"))
        row = dict(chain_id=cid, token=read.address, block_number=block, block_timestamp=timestamp,
                   multiplier_raw=WAD, base_multiplier_raw=None, new_multiplier_raw=None, activation_time=None,
                   fee_per_period_raw=None, period_length=None, last_time_fee_applied=None,
                   paused=paused_of(v), total_supply_raw=int(v.get("totalSupply") or 0), multiplier_nonce=None,
                   last_multiplier_nonce=None, new_multiplier_nonce=None,
                   oracle_paused=None if v.get("oraclePaused") is None else bool(v["oraclePaused"]))
        model = models[read.address]
        if model == Accounting.REBASING_SHARES and v.get("getCurrentMultiplier") is not None:
            row.update(_rebasing_row(read, block, timestamp, issues))
        elif model == Accounting.UI_MULTIPLIER and (v.get("uiMultiplier") or v.get("multiplier")) is not None:
            reported = int(v["uiMultiplier"] if v.get("uiMultiplier") is not None else v["multiplier"])
            computed = ui_multiplier_at(ui_schedule.get(read.address, []), timestamp)
            if computed != reported:
                issues.append(Issue(read.address, "multiplier_schedule_mismatch",
                                    f"the token's multiplier is {reported} but its stored update events give "
                                    f"{computed} at block {block} (were updates announced before the configured "
                                    "deployment block?); using the contract's value"))
            row.update(multiplier_raw=reported, new_multiplier_raw=v.get("newUIMultiplier"),
                       activation_time=v.get("effectiveAt"))
        multipliers[read.address] = row["multiplier_raw"]
        rows.append(row)
    return rows, multipliers, issues


def _rebasing_row(read: TokenRead, block: int, timestamp: int, issues: list[Issue]) -> dict:
    """The multiplier columns of a Backed xStock's row: the contract's getCurrentMultiplier(), checked
    against the rule from its stored parameters."""
    current = read.values["getCurrentMultiplier"]
    reported = int(current[0])
    out: dict = dict(multiplier_raw=reported, multiplier_nonce=int(current[2]) if len(current) > 2 else None)
    params = rebasing_params_of(read.values)
    if params is None:
        return out
    try:
        computed = rebasing_multiplier_at(params, timestamp)[0]
    except MultiplierUndefined as exc:
        computed, why = None, str(exc)
    else:
        why = f"the stored parameters give {computed}"
    if computed != reported:
        issues.append(Issue(read.address, "multiplier_rule_mismatch",
                            f"getCurrentMultiplier() = {reported} but {why} at block {block}; using the "
                            "contract's value"))
    out.update(base_multiplier_raw=params.last_multiplier, new_multiplier_raw=params.new_multiplier,
               activation_time=params.activation_time, fee_per_period_raw=params.fee_per_period,
               period_length=params.period_length, last_time_fee_applied=params.last_time_fee_applied,
               last_multiplier_nonce=params.last_nonce, new_multiplier_nonce=params.new_nonce)
    return out


# Events that change an xStock's multiplier state beyond folding the fee that accrued
EXPLICIT_UPDATES = frozenset({"MultiplierScheduled", "MultiplierScheduleOverridden"})


def silent_change(before: RebasingParams, after: RebasingParams, t: int) -> bool:
    """Whether an xStock's state `after` (read at a block of time `t`) differs from what `before` (read at an
    earlier block) becomes by time `t` with no call but folds: then a call that emits no event changed
    it in between (a fee setter, or a scheduled update of a version that logs none). A fold changes no
    value, so both sides are compared folded at `t`."""
    try:
        return rebasing_fold(before, t) != rebasing_fold(after, t)
    except MultiplierUndefined:
        return before != after


def explicit_update(before: RebasingParams, events: Iterable[EventRecord], t: int) -> bool:
    """Whether a block's events of one xStock (of time `t`) changed its multiplier state beyond a fold:
    a scheduled update, an override, or `MultiplierUpdated` of another value than the fold's (an update
    in force at once)."""
    for e in events:
        if e.event in EXPLICIT_UPDATES:
            return True
        if e.event == "MultiplierUpdated":
            try:
                folded = rebasing_multiplier_at(before, t)[0]
            except MultiplierUndefined:
                return True
            if int(e.args["value"]) != folded:
                return True
    return False


def moved_multipliers(previous: Mapping[str, int], now: Mapping[str, int]) -> set[str]:
    """Tokens whose multiplier in force differs from the last stored one (it moves balances with no event)."""
    return {t for t, mult in now.items() if previous.get(t, WAD) != mult}


# ---------------------------------------------------------------------------------- prices
def phase_of(round_id: int) -> int:
    return round_id >> PHASE_SHIFT


def missing_round_ids(latest: int, stored: Mapping[int, int], phase_ends: Mapping[int, int]) -> list[int]:
    """Round ids of a feed to read: every round of every phase not stored yet. `latest` is the feed's
    latest round id (its phase is the proxy's current one), `stored` the highest stored aggregator round
    per phase, `phase_ends` the latest aggregator round of each earlier phase (its aggregator stays
    readable through the proxy, and may still have published after the last read)."""
    phase, agg = phase_of(latest), latest & (2**PHASE_SHIFT - 1)
    ids = []
    for p in sorted(phase_ends):
        if p < phase:
            ids += [(p << PHASE_SHIFT) | a for a in range(stored.get(p, 0) + 1, phase_ends[p] + 1)]
    return ids + [(phase << PHASE_SHIFT) | a for a in range(stored.get(phase, 0) + 1, agg + 1)]


def round_rows(cid: int, feed: str, reads: Iterable[RoundRead | None], block: int) -> list[dict]:
    return [dict(chain_id=cid, feed=feed, round_id=r.round_id, answer_raw=r.answer, started_at=r.started_at,
                 updated_at=r.updated_at, answered_in_round=r.answered_in_round, block_number=block,
                 quality=round_quality(r), phase=phase_of(r.round_id)) for r in reads if r is not None]


# ---------------------------------------------------------------------------------- account status
def account_status_rows(cid: int, events: Iterable[EventRecord], flags: Mapping[AccountKey, int | bool | None],
                        tokens: Mapping[str, Accounting], block: int) -> tuple[list[dict], list[Issue]]:
    """Freezes and sanctions from their events, checked against isFrozen / isSanctioned as read at
    `block` (`flags`); where the two disagree the contract's answer wins and the difference is an issue."""
    status = fold_account_events((e.contract, e.event, e.args, e.block_number) for e in events)
    issues = []
    for key, read in flags.items():
        row = status.get(key)
        if row is None:
            continue
        flag = "frozen" if key[0] in tokens else "sanctioned"
        if read is None:
            issues.append(Issue(key[0], "account_status_unreadable",
                                f"{'isFrozen' if flag == 'frozen' else 'isSanctioned'}({key[1]}) failed at block "
                                f"{block}; the status follows the events"))
        elif bool(read) != row[flag]:
            issues.append(Issue(key[0], "account_status_mismatch",
                                f"the events say {flag}={row[flag]} for {key[1]} but the contract answers "
                                f"{bool(read)} at block {block}; using the contract's answer"))
            row[flag] = bool(read)
    return status_rows(cid, status), issues


def flag_reads(events: Iterable[EventRecord], tokens: Mapping[str, Accounting]) -> tuple[list[AccountKey],
                                                                                         list[AccountKey]]:
    """(token, wallet) pairs to check with isFrozen, and (sanctions list, wallet) pairs to check with
    isSanctioned, for the freeze and sanction events of a tick."""
    frozen, listed = set(), set()
    for e in events:
        if e.event == "AddressFrozen" and tokens.get(e.contract) == Accounting.UI_MULTIPLIER:
            frozen.add((e.contract, e.args["wallet"]))
        elif e.event in ("SanctionedAddressesAdded", "SanctionedAddressesRemoved"):
            listed.update((e.contract, w) for w in e.args["wallets"])
    return sorted(frozen), sorted(listed)
