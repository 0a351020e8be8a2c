"""The risk engine's input error."""

from indexer.errors import IndexerError


class SnapshotError(IndexerError, ValueError):
    """Inputs that the engine cannot use; the message names the field and the fix."""
