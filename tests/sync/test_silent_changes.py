"""The pure rules that find an xStock's state changes that log no event (`sync.derive`): a fold changes no
value and is never a change; a fee setter, a period setter or a V3 schedule is; and the events of a block
tell an explicit update from a fold."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from indexer.accounting import WAD, RebasingParams, rebasing_fold
from indexer.chain.decode import EventRecord
from indexer.sync.derive import explicit_update, silent_change

DAY = 86_400
T0 = 1_767_225_600
FEE = 10**15 // 365  # a 0.1 % a year management fee, charged daily
BASE = RebasingParams(WAD, T0, FEE, DAY, new_multiplier=WAD, activation_time=0, last_nonce=0, new_nonce=0)


def _event(name: str, **args: int) -> EventRecord:
    return EventRecord(1, 0, "0x" + "11" * 32, "0x" + "22" * 32, "0x" + "33" * 20, name, args)


@given(st.integers(0, 400 * DAY), st.integers(0, 400 * DAY))
def test_a_fold_at_any_time_is_not_a_change(fold_after: int, later: int):
    folded = rebasing_fold(BASE, T0 + fold_after)
    assert not silent_change(BASE, folded, T0 + fold_after + later)


def test_fee_and_period_setters_and_a_schedule_without_its_event_are_changes():
    t = T0 + 10 * DAY + 5
    assert silent_change(BASE, replace(rebasing_fold(BASE, t), fee_per_period=2 * FEE), t)
    assert silent_change(BASE, replace(rebasing_fold(BASE, t), period_length=DAY // 2), t + DAY)
    assert silent_change(BASE, replace(BASE, last_time_fee_applied=T0 + 3_600), t)  # setLastTimeFeeApplied
    scheduled = replace(rebasing_fold(BASE, t), new_multiplier=3 * WAD, activation_time=t + DAY, new_nonce=11)
    assert silent_change(BASE, scheduled, t)  # pending: the multiplier in force is the same, the state is not
    # a fee of zero changes nothing over time, but a new fee clock with a fee is a change
    free = replace(BASE, fee_per_period=0)
    assert not silent_change(free, replace(free, last_time_fee_applied=T0 + 7 * DAY), T0 + 9 * DAY)


def test_a_state_the_contract_cannot_compute_is_compared_as_read():
    broken = replace(BASE, period_length=0)
    assert not silent_change(broken, broken, T0 + DAY)
    assert silent_change(broken, BASE, T0 + DAY)


def test_the_events_of_a_block_tell_an_explicit_update_from_a_fold():
    t = T0 + 3 * DAY + 60
    folded_value = rebasing_fold(BASE, t).last_multiplier
    assert folded_value < WAD
    assert not explicit_update(BASE, [_event("MultiplierUpdated", value=folded_value)], t)  # the fold's own event
    assert explicit_update(BASE, [_event("MultiplierUpdated", value=WAD // 3)], t)  # an update in force at once
    assert explicit_update(BASE, [_event("MultiplierScheduled", value=WAD, activationTime=t + 1)], t)
    assert explicit_update(BASE, [_event("Transfer", value=5), _event("MultiplierScheduleOverridden", value=1)], t)
    assert not explicit_update(BASE, [_event("Transfer", value=5)], t)
    assert explicit_update(replace(BASE, period_length=0), [_event("MultiplierUpdated", value=WAD)], t)
