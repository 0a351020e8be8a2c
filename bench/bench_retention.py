"""Bench: the storage of a stored risk run, and what `[retention]` keeps of it, on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_retention.py [--days 120] [--runs 6] [--clones 10000]

In one process, for each database:

1. Builds the small world (seed 7, 1,200 wallets; the first `--days` days of its timeline, all of it by
   default) on anvil, syncs it into a fresh SQLite file and a fresh PostgreSQL database, with its book.
2. Stores `--runs` risk runs at the synced head (`run_and_store`, as the service does) and measures what one
   run takes, per table with its indexes: SQLite from `dbstat` (the pages of each table and index),
   PostgreSQL from `pg_total_relation_size` (table, indexes, TOAST). The `risk_runs` row alone is measured
   on `--clones` copies of a thinned run's row (its notes carry the retention line).
3. Thins them with `retention.apply`, as the service's job does (transactions of `batch_rows` rows): first
   all but the newest down to their wallet rows (each is made the first run of its own hour), then down to
   their `risk_runs` row; the databases are measured after each step, SQLite's file also after VACUUM,
   PostgreSQL's relations after VACUUM and after VACUUM FULL.
4. The work and its baseline: the thin delete of a run (its holdings, positions and wallet rows) against the
   write of the same run (the risk job's write, `write_s`); the ratio printed.
5. Per day at the service's default cadence (a run every `risk_min_interval_s`, 10 s: 8,640 a day): without
   retention, and the steady state the default `[retention]` keeps, counted by `retention.kept` on a history
   of runs (every 10 s for the last three days, every 10 minutes for the 447 before).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.config import RetentionConfig, ServiceConfig  # noqa: E402
from indexer.devchain.specs import TIMELINE  # noqa: E402
from indexer.runs.job import run_and_store  # noqa: E402
from indexer.store import models as m  # noqa: E402
from indexer.store import retention  # noqa: E402
from indexer.store.progress import synced_head  # noqa: E402
from tests.runs.worlds import POLICY, synced_world  # noqa: E402

TABLES = ("risk_holdings", "risk_positions", "risk_wallets", "risk_runs")
HOUR, DAY = 3_600, 86_400
MB = 1_000_000


def table_bytes(conn) -> dict[str, int]:
    """Bytes per risk table with its indexes (PostgreSQL: and TOAST)."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text(
            "SELECT s.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master s ON s.name = d.name "
            "GROUP BY s.tbl_name")).all()
    else:
        rows = conn.execute(text("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                                 "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE n.nspname = current_schema() AND c.relkind = 'r'")).all()
    found = dict(rows)
    return {t: int(found.get(t, 0)) for t in TABLES}


def sqlite_file(engine) -> int:
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    path = engine.url.database
    return os.path.getsize(path) + (os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0)


def vacuum(engine, *, full: bool = False) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("VACUUM"))
        else:
            conn.execute(text(("VACUUM FULL " if full else "VACUUM ") + ", ".join(TABLES)))


def clone_rows(engine, run_id: int, n: int) -> None:
    cols = ", ".join(c.name for c in m.RiskRunRecord.__table__.columns if c.name != "id")
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < :n) "
                              f"INSERT INTO risk_runs ({cols}) SELECT {cols} FROM risk_runs, k WHERE id = :r"),
                         {"n": n, "r": run_id})
        else:
            conn.execute(text(f"INSERT INTO risk_runs ({cols}) SELECT {cols} FROM risk_runs, generate_series(1, :n) "
                              "WHERE id = :r"), {"n": n, "r": run_id})


def steady_state() -> tuple[dict[retention.Keep, int], float]:
    """Runs per level the default policy keeps at the default cadence, and the time `kept` took on them."""
    cadence = int(ServiceConfig().risk_min_interval_s)
    now = TIMELINE.start + 500 * DAY
    times = list(range(now - 450 * DAY, now - 3 * DAY, 600)) + list(range(now - 3 * DAY, now + 1, cadence))
    runs = [retention.StoredRun(i + 1, i + 1, t) for i, t in enumerate(times)]
    started = time.perf_counter()
    keep = retention.kept(runs, RetentionConfig(), now)
    took = time.perf_counter() - started
    counts = {k: 0 for k in retention.Keep}
    for k in keep.values():
        counts[k] += 1
    return counts, took


def measure(store, n_runs: int, n_clones: int) -> dict:
    engine, cid = store.engine, store.chain_id
    out: dict = {"kind": store.kind}
    with engine.connect() as conn:
        head_block, head = synced_head(conn, cid)
        s0 = table_bytes(conn)
    summaries = [run_and_store(engine, cid, POLICY) for _ in range(n_runs)]
    out["wallets"], out["holdings"], out["positions"] = (summaries[0].wallets, summaries[0].holdings,
                                                         summaries[0].positions)
    out["write_s"] = statistics.median(s.write_s for s in summaries)
    if store.kind == "postgresql":
        vacuum(engine)  # the visibility and free-space maps a table grows anyway
    with engine.connect() as conn:
        s1 = table_bytes(conn)
    out["per_run"] = {t: (s1[t] - s0[t]) / n_runs for t in TABLES}
    out["file_full"] = sqlite_file(engine) if store.kind == "sqlite" else None

    # each older run the first of its own hour: kept to its wallet rows for a day; the newest whole
    rr = m.RiskRunRecord.__table__
    ids = [s.run_id for s in summaries]
    with engine.begin() as conn:
        for k, run_id in enumerate(reversed(ids)):
            conn.execute(update(rr).where(rr.c.id == run_id).values(
                block_number=head_block - 2 * k, block_timestamp=head - k * HOUR))
    to_wallets = RetentionConfig(keep_last=1, hourly_hours=0, hourly_wallets_days=1, daily_days=0,
                                 daily_wallets_days=0)
    step1 = retention.apply(engine, cid, to_wallets)
    with engine.connect() as conn:
        s2 = table_bytes(conn)
    to_rows = to_wallets.model_copy(update={"hourly_wallets_days": 0.0})
    step2 = retention.apply(engine, cid, to_rows)
    assert step1.thinned == step2.thinned == n_runs - 1, (step1, step2)
    with engine.connect() as conn:
        s3 = table_bytes(conn)
    out["thin_s_per_run"] = (step1.seconds + step2.seconds) / (n_runs - 1)
    out["rows_deleted"] = sum(step1.rows_deleted.values()) + sum(step2.rows_deleted.values())
    out["transactions"] = step1.transactions + step2.transactions
    out["after_wallets"], out["after_rows"] = s2, s3
    if store.kind == "sqlite":
        out["file_thinned"] = sqlite_file(engine)
        vacuum(engine)
        out["file_vacuumed"] = sqlite_file(engine)
        with engine.connect() as conn:
            out["after_vacuum"] = table_bytes(conn)
    else:
        vacuum(engine)
        with engine.connect() as conn:
            out["after_vacuum"] = table_bytes(conn)
        vacuum(engine, full=True)
        with engine.connect() as conn:
            out["after_vacuum_full"] = table_bytes(conn)

    # the run row alone, as every thinned run keeps it (its notes with the retention line)
    with engine.connect() as conn:
        before = table_bytes(conn)["risk_runs"]
    clone_rows(engine, ids[0], n_clones)
    if store.kind == "postgresql":
        vacuum(engine)
    with engine.connect() as conn:
        out["row_bytes"] = (table_bytes(conn)["risk_runs"] - before) / n_clones
    return out


def show(r: dict, counts: dict[retention.Keep, int], runs_per_day: int) -> None:
    per = r["per_run"]
    full = per["risk_holdings"] + per["risk_positions"] + per["risk_wallets"] + r["row_bytes"]
    wallets = per["risk_wallets"] + r["row_bytes"]
    row = r["row_bytes"]
    K = retention.Keep
    kept_now = counts[K.ALL] * full + counts[K.WALLETS] * wallets
    print(f"\n== {r['kind']}: a run of {r['wallets']:,} wallets, {r['holdings']:,} holdings, "
          f"{r['positions']:,} positions")
    for t in TABLES[:3]:
        print(f"  {t:<16} {per[t] / MB:8.3f} MB per run (with its indexes)")
    print(f"  risk_runs row    {row:8.0f} bytes per run (with its index; {r['kind']} measured on copies)")
    print(f"  a whole run      {full / MB:8.3f} MB; kept to its wallet rows {wallets / MB:.3f} MB; "
          f"to its row {row:.0f} bytes")
    print(f"  per day at one run every 10 s ({runs_per_day:,} runs): without retention "
          f"{runs_per_day * full / 1e9:.2f} GB a day")
    print(f"  default [retention], steady state: {counts[K.ALL]} runs whole, {counts[K.WALLETS]} to their wallet "
          f"rows: {kept_now / 1e9:.3f} GB, plus every run's row: {runs_per_day * row / MB:.2f} MB a day "
          f"({runs_per_day * row * 365 / 1e9:.2f} GB a year)")
    print(f"  ratio, a day's growth without / with retention (steady state): "
          f"{runs_per_day * full / (runs_per_day * row):,.0f}x")
    a, b, c = r["after_wallets"], r["after_rows"], r["after_vacuum"]
    print(f"  thinned: {sum(a.values()) / MB:.2f} MB after the wallet step, {sum(b.values()) / MB:.2f} MB after "
          f"the row step, {sum(c.values()) / MB:.2f} MB after VACUUM"
          + (f", {sum(r['after_vacuum_full'].values()) / MB:.2f} MB after VACUUM FULL" if "after_vacuum_full" in r
             else "") + " (risk tables, the newest run whole)")
    if r["file_full"] is not None:
        print(f"  SQLite file: {r['file_full'] / MB:.1f} MB with the runs whole, {r['file_thinned'] / MB:.1f} MB "
              f"thinned (pages freed for reuse), {r['file_vacuumed'] / MB:.1f} MB after VACUUM")
    print(f"  work: thin delete {r['thin_s_per_run'] * 1000:.0f} ms per run ({r['rows_deleted']:,} rows in "
          f"{r['transactions']} transactions); baseline: the run's write {r['write_s'] * 1000:.0f} ms; "
          f"ratio {r['thin_s_per_run'] / r['write_s']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=TIMELINE.days, help="days of the small world's timeline")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--clones", type=int, default=10_000)
    args = ap.parse_args()
    counts, took = steady_state()
    runs_per_day = DAY // int(ServiceConfig().risk_min_interval_s)
    print(f"default policy on {sum(counts.values()):,} runs: {counts[retention.Keep.ALL]} whole, "
          f"{counts[retention.Keep.WALLETS]} to their wallet rows ({took:.2f} s for retention.kept)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, synced_world(Path(d), args.days) as (_chain, _rpc, stores):
        print(f"world built and synced in {time.perf_counter() - started:.0f} s", flush=True)
        for store in stores:
            show(measure(store, args.runs, args.clones), counts, runs_per_day)


if __name__ == "__main__":
    main()
