"""A tick's pages written as they come, inside the tick's transaction: facts (blocks, transfers, share
transfers, token events) and the balance changes derived from them. What the pages leave for the
tick's end (`LogsWritten`): their events, headers, and the running units of every holder they moved.

On PostgreSQL a page's rows are written on a thread of their own (`WriteBehind`) while the caller
reads and decodes the next page; `finish()` waits for them, and `close()` must be called before the
transaction ends, committed or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from indexer.chain.decode import EventRecord, Undecodable
from indexer.store import models as m
from indexer.store.balances import CHANGE_COLS, SHARE_COLS, TRANSFER_COLS, load_units, tokens_without_holders
from indexer.store.dialect import dialect_of
from indexer.store.progress import header_rows
from indexer.store.writes import WriteBehind, insert_ignore, prepare_insert
from indexer.sync.context import SyncContext
from indexer.sync.derive import Holder, apply_movements, movements, polled_holders, unseen_holders
from indexer.sync.pages import Page
from indexer.sync.pools import event_rows, split_events
from indexer.types import Accounting


@dataclass(frozen=True)
class LogsWritten:
    """What a tick's pages left for its last block: the range they covered, their non-transfer events
    in log order, the headers they checked, and the running units of every holder they moved."""

    start: int
    end: int
    n_logs: int
    n_transfers: int
    events: tuple[EventRecord, ...]
    headers: Mapping[int, dict]
    units: Mapping[Holder, int]
    fresh: frozenset[str]  # tokens with no stored holder when the tick began: all their balance rows are new
    polled_holders: frozenset[Holder]  # holders of polled tokens the transfers named
    undecodable: tuple[Undecodable, ...] = ()  # logs of a stored topic that are not what it declares
    duplicates: int = 0  # logs the provider sent twice, kept once
    recovered: int = 0  # logs a range answer lacked, read again by block hash
    pool_events: tuple[EventRecord, ...] = ()  # the configured pools' logs, in log order
    vault_blocks: frozenset[int] = frozenset()  # blocks where a vault's shares, or tokens to or from it, moved

    @property
    def end_hash(self) -> str:
        return self.headers[self.end]["hash"]

    @property
    def end_timestamp(self) -> int:
        return int(self.headers[self.end]["timestamp"], 16)


def vault_blocks(vaults: frozenset[str], *transfers) -> set[int]:
    """The blocks of the transfer records (TransferRecord's field order) that move a vault's shares or move a
    token to or from a vault: where its exchange rate may have changed."""
    return {block for rows in transfers for block, _, _, _, token, src, dst, _ in rows
            if token in vaults or src in vaults or dst in vaults}


class FactWriter:
    """Writes a tick's pages (`add`), then hands over what they left (`finish`). `new`: no log-keyed row
    of the tick's range is stored yet (`store.progress.range_is_new`), so facts are plain inserts."""

    def __init__(self, conn: Connection, ctx: SyncContext, start: int, *, new: bool) -> None:
        self.conn, self.ctx, self.start, self.new = conn, ctx, start, new
        self.end = start - 1
        self.units: dict[Holder, int] = {}
        self.fresh = frozenset(tokens_without_holders(conn, ctx.chain_id, list(ctx.accounting)))
        self.events: list[EventRecord] = []
        self.pool_events: list[EventRecord] = []
        self.headers: dict[int, dict] = {}
        self.polled: set[Holder] = set()
        self.n_logs = self.n_transfers = self.duplicates = self.recovered = 0
        self.undecodable: list[Undecodable] = []
        self.vaults = frozenset(ctx.vaults)
        self.vault_blocks: set[int] = set()
        # which tokens move by which log: units are raw for plain and ERC-8056 tokens, shares for rebasing ones
        models = ctx.accounting
        self.by_transfer = {t for t, a in models.items() if a != Accounting.REBASING_SHARES and t not in ctx.polled}
        self.by_shares = {t for t, a in models.items() if a == Accounting.REBASING_SHARES and t not in ctx.polled}
        self.writes = WriteBehind(threaded=dialect_of(conn).threaded_writes)

    def add(self, page: Page) -> None:
        """Write the page's facts and balance changes (encoded here; see `WriteBehind` for where)."""
        conn, cid, d, write = self.conn, self.ctx.chain_id, page.decoded, self.writes.submit
        write(insert_ignore, conn, m.Block.__table__, header_rows(cid, page.headers))
        # records unpacked by position (TransferRecord's field order): attribute access costs more per row
        write(prepare_insert(conn, m.Transfer.__table__, TRANSFER_COLS, [
            (cid, block, index, tx, token, src, dst, amount)
            for block, index, tx, _, token, src, dst, amount in d.transfers], new=self.new, ordered=True))
        write(prepare_insert(conn, m.ShareTransfer.__table__, SHARE_COLS, [
            (cid, block, index, tx, token, src, dst, amount)
            for block, index, tx, _, token, src, dst, amount in d.share_transfers], new=self.new, ordered=True))
        events, pool_events = split_events(self.ctx, d.events)
        write(insert_ignore, conn, m.TokenEvent.__table__, [dict(
            chain_id=cid, block_number=e.block_number, log_index=e.log_index, tx_hash=e.tx_hash, contract=e.contract,
            event=e.event, args=e.args_json()) for e in events])
        if pool_events:
            write(insert_ignore, conn, m.PoolEvent.__table__, event_rows(cid, pool_events))
        moves = movements(d, self.by_transfer, self.by_shares)
        if self.ctx.polled:
            self.polled |= polled_holders(d, self.ctx.polled)
        unseen = unseen_holders(moves, self.units, self.fresh)
        if unseen:
            self.writes.drain()  # the connection is the writing thread's until then
            self.units.update(load_units(conn, cid, unseen))
        changes = apply_movements(cid, moves, self.units)
        write(prepare_insert(conn, m.BalanceChange.__table__, CHANGE_COLS, changes, new=self.new, ordered=True))
        if self.vaults:
            self.vault_blocks |= vault_blocks(self.vaults, d.transfers, d.share_transfers)
        self.events += events
        self.pool_events += pool_events
        self.undecodable += d.undecodable
        self.duplicates += d.duplicates
        self.recovered += page.recovered
        self.headers.update(page.headers)
        self.end = page.end
        self.n_logs += len(d)
        self.n_transfers += len(d.transfers)

    def finish(self) -> LogsWritten:
        """Every page written (the connection is the caller's again), and what they left."""
        self.writes.drain()
        return LogsWritten(self.start, self.end, self.n_logs, self.n_transfers, tuple(self.events), self.headers,
                           self.units, self.fresh, frozenset(self.polled), tuple(self.undecodable), self.duplicates,
                           self.recovered, tuple(self.pool_events), frozenset(self.vault_blocks))

    def close(self) -> None:
        """Stop the writing thread (the rows not written yet are dropped with the transaction)."""
        self.writes.close()
