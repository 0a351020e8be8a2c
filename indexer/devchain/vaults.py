"""The dev world's ERC-4626 vault over TSLAx, simulated to the wei (docs/liquidity.md, "The dev world's vault").

One vault (`specs.VAULTS`): `contracts/StockVault.sol`, OpenZeppelin Contracts 5.1.0's ERC4626 as published, whose
asset is the rebasing xStock TSLAx, deployed with the world (`deploy.deploy_world`) by an account of its own. Its
rate is `convertToAssets(s) = floor(s (totalAssets + 1) / (totalSupply + 1))` (decimals offset 0), with
`totalAssets = TSLAx.balanceOf(vault)`: a plain transfer of TSLAx to the vault (a donation) raises it for every
holder, and so does TSLAx's multiplier (its 3-for-1 split triples the rate in TSLAx units; in underlying shares it
stays where it was).

- **Depositors.** After the initial distribution 15 to 25 of TSLAx's holders (not the whales, not the wallets the
  world sanctions), drawn once with odds growing as the square root of their holding, each `approve` the vault and `deposit` 20-60% of their TSLAx in one of the world's
  first blocks, one depositor a block; a few later deposits and redemptions (`redeem`) by them follow, spread over
  the world.
- **The attacker**, an account outside the world's wallets, gets a little TSLAx from the issuer in the initial
  distribution and deposits it among the first. At the `vault_donation` event (`specs.scheduled_events`) it sends
  the vault (plain `transfer`) `multiple - 1` times the vault's assets, so that `convertToAssets(1e18)` jumps
  `multiple` times in one block: the TSLAx comes from the issuer's mint to it in the last block of proof-of-reserve
  reports before (every four hours: the supply never runs ahead of the reserve), the flash loan's stand-in. It
  redeems all its shares `redeem_days` later; the rate stays high, the donation now spread over every holder.

The simulation keeps the vault's TSLAx shares, its totalSupply and every holder's vault shares (the world's wallets
in `WorldSim.units[vault symbol]`, the attacker's here), and computes each deposit and redemption with the
contract's own rounding and TSLAx's: a transfer of `a` moves `floor(a * 1e18 / m)` shares, so the vault may receive
a few units less than `a` (up to `ceil(m / 1e18)`), which ERC4626 does not check
(`indexer.accounting.shares_from_amount`, `balance_from_shares`). So it knows `totalAssets` and `convertToAssets` at
every block. At most one transaction a block moves a vault's state (its order against other senders' is not the
plan's), and none while TSLAx may not move (the three quiet days after its split, `specs.scheduled_events`). The draws come from a generator of their own (seeded from the world's seed): the
world's other draws are those of a world without the vault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from eth_utils import keccak

from indexer.accounting import balance_from_shares, shares_from_amount
from indexer.chain.abi import load_abi
from indexer.devchain.specs import DAY, SANCTIONED, VAULTS, WHALES, ScheduledEvent, VaultSpec
from indexer.devchain.txs import Tx
from indexer.types import Accounting

if TYPE_CHECKING:
    from indexer.devchain.world import BlockPlan, WorldSim


def vault_actor(name: str) -> str:
    return "0x" + keccak(f"collateral-indexer/world/vault/{name}".encode())[-20:].hex()


VAULT_DEPLOYER = vault_actor("deployer")  # deploys the vaults
ATTACKER = vault_actor("attacker")  # deposits early, donates once, redeems (the `vault_donation` event)
VAULT_CONTRACT = "StockVault"
VAULT_SYMBOLS = frozenset(v.symbol for v in VAULTS)
ATTACKER_USD = 250.0  # the attacker's first deposit, minted to it by the issuer in the initial distribution
FUND_EVERY = 4 * 3600  # the donation's mint falls in a block of the proof-of-reserve reports (every four hours)
LATER_DAYS = (10, 118)  # the later deposits and redemptions fall between these days of the world
WINDOW = DAY  # no other move of the vault from a day before the donation's mint to a day after the redemption
GAS_VAULT = 300_000
GAS_TOKEN = 200_000


def convert_to_assets(shares: int, assets: int, supply: int) -> int:
    """ERC4626 `_convertToAssets(shares, Floor)` with decimals offset 0."""
    return shares * (assets + 1) // (supply + 1)


def convert_to_shares(assets_in: int, assets: int, supply: int) -> int:
    """ERC4626 `_convertToShares(assets, Floor)` with decimals offset 0."""
    return assets_in * (supply + 1) // (assets + 1)


def vault_creation_tx(spec: VaultSpec, asset: str, deploy) -> Tx:
    """The vault's creation, by its deployer (`deploy` is `ChainWriter.deploy`)."""
    return deploy(VAULT_DEPLOYER, VAULT_CONTRACT, ["address", "string", "string"], [asset, spec.name, spec.symbol])


@dataclass
class WorldVault:
    spec: VaultSpec
    address: str
    held: int = 0  # the vault's units of its asset (shares, for an xStock)
    supply: int = 0  # totalSupply of the vault's shares


@dataclass(frozen=True)
class Move:
    at: int  # not before this time
    vault: str  # the vault's symbol
    kind: str  # deposit or redeem
    holder: int  # the world's wallet index
    share: float  # of its asset balance (deposit) or of its vault shares (redeem)


class VaultSim:
    """The vaults, their holders' shares and their plan, block by block (driven by `WorldSim`)."""

    def __init__(self, sim: WorldSim) -> None:
        self.rng = np.random.default_rng([sim.seed, 23])
        self.vaults = {v.symbol: WorldVault(v, sim.dep.vaults[v.symbol]) for v in VAULTS if v.symbol in sim.dep.vaults}
        self.abi = load_abi(VAULT_CONTRACT)
        self.units: dict[str, int] = {}  # the attacker's: token symbol (an asset or a vault) -> units
        self.queue: list[Move] = []
        self.donations = {ev.token: ev for ev in sim.events if ev.kind == "vault_donation"}
        self.funded: dict[str, int] = {}  # vault symbol -> time of the donation's mint to the attacker
        self.redeem_at: dict[str, int] = {}  # vault symbol -> when the attacker redeems
        self.donated: set[str] = set()
        self.planned = 0  # vault transactions planned (approvals, deposits, redemptions, the donation)

    # -- books ----------------------------------------------------------------------------------
    def _rebasing(self, sim: WorldSim, sym: str) -> bool:
        return sim.specs[sym].accounting == Accounting.REBASING_SHARES

    def _asset_units(self, sim: WorldSim, sym: str, amount: int, t: int) -> int:
        """The units a transfer of `amount` moves: `floor(amount * 1e18 / m)` shares of an xStock."""
        return shares_from_amount(amount, sim.multiplier(sym, t)) if self._rebasing(sim, sym) else amount

    def _balance_of_units(self, sim: WorldSim, sym: str, units: int, t: int) -> int:
        return balance_from_shares(units, sim.multiplier(sym, t)) if self._rebasing(sim, sym) else units

    def total_assets(self, sim: WorldSim, vault: str, t: int) -> int:
        """`totalAssets()` at time t: the asset's balanceOf(vault)."""
        v = self.vaults[vault]
        return self._balance_of_units(sim, v.spec.asset, v.held, t)

    def rate(self, sim: WorldSim, vault: str, t: int) -> int:
        """`convertToAssets(10**decimals)` at time t."""
        v = self.vaults[vault]
        return convert_to_assets(10**v.spec.decimals, self.total_assets(sim, vault, t), v.supply)

    def attacker_balance(self, sim: WorldSim, sym: str, t: int) -> int:
        """balanceOf(attacker) of a token (an asset or a vault) at time t."""
        units = self.units.get(sym, 0)
        return units if sym in self.vaults else self._balance_of_units(sim, sym, units, t)

    # -- the initial distribution ---------------------------------------------------------------
    def initial_txs(self, sim: WorldSim, t: int) -> list[Tx]:
        """The issuer's mint to the attacker; the depositors drawn and their moves planned (none sent yet)."""
        txs = []
        times = sim.block_times()  # the blocks' times do not depend on the world's length past its first days
        bs = sim.tl.block_seconds
        for v in self.vaults.values():
            asset = v.spec.asset
            amount = sim._usd_units(sim.specs[asset], ATTACKER_USD, t)
            units = self._asset_units(sim, asset, amount, t)
            self.units[asset] = self.units.get(asset, 0) + units
            sim.total_units[asset] += units
            sim.transfers_planned += 1
            txs.append(sim._token_call(asset, "mint", ATTACKER, amount, gas=GAS_TOKEN))
            eligible = sorted(w for w in sim.holders[asset] if w not in WHALES and w not in SANCTIONED)
            lo, hi = v.spec.depositors
            n = min(int(self.rng.integers(lo, hi + 1)), len(eligible))
            weight = np.sqrt(np.array([sim.balance(asset, w, t) for w in eligible], dtype=float))  # larger: likelier
            chosen = [int(w) for w in self.rng.choice(eligible, size=n, replace=False, p=weight / weight.sum())]
            first = [x for x in times[:v.spec.deposit_days * DAY // bs] if x < sim.tl.start + v.spec.deposit_days * DAY]
            slots = sorted(int(k) for k in self.rng.choice(len(first), size=min(n + 1, len(first)), replace=False))
            shares = self.rng.uniform(*v.spec.deposit_share, n)
            # the attacker among the first: it deposits everything it was given, in the first slot
            self.queue.append(Move(first[slots[0]], v.spec.symbol, "attacker_deposit", -1, 1.0))
            self.queue += [Move(first[k], v.spec.symbol, "deposit", w, float(s))
                           for k, w, s in zip(slots[1:], chosen, shares, strict=False)]
            later_lo, later_hi = (sim.tl.start + d * DAY // bs * bs for d in LATER_DAYS)
            at = sorted(int(x) for x in self.rng.integers(later_lo // bs, later_hi // bs, v.spec.later_moves))
            kinds = self.rng.random(v.spec.later_moves)
            holders = self.rng.integers(len(chosen), size=v.spec.later_moves)
            fracs = self.rng.uniform(0.2, 1.0, v.spec.later_moves)
            window = self._window(v.spec.symbol)
            for k in range(v.spec.later_moves):
                if window[0] <= at[k] * bs <= window[1]:
                    continue
                kind = "redeem" if kinds[k] < 0.5 else "deposit"
                share = float(fracs[k]) if kind == "redeem" else float(fracs[k]) / 2
                self.queue.append(Move(at[k] * bs, v.spec.symbol, kind, chosen[int(holders[k])], share))
        self.queue.sort(key=lambda m: m.at)
        return txs

    def _window(self, vault: str) -> tuple[int, int]:
        """The times around the donation in which no other move touches the vault."""
        ev = self.donations.get(vault)
        if ev is None:
            return (0, -1)
        return (ev.at - FUND_EVERY - WINDOW, ev.at + ev.detail["redeem_days"] * DAY + WINDOW)

    # -- one block ------------------------------------------------------------------------------
    def plan_block(self, sim: WorldSim, t: int, plan: BlockPlan) -> None:
        """A vault's move of the block, if any (before the world's transfers: a depositor's own later moves in the
        block see its balance after the deposit): the donation's mint to the attacker, the attacker's redemption,
        or the next queued deposit or redemption."""
        for sym, v in self.vaults.items():
            if not sim._can_move_token(v.spec.asset, t):
                continue
            ev = self.donations.get(sym)
            if ev is not None and sym not in self.funded and t % FUND_EVERY == 0 and t < ev.at <= t + FUND_EVERY:
                self._fund(sim, v, ev, t, plan)
                continue
            if sym in self.redeem_at and t >= self.redeem_at[sym]:
                del self.redeem_at[sym]
                self._redeem(sim, v, None, self.units.get(sym, 0), t, plan)
                continue
            window = self._window(sym)
            if window[0] <= t <= window[1]:
                continue
            move = next((m for m in self.queue if m.vault == sym), None)
            if move is None or move.at > t:
                continue
            self.queue.remove(move)
            if move.kind == "attacker_deposit":
                self._deposit(sim, v, None, self.attacker_balance(sim, v.spec.asset, t), t, plan)
            elif not sim._can_move(v.spec.asset, move.holder, t):
                continue
            elif move.kind == "deposit":
                self._deposit(sim, v, move.holder, int(sim.balance(v.spec.asset, move.holder, t) * move.share), t, plan)
            else:
                held = sim.units[sym].get(move.holder, 0)
                self._redeem(sim, v, move.holder, held if move.share > 0.95 else int(held * move.share), t, plan)

    def _address(self, sim: WorldSim, holder: int | None) -> str:
        return ATTACKER if holder is None else sim.wallets[holder]

    def _deposit(self, sim: WorldSim, v: WorldVault, holder: int | None, amount: int, t: int, plan: BlockPlan) -> None:
        """`approve(vault, amount)` on the asset, then `deposit(amount, holder)`: the shares at the rate before, the
        asset units `floor(amount * 1e18 / m)` into the vault."""
        asset, sym = v.spec.asset, v.spec.symbol
        shares = convert_to_shares(amount, self.total_assets(sim, sym, t), v.supply)
        if amount <= 0 or shares == 0:
            return
        units = self._asset_units(sim, asset, amount, t)
        if holder is None:
            assert self.units[asset] >= units
            self.units[asset] -= units
            self.units[sym] = self.units.get(sym, 0) + shares
            sim.total_units[sym] += shares
        else:
            sim._debit(asset, holder, units)
            sim.total_units[asset] += units  # the vault's holding still counts in the supply
            sim._credit(sym, holder, shares)
        v.held += units
        v.supply += shares
        who = self._address(sim, holder)
        plan.txs.append(sim._token_call(asset, "approve", v.address, amount, gas=GAS_TOKEN, sender=who))
        plan.txs.append(Tx(who, v.address, self.abi.fn("deposit").encode(amount, who), GAS_VAULT))
        sim.transfers_planned += 2  # the asset's Transfer to the vault, the vault's mint
        self.planned += 2

    def _redeem(self, sim: WorldSim, v: WorldVault, holder: int | None, shares: int, t: int, plan: BlockPlan) -> None:
        """`redeem(shares, holder, holder)`: the assets at the rate before, sent by the vault's `transfer`."""
        asset, sym = v.spec.asset, v.spec.symbol
        assets = convert_to_assets(shares, self.total_assets(sim, sym, t), v.supply)
        if shares <= 0:
            return
        units = self._asset_units(sim, asset, assets, t)
        assert units <= v.held
        if holder is None:
            self.units[sym] -= shares
            sim.total_units[sym] -= shares
            self.units[asset] = self.units.get(asset, 0) + units
        else:
            sim._debit(sym, holder, shares)
            sim._credit(asset, holder, units)
            sim.total_units[asset] -= units  # counted already as the vault's
        v.held -= units
        v.supply -= shares
        who = self._address(sim, holder)
        plan.txs.append(Tx(who, v.address, self.abi.fn("redeem").encode(shares, who, who), GAS_VAULT))
        sim.transfers_planned += 2  # the vault's burn, the asset's Transfer from the vault
        self.planned += 1

    # -- the donation ---------------------------------------------------------------------------
    def _donation_amount(self, sim: WorldSim, v: WorldVault, multiple: int, t: int) -> int:
        """What takes `totalAssets + 1`, and so convertToAssets, `multiple` times higher."""
        return (multiple - 1) * (self.total_assets(sim, v.spec.symbol, t) + 1)

    def _fund(self, sim: WorldSim, v: WorldVault, ev: ScheduledEvent, t: int, plan: BlockPlan) -> None:
        """The issuer's mint to the attacker of what it will donate (and a little more), in a block whose reserve
        reports count it."""
        asset = v.spec.asset
        need = self._donation_amount(sim, v, ev.detail["multiple"], t)
        amount = need + need // 100 - self.attacker_balance(sim, asset, t)
        units = self._asset_units(sim, asset, amount, t)
        self.units[asset] = self.units.get(asset, 0) + units
        sim.total_units[asset] += units
        sim.transfers_planned += 1
        plan.txs.append(sim._token_call(asset, "mint", ATTACKER, amount, gas=GAS_TOKEN))
        self.funded[v.spec.symbol] = t

    def on_donation(self, sim: WorldSim, ev: ScheduledEvent, t: int, plan: BlockPlan, record: dict) -> None:
        """The attacker's `transfer` of TSLAx to the vault; the record carries convertToAssets(10**decimals) just
        before and just after it (decimal strings of raw integers, as the world's other large values)."""
        v = self.vaults.get(ev.token)
        if v is None or v.spec.symbol not in self.funded or not sim._can_move_token(v.spec.asset, t):
            record["skipped"] = True
            return
        asset, sym = v.spec.asset, v.spec.symbol
        before, assets_before = self.rate(sim, sym, t), self.total_assets(sim, sym, t)
        amount = min(self._donation_amount(sim, v, ev.detail["multiple"], t), self.attacker_balance(sim, asset, t))
        units = self._asset_units(sim, asset, amount, t)
        self.units[asset] -= units
        v.held += units
        sim.transfers_planned += 1
        self.planned += 1
        plan.txs.append(sim._token_call(asset, "transfer", v.address, amount, gas=GAS_TOKEN, sender=ATTACKER))
        self.redeem_at[sym] = t + ev.detail["redeem_days"] * DAY
        self.donated.add(sym)
        record.update(vault=v.address, asset=asset, donor=ATTACKER, amount=str(amount),
                      total_assets_before=str(assets_before), total_assets_after=str(self.total_assets(sim, sym, t)),
                      total_supply=str(v.supply), convert_to_assets_before=str(before),
                      convert_to_assets_after=str(self.rate(sim, sym, t)), redeem_time=self.redeem_at[sym])
