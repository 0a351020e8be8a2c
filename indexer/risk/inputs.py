"""One snapshot of the world at block B, as arrays (RISK.md section 1). Plain data, no I/O.

Integers from the chain (balances, multipliers, supplies, reserves, oracle answers and round ids)
stay Python ints (numpy ``object`` arrays; ``int64`` is accepted when the values fit) because uint256
exceeds every machine type. Holdings' balances, the one column with a row per holding, may instead
come in the fixed-width form: ``(n, 4)`` uint64 limbs (:func:`is_limbs`), which loaders build from
decimal text with :func:`balances_from_decimal_strings` and which converts without a Python object
per row. Integers become floats in exactly one place: :func:`to_float_units`, or its fixed-width
sibling :func:`limbs_to_float_units`.

Layout:
- tokens, feeds: one row per token / feed; tokens point at their price feed by ``feed_idx``;
- holdings: COO triplets ``(wallet_idx, token_idx, balance_raw)``, one row per non-empty pair, no
  duplicate pairs (see :meth:`Snapshot.validate`);
- accounts: one row per wallet index ``0..n_wallets-1`` (``has_account`` false where none is on file);
- positions: one row per crypto position;
- history: every feed's rounds up to B in CSR form (``offsets``), sorted by ``updated_at`` per feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np

from indexer.errors import IndexerError

RawAmount = int  # an on-chain integer amount (uint256 / int256), never a float
UnixSeconds = int


class AccountingModel(IntEnum):
    """How a token's balance relates to underlying shares (ARCHITECTURE.md)."""

    PLAIN = 0  # shares = b / 10^d * external ratio (multiplier_raw, 18 decimals; 10**18 when none)
    UI_MULTIPLIER = 1  # shares = b / 10^d * m / 10^18
    REBASING_SHARES = 2  # balanceOf already includes the multiplier: shares = b / 10^d


class PriceQuote(IntEnum):
    PER_SHARE = 0  # the feed prices one underlying share
    PER_TOKEN = 1  # the feed prices one token (multiplier already inside the price)


class FeedKind(IntEnum):
    """Which staleness clock and which side of the equity-crypto correlation floor a feed is on."""

    STOCK = 0  # judged against the XNYS calendar; equity side of the stress floor
    CRYPTO = 1  # judged 24/7; crypto side of the stress floor
    STABLE = 2  # judged 24/7; outside the equity-crypto floor (a stablecoin is not risk-on crypto)

    @property
    def policy_key(self) -> str:
        return self.name.lower()


class SnapshotError(IndexerError, ValueError):
    """Inputs that the engine cannot use; the message names the field and the fix."""


# -- the one int -> float boundary ----------------------------------------------------------------

_POW10 = np.array([float(10**k) for k in range(23)])  # exact: 10**k = 2**k * 5**k and 5**22 < 2**53


def to_float_units(
    raw: np.ndarray | list[int] | int, decimals: np.ndarray | int, index: np.ndarray | None = None
) -> np.ndarray:
    """``raw / 10**decimals`` as float64: the one place where chain integers become floats.

    ``raw`` holds Python ints (object array, any size: uint256, int256) or numpy integers. Each
    integer is converted to the nearest float64 (one correctly rounded step, done by numpy in C),
    then divided by the power of ten, which is exact in float64 for ``decimals <= 22``: at most two
    IEEE roundings, a relative error below 2**-52, and a single correctly rounded result whenever
    ``|raw| < 2**53``. Decimals above 22 (no real token uses them) take Python's correctly rounded
    ``int / int``. Exact ``Fraction`` arithmetic per element would cost a Python call per holding
    for no visible gain: a result is reported to 1e-9 relative at best.

    ``index``: when given, ``decimals`` is a small per-token table and element i uses
    ``decimals[index[i]]`` (saves materializing a per-holding decimals column).
    """
    raw_arr = np.asarray(raw)
    table = np.asarray(decimals, dtype=np.int64)
    if raw_arr.size == 0:
        return np.zeros(raw_arr.shape, dtype=np.float64)
    if (table < 0).any():
        raise SnapshotError("decimals must be >= 0")
    out = raw_arr.astype(np.float64)
    if index is None:
        dec = np.broadcast_to(table, raw_arr.shape)
        out /= _POW10[np.minimum(dec, 22)]
    else:
        out /= _POW10[np.minimum(table, 22)][index]
        dec = table[index] if (table > 22).any() else np.zeros(raw_arr.shape, dtype=np.int64)
    wide = dec > 22
    if wide.any():
        flat_raw, flat_dec, out = raw_arr.ravel(), dec.ravel(), out.ravel().copy()
        for i in np.flatnonzero(wide.ravel()):  # rare: more than 22 decimals
            out[i] = int(flat_raw[i]) / 10 ** int(flat_dec[i])
        out = out.reshape(raw_arr.shape)
    return out


def int_array(values: list[int] | np.ndarray) -> np.ndarray:
    """An object array of Python ints (for uint256 columns)."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = [int(v) for v in values]
    return arr


# -- the fixed-width form of uint256 columns ------------------------------------------------------
#
# A uint256 column may also be a ``(n, 4)`` ``uint64`` array: four 64-bit limbs, most significant
# first, so that row i is ``l[i,0]*2**192 + l[i,1]*2**128 + l[i,2]*2**64 + l[i,3]``. That is the
# 32-byte big-endian ABI word read as four big-endian uint64 (:func:`limbs_from_words`), it costs 32
# bytes a row, and numpy converts it to floats without touching a Python object. Holdings accept it
# in ``balance_raw``; loaders make it from SQL's decimal text with :func:`balances_from_decimal_strings`.

UINT256_LIMBS = 4
_LIMB = 2.0**64
_UINT256_DIGITS = 78  # len(str(2**256 - 1))


def is_limbs(raw: object) -> bool:
    """True if ``raw`` is the fixed-width form: a 2-D ``uint64`` array with 4 columns."""
    return (
        isinstance(raw, np.ndarray)
        and raw.ndim == 2
        and raw.dtype == np.uint64
        and raw.shape[1] == UINT256_LIMBS
    )


def limbs_from_ints(values: list[int] | np.ndarray) -> np.ndarray:
    """Python ints in ``[0, 2**256)`` -> ``(n, 4)`` uint64 limbs (for tests and small columns)."""
    ints = [int(v) for v in values]
    if any(v < 0 or v >> 256 for v in ints):
        raise SnapshotError("uint256 limbs: values must be in [0, 2**256)")
    return limbs_from_words(b"".join(v.to_bytes(32, "big") for v in ints))


def limbs_from_words(words: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """32-byte big-endian words (ABI ``uint256``: ``balanceOf`` return data, log data) -> limbs."""
    buf = np.frombuffer(words, dtype=np.uint8) if not isinstance(words, np.ndarray) else words.view(np.uint8)
    if buf.size % 32:
        raise SnapshotError(f"uint256 words: {buf.size} bytes is not a multiple of 32")
    return buf.view(">u8").reshape(-1, UINT256_LIMBS).astype(np.uint64, order="F")


def ints_from_limbs(limbs: np.ndarray) -> list[int]:
    """``(n, 4)`` uint64 limbs -> Python ints (exact; one Python call per row)."""
    return [(a << 192) | (b << 128) | (c << 64) | d for a, b, c, d in np.asarray(limbs).tolist()]


def raw_ints(raw: np.ndarray) -> list[int]:
    """Any uint256 column (object ints, numpy integers or limbs) as a list of Python ints."""
    return ints_from_limbs(raw) if is_limbs(raw) else [int(v) for v in np.asarray(raw).tolist()]


def limbs_to_float_units(
    limbs: np.ndarray, decimals: np.ndarray | int, index: np.ndarray | None = None
) -> np.ndarray:
    """:func:`to_float_units` for the fixed-width form: ``value / 10**decimals`` per row, float64.

    The limbs are combined by Horner's rule in float64, skipping leading limbs that are zero in
    every row (balances below 2**128 need only the last two). Each further limb ``l`` enters as its
    top bit, carried into the running value, and its low 63 bits with the sign of an int64 (numpy
    converts int64 in vector instructions, uint64 one element at a time): ``out = (out + (l >> 63))
    * 2**64 + int64(l)``. Multiplying by 2**64 is exact; each conversion and addition rounds at most
    once and to within 2**-53 of the (growing) value, so the float is exact below 2**53, within
    2**-52 (two roundings) below 2**117 (the upper limb stays below 2**53), and within
    ``10 * 2**-53`` (1.1e-15) relative for any uint256. The division by ``10**decimals`` adds one
    rounding (two above 22 decimals, where ``float(10**d)`` is itself rounded). Far inside the
    engine's 1e-9 contract, and no Python object is built.

    Any memory layout works; column-major (``order="F"``, what :func:`balances_from_decimal_strings`
    returns) reads each limb contiguously and is the fastest.
    """
    arr = np.asarray(limbs)
    if not is_limbs(arr):
        raise SnapshotError("uint256 limbs: expected a (n, 4) uint64 array, most significant limb first")
    table = np.asarray(decimals, dtype=np.int64)
    if (table < 0).any():
        raise SnapshotError("decimals must be >= 0")
    n = arr.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    first = UINT256_LIMBS - 1
    for k in range(UINT256_LIMBS - 1):
        if arr[:, k].any():
            first = k
            break
    out = arr[:, first].astype(np.float64)
    for k in range(first + 1, UINT256_LIMBS):
        # limb = signed + 2**64 * top bit: numpy converts int64 to float64 in vector instructions,
        # uint64 with a branch per element (slow when top bits are random, as in low limbs)
        limb = arr[:, k]
        out += limb >> np.uint64(63)
        out *= _LIMB
        out += limb.view(np.int64)
    if index is None:
        out /= np.broadcast_to(_powers_of_ten(table), out.shape)
    else:
        out /= _powers_of_ten(table)[index]
    return out


def _powers_of_ten(table: np.ndarray) -> np.ndarray:
    """``float(10**d)`` per entry: exact up to 22, correctly rounded above (one Python call per distinct d)."""
    if table.size and int(table.max()) > 308:
        raise SnapshotError("decimals above 308 cannot be represented as a float64 scale")
    if table.size == 0 or int(table.max()) <= 22:
        return _POW10[table]
    distinct, inverse = np.unique(table, return_inverse=True)
    return np.array([float(10 ** int(d)) for d in distinct])[inverse].reshape(table.shape)


_ASCII_ZERO8 = np.uint64(0x3030303030303030)
_MASK_0_4 = np.uint64(0x000000FF000000FF)
_MUL_HI = np.uint64(100 + (1_000_000 << 32))
_MUL_LO = np.uint64(1 + (10_000 << 32))
_MASK32 = np.uint64(0xFFFFFFFF)
_E8 = np.uint64(10**8)


def balances_from_decimal_strings(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """Decimal text of uint256 values (SQL ``NUMERIC(78, 0)`` read as text) -> ``(n, 4)`` uint64 limbs.

    Vectorized, no Python int per row: the strings become one fixed-width byte array, right-aligned
    with ``'0'``; each 8 ASCII digits are read as one little-endian uint64 and folded into their
    value with three multiply-shift steps (the SWAR parse of simdjson); the base-10**8 chunks are
    then combined into 32-bit limbs by Horner's rule, exactly. Accepts ``str`` or ``bytes`` items
    (or a numpy ``S``/``U`` array): ASCII digits only, no sign, no spaces, no decimal point; raises
    :class:`SnapshotError` on anything else, on an empty string and on values >= 2**256. The
    result is column-major (``order="F"``), the layout :func:`limbs_to_float_units` reads fastest.
    """
    n = len(values)
    out = np.zeros((n, UINT256_LIMBS), dtype=np.uint64, order="F")  # limb columns contiguous
    if n == 0:
        return out
    try:
        if isinstance(values, np.ndarray) and values.dtype.kind in "SU":
            text = values.astype(np.bytes_)
        else:
            text = np.array(list(values), dtype=np.bytes_)
    except (UnicodeEncodeError, TypeError, ValueError) as exc:
        raise SnapshotError(f"uint256 decimal text: not ASCII digits ({exc})") from None
    if text.ndim != 1:
        raise SnapshotError("uint256 decimal text: expected a flat sequence of strings")
    if (text == b"").any():
        raise SnapshotError("uint256 decimal text: empty string")
    if text.dtype.itemsize > _UINT256_DIGITS:
        text = np.strings.lstrip(text, b"0")  # leading zeros only; an all-zero string becomes b""
        longest = int(np.strings.str_len(text).max())
        if longest > _UINT256_DIGITS:
            raise SnapshotError("uint256 decimal text: more than 78 digits (>= 2**256)")
        text = text.astype(f"S{max(longest, 1)}")  # b"" (all zeros) right-justifies to zeros below
    width = -(-text.dtype.itemsize // 8) * 8
    digits = np.strings.rjust(text, width, b"0").view(np.uint8).reshape(n, width)
    if ((digits - np.uint8(48)) > 9).any():  # uint8 wraps: anything outside '0'..'9' (and NUL) is > 9
        raise SnapshotError("uint256 decimal text: only the digits 0-9 are allowed")
    # SWAR: 8 digits -> their value; chunk 0 is the most significant
    v = np.ascontiguousarray(digits).view("<u8") - _ASCII_ZERO8  # (n, width // 8)
    v = v * np.uint64(10) + (v >> np.uint64(8))
    v = ((v & _MASK_0_4) * _MUL_HI + ((v >> np.uint64(16)) & _MASK_0_4) * _MUL_LO) >> np.uint64(32)
    # Horner in base 10**8 over 32-bit limbs (least significant first), exact in uint64:
    # limb * 10**8 + carry < 2**32 * 2**27 + 2**32 < 2**64
    limbs: list[np.ndarray] = [v[:, 0].copy()]
    for j in range(1, v.shape[1]):
        carry = v[:, j].copy()
        for i in range(len(limbs)):
            t = limbs[i] * _E8 + carry
            limbs[i] = t & _MASK32
            carry = t >> np.uint64(32)
        if carry.any():
            if len(limbs) == 2 * UINT256_LIMBS:
                raise SnapshotError("uint256 decimal text: value >= 2**256")
            limbs.append(carry)
    limbs += [np.zeros(n, dtype=np.uint64)] * (2 * UINT256_LIMBS - len(limbs))
    for k in range(UINT256_LIMBS):
        out[:, UINT256_LIMBS - 1 - k] = limbs[2 * k] | (limbs[2 * k + 1] << np.uint64(32))
    return out


# -- snapshot parts --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Tokens:
    symbol: np.ndarray  # str, keys into the policy's [tokens]
    decimals: np.ndarray  # int64
    accounting: np.ndarray  # int8, AccountingModel
    multiplier_raw: np.ndarray  # object ints, 18-decimal fixed point in force at B (10**18 = 1)
    paused: np.ndarray  # bool
    feed_idx: np.ndarray  # int64 into Feeds, -1 = no price feed
    quote: np.ndarray  # int8, PriceQuote of that feed for this token
    total_supply_raw: np.ndarray  # object ints, totalSupply at B
    has_reserve: np.ndarray  # bool, a proof-of-reserve figure is configured
    reserve_raw: np.ndarray  # object ints, reserves held by the custodian, in shares
    reserve_decimals: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.symbol)


@dataclass(frozen=True, eq=False)
class Feeds:
    """The latest round of each feed at B (Chainlink AggregatorV3 ``latestRoundData``)."""

    name: np.ndarray  # str, e.g. "AAPL/USD", "BTC/USD"
    kind: np.ndarray  # int8, FeedKind
    decimals: np.ndarray  # int64
    has_round: np.ndarray  # bool, False: no round at all
    round_id: np.ndarray  # object ints (uint80)
    answer_raw: np.ndarray  # object ints (int256)
    updated_at: np.ndarray  # int64, UTC seconds
    answered_in_round: np.ndarray  # object ints (uint80)
    heartbeat_s: np.ndarray  # int64, the feed's configured heartbeat; 0 = use the policy's for its kind

    def __len__(self) -> int:
        return len(self.name)


@dataclass(frozen=True, eq=False)
class FeedHistory:
    """Rounds per feed up to B, CSR: feed f owns rows ``offsets[f]:offsets[f+1]``, sorted by time."""

    offsets: np.ndarray  # int64, len n_feeds + 1
    updated_at: np.ndarray  # int64
    answer_raw: np.ndarray  # object ints or int64

    @classmethod
    def empty(cls, n_feeds: int) -> FeedHistory:
        return cls(
            np.zeros(n_feeds + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
        )


@dataclass(frozen=True, eq=False)
class Holdings:
    wallet_idx: np.ndarray  # int64
    token_idx: np.ndarray  # int64
    balance_raw: np.ndarray  # balanceOf at B: object ints, int64, or (n, 4) uint64 limbs (is_limbs)
    frozen: np.ndarray  # bool, the wallet is frozen on that token

    def __len__(self) -> int:
        return len(self.wallet_idx)

    def balance_ints(self) -> list[int]:
        """Balances as Python ints, whatever the form of ``balance_raw`` (for the reference, checks)."""
        return raw_ints(self.balance_raw)

    def balance_units(self, decimals: np.ndarray) -> np.ndarray:
        """Balances in token units as float64 (``decimals``: per token): the int -> float boundary."""
        ti = np.asarray(self.token_idx, dtype=np.int64)
        if is_limbs(self.balance_raw):
            return limbs_to_float_units(self.balance_raw, decimals, index=ti)
        return to_float_units(self.balance_raw, decimals, index=ti)


@dataclass(frozen=True, eq=False)
class Accounts:
    """Off-chain account records, one row per wallet index."""

    wallet: np.ndarray  # str addresses, row i = wallet index i
    has_account: np.ndarray  # bool
    jurisdiction: np.ndarray  # numpy str ('<U2'), ISO 3166 alpha-2 ("" when unknown)
    tier: np.ndarray  # numpy str ('<U16'); object arrays work but cost a conversion per run
    kyc_approved: np.ndarray  # bool
    sanctioned: np.ndarray  # bool
    cash_usd: np.ndarray  # float64, cash held with the venue (0 when none)

    def __len__(self) -> int:
        return len(self.wallet)


@dataclass(frozen=True, eq=False)
class Positions:
    """Crypto positions margined by the wallet's collateral (RISK.md section 6)."""

    wallet_idx: np.ndarray  # int64
    feed_idx: np.ndarray  # int64, the base asset's price feed (the mark)
    size: np.ndarray  # float64, signed, in base units (long > 0)
    entry_price: np.ndarray  # float64
    leverage: np.ndarray  # float64, > 0

    def __len__(self) -> int:
        return len(self.wallet_idx)

    @classmethod
    def empty(cls) -> Positions:
        z = np.zeros(0)
        zi = np.zeros(0, dtype=np.int64)
        return cls(zi, zi.copy(), z, z.copy(), z.copy())


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything the engine needs about block B. ``block_timestamp`` is the engine's "now"."""

    block_number: int
    block_timestamp: UnixSeconds
    tokens: Tokens
    feeds: Feeds
    history: FeedHistory
    holdings: Holdings
    accounts: Accounts
    positions: Positions

    @property
    def n_wallets(self) -> int:
        return len(self.accounts)

    def validate(self) -> None:
        """Check shapes, index ranges, ordering and uniqueness; raise SnapshotError naming the field.

        Not called by the engine on every run (sorting a million pairs costs time): loaders call it
        once after building a snapshot, tests call it on every generated world.
        """
        for part_name in ("tokens", "feeds", "holdings", "accounts", "positions"):
            part = getattr(self, part_name)
            n = len(part)
            for f in fields(part):
                col = getattr(part, f.name)
                if len(col) != n:
                    raise SnapshotError(
                        f"{part_name}.{f.name}: {len(col)} rows, expected {n} like the others"
                    )
        n_t, n_f, n_w = len(self.tokens), len(self.feeds), self.n_wallets
        _check_index("tokens.feed_idx", self.tokens.feed_idx, n_f, allow_minus_one=True)
        _check_index("holdings.wallet_idx", self.holdings.wallet_idx, n_w)
        _check_index("holdings.token_idx", self.holdings.token_idx, n_t)
        _check_index("positions.wallet_idx", self.positions.wallet_idx, n_w)
        _check_index("positions.feed_idx", self.positions.feed_idx, n_f)
        if len(self.holdings):
            key = self.holdings.wallet_idx.astype(np.int64) * max(n_t, 1) + self.holdings.token_idx
            if len(np.unique(key)) != len(key):
                raise SnapshotError(
                    "holdings: duplicate (wallet_idx, token_idx) pairs; sum them into one row"
                )
            if not is_limbs(self.holdings.balance_raw) and any(b < 0 for b in self.holdings.balance_ints()):
                raise SnapshotError("holdings.balance_raw: negative balance; balances are uint256")
        if len(self.positions) and not (np.asarray(self.positions.leverage) > 0).all():
            raise SnapshotError("positions.leverage: must be > 0; use 1 for an unlevered position")
        bad = set(np.unique(self.feeds.kind).tolist()) - {int(k) for k in FeedKind}
        if bad:
            raise SnapshotError(f"feeds.kind: unknown codes {sorted(bad)}; use FeedKind")
        bad = set(np.unique(self.tokens.accounting).tolist()) - {int(k) for k in AccountingModel}
        if bad:
            raise SnapshotError(f"tokens.accounting: unknown codes {sorted(bad)}; use AccountingModel")
        h = self.history
        if len(h.offsets) != n_f + 1 or h.offsets[0] != 0 or h.offsets[-1] != len(h.updated_at):
            raise SnapshotError("history.offsets: must have n_feeds + 1 entries from 0 to len(updated_at)")
        if len(h.answer_raw) != len(h.updated_at):
            raise SnapshotError("history.answer_raw: one answer per updated_at")
        for f in range(n_f):
            ts = h.updated_at[h.offsets[f] : h.offsets[f + 1]]
            if len(ts) > 1 and (np.diff(ts) < 0).any():
                raise SnapshotError(
                    f"history: rounds of feed {self.feeds.name[f]!r} are not sorted by updated_at"
                )


def _check_index(name: str, idx: np.ndarray, n: int, allow_minus_one: bool = False) -> None:
    if len(idx) == 0:
        return
    lo = -1 if allow_minus_one else 0
    if int(np.min(idx)) < lo or int(np.max(idx)) >= n:
        raise SnapshotError(f"{name}: index out of range [{lo}, {n}); fix the row mapping in the loader")
