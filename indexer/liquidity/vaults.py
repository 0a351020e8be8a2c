"""ERC-4626 vaults over a tokenized stock, pure (docs/liquidity.md, "ERC-4626 vaults"; docs/risk.md section 16).

A vault share is worth `convertToAssets(10**decimals)` asset units. That rate moves for three reasons: the
vault's own gains and fees (slowly), a corporate action of a rebasing asset (a Backed xStock's split triples
every balance, the vault's too: three times the units, each worth a third, no change in value), and
manipulation (a donation or a flash loan that inflates `totalAssets` against `totalSupply`). So the rate is
judged in the asset's value-continuous units: a rebasing asset's units divided by its multiplier in force at
the same block (its internal shares, which no split or fee fold changes in number), any other asset's raw
units (an ERC-8056 token's raw balance does not move at a split). A move of that rate between two reads
beyond the policy's bound is a jump.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

WAD = 10**18


@dataclass(frozen=True)
class VaultRead:
    """A vault's exchange rate at one block, exact."""

    assets_per_share_raw: int  # convertToAssets(10**decimals): asset units for one whole share
    total_assets_raw: int
    total_supply_raw: int
    asset_multiplier_raw: int | None  # the rebasing asset's getCurrentMultiplier() at the block; None: not rebasing


def continuous_rate(read: VaultRead) -> Fraction:
    """Asset units per whole share, in units no corporate action of the asset rescales (exact)."""
    m = read.asset_multiplier_raw
    if m is None:
        return Fraction(read.assets_per_share_raw)
    return Fraction(read.assets_per_share_raw * WAD, m) if m > 0 else Fraction(0)


def rate_at(read: VaultRead, multiplier: int | None) -> int:
    """The rate in asset units at a later block whose asset multiplier is `multiplier`, from a read before it
    with no event between (exact, rounded down): a rebasing asset's balance, the vault's too, moves with its
    multiplier (a daily fee, a split in force) while the internal shares behind each vault share stay, so the
    read's rate is carried by the multiplier's ratio; any other asset's units do not move, and the read holds."""
    m = read.asset_multiplier_raw
    if m is None or not m or multiplier is None:
        return read.assets_per_share_raw
    return read.assets_per_share_raw * multiplier // m


def rate_moves(reads: Sequence[tuple[int, VaultRead]]) -> list[tuple[int, float]]:
    """(time of the later read, move) for each two consecutive reads `(timestamp, read)`, oldest first: the
    relative move of the value-continuous rate, up or down (max(a/b, b/a) - 1: a rate pushed 13x and one cut
    to a thirteenth are both 12); infinity when one of the two rates is 0 and the other is not. The exact
    ratio becomes a float here, for the risk method."""
    rates = [(ts, continuous_rate(r)) for ts, r in reads]
    out = []
    for (_, a), (ts, b) in zip(rates, rates[1:], strict=False):
        if a == b:
            move = 0.0
        elif a == 0 or b == 0:
            move = float("inf")
        else:
            move = float(max(a / b, b / a)) - 1.0
        out.append((ts, move))
    return out
