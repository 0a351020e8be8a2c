"""The same holdings under our default policy and under the Kraken preset, side by side (RISK.md s8)."""

from __future__ import annotations

import numpy as np

from indexer.risk.engine import run_risk
from indexer.risk.policy import load_policy
from tests.oracles.synthetic import synthetic_world

from .worlds import DEFAULT_POLICY, KRAKEN_POLICY, ny


def test_kraken_rule_counts_more_for_broad_etfs_and_nothing_for_unlisted_tokens() -> None:
    snap = synthetic_world(400, now=ny("2025-11-29 12:00"), seed=21)  # weekend: our gap add-on applies
    ours = run_risk(snap, load_policy(DEFAULT_POLICY))
    theirs = run_risk(snap, load_policy(KRAKEN_POLICY))
    assert ours.policy_hash != theirs.policy_hash
    symbols = list(snap.tokens.symbol)
    h_ours, h_theirs = ours.holdings, theirs.holdings
    both = h_ours.eligible & h_theirs.eligible

    spy = both & (h_ours.token_idx == symbols.index("SPYx")) & (h_ours.market_value < 500_000)
    assert spy.any()
    # flat 10% against 15% base plus volatility, gap and size add-ons
    np.testing.assert_allclose(h_theirs.haircut[spy], 0.10)
    assert (h_theirs.collateral_value[spy] > h_ours.collateral_value[spy]).all()

    for unlisted in ("TLT", "USDC", "AMZN", "COIN"):
        rows = h_theirs.token_idx == symbols.index(unlisted)
        assert (h_theirs.collateral_value[rows] == 0).all()
        assert all(
            "TOKEN_NOT_ELIGIBLE" in names for names, r in zip(h_theirs.code_names(), rows, strict=True) if r
        )

    # the disclosed per-client caps bind per asset: no wallet counts more than 1M of SPYx
    spy_rows = h_theirs.token_idx == symbols.index("SPYx")
    assert (h_theirs.collateral_value[spy_rows] <= 1_000_000.0).all()
