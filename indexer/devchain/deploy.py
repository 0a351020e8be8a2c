"""Deploy the demo world's contracts on a dev chain and play the world's blocks into it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode

from indexer.chain.abi import TOKEN_CONTRACT
from indexer.chain.rpc import RpcClient
from indexer.devchain.anvil import GAS_LIMIT
from indexer.devchain.checkout import load_artifact
from indexer.devchain.specs import (
    CRYPTO,
    PRICE_DECIMALS,
    RESERVE_DECIMALS,
    TOKENS,
    Scale,
    Timeline,
)
from indexer.devchain.world import BlockPlan, Deployment, Tx, WorldSim, price_feed_name, reserve_feed_name
from indexer.errors import DevchainError
from indexer.types import Accounting

log = logging.getLogger(__name__)

MULTICALL3_ADDRESS = "0xca11bde05977b3631167028862be2a173976ca11"
FEED_PHASE_ID = 1  # round ids look like a Chainlink proxy's: (phase << 64) | aggregator round
FEED_VERSION = 4


@dataclass
class ChainWriter:
    """Sends planned transactions with explicit nonces and mines blocks at chosen timestamps."""

    rpc: RpcClient
    nonces: dict[str, int] = field(default_factory=dict)
    sent: int = 0

    def nonce(self, sender: str) -> int:
        sender = sender.lower()
        if sender not in self.nonces:
            self.nonces[sender] = int(self.rpc.call("eth_getTransactionCount", [sender, "pending"]), 16)
        n = self.nonces[sender]
        self.nonces[sender] = n + 1
        return n

    def send_all(self, txs: list[Tx]) -> list[str]:
        calls = []
        for tx in txs:
            fields = {"from": tx.sender, "data": tx.data, "gas": hex(tx.gas), "gasPrice": "0x0",
                      "nonce": hex(self.nonce(tx.sender))}
            if tx.to is not None:
                fields["to"] = tx.to
            calls.append(("eth_sendTransaction", [fields]))
        hashes: list[str] = []
        chunk: list = []
        size = 0
        for call in calls:  # anvil refuses request bodies of a few MB: keep each batch well under
            chunk.append(call)
            size += len(call[1][0]["data"])
            if len(chunk) >= 500 or size > 1_000_000:
                hashes += self.rpc.batch(chunk)
                chunk, size = [], 0
        if chunk:
            hashes += self.rpc.batch(chunk)
        self.sent += len(txs)
        return hashes

    def mine(self, timestamp: int) -> int:
        self.rpc.call("evm_mine", [timestamp])
        return int(self.rpc.call("eth_blockNumber"), 16)

    def check_block(self, number: int, expected: int) -> None:
        receipts = self.rpc.call("eth_getBlockReceipts", [hex(number)]) or []
        if len(receipts) != expected:
            raise DevchainError(f"block {number} holds {len(receipts)} transactions, {expected} were sent")
        failed = [r for r in receipts if r.get("status") != "0x1"]
        if failed:
            r = failed[0]
            raise DevchainError(
                f"world transaction reverted in block {number}: tx {r['transactionHash']} to {r.get('to')}"
            )

    def deploy(self, sender: str, name: str, types: list[str], args: list[Any]) -> Tx:
        artifact = load_artifact(name)
        data = artifact["bytecode"] + encode(types, args).hex()
        return Tx(sender, None, data, 12_000_000)


def deploy_world(rpc: RpcClient, deployed_at: int) -> Deployment:
    """Deploy every contract in one block at `deployed_at`, and Multicall3 at its canonical address."""
    accounts = [a.lower() for a in rpc.call("eth_accounts")]
    if len(accounts) < 2:
        raise DevchainError("the dev chain exposes fewer than two unlocked accounts")
    issuer, updater = accounts[0], accounts[1]
    w = ChainWriter(rpc)
    rpc.call("evm_setAutomine", [False])
    # the sanctions list address is needed by rebasing tokens: deploy it first, alone
    hashes = w.send_all([w.deploy(issuer, "SanctionsList", ["address"], [issuer])])
    w.mine(deployed_at - 1)
    sanctions = _receipt_address(rpc, hashes[0])
    plan: list[tuple[str, str, Tx]] = []
    for spec in TOKENS:
        name = TOKEN_CONTRACT[spec.accounting]
        if spec.accounting == Accounting.REBASING_SHARES:
            tx = w.deploy(issuer, name,
                          ["string", "string", "uint8", "string", "string", "address", "address", "uint256", "uint256"],
                          [spec.name, spec.symbol, spec.decimals, spec.underlying, spec.isin, issuer, sanctions,
                           spec.fee_per_period, spec.period_length])
        elif spec.accounting == Accounting.UI_MULTIPLIER:
            tx = w.deploy(issuer, name, ["string", "string", "uint8", "string", "string", "address"],
                          [spec.name, spec.symbol, spec.decimals, spec.underlying, spec.isin, issuer])
        else:
            tx = w.deploy(issuer, name, ["string", "string", "uint8", "address"],
                          [spec.name, spec.symbol, spec.decimals, issuer])
        plan.append(("token", spec.symbol, tx))
    feed_types = ["uint8", "string", "uint256", "uint16", "address"]
    for spec in TOKENS:
        feed = price_feed_name(spec)
        plan.append(("price", feed, w.deploy(issuer, "PriceFeed", feed_types,
                                             [PRICE_DECIMALS, feed, FEED_VERSION, FEED_PHASE_ID, updater])))
        if spec.has_reserve_feed:
            por = reserve_feed_name(spec.symbol)
            plan.append(("reserve", spec.symbol, w.deploy(
                issuer, "PriceFeed", feed_types, [RESERVE_DECIMALS, por, FEED_VERSION, FEED_PHASE_ID, updater])))
    for c in CRYPTO:
        plan.append(("price", c.pair, w.deploy(issuer, "PriceFeed", feed_types,
                                               [PRICE_DECIMALS, c.pair, FEED_VERSION, FEED_PHASE_ID, updater])))
    hashes = w.send_all([tx for _, _, tx in plan])
    w.mine(deployed_at)
    tokens: dict[str, str] = {}
    prices: dict[str, str] = {}
    reserves: dict[str, str] = {}
    receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    for (kind, key, _), receipt in zip(plan, receipts, strict=True):
        if receipt is None or receipt.get("status") != "0x1" or not receipt.get("contractAddress"):
            raise DevchainError(f"deploying {kind} {key} failed: {receipt!r:.300}")
        address = receipt["contractAddress"].lower()
        {"token": tokens, "price": prices, "reserve": reserves}[kind][key] = address
    multicall = load_artifact("Multicall3")["deployedBytecode"]
    rpc.call("anvil_setCode", [MULTICALL3_ADDRESS, multicall])
    return Deployment(issuer, updater, sanctions, tokens, prices, reserves, deployed_at)


def _receipt_address(rpc: RpcClient, tx_hash: str) -> str:
    receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
    if receipt is None or receipt.get("status") != "0x1":
        raise DevchainError(f"deployment {tx_hash} failed: {receipt!r:.300}")
    return receipt["contractAddress"].lower()


@dataclass
class BuildReport:
    deployment_block: int
    head_block: int
    blocks: int
    transactions: int
    transfers: int
    seconds: float
    events: list[dict[str, Any]]


def play_world(
    rpc: RpcClient,
    sim: WorldSim,
    *,
    deployment_block: int,
    progress: Callable[[int, int], None] | None = None,
    check_every: int = 1,
) -> BuildReport:
    """Mine the initial distribution and every planned block; verify each block's receipts."""
    started = time.monotonic()
    writer = ChainWriter(rpc)
    events: list[dict[str, Any]] = []
    rpc.call("evm_setAutomine", [False])
    mint_time = sim.tl.start - 1_800
    mint_txs = sim.initial_mints(mint_time)
    # the initial distribution can exceed one block's gas: spread it over consecutive blocks
    blocks: list[list[Tx]] = [[]]
    gas = 0
    for tx in mint_txs:
        if gas + tx.gas > GAS_LIMIT * 0.9 and blocks[-1]:
            blocks.append([])
            gas = 0
        blocks[-1].append(tx)
        gas += tx.gas
    for k, txs in enumerate(blocks):
        writer.send_all(txs)
        n = writer.mine(mint_time - (len(blocks) - 1 - k))
        writer.check_block(n, len(txs))
    times = sim.block_times()
    for i, t in enumerate(times):
        plan: BlockPlan = sim.next_block(t)
        writer.send_all(plan.txs)
        n = writer.mine(t)
        if check_every and i % check_every == 0:
            writer.check_block(n, len(plan.txs))
        for ev in plan.events:
            events.append({**ev, "block": n})
        if progress is not None and (i % 50 == 0 or i == len(times) - 1):
            progress(i + 1, len(times))
    return BuildReport(
        deployment_block=deployment_block,
        head_block=n,
        blocks=len(times) + 1,
        transactions=writer.sent,
        transfers=sim.transfers_planned,
        seconds=time.monotonic() - started,
        events=events,
    )


def build_world(
    rpc: RpcClient,
    *,
    seed: int,
    scale: Scale,
    timeline: Timeline,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[WorldSim, BuildReport]:
    deployed_at = timeline.start - 7_200
    dep = deploy_world(rpc, deployed_at)
    deployment_block = int(rpc.call("eth_blockNumber"), 16) - 1  # the sanctions list's block
    sim = WorldSim(seed, scale, timeline, dep)
    report = play_world(rpc, sim, deployment_block=deployment_block, progress=progress)
    rpc.call("evm_setAutomine", [True])
    return sim, report
