"""What holds at a tick's last block: read it (`read_end`), derive its rows (`derive_end`, pure), write
them with the checkpoint (`write_end`).

Contract state (token state, the feeds' latest rounds and every round not stored yet, balanceOf of
polled tokens' holders, isFrozen / isSanctioned of the wallets the tick's events name) is read at the
tick's last block. A node that no longer holds that block's state (not an archive node) gets the
rounds read at its head instead, and the balances stay exact in units until a tick reaches blocks
whose state it still holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from indexer.accounting import UiMultiplierUpdate
from indexer.chain.abi import load_abi, token_abi
from indexer.chain.classify import is_state_unavailable
from indexer.chain.headers import read_head
from indexer.chain.state import (
    RoundRead,
    TokenRead,
    read_address_calls,
    read_latest_rounds,
    read_rounds,
    read_token_states,
)
from indexer.errors import RpcError
from indexer.store.balances import holder_rows, holders_of, load_units, write_balances, write_changes
from indexer.store.progress import write_checkpoint
from indexer.store.state import (
    latest_round_ids,
    multipliers_at,
    stored_ui_schedule,
    write_account_status,
    write_rounds,
    write_token_state,
)
from indexer.sync.context import Issue, SyncContext
from indexer.sync.derive import (
    Holder,
    account_status_rows,
    balance_rows,
    flag_reads,
    missing_round_ids,
    moved_multipliers,
    polled_rows,
    rescaled_rows,
    round_rows,
    token_state_rows,
)
from indexer.sync.facts import LogsWritten
from indexer.token_events import AccountKey
from indexer.types import Accounting

_SANCTIONS_ABI = load_abi("SanctionsList")


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


# ---------------------------------------------------------------------------------- read
def read_end(conn: Connection, ctx: SyncContext, logs: LogsWritten) -> EndState:
    cid, rpc, mc, end = ctx.chain_id, ctx.rpc, ctx.multicall, logs.end
    block: int = end
    try:
        tokens: tuple[TokenRead, ...] | None = tuple(read_token_states(rpc, list(ctx.accounting.items()), end, mc))
    except RpcError as exc:
        if not is_state_unavailable(exc):
            raise
        tokens, block = None, read_head(rpc)
    latest = tuple(read_latest_rounds(rpc, ctx.feeds, block, mc))
    stored = latest_round_ids(conn, cid)
    new_rounds = {}
    for feed, r in zip(ctx.feeds, latest, strict=True):
        ids = [] if r is None else missing_round_ids(r.round_id, stored.get(feed))
        if ids:
            new_rounds[feed] = (*read_rounds(rpc, feed, ids[:-1], block, mc), r)
    polled: dict[Holder, int | None] = {}
    flags: dict[AccountKey, int | bool | None] = {}
    if tokens is not None:
        polled = _read_polled(conn, ctx, logs, end)
        frozen, listed = flag_reads(logs.events, ctx.accounting)
        if frozen:
            flags.update(read_address_calls(rpc, token_abi(Accounting.UI_MULTIPLIER), "isFrozen", frozen, end, mc))
        if listed:
            flags.update(read_address_calls(rpc, _SANCTIONS_ABI, "isSanctioned", listed, end, mc))
    polled_units = {}
    if polled:
        touched: dict[str, set[str]] = {}
        for token, wallet in polled:
            touched.setdefault(token, set()).add(wallet)
        polled_units = load_units(conn, cid, touched)
    return EndState(block, tokens, latest, new_rounds, polled, flags, multipliers_at(conn, cid),
                    stored_ui_schedule(conn, cid), polled_units)


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
            out.update(read_address_calls(ctx.rpc, token_abi(ctx.accounting[token]), "balanceOf", mine, end,
                                          ctx.multicall))
    return out


# ---------------------------------------------------------------------------------- derive
def derive_end(ctx: SyncContext, logs: LogsWritten, state: EndState) -> EndRows:
    """The rows of the tick's last block from what was read (pure)."""
    cid, end = ctx.chain_id, logs.end
    issues: list[Issue] = []
    rounds = []
    for feed, latest in zip(ctx.feeds, state.latest_rounds, strict=True):
        if latest is None:
            issues.append(Issue(feed, "feed_unreadable", f"latestRoundData() reverted or returned no round at "
                                f"block {state.block}: no price from this feed"))
        rounds += round_rows(cid, feed, state.new_rounds.get(feed, ()), state.block)
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
    return EndRows(rounds, token_state, multipliers, rescale, balances, new_balances, polled_changes,
                   polled_balances, status, issues)


# ---------------------------------------------------------------------------------- write
def write_end(conn: Connection, ctx: SyncContext, logs: LogsWritten, rows: EndRows) -> None:
    """The tick's last-block rows and its checkpoint, in the tick's transaction."""
    cid, end = ctx.chain_id, logs.end
    for issue in rows.issues:
        ctx.record(conn, issue, end)
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
    write_checkpoint(conn, cid, end, logs.end_hash)
