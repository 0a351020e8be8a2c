"""`collateral-indexer risk compare` on a short synced world (SQLite and PostgreSQL): its numbers are the
stored runs' numbers of each policy, nothing is stored, the terminal shows the top wallets, a bad policy
gets one clear line; the report sets the venues side by side."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from indexer.cli import app
from indexer.config import load_settings
from indexer.devchain.live import produce_blocks
from indexer.report import SECTIONS, write_report
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.store.progress import synced_head
from indexer.sync.tick import sync
from tests.conftest import DATABASES
from tests.runs.worlds import synced_world

PAIR = ["--policy", "default", "--policy", "kraken_2026"]
TOL = 0.01


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """Six days of the world synced into each database with its book, then four more blocks synced: two
    synced heads to compare at."""
    with synced_world(tmp_path_factory.mktemp("compare"), 6) as (chain, rpc, stores):
        first = load_settings(chain.manifest_path).world["head_block"]
        produce_blocks(rpc, chain.sim, 4, 1_800)
        for s in stores:
            sync(s.engine, s.ctx)
        yield chain, {s.kind: s for s in stores}, first


@pytest.fixture(params=DATABASES)
def db(request, synced):
    chain, stores, first = synced
    store = stores[request.param]
    return chain, store, first, ["--config", str(chain.manifest_path), "--database-url", store.settings.database_url]


def invoke(*args: str, **env: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "220", **env})


def compare_json(common: list[str], *args: str, **env: str) -> dict:
    res = invoke("risk", "compare", *args, *common, "--json", **env)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def stored(engine, run_id: int) -> dict[str, m.RiskWallet]:
    with engine.connect() as conn:
        return {r.wallet: r for r in conn.execute(select(m.RiskWallet).where(m.RiskWallet.run_id == run_id))}


def count_runs(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(m.RiskRunRecord)).scalar_one()


def test_json_is_each_policys_stored_run_side_by_side_and_nothing_is_stored(db) -> None:
    chain, store, first, common = db
    engine = store.engine
    before = count_runs(engine)
    doc = compare_json(common, *PAIR)
    assert count_runs(engine) == before  # a comparison is not stored

    with engine.connect() as conn:
        head = synced_head(conn, store.chain_id)[0]
    assert doc["block_number"] == doc["head_block"] == head > first
    assert doc["chain_id"] == store.chain_id and doc["ours"] == "default"
    assert [(p["name"], p["role"], p["given_as"]) for p in doc["policies"]] == [
        ("default", "ours", "default"), ("kraken_2026", "venue", "kraken_2026")]
    assert doc["tolerance"] == {"usd": TOL, "relative": 1e-9}

    # the same snapshot run and stored once per policy gives exactly the compared numbers
    runs = {name: run_and_store(engine, store.chain_id, name) for name in ("default", "kraken_2026")}
    rows = {name: stored(engine, r.run_id) for name, r in runs.items()}
    with engine.connect() as conn:
        hashes = dict(conn.execute(select(m.RiskRunRecord.policy_name, m.RiskRunRecord.policy_hash)
                                   .where(m.RiskRunRecord.id.in_([r.run_id for r in runs.values()]))).all())
        held = set(conn.execute(select(m.RiskHolding.wallet).where(m.RiskHolding.run_id == runs["default"].run_id,
                                                                   m.RiskHolding.balance > 0)).scalars())
        with_positions = set(conn.execute(select(m.Position.wallet)).scalars())
    for p in doc["policies"]:
        assert p["policy_hash"] == hashes[p["name"]]
        assert p["version"] == runs[p["name"]].policy
    for name, summary in runs.items():
        t = doc["totals"][name]
        w = rows[name].values()
        assert summary.block_number == head
        assert t["wallets"] == summary.wallets == len(rows[name])
        assert t["collateral"] == pytest.approx(summary.collateral_usd, rel=1e-12)
        assert t["status_counts"] == summary.status_counts
        for key in ("market_value", "equity", "im", "excess", "stressed_excess"):
            assert t[key] == pytest.approx(sum(getattr(r, key) for r in w), rel=1e-9, abs=1e-6), (name, key)
        assert t["stressed_negative"] == sum(r.stressed_excess < 0 for r in w)

    # every wallet with a holding or a position, under each policy, as stored
    assert {w["wallet"] for w in doc["wallets"]} == held | with_positions
    assert len(held | with_positions) < len(rows["default"])  # accounts with nothing held are left out
    for w in doc["wallets"]:
        for name, values in w["policies"].items():
            r = rows[name][w["wallet"]]
            assert values["status"] == r.status
            for key in ("collateral", "excess", "stressed_excess"):
                assert values[key] == pytest.approx(getattr(r, key), rel=1e-12, abs=1e-9), (name, key)

    # under-reserved: exactly the wallets kraken counts more cushion for, largest shortfall first
    ours, theirs = rows["default"], rows["kraken_2026"]
    expected = {}
    for w in held | with_positions:
        a, b = ours[w], theirs[w]
        gap = b.excess - a.excess
        flip = b.status == "healthy" and a.status in ("margin_call", "liquidate")
        stress_flip = b.stressed_excess >= 0 > a.stressed_excess
        if gap > TOL + 1e-9 * max(abs(a.excess), abs(b.excess)) or flip or stress_flip:
            expected[w] = (gap, flip, stress_flip)
    under = doc["under_reserved"]
    assert len(under) == len(expected) == doc["totals"]["kraken_2026"]["under_reserved"] > 20
    assert [u["rank"] for u in under] == list(range(1, len(under) + 1))
    shortfalls = [u["shortfall"] for u in under]
    assert shortfalls == sorted(shortfalls, reverse=True)
    for u in under:
        gap, flip, stress_flip = expected[u["wallet"]]
        assert u["venue"] == "kraken_2026" and u["shortfall"] == pytest.approx(gap, rel=1e-9, abs=1e-6)
        assert (u["status_flip"], u["stress_flip"]) == (flip, stress_flip)
        assert u["ours"]["status"] == ours[u["wallet"]].status and u["theirs"]["excess"] == pytest.approx(
            theirs[u["wallet"]].excess, rel=1e-12, abs=1e-9)
    # measured at this block: no wallet under margin under ours (default: 1,137 healthy; kraken_2026: 26 margin
    # call, 12 liquidate), so no status flip; 8 wallets stressed-negative only under ours, 165 with more excess
    # under kraken_2026
    assert not any(u["status_flip"] for u in under) and any(u["stress_flip"] for u in under)
    assert doc["totals"]["kraken_2026"]["shortfall"] == pytest.approx(sum(shortfalls), rel=1e-9)


def test_terminal_shows_totals_and_the_top_wallets_at_a_block(db) -> None:
    chain, store, first, common = db
    doc = compare_json(common, *PAIR, "--block", str(first))
    assert doc["block_number"] == first < doc["head_block"]
    res = invoke("risk", "compare", *PAIR, *common, "--block", str(first), "--top", "3")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert f"policies compared at block {first} " in out and "nothing stored" in out
    assert "Totals per policy" in out and "default (ours)" in out and "kraken_2026" in out
    t = doc["totals"]["default"]
    assert f"{t['collateral']:,.2f}" in out and f"{doc['totals']['kraken_2026']['collateral']:,.2f}" in out
    assert f"{t['wallets']:,} wallets, {t['active_wallets']:,} with holdings or positions" in out
    under = doc["under_reserved"]
    assert (f"Under-reserved against kraken_2026: a venue counts more cushion than default ({len(under):,} "
            "wallet-venue pairs, top 3") in out
    for u in under[:3]:
        assert u["wallet"] in out
    assert under[3]["wallet"] not in out and f"all {len(under):,} with --json" in out
    assert f"{under[0]['shortfall']:,.0f}" in out and f"{under[0]['theirs']['excess']:,.0f}" in out

    # no --policy: the configuration's policy against kraken_2026, or against default when it is kraken's
    assert [p["name"] for p in compare_json(common)["policies"]] == ["default", "kraken_2026"]
    swapped = compare_json(common, INDEXER_POLICY_PATH="kraken_2026")
    assert [p["name"] for p in swapped["policies"]] == ["kraken_2026", "default"]
    at_head = doc_at_head(common)["totals"]
    for name in ("default", "kraken_2026"):
        for key in ("collateral", "excess", "stressed_excess", "status_counts"):
            assert swapped["totals"][name][key] == at_head[name][key], (name, key)
    # ours and the venue swapped: kraken's under-reserved count is now default's
    assert swapped["totals"]["kraken_2026"]["under_reserved"] == 0 < swapped["totals"]["default"]["under_reserved"]


def doc_at_head(common: list[str]) -> dict:
    return compare_json(common, *PAIR)


@pytest.mark.parametrize(("args", "message"), [
    (["--policy", "default", "--policy", "nope"],
     "error: no bundled policy named 'nope': the bundled ones are default, kraken_2026; or give the path of a "
     "policy .toml file"),
    (["--policy", "default", "--policy", "missing/venue.toml"],
     "error: policy 'missing/venue.toml': no such file missing/venue.toml; give a bundled policy's name "
     "(default, kraken_2026) or the path of a policy .toml file"),
    (["--policy", "default"], "error: compare needs at least two policies, ours first, then a venue's rule (got 1)"),
    ([*PAIR, "--block", "99999999"], "error: block 99999999 is above the synced head"),
    ([*PAIR, "--block", "1", "--at", "2026-01-02T00:00Z"], "error: give --block or --at, not both"),
])
def test_a_bad_policy_or_block_gets_one_clear_line(db, args, message) -> None:
    chain, store, first, common = db
    res = invoke("risk", "compare", *args, *common)
    assert res.exit_code == 1, res.output
    text = " ".join(res.stderr.split())
    assert text.startswith(message), text
    assert len(res.stderr.strip().splitlines()) <= 2 and "Traceback" not in res.output and res.stdout == ""


def test_report_sets_the_venues_side_by_side(db, tmp_path) -> None:
    chain, store, first, common = db
    run_and_store(store.engine, store.chain_id, "default")
    doc = doc_at_head(common)
    res = invoke("report", "--out", str(tmp_path / "report"), *common)
    assert res.exit_code == 0, res.output
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "Venues side by side" in SECTIONS and page.count("<section") == len(SECTIONS)
    section = page[page.index('id="venues-side-by-side"'):]
    assert "default (ours)" in section and "Top 20 under-reserved wallets" in section
    under = doc["under_reserved"]
    assert f"{len(under):,} such wallet-venue pairs" in section
    for u in under[:20]:
        assert f'<td class="l addr">{u["wallet"]}</td>' in section, u["wallet"]
    assert under[20]["wallet"] not in section
    assert section.count('<td class="l addr">') == 20

    # a policy that cannot be loaded, or none asked for: the section says so and the page still renders
    page = write_report(store.engine, store.chain_id, tmp_path / "bad", venues=["default", "nope"]).read_text()
    assert "Not compared: no bundled policy named &#x27;nope&#x27;" in page
    page = write_report(store.engine, store.chain_id, tmp_path / "none").read_text()
    assert "Not compared: no venue policies were given" in page and page.count("<section") == len(SECTIONS)
