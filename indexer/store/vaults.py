"""ERC-4626 vault rates as stored (`vault_rates`, migration 0011): the last read of each vault, and the reads a
run judges a vault's rate by."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from indexer.liquidity.vaults import VaultRead
from indexer.store import models as m
from indexer.store.writes import insert_ignore

_rates = m.VaultRate.__table__
RATE_COLUMNS = ("assets_per_share_raw", "total_assets_raw", "total_supply_raw", "asset_multiplier_raw")


def as_read(row) -> VaultRead:
    return VaultRead(*(None if row[c] is None else int(row[c]) for c in RATE_COLUMNS))  # type: ignore[arg-type]


def last_vault_rates(conn: Connection, cid: int) -> dict[str, VaultRead]:
    """{vault: its last stored read}."""
    last = (select(_rates.c.vault, func.max(_rates.c.block_number).label("b")).where(_rates.c.chain_id == cid)
            .group_by(_rates.c.vault).subquery())
    rows = conn.execute(select(_rates).join(last, (_rates.c.vault == last.c.vault)
                                            & (_rates.c.block_number == last.c.b))
                        .where(_rates.c.chain_id == cid)).mappings()
    return {r["vault"]: as_read(r) for r in rows}


def vault_reads(conn: Connection, cid: int, number: int, since_ts: int) -> dict[str, list[tuple[int, int, VaultRead]]]:
    """{vault: [(block, timestamp, read)]}: every read at or before block `number` from `since_ts` on, and the
    last read before `since_ts` (what the first read of the window moved from), oldest first."""
    out: dict[str, list[tuple[int, int, VaultRead]]] = {}
    before = (select(_rates.c.vault, func.max(_rates.c.block_number).label("b"))
              .where(_rates.c.chain_id == cid, _rates.c.block_number <= number, _rates.c.block_timestamp < since_ts)
              .group_by(_rates.c.vault).subquery())
    first = conn.execute(select(_rates).join(before, (_rates.c.vault == before.c.vault)
                                             & (_rates.c.block_number == before.c.b))
                         .where(_rates.c.chain_id == cid)).mappings()
    within = conn.execute(select(_rates).where(_rates.c.chain_id == cid, _rates.c.block_number <= number,
                                               _rates.c.block_timestamp >= since_ts)
                          .order_by(_rates.c.vault, _rates.c.block_number)).mappings()
    for r in [*first, *within]:
        out.setdefault(r["vault"], []).append((int(r["block_number"]), int(r["block_timestamp"]), as_read(r)))
    return out


def write_vault_rates(conn: Connection, rows: list[dict]) -> None:
    insert_ignore(conn, _rates, rows)
