"""`collateral-indexer export` and the client views on a short synced world, on SQLite and PostgreSQL: the
exported run equals the stored rows exactly, balances at the head and at a past block equal what the risk
runs at those blocks valued (every holding, to the unit, values far above 2**64 among them), both
databases export the same balances byte for byte, and `client_margin` is `wallet_margin` of the wallets
with an account."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from indexer.devchain.live import produce_blocks
from indexer.lookup import clients_nearest_margin_call
from indexer.runs.export import BALANCE_COLUMNS, export, run_columns
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.sync.tick import sync
from tests.conftest import DATABASES
from tests.runs.worlds import POLICY, synced_world
from tests.test_export_files import read_back, same, stored

MODELS = {"run": m.RiskRunRecord, "wallets": m.RiskWallet, "holdings": m.RiskHolding, "positions": m.RiskPosition}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Six days of the world in each database with a risk run at its head, then six more world blocks
    synced and a run at the new head, and every export of both runs (their tables and their blocks'
    balances) in both formats."""
    folder = tmp_path_factory.mktemp("export")
    with synced_world(folder, 6) as (chain, rpc, stores):
        pasts = {s.kind: run_and_store(s.engine, s.chain_id, POLICY) for s in stores}
        produce_blocks(rpc, chain.sim, 6, 1_800)
        out = {}
        for s in stores:
            sync(s.engine, s.ctx)
            head, past = run_and_store(s.engine, s.chain_id, POLICY), pasts[s.kind]
            files = {}
            for fmt in ("csv", "parquet"):
                for name, run in (("head", head), ("past", past)):
                    target = folder / s.kind / fmt / name
                    files[(fmt, name)] = export(s.engine, s.chain_id, target, run_id=run.run_id, fmt=fmt,
                                                tables=["run", "wallets", "holdings", "positions", "balances"],
                                                batch_rows=5_000)
            out[s.kind] = (s, head, past, files)
        yield out


@pytest.fixture(params=DATABASES)
def db(request, exported):
    return exported[request.param]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_exported_run_equals_the_stored_rows(db, fmt):
    store, head, past, files = db
    result = files[(fmt, "head")]
    assert result.run["id"] == head.run_id
    counts = {}
    for f in result.files:
        if f.table == "balances":
            continue
        want = stored(store.engine, MODELS[f.table], head.run_id)
        got = read_back(f.path, run_columns(f.table))
        assert f.rows == len(got) == len(want), f.table
        for g, w in zip(got, want, strict=True):
            assert list(g) == list(w)
            for k in w:
                assert same(g[k], w[k]), (f.table, k, g[k], w[k])
        counts[f.table] = f.rows
    assert counts["holdings"] == head.holdings and counts["wallets"] == head.wallets
    assert counts["positions"] == head.positions > 0
    holdings = read_back(next(f.path for f in result.files if f.table == "holdings"), run_columns("holdings"))
    assert max(h["balance_raw"] for h in holdings) > 2**64  # whales of 18-decimal tokens
    assert min(h["round_id"] for h in holdings if h["round_id"] is not None) > 2**64  # phase << 64 | round


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_balances_equal_what_the_runs_valued(db, fmt):
    store, head, past, files = db
    for name, run in (("head", head), ("past", past)):
        result = files[(fmt, name)]
        assert result.block_number == run.block_number
        (bal,) = [f for f in result.files if f.table == "balances"]
        rows = read_back(bal.path, BALANCE_COLUMNS)
        got = {(r["wallet"], r["token"]): r["balance_raw"] for r in rows}
        assert len(got) == len(rows) == bal.rows
        with store.engine.connect() as conn:
            h = m.RiskHolding.__table__
            valued = {(w, t): int(b) for w, t, b in conn.execute(
                select(h.c.wallet, h.c.token, h.c.balance_raw).where(h.c.run_id == run.run_id))}
            if name == "head":
                b = m.Balance.__table__
                now = {(w, t): int(v) for w, t, v in conn.execute(select(b.c.wallet, b.c.token, b.c.balance_raw))
                       if int(v) > 0}
                assert got == now
        assert got == valued, name  # every holding the run valued, to the unit
        assert max(got.values()) > 2**64
        assert all(r["balance"] == r["balance_raw"] / 10 ** r["decimals"] for r in rows)
    assert files[(fmt, "past")].block_number < files[(fmt, "head")].block_number


def test_both_databases_export_the_same_balances(exported):
    for fmt in ("csv",):
        for name in ("head", "past"):
            texts = [next(f.path for f in exported[k][3][(fmt, name)].files if f.table == "balances").read_bytes()
                     for k in DATABASES]
            assert texts[0] == texts[1], name


def test_client_margin_is_wallet_margin_of_the_clients(db):
    store, head, past, files = db
    with store.engine.connect() as conn:
        clients = {r.wallet: r for r in conn.execute(text("SELECT * FROM client_margin"))}
        margin = {r.wallet: r for r in conn.execute(text("SELECT * FROM wallet_margin"))}
        accounts = set(conn.execute(select(m.Account.wallet)).scalars())
        listing = clients_nearest_margin_call(conn, store.chain_id, top=10)
        coll = conn.execute(text("SELECT count(*) FROM client_collateral")).scalar()
        coll_all = conn.execute(text("SELECT count(*) FROM wallet_collateral w JOIN accounts a "
                                     "ON a.wallet = w.wallet")).scalar()
    assert set(clients) == accounts and len(accounts) > 10
    assert set(margin) - accounts  # holders with no account are not clients
    assert {r.run_id for r in clients.values()} == {head.run_id}
    for w, r in clients.items():
        assert r.in_run and r.status == margin[w].status and r.equity == margin[w].equity and r.im == margin[w].im
    assert coll == coll_all > 0
    assert listing["run"]["id"] == head.run_id and listing["clients"] == len(accounts)
    ranked = sorted((r for r in clients.values() if r.im > 0), key=lambda r: (r.equity / r.im, r.excess, r.wallet))
    want = [r.wallet for r in ranked][:10]
    assert want and [c["wallet"] for c in listing["nearest_margin_call"]][:len(want)] == want
