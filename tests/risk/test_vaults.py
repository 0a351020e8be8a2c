"""ERC-4626 vaults over a listed token in the risk method (docs/risk.md section 16): hand-computed values, the
asset's codes carried, a jumped rate in and out of the window, no rate, the asset's NAV rule, and the split of
a rebasing asset with no market move (no change in value, no jump). The engine against the reference on
random worlds with vaults: test_engine_vs_reference.py."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.liquidity.vaults import VaultRead, rate_moves
from indexer.risk.eligibility import Eligibility, ValuationFlag
from indexer.risk.engine import run_risk
from indexer.risk.errors import SnapshotError
from indexer.types import Accounting

from .worlds import E18, WorldBuilder, flat_policy, ny

NOW = ny("2025-11-26 11:00")  # a Wednesday, market open
DAY = 86_400


def vault_world(rate_raw: int = 3 * E18 // 2, moves: list[tuple[int, float]] | None = None, price: float = 400.0,
                paused: bool = False, updated_at: int = NOW - 60, dex: dict | None = None,
                multiplier: int = E18) -> tuple[WorldBuilder, int, int]:
    b = WorldBuilder()
    f = b.feed("TSLA/USD", price, updated_at=updated_at)
    asset = b.token("TSLAx", f, paused=paused, dex=dex, multiplier=multiplier)
    vault = b.vault("vTSLAx", asset, rate_raw, moves=moves)
    w = b.wallet()
    b.hold(w, asset, 10.0)
    b.hold(w, vault, 10.0)
    return b, asset, vault


def test_a_share_is_worth_its_rate_in_asset_units_at_the_assets_value() -> None:
    """10 TSLAx at 400 USD and 10 shares of 1.5 TSLAx each: 4,000 and 6,000 USD; the vault's base haircut is 30%."""
    b, _, _ = vault_world()
    run = run_risk(b.build(NOW), flat_policy())
    h, t = run.holdings, run.tokens
    assert h.market_value.tolist() == pytest.approx([4_000.0, 6_000.0], rel=1e-15)
    assert h.codes.tolist() == [0, 0]
    assert h.collateral_value.tolist() == pytest.approx([4_000.0 * 0.75, 6_000.0 * 0.70], rel=1e-15)
    assert t.vault_rate[1] == 1.5 and t.vault_jump[1] == 0.0
    assert t.vault_rate[0] != t.vault_rate[0]  # NaN: not a vault


def test_the_vault_carries_every_code_of_its_asset() -> None:
    paused, _, _ = vault_world(paused=True)
    codes = run_risk(paused.build(NOW), flat_policy()).holdings.codes.tolist()
    assert codes == [Eligibility.TOKEN_PAUSED] * 2
    stale, _, _ = vault_world(updated_at=NOW - 30 * DAY)
    codes = run_risk(stale.build(NOW), flat_policy()).holdings.codes.tolist()
    assert codes[0] & Eligibility.ORACLE_STALE and codes[1] == codes[0]


@pytest.mark.parametrize(("moves", "jumped"), [
    ([(NOW - 3_600, 12.0)], True),  # pushed 13x an hour ago
    ([(NOW - 8 * DAY, 12.0)], False),  # a week and a day ago: out of the window, the rate counts again
    ([(NOW - 60, 0.04)], False),  # 4%: within the bound
    ([(NOW - 60, 0.051)], True),
    ([(NOW - 2 * DAY, 0.01), (NOW - DAY, float("inf")), (NOW - 60, 0.0)], True),  # went through 0
    ([(NOW + 60, 12.0)], False),  # after the run's block: not seen
])
def test_a_rate_that_jumped_within_the_window_makes_the_holding_ineligible(moves, jumped: bool) -> None:
    b, _, _ = vault_world(moves=moves)
    run = run_risk(b.build(NOW), flat_policy())
    h = run.holdings
    assert h.codes[0] == 0
    assert bool(h.codes[1] & Eligibility.VAULT_RATE_JUMP) is jumped
    assert h.collateral_value[1] == (0.0 if jumped else pytest.approx(6_000.0 * 0.70, rel=1e-15))
    assert h.market_value[1] == pytest.approx(6_000.0, rel=1e-15)  # still shown at its rate


def test_a_vault_with_no_rate_is_ineligible_and_worth_nothing() -> None:
    b, _, _ = vault_world(rate_raw=0)
    h = run_risk(b.build(NOW), flat_policy()).holdings
    assert h.codes[1] & Eligibility.VAULT_RATE_MISSING and h.market_value[1] == 0.0 and h.collateral_value[1] == 0


def test_a_share_is_never_worth_more_than_its_assets_at_the_assets_lower_pool_price() -> None:
    """TSLAx's pool trades 10% under NAV (tolerance 2%): the token is valued at 360, a share at 1.5 x 360."""
    dex = dict(depth=(1e9, 1e9, 1e9), volume=(1e9, 7e9), price=360.0)
    b, _, _ = vault_world(dex=dex)
    run = run_risk(b.build(NOW), flat_policy(**{"liquidity.impact_y": 0.0}))
    h = run.holdings
    assert h.market_value.tolist() == pytest.approx([3_600.0, 5_400.0], rel=1e-15)
    assert h.value_flags[0] == ValuationFlag.NAV_DEVIATION and h.value_flags[1] == 0
    assert run.tokens.nav[1] == pytest.approx(600.0, rel=1e-15)  # the share's NAV: 1.5 x the oracle's 400


def test_a_vault_over_a_vault_is_refused() -> None:
    b, _, vault = vault_world()
    b.vault("vvTSLAx", vault, E18)
    with pytest.raises(SnapshotError, match="vault_asset_idx: a vault's asset is itself a vault"):
        b.build(NOW)


@settings(max_examples=60, deadline=None)
@given(ratio=st.sampled_from([(3, 1), (2, 1), (1, 10), (10_031, 10_000)]),
       rate=st.integers(10**17, 10**20), multiplier=st.integers(E18 // 2, 2 * E18),
       price=st.floats(10.0, 2_000.0))
def test_a_split_of_a_rebasing_asset_with_no_market_move_changes_no_value_and_is_no_jump(
        ratio: tuple[int, int], rate: int, multiplier: int, price: float) -> None:
    """Before: the asset's token at `price`, the vault's rate `rate`. After a split new-for-old with no market
    move: every balance (the vault's too) times new/old, so the rate in asset units times new/old, the token at
    price x old/new and the multiplier times new/old. The share is worth the same, and the rate read before and
    after, carried by the multiplier, did not move."""
    new, old = ratio
    before = VaultRead(rate, 10**24, 10**24 * E18 // rate, multiplier)
    after = VaultRead(rate * new // old, 10**24 * new // old, before.total_supply_raw, multiplier * new // old)
    moves = rate_moves([(NOW - DAY, before), (NOW - 60, after)])
    assert len(moves) == 1 and moves[0][0] == NOW - 60 and moves[0][1] < 1e-12  # integer rounding only

    def value(read: VaultRead, p: float) -> tuple[float, float, int]:
        b, _, _ = vault_world(rate_raw=read.assets_per_share_raw, moves=moves, price=p,
                              multiplier=read.asset_multiplier_raw)
        run = run_risk(b.build(NOW), flat_policy())
        return float(run.holdings.market_value[1]), float(run.holdings.collateral_value[1]), int(run.holdings.codes[1])

    mv0, c0, codes0 = value(before, price)
    mv1, c1, codes1 = value(after, price * old / new)
    assert codes0 == codes1 == 0
    # the feed prints 8 decimals: price x old / new is rounded there, by at most 5e-9 / 10 relative
    assert mv1 == pytest.approx(mv0, rel=1e-9, abs=1e-8 * mv0) and c1 == pytest.approx(c0, rel=1e-9, abs=1e-8 * c0)


def test_the_vault_shares_are_plain_units() -> None:
    b, _, vault = vault_world()
    assert b.tokens[vault]["accounting"] == Accounting.PLAIN
    snap = b.build(NOW)
    assert dataclasses.replace(snap.tokens, vault_rate_raw=None).vault_rate_raw is None
    with pytest.raises(SnapshotError, match="vault_rate_raw"):
        dataclasses.replace(snap, tokens=dataclasses.replace(snap.tokens, vault_rate_raw=None)).validate()
