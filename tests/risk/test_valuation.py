"""Valuation (RISK.md section 2) and the one int -> float boundary."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.risk.engine import run_risk
from indexer.risk.errors import SnapshotError
from indexer.risk.uint256 import to_float_units
from indexer.types import Accounting, FeedKind, PriceQuote

from .worlds import E18, WorldBuilder, flat_policy, ny

NOW = ny("2025-11-26 11:00")  # Wednesday, market open


def valued(
    accounting: Accounting,
    quote: PriceQuote,
    raw: int,
    multiplier: int,
    price: float,
    decimals: int = 18,
):
    b = WorldBuilder()
    f = b.feed("X/USD", price, updated_at=NOW - 60)
    t = b.token("SPYx", f, decimals=decimals, accounting=accounting, multiplier=multiplier, quote=quote)
    w = b.wallet()
    b.hold(w, t, raw=raw)
    h = run_risk(b.build(NOW), flat_policy()).holdings
    return float(h.shares[0]), float(h.market_value[0])


def test_ui_multiplier_token_counts_shares_times_multiplier() -> None:
    # 3 tokens, multiplier 1.5 (e.g. after a 3-for-2 split): 4.5 shares at 100
    assert valued(Accounting.UI_MULTIPLIER, PriceQuote.PER_SHARE, 3 * E18, 3 * E18 // 2, 100.0) == (
        4.5,
        450.0,
    )


def test_per_token_feed_is_not_multiplied_twice() -> None:
    # the feed already quotes one token (150 = 1.5 x 100): value = tokens x price
    assert valued(Accounting.UI_MULTIPLIER, PriceQuote.PER_TOKEN, 3 * E18, 3 * E18 // 2, 150.0) == (
        4.5,
        450.0,
    )


def test_rebasing_balance_already_holds_the_multiplier() -> None:
    assert valued(Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 9 * E18 // 2, 3 * E18, 100.0) == (
        4.5,
        450.0,
    )


def test_plain_token_uses_its_external_share_ratio() -> None:
    assert valued(Accounting.PLAIN, PriceQuote.PER_SHARE, 9 * E18 // 4, 2 * E18, 100.0) == (4.5, 450.0)


def test_six_decimal_token_values_exactly() -> None:
    shares, mv = valued(Accounting.PLAIN, PriceQuote.PER_TOKEN, 1_234_560_000, E18, 0.5, decimals=6)
    assert (shares, mv) == (1234.56, 617.28)


def test_max_uint256_balance_is_valued_without_overflow() -> None:
    shares, mv = valued(Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 2**256 - 1, E18, 2.0)
    assert shares == pytest.approx((2**256 - 1) / E18, rel=1e-15)
    assert mv == pytest.approx(2 * (2**256 - 1) / E18, rel=1e-15)


@settings(max_examples=300, deadline=None)
@given(raw=st.integers(-(2**255), 2**256 - 1), decimals=st.integers(0, 40))
def test_to_float_units_is_within_one_rounding_of_the_exact_quotient(raw: int, decimals: int) -> None:
    got = float(to_float_units(np.array([raw], dtype=object), decimals)[0])
    exact = Fraction(raw, 10**decimals)
    if exact == 0:
        assert got == 0.0
    else:
        assert abs(Fraction(got) - exact) <= abs(exact) * Fraction(1, 2**52)
    if abs(raw) < 2**53 and decimals <= 22:
        assert got == raw / 10**decimals  # one correctly rounded division


def test_to_float_units_takes_per_token_decimals_by_index() -> None:
    raw = np.array([10**18, 10**6, 5 * 10**30], dtype=object)
    out = to_float_units(raw, np.array([18, 6, 30]), index=np.array([0, 1, 2]))
    np.testing.assert_array_equal(out, [1.0, 1.0, 5.0])
    with pytest.raises(SnapshotError, match="decimals must be >= 0"):
        to_float_units(raw, -1)


def test_snapshot_validation_names_the_broken_field() -> None:
    b = WorldBuilder()
    f = b.feed("X/USD", 1.0, updated_at=NOW, kind=FeedKind.CRYPTO)
    t = b.token("SPYx", f)
    w = b.wallet()
    b.hold(w, t, 1.0)
    b.hold(w, t, 2.0)
    with pytest.raises(SnapshotError, match=r"holdings: duplicate \(wallet_idx, token_idx\) pairs"):
        b.build(NOW)
    b.holdings.pop()
    b.tokens[0]["feed"] = 5
    with pytest.raises(SnapshotError, match=r"tokens.feed_idx: index out of range \[-1, 1\)"):
        b.build(NOW)
