"""Pure accounting rules: the multiplier models, exactly as the contracts compute them."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

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

DAY = 86_400


def test_fee_periods_compound_with_rounding_down_each_period():
    p = RebasingParams(WAD, 1_000, fee_per_period=10**15, period_length=DAY)
    m, periods, nonce = rebasing_multiplier_at(p, 1_000 + 3 * DAY + 5)
    expected = WAD
    for _ in range(3):
        expected = expected * (WAD - 10**15) // WAD
    assert (m, periods, nonce) == (expected, 3, 3)
    assert rebasing_multiplier_at(p, 1_000 + DAY - 1) == (WAD, 0, 0)


def test_a_scheduled_update_holds_the_last_multiplier_until_it_activates_and_keeps_the_fee_clock():
    # scheduled 5 h into a daily fee period for 7 h into it: the first fee after activation falls at the end
    # of that same period (the clock runs from lastTimeFeeApplied), not a day after the activation
    keep = WAD - 10**15
    p = RebasingParams(WAD, 0, 10**15, DAY, new_multiplier=3 * WAD, activation_time=7 * 3600, last_nonce=4,
                       new_nonce=5)
    assert rebasing_multiplier_at(p, 7 * 3600 - 1) == (WAD, 0, 4)  # pending: the last value, no fee
    assert rebasing_multiplier_at(p, 7 * 3600) == (3 * WAD, 0, 5)
    assert rebasing_multiplier_at(p, DAY - 1) == (3 * WAD, 0, 5)
    assert rebasing_multiplier_at(p, DAY) == (3 * WAD * keep // WAD, 1, 6)
    assert rebasing_multiplier_at(p, 3 * DAY + 5)[:2] == (3 * WAD * keep // WAD * keep // WAD * keep // WAD, 3)


def test_with_no_fee_periods_pass_but_the_nonce_stays():
    p = RebasingParams(2 * WAD, 100, 0, DAY, new_multiplier=2 * WAD, last_nonce=3, new_nonce=3)
    assert rebasing_multiplier_at(p, 100 + 5 * DAY) == (2 * WAD, 5, 3)


def test_a_fold_moves_the_fee_clock_by_whole_periods_and_stores_the_value_in_force():
    p = RebasingParams(WAD, 1_000, 10**15, DAY, new_multiplier=WAD, last_nonce=0, new_nonce=0)
    folded = rebasing_fold(p, 1_000 + 2 * DAY + 500)
    m, _, nonce = rebasing_multiplier_at(p, 1_000 + 2 * DAY + 500)
    assert folded == RebasingParams(m, 1_000 + 2 * DAY, 10**15, DAY, m, 0, nonce, nonce)
    assert rebasing_multiplier_at(folded, 1_000 + 2 * DAY + 500) == (m, 0, nonce)


@settings(max_examples=200, deadline=None)
@given(
    fee=st.integers(0, 10**16),
    period=st.sampled_from([3600, DAY]),
    checkpoints=st.lists(st.integers(0, 40 * DAY), min_size=1, max_size=6),
    activation=st.one_of(st.just(0), st.integers(1, 40 * DAY)),
)
def test_folding_at_any_times_never_changes_the_multiplier(fee, period, checkpoints, activation):
    p = RebasingParams(WAD, 0, fee, period, new_multiplier=2 * WAD if activation else None,
                       activation_time=activation)
    end = 41 * DAY
    folded = p
    for t in sorted(checkpoints):
        folded = rebasing_fold(folded, t)
    assert rebasing_multiplier_at(folded, end)[0] == rebasing_multiplier_at(p, end)[0]


@given(shares=st.integers(0, 2**200), m=st.integers(1, 10 * WAD))
def test_a_transfer_of_a_whole_balance_never_moves_more_shares_than_held(shares, m):
    assert shares_from_amount(balance_from_shares(shares, m), m) <= shares


def test_ui_multiplier_in_force_follows_effective_times():
    ups = [UiMultiplierUpdate(2 * WAD, 100, 50), UiMultiplierUpdate(6 * WAD, 300, 200)]
    assert [ui_multiplier_at(ups, t) for t in (0, 99, 100, 299, 300)] == [WAD, WAD, 2 * WAD, 2 * WAD, 6 * WAD]


# -- corporate actions ----------------------------------------------------------------------------------
def test_rebasing_actions_from_reads_tell_a_split_from_a_fee():
    from indexer.accounting import CorporateAction, StateRead, rebasing_actions

    day = 86_400
    p0 = RebasingParams(WAD, 0, 10**14, day, new_multiplier=3 * WAD, activation_time=day // 2, last_nonce=0,
                        new_nonce=1)  # a 3-for-1 pending at the first read, activating at noon
    later = rebasing_multiplier_at(p0, 5 * day)[0]
    reads = [StateRead(3_600, WAD, p0), StateRead(5 * day, later, rebasing_fold(p0, 5 * day))]
    assert rebasing_actions(reads, 6 * day) == [CorporateAction(day // 2, 3 * WAD, WAD)]
    # an update in force at once shows as a read the rule does not predict
    p1 = rebasing_fold(p0, 5 * day)
    bumped = rebasing_multiplier_at(p1, 6 * day)[0] * 10_031 // 10_000
    reads.append(StateRead(6 * day, bumped, replace(p1, last_multiplier=bumped, new_multiplier=bumped)))
    acts = rebasing_actions(reads, 7 * day)
    assert acts[-1].effective_at == 6 * day and acts[-1].new == bumped


def test_rebasing_actions_from_events_before_any_read():
    from indexer.accounting import CorporateAction, MultiplierEvent, rebasing_event_actions

    folded = WAD * 9_999 // 10_000
    events = [MultiplierEvent(100, "MultiplierUpdated", {"value": str(folded)}),  # a fee fold
              MultiplierEvent(200, "MultiplierScheduled", {"new_multiplier": str(3 * folded), "activation_time": "300"}),
              MultiplierEvent(400, "MultiplierUpdated", {"value": str(3 * folded - 5)}),  # the fold after it
              MultiplierEvent(500, "MultiplierUpdated", {"value": str((3 * folded - 5) // 2)}),  # a 1-for-2, at once
              MultiplierEvent(600, "MultiplierScheduled", {"new_multiplier": "7", "activation_time": "900"}),
              MultiplierEvent(650, "MultiplierScheduleOverridden", {"overridden_multiplier": "7",
                              "overridden_activation_time": "900", "new_multiplier": str(3 * folded - 5),
                              "new_activation_time": "800"})]
    assert rebasing_event_actions(events, 1_000) == [
        CorporateAction(300, 3 * folded, folded),
        CorporateAction(500, (3 * folded - 5) // 2, 3 * folded - 5),
        CorporateAction(800, 3 * folded - 5, (3 * folded - 5) // 2)]
    assert rebasing_event_actions(events, 700) == rebasing_event_actions(events, 1_000)[:2]  # still pending


def test_a_split_logged_in_the_block_of_the_first_read_is_not_lost_between_events_and_reads():
    """The demo world's TSLAx synced from a node without old state: its 3-for-1 shows as the fold that raised
    the multiplier, and the first state read is in that very block; neither part alone sees the change."""
    from indexer.accounting import CorporateAction, MultiplierEvent, StateRead, rebasing_stored_actions

    before, after = WAD * 9_997 // 10_000, 3 * WAD * 9_997 // 10_000 - 11
    events = [MultiplierEvent(100, "MultiplierUpdated", {"value": str(WAD * 9_998 // 10_000)}),
              MultiplierEvent(200, "MultiplierUpdated", {"value": str(before)}),
              MultiplierEvent(500, "MultiplierUpdated", {"value": str(after)})]  # the fold after the split
    reads = [StateRead(500, after), StateRead(600, after)]
    assert rebasing_stored_actions(events, reads, 1_000) == [CorporateAction(500, after, before)]
    # a read before the event leaves the event to the reads' part, where the change is seen between reads
    reads = [StateRead(400, before), StateRead(500, after)]
    assert rebasing_stored_actions(events, reads, 1_000) == [CorporateAction(500, after, before)]


def test_ui_actions_before_the_first_read_come_from_the_events_old_and_new():
    from indexer.accounting import CorporateAction, StateRead, UiMultiplierUpdate, ui_actions

    updates = [UiMultiplierUpdate(2 * WAD, 1_000, 500, WAD), UiMultiplierUpdate(4 * WAD, 3_000, 2_500, 2 * WAD)]
    reads = [StateRead(2_000, 2 * WAD)]
    assert ui_actions(reads, updates, 4_000) == [CorporateAction(1_000, 2 * WAD, WAD),
                                                  CorporateAction(3_000, 4 * WAD, 2 * WAD)]
    assert ui_actions([], updates, 4_000) == [CorporateAction(1_000, 2 * WAD, WAD),
                                               CorporateAction(3_000, 4 * WAD, 2 * WAD)]
