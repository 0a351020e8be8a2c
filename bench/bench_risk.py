"""Benchmark of the risk engine against the plain-Python reference (issue 5).

Builds the synthetic world in process: 100,000 wallets x 20 tokens (each wallet holds each token
with probability 0.5: about 1M holdings), two crypto positions per wallet, a year of feed history.
Balances come as a SQL loader delivers them: decimal text parsed into uint256 limbs
(``balances_from_decimal_strings``, timed and printed, outside the engine's time like any load).
Times the vectorized engine on that snapshot (median of several runs after one warm-up), the
engine on the same balances as Python ints (the ``object`` path, for comparison), and the
reference (its run-level pass in full, its per-wallet pass on a sample of wallets, scaled to all
wallets) on the Python-int snapshot, so the reference is charged no limb decoding; checks that the
two forms hold the same integers and that engine and reference agree on the sample. And the numpy
floor of the engine's core operations (``numpy_floor``): the per-holding and per-wallet vector work
the method cannot do without, once each, from the run's per-token and per-feed numbers; the engine's
time over it is the overhead of everything else (checks, staleness, actions, both stress regimes,
the result tables).

    .venv/bin/python bench/bench_risk.py [--wallets 100000] [--sample 2000] [--runs 15]

BLAS is pinned to one thread before numpy loads: the reference is single-threaded, the machine is
shared, and the small (wallets x 15) products gain nothing from threads. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reference lives in tests/

from indexer.risk.calendar import xnys  # noqa: E402
from indexer.risk.engine import run_risk  # noqa: E402
from indexer.risk.inputs import Snapshot  # noqa: E402
from indexer.risk.policy import policy_file, policy_from_mapping  # noqa: E402
from indexer.risk.uint256 import balances_from_decimal_strings, int_array, limbs_to_float_units  # noqa: E402
from tests.oracles.reference import ReferenceModel  # noqa: E402
from tests.oracles.synthetic import DEFAULT_TOKENS, extra_token_specs, synthetic_world  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Wednesday 2025-11-26 15:00 New York: market open, the day before Thanksgiving
NOW = 1764187200


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wallets", type=int, default=100_000)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--sample", type=int, default=2_000, help="wallets timed in the reference")
    ap.add_argument("--runs", type=int, default=15, help="engine runs after one warm-up")
    ap.add_argument("--now", type=int, default=NOW, help="block timestamp (UTC seconds)")
    args = ap.parse_args()

    data = tomllib.loads(policy_file("default").read_text())
    extra = extra_token_specs(max(0, args.tokens - len(DEFAULT_TOKENS)))
    for spec in extra:
        data["tokens"][spec.symbol] = {"asset_class": "single_stock"}
    policy = policy_from_mapping(data, source="the bundled default policy + synthetic tokens")
    xnys()  # build the calendar once, outside the timed runs

    t0 = time.perf_counter()
    snap = synthetic_world(args.wallets, now=args.now, seed=7, tokens=DEFAULT_TOKENS + extra)
    t_build = time.perf_counter() - t0
    n_hold, n_pos = len(snap.holdings), len(snap.positions)

    # The same balances as Python ints: the reference's input, and the engine's object path.
    ints = snap.holdings.balance_ints()
    snap_ints = dataclasses.replace(
        snap, holdings=dataclasses.replace(snap.holdings, balance_raw=int_array(ints))
    )
    # What the loader's parse costs: decimal text (as SQL returns NUMERIC) -> limbs.
    decimal_text = [str(v) for v in ints]
    t_parse = _median_time(lambda: balances_from_decimal_strings(decimal_text), 3)
    assert (balances_from_decimal_strings(decimal_text) == snap.holdings.balance_raw).all()

    t_engine, cpu_engine, wall, run = _time_engine(snap, policy, args.runs)
    t_engine_ints, _, wall_ints, _ = _time_engine(snap_ints, policy, args.runs)
    numpy_floor(snap, run)  # warm-up
    t_floor = _median_time(lambda: numpy_floor(snap, run), args.runs)

    c0, w0 = time.process_time(), time.perf_counter()
    model = ReferenceModel(
        snap_ints, policy
    )  # run-level pass: calendar, feeds, every holding for platform totals
    t_ref_init, cpu_ref_init = time.perf_counter() - w0, time.process_time() - c0
    step = max(1, args.wallets // args.sample)
    sample = list(range(0, args.wallets, step))
    c0, w0 = time.process_time(), time.perf_counter()
    ref_wallets = [model.wallet(w)[2] for w in sample]
    t_ref_sample, cpu_ref_sample = time.perf_counter() - w0, time.process_time() - c0
    t_ref = t_ref_init + t_ref_sample * (args.wallets / len(sample))
    cpu_ref = cpu_ref_init + cpu_ref_sample * (args.wallets / len(sample))

    worst = 0.0
    for w, ref in zip(sample, ref_wallets, strict=True):
        for key in ("collateral", "equity", "l_joint", "stressed_excess"):
            a, b = float(getattr(run.wallets, key)[w]), ref[key]
            scale = max(abs(b), abs(ref["equity"]), abs(ref["im"]), ref["l_joint"], 1.0)
            worst = max(worst, abs(a - b) / scale)

    status = np.bincount(run.wallets.status, minlength=3)
    print(
        f"machine         : {platform.machine()}, {os.cpu_count()} cpu, numpy {np.__version__}, python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"world           : {args.wallets:,} wallets x {len(snap.tokens)} tokens, {n_hold:,} holdings, {n_pos:,} positions, {len(snap.feeds)} feeds (built in {t_build:.2f} s)"
    )
    print(f"market state    : {run.market_state.name}, policy {run.policy_version}")
    print(
        f"balance parse   : {n_hold:,} decimal strings -> uint256 limbs in {t_parse:.3f} s (loader side, not in the engine time)"
    )
    print(
        f"engine          : median {t_engine:.3f} s wall, {cpu_engine:.3f} s cpu over {args.runs} runs ({', '.join(f'{x:.3f}' for x in wall)})"
    )
    print(
        f"engine, int path: median {t_engine_ints:.3f} s wall ({', '.join(f'{x:.3f}' for x in wall_ints)}), same world with Python-int balances"
    )
    print(
        f"reference       : run-level pass {t_ref_init:.2f} s + {len(sample)} wallets in {t_ref_sample:.2f} s ({1e6 * t_ref_sample / len(sample):.0f} us/wallet), scaled to all wallets {t_ref:.1f} s"
    )
    print(
        f"speed-up        : {t_ref / t_engine:.0f}x wall (int path: {t_ref / t_engine_ints:.0f}x); by cpu time {cpu_ref / cpu_engine:.0f}x (reference {cpu_ref:.1f} s cpu)"
    )
    print(
        f"numpy floor     : median {t_floor:.3f} s (core vector operations once each); engine / floor = {t_engine / t_floor:.2f}x (target <= 2.5x)"
    )
    print(f"agreement       : max relative difference on the sample {worst:.2e}")
    print(f"statuses        : healthy {status[0]:,}, margin_call {status[1]:,}, liquidate {status[2]:,}")


def numpy_floor(snap: Snapshot, run) -> float:  # type: ignore[no-untyped-def]
    """The engine's core vector operations once each, given its per-token and per-feed numbers: balances
    to floats, market value, haircut and eligibility per holding, the per-wallet share cap, the wallet sums,
    the instrument exposure matrix, one quadratic form per stress regime and the scenario products."""
    h, pos, tok = snap.holdings, snap.positions, run.tokens
    wi, ti = h.wallet_idx, h.token_idx
    n_w, n_t = snap.n_wallets, len(snap.tokens)
    units = limbs_to_float_units(h.balance_raw, snap.tokens.decimals, index=ti)
    mv = units * tok.value_factor[ti]
    h_token = tok.h_base + tok.h_vol + tok.h_gap
    collateral = mv * (1.0 - np.minimum(1.0, h_token[ti] + 0.01 * np.sqrt(mv / 1e6)))
    collateral[tok.codes[ti] != 0] = 0.0
    per_wallet = np.bincount(wi, weights=collateral, minlength=n_w)
    collateral = np.minimum(collateral, tok.wallet_share_cap[ti] * per_wallet[wi])
    per_wallet = np.bincount(wi, weights=collateral, minlength=n_w)
    notional = np.abs(pos.size) * run.feeds.price[pos.feed_idx]
    im = np.bincount(pos.wallet_idx, weights=notional / pos.leverage, minlength=n_w)
    upnl = np.bincount(pos.wallet_idx, weights=pos.size * (run.feeds.price[pos.feed_idx] - pos.entry_price),
                       minlength=n_w)
    pos_feeds = np.unique(pos.feed_idx)
    n_z = n_t + len(pos_feeds)
    column = np.zeros(len(snap.feeds), dtype=np.int64)
    column[pos_feeds] = np.arange(n_t, n_z)
    z = np.bincount(np.concatenate([wi * n_z + ti, pos.wallet_idx * n_z + column[pos.feed_idx]]),
                    weights=np.concatenate([collateral, pos.size * run.feeds.price[pos.feed_idx]]),
                    minlength=n_w * n_z).reshape(n_w, n_z)
    feed = np.concatenate([np.maximum(tok.feed_idx, 0), pos_feeds])
    worst = 0.0
    for cov, _ in run.stress.regimes():
        c = cov[np.ix_(feed, feed)]
        worst = max(worst, float(np.einsum("wi,wi->w", z @ c, z).max()))
    shocks = np.ones((n_z, len(run.scenario_names)))
    pnl = np.dot(shocks.T, z.T)
    return worst + float(pnl.sum() + per_wallet.sum() + im.sum() + upnl.sum())


def _median_time(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _time_engine(snap: Snapshot, policy, runs: int):  # type: ignore[no-untyped-def]
    """(median wall, median cpu, wall times, last run): one warm-up, then ``runs`` timed runs."""
    run_risk(snap, policy)  # warm-up: first-touch page faults, lazy imports
    wall, cpu = [], []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        run = run_risk(snap, policy)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), wall, run


if __name__ == "__main__":
    main()
