"""A block header's logsBloom as the node builds it: the bits `bloom_bits` names for every emitter and
topic of the block's logs are exactly the header's, and `bloom_matches` says yes for the logs there and
no for an empty block (anvil, real headers)."""

from __future__ import annotations

from eth_utils import keccak

from indexer.chain.abi import load_abi
from indexer.chain.bloom import BLOOM_BYTES, bloom_bits, bloom_matches, parse_bloom
from indexer.chain.decode import TRANSFER, TRANSFER_SHARES
from indexer.devchain.deploy import ChainWriter
from indexer.devchain.world import Tx


def _bloom_of(logs: list[dict]) -> bytes:
    bits = bytearray(BLOOM_BYTES)
    for log in logs:
        for item in [log["address"], *log["topics"]]:
            for bit in bloom_bits(bytes.fromhex(item[2:])):
                bits[BLOOM_BYTES - 1 - bit // 8] |= 1 << (bit % 8)
    return bytes(bits)


def test_header_blooms_are_the_bits_of_their_logs(rpc):
    writer = ChainWriter(rpc)
    issuer = rpc.call("eth_accounts")[0].lower()
    holders = ["0x" + keccak(b"h" + bytes([i]))[-20:].hex() for i in range(12)]
    rpc.call("evm_setAutomine", [False])  # each block mined explicitly, its receipts read by block
    try:
        writer.send_all([writer.deploy(issuer, "PlainToken", ["string", "string", "uint8", "address"],
                                       ["Token", "TKN", 6, issuer])])
        rpc.call("evm_mine")
        (deployed,) = rpc.call("eth_getBlockReceipts", ["latest"])
        token = deployed["contractAddress"].lower()
        writer.send_all([Tx(issuer, token, load_abi("PlainToken").fn("batchMint").encode(
            holders, list(range(1, 13))), 3_000_000)])
        rpc.call("evm_mine")
        (receipt,) = rpc.call("eth_getBlockReceipts", ["latest"])
    finally:
        rpc.call("evm_setAutomine", [True])
    header = rpc.call("eth_getBlockByNumber", [receipt["blockNumber"], False])
    bloom = parse_bloom(header["logsBloom"])
    assert len(receipt["logs"]) == 12
    assert bloom == _bloom_of(receipt["logs"])
    assert bloom_matches(bloom, [token], [TRANSFER])
    assert bloom_matches(bloom, ["0x" + "42" * 20, token], [TRANSFER_SHARES, TRANSFER])
    assert not bloom_matches(bloom, [token], [TRANSFER_SHARES])  # no such log (these inputs give no false yes)
    rpc.call("evm_mine")
    empty = parse_bloom(rpc.call("eth_getBlockByNumber", ["latest", False])["logsBloom"])
    assert not any(empty) and not bloom_matches(empty, [token], [TRANSFER])

