"""The demo world's off-chain book: deterministic per seed, positions opened at the world's own crypto prices
before the book's time, with a realistic leverage mix (no chain needed: the world's plan is pure)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from indexer.devchain.book import LEVERAGE, book_rows, market_path
from indexer.devchain.specs import CRYPTO, SCALES, TIMELINE, TOKENS
from indexer.devchain.world import WorldSim
from indexer.risk import load_policy
from tests.devchain.test_world_plan import fake_deployment

DAYS = 24


def played(seed: int) -> tuple[WorldSim, dict[str, dict[int, float]]]:
    """The first DAYS days of the world planned block by block, with the crypto feeds' rounds as the world
    publishes them (one per block on the hour): {base asset: {time: answer in USD}}."""
    sim = WorldSim(seed, SCALES["small"], replace(TIMELINE, days=DAYS), fake_deployment())
    sim.initial_mints(sim.tl.start - 1_800)
    rounds: dict[str, dict[int, float]] = {c.pair.split("/")[0]: {} for c in CRYPTO}
    for t in sim.block_times():
        sim.next_block(t)
        if t % 3600 == 0:
            for j, c in enumerate(CRYPTO):
                price = math.exp(sim.log_fair[len(TOKENS) + j])
                rounds[c.pair.split("/")[0]][t] = round(price * 1e8) / 1e8
    return sim, rounds


@pytest.fixture(scope="module")
def seven():
    return played(7)


def test_the_book_is_deterministic_per_seed(seven):
    sim, _ = seven
    accounts, positions = book_rows(sim)
    assert (accounts, positions) == book_rows(sim)
    other, _ = played(8)
    assert book_rows(other)[1] != positions
    # the replay the book reads its prices from reaches the world's own prices
    path = market_path(sim)
    assert len(path.times) == sim.block_index and np.array_equal(path.log_prices[-1], sim.log_fair)


def test_positions_open_at_the_worlds_own_prices_before_the_books_time(seven):
    sim, rounds = seven
    accounts, positions = book_rows(sim)
    assert len(positions) > 50
    by_price = {base: {f"{p:.2f}": t for t, p in r.items()} for base, r in rounds.items()}
    opened = []
    for p in positions:
        # each entry is the round of its base asset in force at some hour of the world before the book's time
        t = by_price[p["base_asset"]].get(p["entry_price"])
        assert t is not None and t <= sim.last_time, p
        opened.append(t)
    # spread over the world's days, not one price: the market moved between the entries
    assert len({p["entry_price"] for p in positions}) > len(positions) // 2
    btc = [float(p["entry_price"]) for p in positions if p["base_asset"] == "BTC"]
    assert max(btc) / min(btc) > 1.05
    ages = (sim.last_time - np.array(opened)) / 86_400
    assert 3 < float(np.median(ages)) < 12 and ages.max() <= DAYS

    # leverage: mostly 2-5x, few at 10x or more, none above the venue's cap
    leverage = np.array([float(p["leverage"]) for p in positions])
    assert set(leverage) <= {lv for lv, _ in LEVERAGE}
    assert np.mean(leverage <= 5) >= 0.8 and 0.02 <= np.mean(leverage >= 10) <= 0.2
    assert leverage.max() <= load_policy("default").margin.max_leverage
    # shorts are the few hedges
    assert 0 < sum(float(p["size"]) < 0 for p in positions) < len(positions) // 5
    # no position for a client the venue may not serve
    served = {a["wallet"] for a in accounts if a["kyc_status"] == "approved" and a["jurisdiction"] != "US"}
    assert {p["wallet"] for p in positions} <= served
    assert any(a["jurisdiction"] == "US" for a in accounts) and any(a["kyc_status"] == "pending" for a in accounts)


def test_a_position_is_sized_on_what_the_venue_counted_at_its_entry(seven):
    """The world's dated events before the entry take a token or a wallet's holdings out of the estimate."""
    from indexer.devchain.book import refused_at
    from indexer.devchain.specs import DAY, FROZEN_AMZN, FROZEN_MSFT, SANCTIONED

    sim, _ = seven
    day = lambda n: TIMELINE.start + n * DAY + 23 * 3600  # noqa: E731 - late on day n, after its events
    symbols = [t.symbol for t in TOKENS]
    names = lambda refused: {s for s, r in zip(symbols, refused, strict=True) if r}  # noqa: E731
    assert names(refused_at(sim, 50, day(20))) == set()
    assert names(refused_at(sim, 50, day(100))) == {"NVDAx"}  # reserves at 97% of supply
    assert names(refused_at(sim, 50, day(105))) == {"NVDAx", "MSTRx"}  # paused for two days
    assert names(refused_at(sim, 50, day(119))) == {"NVDAx", "TLT"}
    assert names(refused_at(sim, FROZEN_MSFT[0], day(89))) == {"MSFT"}
    assert names(refused_at(sim, FROZEN_AMZN, day(95))) == {"AMZN"}
    assert names(refused_at(sim, FROZEN_AMZN, day(110))) == {"NVDAx"}  # unfrozen on day 109
    assert names(refused_at(sim, SANCTIONED[0], day(98))) == set()
    assert names(refused_at(sim, SANCTIONED[0], day(99))) == set(symbols)
