"""A token's surface (the read functions it answers) and the accounting model it means."""

from __future__ import annotations

from indexer.chain.tokens import READS, Surface, paused_of, surface_of
from indexer.types import Accounting


def _answers(**returns: bytes) -> list[tuple[bool, bytes]]:
    return [(name in returns, returns.get(name, b"")) for name in READS]


WORD = (10**18).to_bytes(32, "big")


def test_the_surface_says_the_accounting_model():
    xstock = surface_of(_answers(totalSupply=WORD, sharesOf=WORD, getCurrentMultiplier=WORD * 3, isPaused=bytes(32)))
    assert xstock.accounting == Accounting.REBASING_SHARES
    assert "getCurrentMultiplier" in xstock.state_reads and "isPaused" in xstock.state_reads
    erc8056 = surface_of(_answers(totalSupply=WORD, uiMultiplier=WORD, oraclePaused=bytes(32)))
    assert erc8056.accounting == Accounting.UI_MULTIPLIER and "oraclePaused" in erc8056.state_reads
    b20 = surface_of(_answers(totalSupply=WORD, multiplier=WORD))  # Base B20: multiplier() and raw balances
    assert b20.accounting == Accounting.UI_MULTIPLIER
    assert surface_of(_answers(totalSupply=WORD)).accounting == Accounting.PLAIN


def test_an_answer_of_another_shape_is_no_such_function():
    s = surface_of(_answers(totalSupply=WORD, sharesOf=b"", getCurrentMultiplier=b"\x01"))
    assert s == Surface(frozenset({"totalSupply"}))


def test_the_first_backed_version_answers_two_words_for_the_current_multiplier():
    assert READS["getCurrentMultiplier"].decode(WORD * 2) == (10**18, 10**18)
    assert READS["getCurrentMultiplier"].decode(WORD * 3) == (10**18,) * 3


def test_pause_is_isPaused_for_backed_and_paused_elsewhere():  # noqa: N802
    assert paused_of({"isPaused": True}) and paused_of({"paused": True})
    assert not paused_of({"isPaused": False, "paused": True}) and not paused_of({})
