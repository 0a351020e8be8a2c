"""The retry and failover policy of the RPC client, as a value.

One frozen model holds every number the client's retries depend on; `[chain.retry]` in a TOML
configuration sets it (see `indexer.config.ChainConfig.retry`). docs/rpc.md describes the behaviour.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """How long to wait for an answer, how often to try again and how long to pause in between.

    `timeout`: seconds to wait for an answer. `max_retries`: rounds after the first (a round tries
    every URL not yet tried). `backoff_base`, `backoff_cap`: the exponential backoff, in seconds.
    `retry_after_cap`: the longest wait a provider's Retry-After may ask for. `max_batch`: calls per
    HTTP request at the start (None: no cap); the client lowers its own copy when a provider refuses
    a batch for its size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = 30.0
    max_retries: int = 5
    backoff_base: float = 0.25
    backoff_cap: float = 8.0
    retry_after_cap: float = 60.0
    max_batch: int | None = Field(default=None, ge=1)

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
