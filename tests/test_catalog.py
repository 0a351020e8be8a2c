"""The bundled catalog of real deployments and `config new`: every family on every chain it lists gives a
configuration that loads; the catalog files carry the issuers' lists faithfully; errors name the valid
values in one line."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer import catalog
from indexer.catalog import (
    ASSET_CLASS_OVERRIDES,
    ASSET_CLASSES,
    CHAINS,
    CatalogError,
    build_config,
    load_family,
    resolve_chain,
    select,
)
from indexer.catalog.command import config_app, render_config
from indexer.config import load_settings
from indexer.types import Accounting, PriceQuote

# The issuers' official token lists (xstocks_tokenlist.json, ondo_tokenlist.json) the catalog was built from,
# in the folder ISSUER_TOKEN_LISTS names: the tests that compare the catalog with them run when it is set.
LISTS_DIR = Path(os.environ.get("ISSUER_TOKEN_LISTS", "/nonexistent"))
LISTS = {"xstocks": LISTS_DIR / "xstocks_tokenlist.json", "ondo": LISTS_DIR / "ondo_tokenlist.json"}
CASES = [(f, c) for f in catalog.families() for c in load_family(f).chains()]
ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")
RPC = "https://rpc.example.org"


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch):
    """`INDEXER_*` variables override configuration files; these tests read the files alone."""
    for var in [v for v in os.environ if v.startswith("INDEXER_")]:
        monkeypatch.delenv(var)


def issuer_list(family: str) -> dict:
    path = LISTS[family]
    if not path.exists():
        pytest.skip(f"set ISSUER_TOKEN_LISTS to the folder of the issuers' token lists to compare with {path.name}")
    return json.loads(path.read_text())


def write(tmp_path: Path, family: str, chain: str, **kw) -> Path:
    fam = load_family(family)
    path = tmp_path / f"{family}-{chain}.toml"
    path.write_text(render_config(fam, chain, build_config(fam, chain, [RPC], **kw)))
    return path


@pytest.mark.parametrize(("family", "chain"), CASES)
def test_each_family_on_each_chain_loads(tmp_path, family, chain):
    fam = load_family(family)
    settings = load_settings(write(tmp_path, family, chain))
    assert settings.chain.chain_id == CHAINS[chain] and settings.chain.rpc_urls == [RPC]
    assert settings.chain.deployment_block == 0 and settings.feeds == []
    assert len(settings.tokens) == len(fam.tokens_on(chain)) > 0
    assert all(ADDRESS.match(t.address) for t in settings.tokens)
    assert len({t.symbol for t in settings.tokens}) == len(settings.tokens)
    assert len({t.address for t in settings.tokens}) == len(settings.tokens)
    assert {t.accounting for t in settings.tokens} == {fam.accounting}
    assert all(t.feed is None and t.asset_class in ASSET_CLASSES for t in settings.tokens)


@pytest.mark.parametrize(("family", "chain"), CASES)
def test_token_counts_match_the_issuers_lists(tmp_path, family, chain):
    entries = issuer_list(family)["tokens"]
    expected = Counter(e["chainId"] for e in entries)[CHAINS[chain]]
    assert len(tomllib.loads(write(tmp_path, family, chain).read_text())["tokens"]) == expected
    # and every entry of the list is in the configuration, address lowercased
    config = build_config(load_family(family), chain, [RPC])
    listed = {(e["symbol"], e["address"].lower(), e["decimals"], e["name"]) for e in entries
              if e["chainId"] == CHAINS[chain]}
    assert {(t["symbol"], t["address"], t["decimals"], t["name"]) for t in config["tokens"]} == listed


def test_no_chain_of_the_issuers_lists_is_left_out():
    for family in catalog.families():
        listed = {e["chainId"] for e in issuer_list(family)["tokens"]}
        assert listed == {CHAINS[c] for c in load_family(family).chains()}


@pytest.mark.parametrize("family", catalog.families())
def test_the_shipped_catalog_is_what_the_issuers_list_gives(family):
    """Regenerating from the list reproduces the file: its header's counts and findings hold."""
    fam = load_family(family)
    shipped = (Path(catalog.__file__).parent / f"{family}.toml").read_text(encoding="utf-8")
    assert catalog.render_catalog(issuer_list(family), family, fam.written) == shipped
    data = issuer_list(family)
    version = ".".join(str(data["version"][k]) for k in ("major", "minor", "patch"))
    assert (fam.source, fam.source_version, fam.source_timestamp) == (data["name"], version, data["timestamp"])


def test_addresses_across_chains_are_as_the_headers_say():
    xstocks, ondo = load_family("xstocks"), load_family("ondo")
    assert all(len(set(t.addresses.values())) == 1 for t in xstocks.tokens)  # one address on every chain
    assert all(len(set(t.addresses.values())) == len(t.addresses) == 2 for t in ondo.tokens)  # one per chain
    assert "has ONE address, the same on each of its chains" in " ".join(_header("xstocks"))
    assert "DIFFERENT address on each chain" in " ".join(_header("ondo"))


def _header(family: str) -> list[str]:
    text = (Path(catalog.__file__).parent / f"{family}.toml").read_text(encoding="utf-8")
    return [line.removeprefix("# ").strip() for line in text.split("\n[family]")[0].splitlines()]


def test_families_say_their_accounting_and_quote():
    assert load_family("xstocks").accounting is Accounting.REBASING_SHARES
    assert load_family("ondo").accounting is Accounting.PLAIN
    assert load_family("ondo").feed_quote is PriceQuote.PER_TOKEN
    assert load_family("xstocks").feed_quote is PriceQuote.PER_SHARE
    ondo = {t.symbol: t for t in load_family("ondo").tokens}
    assert ondo["USDon"].asset_class == "stablecoin" and ondo["USDY"].asset_class == "tokenized_treasury"
    xs = {t.symbol: t for t in load_family("xstocks").tokens}
    assert (xs["BRK.Bx"].underlying, xs["GLDx"].asset_class, xs["SPYx"].asset_class) == (
        "BRK.B", "commodity_etf", "broad_index_etf")
    assert (ondo["AAPLon"].underlying, ondo["TLTon"].asset_class, ondo["IWNon"].asset_class) == (
        "AAPL", "bond_etf", "etf")


def test_every_override_names_a_token_of_the_catalog():
    underlyings = {t.underlying for f in catalog.families() for t in load_family(f).tokens}
    assert sorted(set(ASSET_CLASS_OVERRIDES) - underlyings) == []


def test_feed_hints_follow_the_family_quote():
    xs, ondo = load_family("xstocks"), load_family("ondo")
    aapl_x = next(t for t in xs.tokens if t.symbol == "AAPLx")
    aapl_on = next(t for t in ondo.tokens if t.symbol == "AAPLon")
    usd = next(t for t in ondo.tokens if t.symbol == "USDon")
    assert catalog.feed_hint(xs, aapl_x) == {"name": "AAPL/USD", "kind": "stock", "quote": "per_share", "calendar": "XNYS"}
    assert catalog.feed_hint(ondo, aapl_on) == {"name": "AAPLon/USD", "kind": "stock", "quote": "per_token",
                                                "calendar": "XNYS"}
    assert catalog.feed_hint(ondo, usd)["kind"] == "stablecoin" and catalog.feed_hint(ondo, usd)["calendar"] == "24/7"


# -- selection ------------------------------------------------------------------------------------

def test_selection_by_symbols_keeps_their_order_once_each():
    xs = load_family("xstocks")
    assert [t.symbol for t in select(xs, "arbitrum", ["TSLAx", "AAPLx", "TSLAx"])] == ["TSLAx", "AAPLx"]
    assert len(select(xs, "arbitrum", None)) == len(xs.tokens_on("arbitrum"))


@pytest.mark.parametrize("given", ["arbitrum", "42161", "Arbitrum", " 42161 "])
def test_a_chain_is_a_name_or_an_id(given):
    assert resolve_chain(load_family("xstocks"), given) == "arbitrum"


def test_selection_errors_name_the_valid_values():
    xs, ondo = load_family("xstocks"), load_family("ondo")
    with pytest.raises(CatalogError, match=r"unknown chain 'base': use one of ethereum \(1\), arbitrum \(42161\)"):
        resolve_chain(xs, "base")
    with pytest.raises(CatalogError, match=r"ondo has no tokens on arbitrum \(42161\): its chains are ethereum \(1\), bnb"):
        resolve_chain(ondo, "arbitrum")
    with pytest.raises(CatalogError, match=r"unknown symbol 'aaplx' for xstocks on ethereum \(did you mean AAPLx"):
        select(xs, "ethereum", ["aaplx"])
    missing = next(t for t in xs.tokens if "bnb" not in t.addresses)
    with pytest.raises(CatalogError, match=rf"{re.escape(missing.symbol)} is not on bnb: it is on ethereum"):
        select(xs, "bnb", [missing.symbol])
    with pytest.raises(CatalogError, match="unknown family 'backed': use one of xstocks, ondo"):
        load_family("backed")


# -- the command ----------------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(config_app, ["new", *args])


def test_config_new_writes_a_file_that_loads(tmp_path):
    out = tmp_path / "arb.toml"
    res = invoke("--family", "xstocks", "--chain", "42161", "--rpc", RPC, "--rpc", "https://b.example.org",
                 "--symbols", "AAPLx, TSLAx", "--out", str(out), "--database-url", "sqlite:///x.sqlite")
    assert res.exit_code == 0, res.output
    assert str(out) in res.stdout and "[[feeds]]" in res.stdout and "deployment_block" in res.stdout
    settings = load_settings(out)
    assert [t.symbol for t in settings.tokens] == ["AAPLx", "TSLAx"]
    assert settings.chain.rpc_urls == [RPC, "https://b.example.org"] and settings.database_url == "sqlite:///x.sqlite"
    text = out.read_text()
    assert text.count('# feed = "') == 2 and '# feed = "AAPL/USD"' in text and "no [[feeds]]" in text
    # a second run does not overwrite the file unless told to
    again = invoke("--family", "xstocks", "--chain", "arbitrum", "--rpc", RPC, "--out", str(out))
    assert again.exit_code == 1 and "--force" in again.stderr and len(load_settings(out).tokens) == 2
    forced = invoke("--family", "xstocks", "--chain", "arbitrum", "--rpc", RPC, "--out", str(out), "--force")
    assert forced.exit_code == 0 and len(load_settings(out).tokens) == len(load_family("xstocks").tokens_on("arbitrum"))


def test_config_new_defaults_to_family_and_chain_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("--family", "ondo", "--chain", "bnb", "--rpc", RPC)
    assert res.exit_code == 0, res.output
    assert len(load_settings(tmp_path / "ondo-bnb.toml").tokens) == len(load_family("ondo").tokens_on("bnb"))


@pytest.mark.parametrize(("args", "says"), [
    (["--family", "robinhood", "--chain", "1"], "unknown family 'robinhood': use one of xstocks, ondo"),
    (["--family", "xstocks", "--chain", "base"], "unknown chain 'base': use one of ethereum (1), arbitrum (42161), "
                                                 "bnb (56), ink (57073), mantle (5000), hyperevm (999)"),
    (["--family", "ondo", "--chain", "42161"], "ondo has no tokens on arbitrum (42161): its chains are ethereum (1), "
                                               "bnb (56)"),
    (["--family", "xstocks", "--chain", "ink", "--symbols", "AAPL"], "unknown symbol 'AAPL' for xstocks on ink "
                                                                     "(did you mean AAPLx?); the 97 symbols there are"),
    (["--family", "xstocks", "--chain", "ink", "--symbols", " , "], "--symbols is empty"),
    (["--family", "xstocks", "--chain", "ink", "--rpc", "ws://node"], "--rpc 'ws://node' is not an http(s) URL"),
])
def test_config_new_errors_are_one_line_naming_the_valid_values(tmp_path, args, says):
    if "--rpc" not in args:
        args = [*args, "--rpc", RPC]
    res = invoke(*args, "--out", str(tmp_path / "c.toml"))
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert says in res.stderr
    assert not (tmp_path / "c.toml").exists()


@pytest.mark.parametrize("policy", ["default", "kraken_2026"])
def test_the_catalog_agrees_with_the_bundled_policies_on_the_tokens_both_name(policy):
    from indexer.risk.policy import load_policy

    tokens = load_policy(policy).tokens
    both = {t.symbol: t.asset_class for f in catalog.families() for t in load_family(f).tokens if t.symbol in tokens}
    assert both  # AAPLx, SPYx, GLDx, ...
    assert both == {s: tokens[s].asset_class for s in both}
