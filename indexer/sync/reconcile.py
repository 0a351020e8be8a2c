"""The chain is the judge: read balanceOf for every stored holder at one block and repair mismatches.

Every stored (token, wallet) row is checked with one Multicall3 round trip per chunk of calls, pinned
to the synced block so the stored rows and the chain answers describe the same state. A mismatch is
recorded with both values in `reconcile_mismatches`, then the stored row takes the chain's value.
Units follow each token's own rule (`SyncContext.unit_model`): shares for rebasing tokens (`sharesOf`),
raw balances otherwise, and a polled token's balanceOf as read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine

from indexer.accounting import WAD, balance_of_units
from indexer.chain.multicall import Call, read_calls
from indexer.chain.state import BALANCE_OF, SHARES_OF
from indexer.store.balances import balance_rows, repair_balances
from indexer.store.progress import read_checkpoint
from indexer.store.state import multipliers_at
from indexer.sync.context import SyncContext
from indexer.types import Accounting


@dataclass(frozen=True)
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
        cp = read_checkpoint(conn, cid)
        if cp is None:
            return None
        rows = balance_rows(conn, cid)
        multipliers = multipliers_at(conn, cid, cp.block_number)
    models = {t: ctx.unit_model(t) for t in ctx.accounting}
    calls: list[Call] = []
    plan: list[tuple[int, str]] = []  # (row index, what the call reads)
    for i, (token, wallet, _, _) in enumerate(rows):
        arg = bytes(12) + bytes.fromhex(wallet[2:])
        calls.append(Call(token, BALANCE_OF.selector + arg))
        plan.append((i, "balance"))
        if models[token] == Accounting.REBASING_SHARES:
            calls.append(Call(token, SHARES_OF.selector + arg))
            plan.append((i, "shares"))
    answers = read_calls(ctx.rpc, calls, cp.block_number, multicall=ctx.multicall, chunk=chunk)
    chain_balance: dict[int, int] = {}
    chain_shares: dict[int, int] = {}
    failed = 0
    for (i, what), (ok, data) in zip(plan, answers, strict=True):
        if not ok or len(data) < 32:
            failed += 1
            continue
        value = int.from_bytes(data[:32], "big")
        (chain_balance if what == "balance" else chain_shares)[i] = value
    mismatches, repairs = [], []
    now = int(time.time())
    for i, (token, wallet, balance, units) in enumerate(rows):
        if i not in chain_balance:
            continue
        model, on_chain = models[token], chain_balance[i]
        chain_units = chain_shares.get(i, on_chain) if model == Accounting.REBASING_SHARES else on_chain
        if on_chain == balance and chain_units == units:
            continue
        mismatches.append(dict(chain_id=cid, token=token, wallet=wallet, block_number=cp.block_number,
                               stored_raw=balance, chain_raw=on_chain, detected_at=now, repaired=True))
        shares = balance_of_units(model, chain_units, multipliers.get(token, WAD))[1]
        repairs.append(dict(t=token, w=wallet, balance_raw=on_chain, units_raw=chain_units, shares_raw=shares))
    if mismatches:
        with engine.begin() as conn:
            repair_balances(conn, cid, mismatches, repairs)
    return ReconcileResult(cp.block_number, len(rows), len(mismatches), failed, time.monotonic() - started)
