"""Block header `logsBloom`: may a block hold a log that a filter matches? Pure, no I/O.

The bloom is 2,048 bits. Each log sets three bits for its emitter's address and three for each of its
topics: for an item, the bit index is each of the first three 16-bit big-endian words of
keccak256(item), modulo 2,048, counted from the bloom's low end (Yellow Paper, section 4.3.1). A bloom
can say "maybe" for a log that is not there, never "no" for one that is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from eth_utils import keccak

BLOOM_BYTES = 256


@lru_cache(maxsize=4096)
def bloom_bits(item: bytes) -> tuple[int, int, int]:
    """The three bit indexes an address or a topic sets."""
    h = keccak(item)
    return tuple(((h[i] << 8) | h[i + 1]) & 2047 for i in (0, 2, 4))  # type: ignore[return-value]


def _has(bloom: bytes, item: bytes) -> bool:
    return all(bloom[BLOOM_BYTES - 1 - bit // 8] >> (bit % 8) & 1 for bit in bloom_bits(item))


def parse_bloom(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
    if len(raw) != BLOOM_BYTES:
        raise ValueError(f"a logsBloom has {BLOOM_BYTES} bytes, this one {len(raw)}")
    return raw


def bloom_matches(bloom: bytes, addresses: Iterable[str], topic0s: Sequence[str]) -> bool:
    """True when the block may hold a log from one of `addresses` whose first topic is one of
    `topic0s` (both 0x-hex); an all-zero bloom holds no log at all."""
    if not any(bloom):
        return False
    if not any(_has(bloom, bytes.fromhex(a[2:])) for a in addresses):
        return False
    return any(_has(bloom, bytes.fromhex(t[2:])) for t in topic0s)
