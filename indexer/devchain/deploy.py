"""Deploy the demo world's contracts on a dev chain and play the world's blocks into it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from indexer.chain.abi import load_abi
from indexer.chain.decode import topic_of
from indexer.chain.rpc import RpcClient
from indexer.devchain.anvil import GAS_LIMIT
from indexer.devchain.checkout import load_artifact
from indexer.devchain.pools import UNISWAP_DEPLOYER, pool_creation_txs
from indexer.devchain.specs import (
    CRYPTO,
    PHASE_DAYS,
    POOL_QUOTE,
    POOLS,
    PRICE_DECIMALS,
    RESERVE_DECIMALS,
    TOKENS,
    VAULTS,
    Scale,
    Timeline,
)
from indexer.devchain.txs import ChainWriter, Tx
from indexer.devchain.uniswap import factory_txs, periphery_txs, pool_address
from indexer.devchain.vaults import vault_creation_tx
from indexer.devchain.world import BlockPlan, Deployment, WorldSim, price_feed_name, reserve_feed_name
from indexer.errors import DevchainError

log = logging.getLogger(__name__)

MULTICALL3_ADDRESS = "0xca11bde05977b3631167028862be2a173976ca11"


_UI_CONTRACTS = {"scaled_ui": "ScaledUiStock", "scaled_ui_draft": "ScaledUiStockDraft", "b20": "B20Asset"}
MIN_ANSWER, MAX_ANSWER = 0, 2**190  # the aggregators' accepted range (a tokenized-equity feed may report 0)


def deploy_world(rpc: RpcClient, deployed_at: int) -> Deployment:
    """Deploy the world in three blocks ending at `deployed_at`, the way the real contracts are deployed
    (docs/contracts.md), and Multicall3 at its canonical address:

    1. the sanctions oracle, the two xStock implementations, Disperse, the other tokens, every feed's
       aggregators (one per phase the world will have), and Uniswap v3's factory and TickLens;
    2. the xStock factory (with its ProxyAdmin), each feed's proxy over its first aggregator, and Uniswap's
       NonfungiblePositionManager, SwapRouter and QuoterV2 on its factory;
    3. each xStock through `factory.deployToken`: a transparent proxy initialised in its constructor, its
       roles and sanctions list set in the same transaction; and the DEX pools (`specs.POOLS`), created and
       initialized by the world's liquidity provider through the position manager (`pools.pool_creation_txs`:
       an xStock's address, CREATE2 from the factory, is known from an `eth_call` of its `deployToken`); and the
       ERC-4626 vault over TSLAx (`specs.VAULTS`, `contracts/StockVault.sol`), created by an account of its own
       (`vaults.VAULT_DEPLOYER`) on the predicted address (its constructor's `decimals()` read of the asset
       gives 18 whichever runs first).

    The Uniswap contracts are the published artifacts (docs/contracts.md), deployed by an account of their
    own. A configuration written when this returns finds every token, feed and pool it names.
    """
    accounts = [a.lower() for a in rpc.call("eth_accounts")]
    if len(accounts) < 2:
        raise DevchainError("the dev chain exposes fewer than two unlocked accounts")
    issuer, updater = accounts[0], accounts[1]
    w = ChainWriter(rpc)
    rpc.call("evm_setAutomine", [False])
    first: list[tuple[str, str, Tx]] = [
        ("oracle", "sanctions", w.deploy(issuer, "ChainalysisOracle", [], [])),
        ("impl", "XStockV3", w.deploy(issuer, "XStockV3", [], [])),
        ("impl", "XStockV4", w.deploy(issuer, "XStockV4", [], [])),
        ("disperse", "disperse", w.deploy(issuer, "Disperse", [], [])),
    ]
    for spec in TOKENS:
        if spec.contract in _UI_CONTRACTS:
            first.append(("token", spec.symbol, w.deploy(issuer, _UI_CONTRACTS[spec.contract],
                                                         ["string", "string", "uint8"],
                                                         [spec.name, spec.symbol, spec.decimals])))
        elif spec.contract == "plain":
            first.append(("token", spec.symbol, w.deploy(issuer, "PlainToken", ["string", "string", "uint8", "address"],
                                                         [spec.name, spec.symbol, spec.decimals, issuer])))
    feeds = _feed_list()
    n_phases = 1 + len(PHASE_DAYS)
    for name, decimals, faulty in feeds:
        for phase in range(1, n_phases + 1):
            first.append((f"aggregator:{phase}", name, w.deploy(
                updater, "OcrAggregatorWithFaults" if faulty else "OcrAggregator",
                ["int192", "int192", "uint8", "string", "address"], [MIN_ANSWER, MAX_ANSWER, decimals, name, updater])))
    first += [("uniswap", key, tx) for key, tx in zip(("factory", "lens"), factory_txs(w, UNISWAP_DEPLOYER),
                                                       strict=True)]
    placed = _place(rpc, w, first, deployed_at - 2)
    v3 = placed[("impl", "XStockV3")]
    second = [("factory", "factory", w.deploy(issuer, "XStockFactory", ["address", "address"], [issuer, v3]))]
    second += [("proxy", name, w.deploy(updater, "FeedProxy", ["address", "address"],
                                        [placed[("aggregator:1", name)], "0x" + "00" * 20]))
               for name, _, _ in feeds]
    second += [("uniswap", key, tx) for key, tx in zip(("positions", "router", "quoter"), periphery_txs(
        w, UNISWAP_DEPLOYER, placed[("uniswap", "factory")]), strict=True)]
    placed.update(_place(rpc, w, second, deployed_at - 1))
    factory, oracle = placed[("factory", "factory")], placed[("oracle", "sanctions")]
    deploy_fn = load_abi("XStockFactory").fn("deployToken")
    third = []
    for spec in TOKENS:
        if spec.contract == "xstock":
            config = (spec.name, spec.symbol, issuer, issuer, issuer, issuer, oracle, issuer, spec.period_length,
                      deployed_at - 1, spec.fee_per_period)
            third.append(("xstock", spec.symbol, Tx(issuer, factory, deploy_fn.encode(config), 6_000_000)))
    predicted = {symbol: deploy_fn.decode(rpc.call("eth_call", [{"from": tx.sender, "to": tx.to, "data": tx.data},
                                                                 "latest"]))[0].lower() for _, symbol, tx in third}
    tokens = {t.symbol: predicted.get(t.symbol) or placed[("token", t.symbol)] for t in TOKENS}
    positions = placed[("uniswap", "positions")]
    third += [("pool", spec.name, tx) for spec, tx in zip(POOLS, pool_creation_txs(positions, tokens), strict=True)]
    third += [("vault", spec.symbol, vault_creation_tx(spec, tokens[spec.asset], w.deploy)) for spec in VAULTS]
    hashes = w.send_all([tx for _, _, tx in third])
    w.mine(deployed_at)
    receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    new_token = topic_of("NewToken(address,string,string)")
    for (kind, key, _), receipt in zip(third, receipts, strict=True):
        if receipt is None or receipt.get("status") != "0x1" or (kind == "vault" and not receipt.get("contractAddress")):
            what = {"xstock": f"xStock {key} through the factory", "vault": f"vault {key}"}.get(kind, f"pool {key}")
            raise DevchainError(f"deploying {what} failed: {receipt!r:.300}")
        if kind == "vault":
            placed[("vault", key)] = receipt["contractAddress"].lower()
        if kind == "xstock":
            (log,) = [lg for lg in receipt["logs"] if lg["topics"][0] == new_token]
            placed[("token", key)] = "0x" + log["topics"][1][-40:]
            if placed[("token", key)] != predicted[key]:
                raise DevchainError(f"xStock {key} was deployed at {placed[('token', key)]}, not at {predicted[key]}")
    rpc.call("anvil_setCode", [MULTICALL3_ADDRESS, load_artifact("Multicall3")["deployedBytecode"]])
    proxy_admin = load_abi("XStockFactory").fn("proxyAdmin")
    admin = proxy_admin.decode(rpc.call("eth_call", [{"to": factory, "data": proxy_admin.encode()}, "latest"]))[0]
    price_names = {price_feed_name(t) for t in TOKENS} | {c.pair for c in CRYPTO}
    uniswap = {key: placed[("uniswap", key)] for key in ("factory", "positions", "router", "quoter", "lens")}
    return Deployment(
        issuer=issuer, updater=updater, sanctions_list=oracle,
        tokens={t.symbol: placed[("token", t.symbol)] for t in TOKENS},
        price_feeds={n: placed[("proxy", n)] for n, _, _ in feeds if n in price_names},
        reserve_feeds={t.symbol: placed[("proxy", reserve_feed_name(t.symbol))] for t in TOKENS if t.has_reserve_feed},
        deployed_at=deployed_at, factory=factory, proxy_admin=admin.lower(),
        implementations={"XStockV3": v3, "XStockV4": placed[("impl", "XStockV4")]},
        disperse=placed[("disperse", "disperse")],
        aggregators={n: [placed[(f"aggregator:{p}", n)] for p in range(1, n_phases + 1)] for n, _, _ in feeds},
        uniswap=uniswap,
        pools={spec.name: pool_address(uniswap["factory"], placed[("token", spec.token)],
                                       placed[("token", POOL_QUOTE)], spec.fee) for spec in POOLS},
        vaults={spec.symbol: placed[("vault", spec.symbol)] for spec in VAULTS},
    )


def _feed_list() -> list[tuple[str, int, bool]]:
    """(name, decimals, with faults) of every feed: one price feed per token, a reserve feed per stock token,
    the crypto pairs. The feed that replays a faulty round gets the aggregator that can publish one."""
    faulty = {price_feed_name(e_spec) for e_spec in TOKENS if e_spec.symbol == "COIN"}
    out = [(price_feed_name(t), PRICE_DECIMALS, price_feed_name(t) in faulty) for t in TOKENS]
    out += [(reserve_feed_name(t.symbol), RESERVE_DECIMALS, False) for t in TOKENS if t.has_reserve_feed]
    out += [(c.pair, PRICE_DECIMALS, False) for c in CRYPTO]
    return out


def _place(rpc: RpcClient, w: ChainWriter, plan: list[tuple[str, str, Tx]], timestamp: int) -> dict[tuple[str, str], str]:
    """Send contract creations, mine them at `timestamp`, and return {(kind, key): address}."""
    hashes = w.send_all([tx for _, _, tx in plan])
    w.mine(timestamp)
    out = {}
    for (kind, key, _), receipt in zip(plan, rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes]),
                                       strict=True):
        if receipt is None or receipt.get("status") != "0x1" or not receipt.get("contractAddress"):
            raise DevchainError(f"deploying {kind} {key} failed: {receipt!r:.300}")
        out[(kind, key)] = receipt["contractAddress"].lower()
    return out


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
    phase: Callable[[str], None] | None = None,
) -> BuildReport:
    """Mine the initial distribution and every planned block; verify each block's receipts. `phase` is
    told each step by name, `progress` the blocks played so far and their number."""
    started = time.monotonic()
    writer = ChainWriter(rpc)
    rpc.call("evm_setAutomine", [False])
    if phase is not None:
        phase("minting the initial distribution")
    mine_initial_distribution(writer, sim)
    times = sim.block_times()
    if phase is not None:
        phase(f"playing {len(times):,} world blocks")
    events: list[dict[str, Any]] = []
    head = deployment_block
    for i in range(0, len(times), 50):
        head = play_blocks(writer, sim, times[i:i + 50], events, check_every=check_every)
        if progress is not None:
            progress(min(i + 50, len(times)), len(times))
    return BuildReport(
        deployment_block=deployment_block,
        head_block=head,
        blocks=len(times) + 1,
        transactions=writer.sent,
        transfers=sim.transfers_planned,
        seconds=time.monotonic() - started,
        events=events,
    )


def mine_initial_distribution(writer: ChainWriter, sim: WorldSim) -> None:
    """The initial distribution, half an hour before the world's first block. It comes in stages (mints,
    then the market maker's distributions), each spread over consecutive blocks of its own when it
    exceeds one block's gas."""
    mint_time = sim.tl.start - 1_800
    blocks: list[list[Tx]] = []
    for stage in sim.initial_mints(mint_time):
        blocks.append([])
        gas = 0
        for tx in stage:
            if gas + tx.gas > GAS_LIMIT * 0.9 and blocks[-1]:
                blocks.append([])
                gas = 0
            blocks[-1].append(tx)
            gas += tx.gas
    blocks = [b for b in blocks if b]
    for k, txs in enumerate(blocks):
        writer.send_all(txs)
        n = writer.mine(mint_time - (len(blocks) - 1 - k))
        writer.check_block(n, len(txs))


def play_blocks(writer: ChainWriter, sim: WorldSim, times: list[int], events: list[dict[str, Any]], *,
                check_every: int = 1) -> int:
    """Plan and mine one block per timestamp (automine off); the world events they hold are appended to
    `events`. Returns the last block's number."""
    n = -1
    for t in times:
        plan: BlockPlan = sim.next_block(t)
        writer.send_all(plan.txs)
        n = writer.mine(t)
        if check_every and sim.block_index % check_every == 0:
            writer.check_block(n, len(plan.txs))
        events += [{**ev, "block": n} for ev in plan.events]
    return n


def build_world(
    rpc: RpcClient,
    *,
    seed: int,
    scale: Scale,
    timeline: Timeline,
    progress: Callable[[int, int], None] | None = None,
    phase: Callable[[str], None] | None = None,
) -> tuple[WorldSim, BuildReport]:
    deployed_at = timeline.start - 7_200
    if phase is not None:
        phase("deploying the world's contracts")
    dep = deploy_world(rpc, deployed_at)
    deployment_block = int(rpc.call("eth_blockNumber"), 16) - 2  # the block of the sanctions oracle
    if phase is not None:
        phase(f"planning the world (seed {seed}, scale {scale.name}, {scale.wallets:,} wallets)")
    sim = WorldSim(seed, scale, timeline, dep)
    report = play_world(rpc, sim, deployment_block=deployment_block, progress=progress, phase=phase)
    rpc.call("evm_setAutomine", [True])
    return sim, report
