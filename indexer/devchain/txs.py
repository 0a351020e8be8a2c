"""A world transaction and the writer that sends them to the dev chain: the bottom of `indexer/devchain/`, so
that the world's simulation (`world.py`, `pools.py`), the deployment (`deploy.py`) and the Uniswap helpers
(`uniswap.py`) share them without importing each other. `world.Tx` and `deploy.ChainWriter` are these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode

from indexer.chain.rpc import RpcClient
from indexer.devchain.checkout import load_artifact
from indexer.errors import DevchainError


@dataclass
class Tx:
    sender: str
    to: str | None  # None creates a contract
    data: str
    gas: int


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
