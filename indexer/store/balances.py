"""What the store says about holders: current balances, running units, and balances as of a block.

The column lists below are the order in which the sync hands rows of the hot tables to the bulk
writer (`store/writes.py`): one place for each table's layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Set as AbstractSet

from sqlalchemy import Connection, bindparam, delete, func, select, update

from indexer.store import models as m
from indexer.store.dialect import dialect_of
from indexer.store.writes import insert_rows, upsert_rows

TRANSFER_COLS = ("chain_id", "block_number", "log_index", "tx_hash", "token", "from_address", "to_address",
                 "amount_raw")
SHARE_COLS = TRANSFER_COLS[:-1] + ("shares_raw",)
CHANGE_COLS = ("chain_id", "token", "wallet", "block_number", "log_index", "delta_raw", "units_raw")
BALANCE_COLS = ("chain_id", "token", "wallet", "balance_raw", "shares_raw", "units_raw", "block_number")
BALANCE_KEYS = ("chain_id", "token", "wallet")

_b = m.Balance.__table__
_bc = m.BalanceChange.__table__


# -------------------------------------------------------------------------------- the sync's reads
def tokens_without_holders(conn: Connection, cid: int, tokens: list[str]) -> set[str]:
    return {t for t in tokens if conn.execute(select(_b.c.wallet).where(_b.c.chain_id == cid, _b.c.token == t)
                                              .limit(1)).first() is None}


def load_units(conn: Connection, cid: int, touched: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    """{(token, wallet): stored units} of the touched holders that have a balance row (one read per tick
    and holder: the dialect's fastest form)."""
    return dialect_of(conn).load_units(conn, cid, touched)


def holder_rows(conn: Connection, cid: int, token: str, skip: AbstractSet[str] = frozenset()
                ) -> list[tuple[str, int, int, int | None]]:
    """(wallet, units, balance, shares) of every stored holder of `token` but those in `skip`."""
    return dialect_of(conn).holder_rows(conn, cid, token, skip)


def holders_of(conn: Connection, cid: int, tokens: list[str]) -> set[tuple[str, str]]:
    """Every stored (token, wallet) of these tokens."""
    if not tokens:
        return set()
    return {(t, w) for t, w in conn.execute(select(_b.c.token, _b.c.wallet).where(
        _b.c.chain_id == cid, _b.c.token.in_(sorted(tokens)))).all()}


def write_balances(conn: Connection, rows: list[tuple], *, new: bool = False) -> None:
    """Balance rows in `BALANCE_COLS` order; `new`: none of them is stored yet (a plain insert)."""
    if new:
        insert_rows(conn, _b, BALANCE_COLS, rows, new=True)
    else:
        upsert_rows(conn, _b, BALANCE_COLS, rows, BALANCE_KEYS)


def write_changes(conn: Connection, rows: list[tuple]) -> None:
    """Balance-change rows in `CHANGE_COLS` order (facts of their own: a stored key is left as it is)."""
    insert_rows(conn, _bc, CHANGE_COLS, rows)


# -------------------------------------------------------------------------------- readers of balances
def balances_now(conn: Connection, cid: int) -> dict[tuple[str, str], int]:
    """{(token, wallet): balanceOf at the synced head} for every non-zero balance."""
    return {(t, w): v for t, w, v in conn.execute(select(_b.c.token, _b.c.wallet, _b.c.balance_raw).where(
        _b.c.chain_id == cid)) if v > 0}


def units_at(conn: Connection, cid: int, block: int) -> Iterator[tuple[str, str, int]]:
    """(token, wallet, units) of each holder's last balance change at or before `block`."""
    ranked = select(_bc.c.token, _bc.c.wallet, _bc.c.units_raw, func.row_number().over(
        partition_by=(_bc.c.token, _bc.c.wallet), order_by=(_bc.c.block_number.desc(), _bc.c.log_index.desc()))
        .label("rn")).where(_bc.c.chain_id == cid, _bc.c.block_number <= block).subquery()
    for token, wallet, units in conn.execute(select(ranked.c.token, ranked.c.wallet, ranked.c.units_raw)
                                             .where(ranked.c.rn == 1)):
        yield token, wallet, int(units)


def balance_rows(conn: Connection, cid: int) -> list[tuple[str, str, int, int]]:
    """(token, wallet, balance, units) of every stored holder, in key order."""
    return [(t, w, int(b), int(u)) for t, w, b, u in conn.execute(
        select(_b.c.token, _b.c.wallet, _b.c.balance_raw, _b.c.units_raw)
        .where(_b.c.chain_id == cid).order_by(_b.c.token, _b.c.wallet)).all()]


def repair_balances(conn: Connection, cid: int, mismatches: list[dict], repairs: list[dict]) -> None:
    """Record the mismatches a reconcile found (`reconcile_mismatches` rows) and repair the holders: dicts
    of token `t`, wallet `w`, balance_raw, units_raw, shares_raw."""
    conn.execute(m.ReconcileMismatch.__table__.insert(), mismatches)
    conn.execute(update(_b).where(_b.c.chain_id == cid, _b.c.token == bindparam("t"), _b.c.wallet == bindparam("w"))
                 .values(balance_raw=bindparam("balance_raw"), units_raw=bindparam("units_raw"),
                         shares_raw=bindparam("shares_raw")), repairs)


def held_tokens(conn: Connection, cid: int, wallet: str) -> int:
    """How many tokens the wallet holds now (units > 0)."""
    return conn.execute(select(func.count()).select_from(_b).where(
        _b.c.chain_id == cid, _b.c.wallet == wallet, _b.c.units_raw > 0)).scalar() or 0


# -------------------------------------------------------------------------------- rollback
def holders_changed_above(conn: Connection, cid: int, block: int) -> list[tuple[str, str]]:
    return [(t, w) for t, w in conn.execute(select(_bc.c.token, _bc.c.wallet).where(
        _bc.c.chain_id == cid, _bc.c.block_number > block).distinct()).all()]


def reset_units_to_history(conn: Connection, cid: int, pairs: list[tuple[str, str]]) -> None:
    """Each holder's units back to its last stored balance change (the row goes when none is left).
    Balances are rescaled by the caller."""
    for token, wallet in pairs:
        last = conn.execute(select(_bc.c.units_raw).where(
            _bc.c.chain_id == cid, _bc.c.token == token, _bc.c.wallet == wallet)
            .order_by(_bc.c.block_number.desc(), _bc.c.log_index.desc()).limit(1)).scalar()
        key = (_b.c.chain_id == cid) & (_b.c.token == token) & (_b.c.wallet == wallet)
        if last is None:
            conn.execute(delete(_b).where(key))
        else:
            conn.execute(update(_b).where(key).values(units_raw=last))


# -------------------------------------------------------------------------------- primary flows
def mints_and_burns(conn: Connection, cid: int, tokens: list[str], since_ts: int, until: int
                    ) -> dict[str, list[tuple[int, str, str, int]]]:
    """Per token, (timestamp, from, to, amount) of its Transfers from or to the zero address (the issuer's
    mints and burns) in blocks up to `until` whose time is at or after `since_ts`, in log order."""
    t, b = m.Transfer.__table__, m.Block.__table__
    zero = "0x" + "00" * 20
    q = (select(t.c.token, b.c.timestamp, t.c.from_address, t.c.to_address, t.c.amount_raw)
         .join(b, (b.c.chain_id == t.c.chain_id) & (b.c.number == t.c.block_number))
         .where(t.c.chain_id == cid, t.c.token.in_(tokens), t.c.block_number <= until, b.c.timestamp >= since_ts,
                (t.c.from_address == zero) | (t.c.to_address == zero))
         .order_by(t.c.block_number, t.c.log_index))
    out: dict[str, list[tuple[int, str, str, int]]] = {tok: [] for tok in tokens}
    for token, ts, src, dst, amount in conn.execute(q):
        out[token].append((int(ts), src, dst, int(amount)))
    return out
