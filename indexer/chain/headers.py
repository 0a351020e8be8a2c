"""Block headers and the head: the reads a sync plans its ranges with, and the pure rule for its target."""

from __future__ import annotations

from indexer.chain.rpc import RpcClient
from indexer.errors import ChainDataError, RpcError

HEADER_FIELDS = ("number", "hash", "parentHash", "timestamp")  # what the sync keeps of a header
BLOOM_FIELDS = (*HEADER_FIELDS, "logsBloom")  # and what it checks a page's completeness against
Confirmations = int | str  # a number of blocks, or a block tag ("safe", "finalized")


def target_block(head: int, confirmations: int) -> int:
    """The block a sync may go to: the head less the blocks it waits for."""
    return head - confirmations


def read_target(rpc: RpcClient, confirmations: Confirmations) -> int:
    """The target block on this node: `target_block` of its head, or its "safe" / "finalized" block."""
    if isinstance(confirmations, str):
        block = rpc.call("eth_getBlockByNumber", [confirmations, False])
        if block is None:
            raise ChainDataError(f"the node has no {confirmations!r} block yet")
        return int(block["number"], 16)
    return target_block(read_head(rpc), confirmations)


def read_head(rpc: RpcClient) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def read_headers(rpc: RpcClient, numbers: list[int], fields: tuple[str, ...] = HEADER_FIELDS) -> dict[int, dict]:
    """Block headers by number (the fields asked for: a block's list of transaction hashes is dropped at
    once), in batches. A block the node does not have is a `block_unavailable` RpcError: the node (or the
    backend that answered) is behind, or the chain is shorter now; the caller decides which."""
    out: dict[int, dict] = {}
    numbers = sorted(set(numbers))
    for i in range(0, len(numbers), 500):
        chunk = numbers[i:i + 500]
        for n, h in zip(chunk, rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk]), strict=True):
            if h is None:
                raise RpcError(f"eth_getBlockByNumber: the node has no block {n} (yet)", kind="block_unavailable")
            out[n] = {k: h[k] for k in fields}
    return out


def read_block_hash(rpc: RpcClient, number: int) -> str:
    """The block's hash; a `block_unavailable` RpcError when the node has no such block."""
    block = rpc.call("eth_getBlockByNumber", [hex(number), False])
    if block is None:
        raise RpcError(f"eth_getBlockByNumber: the node has no block {number} (yet)", kind="block_unavailable")
    return block["hash"]


def chain_hashes(rpc: RpcClient, numbers: list[int]) -> dict[int, str | None]:
    """{number: the chain's hash of that block now, None where the node has no such block}."""
    answers = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers]) if numbers else []
    return {n: (b["hash"] if b is not None else None) for n, b in zip(numbers, answers, strict=True)}
