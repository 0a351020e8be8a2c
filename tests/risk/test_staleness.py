"""Calendar-aware staleness (RISK.md section 5): no false ORACLE_STALE while the market is shut,
a real stall in a session is caught, crypto feeds are judged 24/7."""

from __future__ import annotations

import pytest

from indexer.risk.eligibility import Eligibility
from indexer.risk.engine import run_risk
from indexer.types import FeedKind

from .worlds import WorldBuilder, flat_policy, ny

STALE = int(Eligibility.ORACLE_STALE)


def feed_codes(now: int, updated_at: int, kind: FeedKind = FeedKind.STOCK, heartbeat_s: int = 0) -> int:
    b = WorldBuilder()
    b.feed("SPY/USD", 500.0, kind=kind, updated_at=updated_at, heartbeat_s=heartbeat_s)
    return int(run_risk(b.build(now), flat_policy()).feeds.codes[0])


@pytest.mark.parametrize(
    ("now", "updated"),
    [
        ("2025-11-29 12:00", "2025-11-28 12:55"),  # Saturday after the 13:00 early close
        ("2025-03-09 23:00", "2025-03-07 15:59"),  # Sunday night, across the DST switch
        ("2025-06-19 14:00", "2025-06-18 15:55"),  # Juneteenth
        ("2025-04-20 14:00", "2025-04-17 15:58"),  # Easter Sunday, after Good Friday
        ("2025-01-09 14:00", "2025-01-08 15:50"),  # the 2025-01-09 closure
        ("2025-11-25 03:00", "2025-11-24 15:59"),  # overnight
        (
            "2025-11-24 09:35",
            "2025-11-21 15:59",
        ),  # five minutes after Monday's open: its clock starts at the open
    ],
)
def test_stock_feed_standing_still_while_closed_is_not_stale(now: str, updated: str) -> None:
    assert feed_codes(ny(now), ny(updated)) == 0


@pytest.mark.parametrize(
    ("now", "updated"),
    [
        ("2025-11-25 11:00", "2025-11-25 09:45"),  # 75 min in session > 60 min heartbeat + 10 min grace
        ("2025-11-24 10:41", "2025-11-21 15:59"),  # 71 min after the open with no update
        ("2025-11-29 12:00", "2025-11-27 15:59"),  # seen on Saturday: Friday's short session had no update
        (
            "2025-11-26 16:30",
            "2025-11-26 14:00",
        ),  # after the close: the last two hours of the session stalled
    ],
)
def test_stock_feed_stalled_in_a_session_is_stale(now: str, updated: str) -> None:
    assert feed_codes(ny(now), ny(updated)) == STALE


def test_limit_is_heartbeat_plus_grace_exactly() -> None:
    now = ny("2025-11-25 12:00")
    assert feed_codes(now, now - 4200) == 0  # 3600 + 600
    assert feed_codes(now, now - 4201) == STALE


def test_crypto_feed_is_judged_around_the_clock() -> None:
    saturday = ny("2025-11-29 12:00")
    assert feed_codes(saturday, saturday - 1800, FeedKind.CRYPTO) == 0
    assert feed_codes(saturday, saturday - 3901, FeedKind.CRYPTO) == STALE  # 3600 + 300
    # the feed's own configured heartbeat wins over the policy's default for its kind
    assert feed_codes(saturday, saturday - 7200, FeedKind.CRYPTO, heartbeat_s=86_400) == 0
    # stablecoin feeds use their own (24 h) rule
    assert feed_codes(saturday, saturday - 20 * 3600, FeedKind.STABLE) == 0
    assert feed_codes(saturday, saturday - 25 * 3600, FeedKind.STABLE) == STALE


def test_round_age_is_reported_per_holding() -> None:
    b = WorldBuilder()
    f = b.feed("SPY/USD", 500.0, updated_at=ny("2025-11-28 12:55"))
    t = b.token("SPYx", f)
    b.hold(b.wallet(), t, 1.0)
    now = ny("2025-11-29 12:55")
    run = run_risk(b.build(now), flat_policy())
    assert int(run.holdings.round_age_s[0]) == 86_400
    assert run.holdings.round_id[0] == 100
    assert run.market_state.name == "WEEKEND"
    assert int(run.holdings.market_state[0]) == int(run.market_state)
