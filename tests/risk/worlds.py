"""Worlds for the risk tests: a small builder for hand-made cases and a hypothesis strategy for random ones."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from indexer.risk.inputs import (
    Accounts,
    CorporateActions,
    FeedHistory,
    Feeds,
    Holdings,
    Liquidity,
    Positions,
    Snapshot,
    Tokens,
)
from indexer.risk.policy import Policy, load_policy, policy_file, policy_from_mapping
from indexer.risk.uint256 import int_array, limbs_from_ints
from indexer.types import Accounting, FeedKind, PriceQuote

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = policy_file("default")
KRAKEN_POLICY = policy_file("kraken_2026")
E18 = 10**18


def ny(text: str) -> int:
    """UTC epoch seconds of a New York wall-clock time, e.g. ny("2025-11-28 13:00")."""
    return int(pd.Timestamp(text, tz="America/New_York").timestamp())


@lru_cache(maxsize=1)
def default_policy_data() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_POLICY.read_text())


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    return load_policy(DEFAULT_POLICY)


def policy_with(**changes: Any) -> Policy:
    """The default policy with dotted-path changes: policy_with(**{"gap.cap": 0.2})."""
    import copy

    data = copy.deepcopy(default_policy_data())
    for path, value in changes.items():
        node = data
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return policy_from_mapping(data)


# -- hand-made worlds ---------------------------------------------------------------------------------


@dataclass
class WorldBuilder:
    """Feeds, tokens, wallets, holdings and positions added one by one; ``build(now)`` makes the Snapshot."""

    feeds: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    wallets: list[dict[str, Any]] = field(default_factory=list)
    holdings: list[dict[str, Any]] = field(default_factory=list)
    positions: list[dict[str, Any]] = field(default_factory=list)
    limbs: bool = False  # balances in the fixed-width form ((n, 4) uint64) instead of Python ints

    def feed(
        self,
        name: str,
        price: float | None,
        *,
        kind: FeedKind = FeedKind.STOCK,
        updated_at: int,
        decimals: int = 8,
        round_id: int = 100,
        answered_in_round: int | None = None,
        heartbeat_s: int = 0,
        history: list[tuple[int, float]] | None = None,
        answer_raw: int | None = None,
    ) -> int:
        if answer_raw is None and price is not None:
            answer_raw = round(price * 10**decimals)
        self.feeds.append(
            dict(
                name=name,
                kind=kind,
                decimals=decimals,
                has_round=answer_raw is not None,
                round_id=round_id,
                answer_raw=answer_raw if answer_raw is not None else 0,
                updated_at=updated_at,
                answered_in_round=round_id if answered_in_round is None else answered_in_round,
                heartbeat_s=heartbeat_s,
                history=[(t, round(p * 10**decimals)) for t, p in (history or [])],
            )
        )
        return len(self.feeds) - 1

    def token(
        self,
        symbol: str,
        feed: int,
        *,
        decimals: int = 18,
        accounting: Accounting = Accounting.REBASING_SHARES,
        multiplier: int = E18,
        quote: PriceQuote = PriceQuote.PER_SHARE,
        supply_units: float = 1e9,
        reserve_units: float | None = None,
        paused: bool = False,
        actions: list[tuple[int, int, int]] | None = None,
        reserve_updated_at: int | None = None,
        dex: dict[str, Any] | None = None,
    ) -> int:
        """``actions``: corporate actions as (effective_at, new, old), e.g. (t, 3, 1) for a 3-for-1 split.
        ``dex``: DEX measures (docs/risk.md section 15), keys ``depth`` (1%, 2%, 5% in token units),
        ``volume`` (24 h, 7 days), ``price`` (USD per token, NaN for none), optional ``fresh`` (default true),
        ``premium_bp`` and ``updated_at``."""
        self.tokens.append(
            dict(
                symbol=symbol,
                feed=feed,
                decimals=decimals,
                accounting=accounting,
                multiplier=multiplier,
                quote=quote,
                supply_raw=int(supply_units * 10**decimals),
                reserve_raw=None if reserve_units is None else int(reserve_units * E18),
                paused=paused,
                actions=sorted(actions or []),
                reserve_updated_at=reserve_updated_at,
                dex=dex,
            )
        )
        return len(self.tokens) - 1

    def vault(self, symbol: str, asset: int, rate_raw: int, *, moves: list[tuple[int, float]] | None = None,
              decimals: int = 18, supply_units: float = 1e6) -> int:
        """An ERC-4626 vault over token ``asset`` (docs/risk.md section 16): priced by the asset's feed, worth
        ``rate_raw`` asset raw units per whole share; ``moves``: (time, move) of its rate between reads."""
        t = self.token(symbol, self.tokens[asset]["feed"], decimals=decimals, accounting=Accounting.PLAIN,
                       supply_units=supply_units)
        self.tokens[t].update(vault_asset=asset, vault_rate=rate_raw, vault_moves=sorted(moves or []))
        return t

    def _vault_columns(self) -> dict[str, Any]:
        t = self.tokens
        if all(x.get("vault_asset") is None for x in t):
            return {}
        moves = [x.get("vault_moves") or [] for x in t]
        return dict(
            vault_asset_idx=np.array([-1 if x.get("vault_asset") is None else x["vault_asset"] for x in t],
                                     dtype=np.int64),
            vault_rate_raw=int_array([x.get("vault_rate") or 0 for x in t]),
            vault_move_offsets=np.concatenate(([0], np.cumsum([len(m) for m in moves]))).astype(np.int64),
            vault_move_at=np.array([a for m in moves for a, _ in m], dtype=np.int64),
            vault_move=np.array([v for m in moves for _, v in m], dtype=np.float64),
        )

    def wallet(
        self,
        *,
        jurisdiction: str = "DE",
        tier: str = "retail",
        kyc: bool = True,
        has_account: bool = True,
        sanctioned: bool = False,
        cash: float = 0.0,
    ) -> int:
        self.wallets.append(
            dict(
                jurisdiction=jurisdiction,
                tier=tier,
                kyc=kyc,
                has_account=has_account,
                sanctioned=sanctioned,
                cash=cash,
            )
        )
        return len(self.wallets) - 1

    def hold(
        self,
        wallet: int,
        token: int,
        units: float | None = None,
        *,
        raw: int | None = None,
        frozen: bool = False,
    ) -> None:
        if raw is None:
            raw = int(round((units or 0.0) * 10 ** self.tokens[token]["decimals"]))
        self.holdings.append(dict(wallet=wallet, token=token, raw=raw, frozen=frozen))

    def position(self, wallet: int, feed: int, size: float, entry: float, leverage: float = 5.0) -> None:
        self.positions.append(dict(wallet=wallet, feed=feed, size=size, entry=entry, leverage=leverage))

    def _actions(self) -> CorporateActions | None:
        if _no_actions(self.tokens):
            return None
        rows = [x.get("actions") or [] for x in self.tokens]
        offsets = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
        flat = [a for r in rows for a in r]
        return CorporateActions(offsets, np.array([a[0] for a in flat], dtype=np.int64),
                                int_array([a[1] for a in flat]), int_array([a[2] for a in flat]))

    def _liquidity(self, now: int) -> Liquidity | None:
        dex = [x.get("dex") for x in self.tokens]
        if all(d is None for d in dex):
            return None

        def col(key: str, i: int) -> np.ndarray:
            return np.array([np.nan if d is None else float(d[key][i]) for d in dex], dtype=np.float64)

        return Liquidity(
            measured=np.array([d is not None for d in dex], dtype=bool),
            fresh=np.array([d is not None and d.get("fresh", True) for d in dex], dtype=bool),
            depth_1pct=col("depth", 0),
            depth_2pct=col("depth", 1),
            depth_5pct=col("depth", 2),
            volume_24h=col("volume", 0),
            volume_7d=col("volume", 1),
            pool_price_usd=np.array([np.nan if d is None else float(d["price"]) for d in dex], dtype=np.float64),
            premium_bp=None if all(d is None or "premium_bp" not in d for d in dex) else np.array(
                [np.nan if d is None else float(d.get("premium_bp", np.nan)) for d in dex], dtype=np.float64),
            updated_at=None if all(d is None or "updated_at" not in d for d in dex) else np.array(
                [now if d is None else int(d.get("updated_at", now)) for d in dex], dtype=np.int64),
        )

    def build(self, now: int, block_number: int = 1) -> Snapshot:
        f, t, w, h, p = self.feeds, self.tokens, self.wallets, self.holdings, self.positions
        hist_ts: list[int] = []
        hist_ans: list[int] = []
        offsets = [0]
        for feed in f:
            for ts, ans in sorted(feed["history"]):
                hist_ts.append(ts)
                hist_ans.append(ans)
            offsets.append(len(hist_ts))
        snap = Snapshot(
            block_number=block_number,
            block_timestamp=now,
            tokens=Tokens(
                symbol=np.array([x["symbol"] for x in t], dtype=object),
                decimals=np.array([x["decimals"] for x in t], dtype=np.int64),
                accounting=np.array([x["accounting"].code for x in t], dtype=np.int8),
                multiplier_raw=int_array([x["multiplier"] for x in t]),
                paused=np.array([x["paused"] for x in t], dtype=bool),
                feed_idx=np.array([x["feed"] for x in t], dtype=np.int64),
                quote=np.array([x["quote"].code for x in t], dtype=np.int8),
                total_supply_raw=int_array([x["supply_raw"] for x in t]),
                has_reserve=np.array([x["reserve_raw"] is not None for x in t], dtype=bool),
                reserve_raw=int_array([x["reserve_raw"] or 0 for x in t]),
                reserve_decimals=np.full(len(t), 18, dtype=np.int64),
                reserve_updated_at=None if all(x.get("reserve_updated_at") is None for x in t) else np.array(
                    [now if x.get("reserve_updated_at") is None else x["reserve_updated_at"] for x in t],
                    dtype=np.int64),
                **self._vault_columns(),
            ),
            feeds=Feeds(
                name=np.array([x["name"] for x in f], dtype=object),
                kind=np.array([x["kind"].code for x in f], dtype=np.int8),
                decimals=np.array([x["decimals"] for x in f], dtype=np.int64),
                has_round=np.array([x["has_round"] for x in f], dtype=bool),
                round_id=int_array([x["round_id"] for x in f]),
                answer_raw=int_array([x["answer_raw"] for x in f]),
                updated_at=np.array([x["updated_at"] for x in f], dtype=np.int64),
                answered_in_round=int_array([x["answered_in_round"] for x in f]),
                heartbeat_s=np.array([x["heartbeat_s"] for x in f], dtype=np.int64),
            ),
            history=FeedHistory(
                offsets=np.array(offsets, dtype=np.int64),
                updated_at=np.array(hist_ts, dtype=np.int64),
                answer_raw=int_array(hist_ans),
            ),
            holdings=Holdings(
                wallet_idx=np.array([x["wallet"] for x in h], dtype=np.int64),
                token_idx=np.array([x["token"] for x in h], dtype=np.int64),
                balance_raw=(limbs_from_ints if self.limbs else int_array)([x["raw"] for x in h]),
                frozen=np.array([x["frozen"] for x in h], dtype=bool),
            ),
            accounts=Accounts(
                wallet=np.array([f"0x{i:040x}" for i in range(len(w))], dtype=object),
                has_account=np.array([x["has_account"] for x in w], dtype=bool),
                jurisdiction=np.array([x["jurisdiction"] for x in w], dtype="<U2"),
                tier=np.array([x["tier"] for x in w], dtype="<U16"),
                kyc_approved=np.array([x["kyc"] for x in w], dtype=bool),
                sanctioned=np.array([x["sanctioned"] for x in w], dtype=bool),
                cash_usd=np.array([x["cash"] for x in w], dtype=np.float64),
            ),
            positions=Positions(
                wallet_idx=np.array([x["wallet"] for x in p], dtype=np.int64),
                feed_idx=np.array([x["feed"] for x in p], dtype=np.int64),
                size=np.array([x["size"] for x in p], dtype=np.float64),
                entry_price=np.array([x["entry"] for x in p], dtype=np.float64),
                leverage=np.array([x["leverage"] for x in p], dtype=np.float64),
            ),
            actions=self._actions(),
            liquidity=self._liquidity(now),
        )
        snap.validate()
        return snap


def _no_actions(tokens: list[dict[str, Any]]) -> bool:
    return not any(x.get("actions") for x in tokens)


def daily_history(
    start: int, days: int, price: float, daily_returns: list[float] | np.ndarray
) -> list[tuple[int, float]]:
    """One round every day at ``start + k * 86400`` following the given daily simple returns."""
    out, p = [], price
    for k in range(days):
        out.append((start + k * 86_400, p))
        p *= 1.0 + float(daily_returns[k % len(daily_returns)])
    return out


# -- random worlds ------------------------------------------------------------------------------------

INTERESTING_TIMES = [
    ny("2025-03-07 10:00"),  # Friday, open (before the DST switch)
    ny("2025-03-10 10:00"),  # Monday after the spring DST switch, open
    ny("2025-03-10 09:29"),  # a minute before the open
    ny("2025-03-08 12:00"),  # Saturday
    ny("2025-06-19 11:00"),  # Juneteenth holiday
    ny("2025-04-18 11:00"),  # Good Friday
    ny("2025-01-09 12:00"),  # national day of mourning, one-off closure
    ny("2025-11-28 14:00"),  # after the early close, day after Thanksgiving
    ny("2025-11-28 12:00"),  # in the shortened session
    ny("2025-11-03 15:00"),  # Monday after the autumn DST switch, open
    ny("2025-11-04 20:00"),  # overnight
]
POLICY_SYMBOLS = ["AAPLx", "SPYx", "MSTRx", "USDC", "TLT", "GLDx"]
UNKNOWN_SYMBOLS = ["ZZZx"]
MAX_UINT256 = 2**256 - 1


@st.composite
def balances(draw: st.DrawFn, decimals: int) -> int:
    return draw(
        st.one_of(
            st.just(0),
            st.just(1),
            st.integers(1, 10**decimals * 10**6),
            st.integers(10 ** max(decimals - 3, 0), 10**decimals * 10**4),
            st.integers(2**200, MAX_UINT256),
            st.just(MAX_UINT256),
        )
    )


@st.composite
def random_policy(draw: st.DrawFn, liquidity: bool = False) -> Policy:
    import copy

    data = copy.deepcopy(default_policy_data())
    if liquidity:
        lq = data["liquidity"]
        lq["enabled"] = draw(st.integers(0, 9)) > 0
        lq["impact_y"] = draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))
        lq["participation"] = draw(st.sampled_from([0.05, 0.2, 1.0]))
        lq["depth_move_bp"] = draw(st.sampled_from([100, 200, 500]))
        lq["volume_basis"] = draw(st.sampled_from(["7d", "lower"]))
        lq["impact_cap"] = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
        lq["platform_cost"] = draw(st.integers(0, 3)) > 0
        lq["nav_tolerance_bp"] = draw(st.sampled_from([0.0, 50.0, 200.0, 1e6]))
        lq["max_age_s"] = draw(st.sampled_from([60, 3_600]))
        data["stress"]["depth_factor"] = draw(st.sampled_from([0.05, 0.2, 1.0]))
        data["stress"]["parametric_risk_off"] = draw(st.booleans())
        for sc in data["stress"]["scenarios"]:
            sc["risk_off"] = draw(st.booleans())
        data["volatility"]["horizon_days"] = draw(st.sampled_from([1.0, 2.0, 5.0]))
    if draw(st.booleans()):
        data["margin"]["im_mode"] = "tiers"
    if draw(st.integers(0, 3)) == 0:
        data["accounts"]["require_account"] = False
    if draw(st.booleans()):
        data["accounts"]["allowed_jurisdictions"] = ["DE", "SG"]
    data["concentration"]["platform_supply_share_cap"] = draw(st.sampled_from([0.001, 0.25, 1.0]))
    data["concentration"]["wallet_share_cap"] = draw(st.sampled_from([0.2, 0.4, 1.0]))
    if draw(st.booleans()):
        data["tokens"]["AAPLx"]["wallet_cap_usd"] = draw(st.sampled_from([0.0, 1000.0, 1e7]))
    data["eligibility"]["min_value_usd"] = draw(st.sampled_from([0.0, 1.0, 1e6]))
    data["stress"]["equity_crypto_corr_floor"] = draw(st.sampled_from([-1.0, 0.0, 0.5, 0.8, 1.0]))
    data["volatility"]["lookback_days"] = draw(st.sampled_from([2, 20, 60]))
    data["reserves"]["tolerance"] = draw(st.sampled_from([0.0, 0.001, 0.5]))
    data.setdefault("valuation", {})["price_before_action"] = draw(st.sampled_from(["value_at_round", "ineligible"]))
    data["valuation"]["action_move_tolerance"] = draw(st.sampled_from([0.05, 0.25, 5.0]))
    for kind in ("stock", "crypto", "stable"):
        data["staleness"][kind]["cutoff_multiple"] = draw(st.sampled_from([1.0, 4.0, 50.0]))
    data["stress"]["two_sided"] = draw(st.integers(0, 4)) > 0
    return policy_from_mapping(data)


@st.composite
def dex_measures(draw: st.DrawFn, nav: float, now: int) -> dict[str, Any] | None:
    """DEX measures for one token (or None): depths rising with the move, the 7 days at least the last
    24 hours, zero markets, and pool prices near the NAV (``nav``, USD per token) and far from it."""
    if draw(st.integers(0, 3)) == 0:
        return None
    size = st.sampled_from([0.0, 0.5, 10.0, 1e3, 1e6, 1e9])
    d1 = draw(size)
    d2 = d1 + draw(size)
    d5 = d2 + draw(size)
    v24 = draw(size)
    v7 = v24 + draw(size)
    premium = draw(st.sampled_from([None, -0.6, -0.03, -0.015, -0.001, 0.0, 0.004, 0.02, 0.5]))
    price = np.nan if premium is None or nav <= 0 else nav * (1 + premium)
    if nav <= 0 and premium is not None:
        price = draw(st.sampled_from([0.01, 100.0]))
    out: dict[str, Any] = dict(depth=(d1, d2, d5), volume=(v24, v7), price=price,
                               fresh=draw(st.integers(0, 5)) > 0)
    if draw(st.booleans()):
        out["updated_at"] = now - draw(st.sampled_from([0, 30, 600, 7_200, -60]))
    if draw(st.booleans()):
        out["premium_bp"] = draw(st.sampled_from([np.nan, 0.0, 1e4 * (premium or 0.0), 5_000.0]))
    return out


@st.composite
def random_world(draw: st.DrawFn, liquidity: bool = False, vaults: bool = False) -> Snapshot:
    """Small worlds that reach every branch: empty wallets, zero and negative prices, uint256
    balances, 6 and 18 decimals, every eligibility failure, every market state; with ``liquidity``,
    DEX measures for some tokens (docs/risk.md section 15); with ``vaults``, ERC-4626 vaults over some tokens
    (section 16)."""
    now = draw(
        st.one_of(
            st.sampled_from(INTERESTING_TIMES), st.integers(ny("2024-01-02 00:00"), ny("2026-06-30 00:00"))
        )
    )
    b = WorldBuilder()
    n_feeds = draw(st.integers(1, 4))
    for f in range(n_feeds):
        kind = draw(st.sampled_from([k for k in FeedKind if k.priced]))
        dec = draw(st.sampled_from([0, 6, 8, 18]))
        has_round = draw(st.integers(0, 9)) > 0
        answer = (
            draw(st.one_of(st.integers(1, 10**6 * 10**dec), st.integers(-(10**dec), 0)))
            if has_round
            else None
        )
        age = draw(st.sampled_from([0, 30, 2_000, 4_000, 90_000, 400_000, 10**7]))
        updated = draw(st.sampled_from([now - age, 0])) if draw(st.integers(0, 9)) == 0 else now - age
        round_id = draw(st.integers(1, 2**80 - 1))
        answered = round_id - draw(st.sampled_from([0, 0, 0, 1]))
        n_hist = draw(st.integers(0, 40))
        hist_times = sorted(
            draw(st.lists(st.integers(now - 400 * 86_400, now), min_size=n_hist, max_size=n_hist))
        )
        hist_answers = draw(st.lists(st.integers(-5, 10**5), min_size=n_hist, max_size=n_hist))
        b.feeds.append(
            dict(
                name=["BTC/USD", "ETH/USD", "AAPL/USD", "SPY/USD"][f],
                kind=kind,
                decimals=dec,
                has_round=has_round,
                round_id=round_id,
                answer_raw=answer if answer is not None else 0,
                updated_at=updated,
                answered_in_round=answered,
                heartbeat_s=draw(st.sampled_from([0, 0, 600, 86_400])),
                history=[
                    (t, a * 10 ** max(dec - 2, 0)) for t, a in zip(hist_times, hist_answers, strict=True)
                ],
            )
        )
    n_tokens = draw(st.integers(1, 5))
    symbols = draw(
        st.lists(
            st.sampled_from(POLICY_SYMBOLS + UNKNOWN_SYMBOLS),
            min_size=n_tokens,
            max_size=n_tokens,
            unique=True,
        )
    )
    for sym in symbols:
        dec = draw(st.sampled_from([6, 18, 0, 8]))
        supply = draw(
            st.one_of(st.just(0), st.integers(1, 10**dec * 10**9), st.integers(2**200, MAX_UINT256))
        )
        b.tokens.append(
            dict(
                symbol=sym,
                feed=draw(st.integers(-1, n_feeds - 1))
                if draw(st.integers(0, 9)) == 0
                else draw(st.integers(0, n_feeds - 1)),
                decimals=dec,
                accounting=draw(st.sampled_from(list(Accounting))),
                multiplier=draw(st.sampled_from([E18, E18 // 2, 3 * E18, draw(st.integers(1, 5 * E18))])),
                quote=draw(st.sampled_from(list(PriceQuote))),
                supply_raw=supply,
                reserve_raw=draw(st.one_of(st.none(), st.integers(0, 10**18 * 10**12))),
                paused=draw(st.integers(0, 9)) == 0,
                # splits, reverse splits and stock dividends, some after the feed's round, some after now
                actions=sorted(
                    (draw(st.sampled_from([now - 300 * 86_400, now - 3 * 86_400, now - 1_000, now - 30, now + 3_600])),
                     *draw(st.sampled_from([(3, 1), (1, 2), (10_031, 10_000), (2, 1)])))
                    for _ in range(draw(st.sampled_from([0, 0, 1, 2])))
                ),
                reserve_updated_at=draw(st.sampled_from([None, now - 1_000, now - 300_000])),
            )
        )
    if vaults:
        for sym in draw(st.lists(st.sampled_from(["vTSLAx", "vAAPLx"]), min_size=1, max_size=2, unique=True)):
            asset = draw(st.integers(0, n_tokens - 1))
            rate = draw(st.sampled_from([0, 10 ** b.tokens[asset]["decimals"], 3 * 10**18 // 2,
                                         draw(st.integers(1, 10**30))]))
            moves = draw(st.lists(st.tuples(st.sampled_from([now - 30 * 86_400, now - 6 * 86_400, now - 600, now,
                                                             now + 60]),
                                            st.sampled_from([0.0, 0.001, 0.049, 0.051, 12.0, math.inf])),
                                  max_size=3))
            b.vault(sym, asset, rate, moves=moves, decimals=draw(st.sampled_from([6, 18])))
        n_tokens = len(b.tokens)
    n_wallets = draw(st.integers(0, 6))
    for _ in range(n_wallets):
        b.wallet(
            jurisdiction=draw(st.sampled_from(["DE", "SG", "US", ""])),
            tier=draw(st.sampled_from(["retail", "professional", "trial"])),
            kyc=draw(st.integers(0, 9)) > 0,
            has_account=draw(st.integers(0, 4)) > 0,
            sanctioned=draw(st.integers(0, 19)) == 0,
            cash=draw(st.sampled_from([0.0, 100.0, -50.0, 1e6])),
        )
        w = len(b.wallets) - 1
        held = draw(st.lists(st.integers(0, n_tokens - 1), max_size=n_tokens, unique=True))
        for t in held:
            b.hold(w, t, raw=draw(balances(b.tokens[t]["decimals"])), frozen=draw(st.integers(0, 9)) == 0)
        for _ in range(draw(st.integers(0, 3))):
            b.position(
                w,
                draw(st.integers(0, n_feeds - 1)),
                size=draw(st.sampled_from([0.0, 1.0, -2.5, 0.001, 1e4, -1e3])),
                entry=draw(st.sampled_from([1.0, 100.0, 65_000.0, 0.5])),
                leverage=draw(st.sampled_from([0.5, 1.0, 3.0, 20.0, 100.0])),
            )
    if liquidity:
        for tok in b.tokens:
            nav = 0.0
            if tok["feed"] >= 0 and b.feeds[tok["feed"]]["has_round"]:
                feed = b.feeds[tok["feed"]]
                nav = feed["answer_raw"] / 10 ** feed["decimals"]
                if tok["quote"] != PriceQuote.PER_TOKEN and tok["accounting"] != Accounting.REBASING_SHARES:
                    nav *= tok["multiplier"] / E18
            tok["dex"] = draw(dex_measures(nav, now))
    b.limbs = draw(st.booleans())  # both forms of balance_raw meet the same reference
    return b.build(now)


FLAT = {
    "volatility.enabled": False,
    "gap.enabled": False,
    "size.impact_k": 0.0,
    "size.supply_k": 0.0,
    "size.bands": [{"from_usd": 0.0, "addon": 0.0}],
    "concentration.wallet_share_cap": 1.0,
    "concentration.platform_supply_share_cap": 1.0,
    "eligibility.min_value_usd": 0.0,
}


def flat_policy(**changes: Any) -> Policy:
    """The default policy reduced to base haircuts only (no vol, size, gap or caps), plus changes."""
    return policy_with(**{**FLAT, **changes})


@st.composite
def dex_world(draw: st.DrawFn) -> Snapshot:
    """Worlds whose holdings are mostly eligible (fresh positive prices, listed tokens, accounts on file) and
    whose tokens mostly have DEX measures: the liquidity terms, the NAV rule, the platform liquidation cost
    and the risk-off stress all bite (docs/risk.md section 15)."""
    now = draw(st.one_of(st.sampled_from(INTERESTING_TIMES), st.integers(ny("2024-01-02 00:00"), ny("2026-06-30 00:00"))))
    b = WorldBuilder()
    names = ["AAPL/USD", "SPY/USD", "BTC/USD", "ETH/USD"]
    kinds = [FeedKind.STOCK, FeedKind.STOCK, FeedKind.CRYPTO, FeedKind.CRYPTO]
    seed = draw(st.integers(0, 2**32 - 1))
    for f in range(draw(st.integers(1, 4))):
        price = draw(st.sampled_from([1.0, 42.5, 230.0, 65_000.0]))
        # generic (seeded) returns: no two feeds perfectly (anti-)correlated, where the floor's blend weight
        # is ill-conditioned in both implementations
        vol = draw(st.sampled_from([0.005, 0.02, 0.06]))
        returns = np.random.default_rng([seed, f]).normal(0.0, vol, 60)
        b.feed(names[f], price, kind=kinds[f], updated_at=now - draw(st.sampled_from([0, 30, 300])),
               decimals=draw(st.sampled_from([6, 8, 18])),
               history=daily_history(now - 60 * 86_400, 60, price, returns))
    symbols = draw(st.lists(st.sampled_from(POLICY_SYMBOLS), min_size=1, max_size=4, unique=True))
    for sym in symbols:
        feed = draw(st.integers(0, len(b.feeds) - 1))
        accounting = draw(st.sampled_from(list(Accounting)))
        multiplier = draw(st.sampled_from([E18, E18 // 2, 3 * E18]))
        quote = draw(st.sampled_from(list(PriceQuote)))
        t = b.token(sym, feed, decimals=draw(st.sampled_from([0, 6, 18])), accounting=accounting,
                    multiplier=multiplier, quote=quote, supply_units=draw(st.sampled_from([1e4, 1e7, 1e12])),
                    actions=[(now - 3 * 86_400, 2, 1)] if draw(st.integers(0, 5)) == 0 else None)
        nav = b.feeds[feed]["answer_raw"] / 10 ** b.feeds[feed]["decimals"]
        if quote != PriceQuote.PER_TOKEN and accounting != Accounting.REBASING_SHARES:
            nav *= multiplier / E18
        b.tokens[t]["dex"] = draw(dex_measures(nav, now))
    for _ in range(draw(st.integers(1, 8))):
        w = b.wallet(cash=draw(st.sampled_from([0.0, 1e3, 1e6])))
        for t in range(len(b.tokens)):
            if draw(st.integers(0, 3)) > 0:
                b.hold(w, t, draw(st.sampled_from([0.001, 1.0, 37.0, 1e3, 1e5, 1e7])))
        for _ in range(draw(st.integers(0, 2))):
            b.position(w, draw(st.integers(0, len(b.feeds) - 1)), size=draw(st.sampled_from([1.0, -2.5, 1e3])),
                       entry=draw(st.sampled_from([1.0, 100.0, 65_000.0])), leverage=5.0)
    b.limbs = draw(st.booleans())
    return b.build(now)
