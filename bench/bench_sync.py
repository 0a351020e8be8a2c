"""Bench: sync throughput of the backfill on the `bench` world (issue 8).

Targets (issue: sync engine), on the `bench` world (>= 1M Transfer logs), on this 2-core machine:
- the limit is raw `eth_getLogs` over the whole range plus JSON parsing alone, measured in the same
  run; the end-to-end backfill (facts, derived balances, checkpoint) reaches >= 50% of it into SQLite
  and >= 30% into PostgreSQL;
- >= 10x ethereum-etl (`export_token_transfers`) and >= half of cryo's rate (`erc20_transfers`),
  each installed by this script in its own venv and run on the same range in the same run;
- >= 15x the naive web3 path (`contract.events.Transfer.get_logs` per range and token, one ORM insert
  per row), measured on a sample of blocks and scaled;
- peak resident memory of the backfill under 1 GB.

    .venv/bin/python bench/bench_sync.py [--attach STATE_DIR/manifest.toml] [--blocks-per-tick 2000]
                                         [--skip postgresql,naive,cryo,ethereum-etl] [--json out.json]

Without --attach it builds the `bench` world (seed 7) on a fresh anvil in a temporary folder (about
7.5 minutes) and stops it at the end. With --attach it reuses a chain started by
`collateral-indexer devchain up --scale bench --state-dir DIR --port P` (stop it with `devchain down`).

Each backfill runs in a child process (the real pipeline, as `collateral-indexer sync --once` runs
it: open_store, prepare, sync), so its peak RSS is the child's own `ru_maxrss` (from wait4). The
PostgreSQL database (127.0.0.1:5432, user postgres) is created as `bench_indexer_<random>` and dropped
at the end. The peers' venvs are cached under bench/.venvs/ (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / "bench" / ".venvs"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# The peers, each pinned to what this bench was written against, with what each needs beside it.
PEERS = {
    # cryo's Python wheel (Rust core); pyarrow only to count the rows of its parquet output, after timing.
    "cryo": ["cryo==0.3.2", "pyarrow"],
    "ethereum-etl": ["ethereum-etl==2.4.2"],
}
# ethereum-etl 2.4.2 pulls eth-abi 2.2.0, which pins parsimonious < 0.9: 0.8.1 imports inspect.getargspec,
# gone in Python 3.11; 0.10.0 (the suggestion) fails inside eth-abi's grammar (`isinstance(...,
# expressions.Optional)`: Optional is no longer a class there). 0.9.0 has neither problem: installed after it.
PEER_AFTER = {"ethereum-etl": ["parsimonious==0.9.0"]}


# ------------------------------------------------------------------------------------ helpers
def run_child(cmd: list[str], *, env: dict | None = None, timeout: float = 3600) -> tuple[int, str, str, float, int]:
    """Run `cmd`; returns (exit code, stdout, stderr, wall seconds, peak RSS in KiB of that child alone)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"), \
            seconds, usage.ru_maxrss


def result_line(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"no RESULT line in the child's output: {stdout[-2000:]}")


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min)"


# ------------------------------------------------------------------------------------ (a) the limit
def measure_limit(settings, blocks_per_tick: int) -> dict:
    """Raw eth_getLogs over the whole range with the indexer's filter and the sync's own ranges (its
    fetcher, as `prepare` makes it), one request after another, each answer parsed by orjson."""
    from indexer.chain.decode import TOPICS, TRANSFER, TRANSFER_SHARES
    from indexer.chain.rpc import RpcClient
    from indexer.sync.startup import new_fetcher, prepare

    rpc = RpcClient(settings.chain.rpc_urls, timeout=600)
    ctx = prepare(settings, rpc, max_blocks_per_tick=blocks_per_tick)
    head = int(rpc.call("eth_blockNumber"), 16)
    start = settings.chain.deployment_block
    n_logs = n_transfer = n_shares = requests = 0
    fetcher = new_fetcher()
    started = time.perf_counter()
    for lo in range(start, head + 1, blocks_per_tick):  # ranges within the sync's ticks
        for batch in fetcher.iter_logs(rpc, ctx.log_addresses, [TOPICS], lo, min(head, lo + blocks_per_tick - 1)):
            requests += 1
            n_logs += len(batch.logs)
            for lg in batch.logs:
                t0 = lg["topics"][0]
                n_transfer += t0 == TRANSFER
                n_shares += t0 == TRANSFER_SHARES
    seconds = time.perf_counter() - started
    rpc.close()
    return dict(start=start, head=head, logs=n_logs, transfer_logs=n_transfer, share_logs=n_shares,
                requests=requests, seconds=seconds, addresses=len(ctx.log_addresses))


# ------------------------------------------------------------------------------------ (b) our backfill
def child_backfill(manifest: str, url: str, blocks_per_tick: int, profile: str | None) -> None:
    """In the child process: the backfill as `collateral-indexer sync --once` runs it."""
    from sqlalchemy import func, select

    from indexer.chain.rpc import RpcClient
    from indexer.config import load_settings
    from indexer.store import models as m
    from indexer.store.engine import open_store
    from indexer.store.progress import read_checkpoint
    from indexer.sync.startup import prepare
    from indexer.sync.tick import sync

    started = time.perf_counter()
    settings = load_settings(manifest, database_url=url)
    engine = open_store(settings)
    schema_s = time.perf_counter() - started
    rpc = RpcClient(settings.chain.rpc_urls, timeout=600)
    ctx = prepare(settings, rpc, max_blocks_per_tick=blocks_per_tick)
    head = int(rpc.call("eth_blockNumber"), 16)
    ticks: list[tuple[int, int, float, int, float]] = []

    def on_tick(r) -> None:
        ticks.append((r.to_block, r.logs, r.seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      r.index_seconds))
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    sync_started, thread_cpu = time.perf_counter(), time.thread_time()
    sync(engine, ctx, to_block=head, on_tick=on_tick)
    sync_s = time.perf_counter() - sync_started
    thread_cpu = time.thread_time() - thread_cpu
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    total_s = time.perf_counter() - started
    with engine.connect() as conn:
        cp = read_checkpoint(conn, ctx.chain_id)
        counts = {model.__tablename__: conn.execute(select(func.count()).select_from(model)).scalar()
                  for model in (m.Transfer, m.ShareTransfer, m.TokenEvent, m.BalanceChange, m.Balance, m.PriceRound,
                                m.Block, m.PoolEvent, m.PoolStateRead)}
    engine.dispose()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT " + json.dumps(dict(
        sync_seconds=sync_s, main_thread_cpu_seconds=thread_cpu, total_seconds=total_s, schema_seconds=schema_s, logs=sum(t[1] for t in ticks),
        ticks=len(ticks), checkpoint=cp.block_number if cp else None, head=head, counts=counts, rss_kib=rss_kib,
        slowest_tick=max((t[2] for t in ticks), default=0.0), index_seconds=sum(t[4] for t in ticks),
        peak_kib_after_tick=[t[3] for t in ticks])), flush=True)


def backfill(manifest: Path, url: str, blocks_per_tick: int, profile: str | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-backfill", url, "--attach", str(manifest),
           "--blocks-per-tick", str(blocks_per_tick)]
    if profile:
        cmd += ["--profile", profile]
    code, out, err, wall, rss = run_child(cmd)
    if code != 0:
        raise RuntimeError(f"backfill into {url.split('://')[0]} failed ({code}): {err[-3000:]}")
    result = result_line(out)
    result.update(wall_seconds=wall, peak_rss_kib=rss)
    return result


def create_pg_database() -> str:
    from sqlalchemy import create_engine, text

    name = f"bench_indexer_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def drop_pg_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    assert name.startswith("bench_indexer_")
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# ------------------------------------------------------------------------------------ (c) the naive path
def measure_naive(settings, start: int, blocks: int, range_blocks: int, folder: Path) -> dict:
    """web3's `contract.events.Transfer.get_logs` per range and token, one ORM insert (flush) per row."""
    from sqlmodel import Session
    from web3 import Web3

    from indexer.chain.abi import ABI_DIR
    from indexer.store import models as m
    from indexer.store.engine import make_engine, upgrade

    url = f"sqlite:///{folder / 'naive.sqlite'}"
    upgrade(url)  # the same schema (and indexes) as the indexer's
    engine = make_engine(url)
    w3 = Web3(Web3.HTTPProvider(settings.chain.rpc_urls[0], request_kwargs={"timeout": 600}))
    abi = json.loads((ABI_DIR / "PlainToken.json").read_text())  # the standard ERC-20 Transfer event
    contracts = [w3.eth.contract(address=Web3.to_checksum_address(t.address), abi=abi) for t in settings.tokens]
    cid = settings.chain.chain_id
    end = start + blocks - 1
    rows = 0
    started = time.perf_counter()
    with Session(engine) as session:
        for lo in range(start, end + 1, range_blocks):
            hi = min(end, lo + range_blocks - 1)
            for contract in contracts:
                for ev in contract.events.Transfer.get_logs(from_block=lo, to_block=hi):
                    session.add(m.Transfer(
                        chain_id=cid, block_number=ev["blockNumber"], log_index=ev["logIndex"],
                        tx_hash=ev["transactionHash"].to_0x_hex(), token=ev["address"].lower(),
                        from_address=ev["args"]["from"].lower(), to_address=ev["args"]["to"].lower(),
                        amount_raw=ev["args"]["value"]))
                    session.flush()  # one INSERT per row
                    rows += 1
            session.commit()
    seconds = time.perf_counter() - started
    engine.dispose()
    return dict(start=start, end=end, transfer_logs=rows, seconds=seconds, range_blocks=range_blocks)


# ------------------------------------------------------------------------------------ (d) the peers
def peer_venv(name: str) -> tuple[Path | None, str]:
    """The peer's venv (created and pip-installed once, then reused); (None, why) when that fails."""
    VENVS.mkdir(parents=True, exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")
    venv = VENVS / name
    stamp = venv / ".installed"
    wanted = " ".join(PEERS[name] + PEER_AFTER.get(name, []))
    if stamp.exists() and stamp.read_text() == wanted:
        return venv, ""
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *PEERS[name]]]
    if name in PEER_AFTER:
        steps.append([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *PEER_AFTER[name]])
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
            return None, f"`{' '.join(cmd[2:])}` failed: {' | '.join(lines[-3:])}"
    stamp.write_text(wanted)
    return venv, ""


_CRYO = """
import glob, json, sys, time
import cryo
url, start, end, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
started = time.perf_counter()
cryo.freeze("erc20_transfers", blocks=[f"{start}:{end + 1}"], rpc=url, output_dir=out, no_verbose=True)
seconds = time.perf_counter() - started
import pyarrow.parquet as pq
rows = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(out + "/*.parquet"))
print("RESULT " + json.dumps({"seconds": seconds, "rows": rows, "files": len(glob.glob(out + "/*"))}))
"""


def measure_cryo(url: str, start: int, end: int, folder: Path) -> dict:
    venv, why = peer_venv("cryo")
    if venv is None:
        return dict(error=f"cryo could not be installed: {why}")
    out = folder / "cryo"
    out.mkdir()
    code, stdout, stderr, wall, rss = run_child([str(venv / "bin" / "python"), "-c", _CRYO, url, str(start),
                                                 str(end), str(out)])
    if code != 0:
        return dict(error=f"cryo exited with {code}: {(stderr or stdout).strip()[-600:]}")
    res = result_line(stdout)
    res.update(wall_seconds=wall, peak_rss_kib=rss, version="0.3.2")
    return res


def measure_etl(url: str, start: int, end: int, tokens: list[str], folder: Path) -> dict:
    venv, why = peer_venv("ethereum-etl")
    if venv is None:
        return dict(error=f"ethereum-etl could not be installed: {why}")
    out = folder / "token_transfers.csv"
    cmd = [str(venv / "bin" / "ethereumetl"), "export_token_transfers", "-s", str(start), "-e", str(end),
           "-p", url, "-o", str(out)]
    from eth_utils import to_checksum_address

    for t in tokens:
        cmd += ["-t", to_checksum_address(t)]  # its web3 5 refuses lowercase addresses
    code, stdout, stderr, wall, rss = run_child(cmd)
    if code != 0:
        return dict(error=f"ethereum-etl exited with {code}: {(stderr or stdout).strip()[-600:]}")
    with out.open("rb") as f:
        rows = sum(1 for _ in f) - 1
    return dict(seconds=wall, rows=rows, peak_rss_kib=rss, version="2.4.2", batch_size=100, max_workers=5)


# ------------------------------------------------------------------------------------ the run
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attach", help="manifest of a running bench chain (`devchain up --scale bench`)")
    ap.add_argument("--scale", default="bench", help="world to build when not attaching")
    ap.add_argument("--blocks-per-tick", type=int, default=2000,
                    help="sync's --blocks-per-tick (default 2000, as the CLI); the limit's requests stay within such ranges")
    ap.add_argument("--skip", default="", help="comma-separated: sqlite,postgresql,naive,cryo,ethereum-etl,pools")
    ap.add_argument("--naive-blocks", type=int, default=16, help="blocks of the naive path's sample")
    ap.add_argument("--naive-range", type=int, default=2, help="blocks per get_logs call of the naive path")
    ap.add_argument("--profile", help="write a cProfile of each backfill to PROFILE.<database>")
    ap.add_argument("--json", help="write every figure to this JSON file as well")
    ap.add_argument("--child-backfill", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_backfill:
        child_backfill(args.attach, args.child_backfill, args.blocks_per_tick, args.profile)
        return
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    with tempfile.TemporaryDirectory(prefix="bench_sync_") as tmp:
        folder = Path(tmp)
        chain = None
        if args.attach:
            manifest = Path(args.attach).resolve()
        else:
            from indexer.devchain.anvil import free_port
            from indexer.devchain.chain import start_devchain

            print(f"building the {args.scale} world (seed 7) on a fresh anvil ...", flush=True)
            t0 = time.perf_counter()
            chain = start_devchain(port=free_port(), state_dir=folder / "chain", seed=7, scale=args.scale)
            print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)
            manifest = chain.manifest_path
        try:
            report = run(manifest, args, skip, folder)
        finally:
            if chain is not None:
                chain.node.stop(remove_state=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


def measure_pools(manifest: Path, with_pools: dict, args, folder: Path) -> dict:
    """The cost of syncing the configured DEX pools: the same SQLite backfill with the manifest's [[pools]]
    left out (a copy beside it, so that its relative paths hold), against the one with them above."""
    import tomllib

    import tomli_w

    data = tomllib.loads(manifest.read_text())
    n_pools = len(data.pop("pools", []))
    bare = manifest.with_name(manifest.stem + ".no-pools.toml")
    bare.write_text(tomli_w.dumps(data))
    try:
        res = backfill(bare, f"sqlite:///{folder / 'bench-no-pools.sqlite'}", args.blocks_per_tick, None)
    finally:
        bare.unlink(missing_ok=True)
        for suffix in ("", "-wal", "-shm"):
            (folder / f"bench-no-pools.sqlite{suffix}").unlink(missing_ok=True)
    ratio = with_pools["sync_seconds"] / res["sync_seconds"]
    print(f"\n(e) pools: the SQLite backfill with the {n_pools} configured pools took {with_pools['sync_seconds']:.1f} s "
          f"({with_pools['counts'].get('pool_events', 0):,} pool events), without them {res['sync_seconds']:.1f} s "
          f"({res['logs']:,} logs): {ratio:.3f}x (target <= 1.20x: {'met' if ratio <= 1.2 else 'NOT met'})",
          flush=True)
    return dict(without=res, ratio=ratio, pools=n_pools)


def run(manifest: Path, args, skip: set[str], folder: Path) -> dict:
    from indexer.config import load_settings

    settings = load_settings(manifest)
    url = settings.chain.rpc_urls[0]
    report: dict = dict(blocks_per_tick=args.blocks_per_tick, load_before=os.getloadavg())
    print(f"chain {url}, {load()}", flush=True)

    lim = measure_limit(settings, args.blocks_per_tick)
    report["limit"] = lim
    start, head = lim["start"], lim["head"]
    lim_rate = rate(lim["logs"], lim["seconds"])
    print(f"\n(a) limit: eth_getLogs + orjson over blocks {start}..{head} ({head - start + 1} blocks, "
          f"{lim['requests']} requests sized by the sync's fetcher, {lim['addresses']} addresses, "
          f"{len(__import__('indexer.chain.decode', fromlist=['TOPICS']).TOPICS)} topics)")
    print(f"    {lim['logs']:,} logs ({lim['transfer_logs']:,} Transfer, {lim['share_logs']:,} TransferShares) "
          f"in {lim['seconds']:.1f} s = {lim_rate:,.0f} logs/s", flush=True)
    n_transfers = lim["transfer_logs"]

    ours: dict[str, dict] = {}
    for db in ("sqlite", "postgresql"):
        if db in skip:
            continue
        pg_name = None
        try:
            if db == "sqlite":
                db_url = f"sqlite:///{folder / 'bench.sqlite'}"
            else:
                pg_name = create_pg_database()
                db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
            res = backfill(manifest, db_url, args.blocks_per_tick, f"{args.profile}.{db}" if args.profile else None)
        finally:
            if pg_name is not None:
                drop_pg_database(pg_name)
            for suffix in ("", "-wal", "-shm"):
                (folder / f"bench.sqlite{suffix}").unlink(missing_ok=True)
        ours[db] = res
        ok = res["checkpoint"] == head and res["counts"]["transfers"] == n_transfers and res["logs"] == lim["logs"]
        r = rate(res["logs"], res["sync_seconds"])
        target = 0.5 if db == "sqlite" else 0.3
        print(f"\n(b) backfill into {db}: {res['logs']:,} logs in {res['sync_seconds']:.1f} s = {r:,.0f} logs/s "
              f"({rate(n_transfers, res['sync_seconds']):,.0f} Transfer logs/s), {res['ticks']} ticks, "
              f"slowest tick {res['slowest_tick']:.1f} s, of which building the indexes set aside "
              f"{res['index_seconds']:.1f} s")
        print(f"    with schema + prepare: {res['total_seconds']:.1f} s; child wall {res['wall_seconds']:.1f} s; "
              f"CPU of the syncing thread {res['main_thread_cpu_seconds']:.1f} s; peak RSS {res['peak_rss_kib'] / 1024:,.0f} MiB (target < 1024 MiB)")
        print(f"    rows: {res['counts']}; checks (checkpoint = head, transfers = Transfer logs): "
              f"{'ok' if ok else 'FAILED'}")
        print(f"    ratio to the limit: {r / lim_rate:.1%} (target >= {target:.0%}: "
              f"{'met' if r / lim_rate >= target else 'NOT met'})", flush=True)
    report["ours"] = ours
    best = ours.get("sqlite") or ours.get("postgresql")
    ours_tps = rate(n_transfers, best["sync_seconds"]) if best else None

    if "naive" not in skip:
        mid = start + (head - start) // 2
        nv = measure_naive(settings, mid, args.naive_blocks, args.naive_range, folder)
        report["naive"] = nv
        nrate = rate(nv["transfer_logs"], nv["seconds"])
        print(f"\n(c) naive web3 path on blocks {nv['start']}..{nv['end']} ({nv['range_blocks']} blocks per get_logs, "
              f"{len(settings.tokens)} tokens, flush per row into SQLite): {nv['transfer_logs']:,} Transfer logs "
              f"in {nv['seconds']:.1f} s = {nrate:,.0f} Transfer logs/s; scaled to {n_transfers:,}: "
              f"{n_transfers / nrate:,.0f} s")
        for db, res in ours.items():
            ratio = rate(n_transfers, res["sync_seconds"]) / nrate
            print(f"    ours ({db}) / naive: {ratio:.1f}x (target >= 15x: {'met' if ratio >= 15 else 'NOT met'})")
        print(flush=True)

    tokens = [t.address for t in settings.tokens]
    for name in ("cryo", "ethereum-etl"):
        if name in skip:
            continue
        print(f"(d) {name}: installing or reusing bench/.venvs/{name}, then running on blocks {start}..{head} ...",
              flush=True)
        res = measure_cryo(url, start, head, folder) if name == "cryo" else \
            measure_etl(url, start, head, tokens, folder)
        report[name] = res
        if "error" in res:
            print(f"    {name} did not run here: {res['error']}", flush=True)
            continue
        prate = rate(res["rows"], res["seconds"])
        print(f"    {name}: {res['rows']:,} Transfer rows in {res['seconds']:.1f} s = {prate:,.0f} Transfer logs/s "
              f"(process wall {res.get('wall_seconds', res['seconds']):.1f} s, peak RSS "
              f"{res['peak_rss_kib'] / 1024:,.0f} MiB)" + ("" if res["rows"] == n_transfers else
                                                          f"; NOTE: {n_transfers:,} Transfer logs in the range"))
        for db, ours_res in ours.items():
            ratio = rate(n_transfers, ours_res["sync_seconds"]) / prate
            goal = 0.5 if name == "cryo" else 10
            print(f"    ours ({db}) / {name}: {ratio:.2f}x (target >= {goal:g}x: {'met' if ratio >= goal else 'NOT met'})")
        print(flush=True)
    if settings.pools and "pools" not in skip and "sqlite" in ours:
        report["pools"] = measure_pools(manifest, ours["sqlite"], args, folder)
    report["load_after"] = os.getloadavg()
    print(f"done; {load()}; ours best {ours_tps:,.0f} Transfer logs/s" if ours_tps else f"done; {load()}")
    return report


if __name__ == "__main__":
    main()
