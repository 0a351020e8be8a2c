"""Following the head: multipliers that move with no event, and reorgs of several depths."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from indexer.devchain.live import produce_blocks
from indexer.store import models as m
from indexer.sync.tick import sync
from indexer.types import Accounting
from tests.sync.checks import assert_balances_match_chain, assert_token_state_matches_chain, synced_block


def _rebasing_balances(engine, settings):
    rebasing = [t.address for t in settings.tokens if t.accounting == Accounting.REBASING_SHARES]
    with engine.connect() as conn:
        return dict(((r.token, r.wallet), r.balance_raw) for r in conn.execute(
            select(m.Balance.token, m.Balance.wallet, m.Balance.balance_raw).where(m.Balance.token.in_(rebasing))))


def test_fee_periods_passing_with_no_transaction_move_every_rebasing_balance(short_chain, short_settings, synced):
    engine, ctx, rpc = synced
    sync(engine, ctx)
    before = _rebasing_balances(engine, short_settings)
    head = rpc.call("eth_getBlockByNumber", ["latest", False])
    rpc.call("evm_mine", [int(head["timestamp"], 16) + 5 * 86_400])  # five fee periods, an empty block
    sync(engine, ctx)
    after = _rebasing_balances(engine, short_settings)
    moved = sum(1 for k, v in after.items() if v < before[k])
    assert moved > 0.9 * len(after)
    assert_balances_match_chain(engine, short_settings, rpc)
    assert_token_state_matches_chain(engine, short_settings, rpc)


@pytest.mark.parametrize("depth", [1, 3, 10])
def test_reorg_while_following_rolls_back_and_resyncs(short_chain, short_settings, synced, depth):
    engine, ctx, rpc = synced
    sync(engine, ctx)
    snapshot = rpc.call("evm_snapshot")
    fork_head = int(rpc.call("eth_blockNumber"), 16)
    branch_a = copy.deepcopy(short_chain.sim)
    produce_blocks(rpc, branch_a, depth, step=1_800)
    sync(engine, ctx)
    assert synced_block(engine, ctx.chain_id) == fork_head + depth
    assert rpc.call("evm_revert", [snapshot]) is True
    produce_blocks(rpc, short_chain.sim, depth + 1, step=1_500)  # another history, one block longer
    sync(engine, ctx)
    assert synced_block(engine, ctx.chain_id) == fork_head + depth + 1
    assert_balances_match_chain(engine, short_settings, rpc)
    assert_token_state_matches_chain(engine, short_settings, rpc)
    with engine.connect() as conn:
        stored = conn.execute(select(m.Block.number, m.Block.hash)).all()
        fact_blocks = {n for (n,) in conn.execute(select(m.Transfer.block_number).distinct())}
    chain = {n: rpc.call("eth_getBlockByNumber", [hex(n), False])["hash"] for n, _ in stored}
    orphans = [(n, h) for n, h in stored if chain[n] != h]
    assert orphans == []
    assert fact_blocks <= {n for n, _ in stored}
