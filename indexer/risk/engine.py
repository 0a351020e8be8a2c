"""The risk run: one snapshot + one policy -> per-holding and per-wallet results (RISK.md 2-9).

Vectorized over all holdings and wallets at once: per-token and per-feed quantities are computed
on small arrays and gathered onto holdings by index; per-wallet sums are ``np.bincount``. Python
loops run over feeds, tokens, scenarios or return dates only. Nothing here reads a clock: "now" is
the snapshot's block timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from indexer.risk.actions import adjusted_tokens, factor_at, feed_adjuster, history_factors
from indexer.risk.calendar import MarketState, TradingCalendar, xnys
from indexer.risk.eligibility import Eligibility, ValuationFlag, codes_to_names
from indexer.risk.haircuts import sigma_haircut, size_haircut, wallet_concentration
from indexer.risk.inputs import Liquidity, Snapshot, Tokens
from indexer.risk.policy import Policy
from indexer.risk.staleness import SESSION_S, assess_staleness
from indexer.risk.stress import StressedCovariance, instrument_losses, stressed_covariance
from indexer.risk.uint256 import to_float_units
from indexer.risk.volatility import VolatilityEstimate, feed_sigma
from indexer.types import Accounting, FeedKind, PriceQuote

_STOCK = FeedKind.STOCK.code

PARAMETRIC = "parametric"  # name of the parametric (L_joint) stress in RiskRun.stress_names


class LiquiditySource(IntEnum):
    """Where a token's liquidity term comes from (``TokenRisk.liquidity_source``, docs/risk.md section 15)."""

    CONFIGURED = 0  # no DEX measures: tokens.<symbol>.daily_liquidity_usd (no term where the policy has none)
    MEASURED = 1  # fresh DEX depth and volume: the square-root impact in token units
    STALE = 2  # measures given but not fresh (or too old): the configured figure is used, no NAV rule


class MarginStatus(IntEnum):
    HEALTHY = 0  # equity >= IM
    MARGIN_CALL = 1  # MM <= equity < IM
    LIQUIDATE = 2  # equity < MM
    UNPRICED = 3  # a position has no usable mark: its margin cannot be known


# -- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FeedRisk:
    """Per feed: the round used, its checks, and the volatility estimate."""

    price: np.ndarray  # answer / 10^decimals; 0 where no round or answer <= 0
    codes: np.ndarray  # uint32, ORACLE_* bits of Eligibility (ORACLE_STALE: past the hard cut-off)
    round_id: np.ndarray  # object ints (None where no round)
    age_s: np.ndarray  # int64, now - updatedAt; -1 where no round
    heartbeat_s: np.ndarray  # int64, heartbeat used (the feed's own, else the policy's for its kind)
    sigma_raw: np.ndarray  # anti-procyclical EWMA sigma (max over look-back); NaN = no history
    sigma: np.ndarray  # daily sigma used: max(floor[kind], sigma_raw or sigma_without_history)
    sigma_last: np.ndarray  # EWMA sigma at the last sample
    n_returns: np.ndarray  # valid daily returns in the window (on the feed's own sampling grid)
    updated_at: np.ndarray | None = None  # int64, updatedAt of the round used
    clock_age_s: np.ndarray | None = None  # int64, age on the feed's clock (trading seconds for stocks)
    limit_s: np.ndarray | None = None  # int64, heartbeat + grace on the feed's clock
    cutoff_s: np.ndarray | None = None  # int64, the hard cut-off on the feed's clock
    stale: np.ndarray | None = None  # bool, past the limit (graded add-on; ORACLE_STALE only past the cut-off)
    h_stale: np.ndarray | None = None  # z * sigma * sqrt(age in trading days) while stale, else 0
    flagged_rounds: np.ndarray | None = None  # int64, rounds left out of the volatility history
    adjusted_by: np.ndarray | None = None  # int64, the token whose corporate actions adjust the history; -1
    history_actions: np.ndarray | None = None  # int64, those actions inside the volatility window


@dataclass(frozen=True, eq=False)
class TokenRisk:
    """Per token: everything that does not depend on the holder."""

    codes: np.ndarray  # uint32: token, oracle and reserve bits
    feed_idx: np.ndarray  # -1 where the token has no feed
    price: np.ndarray  # of its feed; 0 where none or not positive
    share_factor: np.ndarray  # shares per token unit (multiplier or external ratio; 1 for rebasing)
    value_factor: np.ndarray  # USD per token unit: price x (1 if the feed is per_token else share_factor)
    h_base: np.ndarray
    h_vol: np.ndarray
    h_gap: np.ndarray
    sigma: np.ndarray  # daily sigma of its feed
    daily_liquidity_usd: np.ndarray  # NaN where the policy gives none
    wallet_share_cap: np.ndarray
    wallet_cap_usd: np.ndarray  # inf where none
    supply_units: np.ndarray
    supply_shares: np.ndarray
    reserve_shares: np.ndarray  # NaN where no reserve figure
    round_id: np.ndarray  # object ints, its feed's round used; None where none
    round_age_s: np.ndarray  # int64, age of its feed's round; -1 where none
    market_state: np.ndarray  # int8 MarketState of the underlying (CONTINUOUS for 24/7 feeds)
    pledged_units: np.ndarray  # eligible units held across all wallets
    platform_factor: np.ndarray  # pro-rata factor of the platform-wide cap (1 = not binding)
    h_stale: np.ndarray | None = None  # the stale add-on of its feed (0 when fresh)
    action_factor: np.ndarray | None = None  # A(round time) / A(B): carries the round's price to B's shares
    predates_action: np.ndarray | None = None  # bool: a corporate action took effect after the round used
    action_move: np.ndarray | None = None  # adjusted log move of its feed from before its latest action to now
    action_cross: np.ndarray | None = None  # ... to the first round after that action; NaN: none
    gap_days: np.ndarray | None = None  # int64, business days its h_gap is computed on
    # DEX liquidity (docs/risk.md section 15); None when the snapshot has no liquidity table
    liquidity_source: np.ndarray | None = None  # int8 LiquiditySource
    nav: np.ndarray | None = None  # USD per token unit from the oracle (value_factor before the NAV rule)
    pool_price_usd: np.ndarray | None = None  # USD per token from the pools; NaN where none or not used
    nav_premium_bp: np.ndarray | None = None  # 1e4 (pool / nav - 1); NaN where not judged
    measured_premium_bp: np.ndarray | None = None  # the sync's own figure against the oracle answer; NaN
    value_flags: np.ndarray | None = None  # uint32 ValuationFlag bits (NAV_DEVIATION)
    adv_units: np.ndarray | None = None  # average daily volume used, token units; NaN where not measured
    depth_units: np.ndarray | None = None  # standing depth used (liquidity.depth_move_bp), token units
    liquidity_units: np.ndarray | None = None  # A = participation H ADV + depth; NaN where not measured
    liquidity_coef: np.ndarray | None = None  # Y sigma sqrt(H) / sqrt(A); 0 where not measured, inf where A = 0
    platform_cap_factor: np.ndarray | None = None  # the supply-share cap's factor alone
    platform_liquidity_factor: np.ndarray | None = None  # the platform liquidation cost's factor alone
    platform_cost: np.ndarray | None = None  # min(cap, Y sigma sqrt(H) sqrt(pledged / A)); 0 where none
    # ERC-4626 vaults (section 16): asset units per share at B, and the largest move of the rate in the window
    vault_rate: np.ndarray | None = None  # NaN: not a vault, or no rate
    vault_jump: np.ndarray | None = None  # NaN: not a vault, or fewer than two reads


@dataclass(frozen=True, eq=False)
class HoldingRisk:
    """Per (wallet, token) row, aligned with ``Snapshot.holdings``.

    Columns the run needs are arrays. Columns that follow from them and a per-token number (price,
    shares, h_base, h_vol, h_gap, feed, round age, market state, the platform and wallet cuts) are
    computed on access, one fancy index each, so a run does not pay for columns nobody reads.
    """

    wallet_idx: np.ndarray
    token_idx: np.ndarray
    balance: np.ndarray  # token units, b / 10^d
    market_value: np.ndarray
    codes: np.ndarray  # uint32 Eligibility bitmask; 0 = eligible
    eligible: np.ndarray  # bool
    h_size: np.ndarray
    haircut: np.ndarray  # min(1, h_base + h_vol + h_size + h_gap + h_stale)
    collateral_before_caps: np.ndarray  # market_value * (1 - haircut) if eligible else 0
    collateral_value: np.ndarray
    token_table: TokenRisk
    h_liquidity: np.ndarray | None = None  # the liquidity term inside h_size (configured or measured); None: 0

    @property
    def liquidity_term(self) -> np.ndarray:
        """The liquidity part of ``h_size``: ``k sqrt(V / L)`` (configured) or the square-root impact
        (measured); 0 where neither applies."""
        return np.zeros(len(self.token_idx)) if self.h_liquidity is None else self.h_liquidity

    @property
    def liquidity_source(self) -> np.ndarray:
        """int8 :class:`LiquiditySource` of each holding's token."""
        src = self.token_table.liquidity_source
        return np.zeros(len(self.token_idx), dtype=np.int8) if src is None else src[self.token_idx]

    @property
    def value_flags(self) -> np.ndarray:
        """uint32 :class:`~indexer.risk.eligibility.ValuationFlag` bits of each holding's token."""
        vf = self.token_table.value_flags
        return np.zeros(len(self.token_idx), dtype=np.uint32) if vf is None else vf[self.token_idx]

    @property
    def shares(self) -> np.ndarray:
        """Underlying shares (RISK.md section 2): balance x the token's share factor."""
        return self.balance * self.token_table.share_factor[self.token_idx]

    @property
    def platform_cut(self) -> np.ndarray:
        """USD removed by the platform-wide supply cap."""
        c0 = self.collateral_before_caps
        return c0 - c0 * self.token_table.platform_factor[self.token_idx]

    @property
    def wallet_cut(self) -> np.ndarray:
        """USD removed by the per-wallet share and USD caps."""
        return (
            self.collateral_before_caps * self.token_table.platform_factor[self.token_idx]
            - self.collateral_value
        )

    @property
    def concentration_cut(self) -> np.ndarray:
        """USD removed by all concentration caps: collateral before caps minus collateral."""
        return self.collateral_before_caps - self.collateral_value

    @property
    def feed_idx(self) -> np.ndarray:
        return self.token_table.feed_idx[self.token_idx]

    @property
    def price(self) -> np.ndarray:
        return self.token_table.price[self.token_idx]

    @property
    def h_base(self) -> np.ndarray:
        return self.token_table.h_base[self.token_idx]

    @property
    def h_vol(self) -> np.ndarray:
        return self.token_table.h_vol[self.token_idx]

    @property
    def h_gap(self) -> np.ndarray:
        return self.token_table.h_gap[self.token_idx]

    @property
    def h_stale(self) -> np.ndarray:
        hs = self.token_table.h_stale
        return np.zeros(len(self.token_idx)) if hs is None else hs[self.token_idx]

    @property
    def round_id(self) -> np.ndarray:
        """The feed round used (object ints; None where the token has no round)."""
        return self.token_table.round_id[self.token_idx]

    @property
    def round_age_s(self) -> np.ndarray:
        return self.token_table.round_age_s[self.token_idx]

    @property
    def market_state(self) -> np.ndarray:
        return self.token_table.market_state[self.token_idx]

    def code_names(self) -> list[list[str]]:
        return codes_to_names(self.codes)


@dataclass(frozen=True, eq=False)
class PositionRisk:
    wallet_idx: np.ndarray
    feed_idx: np.ndarray
    mark: np.ndarray  # the mark used: the feed's price moved against the position by mark_adverse; the
    # entry price where no usable mark exists (mark_usable false: the wallet is unpriced)
    mark_ok: np.ndarray  # bool: the mark feed passed every oracle check and is not stale
    notional: np.ndarray  # |size| * feed price * (1 + mark_adverse)
    im: np.ndarray
    mm: np.ndarray
    upnl: np.ndarray  # size * (mark - entry); 0 where unusable (and the wallet is unpriced)
    mark_usable: np.ndarray | None = None  # bool: a positive answer within the hard cut-off
    mark_price: np.ndarray | None = None  # the feed's price (0 where none)
    mark_adverse: np.ndarray | None = None  # fraction the mark is moved against the position (stale, incomplete)
    mark_codes: np.ndarray | None = None  # uint32, the mark feed's ORACLE_* bits
    mark_stale: np.ndarray | None = None  # bool, the mark feed is past its limit
    mark_round_id: np.ndarray | None = None  # object ints, the round used; None where none
    mark_age_s: np.ndarray | None = None  # int64, its age (wall seconds); -1 where none


@dataclass(frozen=True, eq=False)
class WalletRisk:
    market_value: np.ndarray
    collateral: np.ndarray
    im: np.ndarray
    mm: np.ndarray
    upnl: np.ndarray
    cash: np.ndarray
    equity: np.ndarray  # collateral + upnl + cash
    excess: np.ndarray  # equity - IM
    status: np.ndarray  # int8 MarginStatus
    l_joint: np.ndarray
    l_indep: np.ndarray
    wrong_way: np.ndarray  # max(0, L_joint - L_indep)
    worst_scenario: np.ndarray  # int16 index into RiskRun.scenario_names
    worst_scenario_loss: np.ndarray
    stressed_excess: np.ndarray  # equity - IM - max(L_joint, worst scenario loss)
    binding: np.ndarray  # int16 index into RiskRun.stress_names (0 = parametric)
    regime: np.ndarray | None = None  # int8, the correlation regime of L_joint: 0 = positive floor, 1 = negative
    stale_driven: np.ndarray | None = None  # bool: the status is worse than fresh prices alone would make it
    unpriced_positions: np.ndarray | None = None  # int64, positions with no usable mark
    # collateral lost when DEX depth shrinks by stress.depth_factor (risk-off stresses); 0 without measures
    liquidity_stress_loss: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class RiskRun:
    block_number: int
    timestamp: int
    policy_version: str
    policy_hash: str
    market_state: MarketState  # XNYS at the block time
    early_close_day: bool
    seconds_to_next_open: int
    trading_days_until_next_open: int
    z: float
    scenario_names: tuple[str, ...]
    stress_names: tuple[str, ...]  # (PARAMETRIC, *scenario_names)
    closes: np.ndarray  # the session closes the returns were sampled at
    feeds: FeedRisk
    tokens: TokenRisk
    holdings: HoldingRisk
    positions: PositionRisk
    wallets: WalletRisk
    stress: StressedCovariance
    notes: tuple[str, ...] = ()  # what the run adjusted or flagged, in words

    def binding_names(self) -> list[str]:
        return [self.stress_names[i] for i in self.wallets.binding]


# -- stages ---------------------------------------------------------------------------------------


def _bit(mask: np.ndarray, code: Eligibility) -> np.ndarray:
    return np.where(mask, np.uint32(code), np.uint32(0))


def assess_feeds(
    snapshot: Snapshot, policy: Policy, calendar: TradingCalendar
) -> tuple[FeedRisk, VolatilityEstimate, np.ndarray]:
    """Oracle checks (RISK.md sections 3 and 5) and volatility (section 4) per feed.

    Returns the feed table, the session-grid estimate (its correlation is the run's) and that grid."""
    feeds, now = snapshot.feeds, int(snapshot.block_timestamp)
    kinds = np.asarray(feeds.kind, dtype=np.int8)
    has = np.asarray(feeds.has_round, dtype=bool)
    answer = to_float_units(np.where(has, feeds.answer_raw, 0), feeds.decimals)
    updated = np.asarray(feeds.updated_at, dtype=np.int64)
    st = assess_staleness(kinds, np.where(has & (updated > 0), updated, now), feeds.heartbeat_s, now, policy, calendar)

    incomplete = np.zeros(len(feeds), dtype=bool)
    for f in np.flatnonzero(has):  # uint80 round ids are Python ints: compare them exactly
        incomplete[f] = int(updated[f]) == 0 or int(feeds.answered_in_round[f]) < int(feeds.round_id[f])
    codes = (
        _bit(~has, Eligibility.ORACLE_MISSING)
        | _bit(has & (answer <= 0), Eligibility.ORACLE_NON_POSITIVE)
        | _bit(has & incomplete, Eligibility.ORACLE_INCOMPLETE)
        | _bit(has & (st.cut_off | (updated <= 0)), Eligibility.ORACLE_STALE)
    )

    # Volatility on corporate-action adjusted prices, each leg on its own grid (volatility.py).
    vol = policy.volatility
    adjuster = feed_adjuster(snapshot.tokens, len(feeds), adjusted_tokens(snapshot.tokens, snapshot.actions))
    factors = history_factors(snapshot.history, adjuster, snapshot.actions)
    fs = feed_sigma(snapshot.history, feeds.decimals, kinds, factors, now,
                    calendar.closes_up_to(now, vol.lookback_days + 1), bool(calendar.is_open(now)), vol)
    est, grid, sigma = fs.session, fs.grid, fs.sigma
    sigma_raw, sigma_last, n_returns = fs.sigma_raw, fs.sigma_last, fs.n_returns
    stale = has & st.stale & ~st.cut_off
    h_stale = np.where(stale, sigma_haircut(vol.z, sigma, st.age_days), 0.0)

    window_start = int(grid[0]) if len(grid) else now
    in_window = np.zeros(len(feeds), dtype=np.int64)
    acts = snapshot.actions
    for f in np.flatnonzero(adjuster >= 0):
        t = int(adjuster[f])
        eff = acts.effective_at[acts.offsets[t]:acts.offsets[t + 1]]
        in_window[f] = int(((eff > window_start) & (eff <= now)).sum())
    flagged = snapshot.history.flagged
    risk = FeedRisk(
        price=np.where(has & (answer > 0), answer, 0.0),
        codes=codes.astype(np.uint32),
        round_id=np.where(has, feeds.round_id, None),
        age_s=np.where(has, now - updated, -1).astype(np.int64),
        heartbeat_s=st.heartbeat_s,
        sigma_raw=sigma_raw,
        sigma=sigma,
        sigma_last=sigma_last,
        n_returns=n_returns,
        updated_at=np.where(has, updated, 0).astype(np.int64),
        clock_age_s=np.where(has, st.age_s, -1).astype(np.int64),
        limit_s=st.limit_s,
        cutoff_s=st.cutoff_s,
        stale=stale,
        h_stale=h_stale,
        flagged_rounds=np.zeros(len(feeds), dtype=np.int64) if flagged is None else np.asarray(flagged, np.int64),
        adjusted_by=adjuster,
        history_actions=in_window,
    )
    return risk, est, grid


def _action_moves(snapshot: Snapshot, feeds: FeedRisk, adjusted: np.ndarray, factor_round: np.ndarray,
                  round_time: np.ndarray, now: int, cal: TradingCalendar
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per token, across its latest action in force (adjusted prices, docs/risk.md section 3): the log move
    from the last round before the action to the first round after it (``cross``) and to the round used
    (``move``), and the trading days each spans (calendar days for 24/7 feeds). NaN / 0 where there is no
    action, no round on both sides, or no price."""
    n_t = len(snapshot.tokens)
    cross, move = np.full(n_t, np.nan), np.full(n_t, np.nan)
    cross_days, days = np.zeros(n_t), np.zeros(n_t)
    acts, hist = snapshot.actions, snapshot.history
    if acts is None:
        return cross, cross_days, move, days
    kinds = np.asarray(snapshot.feeds.kind, dtype=np.int8)
    ratios = acts.ratios()
    for t in np.flatnonzero(adjusted):
        f = int(snapshot.tokens.feed_idx[t])
        lo, hi = int(acts.offsets[t]), int(acts.offsets[t + 1])
        eff = acts.effective_at[lo:hi]
        eff = eff[eff <= now]
        used_at = int(round_time[t])
        if f >= 0 and feeds.price[f] > 0 and len(eff) and used_at >= int(eff[-1]):
            e = int(eff[-1])
            rows = slice(int(hist.offsets[f]), int(hist.offsets[f + 1]))
            times, answers = hist.updated_at[rows], hist.answer_raw[rows]
            k = int(np.searchsorted(times, e, side="left"))
            if k == 0:
                continue
            dec = np.array([snapshot.feeds.decimals[f]])
            before = to_float_units(answers[k - 1:k], dec)[0]
            if before <= 0:
                continue
            before *= factor_at(acts, int(t), np.array([times[k - 1]]), ratios)[0]
            now_adj = feeds.price[f] * factor_round[t]
            first_t, first_adj = used_at, now_adj
            if k < len(times) and int(times[k]) < used_at:
                a = to_float_units(answers[k:k + 1], dec)[0]
                first_t, first_adj = int(times[k]), a * factor_at(acts, int(t), np.array([times[k]]), ratios)[0]
            if first_adj <= 0:
                continue
            stock = kinds[f] == _STOCK

            def span(a: int, b: int, stock: bool = stock) -> float:
                return float(cal.trading_seconds_between(a, b)) / SESSION_S if stock else (b - a) / 86_400

            cross[t], cross_days[t] = float(np.log(first_adj / before)), span(int(times[k - 1]), first_t)
            move[t], days[t] = float(np.log(now_adj / before)), span(int(times[k - 1]), used_at)
    return cross, cross_days, move, days


def _in_value(units: np.ndarray, usd: np.ndarray | None, nav: np.ndarray) -> np.ndarray:
    """A measure in token units, or, where its USD figure is given and the token has a NAV, that figure over the
    NAV per token: what the market absorbs is value, so a corporate action the pools have not priced yet (a
    split before the arbitrage reaches the pool) scales it with the balances (section 15)."""
    units = np.asarray(units, dtype=np.float64)
    if usd is None:
        return units
    usd = np.asarray(usd, dtype=np.float64)
    ok = np.isfinite(usd) & (nav > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, usd / np.where(ok, nav, 1.0), units)


def assess_liquidity(liq: Liquidity, policy: Policy, value_factor: np.ndarray, sigma: np.ndarray, now: int,
                     depth_factor: float = 1.0) -> dict[str, np.ndarray]:
    """Per token, from the DEX measures (docs/risk.md section 15): which source the liquidity term takes,
    the absorbed quantity ``A = participation * H * ADV + depth_factor * depth`` and the coefficient
    ``Y sigma sqrt(H) / sqrt(A)`` of the square-root term, and the price against NAV (the value factor used:
    the lower of pool price and NAV where they are further apart than the tolerance)."""
    lp, horizon = policy.liquidity, policy.volatility.horizon_days
    measured = np.asarray(liq.measured, dtype=bool)
    use = measured & np.asarray(liq.fresh, dtype=bool)
    if liq.updated_at is not None:
        age = now - np.asarray(liq.updated_at, dtype=np.int64)
        use &= (age >= 0) & (age <= lp.max_age_s)
    source = np.where(use, np.int8(LiquiditySource.MEASURED),
                      np.where(measured, np.int8(LiquiditySource.STALE), np.int8(LiquiditySource.CONFIGURED)))
    nan = np.full(len(use), np.nan)
    week, day = _in_value(liq.volume_7d, liq.volume_7d_usd, value_factor), _in_value(liq.volume_24h,
                                                                                      liq.volume_24h_usd, value_factor)
    adv = week / 7.0
    if lp.volume_basis == "lower":
        adv = np.minimum(adv, day)
    depth = {100: _in_value(liq.depth_1pct, liq.depth_1pct_usd, value_factor),
             200: _in_value(liq.depth_2pct, liq.depth_2pct_usd, value_factor),
             500: _in_value(liq.depth_5pct, liq.depth_5pct_usd, value_factor)}[lp.depth_move_bp]
    adv, depth = np.where(use, adv, nan), np.where(use, depth, nan)
    absorbed = lp.participation * horizon * adv + depth_factor * depth
    scale = lp.impact_y * np.asarray(sigma, dtype=np.float64) * np.sqrt(horizon)
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.where(absorbed > 0, scale / np.sqrt(np.where(absorbed > 0, absorbed, 1.0)),
                        np.where(scale > 0, np.inf, 0.0))
    coef = np.where(use, coef, 0.0)
    # the price against NAV: a premium never raises value, a discount beyond the tolerance lowers it
    pool = np.where(use, np.asarray(liq.pool_price_usd, dtype=np.float64), nan)
    judged = use & ~np.isnan(pool) & (value_factor > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        premium = np.where(judged, 1e4 * (pool / np.where(judged, value_factor, 1.0) - 1.0), np.nan)
    deviates = judged & (np.abs(np.nan_to_num(premium)) > lp.nav_tolerance_bp)
    measured_premium = (nan.copy() if liq.premium_bp is None else
                        np.where(use, np.asarray(liq.premium_bp, dtype=np.float64), np.nan))
    return dict(
        liquidity_source=source.astype(np.int8),
        nav=value_factor,
        value_factor=np.where(deviates, np.minimum(pool, value_factor), value_factor),
        pool_price_usd=pool,
        nav_premium_bp=premium,
        measured_premium_bp=measured_premium,
        value_flags=np.where(deviates, np.uint32(ValuationFlag.NAV_DEVIATION), np.uint32(0)).astype(np.uint32),
        adv_units=adv,
        depth_units=depth,
        liquidity_units=absorbed,
        liquidity_coef=coef,
    )


def assess_tokens(
    snapshot: Snapshot, policy: Policy, feeds: FeedRisk, state: MarketState, gap_days: int,
    calendar: TradingCalendar | None = None,
) -> TokenRisk:
    """Per-token valuation factors, token-level eligibility codes and haircut components."""
    cal = calendar if calendar is not None else xnys()
    tokens = snapshot.tokens
    now = int(snapshot.block_timestamp)
    n_t = len(tokens)
    symbols = [str(s) for s in tokens.symbol]
    listed = [policy.tokens.get(s) for s in symbols]
    vol, z = policy.volatility, policy.volatility.z

    feed_idx = np.asarray(tokens.feed_idx, dtype=np.int64)
    has_feed = feed_idx >= 0
    f = np.where(has_feed, feed_idx, 0)
    n_f = len(feeds.price)
    kinds = np.asarray(snapshot.feeds.kind, dtype=np.int8)
    stock = has_feed & (kinds[f] == _STOCK) if n_f else np.zeros(n_t, dtype=bool)
    # the round's time (now where there is none: nothing to carry across actions or the open)
    round_time = np.full(n_t, now, dtype=np.int64)
    if n_f and feeds.updated_at is not None:
        known = has_feed & (feeds.updated_at[f] > 0)
        round_time = np.where(known, feeds.updated_at[f], now)

    # Valuation (section 2): shares per token unit, and USD per token unit, each price carried from the
    # share units of its own time to B's by the token's corporate actions (actions.py).
    decimals = np.asarray(tokens.decimals, dtype=np.int64)
    multiplier = to_float_units(tokens.multiplier_raw, 18)
    rebasing = np.asarray(tokens.accounting, dtype=np.int8) == Accounting.REBASING_SHARES.code
    share_factor = np.where(rebasing, 1.0, multiplier)
    price = np.where(has_feed, feeds.price[f], 0.0) if n_f else np.zeros(n_t)
    per_token = np.asarray(tokens.quote, dtype=np.int8) == PriceQuote.PER_TOKEN.code
    adjusted = adjusted_tokens(tokens, snapshot.actions)
    action_factor, factor_round = np.ones(n_t), np.ones(n_t)
    ratios = snapshot.actions.ratios() if adjusted.any() else None
    for t in np.flatnonzero(adjusted):
        a_round, a_now = factor_at(snapshot.actions, int(t), np.array([round_time[t], now]), ratios)
        factor_round[t] = a_round
        action_factor[t] = a_round / a_now
    predates = adjusted & (action_factor != 1.0)
    # a per_token feed prices the token itself; applying the multiplier again would count it twice
    value_factor = price * np.where(per_token, 1.0, share_factor) * action_factor

    # Reserves (section 3): custodian shares against the shares the supply represents.
    supply_units = to_float_units(tokens.total_supply_raw, decimals)
    supply_shares = supply_units * share_factor
    has_reserve = np.asarray(tokens.has_reserve, dtype=bool)
    reserves = to_float_units(np.where(has_reserve, tokens.reserve_raw, 0), tokens.reserve_decimals)
    reserve_shares = np.where(has_reserve, reserves, np.nan)
    shortfall = has_reserve & (reserve_shares < supply_shares * (1.0 - policy.reserves.tolerance))
    reserve_time = tokens.reserve_updated_at
    reserve_stale = has_reserve & (np.zeros(n_t, dtype=bool) if reserve_time is None else
                                   (now - np.asarray(reserve_time, dtype=np.int64) > policy.reserves.max_age_s))

    sigma = (
        np.where(has_feed, feeds.sigma[f], vol.sigma_without_history)
        if n_f
        else np.full(n_t, vol.sigma_without_history)
    )
    # The cross-checks (section 3): the feed against the multiplier across the latest action, and the
    # proof of reserve against the shares the supply represents.
    cross, cross_days, move, days = _action_moves(snapshot, feeds, adjusted, factor_round, round_time, now, cal)
    vp = policy.valuation
    # the allowance for a real market move uses the policy's sigma floor for the feed's kind: the
    # estimated sigma would include the very jump under test
    floor = np.array([vol.floor[FeedKind.from_code(int(kinds[fi])).policy_key] if ok else 0.0
                      for fi, ok in zip(f.tolist(), has_feed.tolist(), strict=True)]) if n_f else np.zeros(n_t)

    def allowed(span_days: np.ndarray) -> np.ndarray:
        return vp.action_move_tolerance + z * floor * np.sqrt(span_days)

    # both the move across the action and the move to the price used: a feed that lagged the action and
    # has caught up since is consistent again
    moved_too_far = (~np.isnan(move) & (np.abs(np.nan_to_num(cross)) > allowed(cross_days))
                     & (np.abs(np.nan_to_num(move)) > allowed(days)))
    reserve_excess = has_reserve & (reserve_shares > supply_shares * (1.0 + vp.reserve_excess))
    inconsistent = moved_too_far | reserve_excess

    feed_codes = np.where(has_feed, feeds.codes[f], np.uint32(Eligibility.ORACLE_MISSING)) if n_f else None
    codes = (
        _bit(
            ~np.array([policy.token_eligible(s) for s in symbols], dtype=bool), Eligibility.TOKEN_NOT_ELIGIBLE
        )
        | _bit(np.asarray(tokens.paused, dtype=bool), Eligibility.TOKEN_PAUSED)
        | (feed_codes if feed_codes is not None else np.full(n_t, np.uint32(Eligibility.ORACLE_MISSING)))
        | _bit(shortfall, Eligibility.RESERVE_SHORTFALL)
        | _bit(reserve_stale, Eligibility.RESERVE_STALE)
        | _bit(inconsistent, Eligibility.VALUATION_INCONSISTENT)
        | _bit(predates & (vp.price_before_action == "ineligible"), Eligibility.PRICE_BEFORE_ACTION)
    ).astype(np.uint32)

    # Haircut components that depend on the token only (section 4).
    h_vol = sigma_haircut(z, sigma, vol.horizon_days) if vol.enabled else np.zeros(n_t)
    # h_gap: while the market is shut, the business days to the next open; once it has opened, the days of
    # the closure that just ended, for as long as the price is still from before the open (section 4).
    if state == MarketState.OPEN and n_f:
        opened = int(cal.current_session_open(now))
        token_gap = np.where(stock & (round_time < opened), int(cal.closure_days_before(now)), 0)
    else:
        token_gap = np.where(stock, gap_days, 0)
    if policy.gap.enabled:
        h_gap = np.where(token_gap > 0, np.minimum(policy.gap.cap, sigma_haircut(z, sigma, token_gap)), 0.0)
    else:
        h_gap = np.zeros(n_t)
    h_stale = np.where(has_feed, feeds.h_stale[f], 0.0) if n_f and feeds.h_stale is not None else np.zeros(n_t)
    vault_rate, vault_jump = np.full(n_t, np.nan), np.full(n_t, np.nan)
    if tokens.vault_asset_idx is not None:  # a vault's NAV from its asset's (section 16)
        value_factor, codes, vault_rate, vault_jump = _vaults(tokens, policy, value_factor, codes, now)
    liquidity = ({} if snapshot.liquidity is None or not policy.liquidity.enabled else
                 assess_liquidity(snapshot.liquidity, policy, value_factor, sigma, now))
    if "value_factor" in liquidity and tokens.vault_asset_idx is not None:
        # a share redeems for its rate in asset units: never worth more than they are at the asset's own value
        after = liquidity["value_factor"]
        v = np.flatnonzero(np.asarray(tokens.vault_asset_idx) >= 0)
        after[v] = np.minimum(after[v], after[tokens.vault_asset_idx[v]] * np.nan_to_num(vault_rate[v]))
    value_factor = liquidity.pop("value_factor", value_factor)

    return TokenRisk(
        **liquidity,
        codes=codes,
        feed_idx=feed_idx,
        price=price,
        share_factor=share_factor,
        value_factor=value_factor,
        h_base=np.array([policy.token_base_haircut(s) for s in symbols], dtype=np.float64),
        h_vol=h_vol,
        h_gap=h_gap,
        sigma=sigma,
        daily_liquidity_usd=np.array(
            [
                np.nan if tp is None or tp.daily_liquidity_usd is None else tp.daily_liquidity_usd
                for tp in listed
            ]
        ),
        wallet_share_cap=np.array([policy.token_wallet_share_cap(s) for s in symbols], dtype=np.float64),
        wallet_cap_usd=np.array(
            [np.inf if tp is None or tp.wallet_cap_usd is None else tp.wallet_cap_usd for tp in listed]
        ),
        supply_units=supply_units,
        supply_shares=supply_shares,
        reserve_shares=reserve_shares,
        round_id=np.where(has_feed, feeds.round_id[f], None) if n_f else np.full(n_t, None, dtype=object),
        round_age_s=np.where(has_feed, feeds.age_s[f], -1).astype(np.int64)
        if n_f
        else np.full(n_t, -1, dtype=np.int64),
        market_state=np.where(has_feed & ~stock, np.int8(MarketState.CONTINUOUS), np.int8(state)).astype(
            np.int8
        ),
        pledged_units=np.zeros(n_t),
        platform_factor=np.ones(n_t),
        h_stale=h_stale,
        action_factor=action_factor,
        predates_action=predates,
        action_move=move,
        action_cross=cross,
        gap_days=token_gap.astype(np.int64),
        vault_rate=vault_rate,
        vault_jump=vault_jump,
    )


def _vaults(tokens: Tokens, policy: Policy, value_factor: np.ndarray, codes: np.ndarray, now: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ERC-4626 vaults (section 16): a share is worth its rate in asset units at the asset's value per unit
    (after the asset's NAV rule), carries every code of its asset, VAULT_RATE_JUMP when its rate jumped beyond
    the policy's bound in the window, VAULT_RATE_MISSING with no rate at B. (value_factor, codes, rate in
    asset units per share, largest move in the window: 0 when none moved), NaN for tokens that are not vaults."""
    n_t = len(tokens)
    asset = np.asarray(tokens.vault_asset_idx, dtype=np.int64)
    v = np.flatnonzero(asset >= 0)
    a = asset[v]
    rate, jump = np.full(n_t, np.nan), np.full(n_t, np.nan)
    rate[v] = to_float_units(np.asarray(tokens.vault_rate_raw, dtype=object)[v],
                             np.asarray(tokens.decimals, dtype=np.int64)[a])
    vp = policy.vaults
    off, at, move = tokens.vault_move_offsets, tokens.vault_move_at, tokens.vault_move
    for t in v.tolist():
        window = slice(int(off[t]), int(off[t + 1]))  # type: ignore[index]
        recent = (at[window] > now - vp.window_s) & (at[window] <= now)  # type: ignore[index]
        jump[t] = float(move[window][recent].max()) if recent.any() else 0.0  # type: ignore[index]
    missing = ~(rate[v] > 0)
    value_factor, codes = value_factor.copy(), codes.copy()
    value_factor[v] = np.where(missing, 0.0, value_factor[a] * np.nan_to_num(rate[v]))
    codes[v] |= (codes[a] | _bit(np.nan_to_num(jump[v]) > vp.max_rate_jump, Eligibility.VAULT_RATE_JUMP)
                 | _bit(missing, Eligibility.VAULT_RATE_MISSING)).astype(np.uint32)
    return value_factor, codes, rate, jump


def _as_str(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    return arr if arr.dtype.kind == "U" else arr.astype(str)


def assess_accounts(snapshot: Snapshot, policy: Policy) -> np.ndarray:
    """Wallet-level eligibility codes from the off-chain account records (section 3)."""
    acc, ap = snapshot.accounts, policy.accounts
    has = np.asarray(acc.has_account, dtype=bool)
    codes = _bit(np.asarray(acc.sanctioned, dtype=bool), Eligibility.WALLET_SANCTIONED)
    if ap.require_account:
        codes |= _bit(~has, Eligibility.ACCOUNT_UNKNOWN)
    juris = _as_str(acc.jurisdiction)
    bad = np.zeros(len(has), dtype=bool)
    if "*" not in ap.allowed_jurisdictions:
        bad |= ~np.isin(juris, ap.allowed_jurisdictions)
    if ap.blocked_jurisdictions:
        bad |= np.isin(juris, ap.blocked_jurisdictions)
    codes |= _bit(has & bad, Eligibility.ACCOUNT_JURISDICTION)
    if "*" not in ap.allowed_tiers:
        codes |= _bit(has & ~np.isin(_as_str(acc.tier), ap.allowed_tiers), Eligibility.ACCOUNT_TIER)
    if ap.require_kyc:
        codes |= _bit(has & ~np.asarray(acc.kyc_approved, dtype=bool), Eligibility.ACCOUNT_KYC)
    return codes.astype(np.uint32)


def value_holdings(
    snapshot: Snapshot, policy: Policy, tokens: TokenRisk, wallet_codes: np.ndarray
) -> tuple[HoldingRisk, TokenRisk]:
    """Market value, eligibility, haircuts and concentration per holding (sections 2-4)."""
    hold, n_w, n_t = snapshot.holdings, snapshot.n_wallets, len(tokens.codes)
    wi = np.asarray(hold.wallet_idx, dtype=np.int64)
    ti = np.asarray(hold.token_idx, dtype=np.int64)
    units = hold.balance_units(snapshot.tokens.decimals)  # the int -> float boundary (either form)
    market_value = units * tokens.value_factor[ti]

    codes = tokens.codes[ti]
    codes |= wallet_codes[wi]
    frozen = np.asarray(hold.frozen, dtype=bool)
    np.bitwise_or(codes, np.uint32(Eligibility.WALLET_FROZEN), out=codes, where=frozen)
    below = market_value < policy.eligibility.min_value_usd
    np.bitwise_or(codes, np.uint32(Eligibility.BELOW_MINIMUM), out=codes, where=below)
    eligible = codes == 0

    lp = policy.liquidity
    coef = tokens.liquidity_coef  # per token, fresh DEX measures only (section 15); None: no liquidity table
    measured = coef is not None and bool((coef != 0).any())
    daily = tokens.daily_liquidity_usd
    if coef is not None and tokens.liquidity_source is not None:
        # a measured token's square-root term replaces the configured one
        daily = np.where(tokens.liquidity_source == LiquiditySource.MEASURED, np.nan, daily)
    h_size, h_liq, h_size_before = size_haircut(
        market_value,
        units,
        ti,
        daily,
        tokens.supply_units,
        policy.size,
        value_factor=tokens.value_factor,
        measured_coef=coef if measured else None,
        measured_cap=lp.impact_cap,
        terms=True,
    )
    h_token = tokens.h_base + tokens.h_vol + tokens.h_gap  # the holder-independent part
    if tokens.h_stale is not None:
        h_token = h_token + tokens.h_stale
    haircut = h_token[ti]
    haircut += h_size
    np.minimum(haircut, 1.0, out=haircut)
    before_caps = np.subtract(1.0, haircut)
    before_caps *= market_value
    np.copyto(before_caps, 0.0, where=~eligible)

    # Platform-wide cap: pledged units of a token above cap x supply scale every holder pro rata.
    pledged = np.bincount(ti, weights=units * eligible, minlength=n_t)
    limit = policy.concentration.platform_supply_share_cap * tokens.supply_units
    factor = np.where(pledged > limit, limit / np.where(pledged > 0, pledged, 1.0), 1.0)
    liquidity_factor = cost = None
    if measured and lp.platform_cost and h_size_before is not None:
        liquidity_factor, cost = _platform_liquidation(
            coef, pledged, lp.impact_cap, ti, eligible, market_value, before_caps,
            np.minimum(h_token[ti] + h_size_before, 1.0), n_t)
        cap_factor, factor = factor, np.minimum(factor, liquidity_factor)
    after_platform = before_caps * factor[ti] if (factor < 1.0).any() else before_caps
    # Per-wallet caps: share of the wallet's eligible collateral, and USD per token.
    collateral = wallet_concentration(
        after_platform, wi, ti, n_w, tokens.wallet_share_cap, tokens.wallet_cap_usd
    )

    if liquidity_factor is None:
        tokens = replace(tokens, pledged_units=pledged, platform_factor=factor)
    else:
        tokens = replace(tokens, pledged_units=pledged, platform_factor=factor, platform_cap_factor=cap_factor,
                         platform_liquidity_factor=liquidity_factor, platform_cost=cost)
    holdings = HoldingRisk(
        wallet_idx=wi,
        token_idx=ti,
        balance=units,
        market_value=market_value,
        codes=codes,
        eligible=eligible,
        h_size=h_size,
        haircut=haircut,
        collateral_before_caps=before_caps,
        collateral_value=collateral,
        token_table=tokens,
        h_liquidity=h_liq,
    )
    return holdings, tokens


def _platform_liquidation(coef: np.ndarray, pledged: np.ndarray, cap: float, ti: np.ndarray, eligible: np.ndarray,
                          market_value: np.ndarray, before_caps: np.ndarray, haircut_without: np.ndarray, n_t: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The platform liquidation cost per token and the factor it sets (docs/risk.md section 15).

    ``c = min(cap, coef * sqrt(pledged))``: the square-root impact of selling every pledged unit within the
    horizon. A full liquidation realises at most ``G = sum mv (1 - h0 - c)`` over the eligible holdings,
    ``h0`` each holding's haircut without its own liquidity term; the token counts ``C = sum c0`` before the
    cut, so the factor is ``clip(G / C, 0, 1)``. The cut ``C - G = c V - sum mv (h - h0)`` is the joint cost
    less what the holdings' own terms already charged (never negative: each own term is at most ``c``)."""
    with np.errstate(invalid="ignore"):
        cost = coef * np.sqrt(pledged)  # inf * 0: nothing pledged, no cost
    cost = np.where(np.isnan(cost), 0.0, np.minimum(cost, cap))
    sel = eligible & (coef != 0)[ti]
    t, mv = ti[sel], market_value[sel]
    value = np.bincount(t, weights=mv, minlength=n_t)
    realised = np.bincount(t, weights=mv * (1.0 - haircut_without[sel]), minlength=n_t) - cost * value
    counted = np.bincount(ti, weights=before_caps, minlength=n_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where((coef != 0) & (counted > 0),
                          np.clip(realised / np.where(counted > 0, counted, 1.0), 0.0, 1.0), 1.0)
    return factor, cost


def margin_positions(snapshot: Snapshot, policy: Policy, feeds: FeedRisk) -> PositionRisk:
    """Notional, IM, MM and unrealized PnL per position (section 6), with the mark's quality.

    A mark is usable when its feed has a positive answer within the hard cut-off. A stale mark (past the
    limit) is moved against the position by its feed's stale add-on, an incomplete one by the volatility
    add-on ``z sigma sqrt(H)``: a long is marked lower, a short higher, and the notional (hence IM and MM)
    is taken at the higher price. With no usable mark, the position keeps its entry price for IM and no
    uPnL, and its wallet is ``unpriced``."""
    pos, mp = snapshot.positions, policy.margin
    pf = np.asarray(pos.feed_idx, dtype=np.int64)
    size = np.asarray(pos.size, dtype=np.float64)
    entry = np.asarray(pos.entry_price, dtype=np.float64)
    n = len(pf)
    feed_price = feeds.price[pf] if n else np.zeros(0)
    codes = feeds.codes[pf] if n else np.zeros(0, dtype=np.uint32)
    hard = np.uint32(Eligibility.ORACLE_MISSING | Eligibility.ORACLE_NON_POSITIVE | Eligibility.ORACLE_STALE)
    usable = (feed_price > 0) & ((codes & hard) == 0)
    stale = feeds.stale[pf] if n and feeds.stale is not None else np.zeros(n, dtype=bool)
    adverse = feeds.h_stale[pf].copy() if n and feeds.h_stale is not None else np.zeros(n)
    incomplete = (codes & np.uint32(Eligibility.ORACLE_INCOMPLETE)) != 0
    vol = policy.volatility
    adverse += np.where(incomplete, vol.z * feeds.sigma[pf] * np.sqrt(vol.horizon_days) if n else 0.0, 0.0)
    adverse = np.where(usable, np.minimum(adverse, 0.99), 0.0)
    mark = np.where(usable, feed_price * (1.0 - np.sign(size) * adverse), entry)
    notional = np.abs(size) * np.where(usable, feed_price * (1.0 + adverse), entry)
    if mp.im_mode == "leverage":
        im = notional / np.minimum(np.asarray(pos.leverage, dtype=np.float64), mp.max_leverage)
        mm = notional * mp.mm_rate
    else:
        bounds = np.array([t.up_to_notional_usd for t in mp.tiers[:-1]], dtype=np.float64)
        tier = np.searchsorted(bounds, notional, side="left")
        im = notional * np.array([t.im_rate for t in mp.tiers])[tier]
        mm = notional * np.array([t.mm_rate for t in mp.tiers])[tier]
    return PositionRisk(
        wallet_idx=np.asarray(pos.wallet_idx, dtype=np.int64),
        feed_idx=pf,
        mark=mark,
        mark_ok=(codes == 0) & ~stale,
        notional=notional,
        im=im,
        mm=mm,
        upnl=np.where(usable, size * (mark - entry), 0.0),
        mark_usable=usable,
        mark_price=feed_price,
        mark_adverse=adverse,
        mark_codes=codes.astype(np.uint32),
        mark_stale=stale,
        mark_round_id=feeds.round_id[pf] if n else np.zeros(0, dtype=object),
        mark_age_s=feeds.age_s[pf] if n else np.zeros(0, dtype=np.int64),
    )


def equity_side_feeds(snapshot: Snapshot, policy: Policy) -> np.ndarray:
    """Stock feeds that price a token of a policy equity class: the equity side of the floor."""
    kinds = np.asarray(snapshot.feeds.kind, dtype=np.int8)
    side = np.zeros(len(kinds), dtype=bool)
    for sym, f in zip(snapshot.tokens.symbol, snapshot.tokens.feed_idx, strict=True):
        tp = policy.tokens.get(str(sym))
        if f >= 0 and tp is not None and tp.asset_class in policy.stress.equity_classes:
            side[f] |= kinds[f] == _STOCK
    return side


def _worst_scenario(pnl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, loss) of the largest scenario loss ``-pnl`` per row: the first one on ties, a later
    one only when strictly larger (as the reference's loop).

    A loop over the few scenario columns (one comparison each; fastest when ``pnl`` is column-major,
    as :func:`instrument_losses` returns it) instead of ``argmax`` and ``max`` over short rows.
    """
    n_w, n_k = pnl.shape
    worst = np.zeros(n_w, dtype=np.int16)
    if n_k == 0:
        return worst, np.full(n_w, -np.inf)
    worst_loss = np.negative(pnl[:, 0])
    loss = np.empty(n_w)
    for k in range(1, n_k):
        np.negative(pnl[:, k], out=loss)
        worse = loss > worst_loss
        np.copyto(worst, np.int16(k), where=worse)
        np.copyto(worst_loss, loss, where=worse)
    return worst, worst_loss


def run_risk(snapshot: Snapshot, policy: Policy, *, calendar: TradingCalendar | None = None) -> RiskRun:
    """Value, check, haircut, cap, margin and stress every holding and wallet of the snapshot."""
    cal = calendar if calendar is not None else xnys()
    now = int(snapshot.block_timestamp)
    n_t, n_f, n_w = len(snapshot.tokens), len(snapshot.feeds), snapshot.n_wallets
    z, horizon = policy.volatility.z, policy.volatility.horizon_days

    state = MarketState(int(cal.market_state(now)))
    gap_days = int(cal.trading_days_until_next_open(now))
    feeds, est, closes = assess_feeds(snapshot, policy, cal)
    tokens = assess_tokens(snapshot, policy, feeds, state, gap_days, cal)
    wallet_codes = assess_accounts(snapshot, policy)
    holdings, tokens = value_holdings(snapshot, policy, tokens, wallet_codes)
    positions = margin_positions(snapshot, policy, feeds)

    # Wallet margin (section 6)
    wi, ti, pw, pf = holdings.wallet_idx, holdings.token_idx, positions.wallet_idx, positions.feed_idx
    collateral = np.bincount(wi, weights=holdings.collateral_value, minlength=n_w)
    im = np.bincount(pw, weights=positions.im, minlength=n_w)
    mm = np.bincount(pw, weights=positions.mm, minlength=n_w)
    upnl = np.bincount(pw, weights=positions.upnl, minlength=n_w)
    cash = np.asarray(snapshot.accounts.cash_usd, dtype=np.float64)
    equity = collateral + upnl + cash
    status = _status(equity, im, mm)
    # An oracle stall alone never liquidates (section 5): where stale add-ons make the status worse than
    # fresh prices would, it goes no further than a margin call, and the wallet says a stale input drove it.
    stale_driven = np.zeros(n_w, dtype=bool)
    if (feeds.h_stale > 0).any():
        fresh_feeds = replace(feeds, h_stale=np.zeros(n_f), stale=np.zeros(n_f, dtype=bool))
        fresh_tokens = replace(tokens, h_stale=np.zeros(n_t))
        fresh_holdings, _ = value_holdings(snapshot, policy, fresh_tokens, wallet_codes)
        fresh_positions = margin_positions(snapshot, policy, fresh_feeds)
        fresh = _status(
            np.bincount(wi, weights=fresh_holdings.collateral_value, minlength=n_w)
            + np.bincount(pw, weights=fresh_positions.upnl, minlength=n_w) + cash,
            np.bincount(pw, weights=fresh_positions.im, minlength=n_w),
            np.bincount(pw, weights=fresh_positions.mm, minlength=n_w))
        capped = np.maximum(fresh, np.minimum(status, np.int8(MarginStatus.MARGIN_CALL))).astype(np.int8)
        stale_driven = capped > fresh
        status = capped
    unpriced = np.bincount(pw, weights=~positions.mark_usable, minlength=n_w).astype(np.int64)
    status = np.where(unpriced > 0, np.int8(MarginStatus.UNPRICED), status).astype(np.int8)

    # Joint stress (section 7), in instrument space: one column per token and one per feed that a
    # position is on. A wallet's feed exposure is x = B'z, B mapping each instrument to its feed (a
    # token to its price feed, or nowhere; a position column to its feed), so x'Sx = z'(B S B')z and
    # the scenario P&L is z . shocks. One bincount builds Z (wallets x instruments); the products
    # Z (B S B') and Z shocks give both: no dense wallets x feeds matrix, no token -> feed product.
    sp = policy.stress
    stress = stressed_covariance(
        est.corr,
        feeds.sigma,
        equity_side_feeds(snapshot, policy),
        snapshot.feeds.kind,
        sp.vol_multiplier,
        sp.equity_crypto_corr_floor,
        sp.two_sided,
    )
    names = tuple(sc.name for sc in sp.scenarios)
    pos_feeds = np.flatnonzero(np.bincount(pf, minlength=n_f))  # feeds that carry a position
    n_z = n_t + len(pos_feeds)
    column_of_feed = np.zeros(n_f, dtype=np.int64)
    column_of_feed[pos_feeds] = np.arange(n_t, n_z)
    shocks = np.array(
        [[policy.scenario_token_shock(sc, str(s)) for sc in sp.scenarios] for s in snapshot.tokens.symbol]
        + [
            [policy.scenario_crypto_shock(sc, str(snapshot.feeds.name[f])) for sc in sp.scenarios]
            for f in pos_feeds
        ]
    ).reshape(n_z, len(names))
    signed_notional = np.asarray(snapshot.positions.size, dtype=np.float64) * positions.mark
    exposure = np.bincount(
        np.concatenate([wi * n_z + ti, pw * n_z + column_of_feed[pf]]),
        weights=np.concatenate([holdings.collateral_value, signed_notional]),
        minlength=n_w * n_z,
    ).reshape(n_w, n_z)
    l_joint, l_indep, pnl, regime = instrument_losses(
        exposure, np.concatenate([tokens.feed_idx, pos_feeds]), stress, z, horizon, shocks
    )
    # DEX depth withdrawn in risk-off stresses (section 15): the collateral lost when the measured depth
    # shrinks by stress.depth_factor, the whole valuation run again, is added to those stresses' losses.
    liq_loss = np.zeros(n_w)
    parametric_loss = l_joint
    risk_off = np.array([sc.risk_off for sc in sp.scenarios], dtype=bool)
    coef = tokens.liquidity_coef
    if (coef is not None and (coef != 0).any() and sp.depth_factor < 1.0
            and (sp.parametric_risk_off or risk_off.any()) and snapshot.liquidity is not None):
        stressed = assess_liquidity(snapshot.liquidity, policy, tokens.nav, tokens.sigma, now, sp.depth_factor)
        stressed_holdings, _ = value_holdings(
            snapshot, policy, replace(tokens, liquidity_coef=stressed["liquidity_coef"]), wallet_codes)
        liq_loss = np.maximum(
            0.0, collateral - np.bincount(wi, weights=stressed_holdings.collateral_value, minlength=n_w))
        for k in np.flatnonzero(risk_off):
            pnl[:, k] -= liq_loss
        if sp.parametric_risk_off:
            parametric_loss = l_joint + liq_loss
    worst, worst_loss = _worst_scenario(pnl)
    binding = np.where(parametric_loss >= worst_loss, 0, worst + 1).astype(np.int16)

    return RiskRun(
        block_number=int(snapshot.block_number),
        timestamp=now,
        policy_version=policy.version_string,
        policy_hash=policy.content_hash,
        market_state=state,
        early_close_day=bool(cal.early_close_day(now)),
        seconds_to_next_open=int(cal.seconds_to_next_open(now)),
        trading_days_until_next_open=gap_days,
        z=z,
        scenario_names=names,
        stress_names=(PARAMETRIC, *names),
        closes=closes,
        feeds=feeds,
        tokens=tokens,
        holdings=holdings,
        positions=positions,
        wallets=WalletRisk(
            market_value=np.bincount(wi, weights=holdings.market_value, minlength=n_w),
            collateral=collateral,
            im=im,
            mm=mm,
            upnl=upnl,
            cash=cash,
            equity=equity,
            excess=equity - im,
            status=status,
            l_joint=l_joint,
            l_indep=l_indep,
            wrong_way=np.maximum(0.0, l_joint - l_indep),
            worst_scenario=worst,
            worst_scenario_loss=worst_loss,
            stressed_excess=equity - im - np.maximum(parametric_loss, worst_loss),
            binding=binding,
            regime=regime,
            stale_driven=stale_driven,
            unpriced_positions=unpriced,
            liquidity_stress_loss=liq_loss,
        ),
        stress=stress,
        notes=run_notes(snapshot, feeds, tokens, positions, policy),
    )


def _status(equity: np.ndarray, im: np.ndarray, mm: np.ndarray) -> np.ndarray:
    return np.where(
        equity >= im,
        MarginStatus.HEALTHY,
        np.where(equity >= mm, MarginStatus.MARGIN_CALL, MarginStatus.LIQUIDATE),
    ).astype(np.int8)


def _when(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_notes(snapshot: Snapshot, feeds: FeedRisk, tokens: TokenRisk, positions: PositionRisk,
              policy: Policy | None = None) -> tuple[str, ...]:
    """The run's explanation in words: each corporate-action adjustment, each price carried across an
    action, each inconsistent valuation, each stale feed, each position with no usable mark, and the DEX
    measures: a pool price away from NAV, measures too stale to use, a sync premium the engine disagrees with."""
    out = []
    names, symbols, acts = snapshot.feeds.name, snapshot.tokens.symbol, snapshot.actions
    for f in np.flatnonzero(feeds.adjusted_by >= 0):
        t = int(feeds.adjusted_by[f])
        if feeds.history_actions[f]:
            lo, hi = int(acts.offsets[t]), int(acts.offsets[t + 1])
            now = int(snapshot.block_timestamp)
            steps = ", ".join(f"{int(n) / int(o):.6g}x from {_when(e)}" for e, n, o in
                              zip(acts.effective_at[lo:hi], acts.new[lo:hi], acts.old[lo:hi], strict=True) if e <= now)
            out.append(f"{names[f]}: volatility history adjusted for {symbols[t]}'s corporate actions ({steps})")
    for t in np.flatnonzero(tokens.predates_action):
        out.append(f"{symbols[t]}: its price is from a round before a corporate action in force; valued at the "
                   f"multiplier of the round's time (x{tokens.action_factor[t]:.6g} to today's shares)")
    for t in np.flatnonzero(tokens.codes & np.uint32(Eligibility.VALUATION_INCONSISTENT)):
        move = tokens.action_move[t]
        why = (f"its feed moved {move:+.3f} (log) across the latest corporate action" if not np.isnan(move)
               else "its proof of reserve exceeds the shares its supply represents")
        out.append(f"{symbols[t]}: VALUATION_INCONSISTENT: {why}")
    for f in np.flatnonzero(feeds.stale):
        out.append(f"{names[f]}: stale, {feeds.clock_age_s[f]:,} s old on its market's clock (limit "
                   f"{feeds.limit_s[f]:,} s, cut-off {feeds.cutoff_s[f]:,} s): add-on {feeds.h_stale[f]:.4f}")
    for f in np.flatnonzero(feeds.flagged_rounds):
        out.append(f"{names[f]}: {feeds.flagged_rounds[f]} flagged rounds left out of its volatility history")
    bad = np.flatnonzero(~positions.mark_usable)
    if len(bad):
        feeds_without = sorted({str(names[positions.feed_idx[i]]) for i in bad})
        out.append(f"{len(bad)} positions have no usable mark ({', '.join(feeds_without)}): their wallets are unpriced")
    out.extend(_liquidity_notes(symbols, tokens, policy))
    return tuple(out)


def _liquidity_notes(symbols: np.ndarray, tokens: TokenRisk, policy: Policy | None) -> list[str]:
    out: list[str] = []
    if tokens.liquidity_source is None or tokens.value_flags is None:
        return out
    assert tokens.nav is not None and tokens.pool_price_usd is not None and tokens.nav_premium_bp is not None
    tol = f" (tolerance {policy.liquidity.nav_tolerance_bp:g} bp)" if policy is not None else ""
    for t in np.flatnonzero(tokens.value_flags & np.uint32(ValuationFlag.NAV_DEVIATION)):
        out.append(f"{symbols[t]}: NAV_DEVIATION: its pools trade at {tokens.pool_price_usd[t]:.6g} USD, "
                   f"{tokens.nav_premium_bp[t]:+,.0f} bp from the NAV of {tokens.nav[t]:.6g} USD{tol}: valued at "
                   f"the lower, {tokens.value_factor[t]:.6g} USD per token (still eligible)")
    for t in np.flatnonzero(tokens.liquidity_source == LiquiditySource.STALE):
        out.append(f"{symbols[t]}: its DEX measures are not fresh: the configured liquidity figure is used and "
                   "its pool price is not judged against NAV")
    mp = tokens.measured_premium_bp
    if mp is not None:
        both = ~np.isnan(mp) & ~np.isnan(tokens.nav_premium_bp)
        for t in np.flatnonzero(both & (np.abs(np.where(both, mp - tokens.nav_premium_bp, 0.0)) > 10.0)):
            out.append(f"{symbols[t]}: the sync's pool premium {mp[t]:+,.0f} bp (against the oracle's answer) "
                       f"differs from {tokens.nav_premium_bp[t]:+,.0f} bp against the NAV the run values at "
                       f"(corporate-action factor {tokens.action_factor[t] if tokens.action_factor is not None else 1.0:.6g})")
    return out
