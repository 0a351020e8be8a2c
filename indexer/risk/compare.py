"""Policies side by side on one snapshot: ours (the reference) against disclosed venue rules.

Pure: the engine's per-wallet arrays of each policy on the SAME snapshot in, a :class:`PolicyComparison`
out; no I/O. The first policy is ours; every other one is a venue's disclosed rule (e.g. ``kraken_2026``).

A wallet is **under-reserved** against a venue B when B counts more cushion than ours:

- ``excess_B - excess_A > tolerance_usd + tolerance_rel * max(|excess_A|, |excess_B|)``, or
- its status flips: ``healthy`` under B but ``margin_call`` or ``liquidate`` under ours, or
- its stress flips: ``stressed_excess >= 0`` under B but ``< 0`` under ours (B's smaller stress loss can
  leave it positive even where B counts less excess).

Pairs (wallet, venue) are sorted by the shortfall ``excess_B - excess_A``, largest first (ties: the
venue's order, then the wallet's). Only wallets with a holding (balance > 0) or a position are compared;
the totals are over every wallet of the snapshot (the sums of the engine's wallet arrays).

    runs = [run_risk(snapshot, p) for p in (ours, kraken)]
    cmp = compare_runs(runs, ["default", "kraken_2026"], keys.wallets)
    cmp.totals[1].collateral, cmp.under.shortfall[:20], cmp.wallets[cmp.under.row[:20]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.risk.engine import MarginStatus, RiskRun, WalletRisk

TOLERANCE_USD = 0.01  # a cent: differences below it are float noise, not policy
TOLERANCE_REL = 1e-9
STATUS_NAMES = tuple(s.name.lower() for s in MarginStatus)
_UNDER_MARGIN = (int(MarginStatus.MARGIN_CALL), int(MarginStatus.LIQUIDATE))


@dataclass(frozen=True)
class PolicyTotals:
    """One policy's totals over every wallet of the snapshot."""

    name: str
    version: str
    wallets: int  # every wallet of the snapshot
    active_wallets: int  # those with a holding or a position (the compared ones)
    market_value: float
    collateral: float
    equity: float
    im: float
    excess: float
    stressed_excess: float
    status_counts: dict[str, int]  # per MarginStatus name, every status present (0 where none)
    stressed_negative: int  # wallets with stressed_excess < 0
    under_reserved: int  # wallets under-reserved against this policy (0 for ours)
    shortfall: float  # sum of excess_B - excess_A over them (0 for ours)


@dataclass(frozen=True, eq=False)
class UnderReserved:
    """(wallet, venue) pairs where the venue counts more cushion than ours, largest shortfall first."""

    row: np.ndarray  # int64, index into PolicyComparison.wallets (the compared wallets)
    policy: np.ndarray  # int64, index into PolicyComparison.names (>= 1: a venue)
    shortfall: np.ndarray  # excess_B - excess_A
    stressed_shortfall: np.ndarray  # stressed_excess_B - stressed_excess_A
    status_flip: np.ndarray  # bool: healthy under B, margin_call or liquidate under ours
    stress_flip: np.ndarray  # bool: stressed excess >= 0 under B, < 0 under ours

    def __len__(self) -> int:
        return len(self.row)


@dataclass(frozen=True, eq=False)
class PolicyComparison:
    names: tuple[str, ...]  # names[0] is ours
    versions: tuple[str, ...]
    totals: tuple[PolicyTotals, ...]
    wallet_idx: np.ndarray  # int64 (n,), the compared wallets' indices in the snapshot
    wallets: np.ndarray  # object (n,), their addresses
    collateral: np.ndarray  # (p, n)
    excess: np.ndarray  # (p, n)
    stressed_excess: np.ndarray  # (p, n)
    status: np.ndarray  # int8 (p, n), MarginStatus
    under: UnderReserved
    tolerance_usd: float
    tolerance_rel: float

    def status_names(self, policy: int) -> list[str]:
        return [STATUS_NAMES[s] for s in self.status[policy].tolist()]


def active_wallets(run: RiskRun, n_wallets: int) -> np.ndarray:
    """bool (n_wallets,): the wallets with a holding of balance > 0 or a position in the run's snapshot."""
    active = np.zeros(n_wallets, dtype=bool)
    h = run.holdings
    active[np.asarray(h.wallet_idx, dtype=np.int64)[np.asarray(h.balance) > 0]] = True
    active[np.asarray(run.positions.wallet_idx, dtype=np.int64)] = True
    return active


def compare_runs(runs: Sequence[RiskRun], names: Sequence[str], wallets: Sequence[str], *,
                 tolerance_usd: float = TOLERANCE_USD, tolerance_rel: float = TOLERANCE_REL) -> PolicyComparison:
    """Compare runs of the same snapshot under different policies (`runs[0]`: ours); `wallets` are the
    snapshot's wallet addresses (`SnapshotKeys.wallets`)."""
    if len(runs) < 2:
        raise ValueError(f"compare at least two runs (ours, then a venue's); got {len(runs)}")
    first = runs[0]
    for r in runs[1:]:
        if (r.block_number, r.timestamp) != (first.block_number, first.timestamp):
            raise ValueError("the runs valued different snapshots: block "
                             f"{first.block_number} at {first.timestamp} and {r.block_number} at {r.timestamp}")
    if len(first.wallets.excess) != len(wallets):
        raise ValueError(f"wallet arrays of length {len(first.wallets.excess)} for {len(wallets)} wallets")
    return compare_wallets([r.wallets for r in runs], names, wallets, active_wallets(first, len(wallets)),
                           versions=[r.policy_version for r in runs], tolerance_usd=tolerance_usd,
                           tolerance_rel=tolerance_rel)


def compare_wallets(results: Sequence[WalletRisk], names: Sequence[str], wallets: Sequence[str],
                    active: np.ndarray, *, versions: Sequence[str] | None = None,
                    tolerance_usd: float = TOLERANCE_USD, tolerance_rel: float = TOLERANCE_REL) -> PolicyComparison:
    """The comparison from each policy's per-wallet arrays (aligned with `wallets`); `active` (bool, one
    per wallet) marks the wallets to compare: those with a holding or a position."""
    p, n = len(results), len(wallets)
    if p < 2:
        raise ValueError(f"compare at least two policies (ours, then a venue's); got {p}")
    if len(names) != p or (versions is not None and len(versions) != p):
        raise ValueError(f"{p} results but {len(names)} names and {len(versions or names)} versions")
    if len(set(names)) != p:
        raise ValueError(f"policy names must be distinct: {list(names)}")
    active = np.asarray(active, dtype=bool)
    for w in results:
        if len(w.excess) != n:
            raise ValueError(f"wallet arrays of length {len(w.excess)} for {n} wallets")
    if active.shape != (n,):
        raise ValueError(f"active: shape {active.shape}, expected ({n},)")

    def stack(field: str, dtype: type = np.float64) -> np.ndarray:
        return np.vstack([np.asarray(getattr(w, field), dtype=dtype).reshape(n) for w in results])

    excess_all, stressed_all, status_all = stack("excess"), stack("stressed_excess"), stack("status", np.int8)
    idx = np.flatnonzero(active)

    # under-reserved pairs, every venue against ours at once: (p - 1, n_active)
    ex, st, stat = excess_all[:, idx], stressed_all[:, idx], status_all[:, idx]
    shortfall = ex[1:] - ex[0]
    stressed_shortfall = st[1:] - st[0]
    tol = tolerance_usd + tolerance_rel * np.maximum(np.abs(ex[1:]), np.abs(ex[0]))
    status_flip = (stat[1:] == int(MarginStatus.HEALTHY)) & np.isin(stat[0], _UNDER_MARGIN)
    stress_flip = (st[1:] >= 0) & (st[0] < 0)
    hit = (shortfall > tol) | status_flip | stress_flip
    venue, row = np.nonzero(hit)  # venue - 1, row into idx
    order = np.lexsort((row, venue, -shortfall[venue, row]))
    venue, row = venue[order], row[order]
    under = UnderReserved(row=row.astype(np.int64), policy=(venue + 1).astype(np.int64),
                          shortfall=shortfall[venue, row], stressed_shortfall=stressed_shortfall[venue, row],
                          status_flip=status_flip[venue, row], stress_flip=stress_flip[venue, row])

    hits_per_venue = hit.sum(axis=1)
    shortfall_per_venue = np.where(hit, shortfall, 0.0).sum(axis=1)
    totals = tuple(
        _totals(str(names[k]), str(versions[k]) if versions is not None else str(names[k]), w, len(idx),
                int(hits_per_venue[k - 1]) if k else 0, float(shortfall_per_venue[k - 1]) if k else 0.0)
        for k, w in enumerate(results))
    return PolicyComparison(
        names=tuple(str(x) for x in names),
        versions=tuple(t.version for t in totals), totals=totals, wallet_idx=idx.astype(np.int64),
        wallets=np.array([wallets[i] for i in idx.tolist()], dtype=object),
        collateral=stack("collateral")[:, idx], excess=ex, stressed_excess=st, status=stat, under=under,
        tolerance_usd=float(tolerance_usd), tolerance_rel=float(tolerance_rel))


def _totals(name: str, version: str, w: WalletRisk, active: int, under: int, shortfall: float) -> PolicyTotals:
    def total(field: str) -> float:
        return float(np.sum(np.asarray(getattr(w, field), dtype=np.float64)))

    counts = np.bincount(np.asarray(w.status, dtype=np.int64), minlength=len(MarginStatus))
    return PolicyTotals(
        name=name, version=version, wallets=len(w.excess), active_wallets=active,
        market_value=total("market_value"), collateral=total("collateral"), equity=total("equity"), im=total("im"),
        excess=total("excess"), stressed_excess=total("stressed_excess"),
        status_counts={s: int(counts[i]) for i, s in enumerate(STATUS_NAMES)},
        stressed_negative=int(np.sum(np.asarray(w.stressed_excess) < 0)), under_reserved=under, shortfall=shortfall)
