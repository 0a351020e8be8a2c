"""The pure rules the tick is planned with: its target block, its range, and the fork point of a reorg."""

from __future__ import annotations

from indexer.chain.headers import target_block
from indexer.store.progress import Checkpoint
from indexer.sync.reorg import find_fork
from indexer.sync.tick import TickRange, plan_range


def test_the_target_is_the_head_less_the_confirmations():
    assert target_block(1_000, 0) == 1_000
    assert target_block(1_000, 12) == 988


def test_a_range_starts_after_the_checkpoint_and_stops_at_the_target_or_the_tick_size():
    assert plan_range(None, 5, 100, 10) == TickRange(5, 14, None)
    assert plan_range(Checkpoint(40, "0xabc", 0), 5, 100, 10) == TickRange(41, 50, "0xabc")
    assert plan_range(Checkpoint(95, "0xdef", 0), 5, 100, 10) == TickRange(96, 100, "0xdef")
    assert plan_range(Checkpoint(100, "0xdef", 0), 5, 100, 10) is None
    assert plan_range(None, 101, 100, 10) is None  # the deployment is above the target: nothing yet


def test_the_fork_is_the_highest_stored_block_the_chain_still_has():
    stored = [(12, "0xc"), (11, "0xb"), (10, "0xa")]  # highest first, as the store lists them
    assert find_fork(stored, {12: "0xc2", 11: "0xb2", 10: "0xa"}) == 10
    assert find_fork(stored, {12: "0xc", 11: "0xb", 10: "0xa"}) == 12
    assert find_fork(stored, {12: None, 11: "0xb", 10: "0xa"}) == 11  # a block the node no longer has
    assert find_fork(stored, {12: "0xx", 11: "0xy", 10: "0xz"}) is None  # deeper than these: look further down
    assert find_fork([], {}) is None


P = 1 << 64


def test_every_round_of_every_phase_is_read_whatever_the_steps():
    from indexer.sync.derive import missing_round_ids

    # first sync of a feed on its third aggregator: phases 1 and 2 whole, then phase 3 up to the latest
    assert missing_round_ids(3 * P + 2, {}, {1: 3, 2: 2}) == [P + 1, P + 2, P + 3, 2 * P + 1, 2 * P + 2, 3 * P + 1,
                                                              3 * P + 2]
    # a sync that stored phase 1 up to round 2 before the aggregator changed: the rest of phase 1 too
    assert missing_round_ids(2 * P + 1, {1: 2}, {1: 4}) == [P + 3, P + 4, 2 * P + 1]
    # up to date: nothing; an old aggregator that published again after its phase ended: those rounds
    assert missing_round_ids(2 * P + 5, {1: 4, 2: 5}, {1: 4}) == []
    assert missing_round_ids(2 * P + 5, {1: 4, 2: 5}, {1: 6}) == [P + 5, P + 6]
    # a plain aggregator (no proxy): round ids without a phase
    assert missing_round_ids(3, {0: 1}, {}) == [2, 3]
