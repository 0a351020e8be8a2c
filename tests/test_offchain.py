"""CSV loaders of accounts and positions: every bad row named by line, nothing half loaded."""

import pytest
from sqlalchemy import func, select

from indexer.offchain import LoadError, base_assets_of, parse_accounts, parse_positions, store
from indexer.store import models as m
from indexer.store.engine import make_engine, upgrade

W1 = "0x" + "11" * 20
W2 = "0x" + "22" * 20
W3_CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"

ACCOUNTS = f"""wallet,jurisdiction,tier,kyc_status,cash_usd
{W1},de,retail,approved,100.50
# a comment line and a blank line are skipped

{W3_CHECKSUMMED},SG,professional,Pending,
"""

POSITIONS = f"""wallet,instrument,base_asset,size,entry_price,leverage
{W1},BTC-PERP,btc,0.5,100000,10
{W1},ETH-PERP,ETH,-2,3500,5
"""


def test_good_accounts_parse_to_normalised_rows():
    p = parse_accounts(ACCOUNTS)
    assert p.problems == []
    assert p.rows == [
        dict(wallet=W1, jurisdiction="DE", tier="retail", kyc_status="approved", cash_usd=100.5),
        dict(wallet=W3_CHECKSUMMED.lower(), jurisdiction="SG", tier="professional", kyc_status="pending",
             cash_usd=0.0),
    ]


def test_every_bad_row_is_named_by_its_line():
    text = f"""wallet,jurisdiction,tier,kyc_status,cash_usd
{W1},DE,retail,approved,1
0x1234,DE,retail,approved,1
{W2},USA,retail,approved,1
{W2},DE,retail,maybe,-5
{W1},FR,retail,approved,0
0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD,DE,retail,approved,0
{W2},DE,retail
"""
    p = parse_accounts(text)
    got = {(line, msg.split(":")[0]) for line, msg in p.problems}
    assert got == {(3, "wallet"), (4, "jurisdiction"), (5, "kyc_status"), (5, "cash_usd"), (6, "wallet 0x" + "11" * 20 + " already given on line 2"),
                   (7, "wallet"), (8, "3 fields, the header has 5")}
    assert any("wrong EIP-55 checksum" in msg for line, msg in p.problems if line == 7)
    assert any("already given on line 2" in msg for line, msg in p.problems if line == 6)


def test_header_problems_stop_the_parse():
    p = parse_accounts("wallet,tier,colour\n" + f"{W1},retail,red\n")
    assert [msg for _, msg in p.problems] == ["header: missing column(s) jurisdiction, kyc_status",
                                             "header: unknown column(s) colour"]
    assert parse_accounts("").problems[0][1].startswith("empty file")


def test_positions_check_numbers_and_base_assets():
    assets = base_assets_of(["BTC/USD", "ETH/USD", "AAPL/USD", "NVDAx-reserve"])
    assert assets == ["AAPL", "BTC", "ETH"]
    good = parse_positions(POSITIONS, ["BTC", "ETH"])
    assert good.problems == []
    assert good.rows[0] == dict(wallet=W1, instrument="BTC-PERP", base_asset="BTC", size=0.5, entry_price=100000.0,
                                leverage=10.0)
    assert good.rows[1]["size"] == -2.0
    bad = parse_positions(f"""wallet,instrument,base_asset,size,entry_price,leverage
{W1},SOL-PERP,SOL,1,100,10
{W1},BTC-PERP,BTC,0,100,10
{W1},BTC-PERP2,BTC,1,-3,10
{W1},BTC-PERP3,BTC,nan,100,0
{W1},BTC-PERP4,BTC,1e400,100,1
""", ["BTC", "ETH"])
    msgs = {line: msg for line, msg in bad.problems}
    assert "base_asset: 'SOL' has no price feed; known: BTC, ETH" in msgs[2]
    assert "0 is not a position" in msgs[3]
    assert msgs[4] == "entry_price: '-3' must be > 0"
    assert [msg for line, msg in bad.problems if line == 5] == ["size: 'nan' is not a finite number",
                                                                "leverage: '0' must be > 0"]
    assert msgs[6] == "size: '1e400' is not a finite number"
    assert bad.rows == []


def test_store_writes_all_or_nothing_and_replaces_or_merges(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        def count() -> int:
            with engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(m.Account)).scalar()

        with engine.begin() as conn:
            assert store(conn, parse_accounts(ACCOUNTS), source="a.csv") == 2
        assert count() == 2
        broken = parse_accounts(ACCOUNTS + "0xnothex,DE,retail,approved,1\n")
        with pytest.raises(LoadError, match=r"a.csv: 1 problem\(s\) in 3 data rows; nothing was loaded\n  line 6: wallet"), \
                engine.begin() as conn:
            store(conn, broken, source="a.csv")
        assert count() == 2
        one = parse_accounts(f"wallet,jurisdiction,tier,kyc_status\n{W2},CH,institutional,approved\n")
        with engine.begin() as conn:
            store(conn, one, source="b.csv", merge=True)
        assert count() == 3
        with engine.begin() as conn:
            store(conn, one, source="b.csv")
        with engine.connect() as conn:
            rows = conn.execute(select(m.Account.wallet, m.Account.jurisdiction, m.Account.cash_usd)).all()
        assert rows == [(W2, "CH", 0.0)]
        with engine.begin() as conn:
            assert store(conn, parse_positions(POSITIONS, ["BTC", "ETH"]), source="p.csv") == 2
        with engine.connect() as conn:
            assert conn.execute(select(m.Position.size).order_by(m.Position.instrument)).scalars().all() == [0.5, -2.0]
    finally:
        engine.dispose()
