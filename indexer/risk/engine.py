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

from indexer.risk.calendar import MarketState, TradingCalendar, xnys
from indexer.risk.eligibility import Eligibility, codes_to_names
from indexer.risk.haircuts import size_haircut, wallet_concentration
from indexer.risk.inputs import Snapshot
from indexer.risk.policy import Policy
from indexer.risk.staleness import stale_feeds
from indexer.risk.stress import StressedCovariance, instrument_losses, stressed_covariance
from indexer.risk.uint256 import to_float_units
from indexer.risk.volatility import VolatilityEstimate, ewma_volatility, log_returns, prices_at_closes
from indexer.types import Accounting, FeedKind, PriceQuote

_STOCK = FeedKind.STOCK.code

PARAMETRIC = "parametric"  # name of the parametric (L_joint) stress in RiskRun.stress_names


class MarginStatus(IntEnum):
    HEALTHY = 0  # equity >= IM
    MARGIN_CALL = 1  # MM <= equity < IM
    LIQUIDATE = 2  # equity < MM


# -- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FeedRisk:
    """Per feed: the round used, its checks, and the volatility estimate."""

    price: np.ndarray  # answer / 10^decimals; 0 where no round or answer <= 0
    codes: np.ndarray  # uint32, ORACLE_* bits of Eligibility
    round_id: np.ndarray  # object ints (None where no round)
    age_s: np.ndarray  # int64, now - updatedAt; -1 where no round
    heartbeat_s: np.ndarray  # int64, heartbeat used (the feed's own, else the policy's for its kind)
    sigma_raw: np.ndarray  # anti-procyclical EWMA sigma (max over look-back); NaN = no history
    sigma: np.ndarray  # daily sigma used: max(floor[kind], sigma_raw or sigma_without_history)
    sigma_last: np.ndarray  # EWMA sigma at the last close
    n_returns: np.ndarray  # valid daily returns in the window


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
    haircut: np.ndarray  # min(1, h_base + h_vol + h_size + h_gap)
    collateral_before_caps: np.ndarray  # market_value * (1 - haircut) if eligible else 0
    collateral_value: np.ndarray
    token_table: TokenRisk

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
    mark: np.ndarray  # feed price, or the entry price where the feed has no positive answer
    mark_ok: np.ndarray  # bool: the mark feed passed every oracle check
    notional: np.ndarray  # |size| * mark
    im: np.ndarray
    mm: np.ndarray
    upnl: np.ndarray  # size * (mark - entry)


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

    def binding_names(self) -> list[str]:
        return [self.stress_names[i] for i in self.wallets.binding]


# -- stages ---------------------------------------------------------------------------------------


def _bit(mask: np.ndarray, code: Eligibility) -> np.ndarray:
    return np.where(mask, np.uint32(code), np.uint32(0))


def assess_feeds(
    snapshot: Snapshot, policy: Policy, calendar: TradingCalendar
) -> tuple[FeedRisk, VolatilityEstimate, np.ndarray]:
    """Oracle checks (RISK.md sections 3 and 5) and volatility (section 4) per feed."""
    feeds, now = snapshot.feeds, int(snapshot.block_timestamp)
    kinds = np.asarray(feeds.kind, dtype=np.int8)
    has = np.asarray(feeds.has_round, dtype=bool)
    answer = to_float_units(np.where(has, feeds.answer_raw, 0), feeds.decimals)
    updated = np.asarray(feeds.updated_at, dtype=np.int64)
    stale, hb = stale_feeds(kinds, updated, feeds.heartbeat_s, now, policy, calendar)

    incomplete = np.zeros(len(feeds), dtype=bool)
    for f in np.flatnonzero(has):  # uint80 round ids are Python ints: compare them exactly
        incomplete[f] = int(updated[f]) == 0 or int(feeds.answered_in_round[f]) < int(feeds.round_id[f])
    codes = (
        _bit(~has, Eligibility.ORACLE_MISSING)
        | _bit(has & (answer <= 0), Eligibility.ORACLE_NON_POSITIVE)
        | _bit(has & incomplete, Eligibility.ORACLE_INCOMPLETE)
        | _bit(has & stale, Eligibility.ORACLE_STALE)
    )

    # Volatility: daily returns at the last lookback_days + 1 session closes at or before now.
    vol = policy.volatility
    closes = calendar.closes_up_to(now, vol.lookback_days + 1)
    est = ewma_volatility(
        log_returns(prices_at_closes(snapshot.history, feeds.decimals, closes)), vol.ewma_lambda
    )
    floor = np.array([vol.floor[FeedKind.from_code(k).policy_key] for k in kinds.tolist()], dtype=np.float64)
    sigma = np.maximum(floor, np.where(np.isnan(est.sigma_raw), vol.sigma_without_history, est.sigma_raw))

    risk = FeedRisk(
        price=np.where(has & (answer > 0), answer, 0.0),
        codes=codes.astype(np.uint32),
        round_id=np.where(has, feeds.round_id, None),
        age_s=np.where(has, now - updated, -1).astype(np.int64),
        heartbeat_s=hb,
        sigma_raw=est.sigma_raw,
        sigma=sigma,
        sigma_last=est.sigma_last,
        n_returns=est.n_returns,
    )
    return risk, est, closes


def assess_tokens(
    snapshot: Snapshot, policy: Policy, feeds: FeedRisk, state: MarketState, gap_days: int
) -> TokenRisk:
    """Per-token valuation factors, token-level eligibility codes and haircut components."""
    tokens = snapshot.tokens
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

    # Valuation (section 2): shares per token unit, and USD per token unit.
    decimals = np.asarray(tokens.decimals, dtype=np.int64)
    multiplier = to_float_units(tokens.multiplier_raw, 18)
    rebasing = np.asarray(tokens.accounting, dtype=np.int8) == Accounting.REBASING_SHARES.code
    share_factor = np.where(rebasing, 1.0, multiplier)
    price = np.where(has_feed, feeds.price[f], 0.0) if n_f else np.zeros(n_t)
    per_token = np.asarray(tokens.quote, dtype=np.int8) == PriceQuote.PER_TOKEN.code
    # a per_token feed prices the token itself; applying the multiplier again would count it twice
    value_factor = price * np.where(per_token, 1.0, share_factor)

    # Reserves (section 3): custodian shares against the shares the supply represents.
    supply_units = to_float_units(tokens.total_supply_raw, decimals)
    supply_shares = supply_units * share_factor
    has_reserve = np.asarray(tokens.has_reserve, dtype=bool)
    reserves = to_float_units(np.where(has_reserve, tokens.reserve_raw, 0), tokens.reserve_decimals)
    reserve_shares = np.where(has_reserve, reserves, np.nan)
    shortfall = has_reserve & (reserve_shares < supply_shares * (1.0 - policy.reserves.tolerance))

    feed_codes = np.where(has_feed, feeds.codes[f], np.uint32(Eligibility.ORACLE_MISSING)) if n_f else None
    codes = (
        _bit(
            ~np.array([policy.token_eligible(s) for s in symbols], dtype=bool), Eligibility.TOKEN_NOT_ELIGIBLE
        )
        | _bit(np.asarray(tokens.paused, dtype=bool), Eligibility.TOKEN_PAUSED)
        | (feed_codes if feed_codes is not None else np.full(n_t, np.uint32(Eligibility.ORACLE_MISSING)))
        | _bit(shortfall, Eligibility.RESERVE_SHORTFALL)
    ).astype(np.uint32)

    # Haircut components that depend on the token only (section 4).
    sigma = (
        np.where(has_feed, feeds.sigma[f], vol.sigma_without_history)
        if n_f
        else np.full(n_t, vol.sigma_without_history)
    )
    h_vol = np.minimum(1.0, z * sigma * np.sqrt(vol.horizon_days)) if vol.enabled else np.zeros(n_t)
    if policy.gap.enabled and gap_days > 0:
        h_gap = np.where(stock, np.minimum(policy.gap.cap, z * sigma * np.sqrt(gap_days)), 0.0)
    else:
        h_gap = np.zeros(n_t)

    return TokenRisk(
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
    )


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

    h_size = size_haircut(
        market_value,
        units,
        ti,
        tokens.daily_liquidity_usd,
        tokens.supply_units,
        policy.size,
        value_factor=tokens.value_factor,
    )
    h_token = tokens.h_base + tokens.h_vol + tokens.h_gap  # the holder-independent part
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
    after_platform = before_caps * factor[ti] if (factor < 1.0).any() else before_caps
    # Per-wallet caps: share of the wallet's eligible collateral, and USD per token.
    collateral = wallet_concentration(
        after_platform, wi, ti, n_w, tokens.wallet_share_cap, tokens.wallet_cap_usd
    )

    tokens = replace(tokens, pledged_units=pledged, platform_factor=factor)
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
    )
    return holdings, tokens


def margin_positions(snapshot: Snapshot, policy: Policy, feeds: FeedRisk) -> PositionRisk:
    """Notional, IM, MM and unrealized PnL per position (section 6)."""
    pos, mp = snapshot.positions, policy.margin
    pf = np.asarray(pos.feed_idx, dtype=np.int64)
    size = np.asarray(pos.size, dtype=np.float64)
    entry = np.asarray(pos.entry_price, dtype=np.float64)
    feed_price = feeds.price[pf] if len(pf) else np.zeros(0)
    mark = np.where(feed_price > 0, feed_price, entry)
    notional = np.abs(size) * mark
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
        mark_ok=(feeds.codes[pf] == 0) if len(pf) else np.zeros(0, dtype=bool),
        notional=notional,
        im=im,
        mm=mm,
        upnl=size * (mark - entry),
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
    tokens = assess_tokens(snapshot, policy, feeds, state, gap_days)
    holdings, tokens = value_holdings(snapshot, policy, tokens, assess_accounts(snapshot, policy))
    positions = margin_positions(snapshot, policy, feeds)

    # Wallet margin (section 6)
    wi, ti, pw, pf = holdings.wallet_idx, holdings.token_idx, positions.wallet_idx, positions.feed_idx
    collateral = np.bincount(wi, weights=holdings.collateral_value, minlength=n_w)
    im = np.bincount(pw, weights=positions.im, minlength=n_w)
    mm = np.bincount(pw, weights=positions.mm, minlength=n_w)
    upnl = np.bincount(pw, weights=positions.upnl, minlength=n_w)
    cash = np.asarray(snapshot.accounts.cash_usd, dtype=np.float64)
    equity = collateral + upnl + cash
    status = np.where(
        equity >= im,
        MarginStatus.HEALTHY,
        np.where(equity >= mm, MarginStatus.MARGIN_CALL, MarginStatus.LIQUIDATE),
    ).astype(np.int8)

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
    l_joint, l_indep, pnl = instrument_losses(
        exposure, np.concatenate([tokens.feed_idx, pos_feeds]), stress, z, horizon, shocks
    )
    worst, worst_loss = _worst_scenario(pnl)
    binding = np.where(l_joint >= worst_loss, 0, worst + 1).astype(np.int16)

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
            stressed_excess=equity - im - np.maximum(l_joint, worst_loss),
            binding=binding,
        ),
        stress=stress,
    )
