"""What a sync needs, prepared once at start-up (sync/startup.py), and what it learns while it runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection

from indexer.accounting import units_model
from indexer.chain.logs import LogFetcher
from indexer.chain.pools import PoolMeta
from indexer.chain.rpc import RpcClient
from indexer.chain.tokens import Surface
from indexer.chain.vaults import VaultMeta
from indexer.config import Settings
from indexer.liquidity.pools import PoolSnapshot
from indexer.store.progress import record_issue
from indexer.types import Accounting, BalanceSource

log = logging.getLogger("indexer.sync")


@dataclass
class SyncContext:
    """The checked configuration of one chain's sync, and the state it carries from tick to tick: the
    fetcher's learned ranges, the problems already recorded, whether the store has every index."""

    settings: Settings
    rpc: RpcClient
    chain_id: int
    accounting: dict[str, Accounting]  # token address -> model
    feeds: list[str]
    sanctions_lists: list[str]
    fetcher: LogFetcher
    max_blocks_per_tick: int = 2_000
    polled: frozenset[str] = frozenset()  # tokens with balance_source = "poll"
    surfaces: dict[str, Surface] = field(default_factory=dict)  # token -> the read functions it answers
    open_issues: set[tuple[str, str]] = field(default_factory=set)  # (contract, kind) recorded in this process
    # every index the models declare is there (store/indexes.py); None: not looked at yet
    indexes_complete: bool | None = None
    pools: dict[str, PoolMeta] = field(default_factory=dict)  # configured pool -> what the chain says it is
    pools_registered: bool = False  # the pools' chain part is stored (sync/pools.register_pools)
    pool_memory: PoolMemory = field(default_factory=lambda: PoolMemory())
    pool_pending: PoolMemory | None = None  # the tick's, until it commits
    vaults: dict[str, VaultMeta] = field(default_factory=dict)  # configured ERC-4626 vault -> what it is

    def unit_model(self, token: str) -> Accounting:
        """How a token's stored units become balances (`indexer.accounting.units_model`)."""
        return units_model(self.accounting[token], BalanceSource.POLL if token in self.polled else BalanceSource.LOGS)

    def token_surfaces(self) -> list[tuple[str, Surface]]:
        return [(t, self.surfaces[t]) for t in self.accounting]

    @property
    def log_addresses(self) -> list[str]:
        return list(self.accounting) + self.sanctions_lists + list(self.pools)

    @property
    def multicall(self) -> str | None:
        return self.settings.chain.multicall3

    def record(self, conn: Connection, issue: Issue, block: int, *, once: bool = True) -> None:
        """Record a problem in `sync_issues`: once per (contract, kind) in this process, or every time."""
        key = (issue.contract, issue.kind)
        if once and key in self.open_issues:
            return
        self.open_issues.add(key)
        log.warning("%s %s: %s", issue.contract, issue.kind, issue.message)
        record_issue(conn, self.chain_id, issue.contract, issue.kind, issue.message, block)


@dataclass
class PoolMemory:
    """What the sync knows of each pool between ticks (sync/pools.py): its state at the last synced block
    (None: unknown, read in full at the next tick) and its logs since its last full read. A tick works on a
    copy, which becomes the sync's once the tick has committed: a tick that fails leaves nothing behind."""

    known: dict[str, PoolSnapshot | None] = field(default_factory=dict)
    since_full: dict[str, int] = field(default_factory=dict)

    def copy(self) -> PoolMemory:
        return PoolMemory(dict(self.known), dict(self.since_full))


@dataclass(frozen=True)
class Issue:
    """A recorded, explained problem with one contract or feed; the sync goes on with the rest."""

    contract: str
    kind: str
    message: str
