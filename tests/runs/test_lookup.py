"""Wallet lookup: numbers equal the analysts' views, JSON follows its schema, bad input gets a clear
answer and never reaches SQL. A short synced world on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from indexer.cli import app
from indexer.devchain.live import produce_blocks
from indexer.lookup import LookupError_, find_run, lookup
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.sync.tick import sync
from tests.conftest import DATABASES
from tests.runs.worlds import POLICY, synced_world

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "wallet-lookup.schema.json").read_text())


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """A short world synced into each database, with the world's book and two risk runs."""
    with synced_world(tmp_path_factory.mktemp("lookup"), 6) as (chain, rpc, stores):
        runs = {s.kind: [run_and_store(s.engine, s.chain_id, POLICY)] for s in stores}
        produce_blocks(rpc, chain.sim, 4, 1_800)
        for s in stores:
            sync(s.engine, s.ctx)
            runs[s.kind].append(run_and_store(s.engine, s.chain_id, POLICY))
        yield chain, {s.kind: [s.settings, s.engine, *runs[s.kind]] for s in stores}


@pytest.fixture(params=DATABASES)
def db(request, synced):
    return synced[0], *synced[1][request.param]


def test_lookup_equals_the_views_and_follows_the_schema(db):
    chain, settings, engine, first, second = db
    cid = settings.chain.chain_id
    with engine.connect() as conn:
        margin = {r.wallet: r for r in conn.execute(text("SELECT * FROM wallet_margin"))}
        coll = {(r.wallet, r.token): r for r in conn.execute(text("SELECT * FROM wallet_collateral"))}
        assert margin and coll
        wallets = sorted(margin)[:40] + [w for w, r in margin.items() if r.status != "healthy"][:20]
        doc = lookup(conn, cid, [w.upper().replace("0X", "0x") for w in wallets])
    jsonschema.validate(doc, SCHEMA)
    assert doc["run"]["id"] == second.run_id and doc["run"]["block_number"] == second.block_number
    assert doc["invalid"] == []
    compared = 0
    for w in doc["wallets"]:
        v = margin[w["wallet"]]
        assert w["found"]
        for key in ("market_value", "collateral", "cash", "upnl", "equity", "im", "mm", "excess", "status"):
            assert w["margin"][key] == getattr(v, key), key
        for key in ("l_joint", "l_indep", "wrong_way", "worst_scenario", "worst_scenario_loss", "stressed_excess",
                    "binding"):
            assert w["stress"][key] == getattr(v, key), key
        assert sum(h["collateral_value"] for h in w["holdings"]) == pytest.approx(v.collateral, rel=1e-9, abs=1e-9)
        for h in w["holdings"]:
            c = coll[(w["wallet"], h["token"])]
            assert h["collateral_value"] == c.collateral_value
            assert h["haircut"]["total"] == c.haircut
            assert h["codes"] == c.codes
            assert int(h["balance_raw"]) == int(c.balance_raw)
            compared += 1
    assert compared > 50


def test_as_of_a_block_answers_from_the_run_then(db):
    chain, settings, engine, first, second = db
    cid = settings.chain.chain_id
    with engine.connect() as conn:
        assert find_run(conn, cid).id == second.run_id
        assert find_run(conn, cid, block=second.block_number - 1).id == first.run_id
        assert find_run(conn, cid, at=first.block_timestamp).id == first.run_id
        with pytest.raises(LookupError_, match="no risk run is stored at or before block 1"):
            find_run(conn, cid, block=1)
        wallet = conn.execute(select(m.RiskWallet.wallet).where(m.RiskWallet.run_id == first.run_id)).scalars().first()
        doc = lookup(conn, cid, [wallet], block=second.block_number - 1)
    assert doc["run"]["id"] == first.run_id and doc["run"]["asked"] == {"block": second.block_number - 1, "at": None}


def test_bad_and_unknown_addresses_get_clear_answers(db):
    chain, settings, engine, first, second = db
    cid = settings.chain.chain_id
    evil = "0x' OR '1'='1"
    with engine.connect() as conn:
        doc = lookup(conn, cid, ["0x12", evil, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
                                 "0x" + "ab" * 20, "# a comment", ""])
        tables_still_there = conn.execute(select(m.RiskWallet.wallet).limit(1)).first()
    jsonschema.validate(doc, SCHEMA)
    assert [b["input"] for b in doc["invalid"]] == ["0x12", evil, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"]
    assert "has 2 hex digits" in doc["invalid"][0]["error"]
    assert "not hex digits" in doc["invalid"][1]["error"]
    assert "wrong EIP-55 checksum" in doc["invalid"][2]["error"]
    unknown = doc["wallets"][0]
    assert unknown["found"] is False and unknown["margin"] is None
    assert unknown["note"] == "nothing indexed for this wallet: no balance, transfer, account or position"
    assert tables_still_there is not None


def test_cli_reads_arguments_files_and_stdin(db, tmp_path):
    chain, settings, engine, first, second = db
    with engine.connect() as conn:
        wallets = conn.execute(select(m.RiskWallet.wallet).where(m.RiskWallet.run_id == second.run_id)
                               .order_by(m.RiskWallet.wallet).limit(3)).scalars().all()
    common = ["--config", str(chain.manifest_path), "--database-url", settings.database_url]
    runner = CliRunner()
    listing = tmp_path / "wallets.txt"
    listing.write_text(f"# desk list\n{wallets[0]}\n{wallets[1]}\n")
    res = runner.invoke(app, ["wallet", "--file", str(listing), "-", "--json", *common], input=wallets[2] + "\n")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [w["wallet"] for w in doc["wallets"]] == [wallets[2], wallets[0], wallets[1]]
    res = runner.invoke(app, ["wallet", wallets[0], *common], env={"COLUMNS": "160"})
    assert res.exit_code == 0 and "haircut = base + vol + size + gap" in res.output and "stress:" in res.output
    res = runner.invoke(app, ["wallet", "0xnope", *common])
    assert res.exit_code == 2 and "holds characters that are not hex digits" in " ".join(res.output.split())
    res = runner.invoke(app, ["wallet", *common])
    assert res.exit_code == 2 and "give at least one wallet address" in " ".join(res.output.split())


def test_cli_says_why_when_a_writer_holds_the_sqlite_file(synced, tmp_path, monkeypatch):
    """A first backfill writes through a rollback journal and holds the file while a tick writes: a
    lookup that waits longer than the busy timeout says so, not "run init-db"."""
    import sqlite3

    from indexer.store import sqlite as sqlite_module

    chain = synced[0]
    path = tmp_path / "busy.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=truncate")
    writer.execute("CREATE TABLE t (a)")
    writer.execute("BEGIN EXCLUSIVE")  # what a tick's writes take once they spill out of the page cache
    writer.execute("INSERT INTO t VALUES (1)")
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_S", 0.2)
    try:
        res = CliRunner().invoke(app, ["wallet", "0x" + "11" * 20, "--config", str(chain.manifest_path),
                                       "--database-url", f"sqlite:///{path}"])
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    out = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "database is locked" in out and "another process is writing it" in out
