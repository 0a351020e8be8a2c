"""What the store says about the sync's progress: the checkpoint, the stored hash chain, recorded issues."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from indexer.store import models as m
from indexer.store.writes import insert_ignore, upsert

CHECKPOINT = "head"  # the name of the sync's checkpoint row (a chain has one)

_cp = m.SyncCheckpoint.__table__
_blocks = m.Block.__table__


@dataclass(frozen=True)
class Checkpoint:
    """The last block the sync wrote, and its hash when written."""

    block_number: int
    block_hash: str
    updated_at: int


def read_checkpoint(conn: Connection, cid: int) -> Checkpoint | None:
    row = conn.execute(select(_cp.c.block_number, _cp.c.block_hash, _cp.c.updated_at).where(
        _cp.c.chain_id == cid, _cp.c.name == CHECKPOINT)).first()
    return None if row is None else Checkpoint(int(row[0]), row[1], int(row[2]))


def write_checkpoint(conn: Connection, cid: int, block: int, block_hash: str) -> None:
    upsert(conn, _cp, [dict(chain_id=cid, name=CHECKPOINT, block_number=block, block_hash=block_hash,
                            updated_at=int(time.time()))], ["chain_id", "name"])


def move_checkpoint_back(conn: Connection, cid: int, block: int) -> None:
    """After a rollback to `block`: the checkpoint names it (with its stored hash), or goes when the
    block is not stored (everything above the deployment was rolled back)."""
    blk = block_hash(conn, cid, block)
    if blk is None:
        conn.execute(delete(_cp).where(_cp.c.chain_id == cid, _cp.c.name == CHECKPOINT))
    else:
        conn.execute(update(_cp).where(_cp.c.chain_id == cid, _cp.c.name == CHECKPOINT).values(
            block_number=block, block_hash=blk, updated_at=int(time.time())))


def synced_head(conn: Connection, cid: int) -> tuple[int, int] | None:
    """(block, its timestamp) of the checkpoint, or None when nothing is synced."""
    row = conn.execute(select(_cp.c.block_number, _blocks.c.timestamp).join(
        _blocks, (_blocks.c.chain_id == _cp.c.chain_id) & (_blocks.c.number == _cp.c.block_number))
        .where(_cp.c.chain_id == cid, _cp.c.name == CHECKPOINT)).first()
    return None if row is None else (int(row[0]), int(row[1]))


# -------------------------------------------------------------------------------- the hash chain
def write_headers(conn: Connection, cid: int, headers: dict[int, dict]) -> None:
    insert_ignore(conn, _blocks, header_rows(cid, headers))


def header_rows(cid: int, headers: dict[int, dict]) -> list[dict]:
    return [dict(chain_id=cid, number=n, hash=h["hash"], parent_hash=h["parentHash"],
                 timestamp=int(h["timestamp"], 16)) for n, h in headers.items()]


def block_hash(conn: Connection, cid: int, number: int) -> str | None:
    return conn.execute(select(_blocks.c.hash).where(_blocks.c.chain_id == cid, _blocks.c.number == number)).scalar()


def block_timestamp(conn: Connection, cid: int, number: int) -> int | None:
    ts = conn.execute(select(_blocks.c.timestamp).where(_blocks.c.chain_id == cid,
                                                         _blocks.c.number == number)).scalar()
    return None if ts is None else int(ts)


def block_at_or_before(conn: Connection, cid: int, at: int, up_to: int) -> tuple[int, int] | None:
    """(number, timestamp) of the last stored block at or before unix time `at`, not above `up_to`."""
    row = conn.execute(select(_blocks.c.number, _blocks.c.timestamp).where(
        _blocks.c.chain_id == cid, _blocks.c.timestamp <= at, _blocks.c.number <= up_to)
        .order_by(_blocks.c.number.desc()).limit(1)).first()
    return None if row is None else (int(row[0]), int(row[1]))


def stored_block_below(conn: Connection, cid: int, number: int) -> int | None:
    return conn.execute(select(func.max(_blocks.c.number)).where(_blocks.c.chain_id == cid,
                                                                 _blocks.c.number < number)).scalar()


def highest_block_at_or_below(conn: Connection, cid: int, number: int) -> tuple[int, str] | None:
    """(number, hash) of the highest stored block not above `number`."""
    row = conn.execute(select(_blocks.c.number, _blocks.c.hash).where(
        _blocks.c.chain_id == cid, _blocks.c.number <= number).order_by(_blocks.c.number.desc()).limit(1)).first()
    return None if row is None else (int(row[0]), row[1])


def recent_blocks(conn: Connection, cid: int, limit: int) -> list[tuple[int, str]]:
    """The highest `limit` stored blocks as (number, hash), highest first."""
    return [(int(n), h) for n, h in conn.execute(select(_blocks.c.number, _blocks.c.hash).where(
        _blocks.c.chain_id == cid).order_by(_blocks.c.number.desc()).limit(limit)).all()]


def range_is_new(conn: Connection, cid: int, start: int) -> bool:
    """No log-keyed row is stored at or above `start`.

    Every block that holds a stored fact (transfers, share transfers, token events, and the balance
    changes derived from them) has its row in `blocks`, written in the same transaction, and a
    rollback deletes both above the fork: no block row at or above `start` means no such row either.
    """
    return conn.execute(select(_blocks.c.number).where(_blocks.c.chain_id == cid, _blocks.c.number >= start)
                        .limit(1)).first() is None


# -------------------------------------------------------------------------------- problems
def record_issue(conn: Connection, cid: int, contract: str, kind: str, message: str, block: int) -> None:
    conn.execute(m.SyncIssue.__table__.insert().values(chain_id=cid, contract=contract, kind=kind, message=message,
                                                       block_number=block, seen_at=int(time.time())))


# -------------------------------------------------------------------------------- rollback
_ABOVE = ((m.Transfer, "block_number"), (m.ShareTransfer, "block_number"), (m.TokenEvent, "block_number"),
          (m.BalanceChange, "block_number"), (m.TokenState, "block_number"), (m.PriceRound, "block_number"),
          (m.PoolEvent, "block_number"), (m.PoolStateRead, "block_number"), (m.PoolTick, "block_number"),
          (m.VaultRate, "block_number"), (m.Block, "number"))


def delete_facts_above(conn: Connection, cid: int, block: int) -> None:
    """Every fact and every block-keyed derived row above `block` (the current rows are rebuilt by the caller)."""
    for model, col in _ABOVE:
        t = model.__table__
        conn.execute(delete(t).where(t.c.chain_id == cid, t.c[col] > block))
