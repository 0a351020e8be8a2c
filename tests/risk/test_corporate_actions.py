"""Corporate actions with no market move change no value (docs/risk.md section 2).

A split, a reverse split or a stock dividend folded into the multiplier changes the number of shares and
the price of one, not what a holding is worth: sigma, market value and collateral are the same as in the
world where it never happened, before the feed prints the new price (the price is valued at the multiplier
of its own time) and after. A fee accrual takes tokens from holders, not value from the share: it moves no
sigma, and the holding is worth exactly its smaller balance at the same price."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.risk.calendar import xnys
from indexer.risk.eligibility import Eligibility
from indexer.risk.engine import run_risk
from indexer.risk.policy import Policy
from indexer.types import Accounting, FeedKind, PriceQuote
from tests.oracles.reference import reference_run

from .worlds import E18, WorldBuilder, ny, policy_with

NOW = ny("2026-03-18 14:00")  # a Wednesday, market open
MODELS = [
    (Accounting.REBASING_SHARES, PriceQuote.PER_SHARE),  # an xStock priced by the share's feed
    (Accounting.REBASING_SHARES, PriceQuote.PER_TOKEN),  # an xStock priced per token (one token = one share)
    (Accounting.UI_MULTIPLIER, PriceQuote.PER_SHARE),  # an ERC-8056 token priced by the share's feed
    (Accounting.UI_MULTIPLIER, PriceQuote.PER_TOKEN),  # an ERC-8056 token priced per token (Ondo's feeds)
]
RATIOS = [(2, 1), (3, 1), (1, 2), (1, 10), (10_031, 10_000)]  # splits, reverse splits, a stock dividend


def world(model: tuple[Accounting, PriceQuote], returns: np.ndarray, ratio: tuple[int, int] | None,
          action_session: int, printed: bool, now: int = NOW, with_action_record: bool = True):
    """One token on one feed, one wallet holding 1,000 shares' worth, and a short BTC position.

    The action (if any) takes effect at 06:00 New York the morning after the close of session
    ``action_session`` (counted back from now, 1 = the last close); the feed prints the post-action price from that session's close on, and, unless
    ``printed``, not at all (the latest round is then the last one before the action)."""
    accounting, quote = model
    closes = xnys().closes_up_to(now, len(returns) + 1)
    prices = 100.0 * np.exp(np.concatenate(([0.0], np.cumsum(returns))))
    effective = int(closes[-action_session]) + 14 * 3_600  # 06:00 the morning after that session's close
    r = 1.0 if ratio is None else ratio[0] / ratio[1]
    quoted_moves = not (accounting == Accounting.UI_MULTIPLIER and quote == PriceQuote.PER_TOKEN)
    hist = []
    for t, p in zip(closes.tolist(), prices.tolist(), strict=True):
        if t >= effective and not printed:
            continue  # the feed has not printed since the action (in the world without it too)
        after = ratio is not None and t >= effective
        hist.append((t, p / r if after and quoted_moves else p))
    b = WorldBuilder()
    last_t, last_p = hist[-1]
    f = b.feed("AAA/USD", last_p, updated_at=last_t, history=hist)
    fb = b.feed("BTC/USD", 60_000.0, kind=FeedKind.CRYPTO, updated_at=now - 60,
                history=[(int(t), 60_000.0) for t in closes])
    in_force = ratio is not None and now >= effective
    if accounting == Accounting.REBASING_SHARES:
        units, multiplier, supply = 1_000.0 * (r if in_force else 1.0), E18, 1e7 * (r if in_force else 1.0)
    else:
        units, multiplier, supply = 1_000.0, int(E18 * (r if in_force else 1.0)), 1e7
    actions = [(effective, *ratio)] if ratio is not None and with_action_record else None
    t = b.token("AAPLx", f, accounting=accounting, quote=quote, multiplier=multiplier, supply_units=supply,
                actions=actions)
    w = b.wallet(cash=1_000.0)
    b.hold(w, t, units)
    b.position(w, fb, -1.0, 60_000.0, 5.0)
    return b.build(now)


def policy() -> Policy:
    return policy_with(**{"volatility.lookback_days": 60})


def assert_same_value(a, b) -> None:
    ra, rb = run_risk(a, policy()), run_risk(b, policy())
    # to the rounding of the feed's 8-decimal answers (the split price p / r is rounded, p is not)
    assert ra.feeds.sigma[0] == pytest.approx(float(rb.feeds.sigma[0]), rel=1e-6)
    assert ra.feeds.sigma_raw[0] == pytest.approx(float(rb.feeds.sigma_raw[0]), rel=1e-6)
    assert ra.holdings.market_value[0] == pytest.approx(float(rb.holdings.market_value[0]), rel=1e-9)
    assert ra.holdings.collateral_value[0] == pytest.approx(float(rb.holdings.collateral_value[0]), rel=1e-9)
    scale = float(rb.holdings.market_value[0]) + float(rb.positions.notional[0])
    assert ra.wallets.stressed_excess[0] == pytest.approx(float(rb.wallets.stressed_excess[0]), abs=1e-9 * scale)
    assert int(ra.holdings.codes[0]) == int(rb.holdings.codes[0]) == 0


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(MODELS), ratio=st.sampled_from(RATIOS), seed=st.integers(0, 2**31),
       session=st.integers(2, 40), printed=st.booleans())
def test_an_action_with_no_market_move_leaves_sigma_value_and_collateral_unchanged(model, ratio, seed, session,
                                                                                  printed) -> None:
    returns = np.random.default_rng(seed).normal(0.0, 0.015, 80)
    session = session if printed else 1  # not printed since an action at 06:00 today: yesterday's close
    plain = world(model, returns, None, session, printed)
    acted = world(model, returns, ratio, session, printed)
    assert_same_value(acted, plain)


@pytest.mark.parametrize("model", MODELS)
def test_between_the_action_and_the_first_print_the_price_is_valued_at_its_own_multiplier(model) -> None:
    returns = np.random.default_rng(5).normal(0.0, 0.01, 80)
    acted = world(model, returns, (3, 1), 1, printed=False)  # 06:00 today; the feed still shows last close
    run = run_risk(acted, policy())
    quoted_moves = model != (Accounting.UI_MULTIPLIER, PriceQuote.PER_TOKEN)
    assert bool(run.tokens.predates_action[0]) == quoted_moves
    assert run.tokens.action_factor[0] == pytest.approx(1 / 3 if quoted_moves else 1.0, rel=1e-15)
    if quoted_moves:
        assert any("before a corporate action" in n for n in run.notes)
    assert_same_value(acted, world(model, returns, None, 1, printed=False))
    # by policy, such a holding can instead be ineligible until the feed prints again
    strict = run_risk(acted, policy_with(**{"volatility.lookback_days": 60,
                                            "valuation.price_before_action": "ineligible"}))
    expected = int(Eligibility.PRICE_BEFORE_ACTION) if quoted_moves else 0
    assert int(strict.holdings.codes[0]) == expected
    assert (strict.holdings.collateral_value[0] == 0.0) == quoted_moves


def test_an_unadjusted_split_reads_as_a_crash_and_the_adjustment_removes_it() -> None:
    """The finding this method answers: AMZN's 2-for-1 split as a daily return of ln(1/2)."""
    returns = np.random.default_rng(1).normal(0.0, 0.01, 80)
    model = (Accounting.UI_MULTIPLIER, PriceQuote.PER_SHARE)
    raw = run_risk(world(model, returns, (2, 1), 20, True, with_action_record=False), policy())
    adjusted = run_risk(world(model, returns, (2, 1), 20, True), policy())
    assert raw.feeds.sigma[0] > 0.15  # the split as a -69% day
    assert adjusted.feeds.sigma[0] < 0.03
    assert adjusted.tokens.h_vol[0] < raw.tokens.h_vol[0] / 4
    assert int(adjusted.feeds.history_actions[0]) == 1
    assert any("volatility history adjusted" in n for n in adjusted.notes)


def test_a_fee_accrual_moves_no_sigma_and_values_the_smaller_balance_at_the_same_price() -> None:
    returns = np.random.default_rng(2).normal(0.0, 0.01, 80)
    model = (Accounting.REBASING_SHARES, PriceQuote.PER_SHARE)
    before = world(model, returns, None, 5, True)
    fee_paid = world(model, returns, None, 5, True)
    # 90 days of a 25 bp yearly fee: balances fall by the fee, with no event and no action
    kept = (1 - 0.0025 / 365) ** 90
    fee_paid.holdings.balance_raw[0] = int(int(before.holdings.balance_raw[0]) * kept)
    a, b = run_risk(fee_paid, policy()), run_risk(before, policy())
    assert a.feeds.sigma[0] == b.feeds.sigma[0]
    assert a.holdings.price[0] == b.holdings.price[0]
    assert a.holdings.market_value[0] == pytest.approx(float(b.holdings.market_value[0]) * kept, rel=1e-12)


def test_a_feed_that_contradicts_the_multiplier_is_inconsistent() -> None:
    """A per-token feed that multiplies the share price by an xStock's multiplier again (the split passed
    through twice): its adjusted price jumps by the split ratio at the action, and the holding counts zero."""
    returns = np.random.default_rng(3).normal(0.0, 0.01, 80)
    model = (Accounting.REBASING_SHARES, PriceQuote.PER_TOKEN)
    good = world(model, returns, (3, 1), 10, True)
    bad = world(model, returns, (3, 1), 10, True)
    closes = xnys().closes_up_to(NOW, 81)
    effective = int(closes[-10]) + 14 * 3_600
    h = bad.history
    rows = np.flatnonzero(h.updated_at[: h.offsets[1]] >= effective)
    for k in rows:  # the feed publishes price x multiplier: the old per-token price, 3x the right one
        h.answer_raw[k] = int(h.answer_raw[k]) * 3
    bad.feeds.answer_raw[0] = int(bad.feeds.answer_raw[0]) * 3
    ok, wrong = run_risk(good, policy()), run_risk(bad, policy())
    assert abs(float(ok.tokens.action_move[0])) < 0.1
    assert float(wrong.tokens.action_move[0]) == pytest.approx(math.log(3), abs=0.1)
    assert int(wrong.holdings.codes[0]) & int(Eligibility.VALUATION_INCONSISTENT)
    assert wrong.holdings.collateral_value[0] == 0.0
    assert any("VALUATION_INCONSISTENT" in n for n in wrong.notes)
    # the reference reaches the same verdict
    assert reference_run(bad, policy()).holdings[0]["codes"] & int(Eligibility.VALUATION_INCONSISTENT)
