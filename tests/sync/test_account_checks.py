"""Freezes and sanctions from events are checked against isFrozen / isSanctioned at the tick's block;
a disagreement is recorded and the contract's answer wins."""

from __future__ import annotations

from indexer.chain.decode import EventRecord
from indexer.sync.derive import account_status_rows, flag_reads
from indexer.types import Accounting

TOKEN = "0x" + "aa" * 20
LIST = "0x" + "bb" * 20
W1, W2, W3 = ("0x" + c * 40 for c in "123")


def event(contract: str, name: str, args: dict, index: int) -> EventRecord:
    return EventRecord(10, index, "0x" + "00" * 32, "0x" + "00" * 32, contract, name, args)


EVENTS = [
    event(TOKEN, "AddressFrozen", {"wallet": W1, "frozen": True}, 0),  # the contract agrees
    event(TOKEN, "AddressFrozen", {"wallet": W2, "frozen": True}, 1),  # the contract says not frozen
    event(LIST, "SanctionedAddressesAdded", {"wallets": [W3]}, 2),  # the read failed
]


def test_contract_answers_win_over_events_and_disagreements_are_recorded():
    flags = {(TOKEN, W1): True, (TOKEN, W2): False, (LIST, W3): None}
    rows, issues = account_status_rows(31337, EVENTS, flags, {TOKEN: Accounting.UI_MULTIPLIER}, 10)
    status = {(r["contract"], r["wallet"]): (r["frozen"], r["sanctioned"]) for r in rows}
    assert status == {(TOKEN, W1): (True, False), (TOKEN, W2): (False, False), (LIST, W3): (False, True)}
    assert sorted((i.kind, i.contract) for i in issues) == [("account_status_mismatch", TOKEN),
                                                            ("account_status_unreadable", LIST)]


def test_the_wallets_to_check_are_those_the_events_name():
    frozen, listed = flag_reads(EVENTS, {TOKEN: Accounting.UI_MULTIPLIER})
    assert frozen == [(TOKEN, W1), (TOKEN, W2)]
    assert listed == [(LIST, W3)]
