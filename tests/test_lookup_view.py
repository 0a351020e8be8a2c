"""The wallet lookup's readable form and its address lists, without a database: a number is never cut
at any width, a sanctioned or frozen wallet says so before its status, comments are skipped."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import jsonschema
import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from indexer.lookup import SCHEMA_VERSION, addresses_in, headline, parse_wallets
from indexer.lookup_view import Col, column_widths, invalid_lines, pack, render, usd

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "wallet-lookup.schema.json").read_text())
WALLET = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def _holding(symbol: str, balance: float, price: float, value: float, collateral: float, reasons: list[str],
             codes: int) -> dict:
    return {
        "symbol": symbol, "token": "0x" + "ab" * 20, "balance_raw": "1869123456700000000000000", "balance": balance,
        "shares": balance, "price": {"value": price, "feed": f"{symbol}/USD", "round_id": "18446744073709551617",
                                     "age_s": 7_500, "market_state": "overnight", "action_factor": 1.0},
        "market_value": value, "eligible": not reasons, "codes": codes, "reasons": reasons,
        "haircut": {"base": 0.15, "volatility": 0.0412, "size": 0.0231, "gap": 0.0275, "stale": 0.0, "total": 0.2418,
                    "size_liquidity": 0.0131, "liquidity_source": "measured"},
        "valuation_flags": [],
        "collateral_before_caps": collateral, "platform_cut": 0.0, "wallet_cut": 0.0, "collateral_value": collateral,
        "liquidity": None, "vault": None}


VAULT = {"asset": "TSLAx", "rate_raw": "13004567891234567891", "rate": 13.004567891234567, "jump": 12.0045}

SPYX_POOLS = {"pools": [{"name": "SPYx/USDC 0.05%", "pool": "0x" + "51" * 20, "price_usd": 604.97,
                         "premium_bp": -123.4, "depth_2pct": 12_345.6789}],
              "depth_1pct": 6_123.4567, "depth_2pct": 12_345.6789, "depth_5pct": 31_234.5678,
              "depth_2pct_usd": 7_561_728.41, "volume_24h": 98_765.4321, "volume_7d": 543_210.9876,
              "nav_usd": 612.5, "price_usd": 604.97, "premium_bp": -122.9, "share_of_depth_2pct": 80.0002}


def whale_doc(*, sanctioned: bool = True, frozen_on: tuple[str, ...] = ("MSFT",)) -> dict:
    """A lookup document with the widest numbers a whale has (hundreds of billions of USD)."""
    status = "healthy"
    wallet = {
        "wallet": WALLET, "checksummed": CHECKSUMMED, "found": True,
        "headline": headline(sanctioned, list(frozen_on), status), "sanctioned": sanctioned,
        "frozen_on": list(frozen_on),
        "account": {"jurisdiction": "DE", "tier": "retail", "kyc_status": "approved", "cash_usd": 1_234.5},
        "holdings": [
            _holding("NVDAx", 1_869_123.4567, 187.25, 349_993_366_916.72, 0.0, ["WALLET_SANCTIONED"], 8192),
            _holding("MSFT", 12_345.1234, 512.34, 6_324_943.31, 0.0, ["WALLET_FROZEN", "WALLET_SANCTIONED"], 8196),
            {**_holding("SPYx", 987_654.3219, 612.5, 604_938_272.16, 458_668_477.95, [], 0), "liquidity": SPYX_POOLS},
            {**_holding("vTSLAx", 1_234.5678, 430.12, 6_905_861.01, 0.0, ["VAULT_RATE_JUMP"], 131072), "vault": VAULT},
        ],
        "positions": [{"instrument": "BTC-PERP", "base_asset": "BTC", "size": 1_234.56789, "entry_price": 97_123.45,
                       "leverage": 10.0, "mark": {"used": 95_432.1, "price": 96_000.0, "adverse": 0.0059,
                                                  "quality": "ok", "round_id": "5", "age_s": 300,
                                                  "notional": 117_812_345.67, "im": 11_781_234.57,
                                                  "mm": 5_890_617.28, "upnl": -2_087_654.32}}],
        "margin": {"market_value": 350_604_629_132.19, "collateral": 458_668_477.95, "cash": 1_234.5,
                   "upnl": -2_087_654.32, "equity": 456_582_058.13, "im": 11_781_234.57, "mm": 5_890_617.28,
                   "excess": 444_800_823.56, "status": status, "stale_driven": False, "unpriced_positions": 0},
        "stress": {"l_joint": 187_654_321.09, "l_indep": 165_432_109.87, "wrong_way": 22_222_211.22,
                   "worst_scenario": "march_2020", "worst_scenario_loss": 187_654_321.09,
                   "stressed_excess": 257_149_536.86, "binding": "march_2020", "regime": "positive"},
    }
    return {"schema_version": SCHEMA_VERSION, "chain_id": 31337,
            "run": {"id": 7, "block_number": 1_234_567, "block_timestamp": 1_773_180_000,
                    "policy_version": "default/2026.1+sha256:0123456789ab", "policy_hash": "0" * 64,
                    "market_state": "overnight", "asked": {"block": None, "at": None}, "notes": []},
            "wallets": [wallet], "invalid": []}


def numbers_of(doc: dict) -> list[str]:
    """Every number the readable form prints, as it prints it."""
    w = doc["wallets"][0]
    out = [usd(w["margin"][k]) for k in ("market_value", "collateral", "cash", "upnl", "equity", "im", "mm", "excess")]
    out += [usd(w["stress"][k]) for k in ("l_joint", "l_indep", "wrong_way", "worst_scenario_loss", "stressed_excess")]
    for h in w["holdings"]:
        out += [f"{h['balance']:,.4f}", usd(h["price"]["value"]), usd(h["market_value"]), usd(h["collateral_value"])]
        if h["liquidity"]:
            q = h["liquidity"]
            out += [f"{q['depth_2pct']:,.4f}", usd(q["depth_2pct_usd"]), f"{q['volume_24h']:,.4f}", usd(q["price_usd"]),
                    f"{q['premium_bp']:+,.1f}"]
        if h["vault"]:
            out += [f"{h['vault']['rate']:,.6f}", f"{h['vault']['jump']:+.2%}"]
    for p in w["positions"]:
        out += [f"{p['size']:,.6f}", usd(p["entry_price"]), usd(p["mark"]["used"]), usd(p["mark"]["upnl"])]
    return out


def rendered(doc: dict, width: int | None = None) -> str:
    out = io.StringIO()
    render(doc, Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_the_whale_document_follows_the_schema_and_the_new_fields_are_required():
    doc = whale_doc()
    jsonschema.validate(doc, SCHEMA)
    assert SCHEMA["properties"]["schema_version"] == {"const": "1.4"} and SCHEMA["$id"].endswith("/1.4")
    for field in ("headline", "sanctioned", "frozen_on"):
        broken = copy.deepcopy(doc)
        del broken["wallets"][0][field]
        with pytest.raises(jsonschema.ValidationError, match=field):
            jsonschema.validate(broken, SCHEMA)
    broken = copy.deepcopy(doc)
    del broken["wallets"][0]["holdings"][2]["liquidity"]
    with pytest.raises(jsonschema.ValidationError, match="liquidity"):
        jsonschema.validate(broken, SCHEMA)
    broken = copy.deepcopy(doc)
    del broken["wallets"][0]["holdings"][3]["vault"]
    with pytest.raises(jsonschema.ValidationError, match="vault"):
        jsonschema.validate(broken, SCHEMA)


def test_a_vault_holding_shows_its_asset_rate_and_largest_move():
    text = rendered(whale_doc(), 160)
    assert "vTSLAx: ERC-4626 vault over TSLAx:" in text and "13.004568 TSLAx per share" in text
    assert "largest move in the window +1200.45%" in text and "VAULT_RATE_JUMP" in text


@pytest.mark.parametrize("width", [80, 60, 100, 120, 160, 220])
def test_numbers_are_never_cut_whatever_the_width(width):
    text = rendered(whale_doc(), width)
    assert "…" not in text
    assert max(cell_len(line) for line in text.splitlines()) <= width
    for number in numbers_of(whale_doc()):
        # whole, and not followed by more digits (a cut 1,869,1 would otherwise match 1,869,123)
        assert re.search(re.escape(number) + r"(?![\d,.])", text), (width, number, text)


def test_a_non_terminal_output_is_80_columns_and_keeps_every_number(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    text = rendered(whale_doc())  # a StringIO is no terminal: rich's 80 columns
    assert max(cell_len(line) for line in text.splitlines()) == 80
    for number in numbers_of(whale_doc()):
        assert re.search(re.escape(number) + r"(?![\d,.])", text), number
    monkeypatch.setenv("COLUMNS", "80")
    assert rendered(whale_doc()) == text


def test_wide_enough_the_holdings_are_a_table_and_every_component_is_there():
    text = rendered(whale_doc(), 220)
    assert "haircut = base + vol + size + gap + stale" in " ".join(text.split())
    assert "24.18% = 15.00% + 4.12% + 2.31% + 2.75% + 0.00%" in text
    assert "┃ token" in text and "mark · quality · age" in text


def test_narrow_the_rows_become_labelled_lines_with_every_component():
    text = rendered(whale_doc(), 80)
    flat = " ".join(text.replace("│", " ").split())
    assert "┃ token" not in text
    assert "NVDAx balance 1,869,123.4567 price 187.25 · 2h05m · overnight" in flat
    assert "haircut (base + vol + size + gap + stale) 24.18% = 15.00% + 4.12% + 2.31% + 2.75% + 0.00%" in flat
    assert "collateral 458,668,477.95 eligible" in flat
    assert "BTC-PERP base BTC size 1,234.567890 entry 97,123.45 leverage 10x" in flat


@pytest.mark.parametrize("width", [80, 160])
def test_a_sanctioned_and_frozen_wallet_says_so_before_its_status(width):
    text = rendered(whale_doc(), width)
    flat = " ".join(text.replace("│", " ").split())
    assert "SANCTIONED FROZEN on MSFT status HEALTHY collateral 458,668,477.95" in flat
    frozen_only = rendered(whale_doc(sanctioned=False), width)
    assert not re.search(r"\bSANCTIONED", frozen_only)  # (WALLET_SANCTIONED is a holding's reason)
    assert "FROZEN on MSFT status HEALTHY" in " ".join(frozen_only.replace("│", " ").split())
    plain = rendered(whale_doc(sanctioned=False, frozen_on=()), width)
    assert not re.search(r"\b(SANCTIONED|FROZEN)", plain) and "status HEALTHY" in plain


def test_a_sanctioned_wallet_the_run_did_not_value_still_says_so():
    doc = whale_doc()
    w = doc["wallets"][0]
    w.update(found=False, holdings=[], positions=[], margin=None, stress=None, headline="sanctioned", frozen_on=[],
             note="known to the indexer, but held no indexed token at block 1234567")
    jsonschema.validate(doc, SCHEMA)
    flat = " ".join(rendered(doc, 80).replace("│", " ").split())
    assert "SANCTIONED known to the indexer, but held no indexed token at block 1234567" in flat


def test_headline_puts_a_sanction_then_a_freeze_before_the_status():
    assert headline(True, ["MSFT"], "liquidate") == "sanctioned"
    assert headline(False, ["AMZN", "MSFT"], "healthy") == "frozen"
    assert headline(False, [], "margin_call") == "margin_call"
    assert headline(False, [], None) is None


def test_column_widths_keep_numbers_whole_and_words_unbroken():
    cols = [Col("token"), Col("value", number=True), Col("why")]
    rows = [["AAPLx", "1,869,123,456.78", "ORACLE_STALE, RESERVE_SHORTFALL, BELOW_MINIMUM"]]
    assert column_widths(cols, rows, 200) == [5, 16, 46]  # everything on one line
    widths = column_widths(cols, rows, 3 * 3 + 1 + 5 + 16 + 20)  # room for 41 cells: the text column gives
    assert widths == [5, 16, 20]
    assert column_widths(cols, rows, 3 * 3 + 1 + 5 + 16 + 13) is None  # RESERVE_SHORTFALL, is 18 cells


def test_pack_never_breaks_a_piece_that_fits_a_line():
    pieces = [Text("status HEALTHY"), Text("collateral 1,869,123,456.78"), Text("equity 2,000,000,000.00")]
    lines = [line.plain for line in pack(pieces, 30)]
    assert lines == ["status HEALTHY", "  collateral 1,869,123,456.78", "  equity 2,000,000,000.00"]
    assert [line.plain for line in pack(pieces, 200)] == ["status HEALTHY  collateral 1,869,123,456.78  "
                                                          "equity 2,000,000,000.00"]
    long = [Text("haircut 24.18% = 15.00% + 4.12% + 2.31%"), Text("collateral 12.00")]
    assert [line.plain for line in pack(long, 20)] == ["haircut 24.18% =", "  15.00% + 4.12% +", "  2.31%",
                                                       "  collateral 12.00"]


def test_invalid_inputs_are_not_in_the_rendering_and_their_lines_print_literally():
    doc = whale_doc()
    doc["invalid"] = [{"input": "[bold]0xnope", "error": "wallet: '[bold]0xnope' holds characters that are not hex digits"}]
    assert "0xnope" not in rendered(doc, 160)  # the command prints them on stderr
    out = io.StringIO()
    for line in invalid_lines(doc):
        Console(file=out, width=200, color_system=None).print(line, highlight=False)
    assert out.getvalue() == ("invalid address '[bold]0xnope': wallet: '[bold]0xnope' holds characters that are "
                              "not hex digits\n")


def test_address_lists_skip_blank_lines_and_comments():
    text = f"""# desk list, 2026-03-11
{WALLET}
   \t
  # an indented comment
{CHECKSUMMED.upper().replace("0X", "0x")}   # the same wallet, upper case  # and more
0x{"ab" * 20}#no space before the comment
#0x{"cd" * 20} commented out
0x12 0x{"ef" * 20}
"""
    words = addresses_in(text)
    assert words == [WALLET, CHECKSUMMED.upper().replace("0X", "0x"), "0x" + "ab" * 20, "0x12", "0x" + "ef" * 20]
    good, bad = parse_wallets(words)
    assert good == [WALLET, "0x" + "ab" * 20, "0x" + "ef" * 20]
    assert [b["input"] for b in bad] == ["0x12"]
    assert addresses_in("# only comments\n\n#\n") == []
