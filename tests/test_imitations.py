"""The imitations of the real tokenized-stock contracts (docs/contracts.md) on a real EVM (anvil).

Each test checks one rule of the real contract as the research notes describe it, asserting exact values:
selectors and topic hashes against the published ones, the log order of a factory deployment, the Backed
multiplier rule against an independent Python model over seeded random schedules, folding and its events,
schedules and overrides, a V3 -> V4 upgrade through ProxyAdmin, share rounding, pause and sanctions,
EIP-712 delegation, Chainlink proxy phases and OCR rounds, ERC-8056 lazy activation, the B20 multiplier, and
the helpers (PlainToken's issuance, Multicall3 against single calls).

The contracts are compiled here, from contracts/*.sol with the build script's own solc settings (read out of
scripts/build_contracts.mjs), with their storage layouts, which the build's artifacts do not keep; every ABI
committed to indexer/abis/ must equal the compiled one.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode, encode
from eth_keys import keys
from eth_utils import keccak

from indexer.chain.abi import ContractAbi
from indexer.chain.rpc import RpcClient
from indexer.devchain.deploy import ChainWriter
from indexer.devchain.world import Tx
from indexer.errors import RpcError

ROOT = Path(__file__).resolve().parents[1]

IMITATIONS = [
    "XStockV3",
    "XStockV4",
    "TransparentProxy",
    "ProxyAdmin",
    "XStockFactory",
    "ChainalysisOracle",
    "FeedProxy",
    "FeedReadAccessController",
    "OcrAggregator",
    "OcrAggregatorWithFaults",
    "ScaledUiStock",
    "ScaledUiStockDraft",
    "B20Asset",
]
HELPERS = ["Multicall3", "PlainToken", "Disperse"]  # compiled alongside, to check the settings and call through a contract

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "solc").is_dir(),
    reason="node and the npm solc package are needed to compile the contracts",
)

ONE = 10**18
DAY = 86_400
ZERO = "0x" + "00" * 20
TERMS = "https://www.backedassets.fi/legal-documentation"
IMPLEMENTATION_SLOT = 0x360894A13BA1A3210667C828492DB98DCA3E2076CC3735A920A3CA505D382BBC
ADMIN_SLOT = 0xB53127684A568B3173AE13B9F8A6016E243E63B6E8EE1178D6A717850B5D6103
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

TOKEN_OWNER = "0x" + "0e" * 20
MINTER = "0x" + "11" * 20
BURNER = "0x" + "22" * 20
PAUSER = "0x" + "33" * 20
UPDATER = "0x" + "44" * 20
PROXY_ADMIN_OWNER = "0x" + "55" * 20
TRANSMITTER = "0x" + "66" * 20
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CAROL = "0x" + "c4" * 20
DAVE = "0x" + "d5" * 20

# ------------------------------------------------------------------------------ published topics and selectors
# topic0 and indexed flags of every event an indexer reads, as the research notes list them (the full hashes).

EVENTS: dict[str, tuple[str, tuple[bool, ...]]] = {
    "Transfer(address,address,uint256)": (
        "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef", (True, True, False)),
    "Approval(address,address,uint256)": (
        "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925", (True, True, False)),
    "TransferShares(address,address,uint256)": (
        "0x9d9c909296d9c674451c0c24f02cb64981eb3b727f99865939192f880a755dcb", (True, True, False)),
    "MultiplierUpdated(uint256)": (
        "0x4dbe4840d7465bd162f67814cea0b519567a2e0e578bcde61e7f4ced361e5a3d", (False,)),
    "MultiplierScheduled(uint256,uint256)": (
        "0x0fc82f15d800f52869be69bb6dec5615511ff09b246f46c6fe20618c2a845d20", (False, False)),
    "MultiplierScheduleOverridden(uint256,uint256,uint256,uint256)": (
        "0x58b46712c260c156927373112c5a0eac6c69c7b7a8eec19de939fb590a6037f7", (False, False, False, False)),
    "NewMultiplierUpdater(address)": (
        "0x352ee13cfd2e4909f0a0c7b78a6079921377f6377d8af594509ff9aaf4f925da", (True,)),
    "NewMinter(address)": ("0x6adffd5c93085d835dac6f3b40adf7c242ca4b3284048d20c3d8a501748dc973", (True,)),
    "NewBurner(address)": ("0x5bb1db06eeb30d85c1e53ae2285b460ce83e4318c623bd1ca51df912f64c45a4", (True,)),
    "NewPauser(address)": ("0x4f68150eb56c53cc9373649e35bc37dd235a0c86e10aa23b8a835378136ac6a0", (True,)),
    "NewSanctionsList(address)": (
        "0xeff538eaa91b9b5384df4354f3841681487784258ac4b209182aef0755f9e0be", (True,)),
    "DelegateWhitelistChange(address,bool)": (
        "0x7459b9d2544fdaf790226b129ff473f8c8ce56bfc10bc3bdbe1c71b9d426a546", (True, False)),
    "DelegateModeChange(bool)": ("0x238422c0d720060023911dceeb8ba506952801637ad007844edcd4416364fecf", (False,)),
    "PauseModeChange(bool)": ("0xb9bcdd890b4d4c213bab99cf96dc1adb9ede36bb2a54610c91a86de844b05fb8", (False,)),
    "NewTerms(string)": ("0x9c1e1a17a78053ad78b3801837ad5e515d429987252f2e1371b7b50fa8ff8bec", (False,)),
    "OwnershipTransferred(address,address)": (
        "0x8be0079c531659141344cd1fd0a4f28419497f9722a3daafe3b4186f6b6457e0", (True, True)),
    "Upgraded(address)": ("0xbc7cd75a20ee27fd9adebab32041f755214dbc6bffa90cc0225b39da2e5c2d3b", (True,)),
    "AdminChanged(address,address)": (
        "0x7e644d79422f17c01e4894b5f4f588d331ebfa28653d42ae832dc59e38c9798f", (False, False)),
    "NewToken(address,string,string)": (
        "0xc3d0a20a44bb0f367823c0b8747497ad98c62f65bc0a1ddf9d6db910ad9fbd41", (True, False, False)),
    "NewImplementation(address)": (
        "0x6b70829fcbe4891157f7a7496f9870927de3c8237adbe9cd39bae09b7382c409", (True,)),
    "SanctionedAddressesAdded(address[])": (
        "0x2596d7dd6966c5673f9c06ddb0564c4f0e6d8d206ea075b83ad9ddd71a4fb927", (False,)),
    "SanctionedAddressesRemoved(address[])": (
        "0x32aab684eee99db715515d1a9987a8fe33bb6341b0e35e60db7eab48a08f9a3a", (False,)),
    "AnswerUpdated(int256,uint256,uint256)": (
        "0x0559884fd3a460db3073b7fc896cc77986f16e378210ded43186175bf646fc5f", (True, True, False)),
    "NewRound(uint256,address,uint256)": (
        "0x0109fc6f55cf40689f02fbaad7af7fe7bbac8a3d2186600afc7d3e10cac60271", (True, True, False)),
    "UIMultiplierUpdated(uint256,uint256,uint256)": (
        "0x2205df4534432b2f60654a3fdb48737ffdaf3e9edb1a498bd985bc026b15b055", (False, False, False)),
    "UIMultiplierUpdated(uint256,uint256,uint256,uint256)": (
        "0x69cf817424dab3ffd3ee33ea83c0597f81c3f5a1e71a9007b18a99c8eee952d6", (False, False, False, False)),
    "TransferWithScaledUI(address,address,uint256,uint256)": (
        "0x37e7f0db430edc9dd31bc66f25f8449353aa0818f503b906747dd8f286cd3802", (True, True, False, False)),
}
# published only as prefix and suffix
EVENT_TOPIC_ENDS = {
    "SanctionedAddress(address)": ("0x80279111", "70e0"),
    "NonSanctionedAddress(address)": ("0xd5950183", "539c"),
}

XSTOCK_V4_FUNCTIONS = """
0x06fdde03 name()
0x95d89b41 symbol()
0x313ce567 decimals()
0x18160ddd totalSupply()
0x70a08231 balanceOf(address)
0xa9059cbb transfer(address,uint256)
0x23b872dd transferFrom(address,address,uint256)
0x095ea7b3 approve(address,uint256)
0xdd62ed3e allowance(address,address)
0x39509351 increaseAllowance(address,uint256)
0xa457c2d7 decreaseAllowance(address,uint256)
0x8da5cb5b owner()
0xf2fde38b transferOwnership(address)
0x715018a6 renounceOwnership()
0xd505accf permit(address,address,uint256,uint256,uint8,bytes32,bytes32)
0xaea77ac3 delegatedTransfer(address,address,uint256,uint256,uint8,bytes32,bytes32)
0xff29130c delegatedTransferShares(address,address,uint256,uint256,uint8,bytes32,bytes32)
0x7ecebe00 nonces(address)
0x3644e515 DOMAIN_SEPARATOR()
0x30adf81f PERMIT_TYPEHASH()
0x7f120587 DELEGATED_TRANSFER_TYPEHASH()
0xdeeb8bfd DELEGATED_TRANSFER_SHARES_TYPEHASH()
0x5c575ef3 delegateMode()
0x2cc5ecd5 delegateWhitelist(address)
0xa15f84da setDelegateMode(bool)
0xb6ca6e12 setDelegateWhitelist(address,bool)
0xffa1ad74 VERSION()
0x07546172 minter()
0x27810b6e burner()
0x9fd0506d pauser()
0xb187bd26 isPaused()
0xec571c6a sanctionsList()
0xd5025625 terms()
0x40c10f19 mint(address,uint256)
0x9dc29fac burn(address,uint256)
0xbedb86fb setPause(bool)
0xfca3b5aa setMinter(address)
0xa996d6ce setBurner(address)
0x2d88af4a setPauser(address)
0x49dc5e8d setSanctionsList(address)
0x78f86afc setTerms(string)
0x4cd88b76 initialize(string,string)
0x2b63c300 getCurrentMultiplier()
0x1b3ed722 multiplier()
0xf9e47896 multiplierNonce()
0xd1786aab lastMultiplier()
0x8230ef7c lastMultiplierNonce()
0x60638067 newMultiplier()
0xf7a08958 newMultiplierNonce()
0x5416d876 newMultiplierActivationTime()
0x3dfa34cd lastTimeFeeApplied()
0xf00c1dff feePerPeriod()
0xd2ca2115 periodLength()
0x0194b09b multiplierUpdater()
0xf5eb42dc sharesOf(address)
0x44acb51b getSharesByUnderlyingAmount(uint256)
0x944b511c getUnderlyingAmountByShares(uint256)
0xd9bef6c3 multiplierUpdates(uint256)
0x5666795d multiplierUpdatesLength()
0x8fcb4e5b transferShares(address,uint256)
0x6d780459 transferSharesFrom(address,address,uint256)
0x5add8efc updateFeePerPeriod(uint256)
0x430c777c setLastTimeFeeApplied(uint256)
0x1c5633d7 setPeriodLength(uint256)
0xf5f68898 setMultiplierUpdater(address)
0x8038cb58 updateMultiplierValue(uint256,uint256,uint256)
0x0a4d8a71 updateMultiplierWithNonce(uint256,uint256,uint256,uint256)
0x7544e6b3 initialize(string,string,uint256,uint256,uint256)
0x05602501 initialize_v2(uint256,uint256,uint256)
0x18d8ec3c initialize_v3()
0x944e4469 initialize_v4((uint256,uint256,uint256)[])
"""
V4_ONLY_FUNCTIONS = {"multiplierUpdates(uint256)", "multiplierUpdatesLength()", "initialize_v4((uint256,uint256,uint256)[])"}

XSTOCK_V3_EVENTS = [
    "Transfer(address,address,uint256)", "Approval(address,address,uint256)",
    "TransferShares(address,address,uint256)", "MultiplierUpdated(uint256)", "NewMultiplierUpdater(address)",
    "NewMinter(address)", "NewBurner(address)", "NewPauser(address)", "NewSanctionsList(address)",
    "DelegateWhitelistChange(address,bool)", "DelegateModeChange(bool)", "PauseModeChange(bool)",
    "NewTerms(string)", "OwnershipTransferred(address,address)",
]
XSTOCK_V4_EVENTS = XSTOCK_V3_EVENTS + [
    "MultiplierScheduled(uint256,uint256)", "MultiplierScheduleOverridden(uint256,uint256,uint256,uint256)",
]

OTHER_FUNCTIONS = {
    "XStockFactory": """
        0x3e47158c proxyAdmin()
        0x2f3a3d5d tokenImplementation()
        0x7272f3ff deployToken((string,string,address,address,address,address,address,address,uint256,uint256,uint256))
        0x8da5cb5b owner()
    """,
    "ProxyAdmin": """
        0x204e1c7a getProxyImplementation(address)
        0xf3b7dead getProxyAdmin(address)
        0x7eff275e changeProxyAdmin(address,address)
        0x99a88ec4 upgrade(address,address)
        0x9623609d upgradeAndCall(address,address,bytes)
    """,
    "TransparentProxy": """
        0xf851a440 admin()
        0x5c60da1b implementation()
        0x8f283970 changeAdmin(address)
        0x3659cfe6 upgradeTo(address)
        0x4f1ef286 upgradeToAndCall(address,bytes)
    """,
    "ChainalysisOracle": """
        0xdf592f7d isSanctioned(address)
        0xb972dfcc addToSanctionsList(address[])
        0xef782431 removeFromSanctionsList(address[])
        0xa2a6bbd8 isSanctionedVerbose(address)
    """,
    "OcrAggregator": """
        0xc9807539 transmit(bytes,bytes32[],bytes32[],bytes32)
    """,
    "ScaledUiStock": """
        0xa60bf13d uiMultiplier()
        0xdc767007 newUIMultiplier()
        0x97a4064f effectiveAt()
        0x7706ba52 oraclePaused()
        0x253ea980 pauseOracle()
        0x0fab6865 unpauseOracle()
        0x5ffe6146 updateMultiplier(uint256)
        0xbad60f18 updateMultiplier(uint256,uint256)
    """,
    "B20Asset": """
        0x1b3ed722 multiplier()
        0x04f04c99 toScaledBalance(uint256)
        0x0ca06c44 toRawBalance(uint256)
        0x1da24f3e scaledBalanceOf(address)
        0x5ffe6146 updateMultiplier(uint256)
        0x664808a8 WAD_PRECISION()
        0xf5b541a6 OPERATOR_ROLE()
        0x68573107 batchMint(address[],uint256[])
    """,
}

# ------------------------------------------------------------------------------------------------ compiling

COMPILE_JS = r"""
const fs = require("fs");
const path = require("path");
const root = process.argv[1];
const solc = require(path.join(root, "node_modules", "solc"));
const script = fs.readFileSync(path.join(root, "scripts", "build_contracts.mjs"), "utf8");
const literal = script.match(/const SETTINGS = (\{[\s\S]*?\n\});/)[1];
const settings = eval("(" + literal + ")");
// output selection is not part of the metadata, so the bytecode is the build script's
settings.outputSelection = { "*": { "*": ["abi", "evm.bytecode.object", "storageLayout"] } };
const sources = {};
for (const name of fs.readdirSync(path.join(root, "contracts")).filter((n) => n.endsWith(".sol")).sort()) {
  sources["contracts/" + name] = { content: fs.readFileSync(path.join(root, "contracts", name), "utf8") };
}
const findImports = (p) => {
  const file = path.join(root, "node_modules", p);
  return fs.existsSync(file) ? { contents: fs.readFileSync(file, "utf8") } : { error: "not found: " + p };
};
const output = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings }), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error").map((e) => e.formattedMessage);
const contracts = {};
for (const units of Object.values(output.contracts || {})) {
  for (const [name, c] of Object.entries(units)) {
    contracts[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object, storage: c.storageLayout };
  }
}
process.stdout.write(JSON.stringify({ errors, contracts, settings: literal }));
"""


@pytest.fixture(scope="module")
def artifacts() -> dict[str, dict]:
    result = subprocess.run(
        ["node", "-e", COMPILE_JS, str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["errors"] == []
    missing = [n for n in IMITATIONS + HELPERS if n not in out["contracts"]]
    assert missing == []
    return out["contracts"]


def _type(param: dict) -> str:
    t = param["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in param["components"]) + ")" + t[len("tuple"):]
    return t


def signature(item: dict) -> str:
    return f"{item['name']}({','.join(_type(p) for p in item['inputs'])})"


def topic(sig: str) -> str:
    return "0x" + keccak(text=sig).hex()


def selector(sig: str) -> str:
    return "0x" + keccak(text=sig)[:4].hex()


def word(value: int | str) -> str:
    """A 32-byte topic word for an address or a uint."""
    if isinstance(value, str):
        return "0x" + value[2:].lower().rjust(64, "0")
    return "0x" + (value % 2**256).to_bytes(32, "big").hex()


def error_string(message: str) -> str:
    return "0x" + (keccak(text="Error(string)")[:4] + encode(["string"], [message])).hex()


def custom_error(sig: str) -> str:
    return selector(sig)


def _norm(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    if isinstance(value, list | tuple):
        return tuple(_norm(v) for v in value)
    return value


# ------------------------------------------------------------------------------------------------ the chain


@dataclass
class Chain:
    rpc: RpcClient
    artifacts: dict[str, dict]
    events_by_topic: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in IMITATIONS + HELPERS:
            for item in self.artifacts[name]["abi"]:
                if item["type"] == "event":
                    self.events_by_topic.setdefault(topic(signature(item)), item)

    @cached_property
    def writer(self) -> ChainWriter:
        return ChainWriter(self.rpc)

    @cached_property
    def issuer(self) -> str:
        return self.rpc.call("eth_accounts")[0].lower()

    @cached_property
    def chain_id(self) -> int:
        return int(self.rpc.call("eth_chainId"), 16)

    def now(self) -> int:
        return int(self.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def head(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def mine_at(self, timestamp: int) -> int:
        return self.writer.mine(timestamp)

    def storage(self, address: str, slot: int) -> int:
        return int(self.rpc.call("eth_getStorageAt", [address, hex(slot), "latest"]), 16)

    def receipt(self, tx_hash: str) -> dict:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            receipt = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                block = self.rpc.call("eth_getBlockByNumber", [receipt["blockNumber"], False])
                receipt["timestamp"] = int(block["timestamp"], 16)
                return receipt
            time.sleep(0.005)
        raise AssertionError(f"no receipt for {tx_hash}")

    def send(self, sender: str, to: str | None, data: str, *, at: int | None = None, gas: int = 15_000_000) -> dict:
        if at is not None:
            self.rpc.call("evm_setNextBlockTimestamp", [at])
        (tx_hash,) = self.writer.send_all([Tx(sender, to, data, gas)])
        return self.receipt(tx_hash)

    def deploy(self, name: str, types: list[str], args: list[Any], *, sender: str | None = None,
               at: int | None = None) -> tuple[Contract, dict]:
        data = self.artifacts[name]["bytecode"] + encode(types, args).hex()
        receipt = self.send(sender or self.issuer, None, data, at=at)
        assert receipt["status"] == "0x1", f"deploying {name} failed"
        return Contract(self, name, receipt["contractAddress"].lower()), receipt

    def at(self, name: str, address: str) -> Contract:
        return Contract(self, name, address.lower())

    def decode(self, log: dict) -> tuple[str, str, tuple]:
        """(emitter, event name, values in declaration order) of one log."""
        item = self.events_by_topic[log["topics"][0]]
        data = iter(decode([_type(p) for p in item["inputs"] if not p["indexed"]], bytes.fromhex(log["data"][2:])))
        topics = iter(log["topics"][1:])
        values = []
        for p in item["inputs"]:
            if p["indexed"]:
                values.append(_norm(decode([_type(p)], bytes.fromhex(next(topics)[2:]))[0]))
            else:
                values.append(_norm(next(data)))
        return log["address"].lower(), item["name"], tuple(values)

    def events(self, receipt: dict) -> list[tuple[str, str, tuple]]:
        return [self.decode(log) for log in receipt["logs"]]

    def logs_between(self, address: str, first: int, last: int) -> list[dict]:
        return self.rpc.call("eth_getLogs", [{"address": address, "fromBlock": hex(first), "toBlock": hex(last)}])


@dataclass
class Contract:
    chain: Chain
    name: str
    address: str

    @cached_property
    def abi(self) -> ContractAbi:
        return ContractAbi(self.name, self.chain.artifacts[self.name]["abi"])

    def calldata(self, fn: str, *args: Any) -> str:
        return self.abi.fn(fn).encode(*args)

    def call(self, fn: str, *args: Any, sender: str | None = None) -> Any:
        f = self.abi.fn(fn)
        request = {"to": self.address, "data": f.encode(*args), **({"from": sender} if sender else {})}
        out = _norm(f.decode(self.chain.rpc.call("eth_call", [request, "latest"])))
        return out[0] if len(out) == 1 else out

    def reverts_with(self, fn: str, *args: Any, sender: str | None = None) -> str:
        """The revert data of calling `fn` ("0x" when empty); fails the test if the call succeeds."""
        request = {"from": sender or self.chain.issuer, "to": self.address, "data": self.calldata(fn, *args)}
        try:
            result = self.chain.rpc.call("eth_call", [request, "latest"])
        except RpcError as exc:
            assert exc.kind == "reverted", exc
            return exc.data or "0x"
        raise AssertionError(f"{self.name}.{fn}{args} did not revert (returned {result})")

    def transact(self, fn: str, *args: Any, sender: str | None = None, at: int | None = None) -> dict:
        return self.chain.send(sender or self.chain.issuer, self.address, self.calldata(fn, *args), at=at)

    def send(self, fn: str, *args: Any, sender: str | None = None, at: int | None = None) -> dict:
        receipt = self.transact(fn, *args, sender=sender, at=at)
        assert receipt["status"] == "0x1", f"{self.name}.{fn}{args} reverted"
        return receipt

    def events(self, receipt: dict) -> list[tuple[str, tuple]]:
        """This contract's events in the receipt, in log order."""
        return [(name, values) for emitter, name, values in self.chain.events(receipt) if emitter == self.address]


@dataclass
class Env:
    chain: Chain
    oracle: Contract
    impl: dict[str, Contract]
    factory: dict[str, Contract]
    proxy_admin: dict[str, Contract]
    names: itertools.count = field(default_factory=itertools.count)

    def token(self, version: str = "V4", *, fee: int = 0, period: int = DAY, last: int | None = None,
              at: int | None = None) -> Contract:
        """A fresh xStock proxy deployed through the version's factory (roles: the constants above)."""
        n = next(self.names)
        at = at if at is not None else self.chain.now() + 5  # mined at a known time: lastTimeFeeApplied <= now
        config = token_config(f"Imitation xStock {n}", f"IMX{n}", self.oracle.address, period,
                              last if last is not None else at, fee)
        receipt = self.factory[version].send("deployToken", config, at=at)
        ((_, (address, _, _)),) = [e for e in self.factory[version].events(receipt) if e[0] == "NewToken"]
        return self.chain.at(f"XStock{version}", address)


def token_config(name: str, symbol: str, sanctions: str, period: int, last: int, fee: int) -> tuple:
    return (name, symbol, TOKEN_OWNER, MINTER, BURNER, PAUSER, sanctions, UPDATER, period, last, fee)


@pytest.fixture(scope="module")
def chain(rpc: RpcClient, artifacts: dict[str, dict]) -> Chain:
    return Chain(rpc, artifacts)


@pytest.fixture(scope="module")
def env(chain: Chain) -> Env:
    oracle, _ = chain.deploy("ChainalysisOracle", [], [])
    impl, factory, proxy_admin = {}, {}, {}
    for version in ("V3", "V4"):
        impl[version], _ = chain.deploy(f"XStock{version}", [], [])
        factory[version], _ = chain.deploy("XStockFactory", ["address", "address"],
                                           [PROXY_ADMIN_OWNER, impl[version].address])
        proxy_admin[version] = chain.at("ProxyAdmin", factory[version].call("proxyAdmin"))
    return Env(chain, oracle, impl, factory, proxy_admin)


def fee_periods(m: int, fee: int, periods: int) -> int:
    for _ in range(periods):
        m = m * (ONE - fee) // ONE
    return m


# ------------------------------------------------------------------------------------------ the Python model


@dataclass
class MultiplierModel:
    """Research §3: getCurrentMultiplier, the fold, and explicit updates, written out independently."""

    last_m: int
    last_n: int
    new_m: int
    new_n: int
    act: int
    last_fee_time: int
    period: int
    fee: int
    history: list[tuple[int, int, int]] | None  # V4's multiplierUpdates; None for V3

    @classmethod
    def fresh(cls, period: int, last: int, fee: int, v4: bool) -> MultiplierModel:
        return cls(ONE, 0, ONE, 0, 0, last, period, fee, [(ONE, ONE, 0)] if v4 else None)

    def stored(self) -> tuple:
        return (self.last_m, self.last_n, self.new_m, self.new_n, self.act, self.last_fee_time, self.period, self.fee)

    def current(self, t: int) -> tuple[int, int, int]:
        if t < self.act:
            return (self.last_m, 0, self.last_n)
        assert t >= self.last_fee_time
        periods = (t - self.last_fee_time) // self.period
        m, nonce = self.new_m, self.new_n
        if self.fee > 0:
            for _ in range(periods):
                m = m * (ONE - self.fee) // ONE
            nonce += periods
        return (m, periods, nonce)

    def fold(self, t: int) -> list[tuple[str, tuple]]:
        m, periods, nonce = self.current(t)
        self.last_fee_time += self.period * periods
        return self._apply(m, nonce, 0, t) if self.last_m != m else []

    def _apply(self, m: int, nonce: int, act: int, t: int) -> list[tuple[str, tuple]]:
        assert m != 0 and act < self.last_fee_time + self.period
        self.new_m, self.new_n = m, nonce
        if act > t:
            self.act = act
            return [("MultiplierScheduled", (m, act))] if self.history is not None else []
        self.act, self.last_m, self.last_n = 0, m, nonce
        return [("MultiplierUpdated", (m,))]

    def explicit(self, m: int, old: int, act: int, t: int, nonce: int | None = None) -> list[tuple[str, tuple]]:
        """The events of updateMultiplierValue (nonce None) or updateMultiplierWithNonce at time t."""
        events = self.fold(t)
        current_m, _, current_n = self.current(t)
        assert current_m == old
        if nonce is None:
            nonce = self.last_n + 1
        else:
            assert current_n < nonce
        events += self._apply(m, nonce, act, t)
        if self.history is not None:
            entry = (old, m, max(act, t))
            if self.history and self.history[-1][2] > t:
                replaced, self.history[-1] = self.history[-1], entry
                events.append(("MultiplierScheduleOverridden", (replaced[1], replaced[2], m, entry[2])))
            else:
                self.history.append(entry)
        return events


STATE_GETTERS = ("lastMultiplier", "lastMultiplierNonce", "newMultiplier", "newMultiplierNonce",
                 "newMultiplierActivationTime", "lastTimeFeeApplied", "periodLength", "feePerPeriod")


def stored_state(token: Contract) -> tuple:
    return tuple(token.call(g) for g in STATE_GETTERS)


def transfer_events(frm: str, to: str, amount: int, shares: int) -> list[tuple[str, tuple]]:
    return [("Transfer", (frm, to, amount)), ("TransferShares", (frm, to, shares))]


# ============================================================================================ ABI surfaces


def _functions(abi: list[dict]) -> dict[str, str]:
    return {selector(signature(i)): signature(i) for i in abi if i["type"] == "function"}


def _events(abi: list[dict]) -> dict[str, tuple[str, tuple[bool, ...]]]:
    return {signature(i): (topic(signature(i)), tuple(p["indexed"] for p in i["inputs"]))
            for i in abi if i["type"] == "event"}


def _listed(text: str) -> dict[str, str]:
    return dict(line.split() for line in text.strip().splitlines())


def test_published_selectors_and_topics_are_the_keccak_of_their_signatures() -> None:
    for sig, (expected, _) in EVENTS.items():
        assert topic(sig) == expected, sig
    for sig, (head, tail) in EVENT_TOPIC_ENDS.items():
        assert topic(sig).startswith(head) and topic(sig).endswith(tail), sig
    for text in [XSTOCK_V4_FUNCTIONS, *OTHER_FUNCTIONS.values()]:
        for sel, sig in _listed(text).items():
            assert selector(sig) == sel, sig


def test_xstock_abis_are_exactly_the_real_surfaces(artifacts: dict[str, dict]) -> None:
    v4 = _listed(XSTOCK_V4_FUNCTIONS)
    v3 = {sel: sig for sel, sig in v4.items() if sig not in V4_ONLY_FUNCTIONS}
    assert len(v4) == 71 and len(v3) == 68
    assert _functions(artifacts["XStockV4"]["abi"]) == v4
    assert _functions(artifacts["XStockV3"]["abi"]) == v3
    assert _events(artifacts["XStockV4"]["abi"]) == {s: EVENTS[s] for s in XSTOCK_V4_EVENTS}
    assert _events(artifacts["XStockV3"]["abi"]) == {s: EVENTS[s] for s in XSTOCK_V3_EVENTS}
    # no totalShares() and no paused(): the share total lives in slot 264 only, pause is isPaused()
    assert "totalShares()" not in v4.values() and "paused()" not in v4.values()

    outputs = {i["name"]: [(o["name"], o["type"]) for o in i["outputs"]]
               for i in artifacts["XStockV4"]["abi"] if i["type"] == "function"}
    assert outputs["getCurrentMultiplier"] == [
        ("currentMultiplier", "uint256"), ("periodsPassed", "uint256"), ("currentMultiplierNonce", "uint256")]
    assert outputs["multiplierUpdates"] == [
        ("previousMultiplier", "uint256"), ("newMultiplier", "uint256"), ("activationTime", "uint256")]
    assert outputs["sanctionsList"] == [("", "address")]


def test_xstock_storage_layout_is_the_mainnet_one(artifacts: dict[str, dict]) -> None:
    layout = {s["label"]: (int(s["slot"]), s["offset"]) for s in artifacts["XStockV4"]["storage"]["storage"]}
    assert {k: v for k, v in layout.items() if not k.startswith("__")} == {
        "_initialized": (0, 0), "_initializing": (0, 1), "_owner": (51, 0), "_unusedBalances": (101, 0),
        "_allowances": (102, 0), "_unusedTotalSupply": (103, 0), "_name": (104, 0), "_symbol": (105, 0),
        "nonces": (151, 0), "DOMAIN_SEPARATOR": (152, 0), "minter": (203, 0), "burner": (204, 0),
        "pauser": (205, 0), "delegateMode": (205, 20), "delegateWhitelist": (206, 0), "isPaused": (207, 0),
        "sanctionsList": (207, 1), "terms": (208, 0), "multiplierUpdater": (258, 0),
        "lastTimeFeeApplied": (259, 0), "feePerPeriod": (260, 0), "periodLength": (261, 0),
        "lastMultiplier": (262, 0), "_shares": (263, 0), "_totalShares": (264, 0),
        "lastMultiplierNonce": (265, 0), "newMultiplierNonce": (266, 0), "newMultiplier": (267, 0),
        "newMultiplierActivationTime": (268, 0), "multiplierUpdates": (269, 0),
    }
    v3 = {s["label"]: int(s["slot"]) for s in artifacts["XStockV3"]["storage"]["storage"]}
    assert "multiplierUpdates" not in v3 and max(v3.values()) == 268


def test_other_abis_carry_the_real_selectors_and_events(artifacts: dict[str, dict]) -> None:
    for name, text in OTHER_FUNCTIONS.items():
        functions = _functions(artifacts[name]["abi"])
        for sel, sig in _listed(text).items():
            assert functions.get(sel) == sig, (name, sig)
    expected_events = {
        "XStockFactory": ["NewToken(address,string,string)", "NewImplementation(address)",
                          "OwnershipTransferred(address,address)"],
        "TransparentProxy": ["Upgraded(address)", "AdminChanged(address,address)"],
        "ProxyAdmin": ["OwnershipTransferred(address,address)"],
        "ChainalysisOracle": ["SanctionedAddressesAdded(address[])", "SanctionedAddressesRemoved(address[])",
                              "OwnershipTransferred(address,address)"],
        "OcrAggregator": ["AnswerUpdated(int256,uint256,uint256)", "NewRound(uint256,address,uint256)"],
        "FeedProxy": ["AnswerUpdated(int256,uint256,uint256)", "NewRound(uint256,address,uint256)"],
        "ScaledUiStock": ["UIMultiplierUpdated(uint256,uint256,uint256)", "Transfer(address,address,uint256)",
                          "TransferWithScaledUI(address,address,uint256,uint256)"],
        "ScaledUiStockDraft": ["UIMultiplierUpdated(uint256,uint256,uint256,uint256)",
                               "TransferWithScaledUI(address,address,uint256,uint256)"],
        "B20Asset": ["MultiplierUpdated(uint256)", "Transfer(address,address,uint256)"],
    }
    for name, sigs in expected_events.items():
        events = _events(artifacts[name]["abi"])
        for sig in sigs:
            assert events.get(sig) == EVENTS[sig], (name, sig)
    oracle_events = _events(artifacts["ChainalysisOracle"]["abi"])
    for sig, (head, tail) in EVENT_TOPIC_ENDS.items():
        assert oracle_events[sig][0].startswith(head) and oracle_events[sig][0].endswith(tail)
        assert oracle_events[sig][1] == (True,)
    assert _events(artifacts["OcrAggregator"]["abi"])[
        "NewTransmission(uint32,int192,address,int192[],bytes,bytes32)"][1] == (True, False, False, False, False, False)
    assert _events(artifacts["ScaledUiStock"]["abi"])["AddressFrozen(address,bool,address)"][1] == (True, True, True)
    # v0.6 proxies log nothing on propose/confirm; the draft token has only the 4-argument event; B20 has no UI event
    assert not {"AggregatorProposed(address,address)", "AggregatorConfirmed(address,address)"} & set(
        _events(artifacts["FeedProxy"]["abi"]))
    assert "UIMultiplierUpdated(uint256,uint256,uint256)" not in _events(artifacts["ScaledUiStockDraft"]["abi"])
    assert not any(s.startswith("UIMultiplierUpdated") for s in _events(artifacts["B20Asset"]["abi"]))
    assert "toUIAmount(uint256)" not in _functions(artifacts["ScaledUiStock"]["abi"]).values()
    typed = {i["name"]: i["outputs"][0]["type"] for i in artifacts["OcrAggregator"]["abi"]
             if i["type"] == "function" and i["outputs"]}
    assert typed["minAnswer"] == typed["maxAnswer"] == "int192"


def test_compiled_with_the_build_script_settings_and_matching_committed_abis(artifacts: dict[str, dict]) -> None:
    committed = ROOT / "build" / "contracts" / "PlainToken.json"
    if committed.exists():  # same settings give the same bytes as the build script's artifact
        assert json.loads(committed.read_text())["bytecode"] == artifacts["PlainToken"]["bytecode"]
    committed_abis = {f.stem: json.loads(f.read_text()) for f in (ROOT / "indexer" / "abis").glob("*.json")}
    assert set(IMITATIONS + HELPERS) <= set(committed_abis)
    for name, abi in committed_abis.items():
        assert abi == artifacts[name]["abi"], name
    script = (ROOT / "scripts" / "build_contracts.mjs").read_text()
    assert re.search(r"readdirSync\(CONTRACTS_DIR\)", script)  # the build compiles every top-level contracts/*.sol
    assert all((ROOT / "contracts" / f).exists() for f in (
        "XStock.sol", "TransparentProxy.sol", "XStockFactory.sol", "ChainalysisOracle.sol", "ChainlinkFeeds.sol",
        "ScaledUiStock.sol", "ScaledUiStockDraft.sol", "B20Asset.sol"))


# ============================================================================================ deployment


def create2(deployer: str, salt: bytes, init_code: bytes) -> str:
    return "0x" + keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + keccak(init_code))[12:].hex()


def test_factory_constructor_and_deployment_logs_come_in_the_real_order(chain: Chain, env: Env) -> None:
    impl = env.impl["V4"]
    factory, receipt = chain.deploy("XStockFactory", ["address", "address"], [PROXY_ADMIN_OWNER, impl.address])
    proxy_admin = factory.call("proxyAdmin")
    assert chain.events(receipt) == [
        (factory.address, "OwnershipTransferred", (ZERO, chain.issuer)),
        (proxy_admin, "OwnershipTransferred", (ZERO, factory.address)),
        (proxy_admin, "OwnershipTransferred", (factory.address, PROXY_ADMIN_OWNER)),
    ]
    assert factory.call("tokenImplementation") == impl.address
    assert factory.call("owner") == chain.issuer
    assert chain.at("ProxyAdmin", proxy_admin).call("owner") == PROXY_ADMIN_OWNER

    t = chain.now() + 10
    name, symbol = "Tesla xStock", "TSLAx"
    config = token_config(name, symbol, env.oracle.address, DAY, t - 3_600, 10**15)
    receipt = factory.send("deployToken", config, at=t)
    init_data = ContractAbi("XStockV4", chain.artifacts["XStockV4"]["abi"]).fn(
        "initialize(string,string,uint256,uint256,uint256)").encode_bytes(name, symbol, DAY, t - 3_600, 10**15)
    init_code = bytes.fromhex(chain.artifacts["TransparentProxy"]["bytecode"][2:]) + encode(
        ["address", "address", "bytes"], [impl.address, proxy_admin, init_data])
    token = create2(factory.address, keccak(name.encode() + symbol.encode()), init_code)

    def raw(address: str, sig: str, topics: list, data: bytes = b"") -> tuple:
        return (address, [EVENTS[sig][0], *topics], "0x" + data.hex())

    assert [(log["address"], log["topics"], log["data"]) for log in receipt["logs"]] == [
        raw(token, "Upgraded(address)", [word(impl.address)]),
        raw(token, "OwnershipTransferred(address,address)", [word(ZERO), word(factory.address)]),
        raw(token, "NewTerms(string)", [], encode(["string"], [TERMS])),
        raw(token, "AdminChanged(address,address)", [], encode(["address", "address"], [ZERO, proxy_admin])),
        raw(token, "NewMinter(address)", [word(MINTER)]),
        raw(token, "NewBurner(address)", [word(BURNER)]),
        raw(token, "NewPauser(address)", [word(PAUSER)]),
        raw(token, "NewMultiplierUpdater(address)", [word(UPDATER)]),
        raw(token, "NewSanctionsList(address)", [word(env.oracle.address)]),
        raw(token, "OwnershipTransferred(address,address)", [word(factory.address), word(TOKEN_OWNER)]),
        raw(factory.address, "NewToken(address,string,string)", [word(token)], encode(["string", "string"], [name, symbol])),
    ]

    xs = chain.at("XStockV4", token)
    assert (xs.call("name"), xs.call("symbol"), xs.call("decimals"), xs.call("VERSION")) == (name, symbol, 18, "1.1.0")
    assert (xs.call("owner"), xs.call("minter"), xs.call("burner"), xs.call("pauser"), xs.call("multiplierUpdater"),
            xs.call("sanctionsList"), xs.call("terms")) == (
        TOKEN_OWNER, MINTER, BURNER, PAUSER, UPDATER, env.oracle.address, TERMS)
    assert stored_state(xs) == (ONE, 0, ONE, 0, 0, t - 3_600, DAY, 10**15)
    assert xs.call("multiplierUpdatesLength") == 1 and xs.call("multiplierUpdates", 0) == (ONE, ONE, 0)
    assert chain.storage(token, IMPLEMENTATION_SLOT) == int(impl.address, 16)
    assert chain.storage(token, ADMIN_SLOT) == int(proxy_admin, 16)
    pa = chain.at("ProxyAdmin", proxy_admin)
    assert pa.call("getProxyImplementation", token) == impl.address
    assert pa.call("getProxyAdmin", token) == proxy_admin

    # the CREATE2 address is taken: the same name and symbol cannot be deployed twice by this factory
    assert factory.transact("deployToken", config)["status"] == "0x0"
    assert factory.reverts_with("deployToken", config, sender=ALICE) == error_string("Ownable: caller is not the owner")
    no_minter = config[:3] + (ZERO,) + config[4:]
    assert factory.reverts_with("deployToken", no_minter) == error_string("Factory: address should not be 0")

    # updateImplementation changes future deployments only
    receipt = factory.send("updateImplementation", env.impl["V3"].address)
    assert chain.events(receipt) == [(factory.address, "NewImplementation", (env.impl["V3"].address,))]
    assert pa.call("getProxyImplementation", token) == impl.address
    other = factory.send("deployToken", token_config("Other", "OTHx", env.oracle.address, DAY, t, 0))
    ((_, (other_token, _, _)),) = [e for e in factory.events(other) if e[0] == "NewToken"]
    assert pa.call("getProxyImplementation", other_token) == env.impl["V3"].address


def test_implementation_is_locked_by_its_constructor(chain: Chain) -> None:
    impl, receipt = chain.deploy("XStockV4", [], [])
    assert chain.events(receipt) == [
        (impl.address, "OwnershipTransferred", (ZERO, chain.issuer)),
        (impl.address, "NewTerms", (TERMS,)),
    ]
    assert (impl.call("name"), impl.call("symbol"), impl.call("owner")) == (
        "Backed Token Implementation", "BTI", chain.issuer)
    assert (impl.call("lastTimeFeeApplied"), impl.call("periodLength"), impl.call("multiplierUpdatesLength")) == (
        1, DAY, 1)
    assert impl.reverts_with("initialize(string,string,uint256,uint256,uint256)", "X", "X", DAY, 5, 0) == (
        error_string("Initializable: contract is already initialized"))
    assert impl.reverts_with("initialize(string,string)", "X", "X") == error_string(
        "Initializable: contract is already initialized")
    assert impl.reverts_with("initialize_v2", DAY, 5, 0) == error_string(
        "BackedAutoFeeTokenImplementation already initialized")
    assert impl.reverts_with("initialize_v3") == error_string("BackedAutoFeeTokenImplementation v3 already initialized")
    assert impl.reverts_with("initialize_v4", []) == error_string(
        "BackedAutoFeeTokenImplementation v4 already initialized")


def test_transparent_proxy_constructor_order_and_admin_rules(chain: Chain, env: Env) -> None:
    admin, _ = chain.deploy("ProxyAdmin", [], [])
    xs_abi = ContractAbi("XStockV4", chain.artifacts["XStockV4"]["abi"])
    t = chain.now() + 10
    init = xs_abi.fn("initialize(string,string,uint256,uint256,uint256)").encode_bytes("Direct", "DIR", DAY, t, 0)
    proxy, receipt = chain.deploy("TransparentProxy", ["address", "address", "bytes"],
                                  [env.impl["V4"].address, admin.address, init], at=t)
    # Upgraded, then the initializer's logs (owner = the deployer, default terms, no fee event), then AdminChanged
    assert chain.events(receipt) == [
        (proxy.address, "Upgraded", (env.impl["V4"].address,)),
        (proxy.address, "OwnershipTransferred", (ZERO, chain.issuer)),
        (proxy.address, "NewTerms", (TERMS,)),
        (proxy.address, "AdminChanged", (ZERO, admin.address)),
    ]
    token = chain.at("XStockV4", proxy.address)
    assert token.call("owner") == chain.issuer
    # the admin cannot reach the token; everyone else cannot reach the admin functions (forwarded instead)
    assert token.reverts_with("balanceOf", ALICE, sender=admin.address) == error_string(
        "TransparentUpgradeableProxy: admin cannot fallback to proxy target")
    assert proxy.reverts_with("admin", sender=ALICE) == "0x"  # forwarded to the token, which has no admin()
    assert proxy.call("admin", sender=admin.address) == admin.address
    assert proxy.call("implementation", sender=admin.address) == env.impl["V4"].address

    # without a sanctions list, mint works and transfers revert (the call goes to address 0)
    token.send("setMinter", MINTER)
    token.send("mint", ALICE, 5 * ONE, sender=MINTER)
    assert token.reverts_with("transfer", BOB, ONE, sender=ALICE) == "0x"

    receipt = admin.send("changeProxyAdmin", proxy.address, DAVE)
    assert chain.events(receipt) == [(proxy.address, "AdminChanged", (admin.address, DAVE))]
    assert proxy.call("admin", sender=DAVE) == DAVE
    assert proxy.reverts_with("upgradeTo", env.impl["V3"].address, sender=admin.address) == "0x"  # no longer admin
    receipt = proxy.send("upgradeTo", env.impl["V3"].address, sender=DAVE)
    assert chain.events(receipt) == [(proxy.address, "Upgraded", (env.impl["V3"].address,))]
    assert proxy.reverts_with("upgradeTo", ALICE, sender=DAVE) == error_string(
        "ERC1967: new implementation is not a contract")
    assert proxy.reverts_with("changeAdmin", ZERO, sender=DAVE) == error_string("ERC1967: new admin is the zero address")
    assert chain.at("XStockV3", proxy.address).call("balanceOf", ALICE) == 5 * ONE


# ============================================================================================ the multiplier rule


def test_get_current_multiplier_follows_the_python_rule_over_random_schedules(chain: Chain, env: Env) -> None:
    rng = random.Random(20_260_101)
    checked = 0
    seen: Counter[str] = Counter()  # what the seeded run exercised
    for scenario in range(12):
        version = "V4" if scenario % 2 == 0 else "V3"
        fee = rng.choice([0, 10**15, 3 * 10**15, rng.randrange(1, 5 * 10**16)])
        period = rng.choice([3_600, DAY, rng.randrange(600, 20_000)])
        t = chain.now() + 10
        last = t - rng.randrange(0, 3 * period)
        token = env.token(version, fee=fee, period=period, last=last, at=t)
        model = MultiplierModel.fresh(period, last, fee, version == "V4")
        assert stored_state(token) == model.stored()

        t += 1
        expected = model.fold(t)
        m = model.current(t)[0]
        receipt = token.send("mint", ALICE, 1_000 * ONE, sender=MINTER, at=t)
        assert token.events(receipt) == expected + transfer_events(ZERO, ALICE, 1_000 * ONE, 1_000 * ONE * ONE // m)
        shares = {ALICE: 1_000 * ONE * ONE // m, BOB: 0}

        for _ in range(12):
            t += rng.randrange(1, 2 * period)
            op = rng.choice(["view", "view", "transfer", "update", "update", "nonce", "fee"])
            if op == "view":
                chain.mine_at(t)
            elif op == "transfer":
                amount = rng.randrange(1, token.call("balanceOf", ALICE) // 50 + 2)
                expected = model.fold(t)
                moved = amount * ONE // model.current(t)[0]
                receipt = token.send("transfer", BOB, amount, sender=ALICE, at=t)
                assert token.events(receipt) == expected + transfer_events(ALICE, BOB, amount, moved)
                seen["folding transfer"] += bool(expected)
                shares[ALICE] -= moved
                shares[BOB] += moved
            elif op in ("update", "nonce"):
                probe = MultiplierModel(**{**model.__dict__, "history": None})
                probe.fold(t)
                old, _, current_nonce = probe.current(t)
                new_value = max(1, old * rng.randrange(50, 200) // 100)
                boundary = probe.last_fee_time + period
                kind = rng.random()
                if kind < 0.3 or boundary <= t + 1:
                    act = 0 if kind < 0.15 else max(0, t - rng.randrange(0, 100))
                else:
                    act = rng.randrange(t + 1, boundary)
                if op == "update":
                    expected = model.explicit(new_value, old, act, t)
                    receipt = token.send("updateMultiplierValue", new_value, old, act, sender=UPDATER, at=t)
                else:
                    nonce = current_nonce + rng.randrange(1, 4)
                    expected = model.explicit(new_value, old, act, t, nonce)
                    receipt = token.send("updateMultiplierWithNonce", new_value, old, nonce, act, sender=UPDATER, at=t)
                assert token.events(receipt) == expected
                seen.update(name for name, _ in expected)
                seen["silent V3 schedule"] += version == "V3" and act > t
            else:
                probe = MultiplierModel(**{**model.__dict__, "history": None})
                probe.fold(t)
                new_fee = rng.choice([0, 10**15, 2 * 10**15])
                receipt = token.transact("updateFeePerPeriod", new_fee, sender=TOKEN_OWNER, at=t)
                if probe.act != 0:  # "Multiplier activation in progress": reverted, fold included
                    assert receipt["status"] == "0x0"
                    seen["fee setter refused"] += 1
                else:
                    assert receipt["status"] == "0x1"
                    assert token.events(receipt) == model.fold(t)
                    model.fee = new_fee
            assert chain.now() == t
            assert stored_state(token) == model.stored()
            current = model.current(t)
            assert token.call("getCurrentMultiplier") == current
            assert token.call("multiplier") == (model.new_m if t >= model.act else model.last_m)
            assert token.call("multiplierNonce") == (model.new_n if t >= model.act else model.last_n)
            assert token.call("balanceOf", ALICE) == shares[ALICE] * current[0] // ONE
            assert token.call("totalSupply") == (shares[ALICE] + shares[BOB]) * current[0] // ONE
            if model.history is not None:
                assert token.call("multiplierUpdatesLength") == len(model.history)
                assert token.call("multiplierUpdates", len(model.history) - 1) == model.history[-1]
            checked += 1
            seen["pending at a probe"] += t < model.act
            seen["fee periods in a probe"] += current[1]
    assert checked == 12 * 12
    for what in ("MultiplierUpdated", "MultiplierScheduled", "MultiplierScheduleOverridden", "silent V3 schedule",
                 "fee setter refused", "folding transfer", "pending at a probe"):
        assert seen[what] > 0, what


def test_fold_on_transfer_emits_the_combined_value_and_advances_by_whole_periods(chain: Chain, env: Env) -> None:
    fee, period = 10**15, DAY
    t0 = chain.now() + 10
    token = env.token(fee=fee, period=period, at=t0)
    token.send("mint", ALICE, 1_000 * ONE, sender=MINTER, at=t0 + 1)
    # non-folding calls leave the stored state alone even after periods passed
    t = t0 + 3 * period + 777
    token.send("approve", BOB, ONE, sender=ALICE, at=t)
    token.send("setPause", False, sender=PAUSER, at=t + 1)
    token.send("setTerms", "new terms", sender=TOKEN_OWNER, at=t + 2)
    assert stored_state(token) == (ONE, 0, ONE, 0, 0, t0, period, fee)
    assert token.call("getCurrentMultiplier") == (fee_periods(ONE, fee, 3), 3, 3)
    assert token.call("multiplier") == ONE and token.call("multiplierNonce") == 0  # views exclude the fee

    m3 = fee_periods(ONE, fee, 3)
    assert m3 == 997_002_999_000_000_000
    receipt = token.send("transfer", BOB, 100 * ONE, sender=ALICE, at=t + 3)
    assert token.events(receipt) == [("MultiplierUpdated", (m3,))] + transfer_events(
        ALICE, BOB, 100 * ONE, 100_300_601_001_502_102_803)
    assert stored_state(token) == (m3, 3, m3, 3, 0, t0 + 3 * period, period, fee)
    assert token.call("getCurrentMultiplier") == (m3, 0, 3)

    # with no fee the clock still advances by whole periods, the nonce does not, and nothing is logged
    free = env.token(fee=0, period=period, at=t + 10)
    free.send("mint", ALICE, ONE, sender=MINTER, at=t + 11)
    receipt = free.send("transfer", BOB, ONE // 2, sender=ALICE, at=t + 10 + 5 * period + 9)
    assert free.events(receipt) == transfer_events(ALICE, BOB, ONE // 2, ONE // 2)
    assert stored_state(free) == (ONE, 0, ONE, 0, 0, t + 10 + 5 * period, period, 0)


def test_fee_setters_emit_nothing_but_the_fold(chain: Chain, env: Env) -> None:
    fee, period = 2 * 10**15, 3_600
    t0 = chain.now() + 10
    token = env.token(fee=fee, period=period, at=t0)
    for fn, arg in [("updateFeePerPeriod", 10**15), ("setPeriodLength", 7_200), ("setLastTimeFeeApplied", t0 + 5)]:
        assert token.reverts_with(fn, arg, sender=ALICE) == error_string("Ownable: caller is not the owner")
    receipt = token.send("updateFeePerPeriod", 10**15, sender=TOKEN_OWNER, at=t0 + 10)
    assert receipt["logs"] == []
    receipt = token.send("setPeriodLength", 7_200, sender=TOKEN_OWNER, at=t0 + 11)
    assert receipt["logs"] == []
    receipt = token.send("setLastTimeFeeApplied", t0 + 5, sender=TOKEN_OWNER, at=t0 + 12)
    assert receipt["logs"] == []
    assert stored_state(token) == (ONE, 0, ONE, 0, 0, t0 + 5, 7_200, 10**15)
    assert token.reverts_with("setLastTimeFeeApplied", 0, sender=TOKEN_OWNER) == error_string(
        "Invalid last time fee applied")
    # two periods later the setter's own fold is the only log
    receipt = token.send("updateFeePerPeriod", 0, sender=TOKEN_OWNER, at=t0 + 5 + 2 * 7_200 + 1)
    assert token.events(receipt) == [("MultiplierUpdated", (fee_periods(ONE, 10**15, 2),))]
    # while a schedule is pending all three refuse
    token.send("updateMultiplierValue", 3 * ONE, fee_periods(ONE, 10**15, 2), t0 + 5 + 2 * 7_200 + 100,
               sender=UPDATER, at=t0 + 5 + 2 * 7_200 + 2)
    for fn, arg in [("updateFeePerPeriod", 1), ("setPeriodLength", 1), ("setLastTimeFeeApplied", 1)]:
        assert token.reverts_with(fn, arg, sender=TOKEN_OWNER) == error_string("Multiplier activation in progress")


def test_a_schedule_equal_to_the_last_value_is_never_folded(chain: Chain, env: Env) -> None:
    t0 = chain.now() + 10
    token = env.token(fee=0, period=DAY, at=t0)
    token.send("mint", ALICE, ONE, sender=MINTER, at=t0 + 1)
    token.send("updateMultiplierValue", ONE, ONE, t0 + 100, sender=UPDATER, at=t0 + 2)
    receipt = token.send("transfer", BOB, 1, sender=ALICE, at=t0 + 200)
    assert token.events(receipt) == transfer_events(ALICE, BOB, 1, 1)  # same value: the fold writes nothing
    assert stored_state(token) == (ONE, 0, ONE, 1, t0 + 100, t0, DAY, 0)  # activation time stays set
    assert token.call("getCurrentMultiplier") == (ONE, 0, 1)
    assert token.reverts_with("updateFeePerPeriod", 1, sender=TOKEN_OWNER) == error_string(
        "Multiplier activation in progress")
    # only an explicit immediate update clears it
    receipt = token.send("updateMultiplierValue", 2 * ONE, ONE, 0, sender=UPDATER, at=t0 + 300)
    assert token.events(receipt) == [("MultiplierUpdated", (2 * ONE,))]
    assert stored_state(token) == (2 * ONE, 1, 2 * ONE, 1, 0, t0, DAY, 0)
    assert token.send("updateFeePerPeriod", 1, sender=TOKEN_OWNER, at=t0 + 301)["logs"] == []


@pytest.mark.parametrize("version", ["V3", "V4"])
def test_activation_inside_a_period_moves_balances_silently_until_a_fold(chain: Chain, env: Env, version: str) -> None:
    fee, period = 10**15, DAY
    t0 = chain.now() + 10
    token = env.token(version, fee=fee, period=period, at=t0)
    token.send("mint", ALICE, 1_000 * ONE, sender=MINTER, at=t0 + 1)
    activation = t0 + 50_000
    receipt = token.send("updateMultiplierValue", 2 * ONE, ONE, activation, sender=UPDATER, at=t0 + 100)
    if version == "V4":
        assert token.events(receipt) == [("MultiplierScheduled", (2 * ONE, activation))]
        assert token.call("multiplierUpdates", 1) == (ONE, 2 * ONE, activation)
    else:
        assert receipt["logs"] == []  # the November 2025 code schedules silently
    assert stored_state(token) == (ONE, 0, 2 * ONE, 1, activation, t0, period, fee)
    assert token.reverts_with("updateMultiplierValue", 3 * ONE, ONE, t0 + period, sender=UPDATER) == error_string(
        "BackedToken: Activation time needs to be before next period")
    first = chain.head() + 1

    chain.mine_at(activation - 1)
    assert token.call("getCurrentMultiplier") == (ONE, 0, 0)
    assert token.call("balanceOf", ALICE) == 1_000 * ONE
    chain.mine_at(activation)
    assert token.call("getCurrentMultiplier") == (2 * ONE, 0, 1)
    assert token.call("balanceOf", ALICE) == 2_000 * ONE
    assert token.call("multiplier") == 2 * ONE and token.call("multiplierNonce") == 1
    # the fee clock was not restarted at activation: the first decay is at t0 + period
    chain.mine_at(t0 + period - 1)
    assert token.call("getCurrentMultiplier") == (2 * ONE, 0, 1)
    chain.mine_at(t0 + period)
    assert token.call("getCurrentMultiplier") == (fee_periods(2 * ONE, fee, 1), 1, 2)
    chain.mine_at(t0 + 3 * period + 5)
    m = fee_periods(2 * ONE, fee, 3)
    assert token.call("getCurrentMultiplier") == (m, 3, 4)
    assert token.call("balanceOf", ALICE) == 1_000 * ONE * m // ONE
    assert chain.logs_between(token.address, first, chain.head()) == []
    assert stored_state(token) == (ONE, 0, 2 * ONE, 1, activation, t0, period, fee)  # nothing written either

    receipt = token.send("transfer", BOB, ONE, sender=ALICE, at=t0 + 3 * period + 10)
    assert token.events(receipt) == [("MultiplierUpdated", (m,))] + transfer_events(ALICE, BOB, ONE, ONE * ONE // m)
    assert stored_state(token) == (m, 4, m, 4, 0, t0 + 3 * period, period, fee)


def test_v4_schedule_override_rewrites_the_pending_entry_in_place(chain: Chain, env: Env) -> None:
    period = DAY
    t0 = chain.now() + 10
    token = env.token("V4", fee=0, period=period, at=t0)
    first = token.send("updateMultiplierValue", 2 * ONE, ONE, t0 + 1_000, sender=UPDATER, at=t0 + 10)
    assert token.events(first) == [("MultiplierScheduled", (2 * ONE, t0 + 1_000))]
    second = token.send("updateMultiplierValue", 3 * ONE, ONE, t0 + 2_000, sender=UPDATER, at=t0 + 20)
    assert token.events(second) == [
        ("MultiplierScheduled", (3 * ONE, t0 + 2_000)),
        ("MultiplierScheduleOverridden", (2 * ONE, t0 + 1_000, 3 * ONE, t0 + 2_000)),
    ]
    assert token.call("multiplierUpdatesLength") == 2
    assert token.call("multiplierUpdates", 1) == (ONE, 3 * ONE, t0 + 2_000)
    assert token.call("newMultiplierNonce") == 1 and token.call("lastMultiplierNonce") == 0  # same nonce again
    # an immediate update that replaces a pending one also overrides it, with activationTime = now
    third = token.send("updateMultiplierValue", 4 * ONE, ONE, 0, sender=UPDATER, at=t0 + 30)
    assert token.events(third) == [
        ("MultiplierUpdated", (4 * ONE,)),
        ("MultiplierScheduleOverridden", (3 * ONE, t0 + 2_000, 4 * ONE, t0 + 30)),
    ]
    assert token.call("multiplierUpdatesLength") == 2
    # once the last entry is in the past, the next update appends
    fourth = token.send("updateMultiplierValue", 5 * ONE, 4 * ONE, t0 + 40, sender=UPDATER, at=t0 + 40)
    assert token.events(fourth) == [("MultiplierUpdated", (5 * ONE,))]
    assert token.call("multiplierUpdatesLength") == 3
    assert token.call("multiplierUpdates", 2) == (4 * ONE, 5 * ONE, t0 + 40)
    assert stored_state(token)[:5] == (5 * ONE, 2, 5 * ONE, 2, 0)


def test_explicit_update_rules_and_reverts(chain: Chain, env: Env) -> None:
    fee, period = 10**15, DAY
    t0 = chain.now() + 10
    token = env.token(fee=fee, period=period, at=t0)
    assert token.reverts_with("updateMultiplierValue", 2 * ONE, ONE, 0, sender=ALICE) == error_string(
        "BackedToken: Only multiplier updater")
    assert token.reverts_with("updateMultiplierValue", 0, ONE, 0, sender=UPDATER) == error_string(
        "BackedToken: Multiplier cannot be zero")
    chain.mine_at(t0 + 2 * period + 1)
    m2 = fee_periods(ONE, fee, 2)
    # the old value must be the fee-decayed live value, checked after the fold
    assert token.reverts_with("updateMultiplierValue", 2 * ONE, ONE, 0, sender=UPDATER) == error_string(
        "BackedToken: Multiplier changed in the meantime")
    assert token.reverts_with("updateMultiplierWithNonce", 2 * ONE, m2, 2, 0, sender=UPDATER) == error_string(
        "BackedToken: Multiplier nonce is outdated.")
    receipt = token.send("updateMultiplierWithNonce", 2 * ONE, m2, 7, 0, sender=UPDATER, at=t0 + 2 * period + 2)
    # fold first, then the explicit value: two MultiplierUpdated in one transaction
    assert token.events(receipt) == [("MultiplierUpdated", (m2,)), ("MultiplierUpdated", (2 * ONE,))]
    assert stored_state(token) == (2 * ONE, 7, 2 * ONE, 7, 0, t0 + 2 * period, period, fee)
    assert token.call("multiplierUpdates", 1) == (m2, 2 * ONE, t0 + 2 * period + 2)
    receipt = token.send("updateMultiplierValue", ONE, 2 * ONE, 0, sender=UPDATER, at=t0 + 2 * period + 3)
    assert token.events(receipt) == [("MultiplierUpdated", (ONE,))]
    assert token.call("getCurrentMultiplier") == (ONE, 0, 8)


def test_upgrade_v3_to_v4_through_proxy_admin_keeps_every_balance(chain: Chain, env: Env) -> None:
    fee, period = 10**15, DAY
    t0 = chain.now() + 10
    token = env.token("V3", fee=fee, period=period, at=t0)
    token.send("mint", ALICE, 1_000 * ONE, sender=MINTER, at=t0 + 1)
    token.send("transfer", BOB, 333 * ONE, sender=ALICE, at=t0 + period + 5)
    m1 = fee_periods(ONE, fee, 1)
    token.send("updateMultiplierValue", 2 * m1, m1, 0, sender=UPDATER, at=t0 + period + 6)
    token.send("approve", CAROL, 7 * ONE, sender=BOB, at=t0 + period + 7)
    activation = t0 + period + 3_000
    assert token.send("updateMultiplierValue", 3 * m1, 2 * m1, activation, sender=UPDATER,
                      at=t0 + period + 8)["logs"] == []
    pa = env.proxy_admin["V3"]
    assert pa.call("getProxyImplementation", token.address) == env.impl["V3"].address

    t = t0 + period + 100
    chain.mine_at(t)
    views = ["getCurrentMultiplier", "totalSupply", "multiplier", "multiplierNonce", *STATE_GETTERS, "name",
             "symbol", "owner", "minter", "burner", "pauser", "multiplierUpdater", "sanctionsList", "terms",
             "DOMAIN_SEPARATOR", "isPaused", "delegateMode"]
    holder_views = [("balanceOf", ALICE), ("balanceOf", BOB), ("sharesOf", ALICE), ("sharesOf", BOB),
                    ("allowance", BOB, CAROL), ("nonces", ALICE)]
    before = [token.call(v) for v in views] + [token.call(*v) for v in holder_views]
    slots = [0, 51, 102, 104, 105, 152, 203, 204, 205, 207, 208, *range(258, 269)]
    raw_before = [chain.storage(token.address, s) for s in slots]

    past = [(ONE, 2 * m1, t0 + period + 6)]
    v4 = ContractAbi("XStockV4", chain.artifacts["XStockV4"]["abi"])
    data = v4.fn("initialize_v4").encode_bytes(past)
    assert pa.reverts_with("upgradeAndCall", token.address, env.impl["V4"].address, data, sender=ALICE) == (
        error_string("Ownable: caller is not the owner"))
    receipt = pa.send("upgradeAndCall", token.address, env.impl["V4"].address, data, sender=PROXY_ADMIN_OWNER, at=t + 1)
    assert chain.events(receipt) == [(token.address, "Upgraded", (env.impl["V4"].address,))]  # initialize_v4 is silent
    upgraded = chain.at("XStockV4", token.address)
    assert pa.call("getProxyImplementation", token.address) == env.impl["V4"].address
    assert [upgraded.call(v) for v in views] + [upgraded.call(*v) for v in holder_views] == before
    assert [chain.storage(token.address, s) for s in slots] == raw_before
    assert chain.storage(token.address, 264) == upgraded.call("sharesOf", ALICE) + upgraded.call("sharesOf", BOB)
    assert upgraded.call("multiplierUpdatesLength") == 2
    assert upgraded.call("multiplierUpdates", 0) == (ONE, ONE, 0)
    assert upgraded.call("multiplierUpdates", 1) == past[0]
    assert upgraded.reverts_with("initialize_v4", []) == error_string(
        "BackedAutoFeeTokenImplementation v4 already initialized")

    # the V3 schedule still activates; V4 now logs what V3 did silently
    chain.mine_at(activation)
    assert upgraded.call("getCurrentMultiplier") == (3 * m1, 0, 3)
    receipt = upgraded.send("updateMultiplierValue", 4 * m1, 3 * m1, activation + 10, sender=UPDATER, at=activation + 1)
    assert upgraded.events(receipt) == [("MultiplierUpdated", (3 * m1,)), ("MultiplierScheduled", (4 * m1, activation + 10))]


# ============================================================================================ shares, pause, sanctions


def test_share_rounding_and_zero_share_moves(chain: Chain, env: Env) -> None:
    t0 = chain.now() + 10
    token = env.token(fee=0, period=DAY, at=t0)
    token.send("mint", ALICE, 10 * ONE, sender=MINTER, at=t0 + 1)
    m = 1_994_000_000_000_000_000
    token.send("updateMultiplierValue", m, ONE, 0, sender=UPDATER, at=t0 + 2)
    assert token.call("balanceOf", ALICE) == 10 * ONE * m // ONE
    assert token.call("getSharesByUnderlyingAmount", 3 * ONE) == 3 * ONE * ONE // m
    assert token.call("getUnderlyingAmountByShares", 3 * ONE) == 3 * m

    # 1 wei from an empty account: converts to 0 shares and succeeds, logging a non-zero Transfer
    receipt = token.send("transfer", ALICE, 1, sender=DAVE, at=t0 + 3)
    assert token.events(receipt) == transfer_events(DAVE, ALICE, 1, 0)
    receipt = token.send("burn", BURNER, 1, sender=BURNER, at=t0 + 4)
    assert token.events(receipt) == transfer_events(BURNER, ZERO, 1, 0)
    assert token.reverts_with("burn", ALICE, 1, sender=BURNER) == error_string("BackedToken: Cannot burn account")
    assert token.reverts_with("mint", ALICE, 1, sender=ALICE) == error_string("BackedToken: Only minter")

    # share-based paths log the floored token value
    receipt = token.send("transferShares", BOB, 3, sender=ALICE, at=t0 + 5)
    assert token.events(receipt) == transfer_events(ALICE, BOB, 3 * m // ONE, 3)
    token.send("approve", CAROL, 10 * ONE, sender=ALICE, at=t0 + 6)
    shares = 2 * ONE
    value = shares * m // ONE
    receipt = token.send("transferSharesFrom", ALICE, BOB, shares, sender=CAROL, at=t0 + 7)
    assert token.events(receipt) == [("Approval", (ALICE, CAROL, 10 * ONE - value))] + transfer_events(
        ALICE, BOB, value, shares)
    assert token.reverts_with("transferSharesFrom", ALICE, BOB, 10 * ONE, sender=CAROL) == error_string(
        "ERC20: insufficient allowance")
    assert token.reverts_with("transfer", BOB, 100 * ONE, sender=ALICE) == error_string(
        "ERC20: transfer amount exceeds balance")
    assert token.events(token.send("increaseAllowance", DAVE, 5, sender=ALICE)) == [("Approval", (ALICE, DAVE, 5))]
    assert token.events(token.send("decreaseAllowance", DAVE, 2, sender=ALICE)) == [("Approval", (ALICE, DAVE, 3))]
    assert token.reverts_with("decreaseAllowance", DAVE, 4, sender=ALICE) == error_string(
        "ERC20: decreased allowance below zero")

    # transferFrom: Approval, then the fold, then Transfer and TransferShares
    fee_token = env.token(fee=10**15, period=DAY, at=t0 + 10)
    fee_token.send("mint", ALICE, 10 * ONE, sender=MINTER, at=t0 + 11)
    fee_token.send("approve", CAROL, 5 * ONE, sender=ALICE, at=t0 + 12)
    m1 = fee_periods(ONE, 10**15, 1)
    receipt = fee_token.send("transferFrom", ALICE, BOB, 4 * ONE, sender=CAROL, at=t0 + 10 + DAY + 1)
    assert fee_token.events(receipt) == [("Approval", (ALICE, CAROL, ONE)), ("MultiplierUpdated", (m1,))] + (
        transfer_events(ALICE, BOB, 4 * ONE, 4 * ONE * ONE // m1))
    total_shares = sum(fee_token.call("sharesOf", a) for a in (ALICE, BOB))
    assert chain.storage(fee_token.address, 264) == total_shares
    assert fee_token.call("totalSupply") == total_shares * m1 // ONE
    assert fee_token.call("totalSupply") != sum(fee_token.call("balanceOf", a) for a in (ALICE, BOB))


def test_pause_blocks_transfers_mint_and_burn_but_not_approvals_or_updates(chain: Chain, env: Env) -> None:
    t0 = chain.now() + 10
    token = env.token(fee=0, period=DAY, at=t0)
    token.send("mint", ALICE, 10 * ONE, sender=MINTER, at=t0 + 1)
    assert token.reverts_with("setPause", True, sender=ALICE) == error_string("BackedToken: Only pauser")
    for _ in range(2):  # logged even when unchanged
        receipt = token.send("setPause", True, sender=PAUSER)
        assert token.events(receipt) == [("PauseModeChange", (True,))]
    assert token.call("isPaused") is True
    paused = error_string("BackedToken: token transfer while paused")
    assert token.reverts_with("transfer", BOB, ONE, sender=ALICE) == paused
    assert token.reverts_with("transferShares", BOB, ONE, sender=ALICE) == paused
    assert token.reverts_with("mint", ALICE, ONE, sender=MINTER) == paused
    assert token.reverts_with("burn", BURNER, 0, sender=BURNER) == paused
    assert token.events(token.send("approve", BOB, ONE, sender=ALICE)) == [("Approval", (ALICE, BOB, ONE))]
    token.send("updateMultiplierValue", 2 * ONE, ONE, 0, sender=UPDATER)
    token.send("setPause", False, sender=PAUSER)
    token.send("transfer", BOB, ONE, sender=ALICE)


def test_sanctions_checks_and_the_chainalysis_oracle_surface(chain: Chain, env: Env) -> None:
    oracle, receipt = chain.deploy("ChainalysisOracle", [], [])
    assert oracle.events(receipt) == [("OwnershipTransferred", (ZERO, chain.issuer))]
    assert oracle.call("name") == "Chainalysis sanctions oracle"
    token = env.token(fee=0, period=DAY)
    receipt = token.send("setSanctionsList", oracle.address, sender=TOKEN_OWNER)
    assert token.events(receipt) == [("NewSanctionsList", (oracle.address,))]
    token.send("mint", ALICE, 10 * ONE, sender=MINTER)

    receipt = oracle.send("addToSanctionsList", [CAROL, DAVE])
    assert oracle.events(receipt) == [("SanctionedAddressesAdded", ((CAROL, DAVE),))]
    assert oracle.call("isSanctioned", CAROL) is True
    assert oracle.reverts_with("addToSanctionsList", [BOB], sender=BOB) == error_string(
        "Ownable: caller is not the owner")
    assert oracle.events(oracle.send("isSanctionedVerbose", CAROL, sender=BOB)) == [("SanctionedAddress", (CAROL,))]
    assert oracle.events(oracle.send("isSanctionedVerbose", BOB, sender=BOB)) == [("NonSanctionedAddress", (BOB,))]

    assert token.reverts_with("transfer", CAROL, ONE, sender=ALICE) == error_string(
        "BackedToken: receiver is sanctioned")
    token.send("mint", CAROL, ONE, sender=MINTER)  # mint ignores sanctions
    assert token.reverts_with("transfer", ALICE, 1, sender=CAROL) == error_string("BackedToken: sender is sanctioned")
    token.send("approve", DAVE, ONE, sender=ALICE)
    assert token.reverts_with("transferFrom", ALICE, BOB, 1, sender=DAVE) == error_string(
        "BackedToken: spender is sanctioned")
    receipt = oracle.send("removeFromSanctionsList", [CAROL])
    assert oracle.events(receipt) == [("SanctionedAddressesRemoved", ((CAROL,),))]
    token.send("transfer", ALICE, 1, sender=CAROL)

    # the candidate list is called: an account without code, or a list that sanctions the token, is refused
    assert token.reverts_with("setSanctionsList", BOB, sender=TOKEN_OWNER) == "0x"
    oracle.send("addToSanctionsList", [token.address])
    assert token.reverts_with("setSanctionsList", oracle.address, sender=TOKEN_OWNER) == error_string(
        "BackedToken: Wrong List interface")


def test_roles_terms_and_eip712_delegation(chain: Chain, env: Env) -> None:
    token = env.token(fee=0, period=DAY)
    key = keys.PrivateKey(keccak(text="imitation signer"))
    signer = key.public_key.to_checksum_address().lower()
    token.send("mint", signer, 10 * ONE, sender=MINTER)
    for fn, event in [("setMinter", "NewMinter"), ("setBurner", "NewBurner"), ("setPauser", "NewPauser"),
                      ("setMultiplierUpdater", "NewMultiplierUpdater")]:
        assert token.reverts_with(fn, DAVE, sender=ALICE) == error_string("Ownable: caller is not the owner")
        assert token.events(token.send(fn, DAVE, sender=TOKEN_OWNER)) == [(event, (DAVE,))]
        token.send(fn, {"setMinter": MINTER, "setBurner": BURNER, "setPauser": PAUSER}.get(fn, UPDATER),
                   sender=TOKEN_OWNER)
    assert token.events(token.send("setTerms", "see terms", sender=TOKEN_OWNER)) == [("NewTerms", ("see terms",))]

    domain = keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
         keccak(text=token.call("name")), keccak(text="1"), chain.chain_id, token.address]))
    assert token.call("DOMAIN_SEPARATOR") == domain
    typehashes = {
        "PERMIT_TYPEHASH": "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)",
        "DELEGATED_TRANSFER_TYPEHASH":
            "DELEGATED_TRANSFER(address owner,address to,uint256 value,uint256 nonce,uint256 deadline)",
        "DELEGATED_TRANSFER_SHARES_TYPEHASH":
            "DELEGATED_TRANSFER_SHARES(address owner,address to,uint256 value,uint256 nonce,uint256 deadline)",
    }
    for getter, text in typehashes.items():
        assert token.call(getter) == keccak(text=text)

    def sign(typehash: str, to: str, value: int, nonce: int, deadline: int) -> tuple[int, bytes, bytes]:
        struct = keccak(encode(["bytes32", "address", "address", "uint256", "uint256", "uint256"],
                               [keccak(text=typehashes[typehash]), signer, to, value, nonce, deadline]))
        sig = key.sign_msg_hash(keccak(b"\x19\x01" + domain + struct))
        v, s = sig.v, sig.s
        if s > SECP256K1_N // 2:  # the low-s form OZ's ECDSA accepts
            v, s = 1 - v, SECP256K1_N - s
        return v + 27, sig.r.to_bytes(32, "big"), s.to_bytes(32, "big")

    relayer = "0x" + "77" * 20
    deadline = chain.now() + 10_000
    v, r, s = sign("PERMIT_TYPEHASH", BOB, 3 * ONE, 0, deadline)
    assert token.reverts_with("permit", signer, BOB, 3 * ONE, deadline, v, r, s, sender=relayer) == error_string(
        "BackedToken: Unauthorized delegate")
    receipt = token.send("setDelegateWhitelist", relayer, True, sender=TOKEN_OWNER)
    assert token.events(receipt) == [("DelegateWhitelistChange", (relayer, True))]
    assert token.reverts_with("permit", signer, CAROL, 3 * ONE, deadline, v, r, s, sender=relayer) == error_string(
        "ERC20Permit: invalid signature")
    assert token.reverts_with("permit", signer, BOB, 3 * ONE, deadline, 29, r, s, sender=relayer) == error_string(
        "ECDSA: invalid signature 'v' value")
    high_s = (2**256 - 1).to_bytes(32, "big")
    assert token.reverts_with("permit", signer, BOB, 3 * ONE, deadline, v, r, high_s, sender=relayer) == error_string(
        "ECDSA: invalid signature 's' value")
    receipt = token.send("permit", signer, BOB, 3 * ONE, deadline, v, r, s, sender=relayer)
    assert token.events(receipt) == [("Approval", (signer, BOB, 3 * ONE))]
    assert token.call("nonces", signer) == 1

    v, r, s = sign("DELEGATED_TRANSFER_TYPEHASH", CAROL, 2 * ONE, 1, deadline)
    receipt = token.send("delegatedTransfer", signer, CAROL, 2 * ONE, deadline, v, r, s, sender=relayer)
    assert token.events(receipt) == transfer_events(signer, CAROL, 2 * ONE, 2 * ONE)  # from = the signer
    v, r, s = sign("DELEGATED_TRANSFER_SHARES_TYPEHASH", CAROL, ONE, 2, deadline)
    assert token.reverts_with("delegatedTransferShares", signer, CAROL, ONE, chain.now() - 1, v, r, s,
                              sender=relayer) == error_string("ERC20Permit: expired deadline")
    token.send("setDelegateWhitelist", relayer, False, sender=TOKEN_OWNER)
    receipt = token.send("setDelegateMode", True, sender=TOKEN_OWNER)
    assert token.events(receipt) == [("DelegateModeChange", (True,))]
    receipt = token.send("delegatedTransferShares", signer, CAROL, ONE, deadline, v, r, s, sender=DAVE)
    assert token.events(receipt) == transfer_events(signer, CAROL, ONE, ONE)
    assert token.call("nonces", signer) == 3  # one counter for the three signature types


# ============================================================================================ Chainlink


def ocr_report(epoch: int, round_: int, observations: list[int], observers: list[int] | None = None) -> bytes:
    context = bytes(11) + bytes.fromhex("c0ffee" * 5 + "00") + epoch.to_bytes(4, "big") + bytes([round_])
    raw_observers = bytes(observers if observers is not None else range(len(observations))).ljust(32, b"\0")
    return encode(["bytes32", "bytes32", "int192[]"], [context, raw_observers, observations])


def deploy_ocr(chain: Chain, name: str = "OcrAggregator", lo: int = 1, hi: int = 10**30) -> Contract:
    agg, receipt = chain.deploy(name, ["int192", "int192", "uint8", "string", "address"],
                                [lo, hi, 8, "TSLA / USD", TRANSMITTER])
    assert receipt["logs"] == []  # Chainlink's Owned logs nothing at construction
    return agg


def phased(phase: int, round_id: int) -> int:
    return (phase << 64) | round_id


def test_ocr_aggregator_round_semantics(chain: Chain) -> None:
    agg = deploy_ocr(chain, lo=-(10**20), hi=10**20)
    assert agg.call("latestRoundData") == (0, 0, 0, 0, 0)  # never reverts, even before the first report
    assert (agg.call("latestRound"), agg.call("latestAnswer"), agg.call("latestTimestamp")) == (0, 0, 0)
    assert (agg.call("typeAndVersion"), agg.call("version"), agg.call("decimals"), agg.call("description")) == (
        "OffchainAggregator 4.0.0", 4, 8, "TSLA / USD")
    assert (agg.call("minAnswer"), agg.call("maxAnswer"), agg.call("transmitters")) == (-(10**20), 10**20, (TRANSMITTER,))

    report = ocr_report(1, 0, [100, 101, 102, 103], [3, 0, 1, 2])
    t = chain.now() + 10
    receipt = agg.send("transmit", report, [], [], bytes(32), sender=TRANSMITTER, at=t)
    context = report[:32]
    assert agg.events(receipt) == [
        ("NewTransmission", (1, 102, TRANSMITTER, (100, 101, 102, 103), bytes([3, 0, 1, 2]), context)),
        ("NewRound", (1, ZERO, t)),
        ("AnswerUpdated", (102, 1, t)),
    ]
    assert [log["topics"][1:] for log in receipt["logs"]] == [[word(1)], [word(1), word(ZERO)], [word(102), word(1)]]
    assert agg.call("latestRoundData") == (1, 102, t, t, 1)
    assert agg.call("latestTransmissionDetails", sender=ALICE) == (bytes.fromhex("c0ffee" * 5 + "00"), 1, 0, 102, t)

    for bad, message in [
        (ocr_report(1, 0, [5]), "stale report"),
        (ocr_report(2, 0, [3, 1, 2]), "observations not sorted"),
        (ocr_report(2, 0, [1, 2], [4, 4]), "observer index repeated"),
        (ocr_report(2, 0, [10**21]), "median is out of min-max range"),
    ]:
        assert agg.reverts_with("transmit", bad, [], [], bytes(32), sender=TRANSMITTER) == error_string(message)
    assert agg.reverts_with("transmit", ocr_report(2, 0, [5]), [], [], bytes(32), sender=ALICE) == error_string(
        "unauthorized transmitter")

    receipt = agg.send("transmit", ocr_report(1, 1, [-7, -5, 9]), [], [], bytes(32), sender=TRANSMITTER, at=t + 60)
    assert agg.events(receipt)[2] == ("AnswerUpdated", (-5, 2, t + 60))
    assert receipt["logs"][2]["topics"][1] == word(-5)  # two's complement in the indexed topic
    assert agg.call("getRoundData", 1) == (1, 102, t, t, 1)
    assert agg.call("getRoundData", 9) == (9, 0, 0, 0, 9)  # missing round that fits uint32: zeros, id echoed
    assert agg.call("getRoundData", 2**32 - 1) == (2**32 - 1, 0, 0, 0, 2**32 - 1)
    assert agg.reverts_with("getRoundData", 2**32) == error_string("No data present")
    assert (agg.call("getAnswer", 2), agg.call("getTimestamp", 2), agg.call("getAnswer", 2**32)) == (-5, t + 60, 0)
    assert (agg.call("latestRound"), agg.call("latestAnswer"), agg.call("latestTimestamp")) == (2, -5, t + 60)


def test_feed_proxy_phases_across_two_aggregator_changes(chain: Chain) -> None:
    agg1 = deploy_ocr(chain)
    proxy, receipt = chain.deploy("FeedProxy", ["address", "address"], [agg1.address, ZERO])
    assert receipt["logs"] == []
    assert (proxy.call("phaseId"), proxy.call("aggregator"), proxy.call("phaseAggregators", 1)) == (
        1, agg1.address, agg1.address)
    assert (proxy.call("decimals"), proxy.call("description"), proxy.call("version")) == (8, "TSLA / USD", 4)
    t = chain.now() + 10
    agg1.send("transmit", ocr_report(1, 0, [100_00000000]), [], [], bytes(32), sender=TRANSMITTER, at=t)
    agg1.send("transmit", ocr_report(1, 1, [101_00000000]), [], [], bytes(32), sender=TRANSMITTER, at=t + 60)
    assert proxy.call("latestRoundData") == (phased(1, 2), 101_00000000, t + 60, t + 60, phased(1, 2))
    assert proxy.call("latestRound") == phased(1, 2)
    assert (proxy.call("latestAnswer"), proxy.call("latestTimestamp")) == (101_00000000, t + 60)  # no phase bits

    agg2 = deploy_ocr(chain, "OcrAggregatorWithFaults")
    agg2.send("transmit", ocr_report(1, 0, [102_00000000]), [], [], bytes(32), sender=TRANSMITTER, at=t + 120)
    assert proxy.reverts_with("proposedLatestRoundData") == error_string("No proposed aggregator present")
    assert proxy.reverts_with("proposeAggregator", agg2.address, sender=ALICE) == error_string("Only callable by owner")
    assert proxy.send("proposeAggregator", agg2.address)["logs"] == []  # v0.6: no AggregatorProposed
    assert proxy.call("proposedAggregator") == agg2.address
    assert proxy.call("proposedLatestRoundData") == (1, 102_00000000, t + 120, t + 120, 1)  # raw, no phase
    assert proxy.call("proposedGetRoundData", 1) == (1, 102_00000000, t + 120, t + 120, 1)
    assert proxy.call("phaseId") == 1  # reads stay on phase 1 until confirmed
    assert proxy.reverts_with("confirmAggregator", agg1.address) == error_string("Invalid proposed aggregator")
    assert proxy.send("confirmAggregator", agg2.address)["logs"] == []  # v0.6: no AggregatorConfirmed
    assert (proxy.call("phaseId"), proxy.call("aggregator"), proxy.call("proposedAggregator")) == (2, agg2.address, ZERO)
    assert proxy.call("latestRoundData") == (phased(2, 1), 102_00000000, t + 120, t + 120, phased(2, 1))

    # a faulty Flux-style round: stale answeredInRound and an old updatedAt, re-encoded with the phase
    receipt = agg2.send("testOnlyPublishFaultyRound", 99_00000000, t + 1, 1, at=t + 180)
    assert agg2.events(receipt) == [("NewRound", (2, ZERO, t + 1)), ("AnswerUpdated", (99_00000000, 2, t + 1))]
    assert proxy.call("latestRoundData") == (phased(2, 2), 99_00000000, t + 1, t + 1, phased(2, 1))

    agg3 = deploy_ocr(chain)
    proxy.send("proposeAggregator", agg3.address)
    proxy.send("confirmAggregator", agg3.address)
    assert proxy.call("phaseId") == 3
    assert proxy.call("latestRoundData") == (phased(3, 0), 0, 0, 0, phased(3, 0))  # no report yet on phase 3
    # old phases stay readable, with their own phase ids
    assert proxy.call("getRoundData", phased(1, 1)) == (phased(1, 1), 100_00000000, t, t, phased(1, 1))
    assert proxy.call("getRoundData", phased(2, 2)) == (phased(2, 2), 99_00000000, t + 1, t + 1, phased(2, 1))
    assert (proxy.call("getAnswer", phased(1, 2)), proxy.call("getTimestamp", phased(2, 1))) == (101_00000000, t + 120)
    assert proxy.call("getRoundData", phased(1, 7)) == (phased(1, 7), 0, 0, 0, phased(1, 7))  # missing, fits uint32
    assert proxy.reverts_with("getRoundData", phased(1, 2**32)) == error_string("No data present")
    assert proxy.reverts_with("getRoundData", phased(9, 1)) == "0x"  # unknown phase: call to address(0), empty revert
    assert (proxy.call("getAnswer", phased(9, 1)), proxy.call("getTimestamp", phased(9, 1))) == (0, 0)
    assert proxy.call("getAnswer", 2**80) == 0


def test_feed_proxy_access_control_and_two_step_ownership(chain: Chain) -> None:
    agg = deploy_ocr(chain)
    agg.send("transmit", ocr_report(1, 0, [5]), [], [], bytes(32), sender=TRANSMITTER)
    proxy, _ = chain.deploy("FeedProxy", ["address", "address"], [agg.address, ZERO])
    controller, _ = chain.deploy("FeedReadAccessController", [], [])
    assert proxy.send("setController", controller.address)["logs"] == []
    assert proxy.call("accessController") == controller.address
    assert proxy.call("latestAnswer", sender=ALICE) == 5  # an account calling directly is tx.origin: allowed

    multicall, _ = chain.deploy("Multicall3", [], [])
    calls = [(proxy.address, True, proxy.abi.fn(fn).encode_bytes()) for fn in ("latestRoundData", "decimals")]
    ((denied_ok, denied), (meta_ok, meta)) = multicall.call("aggregate3", calls, sender=ALICE)
    assert (denied_ok, "0x" + denied.hex()) == (False, error_string("No access"))
    assert (meta_ok, decode(["uint8"], meta)[0]) == (True, 8)  # metadata is not access checked
    assert controller.events(controller.send("addAccess", multicall.address)) == [("AddedAccess", (multicall.address,))]
    ((ok, _), _) = multicall.call("aggregate3", calls, sender=ALICE)
    assert ok is True

    receipt = proxy.send("transferOwnership", BOB)
    assert proxy.events(receipt) == [("OwnershipTransferRequested", (chain.issuer, BOB))]
    assert proxy.call("owner") == chain.issuer
    assert proxy.reverts_with("acceptOwnership", sender=CAROL) == error_string("Must be proposed owner")
    receipt = proxy.send("acceptOwnership", sender=BOB)
    assert proxy.events(receipt) == [("OwnershipTransferred", (chain.issuer, BOB))]
    assert proxy.call("owner") == BOB


# ============================================================================================ ERC-8056 and B20


def test_scaled_ui_stock_lazy_activation_and_events(chain: Chain) -> None:
    stock, receipt = chain.deploy("ScaledUiStock", ["string", "string", "uint8"], ["Apple Stock Token", "AAPL", 18])
    assert stock.events(receipt) == [("OwnershipTransferred", (ZERO, chain.issuer))]
    assert (stock.call("uiMultiplier"), stock.call("newUIMultiplier"), stock.call("effectiveAt")) == (ONE, ONE, 0)
    receipt = stock.send("mint", ALICE, 100 * ONE)
    assert stock.events(receipt) == [("Transfer", (ZERO, ALICE, 100 * ONE)),
                                     ("TransferWithScaledUI", (ZERO, ALICE, 100 * ONE, 100 * ONE))]

    t = chain.now() + 10
    effective = t + 600
    receipt = stock.send("updateMultiplier(uint256,uint256)", 4 * ONE, effective, at=t)
    assert [(log["topics"], log["data"]) for log in receipt["logs"]] == [
        ([EVENTS["UIMultiplierUpdated(uint256,uint256,uint256)"][0]],
         "0x" + encode(["uint256"] * 3, [ONE, 4 * ONE, effective]).hex())]
    assert stock.call("effectiveAt") > chain.now() and stock.call("newUIMultiplier") != stock.call("uiMultiplier")
    first = chain.head() + 1
    chain.mine_at(effective - 1)
    assert (stock.call("uiMultiplier"), stock.call("balanceOfUI", ALICE)) == (ONE, 100 * ONE)
    chain.mine_at(effective)
    assert (stock.call("uiMultiplier"), stock.call("balanceOfUI", ALICE), stock.call("totalSupplyUI")) == (
        4 * ONE, 400 * ONE, 400 * ONE)
    assert (stock.call("balanceOf", ALICE), stock.call("totalSupply")) == (100 * ONE, 100 * ONE)  # raw never moves
    assert chain.logs_between(stock.address, first, chain.head()) == []  # no log when it takes effect
    assert (stock.call("newUIMultiplier"), stock.call("effectiveAt")) == (4 * ONE, effective)  # stays, past time

    receipt = stock.send("transfer", BOB, 10 * ONE, sender=ALICE, at=effective + 5)
    assert stock.events(receipt) == [("Transfer", (ALICE, BOB, 10 * ONE)),
                                     ("TransferWithScaledUI", (ALICE, BOB, 10 * ONE, 40 * ONE))]
    receipt = stock.send("updateMultiplier(uint256)", 5 * ONE, at=effective + 10)
    assert stock.events(receipt) == [("UIMultiplierUpdated", (4 * ONE, 5 * ONE, effective + 10))]
    assert (stock.call("uiMultiplier"), stock.call("newUIMultiplier"), stock.call("effectiveAt")) == (
        5 * ONE, 5 * ONE, effective + 10)
    # a second schedule replaces a pending one; its old value is the multiplier in force
    stock.send("updateMultiplier(uint256,uint256)", 6 * ONE, effective + 1_000, at=effective + 20)
    receipt = stock.send("updateMultiplier(uint256,uint256)", 7 * ONE, effective + 2_000, at=effective + 30)
    assert stock.events(receipt) == [("UIMultiplierUpdated", (5 * ONE, 7 * ONE, effective + 2_000))]
    chain.mine_at(effective + 1_500)
    assert stock.call("uiMultiplier") == 5 * ONE
    assert stock.reverts_with("updateMultiplier(uint256,uint256)", ONE, chain.now()) == error_string(
        "effective time must be in the future")
    assert stock.reverts_with("updateMultiplier(uint256)", 0) == error_string("multiplier must be positive")
    assert stock.reverts_with("updateMultiplier(uint256)", ONE, sender=ALICE) == error_string(
        "Ownable: caller is not the owner")

    for interface_id, supported in [("01ffc9a7", True), ("a60bf13d", True), ("4bd27648", True),
                                    ("57854fc3", False), ("d890fd71", False), ("ffffffff", False)]:
        assert stock.call("supportsInterface", bytes.fromhex(interface_id)) is supported
    request = {"to": stock.address, "data": selector("toUIAmount(uint256)") + "00" * 32}
    with pytest.raises(RpcError):
        chain.rpc.call("eth_call", [request, "latest"])

    assert stock.send("pauseOracle")["logs"] == [] and stock.call("oraclePaused") is True
    assert stock.send("unpauseOracle")["logs"] == [] and stock.call("oraclePaused") is False


def test_scaled_ui_stock_compliance_surface(chain: Chain) -> None:
    stock, _ = chain.deploy("ScaledUiStock", ["string", "string", "uint8"], ["Tesla Stock Token", "TSLA", 6])
    assert stock.call("decimals") == 6
    receipt = stock.send("batchMint", [ALICE, BOB], [50, 70])
    assert stock.events(receipt) == [
        ("Transfer", (ZERO, ALICE, 50)), ("TransferWithScaledUI", (ZERO, ALICE, 50, 50)),
        ("Transfer", (ZERO, BOB, 70)), ("TransferWithScaledUI", (ZERO, BOB, 70, 70)),
    ]
    receipt = stock.send("setAddressFrozen", BOB, True)
    assert [log["topics"] for log in receipt["logs"]] == [
        [topic("AddressFrozen(address,bool,address)"), word(BOB), word(1), word(chain.issuer)]]
    assert stock.call("isFrozen", BOB) is True
    assert stock.reverts_with("transfer", ALICE, 1, sender=BOB) == error_string("wallet is frozen")
    assert stock.reverts_with("transfer", BOB, 1, sender=ALICE) == error_string("wallet is frozen")
    receipt = stock.send("batchForcedTransfer", [BOB], [CAROL], [20])  # the issuer moves frozen balances
    assert stock.events(receipt) == [("Transfer", (BOB, CAROL, 20)), ("TransferWithScaledUI", (BOB, CAROL, 20, 20))]

    assert stock.events(stock.send("pause")) == [("Paused", (chain.issuer,))]
    assert stock.call("paused") is True
    assert stock.reverts_with("transfer", CAROL, 1, sender=ALICE) == error_string("Pausable: Paused")
    assert stock.events(stock.send("unpause")) == [("Unpaused", (chain.issuer,))]
    stock.send("updateMultiplier(uint256)", 3 * ONE // 2)
    receipt = stock.send("burn", ALICE, 11)
    assert stock.events(receipt) == [("Transfer", (ALICE, ZERO, 11)), ("TransferWithScaledUI", (ALICE, ZERO, 11, 16))]
    assert stock.reverts_with("mint", ALICE, 1, sender=ALICE) == error_string("Ownable: caller is not the owner")
    assert (stock.call("totalSupply"), stock.call("totalSupplyUI")) == (109, 163)


def test_scaled_ui_stock_draft_logs_the_four_argument_event(chain: Chain) -> None:
    stock, _ = chain.deploy("ScaledUiStockDraft", ["string", "string", "uint8"], ["Draft Stock", "DRFT", 18])
    t = chain.now() + 10
    receipt = stock.send("updateMultiplier(uint256,uint256)", 2 * ONE, t + 100, at=t)
    assert [(log["topics"], log["data"]) for log in receipt["logs"]] == [
        ([EVENTS["UIMultiplierUpdated(uint256,uint256,uint256,uint256)"][0]],
         "0x" + encode(["uint256"] * 4, [ONE, 2 * ONE, t, t + 100]).hex())]
    assert stock.events(receipt) == [("UIMultiplierUpdated", (ONE, 2 * ONE, t, t + 100))]
    chain.mine_at(t + 100)
    assert stock.call("uiMultiplier") == 2 * ONE
    receipt = stock.send("updateMultiplier(uint256)", 3 * ONE, at=t + 110)
    assert stock.events(receipt) == [("UIMultiplierUpdated", (2 * ONE, 3 * ONE, t + 110, t + 110))]


def test_b20_asset_multiplier(chain: Chain) -> None:
    asset, _ = chain.deploy("B20Asset", ["string", "string", "uint8"], ["Coinbase AAPL", "cbAAPL", 18])
    slot = next(int(s["slot"]) for s in chain.artifacts["B20Asset"]["storage"]["storage"] if s["label"] == "_multiplier")
    assert chain.storage(asset.address, slot) == 0 and asset.call("multiplier") == ONE  # a stored 0 reads as 1e18
    assert (asset.call("WAD_PRECISION"), asset.call("OPERATOR_ROLE")) == (ONE, keccak(text="OPERATOR_ROLE"))
    asset.send("batchMint", [ALICE, BOB], [100, 7])
    receipt = asset.send("transfer", BOB, 10, sender=ALICE)
    assert asset.events(receipt) == [("Transfer", (ALICE, BOB, 10))]  # a plain Transfer only
    receipt = asset.send("updateMultiplier", 3 * ONE)
    assert [(log["topics"], log["data"]) for log in receipt["logs"]] == [
        ([EVENTS["MultiplierUpdated(uint256)"][0]], "0x" + encode(["uint256"], [3 * ONE]).hex())]
    assert (asset.call("multiplier"), chain.storage(asset.address, slot)) == (3 * ONE, 3 * ONE)
    assert (asset.call("balanceOf", BOB), asset.call("scaledBalanceOf", BOB)) == (17, 51)
    assert (asset.call("toScaledBalance", 7), asset.call("toRawBalance", 20)) == (21, 6)  # floors
    assert asset.call("toRawBalance", asset.call("toScaledBalance", 5)) == 5
    asset.send("updateMultiplier", 3 * ONE // 7)
    assert asset.call("toRawBalance", asset.call("toScaledBalance", 10)) == 9  # not exactly reversible
    for bad in (0, 2**128):
        assert asset.reverts_with("updateMultiplier", bad) == custom_error("InvalidMultiplier()")
    assert asset.reverts_with("updateMultiplier", ONE, sender=ALICE) == error_string("Ownable: caller is not the owner")
    receipt = asset.send("batchForcedTransfer", [BOB], [CAROL], [17])
    assert asset.events(receipt) == [("Transfer", (BOB, CAROL, 17))]


# ------------------------------------------------------------------------------- helpers: PlainToken, Multicall3


def test_plain_token_issuance_is_owner_only_and_forced_transfers_log_each_pair(chain: Chain) -> None:
    token, _ = chain.deploy("PlainToken", ["string", "string", "uint8", "address"],
                            ["USD Coin", "USDC", 6, chain.issuer])
    unauthorized = "0x" + (keccak(text="OwnableUnauthorizedAccount(address)")[:4] + encode(["address"], [ALICE])).hex()
    for fn, args in [("mint", (ALICE, 1)), ("batchMint", ([ALICE], [1])), ("burn", (ALICE, 1)),
                     ("batchForcedTransfer", ([ALICE], [BOB], [1]))]:
        assert token.reverts_with(fn, *args, sender=ALICE) == unauthorized, fn
    assert token.call("decimals") == 6
    receipt = token.send("batchMint", [ALICE, BOB], [10 * ONE, 10 * ONE])
    assert token.events(receipt) == [("Transfer", (ZERO, ALICE, 10 * ONE)), ("Transfer", (ZERO, BOB, 10 * ONE))]
    froms, tos, amounts = [ALICE, BOB, ALICE, CAROL], [BOB, CAROL, DAVE, ALICE], [ONE, 2 * ONE, 3 * ONE, ONE // 2]
    receipt = token.send("batchForcedTransfer", froms, tos, amounts)
    assert token.events(receipt) == [("Transfer", t) for t in zip(froms, tos, amounts, strict=True)]
    receipt = token.send("burn", DAVE, ONE)
    assert token.events(receipt) == [("Transfer", (DAVE, ZERO, ONE))]
    assert [token.call("balanceOf", a) for a in (ALICE, BOB, CAROL, DAVE)] == [
        6 * ONE + ONE // 2, 9 * ONE, ONE + ONE // 2, 2 * ONE]
    assert token.call("totalSupply") == 19 * ONE
    mismatch = custom_error("ArrayLengthMismatch()")
    assert token.reverts_with("batchForcedTransfer", [ALICE], [BOB, CAROL], [1]) == mismatch
    assert token.reverts_with("batchMint", [ALICE], [1, 2]) == mismatch


def _raw(calls: list[tuple[str, bool, str]]) -> list[tuple[str, bool, bytes]]:
    return [(to, may_fail, bytes.fromhex(data[2:])) for to, may_fail, data in calls]


def test_multicall3_is_at_its_canonical_address_and_aggregate3_equals_single_calls(chain: Chain, env: Env) -> None:
    from indexer.devchain.checkout import load_artifact
    from indexer.devchain.deploy import MULTICALL3_ADDRESS

    code = load_artifact("Multicall3")["deployedBytecode"]
    chain.rpc.call("anvil_setCode", [MULTICALL3_ADDRESS, code])
    assert chain.rpc.call("eth_getCode", [MULTICALL3_ADDRESS, "latest"]) == code
    mc = chain.at("Multicall3", MULTICALL3_ADDRESS)
    agg = deploy_ocr(chain)
    agg.send("transmit", ocr_report(1, 0, [250_00000000]), [], [], bytes(32), sender=TRANSMITTER)
    token = env.token("V4", fee=10**15)
    token.send("mint", ALICE, 5 * ONE, sender=MINTER)
    chain.mine_at(chain.now() + 3 * DAY)
    calls = [
        (agg.address, False, agg.calldata("latestRoundData")),
        (agg.address, True, agg.calldata("getRoundData", 2**32)),  # reverts: No data present
        (token.address, False, token.calldata("getCurrentMultiplier")),
        (token.address, False, token.calldata("balanceOf", ALICE)),
        (agg.address, True, token.calldata("getCurrentMultiplier")),  # no such function, no fallback
        (DAVE, True, token.calldata("getCurrentMultiplier")),  # no code there: succeeds with empty data
    ]
    block = hex(chain.head())
    singles = chain.rpc.batch([("eth_call", [{"to": to, "data": data}, block]) for to, _, data in calls],
                              raise_errors=False)
    raw = chain.rpc.call("eth_call", [{"to": mc.address, "data": mc.calldata("aggregate3", _raw(calls))}, block])
    (results,) = mc.abi.fn("aggregate3").decode(raw)
    assert [ok for ok, _ in results] == [True, False, True, True, False, True]
    for (ok, data), single in zip(results, singles, strict=True):
        if isinstance(single, RpcError):
            assert single.kind == "reverted" and (ok, "0x" + data.hex()) == (False, single.data or "0x")
        else:
            assert (ok, "0x" + data.hex()) == (True, single)
    assert "0x" + results[1][1].hex() == error_string("No data present")
    assert decode(["uint256"], results[3][1]) == (5 * ONE * fee_periods(ONE, 10**15, 3) // ONE,)  # 3 fee periods
    strict = [(agg.address, True, agg.calldata("decimals")), (agg.address, False, agg.calldata("getRoundData", 2**32))]
    with pytest.raises(RpcError) as excinfo:
        chain.rpc.call("eth_call", [{"to": mc.address, "data": mc.calldata("aggregate3", _raw(strict))}, "latest"])
    assert excinfo.value.kind == "reverted" and excinfo.value.data == error_string("Multicall3: call failed")
