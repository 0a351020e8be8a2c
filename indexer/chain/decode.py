"""Pure decoding of raw `eth_getLogs` answers (topics and data) into typed records. No I/O.

The hot path (Transfer, TransferShares) reads addresses straight out of the topics and the amount
out of the data word: no ABI machinery per log. Rarer events go through eth-abi.

`decode_logs_answer` takes the node's whole JSON-RPC answer as bytes. It learns the key order of the
node's log objects from the first one and reads every log with one regular expression built for that
order, so no dict is built per log (faster than parsing the JSON first: docs/benchmarks.md). Any
answer it cannot read that way with certainty (another layout, whitespace, escapes, a count that does
not add up) is parsed as JSON instead: the result is the same either way, and tests prove it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple

import orjson
from eth_abi import decode as abi_decode
from eth_utils import keccak

ZERO_ADDRESS = "0x" + "00" * 20


def topic_of(signature: str) -> str:
    """topic0 of an event signature such as `Transfer(address,address,uint256)`."""
    return "0x" + keccak(text=signature).hex()


@dataclass(frozen=True)
class EventSpec:
    """One event the indexer stores, by its real signature. `indexed`: which parameters come in topics.
    Two specs may share a topic when deployments declare the same event with different indexed flags: the
    number of topics picks one."""

    name: str
    signature: str
    indexed: tuple[bool, ...]
    names: tuple[str, ...]

    @property
    def topic0(self) -> str:
        return topic_of(self.signature)

    @property
    def types(self) -> tuple[str, ...]:
        inner = self.signature[self.signature.index("(") + 1:-1]
        return tuple(inner.split(",")) if inner else ()

    @property
    def n_topics(self) -> int:
        return 1 + sum(self.indexed)


TRANSFER = topic_of("Transfer(address,address,uint256)")
TRANSFER_SHARES = topic_of("TransferShares(address,address,uint256)")  # Backed xStocks: shares moved

# The other events the indexer stores (token_events), with the deployments that emit them (docs/contracts.md).
EVENT_SPECS: tuple[EventSpec, ...] = (
    # Backed xStocks (BackedAutoFeeTokenImplementation): pause, multiplier folds and updates, sanctions list
    EventSpec("PauseModeChange", "PauseModeChange(bool)", (False,), ("paused",)),
    EventSpec("MultiplierUpdated", "MultiplierUpdated(uint256)", (False,), ("value",)),
    EventSpec("MultiplierScheduled", "MultiplierScheduled(uint256,uint256)", (False, False),
              ("new_multiplier", "activation_time")),
    EventSpec("MultiplierScheduleOverridden", "MultiplierScheduleOverridden(uint256,uint256,uint256,uint256)",
              (False,) * 4, ("overridden_multiplier", "overridden_activation_time", "new_multiplier",
                             "new_activation_time")),
    EventSpec("NewSanctionsList", "NewSanctionsList(address)", (True,), ("sanctions_list",)),
    EventSpec("NewSanctionsList", "NewSanctionsList(address)", (False,), ("sanctions_list",)),
    # an EIP-1967 proxy's implementation changed: the token's functions may have changed with it
    EventSpec("Upgraded", "Upgraded(address)", (True,), ("implementation",)),
    # ERC-8056: the current draft (Robinhood's stock tokens) and the early draft (four arguments)
    EventSpec("UIMultiplierUpdated", "UIMultiplierUpdated(uint256,uint256,uint256)", (False,) * 3,
              ("old_multiplier", "new_multiplier", "effective_at")),
    EventSpec("UIMultiplierUpdated", "UIMultiplierUpdated(uint256,uint256,uint256,uint256)", (False,) * 4,
              ("old_multiplier", "new_multiplier", "set_at", "effective_at")),
    EventSpec("UIMultiplierUpdateCancelled", "UIMultiplierUpdateCancelled(uint256,uint256)", (False, False),
              ("cancelled_multiplier", "cancelled_effective_at")),
    # ERC-3643 (T-REX) compliance of tokenized securities, and OpenZeppelin's Pausable
    EventSpec("AddressFrozen", "AddressFrozen(address,bool,address)", (True, True, True), ("wallet", "frozen", "owner")),
    EventSpec("AddressFrozen", "AddressFrozen(address,bool,address)", (False, False, False),
              ("wallet", "frozen", "owner")),
    EventSpec("Paused", "Paused(address)", (False,), ("account",)),
    EventSpec("Unpaused", "Unpaused(address)", (False,), ("account",)),
    # the Chainalysis sanctions oracle
    EventSpec("SanctionedAddressesAdded", "SanctionedAddressesAdded(address[])", (False,), ("wallets",)),
    EventSpec("SanctionedAddressesRemoved", "SanctionedAddressesRemoved(address[])", (False,), ("wallets",)),
)
# Uniswap v3 pools (`UniswapV3Pool` of @uniswap/v3-core 1.0.1): the events that change what a swap meets
# (pool_events; indexer/liquidity/pools.py folds them). Collect, Flash and the protocol-fee events change no
# price or liquidity and are not read.
POOL_EVENT_SPECS: tuple[EventSpec, ...] = (
    EventSpec("Initialize", "Initialize(uint160,int24)", (False, False), ("sqrt_price_x96", "tick")),
    EventSpec("Mint", "Mint(address,address,int24,int24,uint128,uint256,uint256)",
              (False, True, True, True, False, False, False),
              ("sender", "owner", "tick_lower", "tick_upper", "amount", "amount0", "amount1")),
    EventSpec("Burn", "Burn(address,int24,int24,uint128,uint256,uint256)", (True, True, True, False, False, False),
              ("owner", "tick_lower", "tick_upper", "amount", "amount0", "amount1")),
    EventSpec("Swap", "Swap(address,address,int256,int256,uint160,uint128,int24)",
              (True, True, False, False, False, False, False),
              ("sender", "recipient", "amount0", "amount1", "sqrt_price_x96", "liquidity", "tick")),
)
POOL_EVENT_NAMES = frozenset(e.name for e in POOL_EVENT_SPECS)
_SPECS: dict[tuple[str, int], EventSpec] = {(e.topic0, e.n_topics): e for e in (*EVENT_SPECS, *POOL_EVENT_SPECS)}
TOPICS = [TRANSFER, TRANSFER_SHARES, *dict.fromkeys(e.topic0 for e in (*EVENT_SPECS, *POOL_EVENT_SPECS))]


class TransferRecord(NamedTuple):
    """A Transfer or TransferShares log. A tuple: millions are made during a backfill."""

    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str
    token: str
    from_address: str
    to_address: str
    amount: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str
    contract: str
    event: str
    args: dict

    def args_json(self) -> str:
        return json.dumps({k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                           for k, v in self.args.items()}, sort_keys=True)


class Undecodable(NamedTuple):
    """A log of a topic the indexer stores that could not be read as the event it declares."""

    block_number: int
    log_index: int
    tx_hash: str
    contract: str
    topic0: str
    reason: str


@dataclass
class DecodedLogs:
    transfers: list[TransferRecord] = field(default_factory=list)
    share_transfers: list[TransferRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    skipped: int = 0  # logs of topics the indexer does not use
    undecodable: list[Undecodable] = field(default_factory=list)
    duplicates: int = 0  # logs the answer held twice (same block and log index), dropped

    def __len__(self) -> int:
        """The number of logs decoded (skipped and undecodable ones included; duplicates not)."""
        return (len(self.transfers) + len(self.share_transfers) + len(self.events) + self.skipped
                + len(self.undecodable))

    def without_duplicates(self) -> DecodedLogs:
        """The same logs with each (block, log index) once. Some providers repeat log objects within one
        answer; a log is one fact whatever its count, and a balance must move once for it."""
        keys = [r[:2] for r in self.transfers] + [r[:2] for r in self.share_transfers] + \
               [(e.block_number, e.log_index) for e in self.events] + [u[:2] for u in self.undecodable]
        if len(set(keys)) == len(keys):
            return self
        seen: set[tuple[int, int]] = set()

        def once(key: tuple[int, int]) -> bool:
            if key in seen:
                return False
            seen.add(key)
            return True

        out = DecodedLogs(skipped=self.skipped)
        out.transfers = [r for r in self.transfers if once(r[:2])]
        out.share_transfers = [r for r in self.share_transfers if once(r[:2])]
        out.events = [e for e in self.events if once((e.block_number, e.log_index))]
        out.undecodable = [u for u in self.undecodable if once(u[:2])]
        out.duplicates = self.duplicates + len(keys) - len(seen)
        return out

    def block_hashes(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for rec in (*self.transfers, *self.share_transfers, *self.events):
            out[rec.block_number] = rec.block_hash
        return out


def merge_decoded(parts: list[DecodedLogs]) -> DecodedLogs:
    """Several answers' logs as one, in log order (duplicates are left for `without_duplicates`)."""
    out = DecodedLogs(skipped=sum(p.skipped for p in parts), duplicates=sum(p.duplicates for p in parts))
    for p in parts:
        out.transfers += p.transfers
        out.share_transfers += p.share_transfers
        out.events += p.events
        out.undecodable += p.undecodable
    position = itemgetter(0, 1)
    out.transfers.sort(key=position)
    out.share_transfers.sort(key=position)
    out.events.sort(key=lambda e: (e.block_number, e.log_index))
    out.undecodable.sort(key=position)
    return out


def _addr(topic: str) -> str:
    return "0x" + topic[-40:]


_new_transfer = tuple.__new__  # TransferRecord without its Python-level __new__: the hot path


def decode_logs(logs: list[dict]) -> DecodedLogs:
    """Decode raw logs (as the node returned them, parsed) in their order; removed logs are refused."""
    out = DecodedLogs()
    for lg in logs:
        _decode_one(out, lg)
    return out


def _decode_one(out: DecodedLogs, lg: dict) -> None:
    if lg.get("removed"):
        raise ValueError(f"log {lg.get('transactionHash')}#{lg.get('logIndex')} is marked removed")
    topics = lg["topics"]
    if not topics:
        out.skipped += 1
        return
    t0 = topics[0]
    if t0 in (TRANSFER, TRANSFER_SHARES):
        if len(topics) != 3:  # an ERC-721-style Transfer or a malformed log: not ours
            out.skipped += 1
            return
        rec = _new_transfer(TransferRecord, (
            int(lg["blockNumber"], 16), int(lg["logIndex"], 16), lg["transactionHash"], lg["blockHash"],
            lg["address"].lower(), _addr(topics[1]), _addr(topics[2]), int(lg["data"], 16),
        ))
        (out.transfers if t0 == TRANSFER else out.share_transfers).append(rec)
        return
    spec = _SPECS.get((t0, len(topics)))
    if spec is None:
        if any(t0 == t for t, _ in _SPECS):  # a topic we store, with another number of topics
            out.undecodable.append(Undecodable(int(lg["blockNumber"], 16), int(lg["logIndex"], 16),
                                               lg["transactionHash"], lg["address"].lower(), t0,
                                               f"{len(topics)} topics, no known declaration has that many"))
        else:
            out.skipped += 1
        return
    try:
        args = _event_args(spec, topics, lg["data"])
    except Exception as exc:  # noqa: BLE001 - any malformed log is recorded, never raised
        out.undecodable.append(Undecodable(int(lg["blockNumber"], 16), int(lg["logIndex"], 16),
                                           lg["transactionHash"], lg["address"].lower(), t0,
                                           f"not a {spec.signature} ({type(exc).__name__}: {exc})"))
        return
    out.events.append(EventRecord(int(lg["blockNumber"], 16), int(lg["logIndex"], 16), lg["transactionHash"],
                                  lg["blockHash"], lg["address"].lower(), spec.name, args))


def _event_args(spec: EventSpec, topics: list[str], data: str) -> dict:
    """The event's arguments by name: indexed ones from the topics, the others from the data."""
    indexed = [t for t, i in zip(spec.types, spec.indexed, strict=True) if i]
    plain = [t for t, i in zip(spec.types, spec.indexed, strict=True) if not i]
    from_topics = iter(abi_decode([typ], bytes.fromhex(topic[2:]))[0] for typ, topic in zip(indexed, topics[1:],
                                                                                          strict=True))
    raw = bytes.fromhex(data[2:])
    from_data = iter(abi_decode(plain, raw, strict=False) if plain else ())
    if not plain and raw:
        raise ValueError(f"{len(raw)} bytes of data where the event has none")
    args = {}
    for key, is_indexed in zip(spec.names, spec.indexed, strict=True):
        v = next(from_topics) if is_indexed else next(from_data)
        if isinstance(v, str) and v.startswith("0x"):
            v = v.lower()
        elif isinstance(v, tuple):
            v = [x.lower() for x in v]
        args[key] = v
    return args


# ---------------------------------------------------------------------------------- the fast path
class AnswerError(ValueError):
    """The answer is not a JSON-RPC result holding a list of logs."""


# What the fast path reads of each log object, and how each key's value looks in compact JSON. The
# patterns are loose (any string); exactness comes from the count check: every object after "result"
# must match as a whole, or the answer is parsed as JSON instead. An answer with a backslash anywhere
# (a JSON escape) is parsed as JSON too, so a captured string is always the string itself.
_STRING = rb'"([^"]*)"'
_CAPTURES = {
    "address": _STRING,
    "topics": rb"\[([^\]]*)\]",
    "data": _STRING,
    "blockHash": _STRING,
    "blockNumber": _STRING,
    "transactionHash": _STRING,
    "logIndex": _STRING,
    "removed": rb"(true|false)",
}
_FIELDS = tuple(_CAPTURES)  # the order `_fast_records` unpacks
_OTHER_VALUE = rb'(?:"[^"]*"|true|false|null|-?[0-9]+)'  # keys the indexer does not read
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOPIC_WORD = 68  # '"0x' + 64 hex digits + '"'
_TRANSFER_TOPICS = 3 * _TOPIC_WORD + 2  # three topics and two commas
# where the 20-byte addresses stand in the text of three topics ('"0x' + 24 zeros + 40 hex + '"')
_FROM = slice(_TOPIC_WORD + 1 + 3 + 24, 2 * _TOPIC_WORD + 1 - 1)
_TO = slice(2 * (_TOPIC_WORD + 1) + 3 + 24, 3 * _TOPIC_WORD + 2 - 1)


@lru_cache(maxsize=16)
def _layout(keys: tuple[str, ...]) -> tuple[re.Pattern[bytes], itemgetter] | None:
    """A pattern reading one log object whose keys come in this order, and the getter that puts its
    groups in `_FIELDS` order; None when the layout lacks a field or has a key the pattern cannot hold."""
    if sorted(k for k in keys if k in _CAPTURES) != sorted(_FIELDS) or len(set(keys)) != len(keys):
        return None
    if not all(_KEY.match(k) for k in keys):
        return None
    parts, order = [], []
    for k in keys:
        if k in _CAPTURES:
            parts.append(b'"' + k.encode() + b'":' + _CAPTURES[k])
            order.append(k)
        else:
            parts.append(b'"' + k.encode() + b'":' + _OTHER_VALUE)
    pattern = re.compile(rb"\{" + b",".join(parts) + rb"\}")
    return pattern, itemgetter(*[order.index(f) for f in _FIELDS])


class RawAnswer:
    """An `eth_getLogs` answer kept as the node's bytes, to be decoded later (`decode()`), and the number
    of logs it holds (counted, not parsed). A reading thread makes these: it never holds the
    interpreter for long, so the thread that decodes and writes keeps running while it waits."""

    __slots__ = ("body", "count")

    def __init__(self, body: bytes) -> None:
        if b'"result"' not in body:
            decode_logs_answer(body)  # raises AnswerError, naming what came instead
        self.body = body
        self.count = body.count(b'"logIndex"')

    def __len__(self) -> int:
        return self.count

    def decode(self) -> DecodedLogs:
        return decode_logs_answer(self.body)

    def block_numbers(self) -> set[int]:
        """The blocks that hold a log, read off the bytes (a superset when the layout is unusual: the
        decoded logs are checked against them later)."""
        return {int(n, 16) for n in set(_BLOCK_NUMBER.findall(self.body))}


_BLOCK_NUMBER = re.compile(rb'"blockNumber"\s*:\s*"(0x[0-9a-fA-F]+)"')


def decode_logs_answer(body: bytes) -> DecodedLogs:
    """Decode a whole `eth_getLogs` JSON-RPC answer (the HTTP body); AnswerError when it holds no list."""
    fast = _decode_fast(body)
    if fast is not None:
        return fast
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AnswerError(f"not JSON: {exc}") from None
    logs = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(logs, list):
        raise AnswerError(f"expected a list of logs, got {str(answer)[:200]}")
    return decode_logs(logs)


def _decode_fast(body: bytes) -> DecodedLogs | None:
    """The answer read with one pattern for the node's layout; None to fall back to JSON parsing."""
    start = body.find(b'"result":[')
    if start < 0 or b"\\" in body:
        return None
    start += len(b'"result":[')
    if body.startswith(b"]", start):
        return DecodedLogs()
    first_end = body.find(b"}", start)
    if first_end < 0:
        return None
    try:
        first = orjson.loads(body[start:first_end + 1])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(first, dict):
        return None
    layout = _layout(tuple(first))
    if layout is None:
        return None
    pattern, fields = layout
    matches = pattern.findall(body, start)
    # every object after "result" is a log (its values hold no braces): each must have matched
    if len(matches) != body.count(b"{", start):
        return None
    try:
        return _fast_records(matches, fields)
    except UnicodeDecodeError:
        return None


def _fast_records(matches: list[tuple[bytes, ...]], fields: itemgetter) -> DecodedLogs:
    out = DecodedLogs()
    transfers, shares = out.transfers, out.share_transfers
    transfer, share_transfer = TRANSFER.encode(), TRANSFER_SHARES.encode()
    width, frm, to = _TRANSFER_TOPICS, _FROM, _TO
    new = _new_transfer
    # values many logs share are decoded once: block numbers and hashes, token addresses
    blocks: dict[bytes, int] = {}
    texts: dict[bytes, str] = {}
    for m in matches:
        address, topics, data, block_hash, block, tx, index, removed = fields(m)
        t0 = topics[1:67]
        if len(topics) == width and removed == b"false" and t0 in (transfer, share_transfer):
            number = blocks.get(block)
            if number is None:
                number = blocks[block] = int(block, 16)
            token = texts.get(address)
            if token is None:
                token = texts[address] = address.decode("ascii").lower()
            bh = texts.get(block_hash)
            if bh is None:
                bh = texts[block_hash] = block_hash.decode("ascii")
            rec = new(TransferRecord, (number, int(index, 16), tx.decode("ascii"), bh, token,
                                       "0x" + topics[frm].decode("ascii"), "0x" + topics[to].decode("ascii"),
                                       int(data, 16)))
            (transfers if t0 == transfer else shares).append(rec)
            continue
        # the rare logs (other events, other topic counts, removed ones) take the general path
        lg = {"address": address.decode("ascii"),
              "topics": [t.strip().strip(b'"').decode("ascii") for t in topics.split(b",")] if topics else [],
              "data": data.decode("ascii"), "blockHash": block_hash.decode("ascii"),
              "blockNumber": block.decode("ascii"), "transactionHash": tx.decode("ascii"),
              "logIndex": index.decode("ascii"), "removed": removed == b"true"}
        _decode_one(out, lg)
    return out
