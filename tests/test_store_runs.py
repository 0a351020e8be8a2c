"""Stored risk runs: a reorg that removes block B keeps the runs that valued blocks above the fork and marks
them orphaned; the latest run (the store's query and the `latest_run` view) leaves them out; a run id is
never given twice, on SQLite (AUTOINCREMENT, 0007) as on PostgreSQL, nor across the 0007 upgrade."""

from alembic import command
from sqlalchemy import delete, func, select, text

from indexer.store import models as m
from indexer.store.engine import alembic_config, make_engine, upgrade
from indexer.store.runs import latest_run, orphan_runs_above
from tests import ROOT

RUN = dict(block_timestamp=0, policy_name="p", policy_version="v", policy_hash="0" * 64, market_state="open",
           seconds_to_next_open=0, wallets=0, holdings=0, positions=0, collateral_usd=0.0, started_at=0.0, seconds=0.0)


def _store_run(conn, block: int, chain_id: int = 31337) -> int:
    """A run inserted as the risk job inserts one (no id given), with one wallet row; returns its id."""
    run_id = conn.execute(m.RiskRunRecord.__table__.insert().values(
        chain_id=chain_id, block_number=block, **RUN)).inserted_primary_key[0]
    conn.execute(m.RiskWallet.__table__.insert().values(
        run_id=run_id, wallet="0x" + "22" * 20, market_value=float(block), collateral=0, im=0, mm=0, upnl=0, cash=0,
        equity=0, excess=0, status="healthy", l_joint=0, l_indep=0, wrong_way=0, worst_scenario="",
        worst_scenario_loss=0, stressed_excess=0, binding="parametric"))
    return int(run_id)


def _delete_run(conn, run_id: int) -> None:
    for model in (m.RiskWallet, m.RiskHolding, m.RiskPosition):
        conn.execute(delete(model).where(model.run_id == run_id))
    conn.execute(delete(m.RiskRunRecord).where(m.RiskRunRecord.id == run_id))


def test_run_ids_are_never_given_twice(db_url):
    """An operator deletes the newest run (or an old version's reorg did): the next run gets a new id, so a
    report or a ticket citing the deleted id can never name another run."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            ids = [_store_run(conn, b) for b in (10, 20, 30)]
        assert ids == [1, 2, 3]
        with engine.begin() as conn:
            _delete_run(conn, 3)
        with engine.begin() as conn:
            assert _store_run(conn, 31) == 4
            _delete_run(conn, 4)
            _delete_run(conn, 2)
        with engine.begin() as conn:
            assert _store_run(conn, 32) == 5
        with engine.connect() as conn:
            assert conn.execute(select(m.RiskRunRecord.id).order_by(m.RiskRunRecord.id)).scalars().all() == [1, 5]
            assert dict(conn.execute(select(m.RiskWallet.run_id, m.RiskWallet.market_value)).all()) == {1: 10.0, 5: 32.0}
    finally:
        engine.dispose()


def test_upgrading_to_0007_keeps_runs_and_ids_and_never_reuses_one(db_url):
    upgrade(db_url, "0006")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for b in (10, 20, 30):
                conn.execute(text("INSERT INTO risk_runs (chain_id, block_number, block_timestamp, policy_name, "
                                  "policy_version, policy_hash, market_state, seconds_to_next_open, wallets, holdings, "
                                  "positions, collateral_usd, started_at, seconds, notes) VALUES (31337, :b, 0, 'p', "
                                  "'v', 'h', 'open', 0, 0, 0, 0, :b, 0, 0, '')"), {"b": b})
        upgrade(db_url)
        with engine.connect() as conn:
            rows = conn.execute(select(m.RiskRunRecord.id, m.RiskRunRecord.collateral_usd, m.RiskRunRecord.orphaned_at)
                                .order_by(m.RiskRunRecord.id)).all()
            assert [tuple(r) for r in rows] == [(1, 10.0, None), (2, 20.0, None), (3, 30.0, None)]
            if engine.dialect.name == "sqlite":
                ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'risk_runs'")).scalar()
                assert "AUTOINCREMENT" in ddl
        with engine.begin() as conn:
            _delete_run(conn, 3)
        with engine.begin() as conn:
            assert _store_run(conn, 40) == 4
        # down and up again: 0006's shape without orphaned runs, then 0007's
        command.downgrade(alembic_config(db_url), "0006")
        upgrade(db_url)
        with engine.begin() as conn:
            assert conn.execute(select(m.RiskRunRecord.id).order_by(m.RiskRunRecord.id)).scalars().all() == [1, 2, 4]
            assert _store_run(conn, 50) == 5
    finally:
        engine.dispose()


def test_latest_run_and_the_views_leave_orphaned_runs_out(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            ids = {b: _store_run(conn, b) for b in (90, 100, 101, 150)}
            other_chain = _store_run(conn, 500, chain_id=1)
        with engine.begin() as conn:
            assert orphan_runs_above(conn, 31337, 100, at=1_767_225_600.5) == 2
        with engine.connect() as conn:
            assert latest_run(conn, 31337).id == ids[100]
            assert latest_run(conn, 31337, block=95).id == ids[90]
            assert latest_run(conn, 31337, block=150).id == ids[100]  # the run at 150 valued an orphaned block
            assert latest_run(conn, 1).id == other_chain
            assert latest_run(conn, 31337, block=80) is None
            # the wallet lookup chooses its run the same way
            from indexer.lookup import find_run
            assert find_run(conn, 31337).id == ids[100]
            assert find_run(conn, 31337, block=150).id == ids[100]
            # and so does the report, which still reports an orphaned run asked for by id
            from indexer.report.data import _run
            assert _run(conn, 31337, None)["id"] == ids[100]
            assert _run(conn, 31337, ids[150])["orphaned_at"] == 1_767_225_600.5
            assert dict(conn.execute(text("SELECT chain_id, run_id FROM latest_run")).all()) == {
                31337: ids[100], 1: other_chain}
            assert conn.execute(text("SELECT DISTINCT run_id FROM wallet_margin WHERE chain_id = 31337")).scalars() \
                .all() == [ids[100]]
        # a run at the new branch's block 101 is the latest again; the orphaned one is still there
        with engine.begin() as conn:
            again = _store_run(conn, 101)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT run_id FROM latest_run WHERE chain_id = 31337")).scalar() == again
            assert latest_run(conn, 31337).id == again
            orphaned = dict(conn.execute(select(m.RiskRunRecord.id, m.RiskRunRecord.orphaned_at)
                                         .where(m.RiskRunRecord.orphaned_at.is_not(None))).all())
            assert orphaned == {ids[101]: 1_767_225_600.5, ids[150]: 1_767_225_600.5}
    finally:
        engine.dispose()


QUERIES = ROOT / "db" / "queries"


def _query(name: str) -> str:
    return (QUERIES / name).read_text()


def test_example_queries_that_choose_runs_leave_orphaned_runs_out(db_url):
    """db/queries 11 (the two latest runs), 14 (the run at or before a block) and 03 (last weekend's runs)
    pick runs from risk_runs themselves: none of them may pick a run whose block a reorg removed."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            ids = {b: _store_run(conn, b) for b in (10, 20, 30)}
            conn.execute(m.RiskRunRecord.__table__.update().values(market_state="weekend"))
            assert orphan_runs_above(conn, 31337, 20) == 1
        with engine.connect() as conn:
            movers = conn.execute(text(_query("11_equity_movers_since_previous_run.sql")), {"top_n": 10}).mappings().all()
            assert [(r["previous_block"], r["block_number"]) for r in movers] == [(10, 20)]
            as_of = conn.execute(text(_query("14_margin_as_of_block.sql")), {"chain_id": 31337, "block": 99}) \
                .mappings().all()
            assert [r["run_id"] for r in as_of] == [ids[20]]
            weekend = conn.execute(text(_query("03_collateral_lost_to_staleness_last_weekend.sql"))).mappings().all()
            assert weekend == []  # the runs have no holdings; the point is the orphaned run is not chosen either
            ran = conn.execute(text(_query("03_collateral_lost_to_staleness_last_weekend.sql").replace(
                "JOIN risk_holdings h ON h.run_id = wr.id", "LEFT JOIN risk_holdings h ON h.run_id = wr.id")))
            assert [r.run_id for r in ran] == [ids[10], ids[20]]
    finally:
        engine.dispose()


def test_runs_above_the_fork_are_kept_with_their_rows_and_marked_orphaned(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for run_id, block in ((1, 90), (2, 100), (3, 101), (4, 150)):
                conn.execute(m.RiskRunRecord.__table__.insert().values(
                    id=run_id, chain_id=31337, block_number=block, block_timestamp=block * 12, policy_name="p",
                    policy_version="v", policy_hash="0" * 64, market_state="open", seconds_to_next_open=0, wallets=1,
                    holdings=0, positions=0, collateral_usd=0.0, started_at=0.0, seconds=0.0))
                conn.execute(m.RiskWallet.__table__.insert().values(
                    run_id=run_id, wallet="0x" + "11" * 20, market_value=0, collateral=0, im=0, mm=0, upnl=0, cash=0,
                    equity=0, excess=0, status="healthy", l_joint=0, l_indep=0, wrong_way=0, worst_scenario="",
                    worst_scenario_loss=0, stressed_excess=0, binding="parametric"))
                conn.execute(m.RiskPosition.__table__.insert().values(
                    run_id=run_id, wallet="0x" + "11" * 20, instrument="BTC-PERP", size=1.0, entry_price=1.0, mark=1.0,
                    mark_price=1.0, mark_adverse=0.0, mark_quality="ok", round_age_s=0, notional=1.0, im=0.1, mm=0.01,
                    upnl=0.0))
            conn.execute(m.RiskRunRecord.__table__.insert().values(
                id=5, chain_id=1, block_number=500, block_timestamp=0, policy_name="p", policy_version="v",
                policy_hash="0" * 64, market_state="open", seconds_to_next_open=0, wallets=0, holdings=0, positions=0,
                collateral_usd=0.0, started_at=0.0, seconds=0.0))
        with engine.begin() as conn:
            assert orphan_runs_above(conn, 31337, 100, at=1000.25) == 2
        with engine.begin() as conn:  # a deeper reorg later: the runs it orphans get its time, the others keep theirs
            assert orphan_runs_above(conn, 31337, 95, at=2000.5) == 1
        with engine.connect() as conn:
            rr = m.RiskRunRecord
            assert [tuple(r) for r in conn.execute(select(rr.id, rr.orphaned_at).order_by(rr.id))] == [
                (1, None), (2, 2000.5), (3, 1000.25), (4, 1000.25), (5, None)]
            assert conn.execute(select(func.count()).select_from(m.RiskWallet)).scalar() == 4
            assert conn.execute(select(func.count()).select_from(m.RiskPosition)).scalar() == 4
            assert latest_run(conn, 31337).id == 1
    finally:
        engine.dispose()
