"""Freezes and sanctions from events are checked against isFrozen / isSanctioned at the tick's block;
a disagreement is recorded and the contract's answer wins."""

from __future__ import annotations

from sqlalchemy import select

from indexer.accounting import Accounting
from indexer.chain.decode import DecodedLogs, EventRecord
from indexer.chain.logs import LogFetcher
from indexer.store import models as m
from indexer.store.engine import make_engine, upgrade
from indexer.sync.pipeline import Fetched, SyncContext, apply_account_events

TOKEN = "0x" + "aa" * 20
LIST = "0x" + "bb" * 20
W1, W2, W3 = ("0x" + c * 40 for c in "123")


def event(contract: str, name: str, args: dict, index: int) -> EventRecord:
    return EventRecord(10, index, "0x" + "00" * 32, "0x" + "00" * 32, contract, name, args)


def test_contract_answers_win_over_events_and_disagreements_are_recorded(db_url, short_settings):
    upgrade(db_url)
    engine = make_engine(db_url)
    ctx = SyncContext(short_settings, None, 31337, {TOKEN: Accounting.UI_MULTIPLIER}, [], [LIST], LogFetcher())
    d = DecodedLogs(events=[
        event(TOKEN, "AddressFrozen", {"wallet": W1, "frozen": True}, 0),  # the contract agrees
        event(TOKEN, "AddressFrozen", {"wallet": W2, "frozen": True}, 1),  # the contract says not frozen
        event(LIST, "SanctionedAddressesAdded", {"wallets": [W3]}, 2),  # the read failed
    ])
    f = Fetched(10, 10, d, 3, {}, [], [], 10, flags={(TOKEN, W1): True, (TOKEN, W2): False, (LIST, W3): None})
    try:
        with engine.begin() as conn:
            apply_account_events(conn, ctx, d, f)
        with engine.connect() as conn:
            status = {(r.contract, r.wallet): (r.frozen, r.sanctioned) for r in conn.execute(select(m.AccountStatus))}
            issues = sorted((r.kind, r.contract) for r in conn.execute(select(m.SyncIssue)))
        assert status == {(TOKEN, W1): (True, False), (TOKEN, W2): (False, False), (LIST, W3): (False, True)}
        assert issues == [("account_status_mismatch", TOKEN), ("account_status_unreadable", LIST)]
    finally:
        engine.dispose()
