"""What a synced database must agree with: the chain's own answers at the synced block."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from indexer.chain.abi import TOKEN_CONTRACT, load_abi
from indexer.chain.rpc import RpcClient
from indexer.config import Settings
from indexer.store import models as m
from indexer.types import Accounting


def synced_block(engine: Engine, chain_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(m.SyncCheckpoint.block_number).where(m.SyncCheckpoint.chain_id == chain_id)).scalar()


def eth_calls(rpc: RpcClient, calls: list[tuple[str, str, str, tuple]], block: int) -> list:
    out = []
    encoded = []
    for address, contract, fn, args in calls:
        f = load_abi(contract).fn(fn)
        encoded.append((f, ("eth_call", [{"to": address, "data": f.encode(*args)}, hex(block)])))
    for i in range(0, len(encoded), 2000):
        chunk = encoded[i:i + 2000]
        out += [f.decode(r) for (f, _), r in zip(chunk, rpc.batch([c for _, c in chunk]), strict=True)]
    return out


def assert_balances_match_chain(engine: Engine, settings: Settings, rpc: RpcClient) -> int:
    """Every stored (wallet, token) balance equals balanceOf at the synced block, and every holder
    the logs name is stored. Returns the number of rows compared."""
    cid = settings.chain.chain_id
    block = synced_block(engine, cid)
    b = m.Balance.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(b.c.token, b.c.wallet, b.c.balance_raw, b.c.shares_raw, b.c.units_raw)
                            .where(b.c.chain_id == cid)).all()
    acc = {t.address: t.accounting for t in settings.tokens}
    shares_known = {t.address for t in settings.tokens
                    if t.accounting == Accounting.REBASING_SHARES and t.balance_source == "logs"}
    calls = []
    for token, wallet, *_ in rows:
        contract = TOKEN_CONTRACT[acc[token]]
        calls.append((token, contract, "balanceOf", (wallet,)))
        if token in shares_known:
            calls.append((token, contract, "sharesOf", (wallet,)))
    answers = iter(eth_calls(rpc, calls, block))
    mismatches = []
    for token, wallet, balance, shares, units in rows:
        on_chain = next(answers)[0]
        if on_chain != balance:
            mismatches.append((token, wallet, balance, on_chain))
        if token in shares_known:
            chain_shares = next(answers)[0]
            if chain_shares != shares or chain_shares != units:
                mismatches.append((token, wallet, "shares", shares, chain_shares))
    assert not mismatches, f"{len(mismatches)} balances differ from the chain, e.g. {mismatches[:3]}"
    # holders the chain knows, that the table must hold: every Transfer recipient
    t = m.Transfer.__table__
    with engine.connect() as conn:
        recipients = conn.execute(select(func.count()).select_from(
            select(t.c.token, t.c.to_address).where(t.c.chain_id == cid, t.c.to_address != "0x" + "00" * 20)
            .distinct().subquery())).scalar()
    assert recipients <= len(rows)
    return len(rows)


def assert_transfers_match_logs(engine: Engine, settings: Settings, rpc: RpcClient) -> int:
    cid = settings.chain.chain_id
    block = synced_block(engine, cid)
    topic = load_abi("UiMultiplierStock").event("Transfer").topic0
    n = 0
    for lo in range(settings.chain.deployment_block, block + 1, 2000):
        n += len(rpc.call("eth_getLogs", [{"address": [t.address for t in settings.tokens], "topics": [topic],
                                            "fromBlock": hex(lo), "toBlock": hex(min(block, lo + 1999))}]))
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(m.Transfer).where(m.Transfer.chain_id == cid)).scalar()
    assert stored == n
    return n


def assert_rounds_match_chain(engine: Engine, settings: Settings, rpc: RpcClient) -> int:
    cid = settings.chain.chain_id
    block = synced_block(engine, cid)
    pr = m.PriceRound.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(pr.c.feed, pr.c.round_id, pr.c.answer_raw, pr.c.started_at, pr.c.updated_at,
                                   pr.c.answered_in_round).where(pr.c.chain_id == cid)).all()
    latest = eth_calls(rpc, [(f.address, "PriceFeed", "latestRound", ()) for f in settings.feeds], block)
    per_feed: dict[str, int] = {}
    for feed, *_ in rows:
        per_feed[feed] = per_feed.get(feed, 0) + 1
    for f, (round_id,) in zip(settings.feeds, latest, strict=True):
        assert per_feed.get(f.address, 0) == round_id & (2**64 - 1), f.name
    chain = eth_calls(rpc, [(feed, "PriceFeed", "getRoundData", (rid,)) for feed, rid, *_ in rows], block)
    for row, answer in zip(rows, chain, strict=True):
        assert tuple(row[1:]) == tuple(answer), row
    return len(rows)


def assert_token_state_matches_chain(engine: Engine, settings: Settings, rpc: RpcClient) -> None:
    cid = settings.chain.chain_id
    block = synced_block(engine, cid)
    ts = m.TokenState.__table__
    with engine.connect() as conn:
        rows = {r.token: r for r in conn.execute(select(ts).where(ts.c.chain_id == cid, ts.c.block_number == block))}
    for t in settings.tokens:
        row = rows[t.address]
        contract = TOKEN_CONTRACT[t.accounting]
        (supply,), = eth_calls(rpc, [(t.address, contract, "totalSupply", ())], block)
        assert row.total_supply_raw == supply
        if t.accounting == Accounting.REBASING_SHARES:
            (mult, _, _), = eth_calls(rpc, [(t.address, contract, "getCurrentMultiplier", ())], block)
            assert row.multiplier_raw == mult
        elif t.accounting == Accounting.UI_MULTIPLIER:
            (mult,), = eth_calls(rpc, [(t.address, contract, "uiMultiplier", ())], block)
            assert row.multiplier_raw == mult
        if t.accounting != Accounting.PLAIN:
            (paused,), = eth_calls(rpc, [(t.address, contract, "paused", ())], block)
            assert row.paused == paused
