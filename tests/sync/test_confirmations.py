"""`confirmations` as a number or as the node's `safe` / `finalized` tags: the sync stops there."""

from __future__ import annotations

from indexer.chain.headers import read_target
from indexer.store.engine import open_store
from indexer.sync.startup import prepare
from indexer.sync.tick import sync
from tests.sync.checks import assert_balances_match_chain, synced_block


def with_confirmations(settings, value):
    return settings.model_copy(update={"chain": settings.chain.model_copy(update={"confirmations": value})})


def test_sync_stops_at_the_confirmed_block_for_each_kind_of_confirmation(short_chain, short_settings, db_url):
    from indexer.chain.rpc import RpcClient

    rpc = RpcClient(short_chain.url, timeout=60)
    engine = open_store(short_settings)
    cid = short_settings.chain.chain_id
    try:
        head = int(rpc.call("eth_blockNumber"), 16)
        tag = lambda name: int(rpc.call("eth_getBlockByNumber", [name, False])["number"], 16)  # noqa: E731
        # anvil answers `safe` and `finalized` 32 and 64 blocks behind the head, like a beacon chain
        expected = [("finalized", tag("finalized")), ("safe", tag("safe")), (10, head - 10), (0, head)]
        assert tag("finalized") < tag("safe") < head
        for value, goal in expected:
            settings = with_confirmations(short_settings, value)
            ctx = prepare(settings, rpc, max_blocks_per_tick=200)
            assert read_target(rpc, settings.chain.confirmations) == goal
            sync(engine, ctx)
            assert synced_block(engine, cid) == goal, value
        # what was synced under each setting was exact at its block
        assert assert_balances_match_chain(engine, short_settings, rpc) > 100
    finally:
        rpc.close()
        engine.dispose()
