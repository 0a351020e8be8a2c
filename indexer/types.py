"""The project's vocabulary: aliases that say what an int or a str holds, and the enums every layer
shares (configuration, store, sync and the risk engine use these, and no copies of them).

Each enum is a `StrEnum`: its value is what configuration files, the database and JSON hold. The risk
engine works on `int8` arrays; `code` is a member's integer there (its position in the class) and
`from_code` turns it back.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

Address = NewType("Address", str)  # lowercase 0x-hex, 20 bytes
Wallet = NewType("Wallet", str)
TokenAddress = NewType("TokenAddress", str)
FeedAddress = NewType("FeedAddress", str)
RawAmount = NewType("RawAmount", int)  # uint256 token units, never a float
BlockNumber = NewType("BlockNumber", int)
UnixSeconds = NewType("UnixSeconds", int)


class _Coded(StrEnum):
    @property
    def code(self) -> int:
        """The member's integer in the risk engine's arrays (its position in the class)."""
        return list(type(self)).index(self)

    @classmethod
    def from_code(cls, code: int) -> _Coded:
        return list(cls)[int(code)]


class Accounting(_Coded):
    """How a token's balances relate to the underlying shares (docs/architecture.md)."""

    PLAIN = "plain"  # balanceOf is raw units; an external ratio, where one exists, is token state
    UI_MULTIPLIER = "ui_multiplier"  # ERC-8056: balanceOf raw, shares = balance x uiMultiplier
    REBASING_SHARES = "rebasing_shares"  # xStocks: the contract keeps shares, balanceOf = shares x multiplier


class BalanceSource(StrEnum):
    LOGS = "logs"  # event-sourced from Transfer / TransferShares logs
    POLL = "poll"  # balanceOf of every known holder at each tick


class FeedKind(_Coded):
    """What a feed reports; decides its staleness clock and its side of the equity-crypto stress floor."""

    STOCK = "stock"  # judged on the XNYS calendar; the equity side of the stress floor
    CRYPTO = "crypto"  # 24/7; the crypto side of the stress floor
    STABLE = "stablecoin"  # 24/7; outside the floor (a stablecoin is not risk-on crypto)
    RESERVE = "reserve"  # proof of reserve: not a price

    @property
    def priced(self) -> bool:
        """A price feed (valued by the risk engine), not a reserve report."""
        return self is not FeedKind.RESERVE

    @property
    def policy_key(self) -> str:
        """The policy's section for this kind (`[staleness.<key>]`, `volatility.floor.<key>`); reserve
        reports are judged by the stablecoin rule: around the clock."""
        return {FeedKind.STOCK: "stock", FeedKind.CRYPTO: "crypto"}.get(self, "stable")


class PriceQuote(_Coded):
    PER_SHARE = "per_share"  # the feed prices one underlying share
    PER_TOKEN = "per_token"  # the feed prices one token (the multiplier is already inside the price)
