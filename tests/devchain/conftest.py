"""The small demo world, built once per test session on its own anvil."""

from __future__ import annotations

import pytest

from indexer.chain.rpc import RpcClient
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import free_port
from indexer.devchain.chain import DevChain, start_devchain


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> DevChain:
    chain = start_devchain(port=free_port(), state_dir=tmp_path_factory.mktemp("world"), seed=7, scale="small")
    yield chain
    chain.node.stop(remove_state=True)


@pytest.fixture(scope="session")
def manifest(world: DevChain) -> Settings:
    return load_settings(world.manifest_path)


@pytest.fixture(scope="session")
def world_rpc(world: DevChain) -> RpcClient:
    rpc = RpcClient(world.url, timeout=120)
    yield rpc
    rpc.close()
