"""The configured ERC-4626 vaults in a tick: their exchange rate is read at the tick's last block and at every
block inside the tick where the vault's shares, or tokens to or from the vault, moved (a deposit, a
withdrawal, a donation: `LogsWritten.vault_blocks`), and stored when it changed. A rate moves with no event
too (a rebasing asset's multiplier, a strategy's gains): the read at each tick's end catches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Connection

from indexer.chain.vaults import read_vault_rates
from indexer.liquidity.vaults import VaultRead
from indexer.store.vaults import last_vault_rates
from indexer.sync.context import Issue, SyncContext
from indexer.sync.facts import LogsWritten
from indexer.sync.pools import ReadAt


@dataclass(frozen=True)
class VaultReads:
    """The vaults' reads of a tick, (block, timestamp, {vault: read or None}) in block order, and the last
    stored read of each vault before the tick."""

    reads: tuple[tuple[int, int, Mapping[str, VaultRead | None]], ...] = ()
    prior: Mapping[str, VaultRead] = field(default_factory=dict)


def read_vaults(conn: Connection, ctx: SyncContext, logs: LogsWritten, at: ReadAt) -> VaultReads:
    """Each vault's rate at the tick's blocks where it may have moved and at its last block; a block the node
    holds no state for any more is left out (`at` returns None)."""
    if not ctx.vaults:
        return VaultReads((), {})
    metas = list(ctx.vaults.values())
    blocks = sorted(b for b in logs.vault_blocks if logs.start <= b < logs.end) + [logs.end]
    out = []
    for b in blocks:
        reads = at(b, partial(read_vault_rates, ctx.rpc, metas, b, ctx.multicall))
        if reads is not None:
            out.append((b, int(logs.headers[b]["timestamp"], 16), reads))
    return VaultReads(tuple(out), last_vault_rates(conn, ctx.chain_id))


def vault_rows(cid: int, reads: VaultReads) -> tuple[list[dict], list[Issue]]:
    """`vault_rates` rows (a row where a vault's read differs from the one before it) and an issue for each
    vault whose reads failed (pure)."""
    rows, issues, last = [], [], dict(reads.prior)
    for block, ts, by_vault in reads.reads:
        for vault, read in by_vault.items():
            if read is None:
                issues.append(Issue(vault, "vault_unreadable", f"convertToAssets, totalAssets or totalSupply of the "
                                    f"ERC-4626 vault reverted at block {block}: its rate is the last one read"))
                continue
            if last.get(vault) == read:
                continue
            last[vault] = read
            rows.append(dict(chain_id=cid, vault=vault, block_number=block, block_timestamp=ts,
                             assets_per_share_raw=read.assets_per_share_raw, total_assets_raw=read.total_assets_raw,
                             total_supply_raw=read.total_supply_raw, asset_multiplier_raw=read.asset_multiplier_raw))
    return rows, issues

