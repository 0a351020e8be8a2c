"""Aliases that say what an int or a str holds."""

from typing import NewType

Address = NewType("Address", str)  # lowercase 0x-hex, 20 bytes
Wallet = NewType("Wallet", str)
TokenAddress = NewType("TokenAddress", str)
RawAmount = NewType("RawAmount", int)  # uint256 token units, never a float
BlockNumber = NewType("BlockNumber", int)
Timestamp = NewType("Timestamp", int)  # unix seconds
