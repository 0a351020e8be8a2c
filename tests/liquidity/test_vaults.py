"""The pure rules of an ERC-4626 vault's rate (indexer/liquidity/vaults.py): the value-continuous rate and the
moves between reads."""

from __future__ import annotations

import math
from fractions import Fraction

from indexer.liquidity.vaults import VaultRead, continuous_rate, rate_at, rate_moves

E18 = 10**18


def read(rate: int, multiplier: int | None = None) -> VaultRead:
    return VaultRead(rate, 0, 0, multiplier)


def test_a_rebasing_assets_units_are_carried_by_its_multiplier() -> None:
    assert continuous_rate(read(3 * E18, 3 * E18)) == Fraction(E18)  # 3 units of a tripled multiplier: 1 share
    assert continuous_rate(read(15 * E18 // 10, None)) == Fraction(15 * E18 // 10)  # raw units as they are
    assert continuous_rate(read(E18, 0)) == 0


def test_moves_are_symmetric_and_a_rate_through_zero_is_infinite() -> None:
    moves = rate_moves([(1, read(E18)), (2, read(13 * E18)), (3, read(E18)), (4, read(E18)), (5, read(0)),
                        (6, read(0))])
    assert [t for t, _ in moves] == [2, 3, 4, 5, 6]
    assert moves[0][1] == 12.0 and moves[1][1] == 12.0 and moves[2][1] == 0.0
    assert math.isinf(moves[3][1]) and moves[4][1] == 0.0
    assert rate_moves([(1, read(E18))]) == [] and rate_moves([]) == []


def test_a_split_read_after_its_fold_is_no_move_and_a_donation_is() -> None:
    before, split = read(2 * E18, E18), read(6 * E18, 3 * E18)
    donated = read(78 * E18, 3 * E18)  # 13x the assets per share after the split
    moves = rate_moves([(1, before), (2, split), (3, donated)])
    assert moves == [(2, 0.0), (3, 12.0)]


def test_a_read_is_carried_to_a_later_block_by_a_rebasing_assets_multiplier() -> None:
    fee_day = read(3 * E18, E18)
    assert rate_at(fee_day, E18 - E18 // 4_000) == 3 * E18 - 3 * E18 // 4_000  # a day of fee later: fewer units
    assert rate_at(fee_day, 3 * E18) == 9 * E18  # a 3-for-1 split in force since the read: three times the units
    assert rate_at(read(3 * E18), 5 * E18) == 3 * E18  # not rebasing: raw units do not move
    assert rate_at(read(7, 0), E18) == 7
