"""The retry and failover policy of the RPC client, as a value.

One frozen model holds every number the client's retries depend on; `[chain.retry]` in a TOML
configuration sets it (see `indexer.config.ChainConfig.retry`). docs/rpc.md describes the behaviour.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from indexer.errors import RpcError

log = logging.getLogger(__name__)
T = TypeVar("T")

# RpcError kinds a later try can fix: the provider's passing trouble, not the request's fault.
PASSING_KINDS = frozenset({"timeout", "connection", "http_5xx", "rate_limited", "transient",
                           "block_unavailable", "bad_response", "missing_answer"})


class RetryPolicy(BaseModel):
    """How long to wait for an answer, how often to try again and how long to pause in between.

    `timeout`: seconds to wait for an answer. `max_retries`: rounds after the first (a round tries
    every URL not yet tried). `backoff_base`, `backoff_cap`: the exponential backoff, in seconds.
    `retry_after_cap`: the longest wait a provider's Retry-After may ask for. `max_batch`: calls per
    HTTP request at the start (None: no cap); the client lowers its own copy when a provider refuses
    a batch for its size. `patience_s`: how long the sync goes on retrying, where it happened, a read
    that still fails for a passing reason once the client's own retries are spent (`patiently`): a
    backfill never throws away a tick's work for a provider's bad minute.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = 30.0
    max_retries: int = 5
    backoff_base: float = 0.25
    backoff_cap: float = 8.0
    retry_after_cap: float = 60.0
    max_batch: int | None = Field(default=None, ge=1)
    patience_s: float = Field(300.0, ge=0)  # how long a sync retries a read that keeps failing for passing reasons

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry `attempt` (from 0).

        With a Retry-After from the provider: exactly that, capped at `retry_after_cap`, no jitter (the
        provider said how long). Otherwise `min(backoff_cap, backoff_base * 2**attempt)`, drawn uniformly
        from its upper half so that clients that failed together do not retry together. `rng` is the
        random source (the `random` module when not given).
        """
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        delay = min(self.backoff_cap, self.backoff_base * (2**attempt))
        return (random if rng is None else rng).uniform(delay / 2, delay)


def patiently(read: Callable[[], T], policy: RetryPolicy, what: str, *, sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> T:
    """`read()`, tried again while it fails with a passing kind of RpcError (`PASSING_KINDS`), with the
    policy's backoff, for at most `policy.patience_s` seconds; other errors, and the last one, are raised."""
    deadline = clock() + policy.patience_s
    attempt = 0
    while True:
        try:
            return read()
        except RpcError as exc:
            if exc.kind not in PASSING_KINDS or clock() >= deadline:
                raise
            delay = min(policy.delay(attempt), max(0.0, deadline - clock()))
            log.warning("%s failed (%s: %s); trying again in %.1fs", what, exc.kind, exc, delay)
            sleep(delay)
            attempt += 1
