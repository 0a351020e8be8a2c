"""The dev world's off-chain book: the venue's accounts and crypto positions, as the CSV files the
`collateral-indexer load` commands read. Deterministic from the world's seed.

Accounts: about a third of the holders are the venue's clients (most token holders on a public
chain are not, and the platform-wide cap on pledged supply should bind only when it would in
practice); most clients are KYC-approved non-US persons, a few are US persons (blocked by the default
policy) or pending KYC, so every account rule has a case. Wallets without an account show
ACCOUNT_UNKNOWN.
Positions: about 60% of the clients run a levered long BTC or ETH perpetual against their tokenized
stock collateral (the wrong-way case the joint crash tests), a few hedge with a short; sizes are a
multiple of the holder's collateral at the world's start, so margin is tight for some and loose for
most.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from indexer.devchain.specs import CRYPTO
from indexer.devchain.world import WorldSim

ACCOUNTS_CSV = "accounts.csv"
POSITIONS_CSV = "positions.csv"
CLIENT_SHARE = 0.35
JURISDICTIONS = ("DE", "SG", "GB", "FR", "CH", "AE", "JP", "BR", "ES", "IT")


def book_rows(sim: WorldSim) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(sim.seed + 10_007)
    start_price = {c.pair.split("/")[0]: c.price for c in CRYPTO}
    value = np.zeros(len(sim.wallets))
    for sym, spec in sim.specs.items():
        for w, units in sim.units[sym].items():
            value[w] += units / 10**spec.decimals * spec.price
    accounts, positions = [], []
    for i, wallet in enumerate(sim.wallets):
        r = rng.random()
        if r >= CLIENT_SHARE:
            continue  # not a client of the venue: no account on file
        jurisdiction = "US" if r < 0.015 else JURISDICTIONS[int(rng.integers(len(JURISDICTIONS)))]
        kyc = "pending" if rng.random() < 0.02 else "approved"
        tier = rng.choice(["retail", "professional", "institutional"], p=[0.8, 0.15, 0.05])
        cash = round(float(rng.exponential(200.0)), 2) if rng.random() < 0.3 else 0.0
        accounts.append(dict(wallet=wallet, jurisdiction=jurisdiction, tier=str(tier), kyc_status=kyc, cash_usd=cash))
        if value[i] <= 0 or rng.random() > 0.6:
            continue
        base = "BTC" if rng.random() < 0.7 else "ETH"
        leverage = float(rng.choice([3.0, 5.0, 10.0, 20.0]))
        multiple = float(rng.uniform(0.5, 3.0))
        side = -1.0 if rng.random() < 0.1 else 1.0
        entry = start_price[base]
        size = side * value[i] * multiple / entry
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
