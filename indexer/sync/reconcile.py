"""The chain is the judge: read balanceOf for every stored holder at one block and repair mismatches.

Every stored (token, wallet) row is checked with one Multicall3 round trip per chunk of calls, pinned
to the synced block so the stored rows and the chain answers describe the same state. A mismatch is
recorded with both values in `reconcile_mismatches`, then the stored row takes the chain's value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, select, update

from indexer.accounting import WAD, Accounting
from indexer.chain.abi import token_abi
from indexer.chain.multicall import Call, read_calls
from indexer.store import models as m
from indexer.sync.pipeline import SyncContext, load_checkpoint


@dataclass
class ReconcileResult:
    block: int
    checked: int
    mismatches: int
    failed_reads: int
    seconds: float


def reconcile(engine: Engine, ctx: SyncContext, *, chunk: int = 1_000) -> ReconcileResult | None:
    """Check every stored balance against balanceOf (and sharesOf for rebasing tokens) at the synced block."""
    started = time.monotonic()
    cid = ctx.chain_id
    with engine.connect() as conn:
        cp = load_checkpoint(conn, cid)
        if cp is None:
            return None
        b = m.Balance.__table__
        rows = conn.execute(select(b.c.token, b.c.wallet, b.c.balance_raw, b.c.units_raw)
                            .where(b.c.chain_id == cid).order_by(b.c.token, b.c.wallet)).all()
    calls: list[Call] = []
    plan: list[tuple[int, str]] = []  # (row index, what the call reads)
    for i, (token, wallet, _, _) in enumerate(rows):
        acc = ctx.accounting[token]
        abi = token_abi(acc)
        calls.append(Call(token, abi.fn("balanceOf").encode_address(wallet)))
        plan.append((i, "balance"))
        if acc == Accounting.REBASING_SHARES:
            calls.append(Call(token, abi.fn("sharesOf").encode_address(wallet)))
            plan.append((i, "shares"))
    answers = read_calls(ctx.rpc, calls, cp.block_number, multicall=ctx.multicall, chunk=chunk)
    chain_balance: dict[int, int] = {}
    chain_units: dict[int, int] = {}
    failed = 0
    for (i, what), (ok, data) in zip(plan, answers, strict=True):
        if not ok or len(data) < 32:
            failed += 1
            continue
        value = int.from_bytes(data[:32], "big")
        (chain_balance if what == "balance" else chain_units)[i] = value
    mismatches, repairs = [], []
    now = int(time.time())
    for i, (token, wallet, balance, units) in enumerate(rows):
        if i not in chain_balance:
            continue
        acc = ctx.accounting[token]
        on_chain = chain_balance[i]
        chain_u = chain_units.get(i, on_chain) if acc == Accounting.REBASING_SHARES else on_chain
        if on_chain == balance and chain_u == units:
            continue
        mismatches.append(dict(chain_id=cid, token=token, wallet=wallet, block_number=cp.block_number,
                               stored_raw=balance, chain_raw=on_chain, detected_at=now, repaired=True))
        shares = chain_u if acc == Accounting.REBASING_SHARES else (
            _ui_shares(engine, cid, token, chain_u) if acc == Accounting.UI_MULTIPLIER else None)
        repairs.append(dict(t=token, w=wallet, balance_raw=on_chain, units_raw=chain_u, shares_raw=shares))
    if mismatches:
        b = m.Balance.__table__
        with engine.begin() as conn:
            conn.execute(m.ReconcileMismatch.__table__.insert(), mismatches)
            conn.execute(update(b).where(b.c.chain_id == cid, b.c.token == bindparam("t"),
                                         b.c.wallet == bindparam("w"))
                         .values(balance_raw=bindparam("balance_raw"), units_raw=bindparam("units_raw"),
                                 shares_raw=bindparam("shares_raw")), repairs)
    return ReconcileResult(cp.block_number, len(rows), len(mismatches), failed, time.monotonic() - started)


def _ui_shares(engine: Engine, cid: int, token: str, units: int) -> int:
    ts = m.TokenState.__table__
    with engine.connect() as conn:
        mult = conn.execute(select(ts.c.multiplier_raw).where(ts.c.chain_id == cid, ts.c.token == token)
                            .order_by(ts.c.block_number.desc()).limit(1)).scalar()
    return units * (mult or WAD) // WAD
