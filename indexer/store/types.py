"""Exact integer column types for uint256 and int256 values.

PostgreSQL: NUMERIC(78,0), exact for every 256-bit value.
SQLite has no such type; values are stored as fixed-width decimal text so that plain SQL
comparisons and ORDER BY (byte order) agree with numeric order without CAST:
- `Uint256`: the value zero-padded to 78 digits ("000...0123");
- `Int256`: non-negative values zero-padded to 78 characters (always starting with "0", since
  |v| < 10**77); negative values as "-" followed by the 77-digit complement 10**77 - |v|, so that
  negatives sort before non-negatives and among themselves in numeric order.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Numeric, String
from sqlalchemy.types import TypeDecorator

UINT256_MAX = 2**256 - 1
INT256_MIN = -(2**255)
INT256_MAX = 2**255 - 1
WIDTH = 78
_NEG_BASE = 10**77


def encode_uint256_text(value: int) -> str:
    if not 0 <= value <= UINT256_MAX:
        raise ValueError(f"{value} is outside uint256")
    return str(value).zfill(WIDTH)


def encode_int256_text(value: int) -> str:
    if not INT256_MIN <= value <= INT256_MAX:
        raise ValueError(f"{value} is outside int256")
    if value >= 0:
        return str(value).zfill(WIDTH)
    return "-" + str(_NEG_BASE + value).zfill(WIDTH - 1)


def decode_int_text(text: str) -> int:
    if text.startswith("-"):
        return int(text[1:]) - _NEG_BASE
    return int(text)


class _ExactInt(TypeDecorator):
    impl = Numeric(78, 0)
    cache_ok = True
    _encode = staticmethod(encode_uint256_text)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(WIDTH))
        return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, Decimal) and value == value.to_integral_value():
                value = int(value)
            else:
                raise TypeError(f"exact integer column given {type(value).__name__} {value!r}")
        if dialect.name == "sqlite":
            return self._encode(value)
        self._encode(value)  # range check
        return Decimal(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            return decode_int_text(value)
        return int(value)


class Uint256(_ExactInt):
    """An exact unsigned 256-bit integer column."""

    cache_ok = True
    _encode = staticmethod(encode_uint256_text)


class Int256(_ExactInt):
    """An exact signed 256-bit integer column (oracle answers, balance deltas)."""

    cache_ok = True
    _encode = staticmethod(encode_int256_text)
