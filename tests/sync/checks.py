"""What a synced database must agree with: the chain's own answers at the synced block.

Calls are made by their real signatures (docs/contracts.md), so the checks read any token or feed the
way a block explorer would, whatever contract implements it."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from indexer.accounting import balance_of_units, units_model
from indexer.chain.decode import topic_of
from indexer.chain.multicall import Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.chain.tokens import READS, Read
from indexer.chain.vaults import CONVERT_TO_ASSETS, TOTAL_ASSETS
from indexer.config import Settings
from indexer.liquidity.vaults import VaultRead
from indexer.risk.uint256 import ints_from_limbs
from indexer.runs.snapshot import load_snapshot, tokens_in_force
from indexer.store import models as m
from indexer.store.balances import units_at
from indexer.store.registry import token_rows
from indexer.store.vaults import last_vault_rates
from indexer.types import Accounting

BALANCE_OF = Read("balanceOf(address)", ("uint256",))
SHARES_OF = READS["sharesOf"]
LATEST_ROUND = Read("latestRound()", ("uint256",))
PHASE_ID = Read("phaseId()", ("uint16",))
PHASE_AGGREGATORS = Read("phaseAggregators(uint16)", ("address",))
GET_ROUND_DATA = Read("getRoundData(uint80)", ("uint80", "int256", "uint256", "uint256", "uint80"))
TRANSFER = topic_of("Transfer(address,address,uint256)")


def word(value: int | str) -> bytes:
    """One ABI word of an address or an integer argument."""
    return bytes.fromhex(value[2:]).rjust(32, b"\0") if isinstance(value, str) else value.to_bytes(32, "big")


def synced_block(engine: Engine, chain_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(m.SyncCheckpoint.block_number).where(m.SyncCheckpoint.chain_id == chain_id)).scalar()


def eth_calls(rpc: RpcClient, calls: list[tuple[str, Read, tuple]], block: int) -> list:
    """[(address, read, args)] -> the decoded answers at `block` (None where the call reverted)."""
    encoded = [(read, ("eth_call", [{"to": address, "data": "0x" + (read.selector + b"".join(map(word, args))).hex()},
                                    hex(block)])) for address, read, args in calls]
    out = []
    for i in range(0, len(encoded), 2000):
        chunk = encoded[i:i + 2000]
        for (read, _), r in zip(chunk, rpc.batch([c for _, c in chunk], raise_errors=False), strict=True):
            out.append(None if isinstance(r, Exception) or r in (None, "0x") else read.decode(bytes.fromhex(r[2:])))
    return out


def assert_balances_match_chain(engine: Engine, settings: Settings, rpc: RpcClient) -> int:
    """Every stored (wallet, token) balance equals balanceOf at the synced block (and its shares sharesOf),
    and every holder the logs name is stored. Returns the number of rows compared."""
    cid = settings.chain.chain_id
    block = synced_block(engine, cid)
    b = m.Balance.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(b.c.token, b.c.wallet, b.c.balance_raw, b.c.shares_raw, b.c.units_raw)
                            .where(b.c.chain_id == cid)).all()
    shares_known = {t.address for t in settings.tokens
                    if t.accounting == Accounting.REBASING_SHARES and t.balance_source == "logs"}
    calls = []
    for token, wallet, *_ in rows:
        calls.append((token, BALANCE_OF, (wallet,)))
        if token in shares_known:
            calls.append((token, SHARES_OF, (wallet,)))
    answers = iter(eth_calls(rpc, calls, block))
    mismatches = []
    for token, wallet, balance, shares, units in rows:
        on_chain = next(answers)
        if on_chain != balance:
            mismatches.append((token, wallet, balance, on_chain))
        if token in shares_known:
            chain_shares = next(answers)
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
    n = 0
    for lo in range(settings.chain.deployment_block, block + 1, 2000):
        n += len(rpc.call("eth_getLogs", [{"address": [t.address for t in settings.tokens], "topics": [TRANSFER],
                                            "fromBlock": hex(lo), "toBlock": hex(min(block, lo + 1999))}]))
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(m.Transfer).where(m.Transfer.chain_id == cid)).scalar()
    assert stored == n
    return n


def chain_round_ids(rpc: RpcClient, feed: str, block: int) -> list[int]:
    """Every round id a feed proxy answers for at `block`: each phase's aggregator rounds, phase bits on."""
    (phase,) = eth_calls(rpc, [(feed, PHASE_ID, ())], block)
    aggregators = eth_calls(rpc, [(feed, PHASE_AGGREGATORS, (p,)) for p in range(1, phase + 1)], block)
    counts = eth_calls(rpc, [(a, LATEST_ROUND, ()) for a in aggregators], block)
    return [(p << 64) | i for p, n in enumerate(counts, start=1) for i in range(1, n + 1)]


def assert_rounds_match_chain(engine: Engine, settings: Settings, rpc: RpcClient) -> int:
    """Every round of every phase of every feed is stored, as getRoundData answers it through the proxy."""
    cid = settings.chain.chain_id
    block = synced_block(engine, cid)
    pr = m.PriceRound.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(pr.c.feed, pr.c.round_id, pr.c.answer_raw, pr.c.started_at, pr.c.updated_at,
                                   pr.c.answered_in_round, pr.c.phase).where(pr.c.chain_id == cid)).all()
    stored: dict[str, set[int]] = {}
    for row in rows:
        stored.setdefault(row.feed, set()).add(row.round_id)
        assert row.phase == row.round_id >> 64, row
    for f in settings.feeds:
        assert stored.get(f.address, set()) == set(chain_round_ids(rpc, f.address, block)), f.name
    chain = eth_calls(rpc, [(row.feed, GET_ROUND_DATA, (row.round_id,)) for row in rows], block)
    for row, answer in zip(rows, chain, strict=True):
        assert tuple(row[1:6]) == tuple(answer), row
    return len(rows)


def chain_multiplier_and_pause(rpc: RpcClient, tokens: list[str], block: int) -> dict[str, tuple[int, bool]]:
    """{token: (multiplier in force, paused)} as the contract answers at `block`: getCurrentMultiplier()
    (xStocks), uiMultiplier() (ERC-8056), multiplier() (Base B20), else 1e18; isPaused() or paused()."""
    names = ("getCurrentMultiplier", "uiMultiplier", "multiplier", "isPaused", "paused")
    answers = iter(eth_calls(rpc, [(t, READS[n], ()) for t in tokens for n in names], block))
    out = {}
    for t in tokens:
        current, ui, b20, is_paused, paused = (next(answers) for _ in names)
        mult = current[0] if current is not None else ui if ui is not None else b20 if b20 is not None else 10**18
        out[t] = (int(mult), bool(is_paused if is_paused is not None else paused))
    return out


def assert_token_state_matches_chain(engine: Engine, settings: Settings, rpc: RpcClient) -> None:
    cid = settings.chain.chain_id
    block = synced_block(engine, cid)
    ts = m.TokenState.__table__
    with engine.connect() as conn:
        rows = {r.token: r for r in conn.execute(select(ts).where(ts.c.chain_id == cid, ts.c.block_number == block))}
    addresses = [t.address for t in settings.tokens]
    truth = chain_multiplier_and_pause(rpc, addresses, block)
    supplies = eth_calls(rpc, [(a, READS["totalSupply"], ()) for a in addresses], block)
    for t, supply in zip(settings.tokens, supplies, strict=True):
        row = rows[t.address]
        assert row.total_supply_raw == supply, t.symbol
        assert (row.multiplier_raw, row.paused) == truth[t.address], t.symbol


def assert_vault_rates_match_chain(engine: Engine, settings: Settings, rpc: RpcClient) -> int:
    """Each configured ERC-4626 vault's rate in force at the synced head (its last stored read) equals what the
    vault answers there: convertToAssets(10**decimals), totalAssets(), totalSupply(), and a rebasing asset's
    getCurrentMultiplier(). Returns the number of vaults compared."""
    cid = settings.chain.chain_id
    block = synced_block(engine, cid)
    vaults = [t for t in settings.tokens if t.vault_asset is not None]
    with engine.connect() as conn:
        stored = last_vault_rates(conn, cid)
    for t in vaults:
        asset = settings.token(t.vault_asset)  # type: ignore[arg-type]
        rate, assets, supply = eth_calls(rpc, [(t.address, CONVERT_TO_ASSETS, (10**t.decimals,)),
                                               (t.address, TOTAL_ASSETS, ()), (t.address, READS["totalSupply"], ())],
                                         block)
        multiplier = (eth_calls(rpc, [(asset.address, READS["getCurrentMultiplier"], ())], block)[0][0]
                      if asset.accounting == Accounting.REBASING_SHARES else None)
        assert stored[t.address] == VaultRead(rate, assets, supply, multiplier), t.symbol
    return len(vaults)


def _read_at(rpc: RpcClient, calls: list[tuple[str, Read, tuple]], block: int, multicall: str) -> list:
    """Like `eth_calls`, in Multicall3 round trips (None where a call reverted)."""
    answers = read_calls(rpc, [Call(a, r.selector + b"".join(map(word, args))) for a, r, args in calls], block,
                         multicall=multicall)
    return [r.decode(data) if ok and data else None for (_, r, _), (ok, data) in zip(calls, answers, strict=True)]


def assert_blocks_match_chain(engine: Engine, settings: Settings, rpc: RpcClient, first: int, last: int, *,
                              full_every: int = 10, max_snapshots: int | None = None) -> dict[str, int]:
    """At every stored block in [first, last] (the node must still hold their state): each token's
    multiplier in force and pause, as a risk run at that block takes them, equal getCurrentMultiplier() /
    uiMultiplier() / multiplier() and isPaused() / paused(); every balance that moved in the block equals
    balanceOf (and sharesOf); and at every `full_every`-th block, at every block where token state was
    read for an event, and at the block after, a risk run's whole snapshot (each holding, each token's
    multiplier and pause) equals the chain; `max_snapshots` keeps that many of those blocks, evenly spread.
    Returns what was compared."""
    cid, mc = settings.chain.chain_id, settings.chain.multicall3
    blocks_t, changes_t, state_t = m.Block.__table__, m.BalanceChange.__table__, m.TokenState.__table__
    with engine.connect() as conn:
        toks = token_rows(conn, cid)
        blocks = conn.execute(select(blocks_t.c.number, blocks_t.c.timestamp).where(
            blocks_t.c.chain_id == cid, blocks_t.c.number.between(first, last)).order_by(blocks_t.c.number)).all()
        moved = conn.execute(select(changes_t.c.block_number, changes_t.c.token, changes_t.c.wallet,
                                    changes_t.c.units_raw).where(
            changes_t.c.chain_id == cid, changes_t.c.block_number.between(first, last))
            .order_by(changes_t.c.block_number, changes_t.c.log_index)).all()
        state_blocks = set(conn.execute(select(state_t.c.block_number).where(
            state_t.c.chain_id == cid, state_t.c.block_number.between(first, last))).scalars())
        # a risk run values a block from the first one where every token's state was read
        valued_from = conn.execute(select(func.max(select(func.min(state_t.c.block_number)).where(
            state_t.c.chain_id == cid).group_by(state_t.c.token).subquery().c[0]))).scalar()
    models = {t["address"]: units_model(Accounting(t["accounting"]), t["balance_source"]) for t in toks}
    addresses = [t["address"] for t in toks]
    by_block: dict[int, dict[tuple[str, str], int]] = {}
    for block, token, wallet, units in moved:
        by_block.setdefault(block, {})[(token, wallet)] = int(units)  # the last row of the block wins
    stored = [n for n, _ in blocks if valued_from is not None and n >= valued_from]
    full = sorted(n for n in stored if n % full_every == 0 or n in state_blocks or n - 1 in state_blocks)
    if max_snapshots is not None and len(full) > max_snapshots:
        full = full[::-(-len(full) // max_snapshots)]
    full = set(full)
    counts = {"blocks": 0, "balances": 0, "snapshots": 0}
    for number, ts in blocks:
        if valued_from is None or number < valued_from:
            continue
        with engine.connect() as conn:
            mults, states = tokens_in_force(conn, cid, toks, number, int(ts))
        truth = chain_multiplier_and_pause(rpc, addresses, number)
        mine = {a: (mults[a], bool(states[a]["paused"])) for a in addresses}
        assert mine == truth, (number, {a: (mine[a], truth[a]) for a in addresses if mine[a] != truth[a]})
        pairs = sorted(by_block.get(number, {}).items())
        calls = [(t, BALANCE_OF, (w,)) for (t, w), _ in pairs]
        calls += [(t, SHARES_OF, (w,)) for (t, w), _ in pairs if models[t] == Accounting.REBASING_SHARES]
        answers = iter(_read_at(rpc, calls, number, mc))
        expected = [balance_of_units(models[t], u, mults[t])[0] for (t, _), u in pairs]
        expected += [u for (t, _), u in pairs if models[t] == Accounting.REBASING_SHARES]
        got = list(answers)
        assert got == expected, (number, [(c, e, g) for c, e, g in zip(calls, expected, got, strict=True) if e != g][:3])
        counts["blocks"] += 1
        counts["balances"] += len(pairs)
        if number in full:
            _assert_snapshot_matches_chain(engine, settings, rpc, number)
            counts["snapshots"] += 1
    return counts


def _assert_snapshot_matches_chain(engine: Engine, settings: Settings, rpc: RpcClient, number: int) -> None:
    """A risk run's inputs at a past block: every holding equals balanceOf, every token's multiplier and
    pause equal the contract's, and no holder the chain knows is missing."""
    cid, mc = settings.chain.chain_id, settings.chain.multicall3
    with engine.connect() as conn:
        snap, keys = load_snapshot(conn, cid, number)
    tokens, h = keys.token_addresses, snap.holdings
    held = {(tokens[int(t)], keys.wallets[int(w)]): v
            for w, t, v in zip(h.wallet_idx, h.token_idx, ints_from_limbs(h.balance_raw), strict=True)}
    truth = chain_multiplier_and_pause(rpc, tokens, number)
    for i, t in enumerate(tokens):
        assert (int(snap.tokens.multiplier_raw[i]), bool(snap.tokens.paused[i])) == truth[t], (number, t)
    pairs = sorted(held)
    with engine.connect() as conn:  # every holder ever stored: one that the snapshot lacks must hold 0
        everyone = sorted({(t, w) for t, w, _ in units_at(conn, cid, number)})
    answers = _read_at(rpc, [(t, BALANCE_OF, (w,)) for t, w in everyone], number, mc)
    on_chain = {pair: v for pair, v in zip(everyone, answers, strict=True) if v}
    assert {p: held[p] for p in pairs} == on_chain, (number, [(p, held.get(p), on_chain.get(p)) for p in
                                                             set(pairs) | set(on_chain)
                                                             if held.get(p) != on_chain.get(p)][:3])
