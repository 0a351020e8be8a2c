"""One parser for every address a user or a file hands us (config, CSV loaders, wallet lookup)."""

from __future__ import annotations

import re

from eth_utils import keccak

from indexer.errors import IndexerError

_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")


class AddressError(IndexerError, ValueError):
    """Not a usable address; the message says what is wrong with it."""


def checksum(lower_hex40: str) -> str:
    """EIP-55 mixed-case form of a lowercase 40-hex-digit address (without 0x)."""
    digest = keccak(text=lower_hex40).hex()
    return "0x" + "".join(c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c
                          for i, c in enumerate(lower_hex40))


def parse_address(value: object, what: str = "address") -> str:
    """Lowercase 0x-hex of a 20-byte address, or AddressError naming `what` and the problem.

    All-lowercase and all-uppercase hex are accepted as they are; mixed case must be a correct
    EIP-55 checksum (a typo in a checksummed address is caught, not silently looked up).
    """
    if not isinstance(value, str):
        raise AddressError(f"{what}: {value!r} is not a string")
    text = value.strip()
    if not text:
        raise AddressError(f"{what}: empty; expected a 0x-prefixed 40-hex-digit address")
    if not text.startswith(("0x", "0X")):
        raise AddressError(f"{what}: {text!r} does not start with 0x")
    text = "0x" + text[2:]
    if not _HEX40.match(text):
        digits = len(text) - 2
        if not re.fullmatch(r"[0-9a-fA-F]*", text[2:]):
            raise AddressError(f"{what}: {text!r} holds characters that are not hex digits")
        raise AddressError(f"{what}: {text!r} has {digits} hex digits; an address has 40")
    body = text[2:]
    if body != body.lower() and body != body.upper() and checksum(body.lower()) != text:
        raise AddressError(f"{what}: {text!r} has a wrong EIP-55 checksum (a mistyped character?); "
                           f"the checksummed form of these digits would be {checksum(body.lower())}")
    return text.lower()
