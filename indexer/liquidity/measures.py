"""Liquidity measures of a token's pools at one block, from the pools' states and swaps; pure.

Per pool (`PoolMeasure`): the mid price in quote units per whole token (exact) and in USD, the depth selling
the token (the largest sale whose execution moves the pool's price by at most 1%, 2%, 5%, fee included,
`v3.depths`), the token amount swapped in the 24 hours and the 7 days up to the block, and the number of
swaps. Per token (`TokenMeasure`): the depths and volumes summed over its pools, the pools' price weighted by
their 2% depth, and the issuer's primary flows (mints and burns: creations and redemptions) over the same
windows.

`PoolMeasure.sell` executes a sale into the pool exactly as its swap loop would (the liquidation of what is
pledged in a token, split across its pools by depth with `split_by_depth`).

Amounts stay exact integers in raw units here; `whole_units` is the one conversion to floats, used where the
risk engine's inputs are made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from indexer.liquidity.pools import PoolSnapshot
from indexer.liquidity.v3 import depths, mid_price, quote_exact_input

MOVES_BP = (100, 200, 500)  # the depths' price moves: 1%, 2%, 5%
DAY_S = 86_400
WEEK_S = 7 * DAY_S


@dataclass(frozen=True)
class PoolSide:
    """Which side of a pool the configured token is, and the decimals of both sides."""

    token_is_token0: bool
    token_decimals: int
    quote_decimals: int
    fee: int
    tick_spacing: int


@dataclass(frozen=True)
class PoolMeasure:
    pool: str
    block_number: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    price_quote: Fraction  # whole quote units per whole token
    quote_usd: float | None  # USD per whole quote unit (None: no price for the quote asset)
    depth_raw: dict[int, int]  # move in bp -> raw token units a sale can hold within it
    volume_24h_raw: int  # raw token units swapped (either direction)
    volume_7d_raw: int
    swaps_24h: int
    swaps_7d: int
    # the same in the quote asset: what selling each depth pays, executed as the pool would, and the quote side
    # of the swaps (raw quote units)
    depth_proceeds_raw: dict[int, int] = field(default_factory=dict)
    volume_24h_quote_raw: int = 0
    volume_7d_quote_raw: int = 0
    state: PoolSnapshot | None = field(default=None, compare=False, repr=False)  # what the measures came from
    side: PoolSide | None = field(default=None, compare=False, repr=False)

    @property
    def price_usd(self) -> float | None:
        return None if self.quote_usd is None else float(self.price_quote) * self.quote_usd

    def sell(self, amount_raw: int) -> Sale:
        """A sale of `amount_raw` token units into the pool at once, executed as the pool would (the swap loop,
        exact): what it takes (less when the pool runs dry) and the quote units it pays."""
        if amount_raw <= 0 or self.state is None or self.side is None or not self.state.initialized:
            return Sale(max(amount_raw, 0), 0, 0)
        q = quote_exact_input(self.state.state(self.side.fee, self.side.tick_spacing), self.side.token_is_token0,
                              amount_raw)
        return Sale(amount_raw, q.amount_in, q.amount_out)


@dataclass(frozen=True)
class Sale:
    offered_raw: int
    sold_raw: int  # the pool took this much before its price limit (all of it unless the pool ran dry)
    proceeds_quote_raw: int  # raw quote units paid


def split_by_depth(amount_raw: int, pools: Sequence[PoolMeasure], move_bp: int = 200) -> list[int]:
    """`amount_raw` split across the pools in proportion to their depth at `move_bp` (largest remainders, so the
    parts add up exactly); all in the first pool when none has depth."""
    weights = [p.depth_raw[move_bp] for p in pools]
    total = sum(weights)
    if not pools:
        return []
    if total == 0:
        return [amount_raw] + [0] * (len(pools) - 1)
    parts = [amount_raw * w // total for w in weights]
    rest = amount_raw - sum(parts)
    order = sorted(range(len(pools)), key=lambda i: (-(amount_raw * weights[i] % total), i))
    for i in order[:rest]:
        parts[i] += 1
    return parts


@dataclass(frozen=True)
class Flows:
    """The issuer's primary flows of a token in a window: mints (Transfer from the zero address: creations)
    and burns (Transfer to it: redemptions), raw units and counts."""

    minted_raw: int = 0
    burned_raw: int = 0
    mints: int = 0
    burns: int = 0


@dataclass(frozen=True)
class TokenMeasure:
    token: str
    decimals: int
    pools: tuple[PoolMeasure, ...]
    flows_24h: Flows
    flows_7d: Flows

    def depth_raw(self, move_bp: int) -> int:
        return sum(p.depth_raw[move_bp] for p in self.pools)

    def depth_usd(self, move_bp: int) -> float | None:
        """What selling each pool's depth pays, in USD, over the pools; None when a pool's quote has no price."""
        if any(p.quote_usd is None for p in self.pools):
            return None
        return sum(whole_units(p.depth_proceeds_raw.get(move_bp, 0), p.side.quote_decimals) * p.quote_usd
                   for p in self.pools)

    def volume_usd(self, window: str) -> float | None:
        """The quote side of the swaps in the last `24h` or `7d`, in USD; None when a pool's quote has no price."""
        if any(p.quote_usd is None for p in self.pools):
            return None
        return sum(whole_units(p.volume_24h_quote_raw if window == "24h" else p.volume_7d_quote_raw,
                               p.side.quote_decimals) * p.quote_usd for p in self.pools)

    @property
    def volume_24h_raw(self) -> int:
        return sum(p.volume_24h_raw for p in self.pools)

    @property
    def volume_7d_raw(self) -> int:
        return sum(p.volume_7d_raw for p in self.pools)

    @property
    def price_usd(self) -> float | None:
        """The pools' USD prices weighted by their 2% depth (all pools alike when none has depth); None when no
        pool's quote asset has a USD price."""
        priced = [p for p in self.pools if p.price_usd is not None]
        if not priced:
            return None
        weights = [p.depth_raw[200] for p in priced]
        if not sum(weights):
            weights = [1] * len(priced)
        return sum(w * p.price_usd for w, p in zip(weights, priced, strict=True)) / sum(weights)


def whole_units(raw: int, decimals: int) -> float:
    """Raw token units as a float of whole tokens: the measures' one conversion from exact integers."""
    return float(Fraction(raw, 10**decimals))


def pool_measure(pool: str, state: PoolSnapshot, side: PoolSide, swaps: Iterable[tuple[int, int, int]], at: int,
                 quote_usd: float | None) -> PoolMeasure:
    """The pool's measures at the block of `state` (time `at`); `swaps`: (timestamp, amount0, amount1) of its
    swaps up to that block (older than 7 days are ignored)."""
    v3 = state.state(side.fee, side.tick_spacing)
    d0, d1 = (side.token_decimals, side.quote_decimals) if side.token_is_token0 else \
        (side.quote_decimals, side.token_decimals)
    price = mid_price(v3, d0, d1, base=0 if side.token_is_token0 else 1) if state.initialized else Fraction(0)
    # selling the token: token0 for token1 pushes the price down (zero for one), and the other way round
    depth = depths(v3, side.token_is_token0, MOVES_BP) if state.initialized else dict.fromkeys(MOVES_BP, 0)
    proceeds = {m: quote_exact_input(v3, side.token_is_token0, d).amount_out if d > 0 else 0
                for m, d in depth.items()}
    v24 = v7 = n24 = n7 = q24 = q7 = 0
    for ts, a0, a1 in swaps:
        amount, quote = (abs(a0), abs(a1)) if side.token_is_token0 else (abs(a1), abs(a0))
        if ts > at - WEEK_S:
            v7 += amount
            q7 += quote
            n7 += 1
            if ts > at - DAY_S:
                v24 += amount
                q24 += quote
                n24 += 1
    return PoolMeasure(pool, state.block_number, state.sqrt_price_x96, state.tick, state.liquidity, price, quote_usd,
                       depth, v24, v7, n24, n7, proceeds, q24, q7, state, side)


def flows(transfers: Sequence[tuple[int, str, str, int]], at: int, window_s: int, zero: str) -> Flows:
    """Mints and burns among `transfers` (timestamp, from, to, amount) within `window_s` before `at`."""
    minted = burned = mints = burns = 0
    for ts, src, dst, amount in transfers:
        if ts <= at - window_s:
            continue
        if src == zero and dst != zero:
            minted += amount
            mints += 1
        elif dst == zero and src != zero:
            burned += amount
            burns += 1
    return Flows(minted, burned, mints, burns)
