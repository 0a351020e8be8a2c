"""The dev world's ERC-4626 vault over TSLAx (indexer/devchain/vaults.py, docs/liquidity.md "The dev world's vault"),
on real anvil: the manifest lists it as a plain token whose `vault_asset` is TSLAx; on chain it is OpenZeppelin's
ERC4626 over TSLAx; its shares are the depositors' (the world's books, to the wei); the attacker's donation pushes
`convertToAssets(1e18)` about 13 times higher in one block, as the manifest's event records it; and TSLAx's 3-for-1
split triples the rate in TSLAx units while it stays where it was in underlying shares.

The session world (seed 7) is read at its head. The rates at past blocks, as the sync stores them while it follows
the world through the split and the donation, and the risk runs there: tests/runs/test_world_events.py."""

from __future__ import annotations

from indexer.accounting import WAD
from indexer.chain.abi import load_abi
from indexer.chain.decode import topic_of
from indexer.chain.rpc import RpcClient
from indexer.devchain.specs import DAY, SCALES, VAULT_DONATION, VAULTS, utc
from indexer.devchain.vaults import ATTACKER, VAULT_DEPLOYER
from indexer.devchain.world import WorldSim, token_contract
from indexer.types import Accounting
from tests.devchain.test_world_pools import fake_deployment, played

SEED = 7
SCALE = SCALES["small"]
VAULT = VAULTS[0]
DONATION = utc(2026, 4, 21, 14, 30)  # specs.scheduled_events: the attacker's transfer to the vault

VAULT_ABI = load_abi("StockVault")
XSTOCK = load_abi("XStockV4")
TRANSFER = topic_of("Transfer(address,address,uint256)")
DEPOSIT = VAULT_ABI.event("Deposit").topic0
WITHDRAW = VAULT_ABI.event("Withdraw").topic0


def call(rpc: RpcClient, abi, address: str, fn: str, *args, block: int | str = "latest"):
    f = abi.fn(fn)
    out = f.decode(rpc.call("eth_call", [{"to": address, "data": f.encode(*args)},
                                         block if isinstance(block, str) else hex(block)]))
    return out[0] if len(out) == 1 else out


def logs(rpc: RpcClient, address: str | list[str], topics: list, start: int, end: int, step: int = 2000) -> list[dict]:
    found = []
    for lo in range(start, end + 1, step):
        found += rpc.call("eth_getLogs", [{"address": address, "topics": topics, "fromBlock": hex(lo),
                                            "toBlock": hex(min(end, lo + step - 1))}])
    return found


def topic_address(topic: str) -> str:
    return "0x" + topic[-40:]


# ------------------------------------------------------------------------------------------ the session world
def test_the_manifest_lists_the_vault_as_a_plain_token_over_tslax(manifest):
    vault, tslax = manifest.token(VAULT.symbol), manifest.token("TSLAx")
    assert (vault.name, vault.decimals, vault.underlying, vault.asset_class, vault.accounting, vault.vault_asset) == \
        ("TSLAx Vault", 18, "TSLA", tslax.asset_class, Accounting.PLAIN, "TSLAx")
    assert vault.feed is None and vault.reserve_feed is None
    assert manifest.world["vaults"] == {VAULT.symbol: vault.address}
    assert manifest.world["contracts"][VAULT.symbol] == "stock_vault"
    assert manifest.world["vault_actors"] == {"deployer": VAULT_DEPLOYER, "attacker": ATTACKER}
    assert token_contract(VAULT.symbol) == "StockVault"


def test_the_vault_is_an_erc4626_over_tslax(manifest, world_rpc):
    vault, tslax = manifest.token(VAULT.symbol).address, manifest.token("TSLAx").address
    assert call(world_rpc, VAULT_ABI, vault, "asset").lower() == tslax
    assert [call(world_rpc, VAULT_ABI, vault, fn) for fn in ("name", "symbol", "decimals")] == \
        ["TSLAx Vault", "vTSLAx", 18]
    # created by its own deployer in the deployment's last block, as the artifact built from contracts/
    created = world_rpc.call("eth_getTransactionCount", [VAULT_DEPLOYER, "latest"])
    assert int(created, 16) == 1
    # totalAssets is TSLAx's balanceOf(vault)
    assert call(world_rpc, VAULT_ABI, vault, "totalAssets") == call(world_rpc, XSTOCK, tslax, "balanceOf", vault)


def test_the_vaults_shares_are_its_depositors_and_the_worlds_books(world, manifest, world_rpc):
    sim, vault = world.sim, manifest.token(VAULT.symbol).address
    start, head = manifest.chain.deployment_block, manifest.world["head_block"]
    moved = logs(world_rpc, vault, [TRANSFER], start, head)
    holders = {topic_address(lg["topics"][2]) for lg in moved} - {"0x" + "00" * 20}
    balances = {h: call(world_rpc, VAULT_ABI, vault, "balanceOf", h) for h in sorted(holders)}
    supply = call(world_rpc, VAULT_ABI, vault, "totalSupply")
    assert supply == sum(balances.values()) > 0
    # the world's books: the wallets' shares, the vault's supply and assets, to the wei; the attacker redeemed all
    assert {h: b for h, b in balances.items() if b} == {sim.wallets[w]: u for w, u in sim.units[VAULT.symbol].items()}
    assert balances[ATTACKER] == 0
    t_head = int(world_rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    assert supply == sim.vault.vaults[VAULT.symbol].supply == sim.total_units[VAULT.symbol]
    assert call(world_rpc, VAULT_ABI, vault, "totalAssets") == sim.vault.total_assets(sim, VAULT.symbol, t_head)
    # 15 to 25 of TSLAx's holders deposited (in the world's first days, some again later), and the attacker
    owners = {topic_address(lg["topics"][2]) for lg in logs(world_rpc, vault, [DEPOSIT], start, head)}
    assert ATTACKER in owners and 15 <= len(owners) - 1 <= 25
    assert owners - {ATTACKER} <= set(sim.wallets)


def test_the_donation_is_recorded_and_the_attacker_redeems_days_later(manifest, world_rpc):
    (ev,) = [e for e in manifest.events if e["kind"] == "vault_donation"]
    vault, tslax = manifest.token(VAULT.symbol).address, manifest.token("TSLAx").address
    assert (ev["token"], ev["vault"], ev["asset"], ev["donor"], ev["timestamp"]) == \
        (VAULT.symbol, vault, "TSLAx", ATTACKER, DONATION)
    before, after = int(ev["convert_to_assets_before"]), int(ev["convert_to_assets_after"])
    assert 10 < after / before < 16
    # the vault receives `floor(amount * 1e18 / m)` shares: with TSLAx's multiplier near 3, up to 3 units short
    short = int(ev["amount"]) - (int(ev["total_assets_after"]) - int(ev["total_assets_before"]))
    assert 0 <= short <= 3
    # a plain ERC-20 transfer of TSLAx from the donor to the vault, the only transaction of the vault in its block
    block = ev["block"]
    (moved,) = logs(world_rpc, tslax, [TRANSFER, None, "0x" + vault[2:].rjust(64, "0")], block, block)
    assert topic_address(moved["topics"][1]) == ATTACKER and int(moved["data"], 16) == int(ev["amount"])
    assert logs(world_rpc, vault, [], block - 1, block) == []
    # the attacker redeems every share a few days later; the rate stays high
    start, head = manifest.chain.deployment_block, manifest.world["head_block"]
    redeemed = [lg for lg in logs(world_rpc, vault, [WITHDRAW], block, head)
                if topic_address(lg["topics"][3]) == ATTACKER]
    assert len(redeemed) == 1
    at = int(world_rpc.call("eth_getBlockByNumber", [redeemed[0]["blockNumber"], False])["timestamp"], 16)
    assert at == ev["redeem_time"] == DONATION + VAULT_DONATION["redeem_days"] * DAY
    attacker = [lg for lg in logs(world_rpc, vault, [DEPOSIT], start, head) if topic_address(lg["topics"][2]) == ATTACKER]
    assert len(attacker) == 1 and int(attacker[0]["blockNumber"], 16) < block
    assert call(world_rpc, VAULT_ABI, vault, "convertToAssets", WAD) > 0.8 * after


def test_no_vault_transaction_moves_tslax_in_the_splits_quiet_days(manifest, world_rpc):
    vault = manifest.token(VAULT.symbol).address
    start, head = manifest.chain.deployment_block, manifest.world["head_block"]
    split = next(e for e in manifest.events if e["kind"] == "multiplier_scheduled" and e["token"] == "TSLAx")
    quiet = (split["activation_time"], split["activation_time"] + 3 * DAY)
    found = logs(world_rpc, vault, [], start, head)
    times = {int(world_rpc.call("eth_getBlockByNumber", [b, False])["timestamp"], 16)
             for b in sorted({lg["blockNumber"] for lg in found})}
    assert times and not [t for t in times if quiet[0] <= t < quiet[1]]


# ------------------------------------------------------------------------------------------ pure plan
def _played(vault: bool, seed: int = SEED) -> tuple[WorldSim, list]:
    return played(fake_deployment(vault=vault), seed, blocks=400)


def test_the_vaults_plan_is_seeded_and_leaves_the_worlds_draws_as_they_were():
    with_vault, txs = _played(True)
    assert txs == _played(True)[1] and txs != _played(True, seed=SEED + 1)[1]
    without, plain = _played(False)
    # the same prices and the same draws: the vault draws from a generator of its own
    assert (with_vault.log_fair == without.log_fair).all()
    assert with_vault.rng.bit_generator.state == without.rng.bit_generator.state
    assert {s: len(h) for s, h in with_vault.holders.items() if s != VAULT.symbol} == \
        {s: len(h) for s, h in without.holders.items() if s != VAULT.symbol}
    # the vault's transactions: approvals of it and deposits into it, one depositor a block
    vault = with_vault.dep.vaults[VAULT.symbol]
    deposit = "0x" + VAULT_ABI.fn("deposit").selector.hex()
    into = [tx for tx in txs if tx[1] == vault]
    assert into and all(tx[2][:10] == deposit for tx in into)
    assert 16 <= len(into) <= 26 and len({tx[0] for tx in into}) == len(into)
    assert len(with_vault.holders[VAULT.symbol]) == len(into) - 1  # the attacker is not one of the world's wallets
    # the books: TSLAx's supply counts the holders', the vault's and the attacker's shares
    vs = with_vault.vault
    assert with_vault.total_units["TSLAx"] == sum(with_vault.units["TSLAx"].values()) + \
        vs.vaults[VAULT.symbol].held + vs.units["TSLAx"]
    assert with_vault.total_units[VAULT.symbol] == vs.vaults[VAULT.symbol].supply == \
        sum(with_vault.units[VAULT.symbol].values()) + vs.units[VAULT.symbol]
