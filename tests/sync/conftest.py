"""A short demo world per test: the first days of the world, on a chain the test may change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from indexer.chain.rpc import RpcClient
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import free_port
from indexer.devchain.chain import DevChain, short_timeline, start_devchain
from indexer.store.engine import open_store
from indexer.sync.context import SyncContext
from indexer.sync.startup import prepare


@pytest.fixture
def short_chain(tmp_path) -> Iterator[DevChain]:
    chain = start_devchain(port=free_port(), state_dir=tmp_path / "chain", seed=11, scale="small",
                           timeline=short_timeline(4))
    yield chain
    chain.node.stop(remove_state=True)


@pytest.fixture
def short_settings(short_chain: DevChain, db_url: str) -> Settings:
    return load_settings(short_chain.manifest_path, database_url=db_url)


@pytest.fixture
def synced(short_chain, short_settings):
    """(engine, ctx, rpc) with the schema applied and the configuration registered, nothing synced yet."""
    engine = open_store(short_settings)
    rpc = RpcClient(short_chain.url, timeout=60)
    ctx: SyncContext = prepare(short_settings, rpc, max_blocks_per_tick=60)
    yield engine, ctx, rpc
    rpc.close()
    engine.dispose()
