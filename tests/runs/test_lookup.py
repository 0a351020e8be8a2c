"""Wallet lookup: numbers equal the analysts' views, JSON follows its schema, bad input gets a clear
answer and never reaches SQL. A short synced world on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from indexer.addresses import checksum
from indexer.cli import app
from indexer.devchain.live import produce_blocks
from indexer.devchain.specs import FROZEN_MSFT, SANCTIONED, ScheduledEvent
from indexer.lookup import LookupError_, find_run, lookup
from indexer.lookup_view import usd
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.sync.tick import sync
from tests.conftest import DATABASES
from tests.runs.worlds import POLICY, synced_world
from tests.test_wallet_lookup_script import SCRIPT, outside_env, system_pythons

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "wallet-lookup.schema.json").read_text())


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """A short world synced into each database, with the world's book and two risk runs; between them
    the world's first sanctioned wallet is put on the sanctions list and its first MSFT-frozen wallet
    frozen (the full world does both later, days 89 and 99)."""
    with synced_world(tmp_path_factory.mktemp("lookup"), 6) as (chain, rpc, stores):
        runs = {s.kind: [run_and_store(s.engine, s.chain_id, POLICY)] for s in stores}
        sim = chain.sim
        at = sim.last_time + 1
        sim.events[sim._next_event:sim._next_event] = [
            ScheduledEvent(at, "sanction", "*", {"wallets": [SANCTIONED[0]]}),
            ScheduledEvent(at, "freeze", "MSFT", {"wallets": [FROZEN_MSFT[0]]})]
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
    listing.write_text(f"# desk list for the morning call\n\n{wallets[0]}   # the fund\n  # {wallets[2]} left\n"
                       f"{wallets[1]}#no space\n\n")
    res = runner.invoke(app, ["wallet", "--file", str(listing), "-", "--json", *common],
                        input=f"# from stdin\n{wallets[2]}  # a trailing comment\n")
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    doc = json.loads(res.stdout)
    assert doc["invalid"] == []
    assert [w["wallet"] for w in doc["wallets"]] == [wallets[2], wallets[0], wallets[1]]
    res = runner.invoke(app, ["wallet", wallets[0], *common], env={"COLUMNS": "160"})
    assert res.exit_code == 0 and "haircut = base + vol + size + gap" in res.output and "stress:" in res.output
    res = runner.invoke(app, ["wallet", "0xnope", *common])
    assert res.exit_code == 2 and "holds characters that are not hex digits" in " ".join(res.output.split())
    res = runner.invoke(app, ["wallet", *common])
    assert res.exit_code == 2 and "give at least one wallet address" in " ".join(res.output.split())


def _common(chain, settings) -> list[str]:
    return ["--config", str(chain.manifest_path), "--database-url", settings.database_url]


def _wallets_of(engine, run_id: int, n: int) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(select(m.RiskWallet.wallet).where(m.RiskWallet.run_id == run_id)
                            .order_by(m.RiskWallet.wallet).limit(n)).scalars().all()


def test_a_mix_of_valid_and_invalid_addresses_answers_the_valid_ones_and_exits_2(db):
    chain, settings, engine, first, second = db
    good = _wallets_of(engine, second.run_id, 2)
    runner = CliRunner()
    args = ["wallet", good[0], "0xnope", good[1], "0x12", *_common(chain, settings)]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 2, res.output
    doc = json.loads(res.stdout)  # stdout is the document alone
    jsonschema.validate(doc, SCHEMA)
    assert [w["wallet"] for w in doc["wallets"]] == good and all(w["found"] for w in doc["wallets"])
    assert [b["input"] for b in doc["invalid"]] == ["0xnope", "0x12"]
    err = " ".join(res.stderr.split())
    assert "invalid address '0xnope'" in err and "holds characters that are not hex digits" in err
    assert "invalid address '0x12'" in err and "has 2 hex digits" in err
    res = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert res.exit_code == 2, res.output
    assert "invalid address" not in res.stdout and "0xnope" not in res.stdout and "'0x12'" not in res.stdout
    for w in good:
        assert checksum(w[2:]) in res.stdout
    assert "invalid address '0xnope'" in " ".join(res.stderr.split())
    res = runner.invoke(app, ["wallet", *good, *_common(chain, settings)], env={"COLUMNS": "160"})
    assert res.exit_code == 0 and res.stderr == ""


def test_sanctioned_and_frozen_wallets_lead_with_it(db):
    chain, settings, engine, first, second = db
    cid = settings.chain.chain_id
    sanctioned = chain.sim.wallets[SANCTIONED[0]].lower()
    frozen = chain.sim.wallets[FROZEN_MSFT[0]].lower()
    with engine.connect() as conn:
        before = lookup(conn, cid, [sanctioned, frozen], block=first.block_number)
        doc = lookup(conn, cid, [sanctioned, frozen])
    jsonschema.validate(doc, SCHEMA)
    assert doc["schema_version"] == "1.4" and doc["run"]["id"] == second.run_id
    s, f = doc["wallets"]
    assert s["found"] and s["margin"] is not None and s["holdings"]
    assert (s["headline"], s["sanctioned"], s["frozen_on"]) == ("sanctioned", True, [])
    assert all("WALLET_SANCTIONED" in h["reasons"] and h["collateral_value"] == 0.0 for h in s["holdings"])
    assert s["margin"]["collateral"] == 0.0
    assert (f["headline"], f["sanctioned"], f["frozen_on"]) == ("frozen", False, ["MSFT"])
    msft = [h for h in f["holdings"] if h["symbol"] == "MSFT"]
    assert msft and "WALLET_FROZEN" in msft[0]["reasons"] and msft[0]["collateral_value"] == 0.0
    assert all("WALLET_FROZEN" not in h["reasons"] for h in f["holdings"] if h["symbol"] != "MSFT")
    # the run before the events: neither, and the headline is the margin status
    for w in before["wallets"]:
        assert (w["sanctioned"], w["frozen_on"]) == (False, [])
        assert w["headline"] == w["margin"]["status"]
    res = CliRunner().invoke(app, ["wallet", sanctioned, frozen, *_common(chain, settings)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    panels = res.stdout.split("╭─ ")[1:]
    assert [p.split(" ")[0] for p in panels] == [checksum(sanctioned[2:]), checksum(frozen[2:])]
    heads = [" ".join(p.split("\n", 2)[1].replace("│", " ").split()) for p in panels]
    assert heads[0].startswith(f"SANCTIONED status {s['margin']['status'].upper()}"), heads[0]
    assert heads[1].startswith(f"FROZEN on MSFT status {f['margin']['status'].upper()}"), heads[1]


def test_at_80_columns_no_number_is_cut(db):
    """The largest wallets (the widest numbers) with positions, printed where no terminal says how wide:
    80 columns, every number whole."""
    chain, settings, engine, first, second = db
    with engine.connect() as conn:
        margin = {r.wallet: r for r in conn.execute(text("SELECT * FROM wallet_margin"))}
        with_positions = {p.wallet for p in conn.execute(select(m.Position.wallet))}
    wallets = sorted((w for w in margin if w in with_positions), key=lambda w: -margin[w].market_value)[:3]
    assert wallets
    runner = CliRunner()
    doc = json.loads(runner.invoke(app, ["wallet", *wallets, "--json", *_common(chain, settings)]).stdout)
    numbers = []
    for w in doc["wallets"]:
        numbers += [usd(w["margin"][k]) for k in ("market_value", "collateral", "equity", "im", "mm", "excess")]
        numbers += [usd(w["stress"][k]) for k in ("l_joint", "l_indep", "stressed_excess")]
        for h in w["holdings"]:
            numbers += [f"{h['balance']:,.4f}", usd(h["market_value"]), usd(h["collateral_value"])]
        for p in w["positions"]:
            numbers += [f"{p['size']:,.6f}", usd(p["entry_price"]), usd(p["mark"]["upnl"])]
    assert max(len(n) for n in numbers) >= 12  # at least 1,000,000.00
    for env in ({"COLUMNS": "80"}, {"COLUMNS": None}):  # CliRunner's output is no terminal: 80 by default
        res = runner.invoke(app, ["wallet", *wallets, *_common(chain, settings)], env=env)
        assert res.exit_code == 0, res.output
        assert "…" not in res.stdout
        assert max(len(line) for line in res.stdout.splitlines()) <= 80
        for n in numbers:
            assert re.search(re.escape(n) + r"(?![\d,.])", res.stdout), (n, res.stdout)


def test_the_readme_script_answers_under_another_python(db):
    """`scripts/wallet_lookup.py 0x... --json`, run by its shebang's python3 and by the system python3."""
    chain, settings, engine, first, second = db
    wallet = _wallets_of(engine, second.run_id, 1)[0]
    pythons = system_pythons()
    assert pythons
    for argv in ([str(SCRIPT)], [pythons[0], str(SCRIPT)], ["/usr/bin/python3", str(SCRIPT)]):
        if not Path(argv[0]).exists():
            continue
        res = subprocess.run([*argv, wallet, "--json", *_common(chain, settings)], capture_output=True, text=True,
                             env=outside_env(), cwd=SCRIPT.parents[1], timeout=120)
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        jsonschema.validate(doc, SCHEMA)
        assert doc["run"]["id"] == second.run_id and [w["wallet"] for w in doc["wallets"]] == [wallet]


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
