"""uint256 columns for the risk engine: Python ints, or the fixed-width form of four uint64 limbs, and
the one place where chain integers become floats (:func:`to_float_units`, :func:`limbs_to_float_units`).
Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexer.risk.errors import SnapshotError

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


