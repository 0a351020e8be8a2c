"""Shared fixtures: a throwaway anvil dev chain per test module and the project's RPC client on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from indexer.chain.rpc import RpcClient
from indexer.devchain.anvil import AnvilNode, anvil_binary, free_port
from indexer.errors import DevchainError

# A fixed genesis time (2026-01-01T00:00:00Z) keeps block timestamps, and so every time-dependent
# contract value, reproducible from run to run.
ANVIL_GENESIS_TIMESTAMP = 1_767_225_600


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """A running anvil node on a free port, shared by the tests of one module (automine on).

    Module scope: starting a node per test would dominate the run time. Tests sharing the node deploy
    their own contracts and only ever move time forward.
    """
    try:
        anvil_binary()
    except DevchainError as exc:
        pytest.skip(str(exc))
    state_dir = tmp_path_factory.mktemp("anvil")
    node = None
    for attempt in range(3):
        try:
            node = AnvilNode.start(
                free_port(), state_dir, genesis_timestamp=ANVIL_GENESIS_TIMESTAMP, prune_history=256
            )
            break
        except DevchainError as exc:
            # another process may grab the free port between free_port() and anvil binding it
            if "in use" not in str(exc) or attempt == 2:
                raise
    assert node is not None
    try:
        yield node
    finally:
        node.stop(remove_state=True)


@pytest.fixture(scope="module")
def rpc(anvil: AnvilNode) -> Iterator[RpcClient]:
    """The project's JSON-RPC client pointed at the module's anvil node."""
    client = RpcClient(anvil.url, timeout=30.0, max_retries=0)
    try:
        yield client
    finally:
        client.close()
