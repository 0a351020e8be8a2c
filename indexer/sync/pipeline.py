"""The sync pipeline: pick the next block range, fetch, decode, write it all in one transaction.

A tick writes facts, derived rows and the checkpoint in ONE transaction, so a crash anywhere resumes
with no gap and no duplicate. Its logs come in pages (one `eth_getLogs` answer each, sync/pages.py),
read on a thread one or two pages ahead while the tick writes the page before: facts and balance
changes page by page, then, at the tick's last block, contract state, prices, current balances (once
per holder, however often it moved) and the checkpoint. Reorgs are found by parent hash against the
stored hash chain and rolled back above the fork point, facts and derived rows together.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from operator import itemgetter

from sqlalchemy import Connection, Engine, delete, func, select, update

from indexer.accounting import (
    WAD,
    Accounting,
    RebasingParams,
    balance_of_units,
    rebasing_multiplier_at,
    ui_multiplier_at,
)
from indexer.chain.abi import load_abi, token_abi
from indexer.chain.decode import ZERO_ADDRESS, DecodedLogs, EventRecord
from indexer.chain.logs import LogFetcher
from indexer.chain.multicall import Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.config import Settings
from indexer.errors import ChainDataError, ConfigError, RpcError
from indexer.runs.retention import delete_runs_above
from indexer.store import indexes
from indexer.store import models as m
from indexer.store.engine import set_journal_mode
from indexer.store.types import decode_int_text
from indexer.store.writes import WriteBehind, insert_ignore, insert_rows, prepare_insert, upsert, upsert_rows
from indexer.sync.history import fold_account_events, stored_account_status, stored_ui_schedule
from indexer.sync.pages import Page, ReorgDetected, read_pages
from indexer.sync.reads import (
    RoundRead,
    TokenRead,
    read_address_calls,
    read_latest_rounds,
    read_rounds,
    read_token_states,
    round_quality,
)

log = logging.getLogger(__name__)

CHECKPOINT = "head"
PHASE_SHIFT = 64
MAX_REORG_DEPTH = 1_000


@dataclass
class SyncContext:
    """What a sync needs, prepared once at start-up."""

    settings: Settings
    rpc: RpcClient
    chain_id: int
    accounting: dict[str, Accounting]  # token address -> model
    feeds: list[str]
    sanctions_lists: list[str]
    fetcher: LogFetcher
    max_blocks_per_tick: int = 2_000
    open_issues: set[tuple[str, str]] = field(default_factory=set)
    polled: set[str] = field(default_factory=set)  # tokens with balance_source = "poll"
    # every index the models declare is there (store/indexes.py); None: not looked at yet
    indexes_complete: bool | None = None

    def unit_model(self, token: str) -> Accounting:
        """How stored units become balances: a polled token's units are its balanceOf as read."""
        return Accounting.PLAIN if token in self.polled else self.accounting[token]

    @property
    def log_addresses(self) -> list[str]:
        return list(self.accounting) + self.sanctions_lists

    @property
    def multicall(self) -> str | None:
        return self.settings.chain.multicall3


@dataclass
class TickResult:
    from_block: int
    to_block: int
    logs: int
    transfers: int
    rounds: int
    reorg_to: int | None = None
    seconds: float = 0.0
    index_seconds: float = 0.0  # of `seconds`: building the indexes a first backfill set aside


# ---------------------------------------------------------------------------------- start-up
def prepare(settings: Settings, rpc: RpcClient, *, max_blocks_per_tick: int = 2_000) -> SyncContext:
    """Check the chain and every contract once; raise ConfigError naming what is wrong."""
    try:
        chain_id = int(rpc.call("eth_chainId"), 16)
    except RpcError as exc:
        raise ConfigError(f"chain.rpc_urls: cannot reach {rpc.url}: {exc}") from None
    if chain_id != settings.chain.chain_id:
        raise ConfigError(f"chain.chain_id: the node at {rpc.url} is chain {chain_id}, the configuration says "
                          f"{settings.chain.chain_id}")
    addresses = [t.address for t in settings.tokens] + [f.address for f in settings.feeds]
    codes = rpc.batch([("eth_getCode", [a, "latest"]) for a in addresses])
    empty = [a for a, c in zip(addresses, codes, strict=True) if c in ("0x", "", None)]
    if empty:
        names = {t.address: t.symbol for t in settings.tokens} | {f.address: f.name for f in settings.feeds}
        raise ConfigError("no contract code at " + ", ".join(f"{names[a]} ({a})" for a in empty)
                          + ": check the address and the chain")
    head = int(rpc.call("eth_blockNumber"), 16)
    reads = read_token_states(rpc, [(t.address, t.accounting) for t in settings.tokens], head,
                              settings.chain.multicall3)
    for t, r in zip(settings.tokens, reads, strict=True):
        if "totalSupply" in r.failed:
            raise ConfigError(f"tokens[{t.symbol}] ({t.address}) does not answer totalSupply(): not an ERC-20")
        if r.failed:
            raise ConfigError(f"tokens[{t.symbol}].accounting = {t.accounting.value!r}, but the contract does not "
                              f"answer {', '.join(r.failed)}(): check the token's accounting model")
    sanctions: list[str] = []
    rebasing = [t for t in settings.tokens if t.accounting == Accounting.REBASING_SHARES]
    if rebasing:
        fn = token_abi(Accounting.REBASING_SHARES).fn("sanctionsList")
        answers = read_calls(rpc, [Call(t.address, fn.encode_bytes()) for t in rebasing], head,
                             multicall=settings.chain.multicall3)
        for ok, data in answers:
            if ok and len(data) >= 32:
                addr = fn.decode(data)[0].lower()
                if addr != ZERO_ADDRESS and addr not in sanctions:
                    sanctions.append(addr)
    fetcher = new_fetcher()
    return SyncContext(settings, rpc, chain_id, {t.address: t.accounting for t in settings.tokens},
                       [f.address for f in settings.feeds], sanctions, fetcher,
                       max_blocks_per_tick, polled={t.address for t in settings.tokens if t.balance_source == "poll"})


def new_fetcher() -> LogFetcher:
    """The sync's log fetcher: it starts at one block and grows while answers are light (a deployment's
    first blocks can hold a whole token's mints); a dense chain settles near 50,000 logs per request."""
    return LogFetcher(initial_range=1, target_logs=50_000)


def open_store(settings: Settings) -> Engine:
    """Apply the migrations, open the database and register the configured tokens and feeds."""
    from indexer.store.engine import make_engine, upgrade, use_wal

    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    use_wal(engine)  # a first backfill killed while it wrote through a rollback journal left one
    with engine.begin() as conn:
        register(conn, settings)
    return engine


def register(conn: Connection, settings: Settings) -> None:
    """Mirror the configured tokens and feeds into SQL (analysts join on them)."""
    cid = settings.chain.chain_id
    upsert(conn, m.Token.__table__, [dict(
        chain_id=cid, address=t.address, symbol=t.symbol, name=t.name, decimals=t.decimals, underlying=t.underlying,
        asset_class=t.asset_class, accounting=t.accounting.value, balance_source=t.balance_source, feed=t.feed,
        reserve_feed=t.reserve_feed) for t in settings.tokens], ["chain_id", "address"])
    upsert(conn, m.Feed.__table__, [dict(
        chain_id=cid, address=f.address, name=f.name, kind=f.kind, quote=f.quote, decimals=f.decimals,
        heartbeat=f.heartbeat, calendar=f.calendar, token=f.token) for f in settings.feeds], ["chain_id", "address"])


# ---------------------------------------------------------------------------------- chain reads
def target_block(ctx: SyncContext) -> int:
    conf = ctx.settings.chain.confirmations
    if isinstance(conf, str):
        block = ctx.rpc.call("eth_getBlockByNumber", [conf, False])
        if block is None:
            raise ChainDataError(f"the node has no {conf!r} block yet")
        return int(block["number"], 16)
    return int(ctx.rpc.call("eth_blockNumber"), 16) - conf


@dataclass
class Fetched:
    """What a tick read: its range, its events (transfers are written page by page, not kept), the
    headers of its pages, and contract state at its last block."""

    start: int
    end: int
    decoded: DecodedLogs
    n_logs: int
    blocks: dict[int, dict]
    token_reads: list[TokenRead] | None  # None: the node no longer serves state at `end`
    latest_rounds: list[RoundRead | None]
    state_block: int  # where contract state (rounds, and token state when available) was read
    polled: dict[tuple[str, str], int | None] | None = None  # balanceOf of polled tokens' holders at `end`
    flags: dict[tuple[str, str], bool | None] | None = None  # isFrozen / isSanctioned of this range's events


# How nodes and providers say that they no longer hold the state of an old block (not an archive node).
_NO_STATE = ("blockoutofrange", "missing trie node", "header not found", "state not available",
             "historical state", "pruned", "state histories", "required data unavailable", "not available for block")


def state_unavailable(exc: RpcError) -> bool:
    text = str(exc).lower()
    return any(s in text for s in _NO_STATE)


# A tick ends after the page that brings it to this many logs, or to this many holders moved. Pages are
# written as they come: the holders' running units (about 250 bytes each) are what a tick keeps in
# memory, and the logs bound the work a crash can undo (about half a minute here).
MAX_TICK_LOGS = 2_000_000
MAX_TICK_HOLDERS = 1_000_000


def read_state(ctx: SyncContext, f: Fetched) -> None:
    """Token state and the feeds' latest rounds at the tick's last block (or at the head, when the node
    no longer holds that block's state)."""
    f.state_block = f.end
    try:
        f.token_reads = read_token_states(ctx.rpc, list(ctx.accounting.items()), f.end, ctx.multicall)
    except RpcError as exc:
        if not state_unavailable(exc):
            raise
        # Not an archive node: keep the logs exact now, read state where the node still has it.
        f.token_reads = None
        f.state_block = int(ctx.rpc.call("eth_blockNumber"), 16)
    f.latest_rounds = read_latest_rounds(ctx.rpc, ctx.feeds, f.state_block, ctx.multicall)


# ---------------------------------------------------------------------------------- the tick
def load_checkpoint(conn: Connection, chain_id: int) -> m.SyncCheckpoint | None:
    row = conn.execute(select(m.SyncCheckpoint.__table__).where(
        m.SyncCheckpoint.chain_id == chain_id, m.SyncCheckpoint.name == CHECKPOINT)).first()
    return None if row is None else m.SyncCheckpoint(**row._mapping)


def sync_tick(engine: Engine, ctx: SyncContext, *, to_block: int | None = None,
              on_page: Callable[[int, int], None] | None = None) -> TickResult | None:
    """Sync the next range (at most `max_blocks_per_tick` blocks). None when already at the target.
    `on_page(block, logs)` is called after each page is handed to the tick's writes (not yet
    committed; on PostgreSQL perhaps not yet written): the page's last block and the tick's logs so
    far, for progress displays during a long tick."""
    started = time.monotonic()
    target = target_block(ctx) if to_block is None else to_block
    with engine.connect() as conn:
        cp = load_checkpoint(conn, ctx.chain_id)
    if cp is not None:
        chain_block = ctx.rpc.call("eth_getBlockByNumber", [hex(cp.block_number), False])
        if chain_block is None or chain_block["hash"] != cp.block_hash:
            fork = rollback_to_fork(engine, ctx)
            return TickResult(fork + 1, fork, 0, 0, 0, reorg_to=fork, seconds=time.monotonic() - started)
    start = ctx.settings.chain.deployment_block if cp is None else cp.block_number + 1
    if start > target:
        complete_indexes(engine, ctx)
        return None
    end = min(target, start + ctx.max_blocks_per_tick - 1)
    with engine.connect() as conn:
        if cp is None:
            # The first backfill of this database: the secondary indexes are built once it ends. Dropped
            # in a transaction of their own, so that no lock of the drop is held while the tick runs.
            with conn.begin():
                dropped = indexes.set_aside(conn)
            ctx.indexes_complete = False
            if dropped:
                log.info("first backfill: indexes %s are built when it reaches block %d", dropped, target)
        elif ctx.indexes_complete is None:
            ctx.indexes_complete = not indexes.missing(conn)
            conn.commit()
        _sqlite_journal(conn, first_backfill=not ctx.indexes_complete)
        try:
            with conn.begin():
                now_cp = load_checkpoint(conn, ctx.chain_id)
                if (now_cp is None) != (cp is None) or (now_cp and cp and now_cp.block_number != cp.block_number):
                    raise ChainDataError("the checkpoint moved during the tick: another writer is running on this chain")
                tick = Tick(conn, ctx, start, new=range_is_new(conn, ctx.chain_id, start))
                pages = read_pages(ctx.rpc, ctx.fetcher, ctx.log_addresses, start, end,
                                   None if cp is None else cp.block_hash)
                with closing(tick), closing(pages), _bulk_allocation():
                    for page in pages:
                        tick.add(page)
                        if on_page is not None:
                            on_page(page.end, tick.n_logs)
                        if (tick.n_logs >= MAX_TICK_LOGS or len(tick.units) >= MAX_TICK_HOLDERS) and page.end < end:
                            break  # the rest is the next tick's
                    f = tick.fetched()
                    read_state(ctx, f)
                    rounds = missing_rounds(conn, ctx, f)
                    read_checks(conn, ctx, f, tick.polled_pairs)
                    tick.finish(f, rounds)
                # the tick that reaches the target builds what a first backfill set aside, before its commit
                caught_up = f.end == target and not ctx.indexes_complete
                index_seconds = restore_indexes(conn) if caught_up else 0.0
        except ReorgDetected as exc:
            log.warning("reorg while reading blocks %d..%d: %s", start, end, exc)
            fork = rollback_to_fork(engine, ctx)
            return TickResult(start, end, 0, 0, 0, reorg_to=fork, seconds=time.monotonic() - started)
        if caught_up:
            ctx.indexes_complete = True
            _sqlite_journal(conn, first_backfill=False)
    return TickResult(start, f.end, tick.n_logs, tick.n_transfers, len(rounds), seconds=time.monotonic() - started,
                      index_seconds=index_seconds)


def _sqlite_journal(conn: Connection, *, first_backfill: bool) -> None:
    """SQLite: a rollback journal while the first backfill runs, write-ahead logging otherwise.

    A first backfill writes almost only new pages, which a rollback journal does not copy: each page is
    written once, where WAL writes it to the log and again at the checkpoint (4 s of 38 on the bench
    world, docs/benchmarks.md). The price: once a tick's writes spill out of the page cache, the file is
    the writer's until the commit, and readers wait (busy timeout) where in WAL they never do. FULL sync: a power
    loss cannot harm the database in that mode either. Leaving WAL needs the database to itself: while
    another connection holds it open, the mode stays as it is, which is only slower. Outside a transaction.
    """
    if conn.dialect.name != "sqlite":
        return
    want, sync = ("truncate", "FULL") if first_backfill else ("wal", "NORMAL")
    if conn.exec_driver_sql("PRAGMA journal_mode").scalar() != want:
        got = set_journal_mode(conn, want)
        conn.exec_driver_sql(f"PRAGMA synchronous={sync if got == want else 'NORMAL'}")
    conn.commit()  # ends SQLAlchemy's implicit transaction; the pragmas opened none


@contextmanager
def _bulk_allocation() -> Iterator[None]:
    """No cyclic garbage collection while a tick runs. A tick makes millions of small objects (records,
    rows, running units) and none of them form cycles; with collection on, each full collection walks
    every live one, about a tenth of a backfill's time. Collection resumes, as it was, after the tick."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def sync(engine: Engine, ctx: SyncContext, *, to_block: int | None = None, on_tick=None) -> int:
    """Run ticks until the target block is synced; returns the number of ticks."""
    ticks = 0
    while True:
        result = sync_tick(engine, ctx, to_block=to_block)
        if result is None:
            return ticks
        ticks += 1
        if on_tick is not None:
            on_tick(result)


def complete_indexes(engine: Engine, ctx: SyncContext) -> None:
    """Build the indexes a first backfill set aside, in a transaction of their own (when caught up
    already, or before a rollback needs them)."""
    if ctx.indexes_complete:
        return
    with engine.begin() as conn:
        restore_indexes(conn)
    ctx.indexes_complete = True


def restore_indexes(conn: Connection) -> float:
    """Build the indexes a first backfill set aside, in the caller's transaction; returns the seconds.
    The caller marks `SyncContext.indexes_complete` once that transaction has committed."""
    started = time.monotonic()
    built = indexes.restore(conn)
    if built and conn.dialect.name == "postgresql":
        for model in indexes.BULK_TABLES:  # fresh statistics for the planner after a bulk load
            conn.exec_driver_sql(f"ANALYZE {model.__tablename__}")
    seconds = time.monotonic() - started
    if built:
        log.info("built indexes %s in %.1fs", built, seconds)
    return seconds


# ---------------------------------------------------------------------------------- prices
def missing_rounds(conn: Connection, ctx: SyncContext, fetched: Fetched) -> list[dict]:
    """Every round of every feed not stored yet, read at the tick's block (history on the first tick)."""
    pr = m.PriceRound.__table__
    stored = dict(conn.execute(select(pr.c.feed, func.max(pr.c.round_id)).where(pr.c.chain_id == ctx.chain_id)
                               .group_by(pr.c.feed)).all())
    rows: list[dict] = []
    for feed, latest in zip(ctx.feeds, fetched.latest_rounds, strict=True):
        if latest is None:
            continue
        phase, agg = latest.round_id >> PHASE_SHIFT, latest.round_id & (2**PHASE_SHIFT - 1)
        last = stored.get(feed)
        first_agg = 1
        if last is not None and last >> PHASE_SHIFT == phase:
            first_agg = (last & (2**PHASE_SHIFT - 1)) + 1
        ids = [(phase << PHASE_SHIFT) | a for a in range(first_agg, agg + 1)]
        reads = read_rounds(ctx.rpc, feed, ids[:-1], fetched.state_block, ctx.multicall) + [latest] if ids else []
        for r in reads:
            if r is None:
                continue
            rows.append(dict(chain_id=ctx.chain_id, feed=feed, round_id=r.round_id, answer_raw=r.answer,
                             started_at=r.started_at, updated_at=r.updated_at, answered_in_round=r.answered_in_round,
                             block_number=fetched.state_block, quality=round_quality(r)))
    return rows


# ---------------------------------------------------------------------------------- checks by reads
POLL_LOG_INDEX = 2**31 - 1  # balance_changes.log_index of a polled balance: read at the end of its block
_SANCTIONS_ABI = load_abi("SanctionsList")


def read_checks(conn: Connection, ctx: SyncContext, f: Fetched, polled_pairs: set[tuple[str, str]]) -> None:
    """Contract reads at the tick's block that the write checks against: balanceOf of every known holder
    of a polled token (`polled_pairs`: the holders its transfers in the tick name), and isFrozen /
    isSanctioned of every wallet this range's events name. Skipped (left None) when the node holds no
    state for the block."""
    if f.token_reads is None:
        return
    if ctx.polled:
        pairs = set(polled_pairs)
        b = m.Balance.__table__
        pairs.update(conn.execute(select(b.c.token, b.c.wallet).where(
            b.c.chain_id == ctx.chain_id, b.c.token.in_(sorted(ctx.polled)))).all())
        f.polled = {}
        for token in sorted(ctx.polled):
            mine = sorted(p for p in pairs if p[0] == token)
            if mine:
                f.polled.update(read_address_calls(ctx.rpc, token_abi(ctx.accounting[token]), "balanceOf", mine,
                                                   f.end, ctx.multicall))
    frozen = sorted({(e.contract, e.args["wallet"]) for e in f.decoded.events if e.event == "AddressFrozen"
                     and ctx.accounting.get(e.contract) == Accounting.UI_MULTIPLIER})
    listed = sorted({(e.contract, w) for e in f.decoded.events
                     if e.event in ("SanctionedAddressesAdded", "SanctionedAddressesRemoved") for w in e.args["wallets"]})
    f.flags = {}
    if frozen:
        f.flags.update(read_address_calls(ctx.rpc, token_abi(Accounting.UI_MULTIPLIER), "isFrozen", frozen, f.end,
                                          ctx.multicall))
    if listed:
        f.flags.update(read_address_calls(ctx.rpc, _SANCTIONS_ABI, "isSanctioned", listed, f.end, ctx.multicall))


def apply_polled(conn: Connection, ctx: SyncContext, f: Fetched) -> None:
    """Polled tokens: balances are what balanceOf answered at the tick's block; a change is recorded in
    balance_changes at (end, POLL_LOG_INDEX) with the difference, so history keeps its running total."""
    if not f.polled:
        return
    cid = ctx.chain_id
    failed = sorted({t for (t, _), v in f.polled.items() if v is None})
    for token in failed:
        _issue(conn, ctx, token, "balance_read_failed",
               f"balanceOf failed for some holders at block {f.end}: their stored balances are kept", f.end)
    touched: dict[str, set[str]] = defaultdict(set)
    for token, wallet in f.polled:
        touched[token].add(wallet)
    stored = _load_units(conn, cid, touched)
    changes, rows = [], []
    for (token, wallet), value in sorted(f.polled.items()):
        if value is None:
            continue
        old = stored.get((token, wallet))
        if old == value:
            continue
        if value != (old or 0):
            changes.append((cid, token, wallet, f.end, POLL_LOG_INDEX, value - (old or 0), value))
        rows.append((cid, token, wallet, value, None, value, f.end))  # a holder the logs named is kept, at 0 too
    insert_rows(conn, m.BalanceChange.__table__, _CHANGE_COLS, changes)
    upsert_rows(conn, m.Balance.__table__, _BALANCE_COLS, rows, _BALANCE_KEYS)


# ---------------------------------------------------------------------------------- writing
_TRANSFER_COLS = ("chain_id", "block_number", "log_index", "tx_hash", "token", "from_address", "to_address",
                  "amount_raw")
_SHARE_COLS = _TRANSFER_COLS[:-1] + ("shares_raw",)
_CHANGE_COLS = ("chain_id", "token", "wallet", "block_number", "log_index", "delta_raw", "units_raw")
_BALANCE_COLS = ("chain_id", "token", "wallet", "balance_raw", "shares_raw", "units_raw", "block_number")
_BALANCE_KEYS = ("chain_id", "token", "wallet")


def range_is_new(conn: Connection, cid: int, start: int) -> bool:
    """No log-keyed row is stored at or above `start`.

    Every block that holds a stored fact (transfers, share transfers, token events, and the balance
    changes derived from them) has its row in `blocks`, written in the same transaction, and a
    rollback deletes both above the fork: no block row at or above `start` means no such row either.
    """
    b = m.Block.__table__
    return conn.execute(select(b.c.number).where(b.c.chain_id == cid, b.c.number >= start).limit(1)).first() is None


class Tick:
    """One tick's writes, inside its transaction: each page as it comes (facts, balance changes), then
    what holds at the tick's last block (`finish`: state, prices, balances, account status, checkpoint).

    On PostgreSQL a page's rows are written on a thread of their own (`WriteBehind`) while the caller
    reads and decodes the next page; `fetched()` waits for them, and `close()` must be called before
    the transaction ends, committed or not.

    `units` holds the running units of every holder moved in the tick, read from the database the
    first time the tick meets the holder; current balances are written from it once, in `finish`.
    `new`: no log-keyed row of the tick's range is stored yet (see `range_is_new`).
    """

    def __init__(self, conn: Connection, ctx: SyncContext, start: int, *, new: bool) -> None:
        self.conn, self.ctx, self.start, self.new = conn, ctx, start, new
        self.end = start - 1
        self.units: dict[tuple[str, str], int] = {}
        # tokens with no stored holder when the tick began: their holders need no reading, and their
        # balances are all new rows
        self.fresh = _tokens_without_holders(conn, ctx.chain_id, list(ctx.accounting))
        self.events: list[EventRecord] = []
        self.blocks: dict[int, dict] = {}
        self.polled_pairs: set[tuple[str, str]] = set()  # holders of polled tokens the transfers name
        self.n_logs = self.n_transfers = 0
        self.writes = WriteBehind(threaded=conn.dialect.name == "postgresql")

    def add(self, page: Page) -> None:
        """Write the page's facts and balance changes (encoded here; see `WriteBehind` for where)."""
        conn, cid, d, write = self.conn, self.ctx.chain_id, page.decoded, self.writes.submit
        write(insert_ignore, conn, m.Block.__table__, [dict(
            chain_id=cid, number=n, hash=h["hash"], parent_hash=h["parentHash"], timestamp=int(h["timestamp"], 16))
            for n, h in page.headers.items()])
        # records unpacked by position (TransferRecord's field order): attribute access costs more per row
        write(prepare_insert(conn, m.Transfer.__table__, _TRANSFER_COLS, [
            (cid, block, index, tx, token, src, dst, amount)
            for block, index, tx, _, token, src, dst, amount in d.transfers], new=self.new, ordered=True))
        write(prepare_insert(conn, m.ShareTransfer.__table__, _SHARE_COLS, [
            (cid, block, index, tx, token, src, dst, amount)
            for block, index, tx, _, token, src, dst, amount in d.share_transfers], new=self.new, ordered=True))
        write(insert_ignore, conn, m.TokenEvent.__table__, [dict(
            chain_id=cid, block_number=e.block_number, log_index=e.log_index, tx_hash=e.tx_hash, contract=e.contract,
            event=e.event, args=e.args_json()) for e in d.events])
        self.move(d)
        self.events += d.events
        self.blocks.update(page.headers)
        self.end = page.end
        self.n_logs += len(d)
        self.n_transfers += len(d.transfers)

    def close(self) -> None:
        """Stop the writing thread (the rows not written yet are dropped with the transaction)."""
        self.writes.close()

    def move(self, d: DecodedLogs) -> None:
        """Balance changes with running units for the page's movements, in log order."""
        ctx, cid, units = self.ctx, self.ctx.chain_id, self.units
        acc, polled, rebasing, zero = ctx.accounting, ctx.polled, Accounting.REBASING_SHARES, ZERO_ADDRESS
        # which tokens move by which log: units are raw for plain and ERC-8056 tokens, shares for rebasing ones
        by_transfer = {t for t, a in acc.items() if a != rebasing and t not in polled}
        by_shares = {t for t, a in acc.items() if a == rebasing and t not in polled}
        moves = [t for t in d.transfers if t[4] in by_transfer]
        moves += [t for t in d.share_transfers if t[4] in by_shares]
        if polled:
            for t in d.transfers:
                if t.token in polled:
                    self.polled_pairs.update((t.token, w) for w in (t.from_address, t.to_address) if w != zero)
        if d.share_transfers:  # two kinds of movement: put them in log order
            moves.sort(key=_log_position)
        unseen: dict[str, set[str]] = defaultdict(set)
        fresh = self.fresh
        for _, _, _, _, token, src, dst, _ in moves:
            if token in fresh:
                continue
            if (token, src) not in units:
                unseen[token].add(src)
            if (token, dst) not in units:
                unseen[token].add(dst)
        for wallets in unseen.values():
            wallets.discard(zero)
        if any(unseen.values()):
            self.writes.drain()  # the connection is the writing thread's until then
            units.update(_load_units(self.conn, cid, unseen))
        changes = []
        append = changes.append
        get = units.get
        for block, index, _, _, token, src, dst, amount in moves:
            if src != zero:
                key = (token, src)
                new_units = get(key, 0) - amount
                if new_units < 0:
                    raise ChainDataError(f"{src} would hold a negative balance of {token} after log "
                                         f"{block}#{index}: the stored history is incomplete")
                units[key] = new_units
                if src != dst:  # a self-transfer gives one row (its key is one): the "to" side, same net units
                    append((cid, token, src, block, index, -amount, new_units))
            if dst != zero:
                key = (token, dst)
                new_units = get(key, 0) + amount
                units[key] = new_units
                append((cid, token, dst, block, index, amount, new_units))
        self.writes.submit(prepare_insert(self.conn, m.BalanceChange.__table__, _CHANGE_COLS, changes, new=self.new,
                                          ordered=True))

    def fetched(self) -> Fetched:
        """The tick's reads so far, for the state reads at its last block to fill in. Every page is
        written when it returns: the connection is the caller's again."""
        self.writes.drain()
        return Fetched(self.start, self.end, DecodedLogs(events=self.events), self.n_logs, self.blocks, None, [],
                       self.end)

    def finish(self, f: Fetched, rounds: list[dict]) -> None:
        conn, ctx, cid = self.conn, self.ctx, self.ctx.chain_id
        insert_ignore(conn, m.PriceRound.__table__, rounds)
        for feed, latest in zip(ctx.feeds, f.latest_rounds, strict=True):
            if latest is None:
                _issue(conn, ctx, feed, "feed_unreadable", f"latestRoundData() reverted or returned no round at "
                       f"block {f.state_block}: no price from this feed", f.end)
        end_ts = int(f.blocks[f.end]["timestamp"], 16)
        if f.token_reads is None:
            _issue(conn, ctx, "*", "historical_state_unavailable",
                   f"the node holds no state for block {f.end} (not an archive node): balances are exact in units; "
                   "multiplier-scaled balances catch up at the first block whose state the node still holds", f.end)
            multipliers, moved = _last_multipliers(conn, cid), set()
        else:
            multipliers, moved = write_token_state(conn, ctx, f, end_ts)
        self.write_balances(multipliers, moved)
        apply_polled(conn, ctx, f)
        apply_account_events(conn, ctx, f.decoded, f)
        upsert(conn, m.SyncCheckpoint.__table__, [dict(
            chain_id=cid, name=CHECKPOINT, block_number=f.end, block_hash=f.blocks[f.end]["hash"],
            updated_at=int(time.time()))], ["chain_id", "name"])

    def write_balances(self, multipliers: dict[str, int], moved: set[str]) -> None:
        """Balances at the tick's last block for every model: each moved holder once, then every other
        holder of a token whose multiplier moved since the last tick (it moves balances with no event)."""
        conn, ctx, cid, acc = self.conn, self.ctx, self.ctx.chain_id, self.ctx.accounting
        rows, new_rows = [], []
        for (token, wallet), u in self.units.items():
            bal, shares = balance_of_units(acc[token], u, multipliers.get(token, WAD))
            (new_rows if token in self.fresh else rows).append((cid, token, wallet, bal, shares, u, self.end))
        upsert_rows(conn, m.Balance.__table__, _BALANCE_COLS, rows, _BALANCE_KEYS)
        insert_rows(conn, m.Balance.__table__, _BALANCE_COLS, new_rows, new=True)
        moved = {t for t in moved if acc[t] != Accounting.PLAIN and t not in ctx.polled}
        if not moved:
            return
        done: dict[str, set[str]] = defaultdict(set)  # holders whose balance was just written
        for token, wallet in self.units:
            if token in moved:
                done[token].add(wallet)
        for token in moved:
            rescale_holders(conn, cid, token, acc[token], multipliers[token], self.end, skip=done[token])


def _issue(conn: Connection, ctx: SyncContext, contract: str, kind: str, message: str, block: int) -> None:
    key = (contract, kind)
    if key in ctx.open_issues:
        return
    ctx.open_issues.add(key)
    log.warning("%s %s: %s", contract, kind, message)
    conn.execute(m.SyncIssue.__table__.insert().values(
        chain_id=ctx.chain_id, contract=contract, kind=kind, message=message, block_number=block,
        seen_at=int(time.time())))


def write_token_state(conn: Connection, ctx: SyncContext, f: Fetched, end_ts: int) -> tuple[dict[str, int], set[str]]:
    """Store each token's state at the tick's block; return the multiplier in force per token and
    the tokens whose multiplier moved since the previous tick."""
    cid = ctx.chain_id
    rows, multipliers = [], {}
    previous = _last_multipliers(conn, cid)
    ui_updates = stored_ui_schedule(conn, cid)
    for read in f.token_reads:
        acc = ctx.accounting[read.address]
        v = read.values
        if read.failed:
            _issue(conn, ctx, read.address, "state_read_failed",
                   f"calls failed at block {f.end}: {', '.join(read.failed)}", f.end)
        row = dict(chain_id=cid, token=read.address, block_number=f.end, block_timestamp=end_ts,
                   multiplier_raw=WAD, base_multiplier_raw=None, new_multiplier_raw=None, activation_time=None,
                   fee_per_period_raw=None, period_length=None, last_time_fee_applied=None,
                   paused=bool(v.get("paused") or False), total_supply_raw=int(v.get("totalSupply") or 0))
        if acc == Accounting.REBASING_SHARES and v.get("getCurrentMultiplier") is not None:
            params = RebasingParams(v["multiplier"], v["lastTimeFeeApplied"], v["feePerPeriod"], v["periodLength"],
                                    v["newMultiplier"], v["newMultiplierActivationTime"], v["multiplierNonce"])
            computed = rebasing_multiplier_at(params, end_ts)[0]
            reported = v["getCurrentMultiplier"][0]
            if computed != reported:
                _issue(conn, ctx, read.address, "multiplier_rule_mismatch",
                       f"getCurrentMultiplier() = {reported} but the stored parameters give {computed} "
                       f"at block {f.end}; using the contract's value", f.end)
            row.update(multiplier_raw=reported, base_multiplier_raw=params.multiplier,
                       new_multiplier_raw=params.new_multiplier, activation_time=params.new_multiplier_activation_time,
                       fee_per_period_raw=params.fee_per_period, period_length=params.period_length,
                       last_time_fee_applied=params.last_time_fee_applied)
        elif acc == Accounting.UI_MULTIPLIER and v.get("uiMultiplier") is not None:
            reported = v["uiMultiplier"]
            computed = ui_multiplier_at(ui_updates.get(read.address, []), end_ts)
            if computed != reported:
                _issue(conn, ctx, read.address, "multiplier_schedule_mismatch",
                       f"uiMultiplier() = {reported} but the UIMultiplierUpdated events give {computed} "
                       f"at block {f.end}; using the contract's value", f.end)
            row.update(multiplier_raw=reported, new_multiplier_raw=v.get("newUIMultiplier"),
                       activation_time=v.get("effectiveAt"))
        multipliers[read.address] = row["multiplier_raw"]
        rows.append(row)
    upsert(conn, m.TokenState.__table__, rows, ["chain_id", "token", "block_number"])
    moved = {t for t, mult in multipliers.items() if previous.get(t, WAD) != mult}
    return multipliers, moved


def _last_multipliers(conn: Connection, cid: int) -> dict[str, int]:
    ts = m.TokenState.__table__
    latest = select(ts.c.token, func.max(ts.c.block_number).label("b")).where(ts.c.chain_id == cid) \
        .group_by(ts.c.token).subquery()
    rows = conn.execute(select(ts.c.token, ts.c.multiplier_raw).join(
        latest, (ts.c.token == latest.c.token) & (ts.c.block_number == latest.c.b)).where(ts.c.chain_id == cid))
    return dict(rows.all())


_log_position = itemgetter(0, 1)  # a TransferRecord's (block_number, log_index)


def rescale_holders(conn: Connection, cid: int, token: str, acc: Accounting, mult: int, end: int,
                    skip: set[str] = frozenset()) -> None:
    """Every stored holder's balance of `token` under multiplier `mult` (the units stay as they are)."""
    ph = "?" if conn.dialect.name == "sqlite" else "%s"
    sql = f"SELECT wallet, units_raw, balance_raw, shares_raw FROM balances WHERE chain_id = {ph} AND token = {ph}"
    rows = []
    for wallet, u, bal, shares in conn.exec_driver_sql(sql, (cid, token)).fetchall():
        if wallet in skip:
            continue
        # uint256 columns: decimal text on SQLite, an integral Decimal on PostgreSQL; int() reads both
        u, bal, shares = int(u), int(bal), None if shares is None else int(shares)
        new_bal, new_shares = balance_of_units(acc, u, mult)
        if new_bal != bal or new_shares != shares:
            rows.append((cid, token, wallet, new_bal, new_shares, u, end))
    upsert_rows(conn, m.Balance.__table__, _BALANCE_COLS, rows, _BALANCE_KEYS)


def _tokens_without_holders(conn: Connection, cid: int, tokens: list[str]) -> set[str]:
    b = m.Balance.__table__
    return {t for t in tokens if conn.execute(select(b.c.wallet).where(b.c.chain_id == cid, b.c.token == t)
                                              .limit(1)).first() is None}


def _load_units(conn: Connection, cid: int, touched: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    """Stored units of the touched holders. Plain SQL: this reads one row per holder moved in the tick.

    SQLite: chunks of 500 wallets of a token in an IN list (its primary-key index answers each).
    PostgreSQL: one query for the whole tick, the (token, wallet) pairs as two arrays, so a table
    whose statistics are not known yet (a backfill outruns autovacuum's ANALYZE) costs at most one scan.
    """
    out: dict[tuple[str, str], int] = {}
    if conn.dialect.name == "postgresql":
        pairs = sorted((t, w) for t, ws in touched.items() for w in ws)
        if not pairs:
            return out
        sql = ("SELECT b.token, b.wallet, b.units_raw FROM balances b "
               "JOIN unnest(%s::varchar[], %s::varchar[]) AS k(token, wallet) "
               "ON b.token = k.token AND b.wallet = k.wallet WHERE b.chain_id = %s")
        rows = conn.exec_driver_sql(sql, ([t for t, _ in pairs], [w for _, w in pairs], cid)).fetchall()
        for token, wallet, u in rows:
            out[(token, wallet)] = int(u)  # NUMERIC(78,0): an integral Decimal
        return out
    for token, wallets in touched.items():
        ws = sorted(wallets)
        for i in range(0, len(ws), 500):
            chunk = ws[i:i + 500]
            sql = (f"SELECT wallet, units_raw FROM balances WHERE chain_id = ? AND token = ? "
                   f"AND wallet IN ({', '.join('?' * len(chunk))})")
            for wallet, u in conn.exec_driver_sql(sql, (cid, token, *chunk)).fetchall():
                out[(token, wallet)] = decode_int_text(u)  # fixed-width decimal text
    return out


def apply_account_events(conn: Connection, ctx: SyncContext, d: DecodedLogs, f: Fetched | None = None) -> None:
    """Freezes and sanctions from their events, checked against isFrozen / isSanctioned at the tick's block."""
    status = fold_account_events((e.contract, e.event, e.args, e.block_number) for e in d.events)
    for key, read in ((f.flags or {}) if f is not None else {}).items():
        row = status.get(key)
        if row is None:
            continue
        flag = "frozen" if key[0] in ctx.accounting else "sanctioned"
        if read is None:
            _issue(conn, ctx, key[0], "account_status_unreadable",
                   f"{'isFrozen' if flag == 'frozen' else 'isSanctioned'}({key[1]}) failed at block {f.end}; "
                   "the status follows the events", f.end)
        elif bool(read) != row[flag]:
            _issue(conn, ctx, key[0], "account_status_mismatch",
                   f"the events say {flag}={row[flag]} for {key[1]} but the contract answers {bool(read)} at block "
                   f"{f.end}; using the contract's answer", f.end)
            row[flag] = bool(read)
    upsert(conn, m.AccountStatus.__table__, [dict(chain_id=ctx.chain_id, contract=c, wallet=w, **v)
                                             for (c, w), v in status.items()], ["chain_id", "contract", "wallet"])


# ---------------------------------------------------------------------------------- reorgs
def find_fork(engine: Engine, ctx: SyncContext) -> int:
    """The highest stored block whose hash the chain still has; everything above it is orphaned."""
    with engine.connect() as conn:
        stored = conn.execute(select(m.Block.number, m.Block.hash).where(m.Block.chain_id == ctx.chain_id)
                              .order_by(m.Block.number.desc()).limit(MAX_REORG_DEPTH)).all()
    if not stored:
        return ctx.settings.chain.deployment_block - 1
    for i in range(0, len(stored), 100):
        chunk = stored[i:i + 100]
        answers = ctx.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n, _ in chunk])
        for (n, h), block in zip(chunk, answers, strict=True):
            if block is not None and block["hash"] == h:
                return n
    raise ChainDataError(f"reorg deeper than the {len(stored)} stored blocks: re-sync from scratch (drop the database)")


def rollback_to_fork(engine: Engine, ctx: SyncContext) -> int:
    complete_indexes(engine, ctx)  # the rollback reads holders' histories by wallet
    fork = find_fork(engine, ctx)
    with engine.begin() as conn:
        rollback(conn, ctx, fork)
    log.warning("reorg: rolled back to block %d", fork)
    return fork


def rollback(conn: Connection, ctx: SyncContext, fork: int) -> None:
    """Delete facts and derived rows above `fork` and rebuild the current rows as of `fork`."""
    cid = ctx.chain_id
    bc = m.BalanceChange.__table__
    touched = conn.execute(select(bc.c.token, bc.c.wallet).where(bc.c.chain_id == cid, bc.c.block_number > fork)
                           .distinct()).all()
    for model, col in ((m.Transfer, "block_number"), (m.ShareTransfer, "block_number"), (m.TokenEvent, "block_number"),
                       (m.BalanceChange, "block_number"), (m.TokenState, "block_number"),
                       (m.PriceRound, "block_number"), (m.Block, "number")):
        t = model.__table__
        conn.execute(delete(t).where(t.c.chain_id == cid, t.c[col] > fork))
    b = m.Balance.__table__
    for token, wallet in touched:
        last = conn.execute(select(bc.c.units_raw).where(
            bc.c.chain_id == cid, bc.c.token == token, bc.c.wallet == wallet)
            .order_by(bc.c.block_number.desc(), bc.c.log_index.desc()).limit(1)).scalar()
        if last is None:
            conn.execute(delete(b).where(b.c.chain_id == cid, b.c.token == token, b.c.wallet == wallet))
        else:
            conn.execute(update(b).where(b.c.chain_id == cid, b.c.token == token, b.c.wallet == wallet)
                         .values(units_raw=last))
    ts = m.TokenState.__table__
    for token in ctx.accounting:
        acc = ctx.unit_model(token)
        mult = conn.execute(select(ts.c.multiplier_raw).where(ts.c.chain_id == cid, ts.c.token == token)
                            .order_by(ts.c.block_number.desc()).limit(1)).scalar() or WAD
        rescale_holders(conn, cid, token, acc, mult if acc != Accounting.PLAIN else WAD, fork)
    rebuild_account_status(conn, cid, fork)
    delete_runs_above(conn, cid, fork)
    blk = conn.execute(select(m.Block.hash).where(m.Block.chain_id == cid, m.Block.number == fork)).scalar()
    cp = m.SyncCheckpoint.__table__
    if blk is None:
        conn.execute(delete(cp).where(cp.c.chain_id == cid, cp.c.name == CHECKPOINT))
    else:
        conn.execute(update(cp).where(cp.c.chain_id == cid, cp.c.name == CHECKPOINT).values(
            block_number=fork, block_hash=blk, updated_at=int(time.time())))


def rebuild_account_status(conn: Connection, cid: int, fork: int) -> None:
    a = m.AccountStatus.__table__
    status = stored_account_status(conn, cid)  # the events above the fork are already deleted
    conn.execute(delete(a).where(a.c.chain_id == cid))
    upsert(conn, a, [dict(chain_id=cid, contract=c, wallet=w, **v) for (c, w), v in status.items()],
           ["chain_id", "contract", "wallet"])
