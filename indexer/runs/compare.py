"""Policies side by side on the synced tables: the snapshot at block B is loaded once, the engine runs it
under each policy (ours first, then the venues' disclosed rules), and `indexer.risk.compare` sets the
results side by side. Nothing is stored: a comparison is read, computed and printed.

    with engine.connect() as conn:
        result = compare_at(conn, chain_id, ["default", "kraken_2026"], block=None)
    result.comparison.totals, result.comparison.under, comparison_document(result)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from indexer.risk import MarketState, Policy, PolicyError, load_policy, run_risk
from indexer.risk.compare import (
    STATUS_NAMES,
    TOLERANCE_REL,
    TOLERANCE_USD,
    PolicyComparison,
    compare_runs,
)
from indexer.risk.policy import bundled_policies, policy_file
from indexer.runs.job import policy_for
from indexer.runs.snapshot import load_snapshot

VENUE = "kraken_2026"  # the venue rule the report sets beside ours
REFERENCE = "default"  # ours when the configured policy is the venue's rule itself


@dataclass(frozen=True, eq=False)
class ComparedRuns:
    """A comparison with the block it was computed at and the policies it used."""

    chain_id: int
    block_number: int
    block_timestamp: int
    head_block: int
    market_state: str
    specs: tuple[str, ...]  # the policies as they were named (a bundled name or a path)
    hashes: tuple[str, ...]  # their content hashes (sha256)
    comparison: PolicyComparison
    load_s: float
    compute_s: float


def venue_policies(ours: str | Path) -> list[str]:
    """The report's pair: ours (the configured policy), then the bundled venue rule; when ours is that
    rule already (same content), the bundled default is set beside it instead."""
    is_venue = load_policy(ours).content_hash == load_policy(VENUE).content_hash
    return [str(ours), REFERENCE if is_venue else VENUE]


def load_policies(conn: Connection, chain_id: int, specs: Sequence[str | Path]) -> list[Policy]:
    """Each policy (a bundled name or a path), checked against the tokens and feeds this database knows;
    a name that is no bundled policy or a path that is no file raises PolicyError in one line."""
    policies = []
    for spec in specs:
        path = policy_file(spec)
        if not path.is_file():
            raise PolicyError(f"policy {str(spec)!r}: no such file {path}; give a bundled policy's name "
                              f"({', '.join(bundled_policies())}) or the path of a policy .toml file")
        policies.append(policy_for(conn, chain_id, str(path)))
    return policies


def labels(specs: Sequence[str | Path], policies: Sequence[Policy]) -> list[str]:
    """A distinct short name per policy: its `meta.name`, or where two share one, the name as given."""
    names = [p.meta.name for p in policies]
    out: list[str] = []
    for spec, name in zip(specs, names, strict=True):
        label = name if names.count(name) == 1 else str(spec)
        base, k = label, 2
        while label in out:
            label, k = f"{base} #{k}", k + 1
        out.append(label)
    return out


def compare_at(conn: Connection, chain_id: int, specs: Sequence[str | Path], *, block: int | None = None,
               at: int | None = None, tolerance_usd: float = TOLERANCE_USD,
               tolerance_rel: float = TOLERANCE_REL) -> ComparedRuns:
    """Load the snapshot at `block` (or the last synced block at or before unix time `at`, or the synced
    head) once and compare the policies on it; `specs[0]` is ours."""
    if len(specs) < 2:
        raise PolicyError(f"compare needs at least two policies, ours first, then a venue's rule (got "
                          f"{len(specs)}): e.g. default and kraken_2026")
    t0 = time.perf_counter()
    policies = load_policies(conn, chain_id, specs)
    snapshot, keys = load_snapshot(conn, chain_id, block, at=at)
    t1 = time.perf_counter()
    runs = [run_risk(snapshot, p) for p in policies]
    comparison = compare_runs(runs, labels(specs, policies), keys.wallets, tolerance_usd=tolerance_usd,
                              tolerance_rel=tolerance_rel)
    t2 = time.perf_counter()
    return ComparedRuns(
        chain_id=keys.chain_id, block_number=keys.block_number, block_timestamp=keys.block_timestamp,
        head_block=keys.head_block, market_state=MarketState(runs[0].market_state).name.lower(),
        specs=tuple(str(s) for s in specs), hashes=tuple(p.content_hash for p in policies),
        comparison=comparison, load_s=t1 - t0, compute_s=t2 - t1)


def compare_policies(engine: Engine, chain_id: int, specs: Sequence[str | Path], *, block: int | None = None,
                     at: int | None = None) -> ComparedRuns:
    with engine.connect() as conn:
        return compare_at(conn, chain_id, specs, block=block, at=at)


# -- the JSON document --------------------------------------------------------------------------------

def _num(x: float) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _wallet_values(c: PolicyComparison, k: int, row: int) -> dict[str, Any]:
    return {"collateral": _num(c.collateral[k, row]), "excess": _num(c.excess[k, row]),
            "stressed_excess": _num(c.stressed_excess[k, row]), "status": STATUS_NAMES[int(c.status[k, row])]}


def comparison_document(result: ComparedRuns) -> dict[str, Any]:
    """Everything as JSON-ready values: the block, the policies (ours first), totals per policy, every
    compared wallet under each policy, and every under-reserved (wallet, venue) pair, largest shortfall
    first."""
    c = result.comparison
    u = c.under
    wallets = c.wallets.tolist()
    totals = {}
    for t in c.totals:
        totals[t.name] = {
            "wallets": t.wallets, "active_wallets": t.active_wallets, "market_value": _num(t.market_value),
            "collateral": _num(t.collateral), "equity": _num(t.equity), "im": _num(t.im), "excess": _num(t.excess),
            "stressed_excess": _num(t.stressed_excess), "status_counts": dict(t.status_counts),
            "stressed_negative": t.stressed_negative, "under_reserved": t.under_reserved,
            "shortfall": _num(t.shortfall)}
    under = []
    for rank, (row, k) in enumerate(zip(u.row.tolist(), u.policy.tolist(), strict=True), start=1):
        i = rank - 1
        under.append({
            "rank": rank, "wallet": wallets[row], "venue": c.names[k], "shortfall": _num(u.shortfall[i]),
            "stressed_shortfall": _num(u.stressed_shortfall[i]), "status_flip": bool(u.status_flip[i]),
            "stress_flip": bool(u.stress_flip[i]), "ours": _wallet_values(c, 0, row),
            "theirs": _wallet_values(c, k, row)})
    return {
        "chain_id": result.chain_id,
        "block_number": result.block_number,
        "block_timestamp": result.block_timestamp,
        "block_time": datetime.fromtimestamp(result.block_timestamp, UTC).isoformat().replace("+00:00", "Z"),
        "head_block": result.head_block,
        "market_state": result.market_state,
        "ours": c.names[0],
        "policies": [{"name": name, "role": "ours" if k == 0 else "venue", "given_as": spec, "version": version,
                      "policy_hash": h}
                     for k, (name, spec, version, h) in enumerate(zip(c.names, result.specs, c.versions,
                                                                      result.hashes, strict=True))],
        "tolerance": {"usd": c.tolerance_usd, "relative": c.tolerance_rel},
        "totals": totals,
        "wallets": [{"wallet": w, "policies": {name: _wallet_values(c, k, row) for k, name in enumerate(c.names)}}
                    for row, w in enumerate(wallets)],
        "under_reserved": under,
        "seconds": {"load": result.load_s, "compute": result.compute_s},
    }
