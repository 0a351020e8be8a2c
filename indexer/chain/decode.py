"""Pure decoding of raw `eth_getLogs` entries (topics and data) into typed records. No I/O.

The hot path (Transfer, TransferShares) reads addresses straight out of the topics and the amount
out of the data word: no ABI machinery per log. Rarer events go through eth-abi.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from eth_abi import decode as abi_decode

from indexer.chain.abi import load_abi

ZERO_ADDRESS = "0x" + "00" * 20


def _topic(contract: str, event: str) -> str:
    return load_abi(contract).event(event).topic0


TRANSFER = _topic("UiMultiplierStock", "Transfer")
TRANSFER_SHARES = _topic("RebasingSharesStock", "TransferShares")
PAUSED = _topic("UiMultiplierStock", "Paused")
UNPAUSED = _topic("UiMultiplierStock", "Unpaused")
UI_MULTIPLIER_UPDATED = _topic("UiMultiplierStock", "UIMultiplierUpdated")
ADDRESS_FROZEN = _topic("UiMultiplierStock", "AddressFrozen")
MULTIPLIER_SCHEDULED = _topic("RebasingSharesStock", "MultiplierScheduled")
FEE_PER_PERIOD_UPDATED = _topic("RebasingSharesStock", "FeePerPeriodUpdated")
PERIOD_LENGTH_UPDATED = _topic("RebasingSharesStock", "PeriodLengthUpdated")
NEW_SANCTIONS_LIST = _topic("RebasingSharesStock", "NewSanctionsList")
SANCTIONED_ADDED = _topic("SanctionsList", "SanctionedAddressesAdded")
SANCTIONED_REMOVED = _topic("SanctionsList", "SanctionedAddressesRemoved")

# Events other than transfers: name and the types of their data words (indexed ones come from topics).
_OTHER = {
    PAUSED: ("Paused", ("address",), ()),
    UNPAUSED: ("Unpaused", ("address",), ()),
    UI_MULTIPLIER_UPDATED: ("UIMultiplierUpdated", ("uint256", "uint256", "uint256", "uint256"), ()),
    ADDRESS_FROZEN: ("AddressFrozen", (), ("address", "bool", "address")),
    MULTIPLIER_SCHEDULED: ("MultiplierScheduled", ("uint256", "uint256"), ()),
    FEE_PER_PERIOD_UPDATED: ("FeePerPeriodUpdated", ("uint256",), ()),
    PERIOD_LENGTH_UPDATED: ("PeriodLengthUpdated", ("uint256",), ()),
    NEW_SANCTIONS_LIST: ("NewSanctionsList", ("address",), ()),
    SANCTIONED_ADDED: ("SanctionedAddressesAdded", ("address[]",), ()),
    SANCTIONED_REMOVED: ("SanctionedAddressesRemoved", ("address[]",), ()),
}
_ARG_NAMES = {
    "Paused": ("account",),
    "Unpaused": ("account",),
    "UIMultiplierUpdated": ("old_multiplier", "new_multiplier", "set_at", "effective_at"),
    "AddressFrozen": ("wallet", "frozen", "owner"),
    "MultiplierScheduled": ("new_multiplier", "activation_time"),
    "FeePerPeriodUpdated": ("value",),
    "PeriodLengthUpdated": ("value",),
    "NewSanctionsList": ("sanctions_list",),
    "SanctionedAddressesAdded": ("wallets",),
    "SanctionedAddressesRemoved": ("wallets",),
}

TOPICS = [TRANSFER, TRANSFER_SHARES, *_OTHER]


@dataclass(frozen=True, slots=True)
class TransferRecord:
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


@dataclass
class DecodedLogs:
    transfers: list[TransferRecord] = field(default_factory=list)
    share_transfers: list[TransferRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    skipped: int = 0  # logs of topics the indexer does not use

    def block_hashes(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for rec in (*self.transfers, *self.share_transfers, *self.events):
            out[rec.block_number] = rec.block_hash
        return out


def _addr(topic: str) -> str:
    return "0x" + topic[-40:]


def decode_logs(logs: list[dict]) -> DecodedLogs:
    """Decode raw logs (as the node returned them) in their order; removed logs are refused."""
    out = DecodedLogs()
    transfers, shares = out.transfers, out.share_transfers
    for lg in logs:
        if lg.get("removed"):
            raise ValueError(f"log {lg.get('transactionHash')}#{lg.get('logIndex')} is marked removed")
        topics = lg["topics"]
        if not topics:
            out.skipped += 1
            continue
        t0 = topics[0]
        if t0 in (TRANSFER, TRANSFER_SHARES):
            if len(topics) != 3:  # an ERC-721-style Transfer or a malformed log: not ours
                out.skipped += 1
                continue
            rec = TransferRecord(
                int(lg["blockNumber"], 16), int(lg["logIndex"], 16), lg["transactionHash"], lg["blockHash"],
                lg["address"].lower(), _addr(topics[1]), _addr(topics[2]), int(lg["data"], 16),
            )
            (transfers if t0 == TRANSFER else shares).append(rec)
            continue
        spec = _OTHER.get(t0)
        if spec is None:
            out.skipped += 1
            continue
        name, data_types, indexed_types = spec
        values: list = []
        for typ, topic in zip(indexed_types, topics[1:], strict=False):
            word = bytes.fromhex(topic[2:])
            values.append(abi_decode([typ], word)[0])
        if data_types:
            values += list(abi_decode(list(data_types), bytes.fromhex(lg["data"][2:])))
        args = {}
        for key, v in zip(_ARG_NAMES[name], values, strict=True):
            if isinstance(v, str) and v.startswith("0x"):
                v = v.lower()
            elif isinstance(v, tuple):
                v = [x.lower() for x in v]
            args[key] = v
        out.events.append(EventRecord(int(lg["blockNumber"], 16), int(lg["logIndex"], 16), lg["transactionHash"],
                                      lg["blockHash"], lg["address"].lower(), name, args))
    return out
