"""Eligibility reason codes (RISK.md section 3): every failing rule sets its bit.

A holding is eligible when its mask is 0. The bit values are part of the output contract (they are
stored with results): append new codes at the end, never renumber.
"""

from __future__ import annotations

from enum import IntFlag

import numpy as np


class Eligibility(IntFlag):
    TOKEN_NOT_ELIGIBLE = 1 << 0  # token not listed as eligible in the policy
    TOKEN_PAUSED = 1 << 1  # the token contract is paused
    WALLET_FROZEN = 1 << 2  # the wallet is frozen on that token
    ACCOUNT_JURISDICTION = 1 << 3  # jurisdiction not allowed (or blocked)
    ACCOUNT_TIER = 1 << 4  # tier not allowed
    ACCOUNT_UNKNOWN = 1 << 5  # no account record where the policy requires one
    ORACLE_MISSING = 1 << 6  # no feed or no round
    ORACLE_NON_POSITIVE = 1 << 7  # answer <= 0
    ORACLE_INCOMPLETE = 1 << 8  # updatedAt == 0 or answeredInRound < roundId
    ORACLE_STALE = 1 << 9  # past the hard cut-off of the calendar-aware limit (docs/risk.md section 5)
    RESERVE_SHORTFALL = 1 << 10  # custodian reserves below the shares the supply represents
    BELOW_MINIMUM = 1 << 11  # market value below the dust floor
    ACCOUNT_KYC = 1 << 12  # KYC not approved where the policy requires it (extension of RISK.md)
    WALLET_SANCTIONED = 1 << 13  # wallet flagged as sanctioned (RISK.md section 1: "frozen or sanctioned")
    PRICE_BEFORE_ACTION = 1 << 14  # priced by a round from before a corporate action in force (by policy)
    VALUATION_INCONSISTENT = 1 << 15  # the feed contradicts the multiplier or the proof of reserve
    RESERVE_STALE = 1 << 16  # the proof-of-reserve round is older than the policy allows
    VAULT_RATE_JUMP = 1 << 17  # an ERC-4626 vault's rate jumped beyond the policy's bound in its window
    VAULT_RATE_MISSING = 1 << 18  # an ERC-4626 vault with no rate read at B


class ValuationFlag(IntFlag):
    """Codes that change how an eligible holding is valued, not whether it counts (docs/risk.md sections 3
    and 15). Kept apart from :class:`Eligibility`, whose mask is 0 exactly for an eligible holding (the stored
    ``risk_holdings.codes`` and the analyst views rely on it). Append new flags, never renumber."""

    NAV_DEVIATION = 1 << 0  # the pool price is beyond the policy's tolerance from NAV: valued at the lower


ORACLE_BITS = (
    Eligibility.ORACLE_MISSING
    | Eligibility.ORACLE_NON_POSITIVE
    | Eligibility.ORACLE_INCOMPLETE
    | Eligibility.ORACLE_STALE
)
ALL_CODES: tuple[Eligibility, ...] = tuple(Eligibility)


def code_names(mask: int) -> list[str]:
    """Names of the codes set in one mask, in bit order (``[]`` when eligible)."""
    return [c.name for c in ALL_CODES if int(mask) & int(c)]  # type: ignore[misc]


def flag_names(mask: int) -> list[str]:
    """Names of the valuation flags set in one mask (``[]`` when none)."""
    return [c.name for c in ValuationFlag if int(mask) & int(c)]  # type: ignore[misc]


def codes_to_names(masks: np.ndarray) -> list[list[str]]:
    """Names per mask for an array of masks; the distinct masks are decoded once."""
    masks = np.asarray(masks)
    uniq, inverse = np.unique(masks, return_inverse=True)
    decoded = [code_names(int(m)) for m in uniq]
    return [decoded[i] for i in inverse.ravel()]
