"""Corporate actions in the risk method (docs/risk.md section 2): which prices they adjust, and by how much.

A split changes the number of shares and the price of one share, not what a holding is worth. Every price
is therefore read in the share units of its own time and carried to B's share units with the token's
cumulative action factor ``A(t)`` (the product of ``new / old`` of the actions in force at t):

- a per-share price at time t, for B's shares: ``p * A(t) / A(B)``;
- a Backed xStock's token is one share, so its balance moves with every action, whatever the feed quotes:
  a per-token price is a per-share price for it;
- an ERC-8056 token's raw unit is ``multiplier`` shares: a per-token price already holds the multiplier of
  its own time and needs no adjustment (a split leaves the raw balance and its value where they were).

The same factor makes a feed's history continuous: volatility is estimated on ``p * A(updated_at)``, so a
split, a reverse split or a stock dividend with no market move is no return at all. A fee accrual is not an
action and does not enter: the share price never moved. Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

from indexer.risk.inputs import CorporateActions, FeedHistory, Tokens
from indexer.types import Accounting, PriceQuote


def adjusted_tokens(tokens: Tokens, actions: CorporateActions | None) -> np.ndarray:
    """Per token: do its actions adjust its feed's prices (True), or does the feed already quote them?"""
    if actions is None:
        return np.zeros(len(tokens), dtype=bool)
    has = np.diff(actions.offsets) > 0
    acc = np.asarray(tokens.accounting, dtype=np.int8)
    per_token = np.asarray(tokens.quote, dtype=np.int8) == PriceQuote.PER_TOKEN.code
    ui_per_token = (acc == Accounting.UI_MULTIPLIER.code) & per_token
    return has & ~ui_per_token & (acc != Accounting.PLAIN.code)


def factor_at(actions: CorporateActions | None, token: int, times: np.ndarray,
              ratios: np.ndarray | None = None) -> np.ndarray:
    """``A(t)`` of one token at each time: the product of the ratios of its actions with ``effective_at <= t``
    (1 before the first). ``ratios``: ``actions.ratios()`` when the caller has them already."""
    t = np.asarray(times, dtype=np.int64)
    if actions is None:
        return np.ones(t.shape)
    lo, hi = int(actions.offsets[token]), int(actions.offsets[token + 1])
    if hi == lo:
        return np.ones(t.shape)
    r = actions.ratios()[lo:hi] if ratios is None else ratios[lo:hi]
    cum = np.concatenate(([1.0], np.cumprod(r)))
    k = np.searchsorted(actions.effective_at[lo:hi], t, side="right")
    return cum[k]


def feed_adjuster(tokens: Tokens, n_feeds: int, adjusted: np.ndarray) -> np.ndarray:
    """Per feed: the token whose actions adjust its history, -1 for none. A feed that prices several tokens
    takes the first adjusted one (tokens on the same share have the same actions)."""
    out = np.full(n_feeds, -1, dtype=np.int64)
    for t in np.flatnonzero(adjusted)[::-1]:
        f = int(tokens.feed_idx[t])
        if f >= 0:
            out[f] = t
    return out


def history_factors(history: FeedHistory, adjuster: np.ndarray, actions: CorporateActions | None) -> np.ndarray:
    """Per history row: ``A(updated_at)`` of the token that adjusts its feed, 1 where none does."""
    out = np.ones(len(history.updated_at))
    if actions is None:
        return out
    ratios = actions.ratios()
    for f in np.flatnonzero(adjuster >= 0):
        lo, hi = int(history.offsets[f]), int(history.offsets[f + 1])
        out[lo:hi] = factor_at(actions, int(adjuster[f]), history.updated_at[lo:hi], ratios)
    return out
