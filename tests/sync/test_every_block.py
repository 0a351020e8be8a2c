"""A world that grows while it is synced: at every synced block the store says what the contracts say.

The world's chain is mined in steps of a few dozen to a few hundred blocks, under the 256 states anvil
keeps, so that every block's state can still be read when it is checked. Three stores follow it: SQLite
in ticks of varying size, PostgreSQL in ticks as large as each step, and SQLite through a provider that
duplicates logs, answers transient errors with HTTP 200 and sends some requests to a backend one to three
blocks behind. At every block of the two clean stores the multiplier in force and the pause (as a risk
run takes them), and every balance that moved, equal the contract's answers there; risk-run snapshots
at sampled blocks, around state reads among them, equal the chain holder by holder; every round of every
phase equals getRoundData; and the faulty run's store equals the clean run's row for row, with no
rollback and its risk runs kept.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import Engine, select

from indexer.chain.rpc import RpcClient
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import AnvilNode, free_port
from indexer.devchain.deploy import (
    BuildReport,
    ChainWriter,
    deploy_world,
    mine_initial_distribution,
    play_blocks,
)
from indexer.devchain.manifest import manifest_data, write_manifest
from indexer.devchain.specs import TIMELINE, Scale
from indexer.devchain.world import WorldSim
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.store.engine import open_store
from indexer.sync.context import SyncContext
from indexer.sync.startup import prepare
from indexer.sync.tick import sync
from tests.chain.faultproxy import FaultProxy, Faults
from tests.conftest import fresh_database
from tests.sync.checks import assert_blocks_match_chain, assert_rounds_match_chain, synced_block

SCALE = Scale("growing", wallets=250, transfers_per_block=4.0, direct_share=0.1, initial_holders=0.7,
              block_seconds=7_200)
TIMELINE_H = replace(TIMELINE, block_seconds=SCALE.block_seconds)
STEPS = (37, 180, 5, 200, 64)  # blocks mined per step, in turn: none above the states anvil keeps (256)
# What must be equal row for row whatever the ticks' sizes: the facts, and the derived rows without the
# block a tick happened to read them at (a tick's last block is stored too, and state is read there)
COMPARED = {m.Transfer: (), m.ShareTransfer: (), m.TokenEvent: (), m.BalanceChange: (),
            m.PriceRound: ("block_number",), m.Balance: ("block_number",), m.AccountStatus: ("block_number",)}


@dataclass
class Follower:
    """A store following the world, and how it syncs."""

    name: str
    full_every: int | None  # whole snapshots: every so many blocks and around state reads, six a step; None: none
    engine: Engine
    ctx: SyncContext
    settings: Settings
    rpc: RpcClient


@pytest.fixture(scope="module")
def growing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("growing")
    node = AnvilNode.start(free_port(), folder, genesis_timestamp=TIMELINE_H.start - 3 * 3600, prune_history=256)
    try:
        rpc = RpcClient(node.url, timeout=120)
        dep = deploy_world(rpc, TIMELINE_H.start - 7_200)
        deployment_block = int(rpc.call("eth_blockNumber"), 16) - 2
        sim = WorldSim(7, SCALE, TIMELINE_H, dep)
        writer = ChainWriter(rpc)
        mine_initial_distribution(writer, sim)
        head = int(rpc.call("eth_blockNumber"), 16)
        report = BuildReport(deployment_block, head, 0, 0, 0, 0.0, [])
        path = folder / "manifest.toml"
        write_manifest(path, manifest_data(rpc_url=node.url, seed=7, scale=SCALE, timeline=TIMELINE_H, dep=dep,
                                           report=report))
        yield node, rpc, sim, writer, load_settings(path)
    finally:
        node.stop(remove_state=True)


def _follower(name: str, full_every: int | None, url: str, settings: Settings, rpc: RpcClient, tick: int) -> Follower:
    mine = settings.model_copy(update={"database_url": url})
    return Follower(name, full_every, open_store(mine), prepare(mine, rpc, max_blocks_per_tick=tick), mine, rpc)


def _rows(engine: Engine) -> dict[str, set]:
    out = {}
    with engine.connect() as conn:
        for model, skip in COMPARED.items():
            t = model.__table__
            out[t.name] = set(conn.execute(select(*[c for c in t.c if c.name not in skip])).all())
        logged = select(m.Transfer.block_number).union(select(m.TokenEvent.block_number)).subquery()
        blocks = m.Block.__table__
        out["blocks"] = set(conn.execute(select(blocks).where(blocks.c.number.in_(select(logged.c[0])))).all())
    return out


def test_every_synced_block_equals_the_chain_through_clean_and_faulty_providers(growing, tmp_path):
    node, rpc, sim, writer, settings = growing
    faults = Faults(dup_logs=0.05, transient_rate=0.05, lag_rate=0.25, lag_blocks=(1, 3), seed=11)
    with ExitStack() as stack:
        proxy = stack.enter_context(FaultProxy(node.url, faults))
        faulty_rpc = RpcClient(proxy.url, timeout=60, max_retries=6, backoff_base=0.01, backoff_cap=0.05)
        followers = [
            _follower("sqlite", 25, stack.enter_context(fresh_database("sqlite", tmp_path)), settings, rpc, 23),
            _follower("postgresql", 50, stack.enter_context(fresh_database("postgresql", tmp_path)), settings, rpc,
                      500),
            # its store must equal the clean one's, row for row: that proves every block of it too
            _follower("faulty", None, f"sqlite:///{tmp_path / 'faulty.sqlite'}", settings, faulty_rpc, 9),
        ]
        times = sim.block_times()
        events: list[dict] = []
        checked = {f.name: {"blocks": 0, "balances": 0, "snapshots": 0} for f in followers if f.full_every}
        runs_kept: list[int] = []
        rollbacks: list[int] = []
        done, step = 0, 0
        while done < len(times):
            n = STEPS[step % len(STEPS)]
            first = int(rpc.call("eth_blockNumber"), 16) + 1
            head = play_blocks(writer, sim, times[done:done + n], events)
            done, step = done + n, step + 1
            for f in followers:
                for _ in range(50):  # a backend behind the head ends a sync short of it: the next one goes on
                    sync(f.engine, f.ctx, to_block=head, on_tick=lambda r: rollbacks.append(r.reorg_to)
                         if r.reorg_to is not None else None)
                    if synced_block(f.engine, settings.chain.chain_id) == head:
                        break
                assert synced_block(f.engine, settings.chain.chain_id) == head, f.name
                if f.full_every:
                    for k, v in assert_blocks_match_chain(f.engine, f.settings, rpc, first if step > 1 else 0, head,
                                                          full_every=f.full_every, max_snapshots=6).items():
                        checked[f.name][k] += v
                if f.name == "faulty" and step % 4 == 0:  # a risk run now and then: a lag must never delete it
                    runs_kept.append(run_and_store(f.engine, settings.chain.chain_id, settings.policy_path).run_id)
            if step % 5 == 0:
                for f in followers:
                    assert_rounds_match_chain(f.engine, f.settings, rpc)
        for f in followers:
            assert assert_rounds_match_chain(f.engine, f.settings, rpc) > 5_000
        # what the world did is in the history: every kind of event, across the upgrade and both phase changes
        assert {e["kind"] for e in events} >= {"multiplier_scheduled", "fee_change", "upgrade", "aggregator_change",
                                               "xstock_pause", "ui_multiplier_scheduled", "oracle_pause"}
        for name, c in checked.items():
            assert c["blocks"] >= len(times) * 0.95 and c["balances"] > 10_000 and c["snapshots"] > 30, (name, c)
        clean, faulty = _rows(followers[0].engine), _rows(followers[2].engine)
        for table, rows in clean.items():
            assert faulty[table] == rows, table
        assert clean == _rows(followers[1].engine)
        injected = proxy.injected
        assert injected["dup_logs:answers"] > 5 and injected["lag"] > 20
        assert sum(v for k, v in injected.items() if k.startswith("transient:")) > 20
        with followers[2].engine.connect() as conn:
            kept = set(conn.execute(select(m.RiskRunRecord.id)).scalars())
        assert rollbacks == [] and len(runs_kept) >= 3 and set(runs_kept) == kept
        for f in followers:
            f.engine.dispose()
