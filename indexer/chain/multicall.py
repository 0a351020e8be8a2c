"""Contract reads pinned to one block: Multicall3 `aggregate3`, or batched `eth_call` where it is missing.

Every chunk of calls goes out in one JSON-RPC batch together with the `eth_getCode` that checks
Multicall3 exists at that block, so the common case costs one HTTP request. Encoding and decoding go
straight through eth-abi.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from indexer.chain.rpc import RpcClient
from indexer.errors import ChainDataError, RpcError

MULTICALL3 = "0xca11bde05977b3631167028862be2a173976ca11"
# aggregate3((address,bool,bytes)[]) returns ((bool,bytes)[]): keccak256 of the signature, first 4 bytes.
AGGREGATE3_SELECTOR = bytes.fromhex("82ad56cb")

BlockTag = int | str


@dataclass(frozen=True)
class Call:
    """One contract read: `data` is the calldata (selector and arguments), as bytes or 0x-hex."""

    target: str
    data: bytes | str
    allow_failure: bool = True

    @property
    def calldata(self) -> bytes:
        return _to_bytes(self.data)


def read_calls(
    rpc: RpcClient,
    calls: Sequence[Call],
    block: BlockTag,
    *,
    multicall: str | None = MULTICALL3,
    chunk: int = 500,
) -> list[tuple[bool, bytes]]:
    """(success, return data) for each call, in order, all read at `block`.

    `block` is a block number (sent as hex, so the reads stay pinned to it) or a tag such as "latest".
    Through Multicall3 a failed call yields (False, its revert data); without it (`multicall=None`, or
    no code at that address at `block`) the calls go out as one batch of plain `eth_call`, and a revert
    yields (False, the revert data the node reports, or b""). A failing call with
    `allow_failure=False` raises RpcError on either path.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 (got {chunk})")
    if not calls:
        return []
    tag = _block_tag(block)
    if multicall is None:
        return _read_plain(rpc, calls, tag)
    multicall = multicall.lower()
    chunks = [calls[i : i + chunk] for i in range(0, len(calls), chunk)]
    requests = [("eth_getCode", [multicall, tag])]
    requests += [("eth_call", [{"to": multicall, "data": _encode_aggregate3(c)}, tag]) for c in chunks]
    answers = rpc.batch(requests, raise_errors=False)
    code = answers[0]
    if isinstance(code, RpcError):
        raise code
    if not code or code in ("0x", "0x0"):
        return _read_plain(rpc, calls, tag)
    out: list[tuple[bool, bytes]] = []
    for part, answer in zip(chunks, answers[1:], strict=True):
        if isinstance(answer, RpcError):
            if answer.kind == "reverted" and any(not c.allow_failure for c in part):
                raise RpcError(
                    f"aggregate3 at block {tag} reverted: a call with allow_failure=False failed ({answer})",
                    code=answer.code, kind="reverted", data=answer.data,
                ) from answer
            raise answer
        results = _decode_aggregate3(answer, multicall, tag)
        if len(results) != len(part):
            raise ChainDataError(
                f"aggregate3 at {multicall}, block {tag}: {len(results)} results for {len(part)} calls"
            )
        out.extend(results)
    return out


def _read_plain(rpc: RpcClient, calls: Sequence[Call], tag: str) -> list[tuple[bool, bytes]]:
    requests = [("eth_call", [{"to": c.target.lower(), "data": "0x" + c.calldata.hex()}, tag]) for c in calls]
    out: list[tuple[bool, bytes]] = []
    for call, answer in zip(calls, rpc.batch(requests, raise_errors=False), strict=True):
        if isinstance(answer, RpcError):
            if answer.kind != "reverted":
                raise answer
            if not call.allow_failure:
                raise RpcError(
                    f"eth_call to {call.target} at block {tag} reverted and allow_failure is False: {answer}",
                    code=answer.code, kind="reverted", data=answer.data,
                ) from answer
            out.append((False, _revert_data(answer.data)))
        else:
            out.append((True, _to_bytes(answer)))
    return out


_WORD = 32
_HEAD_OF_CALL = (0x60).to_bytes(_WORD, "big")  # offset of `bytes callData` inside one Call3 tuple
_TRUE = (1).to_bytes(_WORD, "big")
_FALSE = bytes(_WORD)


def _encode_aggregate3(calls: Sequence[Call]) -> str:
    """ABI-encode `aggregate3((address,bool,bytes)[])` by hand.

    By hand because eth-abi's per-element cost dominates a reconcile of every holder. The layout is fixed: the array's offset, its length, one offset per tuple (relative to
    the first of them), then each tuple as (address, bool, offset 0x60, length, data padded to 32 bytes).
    `test_multicall.py` checks the bytes against eth-abi.
    """
    heads, bodies = [], []
    offset = _WORD * len(calls)
    for c in calls:
        data = c.calldata
        body = b"".join((bytes(12), bytes.fromhex(c.target[2:]), _TRUE if c.allow_failure else _FALSE,
                         _HEAD_OF_CALL, len(data).to_bytes(_WORD, "big"), data, bytes(-len(data) % _WORD)))
        heads.append(offset.to_bytes(_WORD, "big"))
        offset += len(body)
        bodies.append(body)
    head = AGGREGATE3_SELECTOR + (_WORD).to_bytes(_WORD, "big") + len(calls).to_bytes(_WORD, "big")
    return "0x" + (head + b"".join(heads) + b"".join(bodies)).hex()


def _decode_aggregate3(answer: object, multicall: str, tag: str) -> list[tuple[bool, bytes]]:
    """Decode `(bool,bytes)[]` by walking its offsets; any inconsistency is an undecodable answer."""
    raw = _to_bytes(answer)
    try:
        base = int.from_bytes(raw[0:_WORD], "big")
        n = int.from_bytes(raw[base:base + _WORD], "big")
        start = base + _WORD
        out = []
        for i in range(n):
            at = start + int.from_bytes(raw[start + i * _WORD:start + (i + 1) * _WORD], "big")
            ok = int.from_bytes(raw[at:at + _WORD], "big")
            data_at = at + int.from_bytes(raw[at + _WORD:at + 2 * _WORD], "big")
            size = int.from_bytes(raw[data_at:data_at + _WORD], "big")
            data = raw[data_at + _WORD:data_at + _WORD + size]
            if ok > 1 or len(data) != size:
                raise ValueError("malformed element")
            out.append((ok == 1, data))
        if len(raw) < start + n * _WORD:
            raise ValueError("truncated")
        return out
    except (ValueError, IndexError) as exc:
        raise ChainDataError(
            f"aggregate3 at {multicall}, block {tag}: undecodable answer ({len(raw)} bytes): is it Multicall3?"
        ) from exc


def _block_tag(block: BlockTag) -> str:
    if isinstance(block, bool):
        raise TypeError("block must be a block number or a tag, not a bool")
    if isinstance(block, int):
        if block < 0:
            raise ValueError(f"block number must not be negative (got {block})")
        return hex(block)
    return block


def _revert_data(data: object) -> bytes:
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
        return _revert_data(data.get("data"))
    return b""


def _to_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
    raise ChainDataError(f"expected 0x-hex bytes, got {value!r:.100}")
