"""Bench: wallet lookup latency on PostgreSQL with the `bench` world synced (issue: service and user surfaces).

Target: p50 under 20 ms and p99 under 100 ms per wallet from a warm process, on >= 100,000 wallets and
>= 1M balance changes; EXPLAIN shows index use for every view a lookup touches.

    .venv/bin/python bench/bench_lookup.py [--attach STATE_DIR/manifest.toml] [--database-url URL] [--sample 2000]

Without --attach it builds the `bench` world (seed 7, about 7.5 minutes) on a fresh anvil. It syncs the
world into a new PostgreSQL database (`bench_lookup_<random>`, dropped at the end unless
--database-url names an existing, already synced one), loads the world's off-chain book, stores one
risk run, then, in the same process:
- the lookup: `indexer.lookup.lookup_wallet` for a random sample of wallets, one at a time, after a
  warm-up; p50, p90, p99 and max;
- the baseline: the same lookups with PostgreSQL's index scans switched off (what the lookup would
  cost without the indexes the schema and migration 0003 create), on a smaller sample;
- EXPLAIN of `SELECT * FROM <view> WHERE wallet = :w` for each view a lookup touches (and the lookup's
  own queries), with the index each plan uses.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.chain.rpc import RpcClient  # noqa: E402
from indexer.config import load_settings  # noqa: E402
from indexer.devchain.anvil import free_port  # noqa: E402
from indexer.devchain.book import write_book  # noqa: E402
from indexer.devchain.chain import start_devchain  # noqa: E402
from indexer.devchain.live import load_sim  # noqa: E402
from indexer.lookup import find_run, lookup_wallet  # noqa: E402
from indexer.offchain import load_files  # noqa: E402
from indexer.runs.job import run_and_store  # noqa: E402
from indexer.store import models as m  # noqa: E402
from indexer.store.engine import open_store  # noqa: E402
from indexer.sync.startup import prepare  # noqa: E402
from indexer.sync.tick import sync  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
VIEWS = ("wallet_margin", "wallet_collateral", "holders")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def time_lookups(conn, cid: int, run, wallets: list[str]) -> list[float]:
    out = []
    for w in wallets:
        t0 = time.perf_counter()
        doc = lookup_wallet(conn, cid, run, w)
        out.append((time.perf_counter() - t0) * 1000)
        assert doc["found"], w
    return out


def explain(conn, sql: str, wallet: str) -> tuple[str, list[str]]:
    plan = [r[0] for r in conn.execute(text("EXPLAIN " + sql), {"w": wallet})]
    indexes = sorted({line.split(" on ")[0].split("using ")[-1].strip() for line in plan if " using " in line.lower()}
                     | {part.split(" on ")[0].strip().split()[-1] for line in plan for part in [line]
                        if "Index Cond" not in line and "Bitmap Index Scan on" in line})
    return "\n".join(plan), indexes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attach", type=Path, help="manifest of a running bench dev chain")
    ap.add_argument("--database-url", help="an already synced PostgreSQL database (kept)")
    ap.add_argument("--sample", type=int, default=2_000)
    ap.add_argument("--baseline-sample", type=int, default=100)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    chain = None
    manifest = args.attach
    if manifest is None:
        print("building the bench world (about 7.5 minutes) ...", flush=True)
        chain = start_devchain(port=free_port(), state_dir=Path(tmp.name) / "chain", seed=7, scale="bench")
        manifest = chain.manifest_path
    name = None
    url = args.database_url
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    if url is None:
        name = f"bench_lookup_{uuid.uuid4().hex[:10]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        settings = load_settings(manifest, database_url=url)
        cid = settings.chain.chain_id
        engine = open_store(settings)
        rpc = RpcClient(settings.chain.rpc_urls, timeout=300)
        t0 = time.perf_counter()
        sync(engine, prepare(settings, rpc))
        print(f"synced in {time.perf_counter() - t0:.1f} s", flush=True)
        book = {k: settings.world.get(f"{k}_csv") for k in ("accounts", "positions")}
        if not all(book.values()) or not all(Path(p).exists() for p in book.values()):
            accounts, positions = write_book(load_sim(manifest.parent), Path(tmp.name))
            book = {"accounts": accounts, "positions": positions}
        print("book:", load_files(engine, settings, **book), flush=True)
        with engine.connect() as conn:
            has_run = conn.execute(select(func.count()).select_from(m.RiskRunRecord)).scalar()
        if not has_run:
            t0 = time.perf_counter()
            s = run_and_store(engine, cid, settings.policy_path)
            print(f"risk run {s.run_id}: {s.wallets:,} wallets, {s.holdings:,} holdings in "
                  f"{time.perf_counter() - t0:.1f} s (load {s.load_s:.1f}, run {s.compute_s:.2f}, write {s.write_s:.1f})")
        with engine.connect() as conn:
            n_changes = conn.execute(select(func.count()).select_from(m.BalanceChange)).scalar()
            n_transfers = conn.execute(select(func.count()).select_from(m.Transfer)).scalar()
            run = find_run(conn, cid)
            wallets = conn.execute(select(m.RiskWallet.wallet).where(m.RiskWallet.run_id == run.id)).scalars().all()
            rng = random.Random(7)
            sample = rng.sample(wallets, min(args.sample, len(wallets)))
            time_lookups(conn, cid, run, sample[:200])  # warm-up: plans cached, connection warm
            ms = time_lookups(conn, cid, run, sample)
            conn.execute(text("SET enable_indexscan = off"))
            conn.execute(text("SET enable_bitmapscan = off"))
            base_ms = time_lookups(conn, cid, run, sample[: args.baseline_sample])
            conn.execute(text("RESET enable_indexscan"))
            conn.execute(text("RESET enable_bitmapscan"))
            print(f"\nworld: {len(wallets):,} wallets in run {run.id} (block {run.block_number}), "
                  f"{n_changes:,} balance changes, {n_transfers:,} transfers")
            print(f"lookup, {len(ms):,} wallets one at a time (warm): p50 {percentile(ms, .5):.2f} ms, "
                  f"p90 {percentile(ms, .9):.2f} ms, p99 {percentile(ms, .99):.2f} ms, max {max(ms):.2f} ms, "
                  f"mean {statistics.mean(ms):.2f} ms   (targets: p50 < 20 ms, p99 < 100 ms)")
            print(f"baseline without index scans, {len(base_ms)} wallets: p50 {percentile(base_ms, .5):.1f} ms, "
                  f"p99 {percentile(base_ms, .99):.1f} ms")
            print(f"ratio (p50 baseline / p50 lookup): {percentile(base_ms, .5) / percentile(ms, .5):.0f}x\n")
            w = sample[0]
            queries = {f"view {v}": f"SELECT * FROM {v} WHERE wallet = :w" for v in VIEWS}
            queries["lookup: risk_holdings"] = (f"SELECT * FROM risk_holdings WHERE run_id = {run.id} AND wallet = :w")
            queries["lookup: risk_wallets"] = (f"SELECT * FROM risk_wallets WHERE run_id = {run.id} AND wallet = :w")
            queries["lookup: positions"] = "SELECT * FROM positions WHERE wallet = :w"
            queries["lookup: balances"] = "SELECT count(*) FROM balances WHERE wallet = :w"
            for label, sql in queries.items():
                plan, _ = explain(conn, sql, w)
                uses = [line.strip() for line in plan.splitlines() if "Index" in line and "Cond" not in line]
                print(f"EXPLAIN {label}: " + ("; ".join(uses) if uses else "NO INDEX"))
                if label == "view wallet_margin":
                    print("  " + plan.replace("\n", "\n  "))
        engine.dispose()
        rpc.close()
    finally:
        if name is not None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if chain is not None:
            chain.node.stop(remove_state=True)
        tmp.cleanup()


if __name__ == "__main__":
    main()
