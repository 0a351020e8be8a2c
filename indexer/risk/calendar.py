"""US equity market calendar (XNYS) as numpy arrays, for vectorized market-state queries.

The sessions come from ``exchange_calendars`` (holidays, early closes and one-off closures computed
by rule, DST handled through America/New_York), read once into sorted int64 arrays of UTC epoch
seconds. Every query is a ``np.searchsorted`` over those arrays, so thousands of timestamps cost a
few vector operations and no per-row pandas call (RISK.md section 5).

Timestamps are UTC epoch seconds (int64). Intervals follow exchange_calendars' ``side="left"``:
the market is open on ``open <= ts < close``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

NEW_YORK = "America/New_York"
DEFAULT_FIRST_YEAR = 2000
DEFAULT_LAST_YEAR = 2040


class MarketState(IntEnum):
    """State of an underlying market at a timestamp; stored as int8 in results."""

    OPEN = 0  # inside a regular session (including the shortened session of an early-close day)
    OVERNIGHT = 1  # a weekday with a session, before its open or after its regular close
    WEEKEND = 2  # Saturday or Sunday, New York local date
    HOLIDAY = 3  # a weekday with no session (full holiday or one-off closure such as 2025-01-09)
    EARLY_CLOSE = 4  # after an early close (e.g. 13:00 the day after Thanksgiving), same local date
    CONTINUOUS = 5  # a 24/7 market (crypto feeds); never returned by the equity calendar


def _epoch_seconds(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    if isinstance(values, pd.Series):
        values = pd.DatetimeIndex(values)
    if values.tz is not None:
        values = values.tz_convert("UTC").tz_localize(None)
    return values.as_unit("s").asi8.astype(np.int64)


@dataclass(frozen=True, eq=False)
class TradingCalendar:
    """Sessions of one exchange as sorted arrays, plus one row per New York local day.

    ``opens[i] < closes[i] <= opens[i + 1]``; ``day_start[k]`` is the UTC instant of local midnight
    of day ``k`` and ``day_session[k]`` the index of that day's session or -1.
    """

    name: str
    opens: np.ndarray  # int64, UTC seconds
    closes: np.ndarray  # int64, UTC seconds
    early_close: np.ndarray  # bool, session closes before its regular time
    day_start: np.ndarray  # int64, UTC seconds of local midnight, one per local calendar day
    day_session: np.ndarray  # int64, session index for the day or -1
    day_weekday: np.ndarray  # int8, Monday = 0
    day_weekday_count: np.ndarray  # int64, number of Mon-Fri days before day k (for day counting)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_exchange_calendars(cls, name: str, first_year: int, last_year: int) -> TradingCalendar:
        import exchange_calendars as xcals

        with warnings.catch_warnings():
            # exchange_calendars 4.13 reads Series.values, which pandas 3 flags as deprecated.
            warnings.simplefilter("ignore")
            cal = xcals.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
            schedule = cal.schedule
            early = set(pd.DatetimeIndex(cal.early_closes).normalize())
        opens = _epoch_seconds(schedule["open"])
        closes = _epoch_seconds(schedule["close"])
        session_days = pd.DatetimeIndex(schedule.index).tz_localize(None).normalize()
        early_close = np.asarray([d in early for d in session_days], dtype=bool)

        local_days = pd.date_range(f"{first_year}-01-01", f"{last_year}-12-31", freq="D", tz=cal.tz)
        day_start = _epoch_seconds(local_days)
        naive_days = local_days.tz_localize(None)
        day_weekday = naive_days.day_of_week.to_numpy().astype(np.int8)
        pos = naive_days.get_indexer(session_days)
        if (pos < 0).any():
            raise ValueError(f"{name}: a session falls outside the local-day table")
        day_session = np.full(len(local_days), -1, dtype=np.int64)
        day_session[pos] = np.arange(len(session_days), dtype=np.int64)
        is_weekday = (day_weekday < 5).astype(np.int64)
        day_weekday_count = np.concatenate(([0], np.cumsum(is_weekday)[:-1])).astype(np.int64)
        return cls(
            name=name,
            opens=opens,
            closes=closes,
            early_close=early_close,
            day_start=day_start,
            day_session=day_session,
            day_weekday=day_weekday,
            day_weekday_count=day_weekday_count,
        )

    # -- lookups --------------------------------------------------------------------------------

    def _as_ts(self, ts: np.ndarray | int) -> np.ndarray:
        arr = np.asarray(ts, dtype=np.int64)
        if arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < self.day_start[0] or hi >= self.day_start[-1] + 86_400:
                first = pd.Timestamp(int(self.day_start[0]), unit="s", tz="UTC").date()
                last = pd.Timestamp(int(self.day_start[-1]), unit="s", tz="UTC").date()
                raise ValueError(
                    f"{self.name} calendar covers {first}..{last}; timestamp range {lo}..{hi} is outside it: "
                    "build a wider one with xnys(first_year, last_year)"
                )
        return arr

    def local_day(self, ts: np.ndarray | int) -> np.ndarray:
        """Index of the New York local calendar day containing each timestamp."""
        arr = self._as_ts(ts)
        return np.searchsorted(self.day_start, arr, side="right") - 1

    def market_state(self, ts: np.ndarray | int) -> np.ndarray:
        """MarketState code (int8) for each timestamp."""
        arr = self._as_ts(ts)
        day = np.searchsorted(self.day_start, arr, side="right") - 1
        sess = self.day_session[day]
        has = sess >= 0
        s = np.where(has, sess, 0)
        o, c = self.opens[s], self.closes[s]
        state = np.where(self.day_weekday[day] >= 5, MarketState.WEEKEND, MarketState.HOLIDAY).astype(np.int8)
        open_now = has & (arr >= o) & (arr < c)
        after_early = has & (arr >= c) & self.early_close[s]
        state[has] = MarketState.OVERNIGHT
        state[open_now] = MarketState.OPEN
        state[after_early] = MarketState.EARLY_CLOSE
        return state

    def early_close_day(self, ts: np.ndarray | int) -> np.ndarray:
        """True where the local day of the timestamp has a session that closes early."""
        day = self.local_day(ts)
        sess = self.day_session[day]
        return (sess >= 0) & self.early_close[np.where(sess >= 0, sess, 0)]

    def is_open(self, ts: np.ndarray | int) -> np.ndarray:
        arr = self._as_ts(ts)
        i = np.searchsorted(self.opens, arr, side="right") - 1
        ok = i >= 0
        return ok & (arr < self.closes[np.where(ok, i, 0)])

    def next_open_at_or_after(self, ts: np.ndarray | int) -> np.ndarray:
        """Open of the current session when open, else of the next session (UTC seconds)."""
        arr = self._as_ts(ts)
        i = np.searchsorted(self.opens, arr, side="right") - 1
        ok = i >= 0
        open_now = ok & (arr < self.closes[np.where(ok, i, 0)])
        j = np.searchsorted(self.opens, arr, side="left")
        if (j >= len(self.opens)).any():
            raise ValueError(f"{self.name} calendar has no session after {int(arr.max())}: build a wider one")
        return np.where(open_now, self.opens[np.where(ok, i, 0)], self.opens[j])

    def seconds_to_next_open(self, ts: np.ndarray | int) -> np.ndarray:
        """0 while open, else seconds until the next session opens."""
        arr = self._as_ts(ts)
        return np.where(self.is_open(arr), 0, self.next_open_at_or_after(arr) - arr).astype(np.int64)

    def last_close_before(self, ts: np.ndarray | int) -> np.ndarray:
        """Most recent session close at or before each timestamp (UTC seconds)."""
        arr = self._as_ts(ts)
        k = np.searchsorted(self.closes, arr, side="right") - 1
        if (k < 0).any():
            raise ValueError(f"{self.name} calendar has no close before {int(arr.min())}: build a wider one")
        return self.closes[k]

    def session_open_of_last_close(self, ts: np.ndarray | int) -> np.ndarray:
        """Open of the session whose close is ``last_close_before(ts)``."""
        arr = self._as_ts(ts)
        k = np.searchsorted(self.closes, arr, side="right") - 1
        return self.opens[np.maximum(k, 0)]

    def current_session_open(self, ts: np.ndarray | int) -> np.ndarray:
        """Open of the session in progress, or -1 where the market is closed."""
        arr = self._as_ts(ts)
        i = np.searchsorted(self.opens, arr, side="right") - 1
        ok = i >= 0
        s = np.where(ok, i, 0)
        return np.where(ok & (arr < self.closes[s]), self.opens[s], -1)

    def trading_days_until_next_open(self, ts: np.ndarray | int) -> np.ndarray:
        """Business days the closed market spans: 0 while open.

        While closed, the count of Monday-Friday local dates in ``(date of the last close, date of
        the next open]``: 1 for an ordinary night or weekend, 2 for Good Friday or a weekday
        holiday, 3 for Christmas Thursday plus a Friday bridge. The whole closed interval counts,
        not only what is left of it, because the oracle froze at the last close and the next open
        prices the full move (RISK.md section 4, h_gap). Weekend days count zero, as in trading-time
        volatility: the daily sigma is estimated from close-to-close returns, so a Friday-to-Monday
        return is one observation.
        """
        arr = self._as_ts(ts)
        open_now = self.is_open(arr)
        last_close = self.last_close_before(arr)
        next_open = self.next_open_at_or_after(arr)
        d_close = np.searchsorted(self.day_start, last_close, side="right") - 1
        d_open = np.searchsorted(self.day_start, next_open, side="right") - 1
        # weekday days in (d_close, d_open] = count(before d_open + 1) - count(before d_close + 1)
        n = (
            self.day_weekday_count[d_open]
            + (self.day_weekday[d_open] < 5)
            - (self.day_weekday_count[d_close] + (self.day_weekday[d_close] < 5))
        )
        return np.where(open_now, 0, n).astype(np.int64)

    @cached_property
    def _open_before_session(self) -> np.ndarray:
        """Open seconds of all sessions before session i (one more entry than sessions)."""
        return np.concatenate(([0], np.cumsum(self.closes - self.opens))).astype(np.int64)

    def open_seconds_before(self, ts: np.ndarray | int) -> np.ndarray:
        """Seconds the market has been open from the table's first session up to each timestamp."""
        arr = self._as_ts(ts)
        i = np.searchsorted(self.opens, arr, side="right") - 1
        ok = i >= 0
        s = np.where(ok, i, 0)
        inside = np.clip(arr - self.opens[s], 0, self.closes[s] - self.opens[s])
        return np.where(ok, self._open_before_session[s] + inside, 0).astype(np.int64)

    def trading_seconds_between(self, start: np.ndarray | int, end: np.ndarray | int) -> np.ndarray:
        """Seconds of regular sessions in ``[start, end)``: the age of a price on the market's clock,
        which stands still overnight, at weekends and on holidays."""
        return np.maximum(self.open_seconds_before(end) - self.open_seconds_before(start), 0)

    def closure_days_before(self, ts: np.ndarray | int) -> np.ndarray:
        """Business days of the closure that ended at the open of the session in progress at ``ts`` (the
        ``trading_days_until_next_open`` of the instant before that open); 0 where the market is closed."""
        arr = self._as_ts(ts)
        opened = self.current_session_open(arr)
        out = np.zeros(arr.shape, dtype=np.int64)
        live = opened >= 0
        if live.any():
            out[live] = self.trading_days_until_next_open(opened[live] - 1)
        return out

    def closes_up_to(self, ts: int, count: int) -> np.ndarray:
        """The last ``count`` session closes at or before ``ts`` (fewer if the table starts later)."""
        k = int(np.searchsorted(self.closes, np.int64(ts), side="right"))
        return self.closes[max(0, k - count) : k]


@lru_cache(maxsize=4)
def xnys(first_year: int = DEFAULT_FIRST_YEAR, last_year: int = DEFAULT_LAST_YEAR) -> TradingCalendar:
    """The New York Stock Exchange calendar for the given years, built once per range."""
    return TradingCalendar.from_exchange_calendars("XNYS", first_year, last_year)
