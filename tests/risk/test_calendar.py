"""XNYS calendar as numpy arrays: hand-checked dates, and agreement with exchange_calendars itself."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.risk.calendar import MarketState, xnys

from .worlds import ny

HOUR = 3600


@pytest.fixture(scope="module")
def cal():
    return xnys()


def utc(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


@pytest.mark.parametrize(
    ("day", "open_utc", "close_utc"),
    [
        ("2025-03-07", "2025-03-07 14:30", "2025-03-07 21:00"),  # Friday before the spring switch: EST, UTC-5
        ("2025-03-10", "2025-03-10 13:30", "2025-03-10 20:00"),  # Monday after it: EDT, UTC-4
        ("2025-10-31", "2025-10-31 13:30", "2025-10-31 20:00"),  # Friday before the autumn switch: EDT
        ("2025-11-03", "2025-11-03 14:30", "2025-11-03 21:00"),  # Monday after it: EST
    ],
)
def test_regular_sessions_follow_new_york_time_across_dst_switches(cal, day, open_utc, close_utc) -> None:
    o, c = utc(open_utc), utc(close_utc)
    assert cal.market_state(o - 1) == MarketState.OVERNIGHT
    assert cal.market_state(o) == MarketState.OPEN
    assert cal.market_state(c - 1) == MarketState.OPEN
    assert cal.market_state(c) == MarketState.OVERNIGHT
    assert cal.seconds_to_next_open(o - 60) == 60
    assert cal.last_close_before(c) == c
    assert not cal.early_close_day(o)


def test_day_after_thanksgiving_closes_at_1300(cal) -> None:
    assert cal.market_state(ny("2025-11-28 12:59")) == MarketState.OPEN
    assert cal.market_state(ny("2025-11-28 13:00")) == MarketState.EARLY_CLOSE
    assert cal.market_state(ny("2025-11-28 23:59")) == MarketState.EARLY_CLOSE
    assert cal.market_state(ny("2025-11-29 00:00")) == MarketState.WEEKEND
    assert cal.early_close_day(ny("2025-11-28 10:00"))
    assert cal.last_close_before(ny("2025-11-29 12:00")) == utc("2025-11-28 18:00")
    # from the early close to Monday's open: 68.5 hours, one business day (Monday)
    assert cal.seconds_to_next_open(ny("2025-11-28 13:00")) == 68 * HOUR + 30 * 60
    assert cal.trading_days_until_next_open(ny("2025-11-29 12:00")) == 1


def test_thanksgiving_juneteenth_good_friday_and_christmas_are_holidays(cal) -> None:
    for when in (
        "2025-11-27 11:00",
        "2025-06-19 11:00",
        "2025-04-18 11:00",
        "2025-12-25 11:00",
        "2024-07-04 11:00",
    ):
        assert cal.market_state(ny(when)) == MarketState.HOLIDAY, when
    assert cal.market_state(ny("2025-12-24 13:30")) == MarketState.EARLY_CLOSE  # Christmas Eve, 13:00 close
    # Juneteenth (Thursday): Wednesday's close to Friday's open spans Thursday and Friday
    assert cal.trading_days_until_next_open(ny("2025-06-18 18:00")) == 2
    assert cal.next_open_at_or_after(ny("2025-06-19 11:00")) == ny("2025-06-20 09:30")
    # Good Friday: Thursday 16:00 to Monday 09:30 is 89.5 hours and two business days
    assert cal.seconds_to_next_open(ny("2025-04-17 16:00")) == 89 * HOUR + 30 * 60
    assert cal.trading_days_until_next_open(ny("2025-04-19 12:00")) == 2


def test_one_off_closure_of_2025_01_09_is_a_holiday(cal) -> None:
    assert cal.market_state(ny("2025-01-09 12:00")) == MarketState.HOLIDAY
    assert cal.last_close_before(ny("2025-01-09 12:00")) == ny("2025-01-08 16:00")
    assert cal.next_open_at_or_after(ny("2025-01-09 12:00")) == ny("2025-01-10 09:30")
    assert cal.trading_days_until_next_open(ny("2025-01-09 12:00")) == 2


def test_weekend_and_overnight_states_and_time_to_open(cal) -> None:
    assert cal.market_state(ny("2025-03-08 12:00")) == MarketState.WEEKEND
    assert cal.market_state(ny("2025-03-09 23:59")) == MarketState.WEEKEND
    assert cal.market_state(ny("2025-03-10 00:00")) == MarketState.OVERNIGHT
    # Saturday 12:00 EST (17:00 UTC) to Monday 09:30 EDT (13:30 UTC): 44.5 hours across the DST switch
    assert cal.seconds_to_next_open(ny("2025-03-08 12:00")) == 44 * HOUR + 30 * 60
    assert cal.trading_days_until_next_open(ny("2025-03-11 20:00")) == 1
    assert cal.trading_days_until_next_open(ny("2025-03-11 10:00")) == 0
    assert cal.seconds_to_next_open(ny("2025-03-11 10:00")) == 0


def test_queries_are_vectorized_over_many_timestamps(cal) -> None:
    ts = np.arange(ny("2025-01-01 00:00"), ny("2025-12-31 00:00"), 1800, dtype=np.int64)
    states = cal.market_state(ts)
    assert states.shape == ts.shape and states.dtype == np.int8
    assert set(np.unique(states).tolist()) == {0, 1, 2, 3, 4}
    assert (cal.seconds_to_next_open(ts)[states == MarketState.OPEN] == 0).all()
    assert (cal.seconds_to_next_open(ts)[states != MarketState.OPEN] > 0).all()
    # 250 sessions in 2025: 365 days - 104 weekend days - 10 holidays - 1 one-off closure
    opens = cal.opens[(cal.opens >= ny("2025-01-01 00:00")) & (cal.opens < ny("2026-01-01 00:00"))]
    assert len(opens) == 250


def test_timestamps_outside_the_table_are_refused_with_the_range(cal) -> None:
    with pytest.raises(ValueError, match="calendar covers"):
        cal.market_state(ny("1999-06-01 12:00"))


@pytest.fixture(scope="module")
def xc():
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcals.get_calendar("XNYS", start="2000-01-01", end="2040-12-31")


@settings(max_examples=150, deadline=None)
@given(minute=st.integers(ny("2001-01-02 00:00") // 60, ny("2039-12-01 00:00") // 60))
def test_open_next_open_and_last_close_agree_with_exchange_calendars(cal, xc, minute: int) -> None:
    ts = minute * 60
    stamp = pd.Timestamp(ts, unit="s", tz="UTC")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        is_open = bool(xc.is_open_on_minute(stamp))
        prev_close = int(xc.previous_close(stamp + pd.Timedelta(minutes=1)).timestamp())
        nxt = int(xc.next_open(stamp - pd.Timedelta(minutes=1)).timestamp())
    assert bool(cal.is_open(ts)) == is_open
    assert int(cal.last_close_before(ts)) == prev_close
    assert int(cal.next_open_at_or_after(ts)) == (nxt if not is_open else int(cal.current_session_open(ts)))
