"""Calendar-aware, graded staleness (RISK.md section 5, docs/risk.md section 5): ages on the market's
clock, so no false alarm while the market is shut and a real stall in a session is caught; past the
limit a price is stale (graded add-on), past the cut-off it is ORACLE_STALE; crypto is judged 24/7;
hourly, daily and 24/7 heartbeats each flagged when they should be."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.risk.calendar import xnys
from indexer.risk.eligibility import Eligibility
from indexer.risk.engine import MarginStatus, run_risk
from indexer.types import Accounting, FeedKind

from .worlds import WorldBuilder, flat_policy, ny, policy_with

STALE = int(Eligibility.ORACLE_STALE)
GRADED = -1  # stale past the limit, still used with its add-on


def feed_codes(now: int, updated_at: int, kind: FeedKind = FeedKind.STOCK, heartbeat_s: int = 0) -> int:
    """The feed's codes, or GRADED when it is stale but within the cut-off."""
    b = WorldBuilder()
    b.feed("SPY/USD", 500.0, kind=kind, updated_at=updated_at, heartbeat_s=heartbeat_s)
    feeds = run_risk(b.build(now), flat_policy()).feeds
    if bool(feeds.stale[0]):
        assert int(feeds.codes[0]) == 0 and feeds.h_stale[0] > 0
        return GRADED
    return int(feeds.codes[0])


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
        ),  # five minutes after Monday's open: Friday's last minute and five of Monday's
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
    assert feed_codes(ny(now), ny(updated)) == GRADED


def test_limit_is_heartbeat_plus_grace_and_the_cut_off_four_times_it() -> None:
    now = ny("2025-11-25 15:00")
    assert feed_codes(now, now - 4200) == 0  # 3600 + 600
    assert feed_codes(now, now - 4201) == GRADED
    # 4 x 4200 = 16,800 trading seconds: 13:40 on Monday is 2h20 of Monday and 5h30 of Tuesday
    assert feed_codes(now, ny("2025-11-25 10:20")) == GRADED  # 16,800 s exactly
    assert feed_codes(now, ny("2025-11-25 10:20") - 1) == STALE


def test_crypto_feed_is_judged_around_the_clock() -> None:
    saturday = ny("2025-11-29 12:00")
    assert feed_codes(saturday, saturday - 1800, FeedKind.CRYPTO) == 0
    assert feed_codes(saturday, saturday - 3901, FeedKind.CRYPTO) == GRADED  # 3600 + 300
    assert feed_codes(saturday, saturday - 4 * 3900 - 1, FeedKind.CRYPTO) == STALE
    # the feed's own configured heartbeat wins over the policy's default for its kind
    assert feed_codes(saturday, saturday - 7200, FeedKind.CRYPTO, heartbeat_s=86_400) == 0
    # stablecoin feeds use their own (24 h) rule
    assert feed_codes(saturday, saturday - 20 * 3600, FeedKind.STABLE) == 0
    assert feed_codes(saturday, saturday - 25 * 3600, FeedKind.STABLE) == GRADED


def test_a_daily_heartbeat_counts_sessions() -> None:
    """Chainlink's equity feeds often carry a 24 h heartbeat: it means a round every trading day. The old
    in-session rule could never fire for it; on the market's clock a round nine sessions old is cut off."""
    wednesday = ny("2025-11-26 12:00")
    daily = 86_400
    # limit: one session of trading time (23,400 s) + 600 s grace; cut-off four times that
    assert feed_codes(wednesday, ny("2025-11-26 09:31"), heartbeat_s=daily) == 0
    assert feed_codes(wednesday, ny("2025-11-25 12:00"), heartbeat_s=daily) == 0  # exactly one session
    assert feed_codes(wednesday, ny("2025-11-25 11:45"), heartbeat_s=daily) == GRADED  # 15 min past + grace
    assert feed_codes(wednesday, ny("2025-11-13 12:00"), heartbeat_s=daily) == STALE  # nine sessions
    # a weekend does not age it: Friday's 12:00 round is fresh on Monday at 09:40 (4 h + 10 min traded)
    assert feed_codes(ny("2025-11-24 09:40"), ny("2025-11-21 12:00"), heartbeat_s=daily) == 0


def test_an_hourly_heartbeat_and_a_24_7_heartbeat_are_flagged_when_they_should_be() -> None:
    now = ny("2025-11-26 12:00")
    hourly = 3_600
    assert feed_codes(now, now - 3_000, heartbeat_s=hourly) == 0
    assert feed_codes(now, now - 4_500, heartbeat_s=hourly) == GRADED
    # crypto with a 24 h heartbeat on the wall clock: 25 h is stale, 5 days is cut off
    assert feed_codes(now, now - 23 * 3_600, FeedKind.CRYPTO, heartbeat_s=86_400) == 0
    assert feed_codes(now, now - 25 * 3_600, FeedKind.CRYPTO, heartbeat_s=86_400) == GRADED
    assert feed_codes(now, now - 5 * 86_400, FeedKind.CRYPTO, heartbeat_s=86_400) == STALE


def test_the_stale_add_on_grows_with_the_age_on_the_market_clock() -> None:
    now = ny("2025-11-26 15:00")
    adds = []
    for minutes in (71, 90, 120, 180, 240, 279):
        b = WorldBuilder()
        b.feed("SPY/USD", 500.0, updated_at=now - 60 * minutes)
        feeds = run_risk(b.build(now), flat_policy(**{"volatility.enabled": True})).feeds
        assert bool(feeds.stale[0]) and int(feeds.codes[0]) == 0
        assert feeds.h_stale[0] == pytest.approx(
            2.3263478740408408 * float(feeds.sigma[0]) * (60 * minutes / 23_400) ** 0.5, rel=1e-12)
        adds.append(float(feeds.h_stale[0]))
    assert adds == sorted(adds) and adds[0] > 0


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


@settings(max_examples=60, deadline=None)
@given(minutes=st.integers(71, 280), cash=st.floats(-9_000.0, 2_000.0), size=st.floats(-3.0, 3.0),
       leverage=st.sampled_from([2.0, 5.0, 20.0]))
def test_an_oracle_stall_alone_never_liquidates(minutes: int, cash: float, size: float, leverage: float) -> None:
    """Within the cut-off a stalled stock feed makes collateral smaller, never a healthy wallet liquidated:
    the status goes no further than a margin call, and says a stale input drove it."""
    now = ny("2025-11-26 15:00")
    closes = xnys().closes_up_to(now, 120)
    rng = np.random.default_rng(minutes)
    spy = 500.0 * np.exp(np.cumsum(rng.normal(0, 0.012, len(closes))))

    def snap(updated_at: int):
        b = WorldBuilder()
        f = b.feed("SPY/USD", float(spy[-1]), updated_at=updated_at, history=list(zip(closes.tolist(), spy.tolist(),
                                                                                      strict=True)))
        fb = b.feed("BTC/USD", 60_000.0, kind=FeedKind.CRYPTO, updated_at=now - 60)
        w = b.wallet(cash=cash)
        b.hold(w, b.token("SPYx", f), 20.0)
        if size:
            b.position(w, fb, size, 60_000.0, leverage)
        return b.build(now)

    policy = policy_with()
    fresh = run_risk(snap(now - 60), policy).wallets
    stalled = run_risk(snap(now - 60 * minutes), policy)
    assert bool(stalled.feeds.stale[0]) and int(stalled.feeds.codes[0]) == 0
    w = stalled.wallets
    assert stalled.holdings.collateral_value[0] < run_risk(snap(now - 60), policy).holdings.collateral_value[0]
    if int(fresh.status[0]) < MarginStatus.LIQUIDATE:
        assert int(w.status[0]) <= MarginStatus.MARGIN_CALL
    assert int(w.status[0]) >= int(fresh.status[0])
    assert bool(w.stale_driven[0]) == (int(w.status[0]) > int(fresh.status[0]))


def test_the_three_hour_googl_stall_moves_a_wallet_to_margin_call_at_most() -> None:
    """The finding: during a three-hour in-session stall 19 wallets went to liquidate on the oracle alone.
    A wallet whose collateral covers its initial margin only at fresh prices is now a stale-driven margin
    call, and its collateral is cut by the graded add-on, not to zero."""
    now = ny("2026-04-22 16:00")

    def run(updated_at: int, leverage: float):
        b = WorldBuilder()
        f = b.feed("GOOGL/USD", 280.0, updated_at=updated_at,
                   history=[(int(c), 280.0) for c in xnys().closes_up_to(now, 60)])
        fb = b.feed("BTC/USD", 60_000.0, kind=FeedKind.CRYPTO, updated_at=now - 60)
        w = b.wallet(cash=0.0)
        b.hold(w, b.token("GOOGL", f, accounting=Accounting.UI_MULTIPLIER, decimals=6), 100.0)
        b.position(w, fb, 0.25, 60_000.0, leverage)
        return run_risk(b.build(now), policy_with())

    collateral = float(run(now - 60, 5.0).wallets.collateral[0])
    leverage = 15_000.0 / (collateral - 50.0)  # IM 50 USD below the fresh collateral
    fresh, stalled = run(now - 60, leverage), run(now - 3 * 3_600, leverage)
    assert int(fresh.wallets.status[0]) == MarginStatus.HEALTHY
    assert int(stalled.wallets.status[0]) == MarginStatus.MARGIN_CALL
    assert bool(stalled.wallets.stale_driven[0])
    assert 0.0 < stalled.holdings.h_stale[0] < 0.05
    assert stalled.wallets.collateral[0] > 0.9 * collateral
    assert any("GOOGL/USD: stale" in n for n in stalled.notes)
