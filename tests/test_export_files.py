"""`collateral-indexer export` on a small hand-made store, on SQLite and PostgreSQL: every exported value
equals the stored one exactly (uint256 values up to 2**256 - 1 as decimal strings, floats bit for bit),
balances at a past block follow each token's accounting model, large tables are written in batches, the
latest run leaves orphaned runs out, and every mistake is one line with no traceback."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from indexer.cli import app
from indexer.runs.export import BALANCE_COLUMNS, ExportError, export, run_columns
from indexer.store import models as m
from indexer.store.engine import make_engine, upgrade

CID = 31337
WAD = 10**18
BIG = "0x" + "0" * 39 + "1"  # a plain 18-decimal token
RB = "0x" + "0" * 39 + "2"  # a rebasing (Backed xStock style) token
A = "0x" + "a" * 40
B = "0x" + "b" * 40
C = "0x" + "c" * 40  # a client with no holding
D = "0x" + "d" * 40  # a client loaded after the runs
MAX = 2**256 - 1
HUGE = 2**200 + 7
SHARES = 10**30 + 1
ROUND = (3 << 64) | 5  # a phase-3 round id, above 2**64
SMALL = [f"0x{i:040x}" for i in range(0x100, 0x100 + 25)]  # 25 more holders of BIG at the head
HEAD, PAST, FIRST = 20, 10, 5


def _run(**kw) -> dict:
    base = dict(chain_id=CID, block_timestamp=1_767_225_600 + kw["block_number"], policy_name="default",
                policy_version="default/1+sha256:000000000000", policy_hash="0" * 64, market_state="open",
                seconds_to_next_open=0, wallets=3, holdings=2, positions=1, collateral_usd=1.5, started_at=1.25,
                seconds=0.5, notes="first note\nsecond, with a comma")
    return {**base, **kw}


def _holding(run_id: int, wallet: str, token: str, symbol: str, raw: int, **kw) -> dict:
    base = dict(run_id=run_id, wallet=wallet, token=token, symbol=symbol, balance_raw=raw, balance=raw / WAD,
                shares=raw / WAD, price=0.1 + 0.2, market_value=1e300, codes=0, code_names="", eligible=True,
                h_base=0.1, h_vol=1 / 3, h_size=0.0, h_gap=0.0, haircut=0.1 + 1 / 3, collateral_before_caps=2.5,
                platform_cut=0.0, wallet_cut=0.0, collateral_value=2.5, feed="0x" + "f" * 40, round_id=ROUND,
                round_age_s=60, market_state="open", h_stale=0.0, action_factor=1.0)
    return {**base, **kw}


def _wallet(run_id: int, wallet: str, status: str, equity: float, im: float, mm: float, **kw) -> dict:
    base = dict(run_id=run_id, wallet=wallet, market_value=equity, collateral=equity, im=im, mm=mm, upnl=0.0,
                cash=0.0, equity=equity, excess=equity - im, status=status, l_joint=1.0, l_indep=0.5,
                wrong_way=0.5, worst_scenario="march_2020", worst_scenario_loss=2.0,
                stressed_excess=equity - im - 2.0, binding="parametric", regime="positive", stale_driven=False,
                unpriced_positions=0)
    return {**base, **kw}


def build_store(url: str) -> dict:
    """The store: two tokens, holders at blocks 5, 10 and the head 20, and three runs: run 1 at block 10,
    run 2 at the head (orphaned by a reorg), run 3 at block 5. Returns the run ids."""
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(m.Token.__table__.insert(), [
            dict(chain_id=CID, address=BIG, symbol="BIG", decimals=18, asset_class="single_stock",
                 accounting="plain"),
            dict(chain_id=CID, address=RB, symbol="RBx", decimals=18, asset_class="single_stock",
                 accounting="rebasing_shares")])
        conn.execute(m.Block.__table__.insert(), [
            dict(chain_id=CID, number=n, hash=f"0x{n:064x}", parent_hash=f"0x{n - 1:064x}",
                 timestamp=1_767_225_600 + n) for n in (FIRST, PAST, HEAD)])
        conn.execute(m.SyncCheckpoint.__table__.insert(), [
            dict(chain_id=CID, name="head", block_number=HEAD, block_hash=f"0x{HEAD:064x}", updated_at=0)])
        conn.execute(m.TokenState.__table__.insert(), [
            dict(chain_id=CID, token=BIG, block_number=FIRST, block_timestamp=0, multiplier_raw=WAD,
                 total_supply_raw=MAX),
            dict(chain_id=CID, token=RB, block_number=FIRST, block_timestamp=0, multiplier_raw=2 * WAD,
                 total_supply_raw=MAX),
            dict(chain_id=CID, token=RB, block_number=HEAD, block_timestamp=0, multiplier_raw=3 * WAD,
                 total_supply_raw=MAX)])
        changes = [(BIG, A, FIRST, 0, HUGE), (BIG, B, FIRST, 1, 5), (RB, A, FIRST, 2, SHARES),
                   (BIG, B, PAST, 0, 0), (BIG, A, HEAD, 0, MAX)]
        changes += [(BIG, w, FIRST, 10 + i, 1000 + i) for i, w in enumerate(SMALL)]
        conn.execute(m.BalanceChange.__table__.insert(), [
            dict(chain_id=CID, token=t, wallet=w, block_number=b, log_index=i, delta_raw=0, units_raw=u)
            for t, w, b, i, u in changes])
        balances = [(BIG, A, MAX, MAX, None), (BIG, B, 0, 0, None), (RB, A, 3 * SHARES, SHARES, SHARES)]
        balances += [(BIG, w, 1000 + i, 1000 + i, None) for i, w in enumerate(SMALL)]
        conn.execute(m.Balance.__table__.insert(), [
            dict(chain_id=CID, token=t, wallet=w, balance_raw=b, units_raw=u, shares_raw=s, block_number=HEAD)
            for t, w, b, u, s in balances])
        rr = m.RiskRunRecord.__table__
        first = conn.execute(rr.insert().values(**_run(block_number=PAST))).inserted_primary_key[0]
        orphan = conn.execute(rr.insert().values(**_run(block_number=HEAD, orphaned_at=1_800_000_000.5))
                              ).inserted_primary_key[0]
        older = conn.execute(rr.insert().values(**_run(block_number=FIRST))).inserted_primary_key[0]
        conn.execute(m.RiskHolding.__table__.insert(), [
            _holding(first, A, BIG, "BIG", HUGE),
            _holding(first, A, RB, "RBx", 2 * SHARES, codes=512 | 4, code_names="WALLET_FROZEN,ORACLE_STALE",
                     eligible=False, collateral_value=0.0, round_id=None, feed=None, h_stale=0.25,
                     action_factor=0.5),
            _holding(first, B, BIG, "BIG", 5),
            _holding(orphan, A, BIG, "BIG", MAX)])
        conn.execute(m.RiskWallet.__table__.insert(), [
            _wallet(first, A, "margin_call", 90.0, 100.0, 50.0),
            _wallet(first, B, "liquidate", 10.0, 100.0, 50.0),
            _wallet(first, C, "healthy", 5.0, 0.0, 0.0),
            _wallet(orphan, A, "healthy", 1e9, 1.0, 0.5),
            _wallet(orphan, C, "liquidate", 0.0, 1.0, 0.5),
            _wallet(older, A, "healthy", 500.0, 100.0, 50.0)])
        conn.execute(m.RiskPosition.__table__.insert(), [
            dict(run_id=first, wallet=A, instrument="BTC-PERP", feed="0x" + "e" * 40, size=-0.1, entry_price=60_000.0,
                 mark=61_000.5, mark_price=61_000.0, mark_adverse=0.01, mark_quality="ok", round_id=ROUND,
                 round_age_s=30, notional=6100.05, im=100.0, mm=50.0, upnl=-100.05)])
        conn.execute(m.Account.__table__.insert(), [
            dict(wallet=w, jurisdiction="SG", tier="retail", kyc_status="approved", cash_usd=0.0, loaded_at=0)
            for w in (A, C, D)])
    engine.dispose()
    return {"first": int(first), "orphan": int(orphan), "older": int(older)}


@pytest.fixture
def store(db_url):
    return db_url, build_store(db_url)


# -- reading the files back -------------------------------------------------------------------------

def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_parquet(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def typed(value, kind: str):
    """A CSV cell back to the stored Python value (an empty cell is NULL, or an empty text)."""
    if value == "":
        return "" if kind == "text" else None
    return {"exact": int, "int": int, "float": float, "bool": lambda v: v == "true", "text": str}[kind](value)


def read_back(path: Path, columns, nullable_text: frozenset = frozenset({"feed"})) -> list[dict]:
    kinds = dict(columns)
    if path.suffix == ".csv":
        return [{k: None if v == "" and k in nullable_text else typed(v, kinds[k]) for k, v in row.items()}
                for row in read_csv(path)]
    return [{k: int(v) if kinds[k] == "exact" and v is not None else v for k, v in row.items()}
            for row in read_parquet(path)]


def stored(engine, table, run_id: int) -> list[dict]:
    t = table.__table__
    key = [c for c in t.primary_key.columns if c.name != "run_id"]
    q = select(t).where(t.c.id == run_id) if t.name == "risk_runs" else \
        select(t).where(t.c.run_id == run_id).order_by(*key)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def same(a, b) -> bool:
    """Equal, floats bit for bit (NaN equals NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b)


# -- the tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_run_tables_equal_the_stored_rows_exactly(store, tmp_path, fmt):
    url, runs = store
    engine = make_engine(url)
    try:
        result = export(engine, CID, tmp_path / "out", fmt=fmt)  # the latest run that is not orphaned
        assert result.run["id"] == runs["first"] and result.block_number is None
        names = {f.table: f.path.name for f in result.files}
        assert names == {"run": f"risk_run_{runs['first']}.{fmt}", "wallets": f"risk_wallets_{runs['first']}.{fmt}",
                         "holdings": f"risk_holdings_{runs['first']}.{fmt}",
                         "positions": f"risk_positions_{runs['first']}.{fmt}"}
        models = {"run": m.RiskRunRecord, "wallets": m.RiskWallet, "holdings": m.RiskHolding,
                  "positions": m.RiskPosition}
        for f in result.files:
            want = stored(engine, models[f.table], runs["first"])
            got = read_back(f.path, run_columns(f.table))
            assert f.rows == len(want) == len(got) > 0, f.table
            for g, w in zip(got, want, strict=True):
                assert list(g) == list(w), f.table  # every stored column, in the table's order
                for k in w:
                    assert same(g[k], w[k]), (f.table, k, g[k], w[k])
        holdings = read_back(tmp_path / "out" / names["holdings"], run_columns("holdings"))
        assert {h["balance_raw"] for h in holdings} == {HUGE, 2 * SHARES, 5}
        assert {h["round_id"] for h in holdings} == {ROUND, None}
        if fmt == "parquet":  # exact integers are strings in the file itself, never floats
            schema = pq.read_schema(tmp_path / "out" / names["holdings"])
            assert str(schema.field("balance_raw").type) == "string"
            assert str(schema.field("balance").type) == "double"
            assert str(schema.field("eligible").type) == "bool"
            assert schema.metadata[b"run_id"] == str(runs["first"]).encode()
            assert pq.read_table(tmp_path / "out" / names["holdings"]).column("balance_raw").to_pylist()[0] == str(HUGE)
        else:
            raw = read_csv(tmp_path / "out" / names["holdings"])
            assert raw[0]["balance_raw"] == str(HUGE) and raw[0]["eligible"] == "true"
    finally:
        engine.dispose()


def test_an_orphaned_run_is_exported_when_asked_by_id(store, tmp_path):
    url, runs = store
    engine = make_engine(url)
    try:
        result = export(engine, CID, tmp_path, run_id=runs["orphan"], tables=["run", "holdings"])
        assert result.run["orphaned_at"] == 1_800_000_000.5
        (run_row,) = read_back(result.files[0].path, run_columns("run"))
        assert run_row["orphaned_at"] == 1_800_000_000.5 and run_row["notes"] == "first note\nsecond, with a comma"
        (h,) = read_back(result.files[1].path, run_columns("holdings"))
        assert h["balance_raw"] == MAX and str(MAX) in result.files[1].path.read_text()
        # at or before a block: the latest run that valued a block up to it
        assert export(engine, CID, tmp_path, block=FIRST, tables=["run"]).run["id"] == runs["older"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_balances_at_the_head_and_at_a_past_block_are_exact(store, tmp_path, fmt):
    url, runs = store
    engine = make_engine(url)
    try:
        head = export(engine, CID, tmp_path, tables=["balances"], fmt=fmt, batch_rows=4)
        past = export(engine, CID, tmp_path, block=PAST, fmt=fmt, batch_rows=4)  # balances by default
        at_run = export(engine, CID, tmp_path / "run", run_id=runs["first"], tables=["balances"], fmt=fmt)
    finally:
        engine.dispose()
    assert (head.block_number, past.block_number, at_run.block_number) == (HEAD, PAST, PAST)
    assert head.files[0].path.name == f"balances_block_{HEAD}.{fmt}"
    rows = read_back(head.files[0].path, BALANCE_COLUMNS)
    got = {(r["token"], r["wallet"]): r for r in rows}
    assert [(r["token"], r["wallet"]) for r in rows] == sorted(got)  # by token, then wallet
    assert (BIG, B) not in got  # a zero balance is no holding
    assert got[(BIG, A)]["balance_raw"] == MAX and got[(BIG, A)]["units_raw"] == MAX
    assert got[(BIG, A)]["balance"] == MAX / WAD and isinstance(got[(BIG, A)]["balance"], float)
    assert got[(RB, A)]["balance_raw"] == 3 * SHARES and got[(RB, A)]["units_raw"] == SHARES
    assert got[(RB, A)]["multiplier_raw"] == 3 * WAD and got[(RB, A)]["symbol"] == "RBx"
    assert len(rows) == head.files[0].rows == 2 + len(SMALL)
    assert all(r["block_number"] == HEAD and r["chain_id"] == CID for r in rows)

    old = {(r["token"], r["wallet"]): r for r in read_back(past.files[0].path, BALANCE_COLUMNS)}
    assert old[(BIG, A)]["balance_raw"] == HUGE
    assert old[(RB, A)]["balance_raw"] == 2 * SHARES and old[(RB, A)]["multiplier_raw"] == 2 * WAD  # shares x mult
    assert (BIG, B) not in old and len(old) == 2 + len(SMALL)
    assert read_back(at_run.files[0].path, BALANCE_COLUMNS) == read_back(past.files[0].path, BALANCE_COLUMNS)
    if fmt == "parquet":  # written a batch at a time: one row group per batch of 4
        assert pq.ParquetFile(head.files[0].path).metadata.num_row_groups == math.ceil(len(rows) / 4)


def test_mistakes_are_one_line_and_leave_no_file(store, tmp_path):
    url, runs = store
    engine = make_engine(url)
    try:
        with pytest.raises(ExportError, match="no risk run 999 is stored for chain 31337"):
            export(engine, CID, tmp_path / "a", run_id=999)
        with pytest.raises(ExportError, match="no risk run is stored for chain 1"):
            export(engine, 1, tmp_path / "a")
        with pytest.raises(ExportError, match="unknown table 'nope'"):
            export(engine, CID, tmp_path / "a", tables=["nope"])
        with pytest.raises(Exception, match="block 21 is above the synced head 20"):
            export(engine, CID, tmp_path / "a", block=21)
        with pytest.raises(Exception, match="block 7 is not stored"):
            export(engine, CID, tmp_path / "a", block=7)
        with pytest.raises(Exception, match="no synced block at or before unix time 100"):
            export(engine, CID, tmp_path / "a", at=100)
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        with pytest.raises(ExportError, match="cannot write to .*a-file"):
            export(engine, CID, blocker)
        with pytest.raises(ExportError, match="cannot write to .*a-file/sub: Not a directory"):
            export(engine, CID, blocker / "sub")
    finally:
        engine.dispose()
    assert not (tmp_path / "a").exists()  # nothing was written before the mistake was found

    common = ["--config", str(write_config(tmp_path)), "--database-url", url]
    cases = [(["--run", "999"], "no risk run 999 is stored for chain 31337"),
             (["--block", "21"], "block 21 is above the synced head 20"),
             (["--block", "7"], "block 7 is not stored"),
             (["--out", str(blocker)], "cannot write to"),
             (["--out", str(blocker / "sub")], "Not a directory"),
             (["--format", "xlsx"], "xlsx"),
             (["--table", "everything"], "everything"),
             (["--block", "5", "--at", "2026-01-01"], "give --block or --at, not both"),
             (["--at", "yesterday"], "is not a time")]
    runner = CliRunner()
    for args, message in cases:
        out = [] if "--out" in args else ["--out", str(tmp_path / "cli")]
        res = runner.invoke(app, ["export", *args, *out, *common])
        assert res.exit_code in (1, 2), (args, res.output)
        assert message in res.output, (args, res.output)
        assert "Traceback" not in res.output and isinstance(res.exception, SystemExit), (args, res.output)
    assert not (tmp_path / "cli").exists()
    res = runner.invoke(app, ["export", "--database-url", "sqlite:///" + str(tmp_path / "missing" / "x.sqlite"),
                              "--config", common[1], "--out", str(tmp_path / "cli")])
    assert res.exit_code == 1 and "cannot read" in res.output and "Traceback" not in res.output, res.output


def write_config(folder: Path) -> Path:
    path = folder / "indexer.toml"
    path.write_text(f"""[chain]
chain_id = {CID}
rpc_url = "http://127.0.0.1:9"
deployment_block = 1

[[tokens]]
symbol = "BIG"
address = "{BIG}"
decimals = 18
asset_class = "single_stock"
accounting = "plain"
""")
    return path


def test_cli_writes_the_files_and_says_what(store, tmp_path):
    url, runs = store
    common = ["--config", str(write_config(tmp_path)), "--database-url", url]
    runner = CliRunner()
    res = runner.invoke(app, ["export", "--out", str(tmp_path / "x"), "--format", "parquet", *common])
    assert res.exit_code == 0, res.output
    assert f"run {runs['first']}" in res.output and f"risk_holdings_{runs['first']}.parquet: 3 rows" in res.output
    res = runner.invoke(app, ["export", "--run", str(runs["orphan"]), "--table", "wallets", "--table", "balances",
                              "--out", str(tmp_path / "y"), *common])
    assert res.exit_code == 0, res.output
    assert "orphaned" in res.output
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == [
        f"balances_block_{HEAD}.csv", f"risk_wallets_{runs['orphan']}.csv"]
    res = runner.invoke(app, ["export", "--at", str(1_767_225_600 + PAST), "--out", str(tmp_path / "z"), *common])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "z").iterdir()] == [f"balances_block_{PAST}.csv"]
