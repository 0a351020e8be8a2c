"""The analyst views and every example question in db/queries/ on a synced world with risk runs, on SQLite
and PostgreSQL: documented columns, rows, and numbers that agree with the tables they summarize.

The world: two weeks of the demo world (seed 7), then followed half a day at a time from Friday
2026-01-16 to the Martin Luther King Day holiday (Monday 2026-01-19) by an indexer on each database, with
a risk run at each step (overnight, weekend and holiday states) and, last, a re-run of Friday 19:00 (in
session): a run at an older block stored after the latest one, which `latest_run` must not pick."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from indexer.devchain.specs import utc
from indexer.runs.job import run_and_store
from tests import ROOT as PROJECT_ROOT
from tests.conftest import DATABASES
from tests.runs.worlds import POLICY, follow, synced_world
from tests.test_views import ALIASES, WALLET_VIEWS, assert_wallet_search_uses_an_index

QUERIES = sorted((PROJECT_ROOT / "db" / "queries").glob("*.sql"))
IN_SESSION = utc(2026, 1, 16, 19)


@pytest.fixture(scope="module")
def analyst_world(tmp_path_factory):
    with synced_world(tmp_path_factory.mktemp("analyst"), 14) as (chain, rpc, stores):
        cid = stores[0].chain_id
        for s in stores:
            run_and_store(s.engine, cid, POLICY)
        follow(chain, rpc, stores, utc(2026, 1, 19, 12),  # half a day at a time
               after=lambda s: run_and_store(s.engine, cid, POLICY))
        for s in stores:
            run_and_store(s.engine, cid, POLICY, at=IN_SESSION)
            if s.engine.dialect.name == "postgresql":
                with s.engine.connect() as conn:
                    conn.execute(text("ANALYZE"))
                    conn.commit()
        yield cid, [s.engine for s in stores]


def num(v):
    return float(v) if isinstance(v, Decimal) else v


def all_rows(conn, sql: str, **params) -> list[dict]:
    return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def runs(conn) -> list[dict]:
    return all_rows(conn, "SELECT * FROM risk_runs ORDER BY id")


def latest(conn) -> dict:
    return max(runs(conn), key=lambda r: (r["block_number"], r["id"]))


# -- the views -----------------------------------------------------------------------------------

@pytest.mark.parametrize("which", range(len(DATABASES)), ids=DATABASES)
def test_views_agree_with_the_tables(analyst_world, which):
    _, engines = analyst_world
    with engines[which].connect() as conn:
        all_runs = runs(conn)
        last = latest(conn)
        # the re-run of Friday was stored last but valued an older block: not the latest run
        assert all_runs[-1]["block_timestamp"] <= IN_SESSION < last["block_timestamp"]
        assert [r["run_id"] for r in all_rows(conn, "SELECT run_id FROM latest_run")] == [last["id"]]
        assert {r["market_state"] for r in all_runs} >= {"open", "overnight", "weekend", "holiday"}

        # holders: every positive balance, exact, with decimals and multiplier applied
        bal = {(r["token"], r["wallet"]): int(r["balance_raw"]) for r in all_rows(conn, "SELECT token, wallet, balance_raw FROM balances")}
        tokens = {r["address"]: r for r in all_rows(conn, "SELECT * FROM tokens")}
        held = all_rows(conn, "SELECT * FROM holders")
        assert {(h["token"], h["wallet"]): int(h["balance_raw"]) for h in held} == {k: v for k, v in bal.items() if v > 0}
        for h in held:
            t = tokens[h["token"]]
            assert num(h["balance"]) == pytest.approx(int(h["balance_raw"]) / 10 ** t["decimals"], rel=1e-12)
            if t["accounting"] == "ui_multiplier":
                assert num(h["underlying_shares"]) == pytest.approx(num(h["balance"]) * num(h["multiplier"]), rel=1e-12)
            else:
                assert num(h["underlying_shares"]) == num(h["balance"])
            if t["accounting"] == "rebasing_shares":
                assert h["shares_raw"] is not None and int(h["units_raw"]) == int(h["shares_raw"])
        if engines[which].dialect.name == "postgresql":  # exact on PostgreSQL
            h = held[0]
            assert h["balance"] == Decimal(int(h["balance_raw"])).scaleb(-tokens[h["token"]]["decimals"])

        # wallet_collateral / wallet_margin: the latest run's rows, with its metadata
        coll = all_rows(conn, "SELECT * FROM wallet_collateral")
        stored = all_rows(conn, "SELECT * FROM risk_holdings WHERE run_id = :r", r=last["id"])
        assert len(coll) == len(stored) == last["holdings"] > 1_000
        assert {(c["wallet"], c["token"]): c["collateral_value"] for c in coll} == \
            {(s["wallet"], s["token"]): s["collateral_value"] for s in stored}
        assert all(c["block_number"] == last["block_number"] and c["policy_hash"] == last["policy_hash"] for c in coll)
        assert all((c["reason"] == "eligible") == (c["codes"] == 0) == bool(c["eligible"]) for c in coll)
        margin = all_rows(conn, "SELECT * FROM wallet_margin")
        assert len(margin) == last["wallets"]
        per_wallet: dict[str, float] = {}
        for c in coll:
            per_wallet[c["wallet"]] = per_wallet.get(c["wallet"], 0.0) + c["collateral_value"]
        for w in margin:
            assert w["collateral"] == pytest.approx(per_wallet.get(w["wallet"], 0.0), rel=1e-9, abs=1e-6)
            assert w["buffer_to_liquidation"] == pytest.approx(w["equity"] - w["mm"])
            assert (w["equity_to_mm"] is None) == (w["mm"] == 0)

        # token_exposure: sums of the holdings, supply from token_state at the run's block
        exp = {e["token"]: e for e in all_rows(conn, "SELECT * FROM token_exposure")}
        assert set(exp) == {c["token"] for c in coll if c["balance"] > 0}
        for token, e in exp.items():
            rows = sorted((c for c in coll if c["token"] == token and c["balance"] > 0), key=lambda c: -c["balance"])
            total = sum(c["balance"] for c in rows)
            assert e["holders"] == len(rows)
            assert e["market_value"] == pytest.approx(sum(c["market_value"] for c in rows), rel=1e-9)
            assert e["collateral_value"] == pytest.approx(sum(c["collateral_value"] for c in rows), rel=1e-9, abs=1e-6)
            assert e["top1_share"] == pytest.approx(rows[0]["balance"] / total, rel=1e-9)
            assert e["top10_share"] == pytest.approx(sum(c["balance"] for c in rows[:10]) / total, rel=1e-9)
            pledged = sum(c["balance"] for c in rows if c["eligible"])
            assert e["pledged_share_of_supply"] == pytest.approx(pledged / e["total_supply"], rel=1e-9)
            # every unit is held by someone (the supply was read at the run's block)
            assert e["held_share_of_supply"] == pytest.approx(1.0, rel=1e-6)
            assert 0 <= e["top1_share"] <= e["top10_share"] <= 1 + 1e-12

        # price_latest: the highest round per feed, aged at the synced head
        head = conn.execute(text("SELECT block_number FROM sync_checkpoints WHERE name = 'head'")).scalar()
        head_ts = conn.execute(text("SELECT timestamp FROM blocks WHERE number = :n"), {"n": head}).scalar()
        prices = all_rows(conn, "SELECT * FROM price_latest")
        top = {r["feed"]: int(r["m"]) for r in all_rows(conn, "SELECT feed, max(round_id) AS m FROM price_rounds GROUP BY feed")}
        assert {p["feed"]: int(p["round_id"]) for p in prices} == top
        for p in prices:
            assert p["head_timestamp"] == head_ts and p["age_s"] == head_ts - p["updated_at"]
            assert bool(p["stale"]) == (p["age_s"] > p["heartbeat"])
            assert p["market_state"] == ("continuous" if p["calendar"] == "24/7" else last["market_state"])
            if p["quality"] == "ok":
                assert p["price"] == pytest.approx(int(p["answer_raw"]) / 10 ** p["decimals"], rel=1e-12)


@pytest.mark.parametrize("which", range(len(DATABASES)), ids=DATABASES)
def test_wallet_lookups_use_indexes_on_the_synced_world(analyst_world, which):
    """No planner switches here: the statistics of a synced world (ANALYZE on PostgreSQL)."""
    _, engines = analyst_world
    engine = engines[which]
    with engine.connect() as conn:
        wallet = conn.execute(text("SELECT wallet FROM wallet_margin ORDER BY collateral DESC LIMIT 1")).scalar()
        for view, table in WALLET_VIEWS.items():
            sql = f"SELECT * FROM {view} WHERE wallet = :w"
            if engine.dialect.name == "sqlite":
                plan = "\n".join(r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql), {"w": wallet}))
            else:
                plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), {"w": wallet}))
            assert_wallet_search_uses_an_index(plan, engine.dialect.name, table, ALIASES[view])


# -- db/queries ----------------------------------------------------------------------------------

def header(path: Path) -> tuple[str, list[str], list[str]]:
    """(question, parameters used in the body, documented columns) of a query file."""
    lines = path.read_text().splitlines()
    comments = [ln for ln in lines if ln.startswith("--")]
    assert comments and lines[0].startswith("-- Question"), f"{path.name} must start with its question"
    cols = next(ln for ln in comments if ln.startswith("-- Columns:"))
    assert any(ln.startswith("-- Parameters:") for ln in comments), path.name
    body = "\n".join(ln for ln in lines if not ln.startswith("--"))
    params = sorted(set(re.findall(r"(?<![:\w]):(\w+)", body)))
    return comments[0], params, [c.strip() for c in cols.removeprefix("-- Columns:").split(",")]


def test_there_are_at_least_ten_documented_questions_two_of_them_as_of():
    assert len(QUERIES) >= 10
    doc = (PROJECT_ROOT / "docs" / "sql.md").read_text()
    as_of = 0
    for path in QUERIES:
        _, params, _ = header(path)
        assert f"`{path.name}`" in doc, f"{path.name} is not listed in docs/sql.md"
        as_of += bool({"block", "ts"} & set(params))
    assert as_of >= 2


def params_for(conn, name: str, cid: int) -> dict:
    fri = next(r for r in runs(conn) if r["block_timestamp"] <= IN_SESSION and r["market_state"] == "open")
    wallet = conn.execute(text("SELECT wallet FROM wallet_margin ORDER BY collateral DESC LIMIT 1")).scalar()
    base = dict(chain_id=cid, top_n=10, symbol="AAPLx", wallet=wallet, block=fri["block_number"],
                ts=fri["block_timestamp"])
    if name.startswith("12_"):
        base.update(symbol="AMZN", top_n=100_000)
    return base


@pytest.mark.parametrize("path", QUERIES, ids=[p.stem for p in QUERIES])
@pytest.mark.parametrize("which", range(len(DATABASES)), ids=DATABASES)
def test_query_runs_with_its_documented_columns(analyst_world, which, path):
    cid, engines = analyst_world
    _, params, columns = header(path)
    with engines[which].connect() as conn:
        bound = params_for(conn, path.name, cid)
        assert set(params) <= set(bound), f"{path.name} uses parameters the test does not know: {params}"
        result = conn.execute(text(path.read_text()), {k: bound[k] for k in params})
        assert list(result.keys()) == columns
        rows = [dict(r) for r in result.mappings()]
        assert rows, f"{path.name} returned no rows"
        CHECKS[path.name[:2]](conn, rows, bound)


# per-file sanity checks: the numbers agree with the tables they come from

def _check_largest_holders(conn, rows, p):
    expected = all_rows(conn, "SELECT b.wallet, b.balance_raw FROM balances b JOIN tokens t ON t.address = b.token "
                              "WHERE t.symbol = :s", s=p["symbol"])
    expected = sorted(((int(r["balance_raw"]), r["wallet"]) for r in expected), key=lambda x: (-x[0], x[1]))[:p["top_n"]]
    assert [(int(r["balance_raw"]), r["wallet"]) for r in rows] == expected
    assert all(0 < num(r["share_of_holdings"]) <= 1 for r in rows)


def _check_nearest_liquidation(conn, rows, p):
    ratios = [r["equity_to_mm"] for r in rows]
    assert ratios == sorted(ratios) and len(rows) == p["top_n"]
    for r in rows:
        assert (r["status"] == "liquidate") == (r["equity"] < r["mm"])
    floor = conn.execute(text("SELECT min(equity / mm) FROM risk_wallets WHERE mm > 0 AND run_id = "
                              "(SELECT run_id FROM latest_run)")).scalar()
    assert ratios[0] == pytest.approx(floor)


def _check_staleness_weekend(conn, rows, p):
    weekend = [r for r in runs(conn) if r["market_state"] == "weekend"]
    assert [r["run_id"] for r in rows] == [r["id"] for r in sorted(weekend, key=lambda r: (r["block_timestamp"], r["id"]))]
    for r in rows:
        assert 0 <= r["collateral_lost"] <= r["stale_market_value"] + 1e-6
        stale = conn.execute(text("SELECT count(*) FROM risk_holdings WHERE run_id = :r AND (codes & 512) <> 0"),
                             {"r": r["run_id"]}).scalar()
        assert r["stale_holdings"] == stale


def _check_asset_classes(conn, rows, p):
    total = conn.execute(text("SELECT sum(market_value) FROM risk_holdings WHERE run_id = (SELECT run_id FROM latest_run)")).scalar()
    assert sum(r["market_value"] for r in rows) == pytest.approx(total, rel=1e-9)
    assert sum(r["share_of_market_value"] for r in rows) == pytest.approx(1.0)
    assert {r["asset_class"] for r in rows} >= {"single_stock", "broad_index_etf", "stablecoin"}


def _check_wrong_way(conn, rows, p):
    ww = [r["wrong_way"] for r in rows]
    assert ww == sorted(ww, reverse=True) and ww[0] > 0
    for r in rows:
        assert r["wrong_way"] == pytest.approx(max(0.0, r["l_joint"] - r["l_indep"]), rel=1e-9, abs=1e-6)


def _check_reasons(conn, rows, p):
    refused = conn.execute(text("SELECT sum(market_value) FROM risk_holdings WHERE codes <> 0 AND run_id = "
                                "(SELECT run_id FROM latest_run)")).scalar()
    assert sum(r["market_value"] for r in rows) == pytest.approx(refused, rel=1e-9)
    assert "eligible" not in {r["reason"] for r in rows}


def _check_freshness(conn, rows, p):
    feeds = conn.execute(text("SELECT count(DISTINCT feed) FROM price_rounds")).scalar()
    assert len(rows) == feeds
    assert [r["age_s"] for r in rows] == sorted((r["age_s"] for r in rows), reverse=True)
    for r in rows:
        assert r["overdue_in_session"] == int(bool(r["stale"]) and r["market_state"] in ("open", "continuous"))


def _check_haircuts(conn, rows, p):
    for r in rows:
        assert 0 <= r["min_haircut"] <= r["haircut"] + 1e-12 <= r["max_haircut"] + 2e-12 <= 1 + 2e-12
        assert r["haircut"] == pytest.approx(min(1.0, r["h_base"] + r["h_vol"] + r["h_size"] + r["h_gap"]), abs=0.2)


def _check_wallet_lookup(conn, rows, p):
    stored = all_rows(conn, "SELECT token, collateral_value FROM risk_holdings WHERE wallet = :w AND run_id = "
                            "(SELECT run_id FROM latest_run)", w=p["wallet"])
    assert len(rows) == len(stored) and {r["wallet"] for r in rows} == {p["wallet"]}
    assert sum(r["collateral_value"] for r in rows) == pytest.approx(sum(s["collateral_value"] for s in stored))


def _check_concentration(conn, rows, p):
    shares = [r["top10_share"] for r in rows]
    assert shares == sorted(shares, reverse=True)
    assert all(0 < r["top1_share"] <= r["top10_share"] <= 1 + 1e-12 for r in rows)
    assert all(0 <= r["pledged_share_of_supply"] <= r["held_share_of_supply"] + 1e-9 for r in rows)


def _check_movers(conn, rows, p):
    ordered = sorted(runs(conn), key=lambda r: (r["block_number"], r["id"]))
    assert {(r["previous_block"], r["block_number"]) for r in rows} == {(ordered[-2]["block_number"], ordered[-1]["block_number"])}
    moves = [abs(r["equity_change"]) for r in rows]
    assert moves == sorted(moves, reverse=True) and moves[0] > 0


def _check_holders_as_of(conn, rows, p):
    """A ui_multiplier token's units are its balanceOf: at the block of the in-session run they equal what
    that run valued (the run read them through the snapshot's own path)."""
    run = next(r for r in runs(conn) if r["block_number"] == p["block"])
    valued = all_rows(conn, "SELECT h.wallet, h.balance_raw FROM risk_holdings h JOIN tokens t ON t.address = h.token "
                            "WHERE h.run_id = :r AND t.symbol = :s", r=run["id"], s=p["symbol"])
    assert {r["wallet"]: int(r["units_raw"]) for r in rows} == {v["wallet"]: int(v["balance_raw"]) for v in valued}
    assert all(r["last_change_block"] <= p["block"] for r in rows)
    # a rebasing token: balance = shares x multiplier, close to the exact balanceOf the run valued
    aapl = all_rows(conn, (PROJECT_ROOT / "db/queries/12_holders_as_of_block.sql").read_text(),
                    chain_id=p["chain_id"], symbol="AAPLx", block=p["block"], top_n=5)
    exact = {v["wallet"]: v["balance"] for v in all_rows(
        conn, "SELECT h.wallet, h.balance FROM risk_holdings h JOIN tokens t ON t.address = h.token "
              "WHERE h.run_id = :r AND t.symbol = 'AAPLx'", r=run["id"])}
    for r in aapl:
        assert r["balance"] == pytest.approx(exact[r["wallet"]], rel=1e-4)


def _check_prices_as_of(conn, rows, p):
    run = next(r for r in runs(conn) if r["block_timestamp"] == p["ts"])
    valued = all_rows(conn, "SELECT DISTINCT h.feed, h.round_id, h.price FROM risk_holdings h WHERE h.run_id = :r "
                            "AND h.feed IS NOT NULL", r=run["id"])
    names = {f["address"]: f["name"] for f in all_rows(conn, "SELECT address, name FROM feeds")}
    by_name = {r["feed_name"]: r for r in rows}
    assert len(valued) >= 10
    for v in valued:
        r = by_name[names[v["feed"]]]
        assert int(r["round_id"]) == int(v["round_id"])
        if r["quality"] == "ok":
            assert r["price"] == pytest.approx(v["price"], rel=1e-12)
        assert r["age_s"] >= 0 and r["updated_at"] <= p["ts"]


def _check_margin_as_of(conn, rows, p):
    run = max((r for r in runs(conn) if r["block_number"] <= p["block"]), key=lambda r: (r["block_number"], r["id"]))
    assert {r["run_id"] for r in rows} == {run["id"]} and rows[0]["market_state"] == "open"
    assert sum(r["wallets"] for r in rows) == run["wallets"]
    assert sum(r["collateral"] for r in rows) == pytest.approx(run["collateral_usd"], rel=1e-9)
    assert math.isfinite(sum(r["stressed_excess"] for r in rows))


CHECKS = {"01": _check_largest_holders, "02": _check_nearest_liquidation, "03": _check_staleness_weekend,
          "04": _check_asset_classes, "05": _check_wrong_way, "06": _check_reasons, "07": _check_freshness,
          "08": _check_haircuts, "09": _check_wallet_lookup, "10": _check_concentration, "11": _check_movers,
          "12": _check_holders_as_of, "13": _check_prices_as_of, "14": _check_margin_as_of}


def test_every_query_has_a_check():
    assert sorted(CHECKS) == sorted(p.name[:2] for p in QUERIES)
