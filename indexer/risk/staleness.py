"""When a feed is stale (RISK.md section 5): the one rule, for the risk engine and the service's watch."""

from __future__ import annotations

import numpy as np

from indexer.risk.calendar import TradingCalendar
from indexer.risk.policy import Policy
from indexer.types import FeedKind

_STOCK = FeedKind.STOCK.code


def heartbeats(kinds: np.ndarray, own_heartbeat_s: np.ndarray, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """(heartbeat, grace) per feed in seconds: the feed's own heartbeat when configured (> 0), else the
    policy's for its kind, and the policy's grace for its kind. `kinds` holds `FeedKind.code`s."""
    rules = [getattr(policy.staleness, FeedKind.from_code(k).policy_key) for k in np.asarray(kinds).tolist()]
    policy_hb = np.array([r.heartbeat_s for r in rules], dtype=np.int64)
    grace = np.array([r.grace_s for r in rules], dtype=np.int64)
    own = np.asarray(own_heartbeat_s, dtype=np.int64)
    return np.where(own > 0, own, policy_hb), grace


def feed_staleness(
    kinds: np.ndarray, updated_at: np.ndarray, limit_s: np.ndarray, now: int, calendar: TradingCalendar
) -> np.ndarray:
    """Which feeds are stale at ``now``: age beyond ``limit_s`` (heartbeat + grace).

    A stock feed is judged on the market's clock. While open, the clock is now and the heartbeat
    runs from the later of the round and the session open (a feed cannot update while the market is
    shut); while closed, the clock stops at the last close, so a weekend or a holiday never makes a
    healthy feed stale, but a stall in the last session shows. Other feeds run 24/7.
    """
    updated = np.asarray(updated_at, dtype=np.int64)
    if calendar.is_open(now):
        ref, start = now, int(calendar.current_session_open(now))
    else:
        ref, start = int(calendar.last_close_before(now)), int(calendar.session_open_of_last_close(now))
    stock_stale = ref - np.maximum(updated, start) > limit_s
    continuous_stale = now - updated > limit_s
    return np.where(np.asarray(kinds) == _STOCK, stock_stale, continuous_stale)


def stale_feeds(kinds: np.ndarray, updated_at: np.ndarray, own_heartbeat_s: np.ndarray, now: int, policy: Policy,
                calendar: TradingCalendar) -> tuple[np.ndarray, np.ndarray]:
    """(stale, heartbeat used) per feed at ``now``, under the policy's rules for each kind."""
    hb, grace = heartbeats(kinds, own_heartbeat_s, policy)
    return feed_staleness(kinds, updated_at, hb + grace, now, calendar), hb
