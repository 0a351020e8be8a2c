"""Reference implementation of RISK.md in plain Python, one wallet at a time.

For tests and the benchmark only. It shares no code with the engine's math: it asks
exchange_calendars about each date directly (no session arrays), converts integers with Python's
correctly rounded ``int / int``, estimates volatility and correlation with explicit loops, checks
the stressed matrix's eigenvalues with the Jacobi method, and walks every wallet's holdings and
positions in ordinary ``for`` loops. Where the engine and this
module agree on random worlds, both agree with the text of RISK.md rather than with each other's
shortcuts.
"""

from __future__ import annotations

import bisect
import math
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from indexer.risk.inputs import Snapshot
from indexer.risk.policy import Policy

# Bits as RISK.md section 3 lists them (plus the two extensions documented in docs/risk.md).
CODE_BITS = {
    "TOKEN_NOT_ELIGIBLE": 0,
    "TOKEN_PAUSED": 1,
    "WALLET_FROZEN": 2,
    "ACCOUNT_JURISDICTION": 3,
    "ACCOUNT_TIER": 4,
    "ACCOUNT_UNKNOWN": 5,
    "ORACLE_MISSING": 6,
    "ORACLE_NON_POSITIVE": 7,
    "ORACLE_INCOMPLETE": 8,
    "ORACLE_STALE": 9,
    "RESERVE_SHORTFALL": 10,
    "BELOW_MINIMUM": 11,
    "ACCOUNT_KYC": 12,
    "WALLET_SANCTIONED": 13,
    "PRICE_BEFORE_ACTION": 14,
    "VALUATION_INCONSISTENT": 15,
    "RESERVE_STALE": 16,
    "VAULT_RATE_JUMP": 17,
    "VAULT_RATE_MISSING": 18,
}
STATE_CODES = {"open": 0, "overnight": 1, "weekend": 2, "holiday": 3, "early_close": 4, "continuous": 5}
KIND_NAMES = {0: "stock", 1: "crypto", 2: "stable"}
PLAIN, UI_MULTIPLIER, REBASING = 0, 1, 2
PER_TOKEN = 1


def bit(name: str) -> int:
    return 1 << CODE_BITS[name]


# -- the calendar, asked date by date -----------------------------------------------------------------


@lru_cache(maxsize=1)
def _xnys() -> Any:
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcals.get_calendar("XNYS", start="2000-01-01", end="2040-12-31")


@lru_cache(maxsize=20_000)
def _session(day: date) -> tuple[int, int, bool] | None:
    """(open, close, early) in UTC seconds for a New York date, or None when it has no session."""
    import pandas as pd

    cal = _xnys()
    label = pd.Timestamp(day)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not cal.is_session(label):
            return None
        o = cal.session_open(label)
        c = cal.session_close(label)
        early = label in cal.early_closes
    return int(o.timestamp()), int(c.timestamp()), bool(early)


def _ny_date(ts: int) -> date:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, tz=UTC).astimezone(ZoneInfo("America/New_York")).date()


def market_state(ts: int) -> str:
    day = _ny_date(ts)
    s = _session(day)
    if s is None:
        return "weekend" if day.weekday() >= 5 else "holiday"
    o, c, early = s
    if o <= ts < c:
        return "open"
    if ts >= c and early:
        return "early_close"
    return "overnight"


def last_close(ts: int) -> tuple[int, int]:
    """(close, open of that session) of the most recent session closing at or before ts."""
    day = _ny_date(ts)
    while True:
        s = _session(day)
        if s is not None and s[1] <= ts:
            return s[1], s[0]
        day -= timedelta(days=1)


def next_open(ts: int) -> int:
    day = _ny_date(ts)
    while True:
        s = _session(day)
        if s is not None and s[0] >= ts:
            return s[0]
        day += timedelta(days=1)


def closes_up_to(ts: int, count: int) -> list[int]:
    out: list[int] = []
    day = _ny_date(ts)
    first = date(2000, 1, 3)
    while len(out) < count and day >= first:
        s = _session(day)
        if s is not None and s[1] <= ts:
            out.append(s[1])
        day -= timedelta(days=1)
    return out[::-1]


SESSION = 23_400  # seconds of a regular session: one trading day on the market's clock


def trading_seconds(start: int, end: int) -> int:
    """Seconds of regular sessions in [start, end), walking the New York dates one by one."""
    if end <= start:
        return 0
    total, day = 0, _ny_date(start)
    last = _ny_date(end)
    while day <= last:
        s = _session(day)
        if s is not None:
            total += max(0, min(end, s[1]) - max(start, s[0]))
        day += timedelta(days=1)
    return total


def trading_days_until_next_open(ts: int) -> int:
    if market_state(ts) == "open":
        return 0
    d0 = _ny_date(last_close(ts)[0])
    d1 = _ny_date(next_open(ts))
    n, d = 0, d0 + timedelta(days=1)
    while d <= d1:
        n += d.weekday() < 5
        d += timedelta(days=1)
    return n


# -- small linear algebra ----------------------------------------------------------------------------


def jacobi_eigen(a: list[list[float]], sweeps: int = 100) -> tuple[list[float], list[list[float]]]:
    """Eigenvalues and eigenvectors (columns) of a symmetric matrix by cyclic Jacobi rotations."""
    n = len(a)
    m = [row[:] for row in a]
    v = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for _ in range(sweeps):
        off = sum(m[i][j] ** 2 for i in range(n) for j in range(n) if i != j)
        if off < 1e-30:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                if abs(m[p][q]) < 1e-300:
                    continue
                theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q])
                t = math.copysign(1.0, theta) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(n):
                    mkp, mkq = m[k][p], m[k][q]
                    m[k][p] = c * mkp - s * mkq
                    m[k][q] = s * mkp + c * mkq
                for k in range(n):
                    mpk, mqk = m[p][k], m[q][k]
                    m[p][k] = c * mpk - s * mqk
                    m[q][k] = s * mpk + c * mqk
                for k in range(n):
                    vkp, vkq = v[k][p], v[k][q]
                    v[k][p] = c * vkp - s * vkq
                    v[k][q] = s * vkp + c * vkq
    return [m[i][i] for i in range(n)], v


# -- the reference run ---------------------------------------------------------------------------------


@dataclass
class ReferenceRun:
    market_state: str
    trading_days_until_next_open: int
    feed_sigma: list[float]
    feed_codes: list[int]
    stressed_corr: list[list[float]]
    blend_weight: float
    min_eigenvalue: float
    regimes: list = field(default_factory=list)  # (joint, independent) covariance per regime
    stressed_corr_neg: list[list[float]] | None = None
    holdings: list[dict[str, Any]] = field(default_factory=list)  # in snapshot row order
    wallets: list[dict[str, Any]] = field(default_factory=list)
    positions: list[dict[str, Any]] = field(default_factory=list)  # in snapshot row order


class ReferenceModel:
    """Run-level facts (calendar, feeds, tokens, platform totals), then :meth:`wallet` per wallet."""

    def __init__(self, snapshot: Snapshot, policy: Policy) -> None:
        self.snap = snapshot
        self.policy = policy
        self.now = now = int(snapshot.block_timestamp)
        vol = policy.volatility
        self.z = vol.z
        self.state = market_state(now)
        self.gap_days = trading_days_until_next_open(now)
        feeds = snapshot.feeds
        n_f = len(feeds.name)
        self.feed_kind = [KIND_NAMES[int(k)] for k in feeds.kind]

        # Oracle rounds (RISK.md sections 3 and 5; docs/risk.md section 5: ages on the market's clock)
        self.feed_price: list[float] = []
        self.feed_codes: list[int] = []
        self.feed_age: list[int] = []
        self.feed_updated: list[int] = []
        self.feed_stale: list[bool] = []
        self.feed_age_days: list[float] = []
        for f in range(n_f):
            if not bool(feeds.has_round[f]):
                self.feed_price.append(0.0)
                self.feed_codes.append(bit("ORACLE_MISSING"))
                self.feed_age.append(-1)
                self.feed_updated.append(0)
                self.feed_stale.append(False)
                self.feed_age_days.append(0.0)
                continue
            answer = int(feeds.answer_raw[f])
            updated = int(feeds.updated_at[f])
            rule = getattr(policy.staleness, self.feed_kind[f])
            heartbeat = int(feeds.heartbeat_s[f]) if int(feeds.heartbeat_s[f]) > 0 else rule.heartbeat_s
            stock = self.feed_kind[f] == "stock"
            if stock and heartbeat >= 86_400:
                heartbeat = heartbeat * SESSION // 86_400  # a heartbeat of days counts sessions
            limit = heartbeat + rule.grace_s
            cutoff = max(math.ceil(limit * rule.cutoff_multiple), limit)
            if updated <= 0:
                age = 0
            elif stock:
                age = trading_seconds(min(updated, now), now)
            else:
                age = now - updated
            code = 0
            if answer <= 0:
                code |= bit("ORACLE_NON_POSITIVE")
            if updated == 0 or int(feeds.answered_in_round[f]) < int(feeds.round_id[f]):
                code |= bit("ORACLE_INCOMPLETE")
            cut = updated <= 0 or age > cutoff
            if cut:
                code |= bit("ORACLE_STALE")
            self.feed_codes.append(code)
            self.feed_price.append(answer / 10 ** int(feeds.decimals[f]) if answer > 0 else 0.0)
            self.feed_age.append(now - updated)
            self.feed_updated.append(updated)
            self.feed_stale.append(age > limit and not cut)
            self.feed_age_days.append(max(age, 0) / (SESSION if stock else 86_400))

        # Corporate actions (docs/risk.md section 2): A(t) per token, which tokens they adjust
        tok = snapshot.tokens
        acts = snapshot.actions
        self.actions: list[list[tuple[int, float]]] = []
        for t in range(len(tok.symbol)):
            if acts is None:
                self.actions.append([])
                continue
            lo, hi = int(acts.offsets[t]), int(acts.offsets[t + 1])
            self.actions.append([(int(acts.effective_at[k]), int(acts.new[k]) / int(acts.old[k]))
                                 for k in range(lo, hi)])
        self.adjusted = [
            bool(self.actions[t]) and int(tok.accounting[t]) != PLAIN
            and not (int(tok.accounting[t]) == UI_MULTIPLIER and int(tok.quote[t]) == PER_TOKEN)
            for t in range(len(tok.symbol))
        ]
        self.adjuster = [-1] * n_f
        for t in range(len(tok.symbol)):
            f = int(tok.feed_idx[t])
            if self.adjusted[t] and f >= 0 and self.adjuster[f] < 0:
                self.adjuster[f] = t

        # Daily log returns, EWMA (RISK.md sections 4 and 7): stock feeds at the closes (and now while open),
        # 24/7 feeds every 24 h back from now; correlation on the stock grid
        closes = closes_up_to(now, vol.lookback_days + 1)
        session_grid = closes + ([now] if self.state == "open" and (not closes or now > closes[-1]) else [])
        day_grid = [now - 86_400 * k for k in range(vol.continuous_lookback_days, -1, -1)]
        hist = snapshot.history
        lam = vol.ewma_lambda

        def returns_on(f: int, grid: list[int]) -> list[float | None]:
            lo, hi = int(hist.offsets[f]), int(hist.offsets[f + 1])
            ts = [int(t) for t in hist.updated_at[lo:hi]]
            ans = [int(a) for a in hist.answer_raw[lo:hi]]
            dec = int(feeds.decimals[f])
            px: list[float | None] = []
            for c in grid:
                k = bisect.bisect_right(ts, c) - 1
                if k >= 0 and ans[k] > 0:
                    px.append(ans[k] / 10**dec * self.factor(self.adjuster[f], ts[k]))
                else:
                    px.append(None)
            out: list[float | None] = []
            for i in range(1, len(grid)):
                a, b = px[i - 1], px[i]
                out.append(math.log(b / a) if a is not None and b is not None else None)
            return out

        rets = [returns_on(f, session_grid) for f in range(n_f)]
        n_ret = max(0, len(session_grid) - 1)
        self.feed_sigma: list[float] = []
        for f in range(n_f):
            own = rets[f] if self.feed_kind[f] == "stock" else returns_on(f, day_grid)
            valid = [r for r in own if r is not None]
            if not valid:
                raw = None
            else:
                v = sum(r * r for r in valid) / len(valid)
                vmax = -math.inf
                for r in own:
                    if r is not None:
                        v = lam * v + (1 - lam) * r * r
                    vmax = max(vmax, v)
                raw = math.sqrt(vmax)
            floor = vol.floor[self.feed_kind[f]]
            self.feed_sigma.append(max(floor, vol.sigma_without_history if raw is None else raw))
        self.feed_h_stale = [
            min(1.0, self.z * self.feed_sigma[f] * math.sqrt(self.feed_age_days[f])) if self.feed_stale[f] else 0.0
            for f in range(n_f)
        ]
        zf = [[(rets[f][i] if rets[f][i] is not None else 0.0) for f in range(n_f)] for i in range(n_ret)]
        cov = [[0.0] * n_f for _ in range(n_f)]
        if n_ret:
            for i in range(n_f):
                for j in range(n_f):
                    cov[i][j] = sum(zf[t][i] * zf[t][j] for t in range(n_ret)) / n_ret
            for t in range(n_ret):
                for i in range(n_f):
                    for j in range(n_f):
                        cov[i][j] = lam * cov[i][j] + (1 - lam) * zf[t][i] * zf[t][j]
        corr = [[0.0] * n_f for _ in range(n_f)]
        for i in range(n_f):
            for j in range(n_f):
                if i == j:
                    corr[i][j] = 1.0
                elif cov[i][i] > 0 and cov[j][j] > 0:
                    corr[i][j] = max(-1.0, min(1.0, cov[i][j] / math.sqrt(cov[i][i] * cov[j][j])))
        sp = policy.stress
        equity = [False] * n_f
        for t in range(len(tok.symbol)):
            f, tp = int(tok.feed_idx[t]), policy.tokens.get(str(tok.symbol[t]))
            if (
                f >= 0
                and tp is not None
                and tp.asset_class in sp.equity_classes
                and self.feed_kind[f] == "stock"
            ):
                equity[f] = True
        crypto = [k == "crypto" for k in self.feed_kind]
        # RISK.md s7 floor, reached by blending toward the crisis matrix (docs/risk.md, "Stressed correlation")
        w = 0.0
        for i in range(n_f):
            for j in range(n_f):
                if equity[i] and crypto[j] and corr[i][j] < sp.equity_crypto_corr_floor:
                    w = max(w, (sp.equity_crypto_corr_floor - corr[i][j]) / (1 - corr[i][j]))
        w = min(1.0, w)
        block = [equity[i] or crypto[i] for i in range(n_f)]

        def blended(weight: float, sign: bool) -> list[list[float]]:
            out = [[0.0] * n_f for _ in range(n_f)]
            for i in range(n_f):
                for j in range(n_f):
                    if i == j:
                        out[i][j] = 1.0
                        continue
                    if block[i] and block[j]:
                        crisis = -1.0 if sign and crypto[i] != crypto[j] else 1.0
                    elif not block[i] and not block[j]:
                        crisis = corr[i][j]
                    else:
                        crisis = 0.0
                    out[i][j] = (1 - weight) * corr[i][j] + weight * crisis
            return out

        stressed = blended(w, False)
        self.blend_weight = w
        self.stressed_corr = stressed
        self.min_eigenvalue = min(jacobi_eigen(stressed)[0]) if n_f else 1.0
        s = [sp.vol_multiplier * x for x in self.feed_sigma]

        def covariances(r: list[list[float]]) -> tuple[list[list[float]], list[list[float]]]:
            joint = [[r[i][j] * s[i] * s[j] for j in range(n_f)] for i in range(n_f)]
            indep = [[0.0 if crypto[i] != crypto[j] else joint[i][j] for j in range(n_f)] for i in range(n_f)]
            return joint, indep

        self.regimes = [covariances(stressed)]
        # the negative regime: every equity-crypto correlation brought down to -rho (docs/risk.md section 7)
        self.blend_weight_neg = 0.0
        if sp.two_sided and any(equity[i] and crypto[j] for i in range(n_f) for j in range(n_f)):
            rho = sp.equity_crypto_corr_floor
            w_neg = 0.0
            for i in range(n_f):
                for j in range(n_f):
                    if equity[i] and crypto[j] and corr[i][j] > -rho:
                        w_neg = max(w_neg, (rho + corr[i][j]) / (1 + corr[i][j]))
            self.blend_weight_neg = w_neg = min(1.0, w_neg)
            self.stressed_corr_neg = blended(w_neg, True)
            self.regimes.append(covariances(self.stressed_corr_neg))
        self.cov_joint, self.cov_indep = self.regimes[0]

        # Tokens
        self.n_tokens = n_t = len(tok.symbol)
        self.token: list[dict[str, Any]] = []
        vp = policy.valuation
        session_open = _session(_ny_date(now))[0] if self.state == "open" else None  # type: ignore[index]
        for t in range(n_t):
            sym = str(tok.symbol[t])
            d = int(tok.decimals[t])
            feed = int(tok.feed_idx[t])
            model = int(tok.accounting[t])
            m = int(tok.multiplier_raw[t]) / 10**18
            supply = int(tok.total_supply_raw[t]) / 10**d
            supply_shares = supply if model == REBASING else supply * m
            round_time = self.feed_updated[feed] if feed >= 0 and self.feed_updated[feed] > 0 else now
            factor = 1.0
            if self.adjusted[t]:
                factor = self.factor(t, round_time) / self.factor(t, now)
            sigma = self.feed_sigma[feed] if feed >= 0 else vol.sigma_without_history
            kind = self.feed_kind[feed] if feed >= 0 else None
            price = self.feed_price[feed] if feed >= 0 else 0.0
            code = 0
            if not policy.token_eligible(sym):
                code |= bit("TOKEN_NOT_ELIGIBLE")
            if bool(tok.paused[t]):
                code |= bit("TOKEN_PAUSED")
            code |= self.feed_codes[feed] if feed >= 0 else bit("ORACLE_MISSING")
            if bool(tok.has_reserve[t]):
                reserves = int(tok.reserve_raw[t]) / 10 ** int(tok.reserve_decimals[t])
                if reserves < supply_shares * (1 - policy.reserves.tolerance):
                    code |= bit("RESERVE_SHORTFALL")
                if reserves > supply_shares * (1 + vp.reserve_excess):
                    code |= bit("VALUATION_INCONSISTENT")
                if tok.reserve_updated_at is not None and now - int(tok.reserve_updated_at[t]) > policy.reserves.max_age_s:
                    code |= bit("RESERVE_STALE")
            # the feed across the token's latest action: its adjusted moves (to the first round after the
            # action, and to the round used) against a market move at the policy's sigma floor
            passed = [e for e, _ in self.actions[t] if e <= now]
            if self.adjusted[t] and passed and feed >= 0 and price > 0 and round_time >= passed[-1]:
                e = passed[-1]
                lo, hi = int(snapshot.history.offsets[feed]), int(snapshot.history.offsets[feed + 1])
                ts = [int(x) for x in snapshot.history.updated_at[lo:hi]]
                dec = int(feeds.decimals[feed])
                k = bisect.bisect_left(ts, e)
                before = int(snapshot.history.answer_raw[lo + k - 1]) if k > 0 else 0
                if before > 0:
                    before_adj = before / 10**dec * self.factor(t, ts[k - 1])
                    now_adj = price * self.factor(t, round_time)
                    first_t, first_adj = round_time, now_adj
                    if k < len(ts) and ts[k] < round_time:
                        a = int(snapshot.history.answer_raw[lo + k])
                        first_t, first_adj = ts[k], a / 10**dec * self.factor(t, ts[k])

                    def span(a: int, b: int, stock: bool = kind == "stock") -> float:
                        return trading_seconds(a, b) / SESSION if stock else (b - a) / 86_400

                    floor = vol.floor[kind] if kind is not None else 0.0
                    if first_adj > 0:
                        cross = math.log(first_adj / before_adj)
                        move = math.log(now_adj / before_adj)
                        tol = vp.action_move_tolerance
                        if (abs(cross) > tol + self.z * floor * math.sqrt(span(ts[k - 1], first_t))
                                and abs(move) > tol + self.z * floor * math.sqrt(span(ts[k - 1], round_time))):
                            code |= bit("VALUATION_INCONSISTENT")
            if factor != 1.0 and vp.price_before_action == "ineligible":
                code |= bit("PRICE_BEFORE_ACTION")
            h_vol = min(1.0, self.z * sigma * math.sqrt(vol.horizon_days)) if vol.enabled else 0.0
            gap_days = 0
            if kind == "stock":
                if self.state != "open":
                    gap_days = self.gap_days
                elif round_time < session_open:  # the opening window: until the first round after the open
                    gap_days = trading_days_until_next_open(session_open - 1)
            h_gap = 0.0
            if policy.gap.enabled and gap_days > 0:
                h_gap = min(policy.gap.cap, self.z * sigma * math.sqrt(gap_days))
            tp = policy.tokens.get(sym)
            state = self.state if feed < 0 else self.state if kind == "stock" else "continuous"
            self.token.append(
                {
                    "symbol": sym,
                    "decimals": d,
                    "feed": feed,
                    "model": model,
                    "m": m,
                    "per_token": int(tok.quote[t]) == PER_TOKEN,
                    "price": price,
                    "factor": factor,
                    "supply": supply,
                    "code": code,
                    "h_base": policy.token_base_haircut(sym),
                    "h_vol": h_vol,
                    "h_gap": h_gap,
                    "h_stale": self.feed_h_stale[feed] if feed >= 0 else 0.0,
                    "liquidity": None if tp is None else tp.daily_liquidity_usd,
                    "share_cap": policy.token_wallet_share_cap(sym),
                    "usd_cap": math.inf if tp is None or tp.wallet_cap_usd is None else tp.wallet_cap_usd,
                    "state": state,
                    "age": self.feed_age[feed] if feed >= 0 else -1,
                    "shocks": [policy.scenario_token_shock(sc, sym) for sc in sp.scenarios],
                    "sigma": sigma,
                    "vault": None,
                }
            )
        # ERC-4626 vaults (docs/risk.md section 16): the rate, its moves in the window, the asset's codes
        for t in range(n_t):
            a = -1 if tok.vault_asset_idx is None else int(tok.vault_asset_idx[t])
            if a >= 0:
                tk = self.token[t]
                rate_raw = int(tok.vault_rate_raw[t])
                lo, hi = int(tok.vault_move_offsets[t]), int(tok.vault_move_offsets[t + 1])
                jump = max((float(tok.vault_move[k]) for k in range(lo, hi)
                            if now - policy.vaults.window_s < int(tok.vault_move_at[k]) <= now), default=0.0)
                tk["vault"] = (a, rate_raw / 10 ** self.token[a]["decimals"])
                tk["code"] |= self.token[a]["code"]
                if jump > policy.vaults.max_rate_jump:
                    tk["code"] |= bit("VAULT_RATE_JUMP")
                if rate_raw <= 0:
                    tk["code"] |= bit("VAULT_RATE_MISSING")
        for t in range(n_t):
            self._dex(t, snapshot, policy)

        # Rows per wallet, and the platform-wide pledged total per token (needs every holding)
        hold = snapshot.holdings
        self.balance = hold.balance_ints()  # exact Python ints, whichever form the snapshot uses
        self.rows_of: dict[int, list[int]] = {}
        for r, w in enumerate(hold.wallet_idx.tolist()):
            self.rows_of.setdefault(w, []).append(r)
        self.pos_of: dict[int, list[int]] = {}
        for r, w in enumerate(snapshot.positions.wallet_idx.tolist()):
            self.pos_of.setdefault(w, []).append(r)
        self.account_code = [self._account_code(w) for w in range(snapshot.n_wallets)]
        pledged = [0.0] * n_t
        for r in range(len(hold.wallet_idx)):
            w, t = int(hold.wallet_idx[r]), int(hold.token_idx[r])
            units, _, mv = self._value(t, self.balance[r])
            if self._holding_code(w, t, r, mv) == 0:
                pledged[t] += units
        cap = policy.concentration.platform_supply_share_cap
        self.pledged = pledged
        self.platform = [
            cap * self.token[t]["supply"] / pledged[t] if pledged[t] > cap * self.token[t]["supply"] else 1.0
            for t in range(n_t)
        ]
        self._platform_of: dict[tuple[bool, float], list[float]] = {}
        self.any_measured = any(self._measured(t) for t in range(n_t))
        self.scenario_names = [sc.name for sc in sp.scenarios]
        self.position_shocks = [
            [policy.scenario_crypto_shock(sc, str(feeds.name[f])) for sc in sp.scenarios] for f in range(n_f)
        ]

    def factor(self, t: int, when: int) -> float:
        """A(when) of token t: the product of its actions' ratios in force then (1 for t = -1)."""
        a = 1.0
        for e, r in self.actions[t] if t >= 0 else []:
            if e <= when:
                a *= r
        return a

    # -- per holding -------------------------------------------------------------------------------

    def _account_code(self, w: int) -> int:
        acc, ap = self.snap.accounts, self.policy.accounts
        code = 0
        if bool(acc.sanctioned[w]):
            code |= bit("WALLET_SANCTIONED")
        if not bool(acc.has_account[w]):
            return code | (bit("ACCOUNT_UNKNOWN") if ap.require_account else 0)
        j = str(acc.jurisdiction[w])
        if (
            "*" not in ap.allowed_jurisdictions and j not in ap.allowed_jurisdictions
        ) or j in ap.blocked_jurisdictions:
            code |= bit("ACCOUNT_JURISDICTION")
        if "*" not in ap.allowed_tiers and str(acc.tier[w]) not in ap.allowed_tiers:
            code |= bit("ACCOUNT_TIER")
        if ap.require_kyc and not bool(acc.kyc_approved[w]):
            code |= bit("ACCOUNT_KYC")
        return code

    def _value(self, t: int, balance: int) -> tuple[float, float, float]:
        """RISK.md section 2: (token units, shares, market value)."""
        tk = self.token[t]
        units = balance / 10 ** tk["decimals"]
        shares = units if tk["model"] == REBASING else units * tk["m"]
        return units, shares, units * self._unit_value(t)

    def _nav(self, t: int) -> float:
        """USD per token unit from the oracle; a vault's: its rate in asset units at the asset's."""
        tk = self.token[t]
        if tk["vault"] is not None:
            a, rate = tk["vault"]
            return rate * self._nav(a)
        one_share = 1.0 if tk["per_token"] or tk["model"] == REBASING else tk["m"]
        return one_share * tk["price"] * tk["factor"]

    def _unit_value(self, t: int) -> float:
        """USD per token unit as valued: the lower of pool price and NAV past the tolerance; a vault's share is
        never worth more than its rate in asset units at the asset's own value."""
        tk = self.token[t]
        value = tk["unit_value"] if tk["nav_deviation"] else self._nav(t)
        if tk["vault"] is not None:
            a, rate = tk["vault"]
            value = min(value, rate * self._unit_value(a))
        return value

    # -- DEX liquidity (docs/risk.md section 15) --------------------------------------------------------

    def _dex(self, t: int, snapshot: Snapshot, policy: Policy) -> None:
        """The token's liquidity source, ADV and standing depth, and its price against NAV."""
        tk, lp, liq = self.token[t], policy.liquidity, snapshot.liquidity
        tk.update(source=0, adv=0.0, depth=0.0, nav_deviation=False, unit_value=None, premium=None)
        if liq is None or not lp.enabled or not bool(liq.measured[t]):
            return
        usable = bool(liq.fresh[t])
        if liq.updated_at is not None:
            age = self.now - int(liq.updated_at[t])
            usable = usable and 0 <= age <= lp.max_age_s
        if not usable:
            tk["source"] = 2
            return
        tk["source"] = 1
        adv = float(liq.volume_7d[t]) / 7
        if lp.volume_basis == "lower":
            adv = min(adv, float(liq.volume_24h[t]))
        tk["adv"] = adv
        tk["depth"] = float({100: liq.depth_1pct, 200: liq.depth_2pct, 500: liq.depth_5pct}[lp.depth_move_bp][t])
        nav = self._nav(t)
        pool = float(liq.pool_price_usd[t])
        if pool == pool and nav > 0:
            tk["premium"] = (pool / nav - 1) * 10_000
            if abs(tk["premium"]) > lp.nav_tolerance_bp:
                tk["nav_deviation"] = True
                tk["unit_value"] = pool if pool < nav else nav

    def _impact(self, t: int, quantity: float, depth_scale: float) -> float:
        """min(cap, Y sigma sqrt(H) sqrt(quantity / (participation H ADV + depth_scale depth)))."""
        lp, horizon = self.policy.liquidity, self.policy.volatility.horizon_days
        tk = self.token[t]
        k = lp.impact_y * tk["sigma"] * math.sqrt(horizon)
        if quantity <= 0 or k == 0:
            return 0.0
        absorbed = lp.participation * horizon * tk["adv"] + depth_scale * tk["depth"]
        if absorbed <= 0:
            return lp.impact_cap
        return min(lp.impact_cap, k * math.sqrt(quantity / absorbed))

    def _measured(self, t: int) -> bool:
        """Measured, with a term that is not identically 0 (Y sigma > 0)."""
        tk = self.token[t]
        return tk["source"] == 1 and self.policy.liquidity.impact_y * tk["sigma"] > 0

    def platform_factors(self, fresh: bool, depth_scale: float) -> list[float]:
        """Per token: the supply cap's factor, or the platform liquidation cost's where it is lower."""
        key = (fresh, depth_scale)
        if key in self._platform_of:
            return self._platform_of[key]
        n_t = len(self.token)
        value, realised, counted = [0.0] * n_t, [0.0] * n_t, [0.0] * n_t
        hold = self.snap.holdings
        for r in range(len(hold.wallet_idx)):
            w, t = int(hold.wallet_idx[r]), int(hold.token_idx[r])
            if not self._measured(t):
                continue
            units, _, mv = self._value(t, self.balance[r])
            if self._holding_code(w, t, r, mv) != 0:
                continue
            tk = self.token[t]
            rest = tk["h_base"] + tk["h_vol"] + tk["h_gap"] + (0.0 if fresh else tk["h_stale"])
            h = min(1.0, rest + self._size(mv, units, t, depth_scale))
            h0 = min(1.0, rest + self._size(mv, units, t, depth_scale, own_liquidity=False))
            value[t] += mv
            realised[t] += mv * (1 - h0)
            counted[t] += mv * (1 - h)
        out = []
        for t in range(n_t):
            f = self.platform[t]
            if self._measured(t) and self.policy.liquidity.platform_cost and counted[t] > 0:
                cost = self._impact(t, self.pledged[t], depth_scale)
                g = (realised[t] - cost * value[t]) / counted[t]
                f = min(f, min(1.0, max(0.0, g)))
            out.append(f)
        self._platform_of[key] = out
        return out

    def _holding_code(self, w: int, t: int, r: int, mv: float) -> int:
        code = self.token[t]["code"] | self.account_code[w]
        if bool(self.snap.holdings.frozen[r]):
            code |= bit("WALLET_FROZEN")
        if mv < self.policy.eligibility.min_value_usd:
            code |= bit("BELOW_MINIMUM")
        return code

    def _size(self, mv: float, units: float, t: int, depth_scale: float = 1.0, own_liquidity: bool = True) -> float:
        return self._size_terms(mv, units, t, depth_scale, own_liquidity)[0]

    def _size_terms(self, mv: float, units: float, t: int, depth_scale: float = 1.0,
                    own_liquidity: bool = True) -> tuple[float, float]:
        """(h_size, its liquidity term)."""
        sz = self.policy.size
        bands = sz.bands
        if mv > 0:
            amount = 0.0
            for k, band in enumerate(bands):
                upper = bands[k + 1].from_usd if k + 1 < len(bands) else math.inf
                if mv > band.from_usd:
                    amount += band.addon * (min(mv, upper) - band.from_usd)
            h = amount / mv
        else:
            h = bands[0].addon
        liq = self.token[t]["liquidity"]
        term = 0.0
        if self.token[t]["source"] == 1:
            term = self._impact(t, units, depth_scale) if own_liquidity else 0.0
        elif sz.impact_k > 0 and liq is not None:
            term = sz.impact_k * math.sqrt(mv / liq)
        h += term
        if sz.supply_k > 0 and units > 0:
            supply = self.token[t]["supply"]
            ratio = 1.0 if supply <= 0 else min(1.0, units / supply)
            h += sz.supply_k * math.sqrt(ratio)
        return min(1.0, h), term

    # -- per wallet -----------------------------------------------------------------------------------

    def wallet(
        self, w: int, fresh: bool = False, depth_scale: float = 1.0, partial: bool = False
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any]]], dict[str, Any]]:
        """One wallet's rows and totals; ``fresh``: as if no feed were stale (no stale add-on anywhere);
        ``depth_scale``: the DEX depth multiplied by it (the risk-off pass, docs/risk.md section 15);
        ``partial`` (and ``fresh``): the collateral and the status only."""
        policy, snap = self.policy, self.snap
        hold = snap.holdings
        rows = []
        platform = self.platform_factors(fresh, depth_scale)
        for r in self.rows_of.get(w, []):
            t = int(hold.token_idx[r])
            tk = self.token[t]
            units, shares, mv = self._value(t, self.balance[r])
            code = self._holding_code(w, t, r, mv)
            h_size, h_liquidity = self._size_terms(mv, units, t, depth_scale)
            h_stale = 0.0 if fresh else tk["h_stale"]
            h = min(1.0, tk["h_base"] + tk["h_vol"] + h_size + tk["h_gap"] + h_stale)
            c0 = mv * (1 - h) if code == 0 else 0.0
            c1 = c0 * platform[t]
            rows.append(
                (
                    r,
                    t,
                    {
                        "balance": units,
                        "shares": shares,
                        "price": tk["price"],
                        "market_value": mv,
                        "codes": code,
                        "h_base": tk["h_base"],
                        "h_vol": tk["h_vol"],
                        "h_size": h_size,
                        "h_liquidity": h_liquidity,
                        "liquidity_source": tk["source"],
                        "value_flags": 1 if tk["nav_deviation"] else 0,
                        "nav_premium_bp": tk["premium"],
                        "h_gap": tk["h_gap"],
                        "h_stale": h_stale,
                        "haircut": h,
                        "collateral_before_caps": c0,
                        "platform_cut": c0 - c1,
                        "c1": c1,
                        "round_age_s": tk["age"],
                        "market_state": STATE_CODES[tk["state"]],
                    },
                )
            )
        total_c1 = 0.0
        for _, _, h in rows:
            total_c1 += h["c1"]
        out_rows = []
        collateral = 0.0
        market_value = 0.0
        n_f = len(self.feed_sigma)
        x = [0.0] * n_f
        n_sc = len(self.scenario_names)
        pnl = [0.0] * n_sc
        for r, t, h in rows:
            tk = self.token[t]
            y = min(h["c1"], tk["share_cap"] * total_c1, tk["usd_cap"])
            h["wallet_cut"] = h["c1"] - y
            h["concentration_cut"] = h["platform_cut"] + h["wallet_cut"]
            h["collateral_value"] = y
            del h["c1"]
            collateral += y
            market_value += h["market_value"]
            if tk["feed"] >= 0:
                x[tk["feed"]] += y
            for k in range(n_sc):
                pnl[k] += y * tk["shocks"][k]
            out_rows.append((r, h))

        pos = snap.positions
        im = mm = upnl = 0.0
        out_pos = []
        mp = policy.margin
        unpriced = 0
        vol = policy.volatility
        for p in self.pos_of.get(w, []):
            f = int(pos.feed_idx[p])
            size = float(pos.size[p])
            entry = float(pos.entry_price[p])
            price = self.feed_price[f]
            code = self.feed_codes[f]
            usable = price > 0 and not code & (bit("ORACLE_MISSING") | bit("ORACLE_NON_POSITIVE") | bit("ORACLE_STALE"))
            adverse = 0.0
            if usable:
                if not fresh:
                    adverse += self.feed_h_stale[f]
                if code & bit("ORACLE_INCOMPLETE"):
                    adverse += self.z * self.feed_sigma[f] * math.sqrt(vol.horizon_days)
                adverse = min(adverse, 0.99)
                direction = 1.0 if size > 0 else -1.0 if size < 0 else 0.0
                mark = price * (1 - direction * adverse)
                notional = abs(size) * price * (1 + adverse)
            else:
                unpriced += 1
                mark = entry
                notional = abs(size) * entry
            if mp.im_mode == "leverage":
                p_im = notional / min(float(pos.leverage[p]), mp.max_leverage)
                p_mm = notional * mp.mm_rate
            else:
                tier = next(
                    tr
                    for tr in mp.tiers
                    if tr.up_to_notional_usd is None or notional <= tr.up_to_notional_usd
                )
                p_im, p_mm = notional * tier.im_rate, notional * tier.mm_rate
            p_upnl = size * (mark - entry) if usable else 0.0
            im += p_im
            mm += p_mm
            upnl += p_upnl
            x[f] += size * mark
            for k in range(n_sc):
                pnl[k] += size * mark * self.position_shocks[f][k]
            out_pos.append(
                (
                    p,
                    {
                        "mark": mark,
                        "mark_ok": code == 0 and not self.feed_stale[f],
                        "mark_usable": usable,
                        "mark_adverse": adverse,
                        "notional": notional,
                        "im": p_im,
                        "mm": p_mm,
                        "upnl": p_upnl,
                    },
                )
            )

        cash = float(snap.accounts.cash_usd[w])
        equity = collateral + upnl + cash
        if partial or fresh:  # a pass for its collateral or status only
            return out_rows, out_pos, {"collateral": collateral, "status": _status(equity, im, mm)}
        status = _status(equity, im, mm)
        stale_driven = False
        if not fresh:
            touched = [self.token[int(hold.token_idx[r])]["h_stale"] for r in self.rows_of.get(w, [])]
            touched += [self.feed_h_stale[int(pos.feed_idx[p])] for p in self.pos_of.get(w, [])]
            if any(hs > 0 for hs in touched):
                fresh_status = self.wallet(w, fresh=True)[2]["status"]
                capped = max(fresh_status, min(status, 1))  # a stale input alone never liquidates
                stale_driven = capped > fresh_status
                status = capped
            if unpriced:
                status = 3
        scale = self.z * math.sqrt(policy.volatility.horizon_days)
        regime, best = 0, None
        for k, (joint, indep) in enumerate(self.regimes):  # the regime where the wallet loses more
            q = _quad(x, joint)
            if best is None or q > best[0]:
                regime, best = k, (q, _quad(x, indep))
        assert best is not None
        l_joint = scale * math.sqrt(max(0.0, best[0]))
        l_indep = scale * math.sqrt(max(0.0, best[1]))
        # risk-off stresses: the collateral lost with the DEX depth shrunk by stress.depth_factor
        sp = policy.stress
        liquidity_loss = 0.0
        uses = sp.parametric_risk_off or any(sc.risk_off for sc in sp.scenarios)
        if uses and self.any_measured:
            shrunk = self.wallet(w, depth_scale=sp.depth_factor, partial=True)[2]["collateral"]
            liquidity_loss = max(0.0, collateral - shrunk)
        losses = [-v + (liquidity_loss if sc.risk_off else 0.0) for v, sc in zip(pnl, sp.scenarios, strict=True)]
        worst = 0
        for k in range(1, n_sc):
            if losses[k] > losses[worst]:
                worst = k
        worst_loss = losses[worst]
        parametric = l_joint + (liquidity_loss if sp.parametric_risk_off else 0.0)
        wallet = {
            "market_value": market_value,
            "collateral": collateral,
            "im": im,
            "mm": mm,
            "upnl": upnl,
            "cash": cash,
            "equity": equity,
            "excess": equity - im,
            "status": status,
            "l_joint": l_joint,
            "l_indep": l_indep,
            "wrong_way": max(0.0, l_joint - l_indep),
            "worst_scenario": worst,
            "worst_scenario_loss": worst_loss,
            "stressed_excess": equity - im - max(parametric, worst_loss),
            "binding": 0 if parametric >= worst_loss else worst + 1,
            "liquidity_stress_loss": liquidity_loss,
            "regime": regime,
            "stale_driven": stale_driven,
            "unpriced_positions": unpriced,
        }
        return out_rows, out_pos, wallet


def _status(equity: float, im: float, mm: float) -> int:
    if equity >= im:
        return 0
    if equity >= mm:
        return 1
    return 2


def _quad(x: list[float], s: list[list[float]]) -> float:
    total = 0.0
    n = len(x)
    for i in range(n):
        if x[i] == 0.0:
            continue
        row = s[i]
        acc = 0.0
        for j in range(n):
            acc += row[j] * x[j]
        total += x[i] * acc
    return total


def reference_run(snapshot: Snapshot, policy: Policy, wallets: list[int] | None = None) -> ReferenceRun:
    """Run the reference for all wallets (or the given ones); holdings/positions keep snapshot row order."""
    model = ReferenceModel(snapshot, policy)
    chosen = range(snapshot.n_wallets) if wallets is None else wallets
    run = ReferenceRun(
        market_state=model.state,
        trading_days_until_next_open=model.gap_days,
        feed_sigma=model.feed_sigma,
        feed_codes=model.feed_codes,
        stressed_corr=model.stressed_corr,
        blend_weight=model.blend_weight,
        min_eigenvalue=model.min_eigenvalue,
        regimes=model.regimes,
        stressed_corr_neg=getattr(model, "stressed_corr_neg", None),
    )
    rows: dict[int, dict[str, Any]] = {}
    positions: dict[int, dict[str, Any]] = {}
    for w in chosen:
        hrows, prows, wallet = model.wallet(w)
        rows.update(dict(hrows))
        positions.update(dict(prows))
        run.wallets.append(wallet)
    run.holdings = [rows[r] for r in sorted(rows)]
    run.positions = [positions[p] for p in sorted(positions)]
    return run
