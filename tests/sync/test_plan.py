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
