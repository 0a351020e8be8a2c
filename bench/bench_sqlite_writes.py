"""Bench: SQLite bulk writes and index builds, each against its former way, in one process.

1. Inserting rows shaped like `transfers` (the indexer's schema, a fresh file, one transaction):
   `insert_rows` (multi-row `INSERT ... VALUES (...), (...)` statements of 1,000 rows) against
   `executemany` of the one-row statement over the same encoded rows.
2. Building the six indexes a first backfill sets aside (`indexes.restore`, which sorts with an 8 MiB
   page cache and two sorter threads) against the same `CREATE INDEX` statements with the bulk
   writer's 256 MiB cache and no sorter thread, on the tables filled in step 1 plus `balance_changes`
   rows shaped like the sync's (two per transfer).

    .venv/bin/python bench/bench_sqlite_writes.py [--rows 1000000] [--repeat 2]

Each figure is the best of `--repeat` runs, each on a new file under a temporary folder.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from indexer.store import indexes
from indexer.store import models as m
from indexer.store.balances import CHANGE_COLS, TRANSFER_COLS
from indexer.store.engine import make_engine, upgrade
from indexer.store.sqlite import BULK_CACHE_KIB, _tune_for_bulk
from indexer.store.writes import _encoded, insert_rows


def make_rows(n: int) -> tuple[list[tuple], list[tuple]]:
    rng = random.Random(7)
    wallets = [f"0x{rng.getrandbits(160):040x}" for _ in range(100_000)]
    tokens = [f"0x{rng.getrandbits(160):040x}" for _ in range(13)]
    transfers, changes = [], []
    for i in range(n):
        block, index = 1 + i // 2_500, i % 2_500
        token, src, dst = tokens[i % 13], rng.choice(wallets), rng.choice(wallets)
        amount = rng.getrandbits(64)
        transfers.append((31337, block, index, f"0x{rng.getrandbits(256):064x}", token, src, dst, amount))
        changes.append((31337, token, src, block, index, -amount, rng.getrandbits(70)))
        changes.append((31337, token, dst, block, index, amount, rng.getrandbits(70)))
    return transfers, changes


def fresh(folder: Path, name: str):
    url = f"sqlite:///{folder / name}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        indexes.set_aside(conn)
    return engine


def insert_multirow(engine, transfers: list[tuple]) -> float:
    with engine.begin() as conn:
        started = time.perf_counter()
        insert_rows(conn, m.Transfer.__table__, TRANSFER_COLS, transfers, new=True, ordered=True)
        return time.perf_counter() - started


def insert_executemany(engine, transfers: list[tuple]) -> float:
    table = m.Transfer.__table__
    sql = (f"INSERT INTO transfers ({', '.join(TRANSFER_COLS)}) VALUES ({', '.join('?' * len(TRANSFER_COLS))}) "
           "ON CONFLICT DO NOTHING")
    with engine.begin() as conn:
        _tune_for_bulk(conn)
        started = time.perf_counter()
        for i in range(0, len(transfers), 50_000):  # the same 50,000-row encoding chunks as insert_rows
            conn.exec_driver_sql(sql, _encoded(conn, table, TRANSFER_COLS, transfers[i:i + 50_000]))
        return time.perf_counter() - started


def build_sorted_runs(engine) -> float:
    with engine.begin() as conn:
        _tune_for_bulk(conn)
        started = time.perf_counter()
        indexes.restore(conn)
        return time.perf_counter() - started


def build_one_list(engine) -> float:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        conn.exec_driver_sql("PRAGMA threads = 0")
        started = time.perf_counter()
        for ix in indexes.missing(conn):
            ix.create(conn)
        return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="transfers rows (balance changes: twice as many)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    transfers, changes = make_rows(args.rows)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_sqlite_writes_") as tmp:
        folder = Path(tmp)
        for run in range(args.repeat):
            for (ins, insert), (ix, build) in ((("multirow", insert_multirow), ("runs", build_sorted_runs)),
                                               (("executemany", insert_executemany), ("one list", build_one_list))):
                engine = fresh(folder, f"{ins}_{run}.sqlite")
                seconds = insert(engine, transfers)
                best[ins] = min(best.get(ins, seconds), seconds)
                with engine.begin() as conn:
                    insert_rows(conn, m.BalanceChange.__table__, CHANGE_COLS, changes, new=True)
                seconds = build(engine)
                best[ix] = min(best.get(ix, seconds), seconds)
                engine.dispose()
                (folder / f"{ins}_{run}.sqlite").unlink()
    n = len(transfers)
    print(f"{n:,} transfers rows, {len(changes):,} balance changes; best of {args.repeat}")
    print(f"insert transfers: multi-row statements {best['multirow']:.2f} s ({n / best['multirow']:,.0f} rows/s), "
          f"executemany {best['executemany']:.2f} s ({n / best['executemany']:,.0f} rows/s): "
          f"{best['executemany'] / best['multirow']:.2f}x")
    print(f"build the six set-aside indexes: sorted runs (8 MiB cache, 2 sorter threads) {best['runs']:.2f} s, "
          f"one list (256 MiB cache, no sorter thread) {best['one list']:.2f} s: {best['one list'] / best['runs']:.2f}x")


if __name__ == "__main__":
    main()
