"""What holds at a tick's last block: read it (`read_end`), derive its rows (`derive_end`, pure), write
them with the checkpoint (`write_end`).

Contract state (token state, the feeds' latest rounds and every round not stored yet, balanceOf of
polled tokens' holders, isFrozen / isSanctioned of the wallets the tick's events name) is read at the
tick's last block. A node that no longer holds that block's state (not an archive node) gets the
rounds read at its head instead, and the balances stay exact in units until a tick reaches blocks
whose state it still holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection

from indexer.accounting import RebasingParams, UiMultiplierUpdate
from indexer.chain.classify import is_state_pruned, is_state_unavailable
from indexer.chain.decode import ZERO_ADDRESS
from indexer.chain.headers import read_head, read_headers
from indexer.chain.retry import RetryPolicy, patiently
from indexer.chain.rpc import RpcClient
from indexer.chain.state import (
    BALANCE_OF,
    IS_FROZEN,
    IS_SANCTIONED,
    RoundRead,
    TokenRead,
    read_latest_rounds,
    read_phase_ends,
    read_rounds,
    read_token_states,
    read_wallet_calls,
)
from indexer.chain.tokens import probe_surfaces
from indexer.errors import RpcError
from indexer.store.balances import holder_rows, holders_of, load_units, write_balances, write_changes
from indexer.store.progress import write_checkpoint
from indexer.store.state import (
    latest_round_ids,
    rebasing_params_of_row,
    stored_ui_schedule,
    token_state_at,
    write_account_status,
    write_rounds,
    write_token_state,
)
from indexer.store.vaults import write_vault_rates
from indexer.sync.context import Issue, SyncContext
from indexer.sync.derive import (
    Holder,
    account_status_rows,
    balance_rows,
    explicit_update,
    flag_reads,
    missing_round_ids,
    moved_multipliers,
    phase_of,
    polled_rows,
    rebasing_params_of,
    rescaled_rows,
    round_rows,
    silent_change,
    token_state_rows,
)
from indexer.sync.facts import LogsWritten
from indexer.sync.pools import PoolReads, read_pools, write_pool_end
from indexer.sync.vaults import VaultReads, read_vaults, vault_rows
from indexer.token_events import AccountKey
from indexer.types import Accounting

# Token events after which a token's state is read at their own block too, so that a valuation at any
# past block starts from the contract's own values (sync/derive.py checks the rule against them)
STATE_EVENTS = frozenset({"MultiplierUpdated", "MultiplierScheduled", "MultiplierScheduleOverridden",
                          "PauseModeChange", "Paused", "Unpaused", "UIMultiplierUpdated",
                          "UIMultiplierUpdateCancelled", "Upgraded"})
T = TypeVar("T")
RECORDED_EACH_TIME = frozenset({"undecodable_log", "pool_state_mismatch"})  # other kinds: once per process
RECENT_BLOCKS = 64  # a node that holds no state this close to its head is behind, not pruned


@dataclass(frozen=True)
class EndState:
    """What was read for a tick's last block: from the chain, and the stored rows the derivation needs."""

    block: int  # where contract state was read: the tick's last block, or the head (see the module)
    tokens: tuple[TokenRead, ...] | None  # None: the node holds no state for the tick's last block
    latest_rounds: tuple[RoundRead | None, ...]  # per configured feed
    new_rounds: Mapping[str, tuple[RoundRead | None, ...]]  # per feed: every round not stored yet
    polled: Mapping[Holder, int | None]  # balanceOf of every known holder of a polled token
    flags: Mapping[AccountKey, int | bool | None]  # isFrozen / isSanctioned
    prior_multipliers: Mapping[str, int]  # the last stored multiplier per token
    ui_schedule: Mapping[str, list[UiMultiplierUpdate]]
    polled_units: Mapping[Holder, int]  # stored units of the polled holders
    at_events: tuple[tuple[int, int, tuple[TokenRead, ...]], ...] = ()  # (block, timestamp, reads) where state changed
    # (token, after, up to): an xStock's state changed with no event somewhere in (after, up to], and the
    # node holds no state there to find the block
    unlocated: tuple[tuple[str, int, int], ...] = ()
    pools: PoolReads = PoolReads()  # the configured pools at the tick's last block (sync/pools.py)
    vaults: VaultReads = VaultReads()  # the configured vaults' rates (sync/vaults.py)


@dataclass(frozen=True)
class EndRows:
    """The rows a tick writes at its last block, and the problems it records."""

    rounds: list[dict]
    token_state: list[dict]
    multipliers: Mapping[str, int]  # in force at the tick's last block
    rescale: frozenset[str]  # tokens whose multiplier moved: every stored holder's balance moves
    balances: list[tuple]
    new_balances: list[tuple]  # of tokens with no stored holder before the tick
    polled_changes: list[tuple]
    polled_balances: list[tuple]
    account_status: list[dict]
    issues: list[Issue]
    pools: PoolReads = PoolReads()
    vault_rates: tuple[dict, ...] = ()


# ---------------------------------------------------------------------------------- read
def read_end(conn: Connection, ctx: SyncContext, logs: LogsWritten) -> EndState:
    """Every read of the tick's last block (and of the blocks where state changed). Each read that fails
    because a backend lacks a block this close to the head is tried again on its own (`_at`)."""
    cid, rpc, mc, end = ctx.chain_id, ctx.rpc, ctx.multicall, logs.end
    gone = _Gone()
    stored = token_state_at(conn, cid)  # the last stored row per token: the prior multipliers and the first known state
    _follow_upgrades(ctx, logs, end, gone)
    block: int = end
    tokens = _at(ctx, gone, end, lambda: tuple(read_token_states(rpc, ctx.token_surfaces(), end, mc)))
    if tokens is None:
        block = read_head(rpc)
    latest = _required(ctx, block, lambda: tuple(read_latest_rounds(rpc, ctx.feeds, block, mc)))
    new_rounds = _new_rounds(conn, ctx, latest, block)
    polled: dict[Holder, int | None] = {}
    flags: dict[AccountKey, int | bool | None] = {}
    at_events: tuple[tuple[int, int, tuple[TokenRead, ...]], ...] = ()
    unlocated: tuple[tuple[str, int, int], ...] = ()
    if tokens is not None:
        polled = _read_polled(conn, ctx, logs, end)
        frozen, listed = flag_reads(logs.events, ctx.accounting)
        if frozen:
            flags.update(_required(ctx, end, lambda: read_wallet_calls(rpc, IS_FROZEN, frozen, end, mc)))
        if listed:
            flags.update(_required(ctx, end, lambda: read_wallet_calls(rpc, IS_SANCTIONED, listed, end, mc)))
        at_events = _reads_at_events(ctx, logs, gone)
        located, unlocated = _silent_changes(ctx, logs, tokens, at_events, stored, gone)
        at_events = _merge_reads(at_events, located)
    polled_units = {}
    if polled:
        touched: dict[str, set[str]] = {}
        for token, wallet in polled:
            touched.setdefault(token, set()).add(wallet)
        polled_units = load_units(conn, cid, touched)
    ui_tokens = [t for t, a in ctx.accounting.items() if a == Accounting.UI_MULTIPLIER]
    prior = {t: int(r["multiplier_raw"]) for t, r in stored.items()}
    pools = read_pools(conn, ctx, logs.start, end, logs.pool_events, lambda at, read: _at(ctx, gone, at, read))
    vaults = VaultReads() if tokens is None else read_vaults(conn, ctx, logs, lambda at, read: _at(ctx, gone, at, read))
    return EndState(block, tokens, latest, new_rounds, polled, flags, prior,
                    stored_ui_schedule(conn, cid, tokens=ui_tokens), polled_units, at_events, unlocated, pools,
                    vaults)


def _new_rounds(conn: Connection, ctx: SyncContext, latest: tuple[RoundRead | None, ...], block: int
                ) -> dict[str, tuple[RoundRead | None, ...]]:
    """Every round of every phase not stored yet, per feed (the latest round is one of them)."""
    stored = latest_round_ids(conn, ctx.chain_id)
    earlier = [(feed, p) for feed, r in zip(ctx.feeds, latest, strict=True) if r is not None
               for p in range(1, phase_of(r.round_id))]
    ends = _required(ctx, block, lambda: read_phase_ends(ctx.rpc, earlier, block, ctx.multicall))
    out = {}
    for feed, r in zip(ctx.feeds, latest, strict=True):
        if r is None:
            continue
        phase_ends = {p: n for (f, p), n in ends.items() if f == feed}
        ids = missing_round_ids(r.round_id, stored.get(feed, {}), phase_ends)
        if ids:
            older = [i for i in ids if i != r.round_id]
            out[feed] = (*_required(ctx, block, partial(read_rounds, ctx.rpc, feed, older, block, ctx.multicall)), r)
    return out


@dataclass
class _Gone:
    """The highest block of this tick at which the node was found to hold no state: pruning keeps every
    state below the newest one it dropped, so no read at or below it is sent again."""

    below: int = -1


def _at(ctx: SyncContext, gone: _Gone, block: int, read: Callable[[], T]) -> T | None:
    """`read()` of contract state at `block`; None when the node no longer holds that block's state (not
    an archive node). A failure because the backend that answered lacks a block this close to the head
    is tried again here, read by read, for the policy's patience (`chain.retry.patiently`): trying the
    whole tick's reads again would need every one of them to meet an up-to-date backend at once."""
    if block <= gone.below:
        return None
    try:
        return _required(ctx, block, read)
    except RpcError as exc:
        if exc.kind != "state_unavailable":
            raise
        gone.below = max(gone.below, block)
        return None


def _required(ctx: SyncContext, block: int, read: Callable[[], T]) -> T:
    """`read()` of state the tick cannot do without (`state_at_recent_block`)."""
    return state_at_recent_block(ctx.rpc, ctx.settings.chain.retry, block, read)


def state_at_recent_block(rpc: RpcClient, policy: RetryPolicy, block: int, read: Callable[[], T]) -> T:
    """`read()` of contract state at `block`, tried again while the block is recent and the node (or the
    backend that answered) has not seen it yet; a block whose state is gone raises a `state_unavailable`
    error, which no retry fixes. Start-up's reads at the head go through here too."""
    def attempt() -> T:
        try:
            return read()
        except RpcError as exc:
            _state_gone(rpc, exc, block)
            raise RpcError(f"no state at block {block} on this node: {exc}", kind="state_unavailable") from exc
    return patiently(attempt, policy, f"state read at block {block}")


def _state_gone(rpc: RpcClient, exc: RpcError, block: int) -> None:
    """Return when a failed read at `block` means the node no longer holds that block's state (not an
    archive node: the caller goes on without it). Otherwise raise: a node (or the backend that answered)
    without a block this close to its head is behind, and the read is tried again (`block_unavailable`
    passes); any other error is the caller's."""
    if not (is_state_unavailable(exc) or exc.kind == "block_unavailable"):
        raise exc
    if exc.kind != "block_unavailable" and is_state_pruned(exc):
        return  # pruned, however recent: a node keeping fewer than RECENT_BLOCKS of state says so at once
    behind = read_head(rpc) - block
    if behind < RECENT_BLOCKS:
        raise RpcError(f"no state at block {block}, {behind} below the head: {exc}", kind="block_unavailable") from exc


def _follow_upgrades(ctx: SyncContext, logs: LogsWritten, end: int, gone: _Gone) -> None:
    """A token whose proxy was upgraded in the tick may answer other functions now: probe it again."""
    upgraded = sorted({e.contract for e in logs.events if e.event == "Upgraded" and e.contract in ctx.accounting})
    if upgraded:
        found = _at(ctx, gone, end, lambda: probe_surfaces(ctx.rpc, upgraded, end, ctx.multicall))
        if found is None:  # a node with no state at `end`
            found = probe_surfaces(ctx.rpc, upgraded, "latest", ctx.multicall)
        ctx.surfaces.update(found)
    for e in logs.events:  # a token that points at a new sanctions list: its events are read from the next tick on
        if e.event == "NewSanctionsList" and e.contract in ctx.accounting:
            listed = e.args["sanctions_list"]
            if listed != ZERO_ADDRESS and listed not in ctx.sanctions_lists:
                ctx.sanctions_lists.append(listed)


def _reads_at_events(ctx: SyncContext, logs: LogsWritten, gone: _Gone) -> tuple[tuple[int, int, tuple[TokenRead, ...]], ...]:
    """The state of each token at every block of the tick (but its last) where one of its state events
    happened; blocks the node holds no state for any more are left out."""
    by_block: dict[int, set[str]] = {}
    for e in logs.events:
        if e.event in STATE_EVENTS and e.contract in ctx.accounting and e.block_number < logs.end:
            by_block.setdefault(e.block_number, set()).add(e.contract)
    out = []
    for block, tokens in sorted(by_block.items()):
        surfaces = [(t, ctx.surfaces[t]) for t in sorted(tokens)]
        reads = _at(ctx, gone, block, partial(read_token_states, ctx.rpc, surfaces, block, ctx.multicall))
        if reads is None:
            continue
        out.append((block, int(logs.headers[block]["timestamp"], 16), tuple(reads)))
    return tuple(out)


@dataclass(frozen=True)
class _Known:
    """An xStock's multiplier state as read at one block (`read` None: it is stored already)."""

    block: int
    timestamp: int
    params: RebasingParams
    read: TokenRead | None = None


def _silent_changes(ctx: SyncContext, logs: LogsWritten, tokens: tuple[TokenRead, ...],
                    at_events: tuple[tuple[int, int, tuple[TokenRead, ...]], ...], stored: Mapping[str, dict],
                    gone: _Gone) -> tuple[list[_Known], tuple[tuple[str, int, int], ...]]:
    """The blocks where an xStock's multiplier state changed with no event (`derive.silent_change`), each
    found by bisecting between two reads that disagree, and the state read there; the spans where the
    node holds no state to bisect in. Costs no call when every change logged an event."""
    rebasing = [r for r in tokens if ctx.accounting.get(r.address) == Accounting.REBASING_SHARES]
    if not rebasing:
        return [], ()
    events: dict[tuple[str, int], list] = {}
    for e in logs.events:
        events.setdefault((e.contract, e.block_number), []).append(e)
    located: list[_Known] = []
    unlocated: list[tuple[str, int, int]] = []
    for end_read in rebasing:
        token = end_read.address
        known: list[_Known] = []  # in block order
        row = stored.get(token)
        if row is not None and (p := rebasing_params_of_row(row)) is not None and row["block_number"] < logs.start:
            known.append(_Known(row["block_number"], int(row["block_timestamp"]), p))
        for block, ts, reads in at_events:
            for r in reads:
                if r.address == token and (p := rebasing_params_of(r.values)) is not None:
                    known.append(_Known(block, ts, p, r))
        if (p := rebasing_params_of(end_read.values)) is not None:
            known.append(_Known(logs.end, logs.end_timestamp, p, end_read))
        for lo, hi in zip(known, known[1:], strict=False):
            if explicit_update(lo.params, events.get((token, hi.block), ()), hi.timestamp):
                # the change at hi's block is its own: compare with the state just before that block
                if hi.block - 1 <= lo.block:
                    continue
                before = _read_rebasing(ctx, gone, token, hi.block - 1)
                if before is None:
                    unlocated.append((token, lo.block, hi.block - 1))
                    continue
                hi = before
                if silent_change(lo.params, hi.params, hi.timestamp):
                    located.append(hi)
            found, gap = _bisect(ctx, gone, token, lo, hi)
            located += found
            if gap is not None:
                unlocated.append((token, *gap))
    return located, tuple(unlocated)


def _bisect(ctx: SyncContext, gone: _Gone, token: str, lo: _Known, hi: _Known) -> tuple[list[_Known], tuple[int, int] | None]:
    """Every block in (lo, hi) where the token's state changed with no event, with the state read there
    (hi's own block is read already); and the span left unsearched where the node holds no state."""
    found: list[_Known] = []
    while silent_change(lo.params, hi.params, hi.timestamp):
        a, b = lo, hi
        while b.block - a.block > 1:  # the state at a is consistent with lo's, at b it is not
            mid = _read_rebasing(ctx, gone, token, (a.block + b.block) // 2)
            if mid is None:
                return found, (a.block, b.block)
            if silent_change(a.params, mid.params, mid.timestamp):
                b = mid
            else:
                a = mid
        if b.block == hi.block:
            break  # the change is at hi's own block, whose read is stored
        found.append(b)
        lo = b
    return found, None


def _read_rebasing(ctx: SyncContext, gone: _Gone, token: str, block: int) -> _Known | None:
    """An xStock's state at `block`; None where the node holds no state there."""
    def read() -> tuple[TokenRead, int]:
        (r,) = read_token_states(ctx.rpc, [(token, ctx.surfaces[token])], block, ctx.multicall)
        return r, int(read_headers(ctx.rpc, [block], ("timestamp",))[block]["timestamp"], 16)
    found = _at(ctx, gone, block, read)
    if found is None:
        return None
    read, ts = found
    params = rebasing_params_of(read.values)
    return None if params is None else _Known(block, ts, params, read)


def _merge_reads(at_events: tuple[tuple[int, int, tuple[TokenRead, ...]], ...], located: list[_Known]) -> tuple[tuple[int, int, tuple[TokenRead, ...]], ...]:
    """The reads at event blocks and at the blocks of silent changes, one entry per block and token."""
    by_block: dict[tuple[int, int], dict[str, TokenRead]] = {}
    for block, ts, reads in at_events:
        for r in reads:
            by_block.setdefault((block, ts), {})[r.address] = r
    for k in located:
        if k.read is not None:
            by_block.setdefault((k.block, k.timestamp), {})[k.read.address] = k.read
    return tuple((b, ts, tuple(v[t] for t in sorted(v))) for (b, ts), v in sorted(by_block.items()))


def _read_polled(conn: Connection, ctx: SyncContext, logs: LogsWritten, end: int) -> dict[Holder, int | None]:
    """balanceOf at `end` of every known holder of a polled token: the holders its transfers in the tick
    name and those stored."""
    if not ctx.polled:
        return {}
    pairs = set(logs.polled_holders) | holders_of(conn, ctx.chain_id, sorted(ctx.polled))
    out: dict[Holder, int | None] = {}
    for token in sorted(ctx.polled):
        mine = sorted(p for p in pairs if p[0] == token)
        if mine:
            out.update(_required(ctx, end, partial(read_wallet_calls, ctx.rpc, BALANCE_OF, mine, end, ctx.multicall)))
    return out


# ---------------------------------------------------------------------------------- derive
def derive_end(ctx: SyncContext, logs: LogsWritten, state: EndState) -> EndRows:
    """The rows of the tick's last block from what was read (pure)."""
    cid, end = ctx.chain_id, logs.end
    issues: list[Issue] = []
    rounds = []
    token_state_at_events: list[dict] = []
    for feed, latest in zip(ctx.feeds, state.latest_rounds, strict=True):
        if latest is None:
            issues.append(Issue(feed, "feed_unreadable", f"latestRoundData() reverted or returned no round at "
                                f"block {state.block}: no price from this feed"))
        rounds += round_rows(cid, feed, state.new_rounds.get(feed, ()), state.block)
    for block, ts, reads in state.at_events:  # rows of the blocks where state changed
        rows, _, found = token_state_rows(cid, reads, ctx.accounting, block, ts,
                                          state.ui_schedule)
        token_state_at_events += rows
        issues += found
    issues += [Issue(token, "silent_state_change_unlocated",
                     f"the token's multiplier state changed with no event after block {after} and by block {upto} "
                     "(a fee setter, or a scheduled update of a version that logs none), and the node holds no "
                     "state there to find the block: valuations between those blocks use the earlier state")
               for token, after, upto in state.unlocated]
    issues += [Issue(u.contract, "undecodable_log", f"log {u.block_number}#{u.log_index} (tx {u.tx_hash}, topic "
                     f"{u.topic0}) is not what its topic declares: {u.reason}; it was skipped") for u in logs.undecodable]
    if state.tokens is None:
        issues.append(Issue("*", "historical_state_unavailable",
                            f"the node holds no state for block {end} (not an archive node): balances are exact in "
                            "units; multiplier-scaled balances catch up at the first block whose state the node "
                            "still holds"))
        token_state, multipliers, moved = [], dict(state.prior_multipliers), set()
    else:
        token_state, multipliers, found = token_state_rows(cid, state.tokens, ctx.accounting, end,
                                                           logs.end_timestamp, state.ui_schedule)
        issues += found
        moved = moved_multipliers(state.prior_multipliers, multipliers)
    models = {t: ctx.unit_model(t) for t in ctx.accounting}
    balances, new_balances = balance_rows(cid, end, logs.units, models, multipliers, logs.fresh)
    polled_changes, polled_balances, found = polled_rows(cid, end, state.polled, state.polled_units)
    issues += found
    status, found = account_status_rows(cid, logs.events, state.flags, ctx.accounting, end)
    issues += found
    rescale = frozenset(t for t in moved if models[t] != Accounting.PLAIN)
    issues += state.pools.issues
    vault_rates, found = vault_rows(cid, state.vaults)
    issues += found
    return EndRows(rounds, token_state_at_events + token_state, multipliers, rescale, balances, new_balances,
                   polled_changes, polled_balances, status, issues, state.pools, tuple(vault_rates))


# ---------------------------------------------------------------------------------- write
def write_end(conn: Connection, ctx: SyncContext, logs: LogsWritten, rows: EndRows) -> None:
    """The tick's last-block rows and its checkpoint, in the tick's transaction."""
    cid, end = ctx.chain_id, logs.end
    for issue in rows.issues:
        ctx.record(conn, issue, end, once=issue.kind not in RECORDED_EACH_TIME)
    write_rounds(conn, rows.rounds)
    write_token_state(conn, rows.token_state)
    write_balances(conn, rows.balances)
    write_balances(conn, rows.new_balances, new=True)
    moved_holders: dict[str, set[str]] = {t: set() for t in rows.rescale}
    if moved_holders:
        for token, wallet in logs.units:
            if token in moved_holders:
                moved_holders[token].add(wallet)
    for token in sorted(rows.rescale):  # every other holder of a token whose multiplier moved
        holders = holder_rows(conn, cid, token, skip=moved_holders[token])
        write_balances(conn, rescaled_rows(cid, token, ctx.unit_model(token), rows.multipliers[token], end, holders))
    write_changes(conn, rows.polled_changes)
    write_balances(conn, rows.polled_balances)
    write_account_status(conn, rows.account_status)
    write_pool_end(conn, ctx, rows.pools)
    write_vault_rates(conn, list(rows.vault_rates))
    write_checkpoint(conn, cid, end, logs.end_hash)
