"""The desk's client views (migration 0008: `client_margin`, `client_collateral`) and the lookup restricted
to the venue's clients (`wallet --clients-only`, `wallet --clients`), on a small hand-made store on SQLite
and PostgreSQL (tests/test_export_files.py builds it): the rows, orphaned runs left out, the read-only
`analyst` role reading them, refusals and the listing."""

from __future__ import annotations

import json
import uuid

import jsonschema
import pytest
from sqlalchemy import create_engine, text, update
from typer.testing import CliRunner

from indexer.addresses import checksum
from indexer.cli import app
from indexer.lookup import NOT_A_CLIENT, clients_nearest_margin_call, lookup
from indexer.store import models as m
from indexer.store.engine import make_engine
from tests import ROOT
from tests.conftest import PG_ADMIN, fresh_database
from tests.test_export_files import BIG, CID, FIRST, PAST, RB, A, B, C, D, build_store, write_config
from tests.test_views import ROLES, run_script

SCHEMA = json.loads((ROOT / "docs" / "wallet-lookup.schema.json").read_text())


@pytest.fixture
def store(db_url):
    return db_url, build_store(db_url)


def rows(conn, sql: str) -> list[dict]:
    return [dict(r) for r in conn.execute(text(sql)).mappings()]


def test_client_margin_holds_every_client_of_the_latest_run(store):
    url, runs = store
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            got = {r["wallet"]: r for r in rows(conn, "SELECT * FROM client_margin")}
            margin = {r["wallet"]: r for r in rows(conn, "SELECT * FROM wallet_margin")}
            # the latest run that is not orphaned is run `first` (block 10); B has no account
            assert set(got) == {A, C, D} and B in margin
            assert {r["run_id"] for r in got.values()} == {runs["first"]}
            assert {r["block_number"] for r in got.values()} == {PAST}
            for w in (A, C):
                assert bool(got[w]["in_run"]) is True
                for k in ("market_value", "collateral", "cash", "upnl", "equity", "im", "mm", "excess", "status",
                          "l_joint", "l_indep", "wrong_way", "worst_scenario", "worst_scenario_loss",
                          "stressed_excess", "binding", "jurisdiction", "tier", "kyc_status", "buffer_to_liquidation",
                          "equity_to_mm"):
                    assert got[w][k] == margin[w][k], (w, k)
            assert got[A]["status"] == "margin_call" and got[A]["equity_to_im"] == pytest.approx(0.9)
            assert got[C]["equity_to_im"] is None  # no margin requirement
            assert bool(got[D]["in_run"]) is False and got[D]["status"] is None and got[D]["equity"] is None
            assert got[D]["tier"] == "retail"

            coll = rows(conn, "SELECT * FROM client_collateral ORDER BY wallet, token")
            assert [(r["wallet"], r["token"]) for r in coll] == [(A, BIG), (A, RB)]  # B's holding is not a client's
            assert int(coll[0]["balance_raw"]) == 2**200 + 7 and coll[0]["jurisdiction"] == "SG"
            assert coll[1]["reason"] == "WALLET_FROZEN,ORACLE_STALE" and coll[1]["action_factor"] == 0.5
            assert rows(conn, f"SELECT wallet FROM client_margin WHERE wallet = '{A}'") == [{"wallet": A}]

        # the run orphaned by a reorg: the views move to the run before it, as latest_run does
        with engine.begin() as conn:
            conn.execute(update(m.RiskRunRecord.__table__).where(m.RiskRunRecord.id == runs["first"])
                         .values(orphaned_at=1.0))
        with engine.connect() as conn:
            got = {r["wallet"]: r for r in rows(conn, "SELECT * FROM client_margin")}
            assert {r["run_id"] for r in got.values()} == {runs["older"]}
            assert got[A]["status"] == "healthy" and got[A]["equity"] == 500.0
            assert [bool(got[w]["in_run"]) for w in (A, C, D)] == [True, False, False]
            assert rows(conn, "SELECT * FROM client_collateral") == []  # run `older` stored no holdings
    finally:
        engine.dispose()


def test_the_analyst_role_reads_the_client_views(tmp_path):
    """roles.sql run after the migrations: a login role in `analyst` reads both views' rows, and cannot write."""
    login = f"ci_desk_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with fresh_database("postgresql", tmp_path) as url:
            build_store(url)
            run_script(url, ROLES)
            with admin.connect() as conn:
                conn.execute(text(f'CREATE ROLE "{login}" LOGIN IN ROLE analyst'))
            reader = make_engine(url.replace("postgres@", f"{login}@"))
            try:
                with reader.connect() as conn:
                    assert conn.execute(text("SELECT count(*) FROM client_margin")).scalar() == 3
                    assert conn.execute(text("SELECT count(*) FROM client_collateral")).scalar() == 2
                with reader.connect() as conn, pytest.raises(Exception, match="permission denied"):
                    conn.execute(text("DELETE FROM accounts"))
            finally:
                reader.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{login}"'))
        admin.dispose()


def test_clients_only_refuses_wallets_with_no_account(store):
    url, runs = store
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            doc = lookup(conn, CID, [checksum(A[2:]), B, "0x12", D], block=PAST, clients_only=True)
            plain = lookup(conn, CID, [A, B], block=PAST)
    finally:
        engine.dispose()
    jsonschema.validate(doc, SCHEMA)
    assert doc["run"]["id"] == runs["first"]
    assert [w["wallet"] for w in doc["wallets"]] == [A, D]  # D has an account, though the run did not value it
    assert doc["wallets"][0]["account"]["tier"] == "retail" and doc["wallets"][0]["found"]
    assert [b["input"] for b in doc["invalid"]] == ["0x12", checksum(B[2:])]
    assert doc["invalid"][1]["error"] == NOT_A_CLIENT and "has 2 hex digits" in doc["invalid"][0]["error"]
    assert [w["wallet"] for w in plain["wallets"]] == [A, B] and plain["invalid"] == []  # without the flag


def test_clients_listing_nearest_a_margin_call_first(store):
    url, runs = store
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            doc = clients_nearest_margin_call(conn, CID, block=PAST)
            latest = clients_nearest_margin_call(conn, CID)  # run `orphan` at the head is left out
            two = clients_nearest_margin_call(conn, CID, block=PAST, top=1)
            older = clients_nearest_margin_call(conn, CID, block=FIRST)
    finally:
        engine.dispose()
    assert doc["run"]["id"] == runs["first"] and doc["clients"] == 3
    assert latest == {**doc, "run": {**doc["run"], "asked": {"block": None, "at": None}}}
    assert doc["status_counts"] == {"healthy": 1, "margin_call": 1, "not_in_run": 1}
    listed = doc["nearest_margin_call"]
    assert [c["wallet"] for c in listed] == [A, C, D]  # margin to meet, lowest equity/IM first; none; not valued
    assert listed[0]["equity_to_im"] == pytest.approx(0.9) and listed[0]["status"] == "margin_call"
    assert listed[0]["checksummed"] == checksum(A[2:]) and listed[0]["in_run"] is True
    assert listed[2]["in_run"] is False and listed[2]["status"] is None and listed[2]["stale_driven"] is None
    assert [c["wallet"] for c in two["nearest_margin_call"]] == [A]
    assert older["run"]["id"] == runs["older"] and older["status_counts"] == {"healthy": 1, "not_in_run": 2}
    assert json.loads(json.dumps(doc)) == doc


def test_cli_clients_only_and_clients(store, tmp_path):
    url, runs = store
    common = ["--config", str(write_config(tmp_path)), "--database-url", url, "--block", str(PAST)]
    runner = CliRunner()
    res = runner.invoke(app, ["wallet", A, B, "--clients-only", *common], env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert f"not a client {checksum(B[2:])}: {NOT_A_CLIENT}" in res.stderr
    assert "invalid address" not in res.stderr and checksum(A[2:]) in res.stdout and checksum(B[2:]) not in res.stdout
    res = runner.invoke(app, ["wallet", A, "--clients-only", "--json", *common])
    assert res.exit_code == 0 and res.stderr == "" and json.loads(res.stdout)["invalid"] == []

    res = runner.invoke(app, ["wallet", "--clients", "--json", *common])
    assert res.exit_code == 0, res.output
    assert [c["wallet"] for c in json.loads(res.stdout)["nearest_margin_call"]] == [A, C, D]
    res = runner.invoke(app, ["wallet", "--clients", *common], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "3 clients: healthy 1, margin_call 1, not_in_run 1" in res.stdout
    assert checksum(A[2:]) in res.stdout and "0.900" in res.stdout and "not in run" in res.stdout
    narrow = runner.invoke(app, ["wallet", "--clients", *common], env={"COLUMNS": "60"})
    assert narrow.exit_code == 0 and "0.900" in narrow.stdout and checksum(A[2:]) in narrow.stdout  # never cut
    res = runner.invoke(app, ["wallet", "--clients", A, *common])
    assert res.exit_code == 2 and "without addresses" in res.output
    res = runner.invoke(app, ["wallet", "--clients", *common[:-2], "--block", "1"])
    assert res.exit_code == 1 and "no risk run is stored at or before block 1" in res.output
