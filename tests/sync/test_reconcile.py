"""The reconcile job finds stored balances that differ from balanceOf, records both values and repairs them."""

from __future__ import annotations

from sqlalchemy import select, update

from indexer.store import models as m
from indexer.sync.reconcile import reconcile
from indexer.sync.tick import sync
from indexer.types import Accounting
from tests.sync.checks import assert_balances_match_chain


def test_reconcile_records_and_repairs_every_mismatch(short_settings, synced):
    engine, ctx, rpc = synced
    sync(engine, ctx)
    first = reconcile(engine, ctx)
    assert first.mismatches == 0 and first.failed_reads == 0 and first.checked > 1000
    rebasing = next(t.address for t in short_settings.tokens if t.accounting == Accounting.REBASING_SHARES)
    plain = next(t.address for t in short_settings.tokens if t.accounting == Accounting.PLAIN)
    b = m.Balance.__table__
    with engine.begin() as conn:
        victims = []
        for token in (rebasing, plain):
            wallet, units, balance = conn.execute(select(b.c.wallet, b.c.units_raw, b.c.balance_raw).where(
                b.c.token == token, b.c.units_raw > 0).limit(1)).one()
            victims.append((token, wallet, balance))
            conn.execute(update(b).where(b.c.token == token, b.c.wallet == wallet)
                         .values(units_raw=units + 12_345, balance_raw=balance + 12_345))
    second = reconcile(engine, ctx)
    assert second.mismatches == 2
    with engine.connect() as conn:
        recorded = {(r.token, r.wallet): (r.stored_raw, r.chain_raw) for r in conn.execute(
            select(m.ReconcileMismatch.token, m.ReconcileMismatch.wallet, m.ReconcileMismatch.stored_raw,
                   m.ReconcileMismatch.chain_raw))}
    assert recorded == {(t, w): (bal + 12_345, bal) for t, w, bal in victims}
    assert_balances_match_chain(engine, short_settings, rpc)
    assert reconcile(engine, ctx).mismatches == 0
