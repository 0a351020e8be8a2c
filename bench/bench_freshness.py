"""Bench: freshness of the service on a live dev chain (issue: service and user surfaces).

Target: a block with a transfer reaches the `wallet_margin` view within two sync intervals.

    .venv/bin/python bench/bench_freshness.py [--interval 2] [--transfers 20] [--database-url URL]

It builds a short dev world (4 days), starts `collateral-indexer run` as a real process on SQLite (or
the given database) with the given sync interval and `risk_min_interval_s` equal to it, waits for the
backfill, then, `--transfers` times, sends a transfer of MSFT from a holder to a brand-new wallet in
its own block (at a random moment of the sync cycle) and polls `wallet_margin` every 20 ms until the
wallet appears. It prints each latency, p50 / max, and both as a multiple of the sync interval. The
baseline it compares with is the target itself: two sync intervals.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.chain.abi import load_abi  # noqa: E402
from indexer.chain.rpc import RpcClient  # noqa: E402
from indexer.config import load_settings  # noqa: E402
from indexer.devchain.anvil import free_port  # noqa: E402
from indexer.devchain.chain import short_timeline, start_devchain  # noqa: E402
from indexer.store import models as m  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--transfers", type=int, default=20)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        chain = start_devchain(port=free_port(), state_dir=Path(d) / "chain", seed=11, scale="small",
                               timeline=short_timeline(4))
        url = args.database_url or f"sqlite:///{Path(d) / 'fresh.sqlite'}"
        port = free_port()
        env = {**os.environ, "INDEXER_SERVICE__SYNC_INTERVAL_S": str(args.interval),
               "INDEXER_SERVICE__RISK_MIN_INTERVAL_S": str(args.interval)}
        proc = subprocess.Popen([sys.executable, "-m", "indexer.cli", "run", "--config", str(chain.manifest_path),
                                 "--database-url", url, "--port", str(port)], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        rpc = RpcClient(chain.url, timeout=60)
        engine = create_engine(url)
        try:
            settings = load_settings(chain.manifest_path)
            msft = next(t.address for t in settings.tokens if t.symbol == "MSFT")
            head = int(rpc.call("eth_blockNumber"), 16)

            def synced() -> int:
                try:
                    with engine.connect() as conn:
                        return conn.execute(text("SELECT max(block_number) FROM wallet_margin")).scalar() or 0
                except Exception:
                    return 0

            deadline = time.monotonic() + 180
            while synced() < head and time.monotonic() < deadline:
                time.sleep(0.5)
            with engine.connect() as conn:
                holder = conn.execute(select(m.Balance.wallet).where(m.Balance.token == msft)
                                      .order_by(m.Balance.balance_raw.desc()).limit(1)).scalar()
            fn = load_abi("PlainToken").fn("transfer")
            rpc.call("anvil_impersonateAccount", [holder])
            rpc.call("anvil_setBalance", [holder, hex(10**18)])
            rng = random.Random(3)
            latencies = []
            for i in range(args.transfers):
                time.sleep(rng.uniform(0, args.interval))  # land anywhere in the sync cycle
                newcomer = "0x" + f"{0xf0000 + i:040x}"
                rpc.call("eth_sendTransaction", [{"from": holder, "to": msft, "data": fn.encode(newcomer, 10**6),
                                                  "gas": hex(200_000)}])
                rpc.call("evm_mine", [])
                mined = time.perf_counter()
                while True:
                    with engine.connect() as conn:
                        row = conn.execute(text("SELECT block_number FROM wallet_margin WHERE wallet = :w"),
                                           {"w": newcomer}).first()
                    if row is not None:
                        latencies.append(time.perf_counter() - mined)
                        break
                    if time.perf_counter() - mined > 60:
                        raise SystemExit(f"transfer {i} did not reach wallet_margin within 60 s")
                    time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            rpc.close()
            engine.dispose()
            chain.node.stop(remove_state=True)
    print("latencies (s):", " ".join(f"{x:.2f}" for x in latencies))
    p50, worst = statistics.median(latencies), max(latencies)
    print(f"sync interval {args.interval:.1f} s; {len(latencies)} transfers, block mined -> row in wallet_margin: "
          f"p50 {p50:.2f} s ({p50 / args.interval:.2f} intervals), max {worst:.2f} s "
          f"({worst / args.interval:.2f} intervals); target: within 2 intervals ({2 * args.interval:.1f} s)")


if __name__ == "__main__":
    main()
