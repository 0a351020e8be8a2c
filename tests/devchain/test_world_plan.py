"""The world's plan is a pure function of its seed (no chain needed)."""

from __future__ import annotations

from indexer.devchain.specs import CRYPTO, SCALES, TIMELINE, TOKENS
from indexer.devchain.world import Deployment, WorldSim, price_feed_name


def fake_deployment() -> Deployment:
    a = "0x" + "11" * 20
    feeds = {price_feed_name(t): a for t in TOKENS} | {c.pair: a for c in CRYPTO}
    return Deployment(a, a, a, {t.symbol: a for t in TOKENS}, feeds, {t.symbol: a for t in TOKENS},
                      TIMELINE.start - 7200, factory=a, proxy_admin=a,
                      implementations={"XStockV3": a, "XStockV4": a}, disperse=a,
                      aggregators={name: [a, a, a] for name in (*feeds, *(f"{t.symbol} PoR" for t in TOKENS))})


def plan(seed: int, blocks: int = 300):
    sim = WorldSim(seed, SCALES["small"], TIMELINE, fake_deployment())
    out = [(tx.sender, tx.to, tx.data) for stage in sim.initial_mints(TIMELINE.start - 1800)
           for tx in stage]
    for t in sim.block_times()[:blocks]:
        out += [(tx.sender, tx.to, tx.data) for tx in sim.next_block(t).txs]
    return out


def test_the_same_seed_plans_the_same_chain_and_another_seed_does_not():
    first = plan(7)
    assert first == plan(7)
    assert first != plan(8)
    assert len(first) > 1000
