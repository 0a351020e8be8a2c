"""Bench: building the `bench` world (>= 100,000 wallets, >= 1,000,000 Transfer events) on anvil.

Target (issue: foundation): generated in under 10 minutes on this 2-core machine. Baseline, measured
in the same run: the naive path, one transaction per transfer with automine on, on a sample of
transfers, scaled to the world's transfer count.

    .venv/bin/python bench/bench_world.py [--scale bench] [--sample 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tomllib
from pathlib import Path

from indexer.chain.abi import load_abi
from indexer.chain.rpc import RpcClient
from indexer.devchain.anvil import AnvilNode, free_port
from indexer.devchain.chain import start_devchain
from indexer.devchain.deploy import ChainWriter
from indexer.devchain.world import wallet_address


def naive_transfers_per_second(sample: int) -> float:
    """One `transfer` transaction per holder-to-holder move, automine on (a block per transaction)."""
    with tempfile.TemporaryDirectory() as d:
        node = AnvilNode.start(free_port(), Path(d), prune_history=16)
        try:
            rpc = RpcClient(node.url)
            issuer = rpc.call("eth_accounts")[0].lower()
            w = ChainWriter(rpc)
            tx = w.deploy(issuer, "ScaledUiStock", ["string", "string", "uint8"], ["Bench", "BNCH", 6])
            address = wait_receipt(rpc, w.send_all([tx])[0])["contractAddress"]
            abi = load_abi("ScaledUiStock")
            holders = [wallet_address(1, i) for i in range(200)]
            rpc.call("eth_sendTransaction", [{"from": issuer, "to": address, "gasPrice": "0x0", "gas": hex(20_000_000),
                                              "data": abi.fn("batchMint").encode(holders, [10**12] * 200)}])
            started = time.perf_counter()
            for i in range(sample):
                src, dst = holders[i % 200], holders[(i * 7 + 3) % 200]
                if src == dst:
                    dst = holders[(i + 1) % 200]
                h = rpc.call("eth_sendTransaction", [{"from": src, "to": address, "gasPrice": "0x0", "gas": hex(100_000),
                                                      "data": abi.fn("transfer").encode(dst, 1000)}])
                assert h
            elapsed = time.perf_counter() - started
            return sample / elapsed
        finally:
            node.stop(remove_state=True)


def wait_receipt(rpc: RpcClient, tx_hash: str) -> dict:
    """anvil may answer null for a few milliseconds after an automined send."""
    for _ in range(500):
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        time.sleep(0.01)
    raise TimeoutError(f"no receipt for {tx_hash}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="bench")
    ap.add_argument("--sample", type=int, default=3000)
    args = ap.parse_args()

    naive_rate = naive_transfers_per_second(args.sample)
    with tempfile.TemporaryDirectory() as d:
        started = time.perf_counter()
        chain = start_devchain(port=free_port(), state_dir=Path(d), seed=7, scale=args.scale)
        seconds = time.perf_counter() - started
        world = tomllib.loads(chain.manifest_path.read_text())["world"]
        chain.node.stop(remove_state=True)
    transfers = chain.sim.transfers_planned
    wallets = chain.sim.scale.wallets
    naive_seconds = transfers / naive_rate
    print(f"world scale={args.scale}: {wallets:,} wallets, {transfers:,} Transfer events, {world['blocks']:,} blocks")
    print(f"world build (deploy + history, receipts checked): {seconds:,.1f} s = {transfers / seconds:,.0f} transfers/s")
    print(f"naive baseline (one tx per transfer, automine): {naive_rate:,.0f} transfers/s "
          f"on {args.sample:,} transfers -> {naive_seconds:,.0f} s for the same world (scaled)")
    print(f"ratio: {naive_seconds / seconds:,.1f}x faster than the naive path; target < 600 s: "
          f"{'met' if seconds < 600 else 'NOT met'}")


if __name__ == "__main__":
    main()
