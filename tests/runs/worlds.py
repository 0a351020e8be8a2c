"""A short dev world synced into each database, for the tests of what is built on synced data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from indexer.chain.rpc import RpcClient
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import free_port
from indexer.devchain.chain import DevChain, short_timeline, start_devchain
from indexer.devchain.deploy import ChainWriter
from indexer.devchain.live import produce_blocks
from indexer.offchain import load_files
from indexer.store.engine import open_store
from indexer.sync.context import SyncContext
from indexer.sync.startup import prepare
from indexer.sync.tick import sync
from tests.conftest import DATABASES, fresh_database

POLICY = "default"


@dataclass
class Store:
    kind: str
    settings: Settings
    engine: Engine
    ctx: SyncContext

    @property
    def chain_id(self) -> int:
        return self.settings.chain.chain_id


def load_book(store: Store) -> None:
    world = store.settings.world
    load_files(store.engine, store.settings, accounts=world["accounts_csv"], positions=world["positions_csv"])


@contextmanager
def synced_world(folder: Path, days: int, *, seed: int = 7, book: bool = True, kinds: list[str] = DATABASES
                 ) -> Iterator[tuple[DevChain, RpcClient, list[Store]]]:
    """The first `days` days of the demo world, synced into a fresh database of each of `kinds` (with the
    world's accounts and positions unless `book` is false); everything is removed on exit."""
    chain = start_devchain(port=free_port(), state_dir=folder / "chain", seed=seed, scale="small",
                           timeline=short_timeline(days))
    rpc = RpcClient(chain.url, timeout=120)
    try:
        with ExitStack() as stack:
            stores = []
            for kind in kinds:
                settings = load_settings(chain.manifest_path, database_url=stack.enter_context(
                    fresh_database(kind, folder)))
                engine = open_store(settings)
                stack.callback(engine.dispose)
                store = Store(kind, settings, engine, prepare(settings, rpc))
                sync(engine, store.ctx)
                if book:
                    load_book(store)
                stores.append(store)
            yield chain, rpc, stores
    finally:
        rpc.close()
        chain.node.stop(remove_state=True)


def follow(chain: DevChain, rpc: RpcClient, stores: list[Store], until: int, *, blocks: int = 24,
           after: Callable[[Store], None] | None = None) -> None:
    """Produce world blocks (half an hour apart) and sync every store each `blocks` blocks, inside the
    node's state window, until the head's time reaches `until`; `after` runs on each store per step."""
    writer = ChainWriter(rpc)
    while int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16) < until:
        produce_blocks(rpc, chain.sim, blocks, 1_800, writer)
        for s in stores:
            sync(s.engine, s.ctx)
            if after is not None:
                after(s)
