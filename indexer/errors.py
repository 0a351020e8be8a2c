"""The project's error hierarchy: each message names the field, address or block and the fix."""


class IndexerError(Exception):
    """Base of every error the indexer raises on purpose."""


class ConfigError(IndexerError):
    """Bad configuration or manifest: the message names the field and what to put there."""


class RpcError(IndexerError):
    """A JSON-RPC request failed after retries, or the node answered with an error object."""

    def __init__(self, message: str, *, code: int | None = None, kind: str = "rpc", data: object = None):
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.data = data


class ChainDataError(IndexerError):
    """The chain answered, but with data the indexer cannot accept (no code, wrong chain, bad return)."""


class DevchainError(IndexerError):
    """The local dev chain could not be started, built or stopped."""


class ReorgDetected(ChainDataError):
    """The chain no longer holds a block a read relied on: what was read with it is abandoned."""
