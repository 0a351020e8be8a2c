"""Syncing through a faulty provider ends in exactly the state of a clean run."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from indexer.chain.rpc import RpcClient
from indexer.store import models as m
from indexer.store.engine import open_store
from indexer.sync.startup import prepare
from indexer.sync.tick import sync
from tests.chain.faultproxy import FaultProxy, Faults

TABLES = (m.Block, m.Transfer, m.ShareTransfer, m.TokenEvent, m.PriceRound, m.BalanceChange, m.Balance,
          m.AccountStatus, m.SyncCheckpoint)


def _synced_copy(url: str, settings, rpc: RpcClient) -> dict[str, set]:
    engine = open_store(settings.model_copy(update={"database_url": url}))
    sync(engine, prepare(settings, rpc, max_blocks_per_tick=40))
    out = {}
    with engine.connect() as conn:
        for model in TABLES:
            t = model.__table__
            cols = [c for c in t.c if c.name not in ("updated_at",)]
            out[t.name] = set(conn.execute(select(*cols)).all())
        ts = m.TokenState.__table__
        head = conn.execute(select(m.SyncCheckpoint.block_number)).scalar()
        out["token_state@head"] = set(conn.execute(select(ts).where(ts.c.block_number == head)).all())
    engine.dispose()
    return out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_faulty_provider_and_a_dead_url_change_nothing(short_chain, short_settings, tmp_path, db_url):
    clean = _synced_copy(db_url, short_settings, RpcClient(short_chain.url))
    # log_cap stays above the largest block (the initial mints): one block cannot be split
    faults = Faults(log_cap=6_000, range_cap=50, batch_cap=40, rate_429_every=7, rate_5xx=0.05, item_429_every=11,
                    drop_every=13, slow_every=17, delay=0.05, seed=3)
    with FaultProxy(short_chain.url, faults) as proxy:
        rpc = RpcClient(["http://127.0.0.1:9", proxy.url], max_retries=8, backoff_base=0.01, backoff_cap=0.05)
        faulty = _synced_copy(f"sqlite:///{tmp_path / 'faulty.sqlite'}", short_settings, rpc)
        assert proxy.requests > 50
    assert rpc.stats.errors["connection"] >= 1
    assert sum(rpc.stats.errors.values()) > 10
    for name, rows in clean.items():
        assert faulty[name] == rows, name
    assert len(clean["transfers"]) > 1000
