"""The haircut backtest on the synced tables: the market at block B (tokens, every stored round of their
feeds, corporate actions) is loaded once and `indexer.risk.backtest` runs it under each policy (ours
first). Nothing is stored.

    with engine.connect() as conn:
        result = backtest_at(conn, chain_id, ["default", "kraken_2026"])
    result.results[0].classes, backtest_document(result)
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

from indexer.risk import PolicyError
from indexer.risk.backtest import KINDS, MIN_RETURNS, SIGNIFICANCE, Backtest, Cell, backtest
from indexer.risk.calendar import xnys
from indexer.runs.compare import labels, load_policies
from indexer.runs.snapshot import load_market


@dataclass(frozen=True, eq=False)
class BacktestRun:
    chain_id: int
    block_number: int
    block_timestamp: int
    specs: tuple[str, ...]
    names: tuple[str, ...]  # a distinct label per policy, ours first
    hashes: tuple[str, ...]
    results: tuple[Backtest, ...]
    rounds: int  # stored rounds the backtest read
    load_s: float
    compute_s: float


def backtest_at(conn: Connection, chain_id: int, specs: Sequence[str | Path], *, block: int | None = None,
                at: int | None = None, min_returns: int = MIN_RETURNS) -> BacktestRun:
    """Every stored round up to `block` (or the last block at or before unix time `at`, or the synced head),
    backtested under each policy; `specs[0]` is ours."""
    if not specs:
        raise PolicyError("backtest needs at least one policy")
    t0 = time.perf_counter()
    policies = load_policies(conn, chain_id, specs)
    market = load_market(conn, chain_id, block, at=at, history_days=None)
    t1 = time.perf_counter()
    now = market.keys.block_timestamp
    cal = xnys()  # 2000-2040: a history that starts earlier is not backtested before 2000
    results = tuple(backtest(market.tokens, market.feeds, market.history, market.actions, now, p, cal,
                             min_returns=min_returns) for p in policies)
    t2 = time.perf_counter()
    return BacktestRun(chain_id=chain_id, block_number=market.keys.block_number, block_timestamp=now,
                       specs=tuple(str(s) for s in specs), names=tuple(labels(specs, policies)),
                       hashes=tuple(p.content_hash for p in policies), results=results,
                       rounds=len(market.history.updated_at), load_s=t1 - t0, compute_s=t2 - t1)


def backtest_policies(engine: Engine, chain_id: int, specs: Sequence[str | Path], *, block: int | None = None,
                      at: int | None = None, min_returns: int = MIN_RETURNS) -> BacktestRun:
    with engine.connect() as conn:
        return backtest_at(conn, chain_id, specs, block=block, at=at, min_returns=min_returns)


# -- the JSON document --------------------------------------------------------------------------------

def _num(x: float) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def iso(ts: int) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


def cell_document(c: Cell) -> dict[str, Any]:
    return {
        "group": c.group, "kind": c.kind, "windows": c.windows, "failures": c.failures, "rate": _num(c.rate),
        "kupiec_lr": _num(c.lr), "p_value": _num(c.p_value), "verdict": c.verdict,
        "statistical": {"windows": c.statistical_windows, "failures": c.statistical_failures,
                        "rate": _num(c.statistical_rate), "kupiec_lr": _num(c.statistical_lr),
                        "p_value": _num(c.statistical_p_value), "verdict": c.statistical_verdict},
        "mean_haircut": _num(c.mean_haircut), "worst_loss": _num(c.worst_loss), "worst_start": iso(c.worst_start)}


def backtest_document(run: BacktestRun, *, windows: bool = False) -> dict[str, Any]:
    """Everything as JSON-ready values: per policy (ours first) its cells per asset class and per token, the
    windows that did not count and why, and (``windows``) every window."""
    policies = []
    for name, spec, h, bt in zip(run.names, run.specs, run.hashes, run.results, strict=True):
        doc: dict[str, Any] = {
            "name": name, "given_as": spec, "version": bt.version, "policy_hash": h,
            "confidence": bt.confidence, "expected_rate": bt.expected, "horizon_sessions": bt.horizon_sessions,
            "first_window": iso(bt.first), "last_window": iso(bt.last),
            "asset_classes": [cell_document(c) for c in bt.classes],
            "tokens": [cell_document(c) for c in bt.tokens],
            "skipped": vars(bt.skipped), "excluded": list(bt.excluded)}
        if windows:
            w = bt.windows
            doc["windows"] = [
                {"token": bt.symbols[int(w.token[i])], "kind": KINDS[int(w.kind[i])], "start": iso(int(w.start[i])),
                 "end": iso(int(w.end[i])), "days": float(w.days[i]), "sigma": float(w.sigma[i]),
                 "loss": float(w.loss[i]), "haircut": float(w.haircut[i]), "statistical": _num(w.statistical[i]),
                 "failed": bool(w.failed[i]), "failed_statistical": bool(w.failed_statistical[i])}
                for i in range(len(w))]
        policies.append(doc)
    return {
        "chain_id": run.chain_id, "block_number": run.block_number, "block_timestamp": run.block_timestamp,
        "block_time": iso(run.block_timestamp), "rounds": run.rounds, "significance": SIGNIFICANCE,
        "ours": run.names[0], "policies": policies, "seconds": {"load": run.load_s, "compute": run.compute_s}}
