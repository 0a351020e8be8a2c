"""Haircut backtest (docs/risk.md section 14): would the haircuts a policy sets have covered the moves that
followed? Pure numpy over the stored feed history, no I/O.

For every collateral token the policy lists, two kinds of window, each starting at a session close (a 24/7
feed: every day back from B):
- ``horizon``: the policy's liquidation horizon, ``round(horizon_days)`` sessions (days for 24/7 feeds),
  non-overlapping, so that failures are independent as Kupiec's test assumes;
- ``gap``: a weekend or holiday closure, from the close before it to the first round of the next session:
  the move the oracle could not show while the market was shut.

At the window's start the policy's haircut is recomputed exactly as a run at that instant would set it,
from the history up to then (volatility.feed_sigma): ``h_base + h_vol + h_gap + h_size``, with ``h_size``
the smallest holding's (the first value band's add-on), so that a failure is one for every holder. The
adverse move is ``1 - P1 / P0`` on prices carried across corporate actions (actions.py): a split is no
loss. A window fails when that move exceeds the haircut. Two failure counts are kept:
- ``total``: against the whole haircut (the protection a holder's collateral really had);
- ``statistical``: against the volatility part alone (``h_vol`` for a horizon window, ``h_gap`` for a gap),
  the part that claims a coverage of ``confidence``; only where the policy has that part.
Each count is set against the expected rate ``1 - confidence`` with Kupiec's proportion-of-failures test
(Kupiec 1995, "Techniques for verifying the accuracy of risk measurement models", J. Derivatives 3(2)):
``LR = -2 ln[(1-p)^(n-x) p^x] + 2 ln[(1-x/n)^(n-x) (x/n)^x]``, chi-squared with one degree of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from indexer.risk.actions import adjusted_tokens, factor_at, feed_adjuster, history_factors
from indexer.risk.calendar import TradingCalendar
from indexer.risk.haircuts import sigma_haircut
from indexer.risk.inputs import CorporateActions, FeedHistory, Feeds, Tokens
from indexer.risk.policy import Policy
from indexer.risk.uint256 import to_float_units
from indexer.risk.volatility import DAY_S, FeedSigma, feed_sigma
from indexer.types import FeedKind

HORIZON, GAP = "horizon", "gap"
KINDS = (HORIZON, GAP)
SIGNIFICANCE = 0.05  # Kupiec's test rejects at the 5% level (the Basel traffic-light tests' own level)
MIN_RETURNS = 20  # a window counts once its feed's sigma rests on this many returns (about a month)
ALL = "all"

# verdicts of Kupiec's test
CONSISTENT = "consistent"  # failures match 1 - confidence
UNDER = "under-covers"  # more failures than the confidence allows: the haircut is too small
OVER = "over-covers"  # fewer failures than expected: conservative
NO_WINDOWS = "no windows"


def kupiec_pof(n: int, x: int, p: float) -> tuple[float, float]:
    """Kupiec's proportion-of-failures likelihood ratio for ``x`` failures in ``n`` windows at expected rate
    ``p``, and its p-value (chi-squared, one degree of freedom: ``erfc(sqrt(LR / 2))``). NaN for no window."""
    if n <= 0:
        return math.nan, math.nan

    def loglik(q: float) -> float:  # with 0 * ln 0 = 0
        out = 0.0
        if n - x:
            out += (n - x) * math.log1p(-q) if q < 1.0 else -math.inf
        if x:
            out += x * math.log(q) if q > 0.0 else -math.inf
        return out

    lr = max(0.0, -2.0 * (loglik(p) - loglik(x / n)))
    return lr, math.erfc(math.sqrt(lr / 2.0))


def verdict(n: int, x: int, p: float, p_value: float, significance: float = SIGNIFICANCE) -> str:
    if n <= 0:
        return NO_WINDOWS
    if p_value < significance:
        return UNDER if x / n > p else OVER
    return CONSISTENT


@dataclass(frozen=True, eq=False)
class Windows:
    """One row per window that counted."""

    token: np.ndarray  # int64, into the tokens
    kind: np.ndarray  # int8: 0 horizon, 1 gap (index into KINDS)
    start: np.ndarray  # int64, unix time of the window's start (a session close, or a day mark for 24/7)
    end: np.ndarray  # int64, the time of the price that closes it
    days: np.ndarray  # float64, trading days the statistical part is scaled to (H, or the gap's business days)
    sigma: np.ndarray  # float64, daily sigma at the start
    loss: np.ndarray  # float64, 1 - P1 / P0 on adjusted prices (> 0: the collateral lost value)
    haircut: np.ndarray  # float64, total token haircut at the start
    statistical: np.ndarray  # float64, its volatility part for the window; NaN where the policy has none

    def __len__(self) -> int:
        return len(self.token)

    @property
    def failed(self) -> np.ndarray:
        return self.loss > self.haircut

    @property
    def failed_statistical(self) -> np.ndarray:
        return ~np.isnan(self.statistical) & (self.loss > np.nan_to_num(self.statistical, nan=np.inf))


@dataclass(frozen=True)
class Cell:
    """The windows of one group (a token, an asset class, or all) and kind, against the expected rate."""

    group: str
    kind: str
    windows: int
    failures: int  # loss > total haircut
    lr: float
    p_value: float
    verdict: str
    statistical_windows: int  # windows where the policy has a volatility part (0 when it has none)
    statistical_failures: int
    statistical_lr: float
    statistical_p_value: float
    statistical_verdict: str
    mean_haircut: float
    worst_loss: float  # the largest adverse move, NaN for no window
    worst_start: int  # its window's start (0 for none)

    @property
    def rate(self) -> float:
        return self.failures / self.windows if self.windows else math.nan

    @property
    def statistical_rate(self) -> float:
        return self.statistical_failures / self.statistical_windows if self.statistical_windows else math.nan


@dataclass(frozen=True)
class Skipped:
    """Windows that did not count, by reason (so that a thin result says why it is thin)."""

    warm_up: int = 0  # the feed's sigma rested on fewer than MIN_RETURNS returns at the start
    no_price: int = 0  # no round at or before the start
    stalled: int = 0  # no new round inside the window: the move is the oracle's silence, not the market's
    no_print: int = 0  # a gap with no round in the session after it


@dataclass(frozen=True)
class Backtest:
    policy: str  # meta.name
    version: str
    expected: float  # 1 - confidence
    confidence: float
    horizon_sessions: int
    first: int  # the first and last window starts (0 when none)
    last: int
    windows: Windows
    tokens: tuple[Cell, ...]  # per token symbol and kind
    classes: tuple[Cell, ...]  # per asset class and kind, then ALL
    skipped: Skipped
    symbols: tuple[str, ...]  # per token index (the snapshot's)
    excluded: tuple[str, ...]  # tokens not backtested, each with its reason


def _cells(groups: dict[str, np.ndarray], w: Windows, p: float) -> list[Cell]:
    out = []
    failed, failed_stat = w.failed, w.failed_statistical
    has_stat = ~np.isnan(w.statistical)
    for name, rows in groups.items():
        for k, kind in enumerate(KINDS):
            sel = rows & (w.kind == k)
            n, x = int(sel.sum()), int((failed & sel).sum())
            ns, xs = int((sel & has_stat).sum()), int((failed_stat & sel).sum())
            lr, pv = kupiec_pof(n, x, p)
            slr, spv = kupiec_pof(ns, xs, p)
            worst = int(np.argmax(np.where(sel, w.loss, -np.inf))) if n else -1
            out.append(Cell(name, kind, n, x, lr, pv, verdict(n, x, p, pv), ns, xs, slr, spv,
                            verdict(ns, xs, p, spv), float(w.haircut[sel].mean()) if n else math.nan,
                            float(w.loss[worst]) if n else math.nan, int(w.start[worst]) if n else 0))
    return out


@dataclass
class _Run:
    """What every token's windows share: the policy's numbers and the sigma at each start, computed once."""

    policy: Policy
    calendar: TradingCalendar
    history: FeedHistory
    kinds: np.ndarray
    decimals: np.ndarray
    factors: np.ndarray
    now: int
    min_returns: int
    rows: dict[str, list]
    skipped: dict[str, int]
    sigmas: dict[int, FeedSigma]

    def sigma_at(self, t: int) -> FeedSigma:
        if t not in self.sigmas:
            vol = self.policy.volatility
            self.sigmas[t] = feed_sigma(self.history, self.decimals, self.kinds, self.factors, t,
                                        self.calendar.closes_up_to(t, vol.lookback_days + 1),
                                        bool(self.calendar.is_open(t)), vol)
        return self.sigmas[t]

    def token(self, t: int, sym: str, f: int, times: np.ndarray, prices: np.ndarray) -> None:
        """Every window of token ``t`` on feed ``f`` (``prices``: adjusted, at ``times``)."""
        policy, cal, vol = self.policy, self.calendar, self.policy.volatility
        z, n_sessions = vol.z, max(1, int(round(vol.horizon_days)))
        stock = int(self.kinds[f]) == FeedKind.STOCK.code
        first = int(times[0])
        if stock:
            closes = cal.closes[(cal.closes >= first) & (cal.closes <= self.now)]
        else:  # a 24/7 feed: a mark every day back from B
            closes = self.now - DAY_S * np.arange((self.now - first) // DAY_S, -1, -1, dtype=np.int64)
        h_base, band0 = policy.token_base_haircut(sym), policy.size.bands[0].addon

        def start(t0: int) -> tuple[int, FeedSigma | None]:
            """The round in force at t0 and the sigma then; None where the window does not count."""
            k0 = int(np.searchsorted(times, t0, side="right")) - 1
            if k0 < 0 or not prices[k0] > 0:
                self.skipped["no_price"] += 1
                return k0, None
            fs = self.sigma_at(t0)
            if int(fs.n_returns[f]) < self.min_returns:
                self.skipped["warm_up"] += 1
                return k0, None
            return k0, fs

        def add(kind: int, t0: int, k0: int, k1: int, days: float, fs: FeedSigma, statistical: str) -> None:
            sigma = float(fs.sigma[f])
            h_vol = float(sigma_haircut(z, sigma, vol.horizon_days)) if vol.enabled else 0.0
            gap_days = int(cal.trading_days_until_next_open(t0)) if stock else 0
            h_gap = (min(policy.gap.cap, float(sigma_haircut(z, sigma, gap_days)))
                     if policy.gap.enabled and gap_days else 0.0)
            part = {"h_vol": h_vol if vol.enabled else math.nan,
                    "h_gap": h_gap if policy.gap.enabled else math.nan}[statistical]
            for key, value in (("token", t), ("kind", kind), ("start", t0), ("end", int(times[k1])),
                               ("days", days), ("sigma", sigma), ("loss", 1.0 - float(prices[k1] / prices[k0])),
                               ("haircut", min(1.0, h_base + h_vol + h_gap + band0)), ("statistical", part)):
                self.rows[key].append(value)

        # horizon windows: non-overlapping, each H sessions (days) long
        for i in range(0, len(closes) - n_sessions, n_sessions):
            t0, t1 = int(closes[i]), int(closes[i + n_sessions])
            k0, fs = start(t0)
            if fs is None:
                continue
            k1 = int(np.searchsorted(times, t1, side="right")) - 1
            if k1 == k0:
                self.skipped["stalled"] += 1
                continue
            add(0, t0, k0, k1, float(vol.horizon_days), fs, "h_vol")
        if not stock:
            return
        # gap windows: every weekend or holiday closure, from the close before it to the first round after it
        for i in range(len(closes) - 1):
            t0 = int(closes[i])
            reopen = int(cal.next_open_at_or_after(t0))
            if reopen - t0 <= DAY_S:  # an ordinary night: no whole day without a session
                continue
            k0, fs = start(t0)
            if fs is None:
                continue
            k1 = int(np.searchsorted(times, reopen, side="left"))
            if k1 >= len(times) or int(times[k1]) >= int(closes[i + 1]):
                self.skipped["no_print"] += 1
                continue
            add(1, t0, k0, k1, float(cal.trading_days_until_next_open(t0)), fs, "h_gap")


def backtest(tokens: Tokens, feeds: Feeds, history: FeedHistory, actions: CorporateActions | None,
             now: int, policy: Policy, calendar: TradingCalendar, *, min_returns: int = MIN_RETURNS) -> Backtest:
    """Every window of every listed token's feed history up to ``now``, under ``policy``."""
    vol = policy.volatility
    p = 1.0 - vol.confidence
    kinds = np.asarray(feeds.kind, dtype=np.int8)
    decimals = np.asarray(feeds.decimals, dtype=np.int64)
    adjusted = adjusted_tokens(tokens, actions)
    factors = history_factors(history, feed_adjuster(tokens, len(feeds), adjusted), actions)
    ratios = actions.ratios() if actions is not None and adjusted.any() else None
    symbols = tuple(str(s) for s in tokens.symbol)
    run = _Run(policy, calendar, history, kinds, decimals, factors, int(now), min_returns,
               {k: [] for k in ("token", "kind", "start", "end", "days", "sigma", "loss", "haircut", "statistical")},
               {"warm_up": 0, "no_price": 0, "stalled": 0, "no_print": 0}, {})
    excluded = []
    for t, sym in enumerate(symbols):
        listed = policy.tokens.get(sym)
        f = int(tokens.feed_idx[t])
        if listed is None or not policy.token_eligible(sym):
            excluded.append(f"{sym}: {'not in the policy' if listed is None else 'not eligible under the policy'}")
            continue
        if f < 0:
            excluded.append(f"{sym}: no price feed")
            continue
        lo, hi = int(history.offsets[f]), int(history.offsets[f + 1])
        if hi - lo < 2:
            excluded.append(f"{sym}: fewer than two rounds stored")
            continue
        times = history.updated_at[lo:hi]
        prices = to_float_units(history.answer_raw[lo:hi], np.full(hi - lo, decimals[f]))
        # an ERC-4626 vault's share moves with its asset's price carried across the asset's corporate actions
        # (its rate in value-continuous units is a constant of the price path; its jumps are judged apart,
        # docs/risk.md section 16)
        src = t if tokens.vault_asset_idx is None or tokens.vault_asset_idx[t] < 0 else int(tokens.vault_asset_idx[t])
        if adjusted[src]:
            prices = prices * factor_at(actions, src, times, ratios)
        run.token(t, sym, f, times, prices)

    rows = run.rows
    w = Windows(
        token=np.array(rows["token"], dtype=np.int64), kind=np.array(rows["kind"], dtype=np.int8),
        start=np.array(rows["start"], dtype=np.int64), end=np.array(rows["end"], dtype=np.int64),
        days=np.array(rows["days"], dtype=np.float64), sigma=np.array(rows["sigma"], dtype=np.float64),
        loss=np.array(rows["loss"], dtype=np.float64), haircut=np.array(rows["haircut"], dtype=np.float64),
        statistical=np.array(rows["statistical"], dtype=np.float64))
    token_groups = {symbols[t]: w.token == t for t in sorted(set(w.token.tolist()))}
    cls = np.array([policy.tokens[symbols[t]].asset_class for t in w.token.tolist()], dtype=object)
    class_groups = {c: cls == c for c in sorted(set(cls.tolist()))}
    class_groups[ALL] = np.ones(len(w), dtype=bool)
    return Backtest(
        policy=policy.meta.name, version=policy.meta.version, expected=p, confidence=vol.confidence,
        horizon_sessions=max(1, int(round(vol.horizon_days))), first=int(w.start.min()) if len(w) else 0,
        last=int(w.start.max()) if len(w) else 0, windows=w, tokens=tuple(_cells(token_groups, w, p)),
        classes=tuple(_cells(class_groups, w, p)), skipped=Skipped(**run.skipped), symbols=symbols,
        excluded=tuple(excluded))
