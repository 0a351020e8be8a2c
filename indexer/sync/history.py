"""Stored token events folded into state: the ERC-8056 multiplier schedule and account status
(freezes, sanctions). One rule for the sync (per tick and after a reorg) and the snapshot (at block B)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Connection, select

from indexer.accounting import UiMultiplierUpdate
from indexer.store import models as m

ACCOUNT_EVENTS = ("AddressFrozen", "SanctionedAddressesAdded", "SanctionedAddressesRemoved")


def fold_account_events(events: Iterable[tuple[str, str, dict, int]],
                        status: dict[tuple[str, str], dict] | None = None) -> dict[tuple[str, str], dict]:
    """(contract, event, args, block) in log order -> {(contract, wallet): {frozen, sanctioned, block_number}}.

    A freeze is per token contract; a sanction is per sanctions-list contract."""
    status = {} if status is None else status
    for contract, event, args, block in events:
        if event == "AddressFrozen":
            status[(contract, args["wallet"])] = dict(frozen=bool(args["frozen"]), sanctioned=False, block_number=block)
        elif event in ("SanctionedAddressesAdded", "SanctionedAddressesRemoved"):
            for w in args["wallets"]:
                status[(contract, w)] = dict(frozen=False, sanctioned=event == "SanctionedAddressesAdded",
                                             block_number=block)
    return status


def stored_account_status(conn: Connection, cid: int, up_to: int | None = None) -> dict[tuple[str, str], dict]:
    """Account status replayed from the stored events (all of them, or up to block `up_to`)."""
    te = m.TokenEvent.__table__
    q = select(te.c.contract, te.c.event, te.c.args, te.c.block_number).where(
        te.c.chain_id == cid, te.c.event.in_(ACCOUNT_EVENTS))
    if up_to is not None:
        q = q.where(te.c.block_number <= up_to)
    rows = conn.execute(q.order_by(te.c.block_number, te.c.log_index))
    return fold_account_events((c, e, json.loads(a), b) for c, e, a, b in rows)


def stored_ui_schedule(conn: Connection, cid: int, up_to: int | None = None) -> dict[str, list[UiMultiplierUpdate]]:
    """Every UIMultiplierUpdated announced (up to block `up_to`), per token, in event order."""
    te = m.TokenEvent.__table__
    q = select(te.c.contract, te.c.args).where(te.c.chain_id == cid, te.c.event == "UIMultiplierUpdated")
    if up_to is not None:
        q = q.where(te.c.block_number <= up_to)
    out: dict[str, list[UiMultiplierUpdate]] = defaultdict(list)
    for contract, args in conn.execute(q.order_by(te.c.block_number, te.c.log_index)):
        a = json.loads(args)
        out[contract].append(UiMultiplierUpdate(int(a["new_multiplier"]), int(a["effective_at"]), int(a["set_at"])))
    return out
