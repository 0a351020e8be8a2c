"""Helpers the service tests share: waiting for a condition, the chain's head."""

from __future__ import annotations

import time

from indexer.chain.rpc import RpcClient


def wait_until(predicate, timeout: float, what: str, step: float = 0.1):
    """The predicate's first truthy value, polled every `step` seconds; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def head(rpc: RpcClient) -> int:
    return int(rpc.call("eth_blockNumber"), 16)
