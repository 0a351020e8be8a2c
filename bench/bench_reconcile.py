"""Bench: reconcile (balanceOf for every holder at one block) through Multicall3 against one eth_call per holder.

Target (issue: sync engine): >= 30x faster than one eth_call per holder, on 100,000 holders.

    .venv/bin/python bench/bench_reconcile.py [--scale small|bench] [--sample 5000]

Builds the world on a fresh anvil, then, in the same process and at the same block:
- the reconcile path: `read_calls` (Multicall3 aggregate3, chunks of 1,000 calls sent in one batch);
- the baseline: one `eth_call` HTTP request per holder, on a sample, scaled to all holders.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from indexer.chain.multicall import Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.chain.state import BALANCE_OF
from indexer.devchain.anvil import free_port
from indexer.devchain.chain import start_devchain


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="bench")
    ap.add_argument("--sample", type=int, default=5_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        chain = start_devchain(port=free_port(), state_dir=Path(d), seed=7, scale=args.scale)
        try:
            sim = chain.sim
            rpc = RpcClient(chain.url, timeout=300)
            block = int(rpc.call("eth_blockNumber"), 16)
            calls = []
            for spec in sim.specs.values():
                token = sim.dep.tokens[spec.symbol]
                calls += [Call(token, BALANCE_OF.selector + bytes(12) + bytes.fromhex(sim.wallets[w][2:])) for w in sim.holders[spec.symbol]]
            started = time.perf_counter()
            answers = read_calls(rpc, calls, block, chunk=1_000)
            multicall_s = time.perf_counter() - started
            assert all(ok for ok, _ in answers)

            sample = calls[: args.sample]
            started = time.perf_counter()
            for c in sample:
                rpc.call("eth_call", [{"to": c.target, "data": "0x" + c.calldata.hex()}, hex(block)])
            single_s = (time.perf_counter() - started) * len(calls) / len(sample)
        finally:
            chain.node.stop(remove_state=True)
    print(f"world scale={args.scale}: {len(calls):,} (token, holder) balances at block {block}")
    print(f"reconcile via Multicall3: {multicall_s:.2f} s = {len(calls) / multicall_s:,.0f} balances/s")
    print(f"one eth_call per holder: {single_s:.1f} s for all (measured on {len(sample):,}, scaled) "
          f"= {len(calls) / single_s:,.0f} balances/s")
    print(f"ratio: {single_s / multicall_s:.1f}x (target >= 30x)")


if __name__ == "__main__":
    main()
