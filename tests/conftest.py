"""Shared fixtures: a throwaway anvil dev chain per test module and the project's RPC client on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from indexer.chain.rpc import RpcClient
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import AnvilNode, anvil_binary, free_port
from indexer.devchain.chain import MANIFEST, DevChain, start_devchain
from indexer.devchain.live import load_sim
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
    anvil_binary()  # `make test` installs it: a missing binary is a failure, never a skip
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


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Iterator[DevChain]:
    """The small demo world (seed 7), built once per test session on its own anvil. Read-only.

    TEST_WORLD_DIR names the state folder of a small world already running (`collateral-indexer devchain
    up --scale small --state-dir DIR`): the session uses it as it is and leaves it running."""
    reuse = os.environ.get("TEST_WORLD_DIR")
    if reuse:
        folder = Path(reuse)
        settings = load_settings(folder / MANIFEST)
        port = int(settings.chain.rpc_urls[0].rsplit(":", 1)[1])
        yield DevChain(AnvilNode(port, folder), load_sim(folder), folder / MANIFEST)
        return
    chain = start_devchain(port=free_port(), state_dir=tmp_path_factory.mktemp("world"), seed=7, scale="small")
    yield chain
    chain.node.stop(remove_state=True)


@pytest.fixture(scope="session")
def manifest(world: DevChain) -> Settings:
    return load_settings(world.manifest_path)


@pytest.fixture(scope="session")
def world_rpc(world: DevChain) -> Iterator[RpcClient]:
    client = RpcClient(world.url, timeout=120)
    yield client
    client.close()


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database of `kind`; a PostgreSQL one is created here and dropped on exit."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'indexer-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    from sqlalchemy import create_engine, text

    name = f"ci_indexer_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def db_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database of each kind; the PostgreSQL one is created and dropped by the test."""
    with fresh_database(request.param, tmp_path) as url:
        yield url
