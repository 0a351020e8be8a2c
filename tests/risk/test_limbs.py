"""The fixed-width form of uint256 balances: decimal text -> limbs -> floats, against Python ints."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.risk.errors import SnapshotError
from indexer.risk.uint256 import (
    balances_from_decimal_strings,
    int_array,
    ints_from_limbs,
    is_limbs,
    limbs_from_ints,
    limbs_from_words,
    limbs_to_float_units,
    raw_ints,
    to_float_units,
)
from tests.oracles.synthetic import synthetic_world

MAX = 2**256 - 1
# every magnitude: small, around the limb boundaries, and the whole range up to 2**256 - 1
uint256 = st.one_of(
    st.integers(0, 2**64),
    st.integers(2**53 - 2, 2**53 + 2),
    st.integers(2**64 - 3, 2**64 + 3),
    st.integers(2**128 - 3, 2**128 + 3),
    st.integers(2**192 - 3, 2**192 + 3),
    st.integers(0, MAX),
    st.just(MAX),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(uint256, max_size=40), zeros=st.integers(0, 3))
def test_decimal_strings_parse_to_the_same_integers_as_python(values: list[int], zeros: int) -> None:
    text = ["0" * zeros + str(v) for v in values]
    limbs = balances_from_decimal_strings(text)
    assert limbs.shape == (len(values), 4) and limbs.dtype == np.uint64
    assert ints_from_limbs(limbs) == values
    np.testing.assert_array_equal(limbs, limbs_from_ints(values))
    # bytes and numpy string arrays take the same path
    np.testing.assert_array_equal(balances_from_decimal_strings([t.encode() for t in text]), limbs)
    np.testing.assert_array_equal(balances_from_decimal_strings(np.array(text, dtype=str)), limbs)


@given(values=st.lists(uint256, max_size=20))
def test_limbs_are_the_abi_words_read_as_four_big_endian_uint64(values: list[int]) -> None:
    words = b"".join(v.to_bytes(32, "big") for v in values)
    np.testing.assert_array_equal(limbs_from_words(words), limbs_from_ints(values))
    assert raw_ints(limbs_from_words(words)) == values
    assert raw_ints(int_array(values)) == values


@pytest.mark.parametrize(
    "bad",
    ["", "-1", "+1", "1.5", " 1", "1 ", "1e3", "0x10", "١", str(2**256), "9" * 78, "1" * 79],
)
def test_decimal_text_that_is_not_a_uint256_is_refused(bad: str) -> None:
    with pytest.raises(SnapshotError, match="uint256 decimal text"):
        balances_from_decimal_strings(["5", bad])


def test_leading_zeros_beyond_78_characters_are_still_one_value() -> None:
    assert ints_from_limbs(balances_from_decimal_strings(["0" * 90 + "7", "0" * 100, str(MAX)])) == [
        7,
        0,
        MAX,
    ]
    assert balances_from_decimal_strings([]).shape == (0, 4)


@settings(max_examples=500, deadline=None)
@given(raw=uint256, decimals=st.integers(0, 40))
def test_limbs_to_float_units_is_within_the_documented_bound(raw: int, decimals: int) -> None:
    got = float(limbs_to_float_units(limbs_from_ints([raw]), decimals)[0])
    exact = Fraction(raw, 10**decimals)
    if raw == 0:
        assert got == 0.0
        return
    # 10 roundings at most while combining 4 limbs, 2 for the scale and the division
    assert abs(Fraction(got) - exact) <= exact * Fraction(12, 2**53)
    if raw < 2**117 and decimals <= 22:
        assert abs(Fraction(got) - exact) <= exact * Fraction(3, 2**53)
    if raw < 2**53 and decimals <= 22:
        assert got == raw / 10**decimals  # exact integer, one correctly rounded division
    if raw < 2**64 and decimals <= 22:  # one limb: the same two roundings as the object path
        assert got == float(to_float_units(np.array([raw], dtype=object), decimals)[0])


def test_limbs_to_float_units_takes_per_token_decimals_by_index() -> None:
    limbs = limbs_from_ints([10**18, 10**6, 5 * 10**30, 0])
    out = limbs_to_float_units(limbs, np.array([18, 6, 30]), index=np.array([0, 1, 2, 1]))
    np.testing.assert_array_equal(out, [1.0, 1.0, 5.0, 0.0])
    with pytest.raises(SnapshotError, match="decimals must be >= 0"):
        limbs_to_float_units(limbs, -1)
    with pytest.raises(SnapshotError, match="limbs"):
        limbs_to_float_units(np.zeros((2, 3), dtype=np.uint64), 18)
    assert is_limbs(limbs) and not is_limbs(int_array([1, 2])) and not is_limbs(limbs.astype(np.int64))


def test_the_synthetic_world_holds_the_same_balances_in_either_form() -> None:
    limbs = synthetic_world(50, now=1764187200, seed=3)
    ints = synthetic_world(50, now=1764187200, seed=3, balance_form="ints")
    assert is_limbs(limbs.holdings.balance_raw) and not is_limbs(ints.holdings.balance_raw)
    assert limbs.holdings.balance_ints() == ints.holdings.balance_ints()
    limbs.validate()
    units = limbs.holdings.balance_units(limbs.tokens.decimals)
    np.testing.assert_allclose(units, ints.holdings.balance_units(ints.tokens.decimals), rtol=2**-51, atol=0)
