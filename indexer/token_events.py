"""What stored token events mean, as pure folds: freezes and sanctions into account status, and the
ERC-8056 `UIMultiplierUpdated` announcements into a schedule. One rule for the sync (per tick and after
a reorg) and the snapshot (at block B). No I/O: the store reads the events (store/state.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from indexer.accounting import UiMultiplierUpdate

ACCOUNT_EVENTS = ("AddressFrozen", "SanctionedAddressesAdded", "SanctionedAddressesRemoved")
AccountKey = tuple[str, str]  # (token or sanctions list, wallet)


def fold_account_events(events: Iterable[tuple[str, str, dict, int]],
                        status: dict[AccountKey, dict] | None = None) -> dict[AccountKey, dict]:
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


def status_rows(cid: int, status: dict[AccountKey, dict]) -> list[dict]:
    """`account_status` rows of a folded status."""
    return [dict(chain_id=cid, contract=c, wallet=w, **v) for (c, w), v in status.items()]


UI_SCHEDULE_EVENTS = ("UIMultiplierUpdated", "UIMultiplierUpdateCancelled", "MultiplierUpdated")
REBASING_MULTIPLIER_EVENTS = ("MultiplierUpdated", "MultiplierScheduled", "MultiplierScheduleOverridden")


def ui_schedule(announcements: Iterable[tuple[str, str, dict, int]]) -> dict[str, list[UiMultiplierUpdate]]:
    """(token, event, args, block time) in log order -> every update of a UI-multiplier token, per token.

    `UIMultiplierUpdated` announces a multiplier in force from its effective time (ERC-8056: the current
    draft's three arguments or the early draft's four); `UIMultiplierUpdateCancelled` withdraws an
    announced update that has not taken effect (Base B20); `MultiplierUpdated(value)` is an immediate
    update, in force from its block (Base B20 before ERC-8056 names)."""
    out: dict[str, list[UiMultiplierUpdate]] = defaultdict(list)
    for token, event, a, block_time in announcements:
        if event == "UIMultiplierUpdated":
            old = a.get("old_multiplier")
            out[token].append(UiMultiplierUpdate(int(a["new_multiplier"]), int(a["effective_at"]),
                                                 int(a.get("set_at", block_time)), None if old is None else int(old)))
        elif event == "MultiplierUpdated":
            out[token].append(UiMultiplierUpdate(int(a["value"]), block_time, block_time))
        elif event == "UIMultiplierUpdateCancelled":
            cancelled = (int(a["cancelled_multiplier"]), int(a["cancelled_effective_at"]))
            for i in range(len(out[token]) - 1, -1, -1):
                u = out[token][i]
                if (u.new_multiplier, u.effective_at) == cancelled and u.effective_at > block_time:
                    del out[token][i]
                    break
    return out
