"""Risk runs on the demo world around two of its events, each followed block by block by an indexer so that
every block's state is read while the node holds it: TSLAx's 3-for-1 split (a Backed xStock, in force from
Saturday 2026-02-14 12:00 UTC, the feed's first post-split print after the Presidents' Day holiday) and the
three-hour in-session stall of the GOOGL feed (2026-04-22 17:00-20:00 UTC). Real anvil; the split on SQLite, the
stall on PostgreSQL (one database each keeps the two followed worlds to a few minutes; the crash world runs both)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.chain.rpc import RpcClient
from indexer.chain.vaults import CONVERT_TO_ASSETS
from indexer.devchain.specs import utc
from indexer.risk import Eligibility
from indexer.runs.job import run_and_store
from indexer.store import models as m
from tests.runs.worlds import POLICY, follow, synced_world


def holdings(engine, run_id: int, symbol: str | None = None):
    with Session(engine) as s:
        rows = s.execute(select(m.RiskHolding).where(m.RiskHolding.run_id == run_id)).scalars().all()
    return [h for h in rows if symbol is None or h.symbol == symbol]


def wallets(engine, run_id: int) -> dict[str, m.RiskWallet]:
    with Session(engine) as s:
        return {w.wallet: w for w in s.execute(select(m.RiskWallet).where(m.RiskWallet.run_id == run_id)).scalars()}


@pytest.fixture(scope="module")
def split_world(tmp_path_factory):
    """The world to Friday 2026-02-13, followed to Wednesday 02-18."""
    with synced_world(tmp_path_factory.mktemp("split"), 42, kinds=["sqlite"]) as (chain, rpc, stores):
        follow(chain, rpc, stores, utc(2026, 2, 18))
        yield stores[0]


def test_tslax_split_is_no_crash_and_value_is_continuous(split_world):
    store = split_world
    engine, cid = store.engine, store.chain_id
    runs = {k: run_and_store(engine, cid, POLICY, at=t) for k, t in (
        ("before", utc(2026, 2, 13, 22)),    # Friday after the close, before the schedule
        ("between", utc(2026, 2, 15, 12)),   # Sunday: balances x3 since Saturday noon, the price still Friday's
        ("after", utc(2026, 2, 17, 19)))}    # Tuesday, in session: the feed prints the post-split price
    rows = {k: holdings(engine, r.run_id, "TSLAx") for k, r in runs.items()}
    value = {k: sum(h.market_value for h in v) for k, v in rows.items()}
    units = {k: sum(h.balance for h in v) for k, v in rows.items()}
    assert units["between"] == pytest.approx(3 * units["before"], rel=0.01)  # every balance tripled, no event
    # the same round (Friday's close) on both sides: the value moves only by the weekend's transfers, not x3
    assert value["between"] / value["before"] == pytest.approx(units["between"] / 3 / units["before"], rel=1e-6)
    assert value["after"] == pytest.approx(value["before"], rel=0.15)  # a session's move, not x3 or /3
    assert all(h.action_factor == pytest.approx(1 / 3, rel=1e-3) for h in rows["between"])
    assert all(h.action_factor == 1.0 for h in rows["after"])
    for k, v in rows.items():
        assert v and all(h.h_vol < 0.25 for h in v), (k, max(h.h_vol for h in v))  # 0.97 unadjusted
        assert not any(h.codes & Eligibility.VALUATION_INCONSISTENT for h in v), k
    coll = {k: sum(h.collateral_value for h in v) for k, v in rows.items()}
    assert coll["between"] == pytest.approx(coll["before"], rel=0.10)  # the gap add-on of the weekend only
    assert any("TSLAx" in n and "before a corporate action" in n for n in runs["between"].notes)
    assert any("TSLAx/USD: volatility history adjusted" in n for n in runs["after"].notes)


@pytest.fixture(scope="module")
def stall_world(tmp_path_factory):
    """The world to 2026-04-21, followed through the GOOGL stall to the evening of 04-22."""
    with synced_world(tmp_path_factory.mktemp("stall"), 109, kinds=["postgresql"]) as (chain, rpc, stores):
        follow(chain, rpc, stores, utc(2026, 4, 22, 21))
        yield stores[0]


def test_googl_stall_grades_the_haircut_and_never_liquidates_on_its_own(stall_world):
    store = stall_world
    engine, cid = store.engine, store.chain_id
    times = {"before": utc(2026, 4, 22, 16, 30), "early": utc(2026, 4, 22, 18, 30), "late": utc(2026, 4, 22, 19, 30)}
    runs = {k: run_and_store(engine, cid, POLICY, at=t) for k, t in times.items()}
    googl = {k: holdings(engine, r.run_id, "GOOGL") for k, r in runs.items()}
    assert googl["before"] and all(h.h_stale == 0 for h in googl["before"])
    early = max(h.h_stale for h in googl["early"])
    late = max(h.h_stale for h in googl["late"])
    assert 0 < early < late < 0.2  # graded by the round's age, not a cliff
    assert not any(h.codes & Eligibility.ORACLE_STALE for h in googl["late"])  # before the hard cut-off
    assert sum(h.collateral_value for h in googl["late"]) > 0.5 * sum(h.collateral_value for h in googl["before"])
    before, late_w = wallets(engine, runs["before"].run_id), wallets(engine, runs["late"].run_id)
    held = {h.wallet for h in googl["late"] if h.market_value > 0}
    # a stale input drives a status no further than a margin call, and says so
    assert all(w.status == "margin_call" for w in late_w.values() if w.stale_driven)
    moved = [w for w in held if before[w].status == "healthy" and late_w[w].status == "liquidate"]
    assert moved == []  # 19 wallets went to liquidate on the stall alone when staleness was a cliff
    assert any(n.startswith("GOOGL/USD: stale") for n in runs["late"].notes)


# -- the ERC-4626 vault over TSLAx (docs/risk.md section 16, docs/liquidity.md "The dev world's vault") ----------

def vault_reads(engine, vault: str) -> list[m.VaultRate]:
    with Session(engine) as s:
        return s.execute(select(m.VaultRate).where(m.VaultRate.vault == vault)
                         .order_by(m.VaultRate.block_number)).scalars().all()


def test_the_split_moves_the_vaults_rate_in_tslax_units_and_not_its_value(split_world):
    """TSLAx's 3-for-1 triples every balance, the vault's too: convertToAssets triples with no event, the rate
    in underlying shares (over the multiplier read with it) stays, no VAULT_RATE_JUMP, and the vault's holders
    keep their value across the multiplier taking effect (carried by it between reads) and the feed's print."""
    store = split_world
    engine, cid = store.engine, store.chain_id
    vault = store.settings.token("vTSLAx").address
    reads = [r for r in vault_reads(engine, vault) if utc(2026, 2, 13) <= r.block_timestamp <= utc(2026, 2, 18)]
    assert len(reads) >= 5  # a row when the rate moved: TSLAx's daily fee, the split
    before = [r for r in reads if r.block_timestamp < utc(2026, 2, 14, 12)][-1]
    after = [r for r in reads if r.block_timestamp > utc(2026, 2, 14, 12)][0]
    assert after.assets_per_share_raw / before.assets_per_share_raw == pytest.approx(3, rel=1e-3)
    assert after.asset_multiplier_raw / before.asset_multiplier_raw == pytest.approx(3, rel=1e-3)
    shares = [r.assets_per_share_raw / r.asset_multiplier_raw for r in reads]
    assert max(shares) / min(shares) < 1.001  # in underlying shares the rate did not move (fees only)
    runs = {k: run_and_store(engine, cid, POLICY, at=t) for k, t in (
        ("before", utc(2026, 2, 13, 22)), ("between", utc(2026, 2, 15, 12)), ("after", utc(2026, 2, 17, 19)))}
    rows = {k: holdings(engine, r.run_id, "vTSLAx") for k, r in runs.items()}
    asset = {k: holdings(engine, r.run_id, "TSLAx") for k, r in runs.items()}
    for k, v in rows.items():
        assert v and not any(h.codes & (Eligibility.VAULT_RATE_JUMP | Eligibility.VAULT_RATE_MISSING) for h in v), k
        assert all(h.vault_jump is not None and h.vault_jump < 0.001 for h in v), k
    value = {k: sum(h.market_value for h in v) for k, v in rows.items()}
    assert value["between"] == pytest.approx(value["before"], rel=1e-3)  # the same round, the rate x3, the price /3
    assert value["after"] == pytest.approx(value["before"], rel=0.15)  # a session's move
    # a share is worth its rate in TSLAx at TSLAx's value per token
    per_token = {k: sum(h.market_value for h in v) / sum(h.balance for h in v) for k, v in asset.items()}
    for k, v in rows.items():
        for h in v:
            assert h.market_value == pytest.approx(h.balance * h.vault_rate_raw / 1e18 * per_token[k], rel=1e-9)


def test_the_donation_to_the_vault_makes_its_shares_ineligible_for_a_week(stall_world):
    """The attacker's donation (2026-04-21 14:30 UTC) pushes the vault's rate about 13x in one block: the sync
    reads it at that block (a TSLAx transfer to the vault), and every run in the policy's week after it holds
    the vault's shares ineligible (VAULT_RATE_JUMP) at their inflated value, while TSLAx itself is untouched."""
    store = stall_world
    engine, cid = store.engine, store.chain_id
    vault = store.settings.token("vTSLAx").address
    reads = {r.block_timestamp: r for r in vault_reads(engine, vault)}
    at = reads[utc(2026, 4, 21, 14, 30)]  # read at the donation's own block (a TSLAx transfer to the vault)
    prior = reads[max(t for t in reads if t < at.block_timestamp)]
    assert 10 < at.assets_per_share_raw / prior.assets_per_share_raw < 16
    # as the vault answers at that block (the node still holds it)
    rpc = RpcClient(store.settings.chain.rpc_urls[0], timeout=60)
    try:
        assert at.assets_per_share_raw == int(rpc.call("eth_call", [
            {"to": vault, "data": "0x" + (CONVERT_TO_ASSETS.selector + (10**18).to_bytes(32, "big")).hex()},
            hex(at.block_number)]), 16)
    finally:
        rpc.close()
    runs = {k: run_and_store(engine, cid, POLICY, at=t) for k, t in (
        ("before", utc(2026, 4, 21, 14)), ("after", utc(2026, 4, 21, 16)), ("next_day", utc(2026, 4, 22, 16, 30)))}
    rows = {k: holdings(engine, r.run_id, "vTSLAx") for k, r in runs.items()}
    vault_bits = Eligibility.VAULT_RATE_JUMP | Eligibility.VAULT_RATE_MISSING
    assert rows["before"] and not any(h.codes & vault_bits for h in rows["before"])
    for k in ("after", "next_day"):
        assert rows[k] and all(h.codes & Eligibility.VAULT_RATE_JUMP for h in rows[k]), k
        assert all(h.collateral_value == 0 and h.vault_jump > 10 for h in rows[k]), k
        assert not any(h.codes & vault_bits for h in holdings(engine, runs[k].run_id, "TSLAx")), k
    value = {k: sum(h.market_value for h in v) for k, v in rows.items()}
    assert value["after"] > 5 * value["before"]  # shown at the inflated rate, counted as nothing
