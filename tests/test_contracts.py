"""The demo contracts on a real EVM (anvil): tokens' multiplier models, compliance, price feed, Multicall3.

Every test deploys its own contracts on the module's shared chain and moves time only forward, so tests
do not depend on one another. Values are asserted exactly; the rebasing multiplier is checked against
`indexer.accounting`, the rule the indexer itself uses.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from indexer.accounting import (
    WAD,
    RebasingParams,
    UiMultiplierUpdate,
    balance_from_shares,
    rebasing_fold,
    rebasing_multiplier_at,
    shares_from_amount,
    ui_multiplier_at,
)
from indexer.chain.abi import ContractAbi, load_abi
from indexer.chain.rpc import RpcClient
from indexer.devchain.checkout import load_artifact
from indexer.devchain.deploy import MULTICALL3_ADDRESS, ChainWriter
from indexer.devchain.world import Tx
from indexer.errors import RpcError

ONE = WAD
DAY = 86_400
ZERO_ADDRESS = "0x" + "00" * 20
INT192_MAX = 2**191 - 1
INT192_MIN = -(2**191)
UINT32_MAX = 2**32 - 1
UINT80_MAX = 2**80 - 1

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CAROL = "0x" + "c4" * 20
DAVE = "0x" + "d5" * 20

UI_CTOR = ["string", "string", "uint8", "string", "string", "address"]
REBASING_CTOR = ["string", "string", "uint8", "string", "string", "address", "address", "uint256", "uint256"]
PLAIN_CTOR = ["string", "string", "uint8", "address"]
FEED_CTOR = ["uint8", "string", "uint256", "uint16", "address"]
PHASE = 3


# ---------------------------------------------------------------------------------------------- helpers


def revert_data(signature: str, *args: Any) -> str:
    """ABI-encoded revert data of a custom error (or Error(string)) given its signature and arguments."""
    inner = signature[signature.index("(") + 1 : -1]
    types = inner.split(",") if inner else []
    return "0x" + (keccak(text=signature)[:4] + encode(types, list(args))).hex()


def error_string(message: str) -> str:
    return revert_data("Error(string)", message)


def _norm(abi_type: str, value: Any) -> Any:
    """Addresses as lowercase hex, as the RPC node reports them."""
    if abi_type == "address":
        return value.lower()
    if abi_type == "address[]":
        return [v.lower() for v in value]
    return value


def fee_periods(m: int, fee: int, periods: int) -> int:
    """The contract's fee loop written out independently of indexer.accounting."""
    for _ in range(periods):
        m = m * (ONE - fee) // ONE
    return m


@dataclass
class Chain:
    """Sends through the project's ChainWriter (gas price 0, auto-impersonated senders) and reads via RPC."""

    rpc: RpcClient

    @cached_property
    def writer(self) -> ChainWriter:
        return ChainWriter(self.rpc)

    @cached_property
    def issuer(self) -> str:
        return self.rpc.call("eth_accounts")[0].lower()

    def block(self, tag: str | int = "latest") -> dict:
        return self.rpc.call("eth_getBlockByNumber", [tag if isinstance(tag, str) else hex(tag), False])

    def now(self) -> int:
        return int(self.block()["timestamp"], 16)

    def head(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def mine_at(self, timestamp: int) -> int:
        """Mine an empty block at exactly `timestamp`; returns its number."""
        return self.writer.mine(timestamp)

    def receipt(self, tx_hash: str) -> dict:
        # automine mines right after eth_sendTransaction answers, the receipt can lag a few ms behind
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            receipt = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return receipt
            time.sleep(0.005)
        raise AssertionError(f"no receipt for {tx_hash}")

    def send(self, tx: Tx, *, at: int | None = None) -> dict:
        """Send one transaction, mined at `at` if given; returns its receipt (status not checked)."""
        if at is not None:
            self.rpc.call("evm_setNextBlockTimestamp", [at])
        (tx_hash,) = self.writer.send_all([tx])
        receipt = self.receipt(tx_hash)
        receipt["timestamp"] = int(self.block(receipt["blockNumber"])["timestamp"], 16)
        return receipt

    def deploy(self, name: str, types: list[str], args: list[Any], *, at: int | None = None) -> Contract:
        receipt = self.send(self.writer.deploy(self.issuer, name, types, args), at=at)
        assert receipt["status"] == "0x1", f"deploying {name} failed"
        return Contract(self, name, receipt["contractAddress"].lower(), receipt["timestamp"])

    def snapshot(self) -> str:
        return self.rpc.call("evm_snapshot")

    def revert_to(self, snapshot_id: str) -> None:
        assert self.rpc.call("evm_revert", [snapshot_id]) is True
        self.writer.nonces.clear()  # the nonces sent since the snapshot were rolled back too


@dataclass
class Contract:
    chain: Chain
    name: str
    address: str
    deployed_at: int

    @property
    def abi(self) -> ContractAbi:
        return load_abi(self.name)

    def calldata(self, fn: str, *args: Any) -> str:
        return self.abi.fn(fn).encode(*args)

    def call(self, fn: str, *args: Any, sender: str | None = None, block: str | int = "latest") -> Any:
        f = self.abi.fn(fn)
        tag = block if isinstance(block, str) else hex(block)
        request = {"to": self.address, "data": f.encode(*args), **({"from": sender} if sender else {})}
        out = tuple(
            _norm(t, v)
            for t, v in zip(f.outputs, f.decode(self.chain.rpc.call("eth_call", [request, tag])), strict=True)
        )
        return out[0] if len(out) == 1 else out

    def reverts_with(self, fn: str, *args: Any, sender: str | None = None) -> str:
        """The revert data of calling `fn` (fails the test if the call succeeds)."""
        request = {"from": sender or self.chain.issuer, "to": self.address, "data": self.calldata(fn, *args)}
        try:
            result = self.chain.rpc.call("eth_call", [request, "latest"])
        except RpcError as exc:
            assert exc.kind == "reverted", exc
            return exc.data
        raise AssertionError(f"{self.name}.{fn}{args} did not revert (returned {result})")

    def transact(
        self, fn: str, *args: Any, sender: str | None = None, at: int | None = None, gas: int = 5_000_000
    ) -> dict:
        return self.chain.send(
            Tx(sender or self.chain.issuer, self.address, self.calldata(fn, *args), gas), at=at
        )

    def send(self, fn: str, *args: Any, sender: str | None = None, at: int | None = None) -> dict:
        receipt = self.transact(fn, *args, sender=sender, at=at)
        assert receipt["status"] == "0x1", f"{self.name}.{fn}{args} reverted"
        return receipt

    def decode_logs(self, logs: list[dict], name: str) -> list[dict]:
        """The `name` events this contract emitted among `logs`, fields decoded and in log order."""
        item = next(i for i in self.abi.abi if i.get("type") == "event" and i["name"] == name)
        topic0 = self.abi.event(name).topic0
        out = []
        for log in logs:
            if log["address"].lower() != self.address or log["topics"][0] != topic0:
                continue
            topics = iter(log["topics"][1:])
            data_inputs = [p for p in item["inputs"] if not p["indexed"]]
            data_values = iter(decode([p["type"] for p in data_inputs], bytes.fromhex(log["data"][2:])))
            fields = {}
            for p in item["inputs"]:
                if p["indexed"]:
                    (value,) = decode([p["type"]], bytes.fromhex(next(topics)[2:]))
                else:
                    value = next(data_values)
                fields[p["name"]] = _norm(p["type"], value)
            out.append(fields)
        return out

    def events(self, receipt: dict, name: str) -> list[dict]:
        return self.decode_logs(receipt["logs"], name)

    def logs_between(self, first_block: int, last_block: int) -> list[dict]:
        return self.chain.rpc.call(
            "eth_getLogs",
            [{"address": self.address, "fromBlock": hex(first_block), "toBlock": hex(last_block)}],
        )


@pytest.fixture(scope="module")
def chain(rpc: RpcClient) -> Chain:
    return Chain(rpc)


def deploy_ui(chain: Chain, *, at: int | None = None) -> Contract:
    return chain.deploy(
        "UiMultiplierStock",
        UI_CTOR,
        ["Tesla xStock UI", "TSLAx", 18, "TSLA", "US88160R1014", chain.issuer],
        at=at,
    )


def deploy_sanctions(chain: Chain) -> Contract:
    return chain.deploy("SanctionsList", ["address"], [chain.issuer])


def deploy_rebasing(
    chain: Chain,
    *,
    fee: int = 10**15,
    period: int = DAY,
    sanctions: str = ZERO_ADDRESS,
    at: int | None = None,
) -> Contract:
    return chain.deploy(
        "RebasingSharesStock",
        REBASING_CTOR,
        ["Apple xStock", "AAPLx", 18, "AAPL", "US0378331005", chain.issuer, sanctions, fee, period],
        at=at,
    )


def deploy_plain(chain: Chain) -> Contract:
    return chain.deploy("PlainToken", PLAIN_CTOR, ["USD Coin", "USDC", 6, chain.issuer])


def deploy_feed(chain: Chain, *, updater: str | None = None) -> Contract:
    return chain.deploy("PriceFeed", FEED_CTOR, [8, "TSLA / USD", 4, PHASE, updater or chain.issuer])


def rebasing_params(token: Contract, block: str | int = "latest") -> RebasingParams:
    """The stored state the indexer reads to evaluate the multiplier rule."""
    return RebasingParams(
        multiplier=token.call("multiplier", block=block),
        last_time_fee_applied=token.call("lastTimeFeeApplied", block=block),
        fee_per_period=token.call("feePerPeriod", block=block),
        period_length=token.call("periodLength", block=block),
        new_multiplier=token.call("newMultiplier", block=block),
        new_multiplier_activation_time=token.call("newMultiplierActivationTime", block=block),
        multiplier_nonce=token.call("multiplierNonce", block=block),
    )


def rid(n: int, phase: int = PHASE) -> int:
    """A Chainlink proxy-style round id: phase in the top bits, aggregator round in the low 64."""
    return (phase << 64) | n


# ---------------------------------------------------------------------------------------------- UI multiplier


def test_ui_token_starts_at_multiplier_one_with_nothing_scheduled(chain: Chain) -> None:
    ui = deploy_ui(chain)
    assert ui.call("uiMultiplier") == ONE
    assert ui.call("newUIMultiplier") == 0
    assert ui.call("effectiveAt") == 0
    assert (ui.call("name"), ui.call("symbol"), ui.call("decimals")) == ("Tesla xStock UI", "TSLAx", 18)
    assert (ui.call("ticker"), ui.call("isin")) == ("TSLA", "US88160R1014")
    assert ui.call("owner") == chain.issuer


def test_ui_multiplier_update_event_carries_old_new_set_and_effective_times(chain: Chain) -> None:
    ui = deploy_ui(chain)
    set_at = chain.now() + 10
    effective = set_at + 1_000
    receipt = ui.send("updateUIMultiplier", 3 * ONE, effective, at=set_at)
    assert receipt["timestamp"] == set_at
    assert ui.events(receipt, "UIMultiplierUpdated") == [
        {
            "oldMultiplier": ONE,
            "newMultiplier": 3 * ONE,
            "setAtTimestamp": set_at,
            "effectiveAtTimestamp": effective,
        }
    ]
    assert len(receipt["logs"]) == 1
    assert ui.call("newUIMultiplier") == 3 * ONE
    assert ui.call("effectiveAt") == effective


def test_ui_multiplier_takes_effect_at_its_time_without_an_event(chain: Chain) -> None:
    ui = deploy_ui(chain)
    ui.send("mint", ALICE, 100 * ONE)
    effective = chain.now() + 1_000
    scheduled = ui.send("updateUIMultiplier", 3 * ONE, effective)
    scheduled_block = int(scheduled["blockNumber"], 16)

    chain.mine_at(effective - 1)
    assert ui.call("uiMultiplier") == ONE
    assert ui.call("balanceOfUI", ALICE) == 100 * ONE

    at_effect = chain.mine_at(effective)
    assert ui.call("uiMultiplier") == 3 * ONE
    assert ui.call("balanceOf", ALICE) == 100 * ONE  # raw units never move
    assert ui.call("balanceOfUI", ALICE) == 300 * ONE
    assert ui.call("totalSupply") == 100 * ONE
    assert ui.call("totalSupplyUI") == 300 * ONE
    assert ui.call("toUIAmount", 7) == 21
    assert ui.call("fromUIAmount", 3 * ONE) == ONE
    assert ui.call("fromUIAmount", 10) == 3  # rounds down
    # nothing marks the moment the new multiplier took effect
    assert ui.logs_between(scheduled_block + 1, at_effect) == []
    # the scheduled values stay readable until the next update folds them in
    assert ui.call("newUIMultiplier") == 3 * ONE
    assert ui.call("effectiveAt") == effective


def test_ui_multiplier_update_while_one_is_pending_reverts(chain: Chain) -> None:
    ui = deploy_ui(chain)
    effective = chain.now() + 500
    ui.send("updateUIMultiplier", 2 * ONE, effective)
    assert ui.reverts_with("updateUIMultiplier", 5 * ONE, effective + 10) == revert_data(
        "UpdateAlreadyPending(uint256)", effective
    )


def test_ui_multiplier_next_update_folds_the_effective_one(chain: Chain) -> None:
    ui = deploy_ui(chain)
    first = chain.now() + 100
    ui.send("updateUIMultiplier", 3 * ONE, first)
    chain.mine_at(first + 50)
    set_at = first + 60
    receipt = ui.send("updateUIMultiplier", ONE // 2, set_at + 5, at=set_at)
    assert ui.events(receipt, "UIMultiplierUpdated") == [
        {
            "oldMultiplier": 3 * ONE,
            "newMultiplier": ONE // 2,
            "setAtTimestamp": set_at,
            "effectiveAtTimestamp": set_at + 5,
        }
    ]
    assert ui.call("uiMultiplier") == 3 * ONE  # the folded value stays in force until the new time
    chain.mine_at(set_at + 4)
    assert ui.call("uiMultiplier") == 3 * ONE
    chain.mine_at(set_at + 5)
    assert ui.call("uiMultiplier") == ONE // 2


def test_ui_multiplier_effective_at_the_current_block_applies_at_once(chain: Chain) -> None:
    ui = deploy_ui(chain)
    ui.send("mint", ALICE, 4 * ONE)
    at = chain.now() + 10
    receipt = ui.send("updateUIMultiplier", ONE // 4, at, at=at)
    assert ui.events(receipt, "UIMultiplierUpdated")[0]["effectiveAtTimestamp"] == at
    assert ui.call("uiMultiplier") == ONE // 4
    assert ui.call("balanceOfUI", ALICE) == ONE


def test_ui_multiplier_rejects_zero_and_past_effective_times(chain: Chain) -> None:
    ui = deploy_ui(chain)
    now = chain.now()
    assert ui.reverts_with("updateUIMultiplier", 0, now + 5) == revert_data("InvalidMultiplier()")
    assert ui.reverts_with("updateUIMultiplier", ONE, now - 1) == revert_data(
        "EffectiveTimeInPast(uint256,uint256)", now - 1, now
    )


def test_ui_multiplier_follows_the_python_schedule_rule_from_its_events(chain: Chain) -> None:
    ui = deploy_ui(chain)
    start = chain.now() + 10
    updates: list[UiMultiplierUpdate] = []
    schedule = [(2 * ONE, 300), (ONE // 3, 1_000), (7 * ONE, 1_010), (ONE, 5_000)]
    set_at = start
    probes: list[int] = []
    for multiplier, offset in schedule:
        receipt = ui.send("updateUIMultiplier", multiplier, start + offset, at=set_at)
        (ev,) = ui.events(receipt, "UIMultiplierUpdated")
        updates.append(
            UiMultiplierUpdate(ev["newMultiplier"], ev["effectiveAtTimestamp"], ev["setAtTimestamp"])
        )
        for t in (start + offset - 1, start + offset, start + offset + 1):
            chain.mine_at(t)
            probes.append(t)
            assert ui.call("uiMultiplier") == ui_multiplier_at(updates, t), t
        set_at = start + offset + 2
    assert probes[-1] == start + 5_001
    assert ui.call("uiMultiplier") == ONE


# ---------------------------------------------------------------------------------------------- rebasing


def test_rebasing_multiplier_matches_python_rule_across_activation_and_fee_periods(chain: Chain) -> None:
    fee, period = 10**15, DAY
    t0 = chain.now() + 10
    rb = deploy_rebasing(chain, fee=fee, period=period, at=t0)
    assert rb.call("lastTimeFeeApplied") == t0
    assert rb.call("getCurrentMultiplier") == (ONE, 0, 0)
    rb.send("mint", ALICE, 1_000 * ONE, at=t0 + 1)
    shares = rb.call("sharesOf", ALICE)
    assert shares == 1_000 * ONE

    activation = t0 + 3 * period + 500
    rb.send("scheduleMultiplier", 2 * ONE, activation, at=t0 + 2)
    params = rebasing_params(rb)
    assert params == RebasingParams(ONE, t0, fee, period, 2 * ONE, activation, 0)

    probes = [t0 + period - 1, t0 + period, t0 + 2 * period + 1, activation - 1, activation, activation + 1]
    probes += [activation + k * period + d for k in range(1, 12) for d in (-1, 0)]
    for t in probes:
        chain.mine_at(t)
        expected = rebasing_multiplier_at(params, t)
        assert rb.call("getCurrentMultiplier") == expected, t
        assert rb.call("balanceOf", ALICE) == balance_from_shares(shares, expected[0]), t
        assert rb.call("totalSupply") == balance_from_shares(shares, expected[0]), t

    # spelled out: three fee periods on the old base before activation, then the absolute value and its own
    chain.mine_at(t0 + 2_000_000)  # past all probes: 20 fee periods after activation
    n_after = (t0 + 2_000_000 - activation) // period
    assert n_after == 20
    assert rb.call("getCurrentMultiplier") == (fee_periods(2 * ONE, fee, n_after), n_after, 1 + n_after)
    m_before_activation = rebasing_multiplier_at(params, activation - 1)
    assert m_before_activation == (fee_periods(ONE, fee, 3), 3, 3)


def test_rebasing_balances_move_with_time_and_emit_no_event(chain: Chain) -> None:
    fee, period = 2 * 10**15, 3_600
    rb = deploy_rebasing(chain, fee=fee, period=period)
    minted = rb.send("mint", ALICE, 500 * ONE)
    first_block = int(minted["blockNumber"], 16) + 1
    start = rb.call("lastTimeFeeApplied")
    balances = []
    for k in range(1, 6):
        chain.mine_at(start + k * period)
        balances.append(rb.call("balanceOf", ALICE))
    assert balances == [balance_from_shares(500 * ONE, fee_periods(ONE, fee, k)) for k in range(1, 6)]
    assert len(set(balances)) == 5
    assert rb.logs_between(first_block, chain.head()) == []
    # nothing was written either: only a state-changing call folds the periods in
    assert rb.call("multiplier") == ONE
    assert rb.call("multiplierNonce") == 0


def test_rebasing_transfer_emits_transfer_and_transfer_shares_with_exact_values(chain: Chain) -> None:
    fee, period = 10**15, DAY
    t0 = chain.now() + 10
    rb = deploy_rebasing(chain, fee=fee, period=period, at=t0)
    rb.send("mint", ALICE, 1_000 * ONE, at=t0 + 1)
    receipt = rb.send("transfer", BOB, 10 * ONE, sender=ALICE, at=t0 + 3 * period + 200)
    m3 = fee_periods(ONE, fee, 3)
    moved = 10 * ONE * ONE // m3
    assert rb.events(receipt, "Transfer") == [{"from": ALICE, "to": BOB, "value": 10 * ONE}]
    assert rb.events(receipt, "TransferShares") == [{"from": ALICE, "to": BOB, "value": moved}]
    assert len(receipt["logs"]) == 2
    assert rb.call("sharesOf", BOB) == moved
    assert rb.call("sharesOf", ALICE) == 1_000 * ONE - moved
    assert rb.call("balanceOf", BOB) == moved * m3 // ONE
    # the transfer folded the three periods, keeping the period boundary
    assert rebasing_params(rb) == RebasingParams(m3, t0 + 3 * period, fee, period, 0, 0, 3)


def test_rebasing_mint_and_burn_emit_both_events(chain: Chain) -> None:
    rb = deploy_rebasing(chain, fee=0, period=0)
    receipt = rb.send("mint", ALICE, 5 * ONE)
    assert rb.events(receipt, "Transfer") == [{"from": ZERO_ADDRESS, "to": ALICE, "value": 5 * ONE}]
    assert rb.events(receipt, "TransferShares") == [{"from": ZERO_ADDRESS, "to": ALICE, "value": 5 * ONE}]
    receipt = rb.send("burn", ALICE, 2 * ONE)
    assert rb.events(receipt, "Transfer") == [{"from": ALICE, "to": ZERO_ADDRESS, "value": 2 * ONE}]
    assert rb.events(receipt, "TransferShares") == [{"from": ALICE, "to": ZERO_ADDRESS, "value": 2 * ONE}]
    assert (rb.call("totalShares"), rb.call("totalSupply"), rb.call("balanceOf", ALICE)) == (3 * ONE,) * 3


def test_rebasing_transfer_shares_moves_exact_shares(chain: Chain) -> None:
    rb = deploy_rebasing(chain, fee=0, period=0)
    rb.send("mint", ALICE, 10 * ONE)
    rb.send("scheduleMultiplier", 3 * ONE, chain.now() + 10)
    chain.mine_at(chain.now() + 10)
    receipt = rb.send("transferShares", BOB, ONE + 1, sender=ALICE)
    assert rb.events(receipt, "TransferShares") == [{"from": ALICE, "to": BOB, "value": ONE + 1}]
    assert rb.events(receipt, "Transfer") == [{"from": ALICE, "to": BOB, "value": 3 * ONE + 3}]
    assert rb.call("sharesOf", BOB) == ONE + 1
    assert rb.call("balanceOf", BOB) == 3 * ONE + 3
    assert rb.reverts_with("transferShares", BOB, 10 * ONE, sender=ALICE) == revert_data(
        "InsufficientShares(address,uint256,uint256)", ALICE, 9 * ONE - 1, 10 * ONE
    )
    assert rb.reverts_with("transferShares", ZERO_ADDRESS, 1, sender=ALICE) == revert_data(
        "ERC20InvalidReceiver(address)", ZERO_ADDRESS
    )


def test_rebasing_multiplier_scheduled_event_and_second_schedule_reverts(chain: Chain) -> None:
    rb = deploy_rebasing(chain)
    activation = chain.now() + 2 * DAY
    receipt = rb.send("scheduleMultiplier", 2 * ONE, activation)
    assert rb.events(receipt, "MultiplierScheduled") == [
        {"newMultiplier": 2 * ONE, "activationTime": activation}
    ]
    assert (rb.call("newMultiplier"), rb.call("newMultiplierActivationTime")) == (2 * ONE, activation)
    assert rb.reverts_with("scheduleMultiplier", 3 * ONE, activation + 1) == revert_data(
        "MultiplierAlreadyScheduled(uint256)", activation
    )
    rb2 = deploy_rebasing(chain)
    now = chain.now()
    assert rb2.reverts_with("scheduleMultiplier", ONE, now) == revert_data(
        "ActivationTimeNotInFuture(uint256,uint256)", now, now
    )
    assert rb2.reverts_with("scheduleMultiplier", 0, now + 1) == revert_data("InvalidMultiplier()")


def test_rebasing_activation_is_stored_when_folded(chain: Chain) -> None:
    fee, period = 10**15, DAY
    t0 = chain.now() + 10
    rb = deploy_rebasing(chain, fee=fee, period=period, at=t0)
    rb.send("mint", ALICE, 100 * ONE, at=t0 + 1)
    activation = t0 + period // 2
    rb.send("scheduleMultiplier", 2 * ONE, activation, at=t0 + 2)
    view = rebasing_multiplier_at(rebasing_params(rb), activation + 2 * period + 7)
    rb.send("transfer", BOB, ONE, sender=ALICE, at=activation + 2 * period + 7)
    m = fee_periods(2 * ONE, fee, 2)
    assert view == (m, 2, 3)
    assert rebasing_params(rb) == RebasingParams(m, activation + 2 * period, fee, period, 2 * ONE, 0, 3)
    assert rb.call("getCurrentMultiplier") == (m, 0, 3)


def test_rebasing_share_conversions_use_the_current_multiplier(chain: Chain) -> None:
    fee, period = 3 * 10**15, 600
    rb = deploy_rebasing(chain, fee=fee, period=period)
    start = rb.call("lastTimeFeeApplied")
    assert rb.call("getSharesByUnderlyingAmount", 10**18) == 10**18
    chain.mine_at(start + 7 * period + 1)
    m = fee_periods(ONE, fee, 7)
    assert rb.call("getCurrentMultiplier")[0] == m
    for amount in (1, 999, 10**18, 123_456_789 * 10**12):
        assert (
            rb.call("getSharesByUnderlyingAmount", amount)
            == shares_from_amount(amount, m)
            == amount * ONE // m
        )
        assert (
            rb.call("getUnderlyingAmountByShares", amount)
            == balance_from_shares(amount, m)
            == amount * m // ONE
        )


def test_rebasing_lazy_folding_does_not_change_results(chain: Chain) -> None:
    fee, period = 10**15, 1_000
    t0 = chain.now() + 10
    rb = deploy_rebasing(chain, fee=fee, period=period, at=t0)
    rb.send("mint", ALICE, 300 * ONE, at=t0 + 1)
    rb.send("mint", BOB, 700 * ONE, at=t0 + 2)
    activation = t0 + 5 * period + 123
    rb.send("scheduleMultiplier", 5 * ONE, activation, at=t0 + 3)
    fold_time = t0 + 3 * period + 50  # before activation, three periods unfolded
    probes = [t0 + 4 * period, activation - 1, activation, activation + period, activation + 9 * period + 1]

    def read() -> list[tuple]:
        out = []
        for t in probes:
            chain.mine_at(t)
            out.append(
                (
                    rb.call("getCurrentMultiplier")[0],
                    rb.call("balanceOf", ALICE),
                    rb.call("balanceOf", BOB),
                    rb.call("totalSupply"),
                    rb.call("getSharesByUnderlyingAmount", 10**18),
                )
            )
        return out

    snapshot = chain.snapshot()
    chain.mine_at(fold_time)
    unfolded = read()
    params_unfolded = rebasing_params(rb)
    chain.revert_to(snapshot)

    rb.send("approve", CAROL, 1, sender=ALICE, at=fold_time)  # no fold: approve does not touch balances
    assert rb.call("multiplier") == ONE
    rb.send("transfer", BOB, 0, sender=ALICE, at=fold_time + 1)  # a zero transfer folds the periods in
    assert rebasing_params(rb) == RebasingParams(
        fee_periods(ONE, fee, 3), t0 + 3 * period, fee, period, 5 * ONE, activation, 3
    )
    folded = read()
    assert folded == unfolded
    # the multiplier and balances agree; only the nonce records the periods folded before the activation
    params_folded = rebasing_params(rb)
    assert (
        rebasing_multiplier_at(params_folded, probes[-1])[2]
        == rebasing_multiplier_at(params_unfolded, probes[-1])[2] + 3
    )


def test_rebasing_transfer_above_the_balance_reverts_in_balance_units(chain: Chain) -> None:
    fee, period = 10**15, 100
    rb = deploy_rebasing(chain, fee=fee, period=period)
    rb.send("mint", ALICE, 10 * ONE)
    chain.mine_at(rb.call("lastTimeFeeApplied") + 3 * period)
    balance = rb.call("balanceOf", ALICE)
    assert balance == 10 * ONE * fee_periods(ONE, fee, 3) // ONE
    assert rb.reverts_with("transfer", BOB, balance + 1, sender=ALICE) == revert_data(
        "ERC20InsufficientBalance(address,uint256,uint256)", ALICE, balance, balance + 1
    )


def test_rebasing_allowance_is_in_balance_units(chain: Chain) -> None:
    rb = deploy_rebasing(chain, fee=0, period=0)
    rb.send("mint", ALICE, 10 * ONE)
    rb.send("scheduleMultiplier", 2 * ONE, chain.now() + 5)
    chain.mine_at(chain.now() + 5)
    rb.send("approve", BOB, 3 * ONE, sender=ALICE)
    receipt = rb.send("transferFrom", ALICE, CAROL, 2 * ONE, sender=BOB)
    assert rb.events(receipt, "Transfer") == [{"from": ALICE, "to": CAROL, "value": 2 * ONE}]
    assert rb.events(receipt, "TransferShares") == [{"from": ALICE, "to": CAROL, "value": ONE}]
    assert rb.call("allowance", ALICE, BOB) == ONE
    assert rb.call("balanceOf", CAROL) == 2 * ONE


def test_rebasing_fee_switched_off_then_on_is_not_charged_retroactively(chain: Chain) -> None:
    fee, period = 10**15, DAY
    rb = deploy_rebasing(chain, fee=fee, period=period)
    start = rb.call("lastTimeFeeApplied")
    receipt = rb.send("updateFeePerPeriod", 0, at=start + 2 * period + 5)
    assert rb.events(receipt, "FeePerPeriodUpdated") == [{"value": 0}]
    m_off = fee_periods(ONE, fee, 2)
    assert rb.call("multiplier") == m_off
    chain.mine_at(start + 20 * period)
    assert rb.call("getCurrentMultiplier") == (m_off, 0, 2)
    on_at = start + 20 * period + 1
    rb.send("updateFeePerPeriod", fee, at=on_at)
    assert rb.call("lastTimeFeeApplied") == on_at
    assert rb.call("getCurrentMultiplier") == (m_off, 0, 2)
    chain.mine_at(on_at + period)
    assert rb.call("getCurrentMultiplier") == (fee_periods(m_off, fee, 1), 1, 3)
    receipt = rb.send("updatePeriodLength", 3_600)
    assert rb.events(receipt, "PeriodLengthUpdated") == [{"value": 3_600}]
    assert rb.reverts_with("updateFeePerPeriod", ONE) == revert_data("InvalidFee(uint256)", ONE)


@pytest.mark.parametrize("case", range(10))
def test_rebasing_multiplier_and_balances_match_python_rule_for_random_fees_periods_and_times(
    chain: Chain, case: int
) -> None:
    rng = random.Random(20_260_101 + case)
    fee = rng.choice([1, 10**9, 10**14, 10**15, rng.randrange(1, 5 * 10**16)])
    period = rng.choice([1, 60, 3_600, DAY, rng.randrange(2, 200_000)])
    max_periods = 300
    t0 = chain.now() + rng.randrange(1, 1_000)
    rb = deploy_rebasing(chain, fee=fee, period=period, at=t0)
    rb.send("mint", ALICE, rng.randrange(1, 10**9) * ONE, at=t0 + 1)
    horizon = t0 + period * max_periods
    times = sorted(rng.sample(range(t0 + 2, horizon), 8))
    if rng.random() < 0.5:
        activation = rng.randrange(times[1] + 1, times[4])
        rb.send("scheduleMultiplier", rng.randrange(ONE // 10, 10 * ONE), activation, at=times[1])
        times = times[2:]
    else:
        times = times[1:]

    stored = rebasing_params(rb)
    for i, t in enumerate(times):
        if i % 3 == 2:  # now and then a transaction folds pending changes into storage
            rb.send("transfer", BOB, 1, sender=ALICE, at=t)
            stored = rebasing_fold(stored, t)
            assert rebasing_params(rb) == stored, (fee, period, t)
        else:
            chain.mine_at(t)
        expected = rebasing_multiplier_at(stored, t)
        assert rb.call("getCurrentMultiplier") == expected, (fee, period, t)
        for holder in (ALICE, BOB):
            assert rb.call("balanceOf", holder) == balance_from_shares(
                rb.call("sharesOf", holder), expected[0]
            )
        assert rb.call("totalSupply") == balance_from_shares(rb.call("totalShares"), expected[0])


# ---------------------------------------------------------------------------------------------- pause


@pytest.mark.parametrize("kind", ["ui", "rebasing"])
def test_pause_emits_events_and_blocks_transfers_until_unpaused(chain: Chain, kind: str) -> None:
    token = deploy_ui(chain) if kind == "ui" else deploy_rebasing(chain)
    token.send("mint", ALICE, 10 * ONE)
    receipt = token.send("pause")
    assert token.events(receipt, "Paused") == [{"account": chain.issuer}]
    assert token.call("paused") is True
    paused = revert_data("EnforcedPause()")
    assert token.reverts_with("transfer", BOB, 1, sender=ALICE) == paused
    assert token.reverts_with("mint", BOB, 1) == paused
    assert token.reverts_with("burn", ALICE, 1) == paused
    assert token.reverts_with("batchForcedTransfer", [ALICE], [BOB], [1]) == paused
    token.send("approve", BOB, ONE, sender=ALICE)  # approvals are not transfers
    assert token.reverts_with("transferFrom", ALICE, BOB, 1, sender=BOB) == paused
    if kind == "rebasing":
        assert token.reverts_with("transferShares", BOB, 1, sender=ALICE) == paused
    assert token.reverts_with("pause") == paused
    failed = token.transact("transfer", BOB, 1, sender=ALICE)
    assert failed["status"] == "0x0"
    assert failed["logs"] == []

    receipt = token.send("unpause")
    assert token.events(receipt, "Unpaused") == [{"account": chain.issuer}]
    assert token.call("paused") is False
    assert token.reverts_with("unpause") == revert_data("ExpectedPause()")
    token.send("transfer", BOB, ONE, sender=ALICE)
    assert token.call("balanceOf", BOB) == ONE


# ---------------------------------------------------------------------------------------------- freeze


def test_frozen_address_can_neither_send_nor_receive_but_can_be_burnt(chain: Chain) -> None:
    ui = deploy_ui(chain)
    ui.send("mint", ALICE, 10 * ONE)
    ui.send("mint", BOB, 5 * ONE)
    receipt = ui.send("setAddressFrozen", BOB, True)
    assert ui.events(receipt, "AddressFrozen") == [
        {"userAddress": BOB, "isFrozen": True, "owner": chain.issuer}
    ]
    assert ui.call("isFrozen", BOB) is True
    frozen = revert_data("AccountFrozen(address)", BOB)
    assert ui.reverts_with("transfer", BOB, 1, sender=ALICE) == frozen
    assert ui.reverts_with("transfer", ALICE, 1, sender=BOB) == frozen
    assert ui.reverts_with("mint", BOB, 1) == frozen
    assert ui.reverts_with("batchForcedTransfer", [ALICE], [BOB], [1]) == frozen
    assert ui.reverts_with("batchForcedTransfer", [BOB], [ALICE], [1]) == frozen
    receipt = ui.send("burn", BOB, ONE)
    assert ui.events(receipt, "Transfer") == [{"from": BOB, "to": ZERO_ADDRESS, "value": ONE}]
    assert ui.call("balanceOf", BOB) == 4 * ONE

    receipt = ui.send("setAddressFrozen", BOB, False)
    assert ui.events(receipt, "AddressFrozen") == [
        {"userAddress": BOB, "isFrozen": False, "owner": chain.issuer}
    ]
    ui.send("transfer", ALICE, ONE, sender=BOB)
    assert (ui.call("balanceOf", ALICE), ui.call("balanceOf", BOB)) == (11 * ONE, 3 * ONE)
    assert ui.reverts_with("setAddressFrozen", CAROL, True, sender=ALICE) == revert_data(
        "OwnableUnauthorizedAccount(address)", ALICE
    )


# ---------------------------------------------------------------------------------------------- sanctions


def test_sanctions_list_events_and_owner_only_updates(chain: Chain) -> None:
    sl = deploy_sanctions(chain)
    receipt = sl.send("addToSanctionsList", [CAROL, DAVE])
    assert sl.events(receipt, "SanctionedAddressesAdded") == [{"addrs": [CAROL, DAVE]}]
    assert (sl.call("isSanctioned", CAROL), sl.call("isSanctioned", DAVE), sl.call("isSanctioned", BOB)) == (
        True,
        True,
        False,
    )
    receipt = sl.send("removeFromSanctionsList", [DAVE])
    assert sl.events(receipt, "SanctionedAddressesRemoved") == [{"addrs": [DAVE]}]
    assert sl.call("isSanctioned", DAVE) is False
    unauthorized = revert_data("OwnableUnauthorizedAccount(address)", ALICE)
    assert sl.reverts_with("addToSanctionsList", [BOB], sender=ALICE) == unauthorized
    assert sl.reverts_with("removeFromSanctionsList", [CAROL], sender=ALICE) == unauthorized


def test_sanctioned_address_cannot_send_or_receive_rebasing_tokens(chain: Chain) -> None:
    sl = deploy_sanctions(chain)
    rb = deploy_rebasing(chain, fee=0, period=0, sanctions=sl.address)
    rb.send("mint", ALICE, 10 * ONE)
    rb.send("mint", CAROL, 5 * ONE)
    sl.send("addToSanctionsList", [CAROL])
    sanctioned = revert_data("AddressSanctioned(address)", CAROL)
    assert rb.reverts_with("transfer", CAROL, 1, sender=ALICE) == sanctioned
    assert rb.reverts_with("transfer", ALICE, 1, sender=CAROL) == sanctioned
    assert rb.reverts_with("transferShares", ALICE, 1, sender=CAROL) == sanctioned
    assert rb.reverts_with("mint", CAROL, 1) == sanctioned
    assert rb.reverts_with("batchForcedTransfer", [ALICE], [CAROL], [1]) == sanctioned
    assert rb.reverts_with("batchForcedTransfer", [CAROL], [ALICE], [1]) == sanctioned
    receipt = rb.send("burn", CAROL, ONE)  # seizing from a sanctioned holder is allowed
    assert rb.events(receipt, "TransferShares") == [{"from": CAROL, "to": ZERO_ADDRESS, "value": ONE}]
    assert rb.call("balanceOf", CAROL) == 4 * ONE

    receipt = rb.send("setSanctionsList", ZERO_ADDRESS)  # screening off
    assert rb.events(receipt, "NewSanctionsList") == [{"newSanctionsList": ZERO_ADDRESS}]
    rb.send("transfer", ALICE, ONE, sender=CAROL)
    receipt = rb.send("setSanctionsList", sl.address)
    assert rb.events(receipt, "NewSanctionsList") == [{"newSanctionsList": sl.address}]
    assert rb.reverts_with("transfer", CAROL, 1, sender=ALICE) == sanctioned
    sl.send("removeFromSanctionsList", [CAROL])
    rb.send("transfer", CAROL, ONE, sender=ALICE)
    assert rb.call("balanceOf", CAROL) == 4 * ONE


# ---------------------------------------------------------------------------------------------- issuance


DEPLOYERS = {"plain": deploy_plain, "ui": deploy_ui, "rebasing": deploy_rebasing}


@pytest.mark.parametrize("kind", DEPLOYERS)
def test_only_the_issuer_can_mint_burn_and_force_transfers(chain: Chain, kind: str) -> None:
    token = DEPLOYERS[kind](chain)
    unauthorized = revert_data("OwnableUnauthorizedAccount(address)", ALICE)
    assert token.reverts_with("mint", ALICE, 1, sender=ALICE) == unauthorized
    assert token.reverts_with("batchMint", [ALICE], [1], sender=ALICE) == unauthorized
    receipt = token.send("mint", ALICE, 10 * ONE)
    assert token.events(receipt, "Transfer") == [{"from": ZERO_ADDRESS, "to": ALICE, "value": 10 * ONE}]
    assert token.reverts_with("burn", ALICE, 1, sender=ALICE) == unauthorized
    assert token.reverts_with("burn", ALICE, 1, sender=BOB) == revert_data(
        "OwnableUnauthorizedAccount(address)", BOB
    )
    assert token.reverts_with("batchForcedTransfer", [ALICE], [BOB], [1], sender=ALICE) == unauthorized
    failed = token.transact("mint", ALICE, 1, sender=BOB)
    assert failed["status"] == "0x0"
    receipt = token.send("burn", ALICE, 3 * ONE)
    assert token.events(receipt, "Transfer") == [{"from": ALICE, "to": ZERO_ADDRESS, "value": 3 * ONE}]
    receipt = token.send("batchMint", [BOB, CAROL], [ONE, 2 * ONE])
    assert [e["value"] for e in token.events(receipt, "Transfer")] == [ONE, 2 * ONE]
    assert token.call("balanceOf", ALICE) == 7 * ONE
    assert token.call("totalSupply") == 10 * ONE


@pytest.mark.parametrize("kind", DEPLOYERS)
def test_batch_forced_transfer_emits_one_transfer_per_pair(chain: Chain, kind: str) -> None:
    token = DEPLOYERS[kind](chain)
    token.send("batchMint", [ALICE, BOB], [10 * ONE, 10 * ONE])
    froms, tos, amounts = (
        [ALICE, BOB, ALICE, CAROL],
        [BOB, CAROL, DAVE, ALICE],
        [ONE, 2 * ONE, 3 * ONE, ONE // 2],
    )
    receipt = token.send("batchForcedTransfer", froms, tos, amounts)
    expected = [{"from": f, "to": t, "value": v} for f, t, v in zip(froms, tos, amounts, strict=True)]
    assert token.events(receipt, "Transfer") == expected
    if kind == "rebasing":  # multiplier 1: shares equal balance units
        assert token.events(receipt, "TransferShares") == expected
        assert len(receipt["logs"]) == 2 * len(froms)
    else:
        assert len(receipt["logs"]) == len(froms)
    balances = [token.call("balanceOf", a) for a in (ALICE, BOB, CAROL, DAVE)]
    assert balances == [6 * ONE + ONE // 2, 9 * ONE, ONE + ONE // 2, 3 * ONE]
    assert token.reverts_with("batchForcedTransfer", [ALICE], [BOB, CAROL], [1]) == revert_data(
        "ArrayLengthMismatch()"
    )
    assert token.reverts_with("batchForcedTransfer", [ALICE], [BOB], [1, 2]) == revert_data(
        "ArrayLengthMismatch()"
    )


# ---------------------------------------------------------------------------------------------- price feed


def test_price_feed_has_no_data_before_its_first_round(chain: Chain) -> None:
    feed = deploy_feed(chain)
    assert feed.reverts_with("latestRoundData") == error_string("No data present")
    assert feed.reverts_with("getRoundData", rid(1)) == error_string("No data present")
    assert feed.call("latestRound") == rid(0)
    assert (feed.call("latestAnswer"), feed.call("latestTimestamp")) == (0, 0)
    assert (feed.call("decimals"), feed.call("description"), feed.call("version"), feed.call("phaseId")) == (
        8,
        "TSLA / USD",
        4,
        PHASE,
    )
    assert (feed.call("updater"), feed.call("owner")) == (chain.issuer, chain.issuer)


def test_transmit_emits_new_round_and_answer_updated_with_proxy_round_ids(chain: Chain) -> None:
    feed = deploy_feed(chain)
    t = chain.now() + 10
    receipt = feed.send("transmit", 250_00000000, at=t)
    assert feed.events(receipt, "NewRound") == [
        {"roundId": rid(1), "startedBy": chain.issuer, "startedAt": t}
    ]
    assert feed.events(receipt, "AnswerUpdated") == [
        {"current": 250_00000000, "roundId": rid(1), "updatedAt": t}
    ]
    assert len(receipt["logs"]) == 2
    receipt = feed.send("transmit", -5, at=t + 1)
    assert feed.events(receipt, "AnswerUpdated") == [{"current": -5, "roundId": rid(2), "updatedAt": t + 1}]
    assert feed.call("latestRoundData") == (rid(2), -5, t + 1, t + 1, rid(2))


def test_round_history_reads_back_through_get_round_data(chain: Chain) -> None:
    feed = deploy_feed(chain)
    t = chain.now() + 10
    published = []
    for n, answer in enumerate([100_00000000, 101_50000000, 99_00000001, 1, 2**100], start=1):
        receipt = feed.send("transmit", answer, at=t + 60 * n)
        published.append((rid(n), answer, receipt["timestamp"], receipt["timestamp"], rid(n)))
    assert [p[2] for p in published] == [t + 60 * n for n in range(1, 6)]
    for round_data in published:
        assert feed.call("getRoundData", round_data[0]) == round_data
        assert feed.call("getAnswer", round_data[0]) == round_data[1]
        assert feed.call("getTimestamp", round_data[0]) == round_data[3]
    assert feed.call("latestRoundData") == published[-1]
    assert (feed.call("latestRound"), feed.call("latestAnswer"), feed.call("latestTimestamp")) == (
        rid(5),
        2**100,
        t + 300,
    )


@pytest.mark.parametrize(
    "round_id",
    [0, rid(0), rid(3), rid(2**64 - 1), rid(1, phase=PHASE - 1), rid(1, phase=PHASE + 1), 1, 2, UINT80_MAX],
    ids=[
        "zero",
        "phase-round-0",
        "next-round",
        "max-aggregator-round",
        "older-phase",
        "newer-phase",
        "bare-1",
        "bare-2",
        "uint80-max",
    ],
)
def test_unknown_round_ids_revert_with_no_data_present(chain: Chain, round_id: int) -> None:
    feed = deploy_feed(chain)
    feed.send("transmit", 1)
    feed.send("transmit", 2)
    assert feed.reverts_with("getRoundData", round_id) == error_string("No data present")
    assert feed.call("getAnswer", round_id) == 0
    assert feed.call("getTimestamp", round_id) == 0


def test_v2_getters_read_zero_beyond_uint80(chain: Chain) -> None:
    feed = deploy_feed(chain)
    feed.send("transmit", 7)
    big = rid(1) + (1 << 80)  # truncating to uint80 would alias round 1
    assert (feed.call("getAnswer", big), feed.call("getTimestamp", big)) == (0, 0)
    assert (feed.call("getAnswer", 2**256 - 1), feed.call("getTimestamp", 2**200)) == (0, 0)
    assert feed.call("getAnswer", rid(1)) == 7


# (answer, startedAt, updatedAt, answeredInRound as a function of this round's proxy id)
FAULTY_ROUNDS = {
    "zero-answer": (0, 1_700_000_000, 1_700_000_000, lambda r: r),
    "negative-answer": (-1, 1_700_000_000, 1_700_000_001, lambda r: r),
    "int192-min-answer": (INT192_MIN, 1, 2, lambda r: r),
    "int192-max-answer": (INT192_MAX, 1, 2, lambda r: r),
    "updated-at-zero": (123, 5, 0, lambda r: r),
    "all-zero": (0, 0, 0, lambda r: r),
    "stale-answered-in-round": (42, 1_700_000_000, 1_700_000_100, lambda r: r - 1),
    "answered-in-round-zero": (42, 1_700_000_000, 1_700_000_100, lambda r: 0),
    "answered-in-round-ahead": (42, 10, 20, lambda r: r + 5),
    "answered-in-round-uint80-max": (42, 10, 20, lambda r: UINT80_MAX),
    "answered-in-other-phase": (42, 10, 20, lambda r: rid(r & (2**64 - 1), phase=PHASE - 1)),
    "max-timestamps-started-after-updated": (-(10**30), UINT32_MAX, UINT32_MAX - 1, lambda r: r - 2),
}


@pytest.mark.parametrize("case", FAULTY_ROUNDS)
def test_transmit_raw_faulty_rounds_read_back_exactly(chain: Chain, case: str) -> None:
    answer, started_at, updated_at, answered_of = FAULTY_ROUNDS[case]
    feed = deploy_feed(chain)
    t = chain.now() + 10
    feed.send("transmit", 1_000, at=t)
    feed.send("transmit", 1_001, at=t + 1)
    this_round = rid(3)
    answered = answered_of(this_round)
    receipt = feed.send("transmitRaw", answer, started_at, updated_at, answered, at=t + 2)
    assert feed.events(receipt, "NewRound") == [
        {"roundId": this_round, "startedBy": chain.issuer, "startedAt": started_at}
    ]
    assert feed.events(receipt, "AnswerUpdated") == [
        {"current": answer, "roundId": this_round, "updatedAt": updated_at}
    ]
    expected = (this_round, answer, started_at, updated_at, answered)
    assert feed.call("getRoundData", this_round) == expected
    assert feed.call("latestRoundData") == expected
    assert (feed.call("latestAnswer"), feed.call("latestTimestamp"), feed.call("latestRound")) == (
        answer,
        updated_at,
        this_round,
    )
    assert (feed.call("getAnswer", this_round), feed.call("getTimestamp", this_round)) == (answer, updated_at)
    # neighbours are untouched, and the next well-formed round answers for itself again
    assert feed.call("getRoundData", rid(2)) == (rid(2), 1_001, t + 1, t + 1, rid(2))
    feed.send("transmit", 1_002, at=t + 3)
    assert feed.call("getRoundData", rid(4)) == (rid(4), 1_002, t + 3, t + 3, rid(4))
    assert feed.call("getRoundData", this_round) == expected


@pytest.mark.parametrize(
    "answer,started_at,updated_at",
    [
        (INT192_MAX + 1, 1, 1),
        (INT192_MIN - 1, 1, 1),
        (2**255 - 1, 1, 1),
        (1, 2**32, 1),
        (1, 1, 2**32),
        (1, 2**256 - 1, 2**256 - 1),
    ],
    ids=[
        "answer-above-int192",
        "answer-below-int192",
        "answer-int256-max",
        "started-at-2^32",
        "updated-at-2^32",
        "timestamps-uint256-max",
    ],
)
def test_transmit_raw_values_out_of_range_revert_with_value_out_of_range(
    chain: Chain, answer: int, started_at: int, updated_at: int
) -> None:
    feed = deploy_feed(chain)
    feed.send("transmit", 77)
    assert feed.reverts_with("transmitRaw", answer, started_at, updated_at, rid(2)) == revert_data(
        "ValueOutOfRange()"
    )
    failed = feed.transact("transmitRaw", answer, started_at, updated_at, rid(2))
    assert failed["status"] == "0x0"
    assert failed["logs"] == []
    # the failed round consumed no round id
    assert feed.call("latestRound") == rid(1)
    assert feed.reverts_with("getRoundData", rid(2)) == error_string("No data present")
    feed.send("transmit", 78)
    assert feed.call("latestRoundData")[:2] == (rid(2), 78)


def _storage_writes(chain: Chain, tx_hash: str, address: str) -> dict[str, str]:
    """Storage slots of `address` that a transaction changed, with their new values."""
    diff = chain.rpc.call(
        "debug_traceTransaction", [tx_hash, {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}]
    )
    return diff["post"].get(address, {}).get("storage", {})


def test_each_price_round_is_packed_into_one_storage_slot(chain: Chain) -> None:
    feed = deploy_feed(chain)
    t = chain.now() + 10

    def packed(answer: int, started_at: int, updated_at: int) -> str:
        word = (answer % 2**192) | (started_at << 192) | (updated_at << 224)
        return "0x" + word.to_bytes(32, "big").hex()

    receipt = feed.send("transmit", -7, at=t)
    writes = _storage_writes(chain, receipt["transactionHash"], feed.address)
    # the round's word and the latest-round counter: no separate slot per field, no answeredInRound slot
    assert len(writes) == 2
    assert packed(-7, t, t) in writes.values()
    receipt = feed.send("transmitRaw", 5, t - 9, t - 3, rid(2))  # well formed: answeredInRound is its own id
    writes = _storage_writes(chain, receipt["transactionHash"], feed.address)
    assert len(writes) == 2
    assert packed(5, t - 9, t - 3) in writes.values()
    receipt = feed.send("transmitRaw", INT192_MIN, UINT32_MAX, 0, 0)  # faulty: answeredInRound stored apart
    writes = _storage_writes(chain, receipt["transactionHash"], feed.address)
    assert len(writes) == 3
    assert packed(INT192_MIN, UINT32_MAX, 0) in writes.values()


def test_only_the_updater_publishes_and_the_owner_hands_over(chain: Chain) -> None:
    feed = deploy_feed(chain)
    not_updater = revert_data("NotUpdater(address)", ALICE)
    assert feed.reverts_with("transmit", 1, sender=ALICE) == not_updater
    assert feed.reverts_with("transmitRaw", 1, 1, 1, rid(1), sender=ALICE) == not_updater
    assert feed.reverts_with("setUpdater", ALICE, sender=ALICE) == revert_data(
        "OwnableUnauthorizedAccount(address)", ALICE
    )
    receipt = feed.send("setUpdater", ALICE)
    assert feed.events(receipt, "UpdaterSet") == [{"updater": ALICE}]
    assert feed.reverts_with("transmit", 1) == revert_data("NotUpdater(address)", chain.issuer)
    receipt = feed.send("transmit", 9, sender=ALICE)
    assert feed.events(receipt, "NewRound")[0]["startedBy"] == ALICE
    assert feed.call("latestAnswer") == 9


# ---------------------------------------------------------------------------------------------- Multicall3


AGGREGATE3_SELECTOR = keccak(text="aggregate3((address,bool,bytes)[])")[:4]


def aggregate3_calldata(calls: list[tuple[str, bool, str]]) -> str:
    encoded = encode(
        ["(address,bool,bytes)[]"], [[(to, allow, bytes.fromhex(data[2:])) for to, allow, data in calls]]
    )
    return "0x" + (AGGREGATE3_SELECTOR + encoded).hex()


@pytest.fixture(scope="module")
def multicall3(chain: Chain) -> str:
    code = load_artifact("Multicall3")["deployedBytecode"]
    chain.rpc.call("anvil_setCode", [MULTICALL3_ADDRESS, code])
    chain.mine_at(chain.now() + 1)
    return MULTICALL3_ADDRESS


def test_multicall3_is_at_its_canonical_address(chain: Chain, multicall3: str) -> None:
    assert (
        chain.rpc.call("eth_getCode", [multicall3, "latest"])
        == load_artifact("Multicall3")["deployedBytecode"]
    )
    assert load_abi("Multicall3").fn("aggregate3").selector == AGGREGATE3_SELECTOR


def test_multicall3_aggregate3_results_equal_single_calls(chain: Chain, multicall3: str) -> None:
    feed = deploy_feed(chain)
    feed.send("transmit", 250_00000000)
    ui = deploy_ui(chain)
    ui.send("mint", ALICE, 3 * ONE)
    ui.send("updateUIMultiplier", 2 * ONE, chain.now() + 1)
    rb = deploy_rebasing(chain)
    rb.send("mint", BOB, 5 * ONE)
    chain.mine_at(chain.now() + 3 * DAY)
    block = hex(chain.head())

    calls = [
        (feed.address, False, feed.calldata("latestRoundData")),
        (feed.address, True, feed.calldata("getRoundData", rid(99))),  # reverts: No data present
        (ui.address, False, ui.calldata("uiMultiplier")),
        (ui.address, False, ui.calldata("balanceOfUI", ALICE)),
        (rb.address, False, rb.calldata("getCurrentMultiplier")),
        (rb.address, False, rb.calldata("balanceOf", BOB)),
        (feed.address, True, ui.calldata("uiMultiplier")),  # reverts: no such function, no fallback
        (DAVE, True, ui.calldata("uiMultiplier")),  # no code there: succeeds with empty data
    ]
    singles = chain.rpc.batch(
        [("eth_call", [{"to": to, "data": data}, block]) for to, _, data in calls], raise_errors=False
    )
    raw = chain.rpc.call("eth_call", [{"to": multicall3, "data": aggregate3_calldata(calls)}, block])
    (results,) = decode(["(bool,bytes)[]"], bytes.fromhex(raw[2:]))

    assert len(results) == len(calls)
    for (success, data), single in zip(results, singles, strict=True):
        if isinstance(single, RpcError):
            assert single.kind == "reverted"
            assert (success, "0x" + data.hex()) == (False, single.data)
        else:
            assert (success, "0x" + data.hex()) == (True, single)
    assert [ok for ok, _ in results] == [True, False, True, True, True, True, False, True]
    assert "0x" + results[1][1].hex() == error_string("No data present")
    assert decode(["uint256"], results[3][1]) == (6 * ONE,)
    assert results[6][1] == b""
    assert results[7][1] == b""


def test_multicall3_aggregate3_reverts_when_a_call_that_may_not_fail_fails(
    chain: Chain, multicall3: str
) -> None:
    feed = deploy_feed(chain)
    calls = [
        (feed.address, True, feed.calldata("decimals")),
        (feed.address, False, feed.calldata("latestRoundData")),
    ]
    with pytest.raises(RpcError) as excinfo:
        chain.rpc.call("eth_call", [{"to": multicall3, "data": aggregate3_calldata(calls)}, "latest"])
    assert excinfo.value.kind == "reverted"
    assert excinfo.value.data == error_string("Multicall3: call failed")
