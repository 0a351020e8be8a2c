"""A Uniswap v3 pool's state at any block, folded from its stored events; pure, exact integers.

A pool's state at a block is what its `Initialize`, `Mint`, `Burn` and `Swap` logs made of the state before
them, as `UniswapV3Pool` 1.0.1 does it:

- `Initialize(sqrtPriceX96, tick)` sets slot0; the liquidity in range starts at 0.
- `Mint(owner, tickLower, tickUpper, amount)` adds `amount` to both ticks' `liquidityGross`, to the lower
  tick's `liquidityNet` and subtracts it from the upper's; when slot0's tick is in `[tickLower, tickUpper)`
  (`_modifyPosition`: `_slot0.tick >= params.tickLower && _slot0.tick < params.tickUpper`) it adds to the
  in-range liquidity. A tick whose gross goes back to 0 is cleared (`ticks.clear` on a flip).
- `Burn` is the same with `-amount` (an `amount` of 0 collects fees and changes nothing).
- `Swap(..., sqrtPriceX96, liquidity, tick)` logs slot0 and the in-range liquidity after the swap: a swap
  changes no tick's liquidity, it only crosses them.

The fold starts from a state read from the chain (`PoolSnapshot`: slot0, liquidity and every initialized tick
at one block) or, for a pool the sync saw created, from nothing before its `Initialize`. `differences` compares
a folded state with one read at the same block: the sync records any difference as an issue and takes the read
as the new start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from indexer.liquidity.v3 import PoolState, add_delta


@dataclass(frozen=True)
class PoolEvent:
    """One stored pool log, as the fold needs it (the other columns are for analysts)."""

    block_number: int
    log_index: int
    event: str  # Initialize | Mint | Burn | Swap
    tick_lower: int | None = None  # Mint, Burn
    tick_upper: int | None = None
    amount: int = 0  # Mint, Burn: the position's liquidity change (uint128)
    amount0: int = 0  # Swap: the pool's token0 balance change (signed); Mint, Burn: token0 owed
    amount1: int = 0
    sqrt_price_x96: int | None = None  # Initialize, Swap: slot0 after the log
    liquidity: int | None = None  # Swap: the in-range liquidity after it
    tick: int | None = None  # Initialize, Swap: slot0's tick after the log


@dataclass(frozen=True)
class Tick:
    gross: int  # liquidityGross
    net: int  # liquidityNet


@dataclass(frozen=True)
class PoolSnapshot:
    """A pool at one block: slot0, the in-range liquidity and its initialized ticks; `initialized` is False
    before the pool's `Initialize` (slot0 all zeros)."""

    block_number: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    ticks: Mapping[int, Tick] = field(default_factory=dict)

    @property
    def initialized(self) -> bool:
        return self.sqrt_price_x96 != 0

    def state(self, fee: int, tick_spacing: int) -> PoolState:
        """The swap math's view of it (`indexer.liquidity.v3.PoolState`)."""
        return PoolState(self.sqrt_price_x96, self.tick, self.liquidity, fee, tick_spacing,
                         {t: k.net for t, k in self.ticks.items()})


def empty(block_number: int) -> PoolSnapshot:
    """A pool before its `Initialize`."""
    return PoolSnapshot(block_number, 0, 0, 0, {})


class FoldError(ValueError):
    """The events cannot follow the state they are folded onto (a liquidity below 0, a second Initialize):
    the stored start or events are not the chain's."""


def fold(start: PoolSnapshot, events: Iterable[PoolEvent], until: int | None = None) -> PoolSnapshot:
    """`start` with the events after its block (up to block `until` when given) applied in log order."""
    sqrt_price, tick, liquidity = start.sqrt_price_x96, start.tick, start.liquidity
    ticks = dict(start.ticks)
    last = start.block_number
    for e in sorted(events, key=lambda e: (e.block_number, e.log_index)):
        if e.block_number <= start.block_number:
            continue
        if until is not None and e.block_number > until:
            break
        last = e.block_number
        if e.event == "Initialize":
            if sqrt_price != 0:
                raise FoldError(f"Initialize at block {e.block_number} of a pool already initialized")
            sqrt_price, tick = int(e.sqrt_price_x96), int(e.tick)
        elif e.event == "Swap":
            sqrt_price, tick, liquidity = int(e.sqrt_price_x96), int(e.tick), int(e.liquidity)
        elif e.event in ("Mint", "Burn"):
            if not e.amount:
                continue
            delta = e.amount if e.event == "Mint" else -e.amount
            lower, upper = int(e.tick_lower), int(e.tick_upper)
            _add(ticks, lower, delta, delta, e)
            _add(ticks, upper, delta, -delta, e)
            if lower <= tick < upper and sqrt_price != 0:
                try:
                    liquidity = add_delta(liquidity, delta)
                except ValueError as exc:
                    raise FoldError(f"{e.event} at block {e.block_number}: in-range liquidity {liquidity} "
                                    f"cannot change by {delta}") from exc
    return PoolSnapshot(last if until is None else max(until, start.block_number), sqrt_price, tick, liquidity, ticks)


def _add(ticks: dict[int, Tick], at: int, gross: int, net: int, e: PoolEvent) -> None:
    old = ticks.get(at, Tick(0, 0))
    new_gross = old.gross + gross
    if new_gross < 0:
        raise FoldError(f"{e.event} at block {e.block_number} takes tick {at}'s liquidityGross below 0")
    if new_gross == 0:
        ticks.pop(at, None)
    else:
        ticks[at] = Tick(new_gross, old.net + net)


def differences(folded: PoolSnapshot, read: PoolSnapshot, only_ticks: Iterable[int] | None = None) -> list[str]:
    """What a state read from the chain says that the folded one does not, in words (empty: they agree).
    `only_ticks`: compare those ticks only (the read holds only them); otherwise every tick."""
    out = []
    for name in ("sqrt_price_x96", "tick", "liquidity"):
        a, b = getattr(folded, name), getattr(read, name)
        if a != b:
            out.append(f"{name} {b} on chain, {a} from the events")
    keys = sorted(set(folded.ticks) | set(read.ticks)) if only_ticks is None else sorted(set(only_ticks))
    for t in keys:
        a, b = folded.ticks.get(t, Tick(0, 0)), read.ticks.get(t, Tick(0, 0))
        if a != b:
            out.append(f"tick {t}: gross/net {b.gross}/{b.net} on chain, {a.gross}/{a.net} from the events")
    return out


def touched_ticks(events: Iterable[PoolEvent]) -> set[int]:
    """The ticks whose liquidity the events changed."""
    return {t for e in events if e.event in ("Mint", "Burn") and e.amount
            for t in (int(e.tick_lower), int(e.tick_upper))}


def with_ticks(snapshot: PoolSnapshot, ticks: Mapping[int, Tick]) -> PoolSnapshot:
    return replace(snapshot, ticks=dict(ticks))
