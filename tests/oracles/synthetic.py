"""Synthetic worlds for tests, the benchmark and demos: a Snapshot built in memory, no I/O.

The default world has the tokens of ``policy/default.toml`` (xStocks-style rebasing tokens,
ui-multiplier tokens, a plain token, a per-token-quoted ETF, USDC) priced by 8-decimal feeds, plus
ETH/USD and BTC/USD for positions. Prices follow a two-factor model (an equity factor and a crypto
factor, correlated) so that volatility and correlation estimates have something real to find.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.risk.calendar import TradingCalendar, xnys
from indexer.risk.inputs import Accounts, FeedHistory, Feeds, Holdings, Positions, Snapshot, Tokens
from indexer.risk.uint256 import balances_from_decimal_strings
from indexer.types import Accounting, FeedKind, PriceQuote

FEED_DECIMALS = 8
E18 = 10**18


@dataclass(frozen=True)
class TokenSpec:
    symbol: str
    feed: str
    decimals: int
    accounting: Accounting
    quote: PriceQuote
    price: float  # starting share price, USD
    daily_vol: float
    equity_beta: float  # loading on the equity factor
    crypto_beta: float  # loading on the crypto factor
    multiplier: float = 1.0


DEFAULT_TOKENS: tuple[TokenSpec, ...] = (
    TokenSpec(
        "AAPLx", "AAPL/USD", 18, Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 210.0, 0.016, 1.0, 0.0
    ),
    TokenSpec(
        "NVDAx", "NVDA/USD", 18, Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 120.0, 0.030, 1.4, 0.1
    ),
    TokenSpec(
        "TSLAx", "TSLA/USD", 18, Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 250.0, 0.035, 1.3, 0.2
    ),
    TokenSpec(
        "MSTRx", "MSTR/USD", 18, Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 350.0, 0.045, 0.6, 0.9
    ),
    TokenSpec(
        "SPYx", "SPY/USD", 18, Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 560.0, 0.010, 1.0, 0.0
    ),
    TokenSpec(
        "QQQx", "QQQ/USD", 18, Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 480.0, 0.013, 1.1, 0.05
    ),
    TokenSpec(
        "GLDx", "GLD/USD", 18, Accounting.REBASING_SHARES, PriceQuote.PER_SHARE, 240.0, 0.009, 0.1, 0.0
    ),
    TokenSpec(
        "AMZN",
        "AMZN/USD",
        18,
        Accounting.UI_MULTIPLIER,
        PriceQuote.PER_SHARE,
        190.0,
        0.020,
        1.1,
        0.0,
        1.0,
    ),
    TokenSpec(
        "MSFT",
        "MSFT/USD",
        18,
        Accounting.UI_MULTIPLIER,
        PriceQuote.PER_SHARE,
        420.0,
        0.015,
        1.0,
        0.0,
        1.0,
    ),
    TokenSpec(
        "GOOGL",
        "GOOGL/USD",
        18,
        Accounting.UI_MULTIPLIER,
        PriceQuote.PER_SHARE,
        170.0,
        0.018,
        1.0,
        0.0,
        20.0,
    ),
    TokenSpec("COIN", "COIN/USD", 6, Accounting.PLAIN, PriceQuote.PER_SHARE, 230.0, 0.040, 0.7, 0.7),
    TokenSpec(
        "TLT",
        "TLT/USD",
        18,
        Accounting.UI_MULTIPLIER,
        PriceQuote.PER_TOKEN,
        92.0,
        0.009,
        -0.2,
        0.0,
        1.03,
    ),
    TokenSpec("USDC", "USDC/USD", 6, Accounting.PLAIN, PriceQuote.PER_TOKEN, 1.0, 0.0005, 0.0, 0.0),
)
CRYPTO_FEEDS: tuple[tuple[str, float, float], ...] = (("ETH/USD", 3000.0, 0.040), ("BTC/USD", 65000.0, 0.032))


def extra_token_specs(n: int) -> tuple[TokenSpec, ...]:
    """``n`` more single stocks (``XS01x``...) to reach wider worlds such as the 20-token benchmark."""
    return tuple(
        TokenSpec(
            f"XS{i + 1:02d}x",
            f"XS{i + 1:02d}/USD",
            18,
            Accounting.REBASING_SHARES,
            PriceQuote.PER_SHARE,
            50.0 + 10 * i,
            0.02,
            1.0,
            0.0,
        )
        for i in range(n)
    )


def _price_paths(
    specs: tuple[TokenSpec, ...], times: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(stock prices per token, crypto prices) at ``times`` from a correlated two-factor model."""
    n = len(times)
    dt_days = np.diff(times, prepend=times[0]) / 86_400.0
    # equity and crypto factors: daily vol 1% and 3.5%, correlation 0.4
    eq = rng.standard_normal(n)
    cr = 0.4 * eq + np.sqrt(1 - 0.4**2) * rng.standard_normal(n)
    sqrt_dt = np.sqrt(dt_days)
    stock = np.empty((n, len(specs)))
    for j, s in enumerate(specs):
        factor = s.equity_beta * 0.01 * eq + s.crypto_beta * 0.035 * cr
        sys_var = (s.equity_beta * 0.01) ** 2 + (s.crypto_beta * 0.035) ** 2
        idio = np.sqrt(max(s.daily_vol**2 - sys_var, (0.2 * s.daily_vol) ** 2)) * rng.standard_normal(n)
        stock[:, j] = s.price * np.exp(np.cumsum((factor + idio) * sqrt_dt))
    crypto = np.empty((n, len(CRYPTO_FEEDS)))
    for j, (_, p0, vol) in enumerate(CRYPTO_FEEDS):
        idio = np.sqrt(vol**2 - 0.035**2 * 0.8) * rng.standard_normal(n)
        crypto[:, j] = p0 * np.exp(np.cumsum((0.035 * np.sqrt(0.8) * cr + idio) * sqrt_dt))
    return stock, crypto


def synthetic_world(
    n_wallets: int,
    *,
    now: int,
    seed: int = 0,
    tokens: tuple[TokenSpec, ...] = DEFAULT_TOKENS,
    holding_probability: float = 0.5,
    positions_per_wallet: int = 2,
    history_days: int = 400,
    round_step_s: int = 4 * 3600,
    calendar: TradingCalendar | None = None,
    balance_form: str = "limbs",
) -> Snapshot:
    """A consistent world at ``now``: fresh feeds, a year of history, accounts mostly eligible.

    ``balance_form``: ``"limbs"`` (default) builds holdings' balances as the SQL loader does, decimal
    text through :func:`balances_from_decimal_strings` into the fixed-width form; ``"ints"`` gives
    the same values as Python ints (an ``object`` column).
    """
    cal = calendar if calendar is not None else xnys()
    rng = np.random.default_rng(seed)
    n_t = len(tokens)
    stock_feeds = [s.feed for s in tokens]
    feed_names = stock_feeds + [c[0] for c in CRYPTO_FEEDS]
    n_f = len(feed_names)
    kinds = np.array(
        [(FeedKind.STABLE if s.symbol == "USDC" else FeedKind.STOCK).code for s in tokens]
        + [FeedKind.CRYPTO.code] * len(CRYPTO_FEEDS),
        dtype=np.int8,
    )

    # history: a round every round_step_s until now, for every feed
    times = np.arange(now - history_days * 86_400, now + 1, round_step_s, dtype=np.int64)
    stock_px, crypto_px = _price_paths(tokens, times, rng)
    share_price = np.concatenate([stock_px, crypto_px], axis=1)  # (n_times, n_f), per share
    quote_mult = np.array(
        [s.multiplier if s.quote == PriceQuote.PER_TOKEN else 1.0 for s in tokens] + [1.0] * len(CRYPTO_FEEDS)
    )
    feed_px = share_price * quote_mult
    answers = np.round(feed_px * 10**FEED_DECIMALS).astype(np.int64)
    hist_ts = np.tile(times, n_f)
    hist_ans = answers.T.reshape(-1).astype(object)
    offsets = np.arange(n_f + 1, dtype=np.int64) * len(times)

    # latest round per feed: stock feeds last updated at the market's clock, crypto a minute ago
    stock_updated = now - 60 if bool(cal.is_open(now)) else int(cal.last_close_before(now)) - 60
    updated = np.array([stock_updated if k == FeedKind.STOCK.code else now - 60 for k in kinds], dtype=np.int64)
    latest = answers[-1]
    round_ids = np.array([(1 << 64) + 1000 + f for f in range(n_f)], dtype=object)
    feeds = Feeds(
        name=np.array(feed_names, dtype=object),
        kind=kinds,
        decimals=np.full(n_f, FEED_DECIMALS, dtype=np.int64),
        has_round=np.ones(n_f, dtype=bool),
        round_id=round_ids,
        answer_raw=np.array([int(a) for a in latest], dtype=object),
        updated_at=updated,
        answered_in_round=round_ids.copy(),
        heartbeat_s=np.zeros(n_f, dtype=np.int64),
    )

    # holdings: each wallet holds each token with holding_probability; USD value lognormal
    mask = rng.random((n_wallets, n_t)) < holding_probability
    wallet_idx, token_idx = np.nonzero(mask)
    usd = np.exp(rng.normal(np.log(20_000.0), 1.5, size=len(wallet_idx)))
    px_now = share_price[-1, :n_t] * np.array([s.multiplier for s in tokens])  # USD per token
    dec = np.array([s.decimals for s in tokens], dtype=np.int64)
    units = usd / px_now[token_idx]
    # balances as a SQL loader reads NUMERIC(78, 0): decimal text, parsed into uint256 limbs
    micro = np.floor(units * 1e6).astype(np.int64)
    if balance_form == "limbs":
        zeros = np.array([b"0" * int(d - 6) for d in dec], dtype=np.bytes_)
        raw = balances_from_decimal_strings(np.strings.add(micro.astype(np.bytes_), zeros[token_idx]))
    elif balance_form == "ints":
        raw = micro.astype(object) * (10 ** (dec[token_idx] - 6)).astype(object)
    else:
        raise ValueError(f"balance_form: {balance_form!r}, expected 'limbs' or 'ints'")
    supply_units = np.bincount(token_idx, weights=units, minlength=n_t) * 3.0 + 1.0
    supply_raw = np.array(
        [int(u * 10**6) * 10 ** int(d - 6) for u, d in zip(supply_units, dec, strict=True)], dtype=object
    )
    shares_per_unit = np.array(
        [1.0 if s.accounting == Accounting.REBASING_SHARES else s.multiplier for s in tokens]
    )
    reserve_shares = supply_units * shares_per_unit * 1.001
    holdings = Holdings(
        wallet_idx=wallet_idx.astype(np.int64),
        token_idx=token_idx.astype(np.int64),
        balance_raw=raw,
        frozen=rng.random(len(wallet_idx)) < 0.001,
    )
    toks = Tokens(
        symbol=np.array([s.symbol for s in tokens], dtype=object),
        decimals=dec,
        accounting=np.array([s.accounting.code for s in tokens], dtype=np.int8),
        multiplier_raw=np.array([int(round(s.multiplier * 1e6)) * 10**12 for s in tokens], dtype=object),
        paused=np.zeros(n_t, dtype=bool),
        feed_idx=np.arange(n_t, dtype=np.int64),
        quote=np.array([s.quote.code for s in tokens], dtype=np.int8),
        total_supply_raw=supply_raw,
        has_reserve=np.array([s.accounting == Accounting.REBASING_SHARES for s in tokens]),
        reserve_raw=np.array([int(r * 10**6) * 10**12 for r in reserve_shares], dtype=object),
        reserve_decimals=np.full(n_t, 18, dtype=np.int64),
    )

    juris = rng.choice(
        np.array(["DE", "SG", "GB", "FR", "CH", "AE", "US"]),
        size=n_wallets,
        p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.07, 0.03],
    )
    tiers = rng.choice(
        np.array(["retail", "professional", "institutional", "trial"]),
        size=n_wallets,
        p=[0.7, 0.2, 0.08, 0.02],
    )
    accounts = Accounts(
        wallet=np.array([f"0x{i:040x}" for i in range(n_wallets)], dtype=object),
        has_account=rng.random(n_wallets) < 0.99,
        jurisdiction=juris,
        tier=tiers,
        kyc_approved=rng.random(n_wallets) < 0.98,
        sanctioned=rng.random(n_wallets) < 0.001,
        cash_usd=np.round(rng.exponential(1000.0, size=n_wallets), 2),
    )

    n_p = n_wallets * positions_per_wallet
    p_wallet = np.repeat(np.arange(n_wallets, dtype=np.int64), positions_per_wallet)
    p_feed = np.tile(
        np.arange(n_t, n_f, dtype=np.int64), positions_per_wallet * n_wallets // max(1, n_f - n_t) + 1
    )[:n_p]
    mark = crypto_px[-1][p_feed - n_t]
    notional = np.exp(rng.normal(np.log(30_000.0), 1.2, size=n_p))
    side = np.where(rng.random(n_p) < 0.7, 1.0, -1.0)
    positions = Positions(
        wallet_idx=p_wallet,
        feed_idx=p_feed,
        size=side * notional / mark,
        entry_price=mark * np.exp(rng.normal(0.0, 0.05, size=n_p)),
        leverage=rng.choice(np.array([2.0, 3.0, 5.0, 10.0, 20.0]), size=n_p),
    )
    return Snapshot(
        block_number=20_000_000,
        block_timestamp=int(now),
        tokens=toks,
        feeds=feeds,
        history=FeedHistory(offsets=offsets, updated_at=hist_ts, answer_raw=hist_ans),
        holdings=holdings,
        accounts=accounts,
        positions=positions,
    )
