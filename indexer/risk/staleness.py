"""When a feed is stale, and how stale (RISK.md section 5; docs/risk.md section 5): the one rule, for the
risk engine and the service's watch.

Age is measured on the clock of the feed's market. A stock feed's clock runs only in regular sessions
(``TradingCalendar.trading_seconds_between``): a weekend or a holiday never ages a price, a stall in a
session does, and so do the sessions a price has outlived. A 24/7 feed's clock is the wall clock.

The limit is the heartbeat plus the policy's grace. A stock feed's heartbeat of a day or more is read in
sessions (86,400 s = one session of trading time), so a daily heartbeat means a round every trading day
and a round nine sessions old is stale. Past the limit a price is *stale*: still used, with an add-on
that grows with its age (``engine``); past ``cutoff_multiple`` times the limit it is *cut off*: the
holding is ineligible (``ORACLE_STALE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.risk.calendar import TradingCalendar
from indexer.risk.policy import Policy
from indexer.types import FeedKind

_STOCK = FeedKind.STOCK.code
DAY_S = 86_400
SESSION_S = 23_400  # a regular XNYS session, 09:30-16:00: one trading day of the market's clock


@dataclass(frozen=True)
class Staleness:
    """Per feed, at one instant."""

    heartbeat_s: np.ndarray  # int64, the heartbeat used (the feed's own, else the policy's for its kind)
    limit_s: np.ndarray  # int64, on the feed's clock: heartbeat (in sessions for stocks) + grace
    cutoff_s: np.ndarray  # int64, on the feed's clock: past it the price is not used
    age_s: np.ndarray  # int64, age of the round on the feed's clock
    age_days: np.ndarray  # float64, that age in trading days (sessions for stocks, days for 24/7 feeds)
    stale: np.ndarray  # bool, age > limit
    cut_off: np.ndarray  # bool, age > cutoff


def heartbeats(kinds: np.ndarray, own_heartbeat_s: np.ndarray, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """(heartbeat, grace) per feed in seconds: the feed's own heartbeat when configured (> 0), else the
    policy's for its kind, and the policy's grace for its kind. `kinds` holds `FeedKind.code`s."""
    rules = [getattr(policy.staleness, FeedKind.from_code(k).policy_key) for k in np.asarray(kinds).tolist()]
    policy_hb = np.array([r.heartbeat_s for r in rules], dtype=np.int64)
    grace = np.array([r.grace_s for r in rules], dtype=np.int64)
    own = np.asarray(own_heartbeat_s, dtype=np.int64)
    return np.where(own > 0, own, policy_hb), grace


def clock_limit(kinds: np.ndarray, heartbeat_s: np.ndarray) -> np.ndarray:
    """A heartbeat on the feed's clock: a stock feed's heartbeat of a day or more counts sessions."""
    hb = np.asarray(heartbeat_s, dtype=np.int64)
    in_sessions = (np.asarray(kinds) == _STOCK) & (hb >= DAY_S)
    return np.where(in_sessions, hb * SESSION_S // DAY_S, hb).astype(np.int64)


def clock_age(kinds: np.ndarray, updated_at: np.ndarray, now: int, calendar: TradingCalendar) -> np.ndarray:
    """Age of each feed's round on its clock: trading seconds for stock feeds, wall seconds otherwise."""
    updated = np.asarray(updated_at, dtype=np.int64)
    stock = np.asarray(kinds) == _STOCK
    wall = np.int64(now) - updated
    if not stock.any():
        return wall
    start = np.minimum(np.where(stock, updated, now), now)
    traded = calendar.trading_seconds_between(start, np.full(len(updated), now, dtype=np.int64))
    return np.where(stock, traded, wall).astype(np.int64)


def assess_staleness(kinds: np.ndarray, updated_at: np.ndarray, own_heartbeat_s: np.ndarray, now: int,
                     policy: Policy, calendar: TradingCalendar) -> Staleness:
    kinds = np.asarray(kinds, dtype=np.int8)
    hb, grace = heartbeats(kinds, own_heartbeat_s, policy)
    limit = clock_limit(kinds, hb) + grace
    multiple = np.array([getattr(policy.staleness, FeedKind.from_code(k).policy_key).cutoff_multiple
                         for k in kinds.tolist()], dtype=np.float64)
    cutoff = np.maximum(np.ceil(limit * multiple), limit).astype(np.int64)
    age = clock_age(kinds, updated_at, now, calendar)
    per_day = np.where(kinds == _STOCK, SESSION_S, DAY_S)
    return Staleness(heartbeat_s=hb, limit_s=limit, cutoff_s=cutoff, age_s=age,
                     age_days=np.maximum(age, 0) / per_day, stale=age > limit, cut_off=age > cutoff)


def stale_feeds(kinds: np.ndarray, updated_at: np.ndarray, own_heartbeat_s: np.ndarray, now: int, policy: Policy,
                calendar: TradingCalendar) -> tuple[np.ndarray, np.ndarray]:
    """(stale, heartbeat used) per feed at ``now``, under the policy's rules for each kind."""
    s = assess_staleness(kinds, updated_at, own_heartbeat_s, now, policy, calendar)
    return s.stale, s.heartbeat_s
