"""Collateral indexer for tokenized stocks."""

__version__ = "0.1.0"
