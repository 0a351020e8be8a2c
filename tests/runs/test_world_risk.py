"""Risk runs on the synced demo world: the world's frozen wallets, paused token, reserve shortfall and
sanctions show up with the right codes; the joint equity-crypto crash moves wallets to margin_call or
liquidate as the numbers say. Real anvil, SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indexer.chain.rpc import RpcClient
from indexer.cli import app
from indexer.devchain.specs import FROZEN_AMZN, FROZEN_MSFT, SANCTIONED, utc
from indexer.offchain import load_files
from indexer.risk import Eligibility
from indexer.runs.job import run_and_store
from indexer.runs.snapshot import SnapshotUnavailable, load_snapshot
from indexer.store import models as m
from indexer.store.engine import open_store
from indexer.sync.startup import prepare
from indexer.sync.tick import sync
from tests.conftest import DATABASES
from tests.runs.worlds import POLICY, follow, synced_world


def rows_of(engine, model, *where):
    with Session(engine) as session:
        return session.execute(select(model).where(*where)).scalars().all()


def holdings_of(engine, run_id: int):
    return rows_of(engine, m.RiskHolding, m.RiskHolding.run_id == run_id)


def wallets_of(engine, run_id: int):
    return rows_of(engine, m.RiskWallet, m.RiskWallet.run_id == run_id)


def assert_status_follows_the_numbers(wallets) -> None:
    for w in wallets:
        expected = "liquidate" if w.equity < w.mm else "margin_call" if w.equity < w.im else "healthy"
        if w.unpriced_positions:
            expected = "unpriced"
        elif w.stale_driven:  # a stale price alone goes no further than a margin call
            assert expected != "healthy" and w.status == "margin_call", w
            continue
        assert w.status == expected, w
        assert w.equity == pytest.approx(w.collateral + w.upnl + w.cash, rel=1e-9, abs=1e-6)
        # the parametric stress is risk-off: it also loses what shrinking DEX depth costs (docs/risk.md section 15)
        assert w.stressed_excess == pytest.approx(
            w.equity - w.im - max(w.l_joint + w.liquidity_stress_loss, w.worst_scenario_loss), rel=1e-9, abs=1e-6)


def test_world_head_run_shows_every_issuer_action(world, manifest, db_url):
    settings = manifest.model_copy(update={"database_url": db_url})
    engine = open_store(settings)
    rpc = RpcClient(world.url, timeout=120)
    try:
        sync(engine, prepare(settings, rpc, max_blocks_per_tick=2_000), to_block=manifest.world["head_block"])
        load_files(engine, settings, accounts=settings.world["accounts_csv"],
                   positions=settings.world["positions_csv"])
        summary = run_and_store(engine, settings.chain.chain_id, POLICY)
        assert summary.block_number == manifest.world["head_block"]
        rows = holdings_of(engine, summary.run_id)
        wallets = wallets_of(engine, summary.run_id)
        sim = world.sim
        by_symbol: dict[str, list] = {}
        for r in rows:
            by_symbol.setdefault(r.symbol, []).append(r)

        # the run valued exactly the synced balances
        with engine.connect() as conn:
            stored = {(t, w): b for t, w, b in conn.execute(select(m.Balance.token, m.Balance.wallet,
                                                                    m.Balance.balance_raw)) if b > 0}
        assert {(r.token, r.wallet): r.balance_raw for r in rows} == stored

        frozen_msft = {sim.wallets[i] for i in FROZEN_MSFT}
        for r in by_symbol["MSFT"]:
            assert bool(r.codes & Eligibility.WALLET_FROZEN) == (r.wallet in frozen_msft), r.wallet
        assert {r.wallet for r in by_symbol["MSFT"] if r.codes & Eligibility.WALLET_FROZEN} == frozen_msft
        # AMZN froze one wallet on day 91 and unfroze it on day 109
        assert not any(r.codes & Eligibility.WALLET_FROZEN for r in by_symbol["AMZN"])
        assert FROZEN_AMZN not in sim.frozen["AMZN"] and set(FROZEN_MSFT) <= sim.frozen["MSFT"]

        sanctioned = {sim.wallets[i] for i in SANCTIONED}
        flagged = {r.wallet for r in rows if r.codes & Eligibility.WALLET_SANCTIONED}
        assert flagged == sanctioned & {r.wallet for r in rows}
        assert all("WALLET_SANCTIONED" in r.code_names for r in rows if r.wallet in sanctioned)

        assert by_symbol["TLT"] and all(r.codes & Eligibility.TOKEN_PAUSED and r.collateral_value == 0
                                        for r in by_symbol["TLT"])
        assert all(r.codes & Eligibility.RESERVE_SHORTFALL for r in by_symbol["NVDAx"])
        for sym in ("AAPLx", "SPYx", "USDC"):
            assert not any(r.codes & (Eligibility.TOKEN_PAUSED | Eligibility.RESERVE_SHORTFALL)
                           for r in by_symbol[sym]), sym
        # accounts: US persons, pending KYC and wallets with no account are refused by the default policy
        for flag in (Eligibility.ACCOUNT_JURISDICTION, Eligibility.ACCOUNT_KYC, Eligibility.ACCOUNT_UNKNOWN):
            assert any(r.codes & flag for r in rows), flag
        for r in rows:
            assert 0.0 <= r.haircut <= 1.0
            assert r.collateral_value <= r.market_value + 1e-9
            assert r.eligible == (r.codes == 0)
            assert r.eligible or r.collateral_value == 0
        coll = {w.wallet: w.collateral for w in wallets}
        per_wallet: dict[str, float] = {}
        for r in rows:
            per_wallet[r.wallet] = per_wallet.get(r.wallet, 0.0) + r.collateral_value
        for w, c in per_wallet.items():
            assert coll[w] == pytest.approx(c, rel=1e-9, abs=1e-6)
        assert_status_follows_the_numbers(wallets)
        assert summary.collateral_usd > 0
    finally:
        rpc.close()
        engine.dispose()


@pytest.fixture(scope="module")
def crash_world(tmp_path_factory):
    """The world up to day 61 (2026-03-04), then followed block by block through AMZN's 2-for-1 split
    (2026-03-05) and the joint equity-crypto crash of 2026-03-10..12 by an indexer on each database: every
    block's state is read while the node still holds it, so runs at past blocks of that stretch are exact."""
    with synced_world(tmp_path_factory.mktemp("crash"), 61) as (chain, rpc, stores):
        follow(chain, rpc, stores, utc(2026, 3, 13))
        yield chain, [(s.settings, s.engine, s.ctx) for s in stores]


@pytest.mark.parametrize("which", range(len(DATABASES)), ids=DATABASES)
def test_joint_crash_moves_wallets_to_margin_call_or_liquidation(crash_world, which):
    _, stores = crash_world
    settings, engine, _ = stores[which]
    cid = settings.chain.chain_id
    calm = run_and_store(engine, cid, POLICY, at=utc(2026, 3, 9, 19))
    crash = run_and_store(engine, cid, POLICY, at=utc(2026, 3, 12, 19))
    assert calm.market_state == crash.market_state == "open"
    before = {w.wallet: w for w in wallets_of(engine, calm.run_id)}
    after = {w.wallet: w for w in wallets_of(engine, crash.run_id)}
    assert_status_follows_the_numbers(before.values())
    assert_status_follows_the_numbers(after.values())
    positions = rows_of(engine, m.Position)
    longs = {p.wallet for p in positions if p.size > 0}
    shorts = {p.wallet for p in positions if p.size < 0} - longs

    stressed = lambda run: sum(1 for w in run.values() if w.status != "healthy")  # noqa: E731
    # measured: 23 wallets stressed on the calm day (20 margin call, 3 liquidate of 223 with positions), 98 after
    # the crash (28 margin call, 70 liquidate), 75 longs moved from healthy (synced to day 61, then followed). TSLAx's 3-for-1 split (day 43) and AMZN's 2-for-1
    # (day 62) are no crash in their adjusted histories (h_vol about 0.15 and 0.09 on the calm day against
    # 0.97 and 0.56 unadjusted), so their holders are not stressed by a split
    assert stressed(after) > stressed(before) + 30
    moved = [w for w in longs if before[w].status == "healthy" and after[w].status != "healthy"]
    assert len(moved) >= 30
    # they lost on both sides: the positions fell, and the collateral fell with them (wrong-way)
    assert all(after[w].upnl < before[w].upnl for w in moved)
    assert sum(after[w].collateral for w in moved) < 0.95 * sum(before[w].collateral for w in moved)
    # wrong-way risk: positive for longs backed by stock collateral in the positive regime, and for pure
    # shorts backed by it in the negative one (equities down while crypto rallies)
    assert sum(1 for w in longs if after[w].collateral > 0 and after[w].wrong_way > 0) > len(longs) // 2
    assert all(after[w].regime == "positive" for w in longs if after[w].collateral > 0 and after[w].wrong_way > 0)
    backed = [w for w in shorts if after[w].collateral > 0]
    hit = [w for w in backed if after[w].regime == "negative" and after[w].wrong_way > 0]
    assert len(hit) > len(backed) // 2  # the others hold collateral off the equity side (gold, Treasuries, USDC)
    assert all(after[w].status == "healthy" for w in after if w not in longs | shorts)
    assert crash.status_counts["liquidate"] + crash.status_counts["margin_call"] == stressed(after)


def test_a_run_at_a_past_block_is_reproducible_and_refused_where_state_is_missing(crash_world):
    chain, stores = crash_world
    settings, engine, _ = stores[0]
    cid = settings.chain.chain_id
    first = run_and_store(engine, cid, POLICY, at=utc(2026, 3, 11, 19))
    again = run_and_store(engine, cid, POLICY, block=first.block_number)
    a = {(h.wallet, h.token): (h.balance_raw, h.collateral_value, h.codes) for h in holdings_of(engine, first.run_id)}
    b = {(h.wallet, h.token): (h.balance_raw, h.collateral_value, h.codes) for h in holdings_of(engine, again.run_id)}
    assert a == b and len(a) > 1_000
    with engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(m.RiskRunRecord)).scalar()
        # the first days were backfilled from a node without their state: no token state to value them with
        with pytest.raises(SnapshotUnavailable, match="no token state .* stored at or before block 100; it is stored from"):
            load_snapshot(conn, cid, 100)
        with pytest.raises(SnapshotUnavailable, match="above the synced head"):
            load_snapshot(conn, cid, 10**9)
    assert runs >= 2


def token_rows_of(engine, run_id: int, symbol: str):
    return [h for h in holdings_of(engine, run_id) if h.symbol == symbol]


def test_amzn_split_in_the_demo_world_is_no_crash(crash_world):
    """AMZN's 2-for-1 (ERC-8056, priced per share) takes effect on Thursday 2026-03-05 at 12:00 UTC, before
    the 14:30 open: value is continuous across the multiplier taking effect and the feed's first print
    after it, the volatility add-on stays where a calm stock's is, and the run says what it adjusted."""
    _, stores = crash_world
    settings, engine, _ = stores[0]
    cid = settings.chain.chain_id
    runs = {k: run_and_store(engine, cid, POLICY, at=utc(2026, 3, 5, h))
            for k, h in (("before", 11), ("between", 13), ("after", 21))}
    value = {k: sum(r.market_value for r in token_rows_of(engine, runs[k].run_id, "AMZN")) for k in runs}
    assert value["between"] == pytest.approx(value["before"], rel=0.02)
    assert value["after"] == pytest.approx(value["before"], rel=0.15)  # a session's market move, not x2
    for k, summary in runs.items():
        rows = token_rows_of(engine, summary.run_id, "AMZN")
        assert rows and all(r.h_vol < 0.25 for r in rows), (k, max(r.h_vol for r in rows))
        assert not any(r.codes & Eligibility.VALUATION_INCONSISTENT for r in rows)
    assert all(r.action_factor == pytest.approx(0.5) for r in token_rows_of(engine, runs["between"].run_id, "AMZN"))
    assert any("AMZN" in n and "before a corporate action" in n for n in runs["between"].notes)
    assert all(r.action_factor == 1.0 for r in token_rows_of(engine, runs["after"].run_id, "AMZN"))
    assert any("AMZN/USD: volatility history adjusted" in n for n in runs["after"].notes)
    # TSLAx's 3-for-1 (2026-02-14, before the followed stretch: found from its events) is adjusted too
    tsla = token_rows_of(engine, runs["after"].run_id, "TSLAx")
    assert tsla and all(r.h_vol < 0.25 for r in tsla)
    assert any("TSLAx/USD: volatility history adjusted" in n for n in runs["after"].notes)


def test_backtest_on_the_demo_world(crash_world):
    """`collateral-indexer backtest` over the followed stretch: the same on both databases; the world's splits
    are no loss; the joint crash is the window that breaks the volatility part, and Kraken's flat haircuts
    fail where ours hold."""
    chain, stores = crash_world
    docs = []
    for settings, _, _ in stores:
        res = CliRunner().invoke(app, ["backtest", "--config", str(chain.manifest_path), "--database-url",
                                       settings.database_url, "--at", "2026-03-13T00:00Z", "--json", "--windows"],
                                 env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        doc.pop("seconds")
        docs.append(doc)
    assert docs[0] == docs[1]
    ours, kraken = docs[0]["policies"]
    assert (ours["name"], kraken["name"]) == ("default", "kraken_2026")
    windows = [w for w in ours["windows"] if w["kind"] == "horizon"]
    # the 13 tokens with a feed and the TSLAx vault, valued through TSLAx's feed at its own haircut
    assert len({w["token"] for w in windows}) == 14 and len(windows) >= 14 * 10

    def spanning(doc, token: str, when: str):
        return [w for w in doc["windows"] if w["token"] == token and w["start"] < when < w["end"]]

    # AMZN's 2-for-1 (ERC-8056, 2026-03-05 12:00) and TSLAx's 3-for-1 (a Backed xStock, 2026-02-14, found from
    # its events): the windows across them move by a session's market, not by 50% or 67%
    for token, when in (("AMZN", "2026-03-05T12:00:00Z"), ("TSLAx", "2026-02-14T12:00:00Z")):
        across = spanning(ours, token, when)
        assert across and all(abs(w["loss"]) < 0.15 and not w["failed"] for w in across), (token, across)
    # the joint crash (2026-03-10..12): the stock windows that span it lose more than the volatility part set
    # the evening before, and only the crash does that; our whole haircuts hold
    crash = [w for w in windows if w["start"] < "2026-03-11T00:00:00Z" < w["end"]]
    assert crash and sum(w["failed_statistical"] for w in crash) >= 8
    assert all(not w["failed"] for w in ours["windows"])
    calm = [w for w in windows if w["end"] < "2026-03-10T00:00:00Z"]
    assert sum(w["failed_statistical"] for w in calm) <= 1
    every = next(c for c in ours["asset_classes"] if (c["group"], c["kind"]) == ("all", "horizon"))
    assert every["failures"] == 0 and every["statistical"]["verdict"] == "under-covers"
    assert every["statistical"]["failures"] == sum(w["failed_statistical"] for w in windows)
    # Kraken's 10% on broad ETFs is less than SPYx and QQQx lost in the crash
    spy = spanning(kraken, "SPYx", "2026-03-11T00:00:00Z")
    assert spy and all(w["failed"] and w["haircut"] == pytest.approx(0.10) for w in spy)
    assert next(c for c in kraken["asset_classes"] if c["group"] == "all" and c["kind"] == "horizon")["failures"] >= 3


def test_the_crash_withdraws_dex_liquidity_and_the_tokens_trade_below_nav(crash_world):
    """The world's liquidity provider takes 80% of every position out as the crash opens (2026-03-10 15:00 UTC)
    and the pools trade 3% under NAV (the thin MSTRx pool 8%): the stored runs show the depth gone, the
    discount, NAV_DEVIATION on the holdings valued at the pool price, and a larger liquidity term."""
    _, stores = crash_world
    settings, engine, _ = stores[0]
    cid = settings.chain.chain_id
    calm = run_and_store(engine, cid, POLICY, at=utc(2026, 3, 9, 19))
    crash = run_and_store(engine, cid, POLICY, at=utc(2026, 3, 11, 19))
    pools = {run.run_id: {p.name: p for p in rows_of(engine, m.RiskPool, m.RiskPool.run_id == run.run_id)}
             for run in (calm, crash)}
    calm_pools, crash_pools = pools[calm.run_id], pools[crash.run_id]
    assert set(calm_pools) == set(crash_pools) and len(calm_pools) == 6
    for name, before in calm_pools.items():
        after = crash_pools[name]
        assert after.depth_2pct < 0.5 * before.depth_2pct, name  # most of the liquidity is out
        assert abs(before.premium_bp) < 200, name  # calm: the arbitrage keeps the pools near NAV
        assert after.premium_bp < -200, name  # the crash: the tokens trade at a discount beyond the tolerance
    flagged = {h.symbol for h in holdings_of(engine, crash.run_id) if h.value_flags & 1}  # ValuationFlag.NAV_DEVIATION
    assert flagged == {p.symbol for p in crash_pools.values()}
    assert not any(h.value_flags for h in holdings_of(engine, calm.run_id))
    with engine.connect() as conn:
        notes = conn.execute(select(m.RiskRunRecord.notes).where(m.RiskRunRecord.id == crash.run_id)).scalar()
    assert "NAV_DEVIATION" in notes
    terms: dict[int, dict[str, list[float]]] = {run.run_id: {} for run in (calm, crash)}
    for run in (calm, crash):
        for h in holdings_of(engine, run.run_id):
            if h.liquidity_source == "measured" and h.balance > 0:
                terms[run.run_id].setdefault(h.symbol, []).append(h.liquidity_term / h.balance ** 0.5)
    # the same holding pays more to sell into the thinner market (the term per square root of units): A counts the
    # standing depth, 80% gone, and a week's volume, which the withdrawal does not take (measured: TSLAx x1.47)
    for symbol, calm_terms in terms[calm.run_id].items():
        assert max(terms[crash.run_id][symbol]) > 1.3 * max(calm_terms), symbol
