"""A reorg that removes block B also removes the risk runs that valued blocks above the fork."""

from sqlalchemy import func, select

from indexer.store import models as m
from indexer.store.engine import make_engine, upgrade
from indexer.store.runs import delete_runs_above


def test_runs_above_the_fork_go_with_their_rows(db_url):
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
            assert delete_runs_above(conn, 31337, 100) == 2
        with engine.connect() as conn:
            assert conn.execute(select(m.RiskRunRecord.id).order_by(m.RiskRunRecord.id)).scalars().all() == [1, 2, 5]
            assert conn.execute(select(func.count()).select_from(m.RiskWallet)).scalar() == 2
            assert conn.execute(select(func.count()).select_from(m.RiskPosition)).scalar() == 2
    finally:
        engine.dispose()
