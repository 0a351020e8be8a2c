"""CSV loaders of accounts and positions: every bad row named by line, nothing half loaded."""

import pytest
from sqlalchemy import func, select

from indexer.config import load_settings
from indexer.offchain import LoadError, base_assets_of, load_files, parse_accounts, parse_positions, store
from indexer.risk.policy import BUNDLED
from indexer.store import models as m
from indexer.store.engine import make_engine, upgrade

W1 = "0x" + "11" * 20
W2 = "0x" + "22" * 20
W3_CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
TIERS = ["retail", "professional", "institutional"]  # the default policy's [accounts] allowed_tiers

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
    p = parse_accounts(ACCOUNTS, TIERS)
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
    p = parse_accounts(text, TIERS)
    got = {(line, msg.split(":")[0]) for line, msg in p.problems}
    assert got == {(3, "wallet"), (4, "jurisdiction"), (5, "kyc_status"), (5, "cash_usd"), (6, "wallet 0x" + "11" * 20 + " already given on line 2"),
                   (7, "wallet"), (8, "3 fields, the header has 5")}
    assert any("wrong EIP-55 checksum" in msg for line, msg in p.problems if line == 7)
    assert any("already given on line 2" in msg for line, msg in p.problems if line == 6)


def test_jurisdictions_are_assigned_iso_3166_alpha_2_codes():
    text = f"""wallet,jurisdiction,tier,kyc_status
0x{"01" * 20},XX,retail,approved
0x{"02" * 20},zz,retail,approved
0x{"03" * 20},UK,retail,approved
0x{"04" * 20},USA,retail,approved
0x{"05" * 20},Germany,retail,approved
0x{"06" * 20},D3,retail,approved
0x{"07" * 20},gb,retail,approved
0x{"08" * 20}, sg ,retail,approved
"""
    p = parse_accounts(text, TIERS)
    assert p.problems == [
        (2, "jurisdiction: 'XX' is not an assigned ISO 3166-1 alpha-2 country code (such as DE or SG)"),
        (3, "jurisdiction: 'zz' is not an assigned ISO 3166-1 alpha-2 country code (such as DE or SG)"),
        (4, "jurisdiction: 'UK' is not an assigned ISO 3166-1 alpha-2 country code; did you mean 'GB'?"),
        (5, "jurisdiction: 'USA' is not an ISO 3166-1 alpha-2 country code; did you mean 'US'?"),
        (6, "jurisdiction: 'Germany' is not an ISO 3166-1 alpha-2 country code; did you mean 'DE'?"),
        (7, "jurisdiction: 'D3' is not an ISO 3166-1 alpha-2 country code (such as DE or SG)"),
    ]
    assert [(r["wallet"], r["jurisdiction"]) for r in p.rows] == [("0x" + "07" * 20, "GB"), ("0x" + "08" * 20, "SG")]


def test_tiers_are_the_policys_and_a_misspelling_gets_the_nearest():
    text = f"""wallet,jurisdiction,tier,kyc_status
0x{"01" * 20},DE,retial,approved
0x{"02" * 20},DE,Professional,approved
0x{"03" * 20},DE,vip,approved
0x{"04" * 20},DE,instituional,approved
0x{"05" * 20},DE,retail,approved
"""
    p = parse_accounts(text, TIERS, policy="policy default 2026.1")
    assert p.problems == [
        (2, "tier: 'retial' is not one of the tiers policy default 2026.1 allows (retail, professional, "
            "institutional); did you mean 'retail'?"),
        (4, "tier: 'vip' is not one of the tiers policy default 2026.1 allows (retail, professional, institutional)"),
        (5, "tier: 'instituional' is not one of the tiers policy default 2026.1 allows (retail, professional, "
            "institutional); did you mean 'institutional'?"),
    ]
    assert [r["tier"] for r in p.rows] == ["professional", "retail"]  # stored as the policy spells it
    anything = parse_accounts(text, ["*"])
    assert anything.problems == []
    assert [r["tier"] for r in anything.rows] == ["retial", "Professional", "vip", "instituional", "retail"]


def test_load_files_checks_tiers_against_the_configured_policy_and_loads_nothing_on_a_bad_line(db_url, tmp_path):
    """The policy comes from the settings (here a policy file allowing retail and vip only): a tier of
    the default policy is refused, and nothing of the file is loaded."""
    default = (BUNDLED / "default.toml").read_text()
    line = 'allowed_tiers = ["retail", "professional", "institutional"]'
    assert default.count(line) == 1
    assert default.count('name = "default"') == 1
    (tmp_path / "desk.toml").write_text(default.replace(line, 'allowed_tiers = ["retail", "vip"]')
                                        .replace('name = "default"', 'name = "desk"'))
    (tmp_path / "config.toml").write_text(f"""policy_path = "desk.toml"
database_url = "{db_url}"

[chain]
chain_id = 31337
rpc_url = "http://127.0.0.1:9"
deployment_block = 1

[[tokens]]
symbol = "AAPLx"
address = "0x{"ab" * 20}"
decimals = 18
asset_class = "single_stock"
accounting = "rebasing_shares"
""")
    settings = load_settings(tmp_path / "config.toml")
    good = tmp_path / "good.csv"
    good.write_text(f"wallet,jurisdiction,tier,kyc_status\n{W1},DE,VIP,approved\n{W2},SG,retail,pending\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"wallet,jurisdiction,tier,kyc_status\n{W1},DE,retail,approved\n{W2},XX,professional,approved\n"
                   f"0x{'33' * 20},ZZ,retial,approved\n")
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert load_files(engine, settings, accounts=good) == {"accounts": 2}
        with pytest.raises(LoadError) as exc:
            load_files(engine, settings, accounts=bad)
        assert exc.value.problems == [
            (3, "jurisdiction: 'XX' is not an assigned ISO 3166-1 alpha-2 country code (such as DE or SG)"),
            (3, "tier: 'professional' is not one of the tiers policy desk 2026.3 allows (retail, vip)"),
            (4, "jurisdiction: 'ZZ' is not an assigned ISO 3166-1 alpha-2 country code (such as DE or SG)"),
            (4, "tier: 'retial' is not one of the tiers policy desk 2026.3 allows (retail, vip); "
                "did you mean 'retail'?"),
        ]
        assert str(exc.value).startswith(f"{bad}: 4 problem(s) in 3 data rows; nothing was loaded\n  line 3: ")
        with engine.connect() as conn:
            rows = conn.execute(select(m.Account.wallet, m.Account.jurisdiction, m.Account.tier)
                                .order_by(m.Account.wallet)).all()
        assert rows == [(W1, "DE", "vip"), (W2, "SG", "retail")]  # the good file, untouched
    finally:
        engine.dispose()


def test_header_problems_stop_the_parse():
    p = parse_accounts("wallet,tier,colour\n" + f"{W1},retail,red\n", TIERS)
    assert [msg for _, msg in p.problems] == ["header: missing column(s) jurisdiction, kyc_status",
                                             "header: unknown column(s) colour"]
    assert parse_accounts("", TIERS).problems[0][1].startswith("empty file")


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
            assert store(conn, parse_accounts(ACCOUNTS, TIERS), source="a.csv") == 2
        assert count() == 2
        broken = parse_accounts(ACCOUNTS + "0xnothex,DE,retail,approved,1\n", TIERS)
        with pytest.raises(LoadError, match=r"a.csv: 1 problem\(s\) in 3 data rows; nothing was loaded\n  line 6: wallet"), \
                engine.begin() as conn:
            store(conn, broken, source="a.csv")
        assert count() == 2
        one = parse_accounts(f"wallet,jurisdiction,tier,kyc_status\n{W2},CH,institutional,approved\n", TIERS)
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
