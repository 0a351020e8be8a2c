"""`balance_source = "poll"`: balances read by balanceOf only, for tokens whose balances no log explains."""

from __future__ import annotations

from sqlalchemy import func, select

from indexer.chain.rpc import RpcClient
from indexer.store import models as m
from indexer.store.engine import open_store
from indexer.sync.derive import POLL_LOG_INDEX
from indexer.sync.reconcile import reconcile
from indexer.sync.startup import prepare
from indexer.sync.tick import sync
from tests.sync.checks import assert_balances_match_chain, synced_block

POLLED = ("MSFT", "NVDAx", "USDC")  # one of each accounting model


def test_polled_tokens_equal_balance_of_at_every_tick(short_chain, short_settings, db_url):
    tokens = [t.model_copy(update={"balance_source": "poll"}) if t.symbol in POLLED else t
              for t in short_settings.tokens]
    settings = short_settings.model_copy(update={"tokens": tokens})
    polled = {t.address for t in tokens if t.balance_source == "poll"}
    rpc = RpcClient(short_chain.url, timeout=60)
    engine = open_store(settings)
    try:
        ctx = prepare(settings, rpc, max_blocks_per_tick=40)
        assert sync(engine, ctx) >= 3
        assert synced_block(engine, settings.chain.chain_id) == int(rpc.call("eth_blockNumber"), 16)
        assert assert_balances_match_chain(engine, settings, rpc) > 1_000
        bc = m.BalanceChange.__table__
        with engine.connect() as conn:
            rows = conn.execute(select(bc.c.token, bc.c.log_index, bc.c.block_number)).all()
            stored = conn.execute(select(m.Balance.token, m.Balance.shares_raw, m.Balance.units_raw,
                                         m.Balance.balance_raw)).all()
            transfers = conn.execute(select(m.Transfer.token).distinct()).scalars().all()
        # polled tokens: one change row per holder and tick where balanceOf moved, at the tick's end
        assert {log for token, log, _ in rows if token in polled} == {POLL_LOG_INDEX}
        assert all(log != POLL_LOG_INDEX for token, log, _ in rows if token not in polled)
        # their units are balances, not shares; their Transfer logs are still stored as facts
        assert all(units == bal and shares is None for token, shares, units, bal in stored if token in polled)
        assert polled <= set(transfers)
        # reconcile judges polled units by the polled rule (balanceOf), also for the rebasing NVDAx: nothing to
        # repair, so the next tick (a block with no transfer) records no change either
        assert reconcile(engine, ctx).mismatches == 0
        rpc.call("evm_mine", [])
        assert sync(engine, ctx) == 1
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(bc)).scalar() == len(rows)
        assert assert_balances_match_chain(engine, settings, rpc) > 1_000
    finally:
        rpc.close()
        engine.dispose()
