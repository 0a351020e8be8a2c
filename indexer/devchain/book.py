"""The dev world's off-chain book: the venue's accounts and crypto positions, as the CSV files the
`collateral-indexer load` commands read. Deterministic from the world's seed.

Accounts: about a third of the holders are the venue's clients (most token holders on a public
chain are not, and the platform-wide cap on pledged supply should bind only when it would in
practice); most clients are KYC-approved non-US persons, a few are US persons (blocked by the default
policy) or pending KYC, so every account rule has a case. Wallets without an account show
ACCOUNT_UNKNOWN.
Positions: about 60% of the clients who may trade (KYC approved, outside the venue's blocked
jurisdictions) run a levered long BTC or ETH perpetual against their tokenized stock collateral (the
wrong-way case the joint crash tests), a few hedge with a short. Each was opened before the book's
time (the world's last planned block), an hour to a few weeks earlier (exponential with mean
`ENTRY_AGE_DAYS`, truncated to the world's history), at the world's own price then: the crypto feed's
round in force at the entry time, from the world's price path replayed from its seed. Leverage is mostly
2-5x, a few 10x and 20x (`LEVERAGE`, capped at the venue policy's `margin.max_leverage`). A position is
sized so that its initial margin takes a drawn share (`IM_USE`: a third on average, rarely above two
thirds) of what the venue counted as the holder's collateral at entry (the holdings at the entry prices,
less the venue policy's base haircut, a volatility allowance and, for a token that trades in one of the world's
DEX pools, the policy's square-root liquidity term on the depth the pool was planned with (`planned_depth_usd`:
a holding of the thin MSTRx pool's token counts for next to nothing), without what the world's events had made
ineligible by then, within its per-wallet share caps); a position under `MIN_NOTIONAL_USD` is not opened.
So at the book's time most positions are healthy, those the market moved against since entry are in
margin call, and the joint crash takes many further.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.devchain.specs import CRYPTO, DAY, POOLS, PRICE_DECIMALS, TOKENS, PoolSpec
from indexer.devchain.world import WorldSim
from indexer.errors import DevchainError
from indexer.risk.policy import Policy, load_policy

ACCOUNTS_CSV = "accounts.csv"
POSITIONS_CSV = "positions.csv"
CLIENT_SHARE = 0.35
JURISDICTIONS = ("DE", "SG", "GB", "FR", "CH", "AE", "JP", "BR", "ES", "IT")
VENUE_POLICY = "default"  # the venue's rules its clients size their positions by
TRADING_SHARE = 0.6  # of the clients who may trade and hold tokens
ENTRY_AGE_DAYS = 10.0  # mean age of a position at the book's time
LEVERAGE = ((2.0, 0.30), (3.0, 0.32), (5.0, 0.26), (10.0, 0.08), (20.0, 0.04))  # (leverage, share of positions)
IM_USE = (2.0, 4.0, 0.05, 0.85)  # IM / counted collateral at entry: lo + span * Beta(a, b), as (a, b, lo, span)
SHORT_SHARE = 0.1
MIN_NOTIONAL_USD = 100.0  # the venue's smallest order: a client whose collateral sizes less opens nothing


@dataclass(frozen=True)
class MarketPath:
    """The world's prices at each of its planned blocks up to the book's time: the fair log price of each
    token (per original share, as `WorldSim.log_fair`) and crypto pair, and the crypto feeds' rounds."""

    times: np.ndarray  # block timestamps, increasing
    log_prices: np.ndarray  # (blocks, tokens + crypto pairs)

    def crypto_round(self, pair: int, t: int) -> float | None:
        """The answer (USD) of crypto pair `pair`'s round in force at `t`: the world publishes one at each
        block on the hour; None before the first."""
        hourly = np.flatnonzero((self.times <= t) & (self.times % 3600 == 0))
        if len(hourly) == 0:
            return None
        price = math.exp(self.log_prices[hourly[-1], len(TOKENS) + pair])
        return round(price * 10**PRICE_DECIMALS) / 10**PRICE_DECIMALS


def market_path(sim: WorldSim) -> MarketPath:
    """Replay the world's plan (same seed, scale, timeline and deployment: the same draws) up to `sim`'s
    last planned block, keeping the prices of every block; the simulation itself holds only the present."""
    replay = WorldSim(sim.seed, sim.scale, sim.tl, sim.dep)
    replay.initial_mints(sim.tl.start - 1_800)  # as the deployment mines it: the draws come first
    times = [t for t in replay.block_times() if t <= sim.last_time]
    logp = np.empty((len(times), len(replay.log_fair)))
    for k, t in enumerate(times):
        replay.next_block(t)
        logp[k] = replay.log_fair
    if replay.block_index == sim.block_index and not np.array_equal(replay.log_fair, sim.log_fair):
        raise DevchainError(f"the replay of world seed {sim.seed} did not reach the world's prices")
    return MarketPath(np.asarray(times, dtype=np.int64), logp)


def refused_at(sim: WorldSim, wallet: int, t: int) -> np.ndarray:
    """Per token, whether the world's events before `t` made the venue refuse `wallet`'s holding of it: the
    token paused or short of reserves, the wallet frozen on it or sanctioned."""
    index = {spec.symbol: j for j, spec in enumerate(TOKENS)}
    refused = np.zeros(len(TOKENS), dtype=bool)
    for ev in sim.events:
        if ev.at > t:
            break
        if ev.kind in ("pause", "reserve_shortfall") or (ev.kind == "xstock_pause" and t < ev.detail["until"]):
            refused[index[ev.token]] = True
        elif ev.kind in ("freeze", "unfreeze") and wallet in ev.detail["wallets"]:
            refused[index[ev.token]] = ev.kind == "freeze"
        elif ev.kind == "sanction" and wallet in ev.detail["wallets"]:
            refused[:] = True
    return refused


def planned_depth_usd(spec: PoolSpec, move: float) -> float:
    """USD of the pool's token that selling moves its price down by `move` (a fraction), as the pool is planned:
    a position of C USD a side over prices p / (1 + w) .. p (1 + w) takes about C move sqrt(1 + w) / (2 (sqrt(1 +
    w) - 1)) (its virtual liquidity over the price's square root, times the square root's move), C move / 2 over
    the full range."""
    total = 0.0
    for half_width, share in spec.ranges:
        r = math.sqrt(1.0 + half_width)
        total += spec.usd_per_side * share * move * (0.5 if half_width == 0 else r / (2.0 * (r - 1.0)))
    return total


def _liquidity_terms(policy: Policy, value: np.ndarray) -> np.ndarray:
    """Per token, the venue's square-root liquidity term of a holding worth `value` USD (docs/risk.md section
    15) against the planned depth of the token's pools (no volume counted: the client's estimate is the
    cautious one); 0 for a token with no pool."""
    lp, horizon = policy.liquidity, policy.volatility.horizon_days
    depth = {t.symbol: 0.0 for t in TOKENS}
    for spec in POOLS:
        depth[spec.token] += planned_depth_usd(spec, lp.depth_move_bp / 10_000)
    out = np.zeros(len(TOKENS))
    if not lp.enabled:
        return out
    for j, t in enumerate(TOKENS):
        if depth[t.symbol] > 0:
            sigma = t.vol / math.sqrt(252)
            out[j] = min(lp.impact_cap, lp.impact_y * sigma * math.sqrt(horizon) * math.sqrt(value[j] / depth[t.symbol]))
    return out


def _counted_collateral(policy: Policy, units: np.ndarray, log_prices: np.ndarray, refused: np.ndarray) -> float:
    """What the venue counts of holdings `units` (per token, in token units) at fair prices `log_prices`, as
    its client estimates it: the base haircut plus a volatility allowance over the liquidation horizon and the
    liquidity term of the token's pools, for the eligible tokens not `refused`, within the per-wallet share caps."""
    vol = policy.volatility
    value = units * np.exp(log_prices[:len(TOKENS)])
    haircut = np.array([min(1.0, policy.token_base_haircut(t.symbol)
                            + vol.z * t.vol / math.sqrt(252) * math.sqrt(vol.horizon_days)) for t in TOKENS])
    haircut = np.minimum(1.0, haircut + _liquidity_terms(policy, value))
    eligible = np.array([policy.token_eligible(t.symbol) for t in TOKENS]) & ~refused
    counted = value * (1.0 - haircut) * eligible
    caps = np.array([policy.token_wallet_share_cap(t.symbol) for t in TOKENS])
    return float(np.minimum(counted, caps * counted.sum()).sum())


def book_rows(sim: WorldSim) -> tuple[list[dict], list[dict]]:
    """The accounts and the positions, as rows of the two CSV files."""
    acc_rng, pos_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(sim.seed + 10_007).spawn(2))
    policy = load_policy(VENUE_POLICY)
    path = market_path(sim)
    as_of = int(path.times[-1]) if len(path.times) else sim.tl.start
    on_the_hour = path.times[path.times % 3600 == 0]
    first_round = int(on_the_hour[0]) if len(on_the_hour) else as_of + 1  # none: no position can open
    units = np.zeros((len(sim.wallets), len(TOKENS)))
    for j, spec in enumerate(TOKENS):
        for w, u in sim.units[spec.symbol].items():
            units[w, j] = u / 10**spec.decimals
    levels, shares = (np.array(x) for x in zip(*LEVERAGE, strict=True))
    blocked = set(policy.accounts.blocked_jurisdictions)
    accounts, positions = [], []
    for i, wallet in enumerate(sim.wallets):
        r = acc_rng.random()
        if r >= CLIENT_SHARE:
            continue  # not a client of the venue: no account on file
        jurisdiction = "US" if r < 0.015 else JURISDICTIONS[int(acc_rng.integers(len(JURISDICTIONS)))]
        kyc = "pending" if acc_rng.random() < 0.02 else "approved"
        tier = acc_rng.choice(["retail", "professional", "institutional"], p=[0.8, 0.15, 0.05])
        cash = round(float(acc_rng.exponential(200.0)), 2) if acc_rng.random() < 0.3 else 0.0
        accounts.append(dict(wallet=wallet, jurisdiction=jurisdiction, tier=str(tier), kyc_status=kyc, cash_usd=cash))
        # the venue opens no position for a client it may not serve
        if kyc != "approved" or jurisdiction in blocked or not units[i].any() or pos_rng.random() > TRADING_SHARE:
            continue
        pair = 0 if pos_rng.random() < 0.7 else 1
        base = CRYPTO[pair].pair.split("/")[0]
        side = -1.0 if pos_rng.random() < SHORT_SHARE else 1.0
        # an hour or more before the book's time, exponential within the world's history (after its first round)
        mean, room = ENTRY_AGE_DAYS * DAY, max(as_of - 3600 - first_round, 0)
        age = -mean * math.log1p(-float(pos_rng.random()) * -math.expm1(-room / mean))
        opened = max(as_of - 3600 - int(age), first_round)
        leverage = min(float(pos_rng.choice(levels, p=shares)), policy.margin.max_leverage)
        a, b, lo, span = IM_USE
        use = lo + span * float(pos_rng.beta(a, b))
        entry = path.crypto_round(pair, opened)
        if entry is None:
            continue
        k = int(np.searchsorted(path.times, opened, side="right")) - 1
        counted = _counted_collateral(policy, units[i], path.log_prices[k], refused_at(sim, i, opened))
        notional = use * leverage * counted
        if notional < MIN_NOTIONAL_USD:
            continue
        size = side * notional / entry
        positions.append(dict(wallet=wallet, instrument=f"{base}-PERP", base_asset=base,
                              size=f"{size:.8f}", entry_price=f"{entry:.2f}", leverage=f"{leverage:g}"))
    return accounts, positions


def write_book(sim: WorldSim, folder: Path) -> tuple[Path, Path]:
    accounts, positions = book_rows(sim)
    paths = folder / ACCOUNTS_CSV, folder / POSITIONS_CSV
    for path, rows, cols in ((paths[0], accounts, ["wallet", "jurisdiction", "tier", "kyc_status", "cash_usd"]),
                             (paths[1], positions, ["wallet", "instrument", "base_asset", "size", "entry_price",
                                                    "leverage"])):
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            writer.writerows(rows)
    return paths
