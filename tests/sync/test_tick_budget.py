"""A tick ends early once it holds MAX_TICK_LOGS logs or has moved MAX_TICK_HOLDERS holders, so memory
stays bounded on dense ranges; the rest follows in the next ticks and the result is the same."""

from __future__ import annotations

import pytest

from indexer.chain.rpc import RpcClient
from indexer.store.engine import open_store
from indexer.sync import tick
from indexer.sync.startup import prepare
from indexer.sync.tick import sync
from tests.sync.checks import assert_balances_match_chain, assert_transfers_match_logs, synced_block


@pytest.mark.parametrize("budget", ["MAX_TICK_LOGS", "MAX_TICK_HOLDERS"])
def test_ticks_split_by_their_budget_give_the_same_result(short_chain, short_settings, db_url, monkeypatch, budget):
    monkeypatch.setattr(tick, budget, 400)
    rpc = RpcClient(short_chain.url, timeout=60)
    engine = open_store(short_settings)
    try:
        ctx = prepare(short_settings, rpc, max_blocks_per_tick=10_000)
        results = []
        sync(engine, ctx, on_tick=results.append)
        head = int(rpc.call("eth_blockNumber"), 16)
        assert synced_block(engine, short_settings.chain.chain_id) == head
        # one 10,000-block tick would have held every log; the budget cut it after the first request
        assert len(results) >= 2 and results[0].to_block < head
        if budget == "MAX_TICK_LOGS":
            assert results[0].logs >= 400
        assert all(b.from_block == a.to_block + 1 for a, b in zip(results, results[1:], strict=False))
        assert assert_transfers_match_logs(engine, short_settings, rpc) > 1_000
        assert assert_balances_match_chain(engine, short_settings, rpc) > 100
    finally:
        rpc.close()
        engine.dispose()
