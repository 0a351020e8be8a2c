"""A reorg keeps the risk runs that valued removed blocks: marked orphaned with the reorg's time, every row
kept, left out of the analyst views and of the latest run; the next run gets a new id."""

from __future__ import annotations

import copy
import time

from sqlalchemy import func, select, text

from indexer.devchain.live import produce_blocks
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.store.runs import latest_run
from indexer.sync.tick import sync
from tests.sync.checks import synced_block


def _rows(conn, run_id: int) -> tuple[int, int]:
    return tuple(conn.execute(select(func.count()).select_from(t).where(t.run_id == run_id)).scalar()
                 for t in (m.RiskHolding, m.RiskWallet))


def test_a_reorg_keeps_the_runs_of_removed_blocks_as_orphaned(short_chain, short_settings, synced):
    engine, ctx, rpc = synced
    cid, policy = ctx.chain_id, short_settings.policy_path
    sync(engine, ctx)
    fork = synced_block(engine, cid)
    kept = run_and_store(engine, cid, policy)  # values the fork block: stays on the chain
    snapshot = rpc.call("evm_snapshot")
    produce_blocks(rpc, copy.deepcopy(short_chain.sim), 3, step=1_800)
    sync(engine, ctx)
    on_branch = run_and_store(engine, cid, policy)  # values fork + 3
    past = run_and_store(engine, cid, policy, block=fork + 1)
    assert (kept.block_number, on_branch.block_number, past.block_number) == (fork, fork + 3, fork + 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT run_id FROM latest_run")).scalar() == on_branch.run_id
        before = {r: _rows(conn, r) for r in (on_branch.run_id, past.run_id)}
    assert all(h > 100 and w > 100 for h, w in before.values())

    assert rpc.call("evm_revert", [snapshot]) is True
    produce_blocks(rpc, short_chain.sim, 4, step=1_500)  # another history, one block longer
    reorg_started = time.time()
    sync(engine, ctx)
    assert synced_block(engine, cid) == fork + 4

    with engine.connect() as conn:
        rr = m.RiskRunRecord
        orphaned = dict(conn.execute(select(rr.id, rr.orphaned_at)).all())
        assert orphaned[kept.run_id] is None
        for r in (on_branch.run_id, past.run_id):
            assert reorg_started <= orphaned[r] <= time.time()
            assert _rows(conn, r) == before[r]  # the run an analyst cited is still all there
        assert conn.execute(text("SELECT run_id FROM latest_run")).scalar() == kept.run_id
        assert set(conn.execute(text("SELECT DISTINCT run_id FROM wallet_collateral")).scalars()) == {kept.run_id}
        assert set(conn.execute(text("SELECT DISTINCT run_id FROM wallet_margin")).scalars()) == {kept.run_id}
        assert latest_run(conn, cid).id == kept.run_id
        assert latest_run(conn, cid, block=fork + 3).id == kept.run_id

    again = run_and_store(engine, cid, policy)
    assert again.block_number == fork + 4 and again.run_id == past.run_id + 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT run_id FROM latest_run")).scalar() == again.run_id
        assert conn.execute(select(func.count()).select_from(m.RiskRunRecord)).scalar() == 4
