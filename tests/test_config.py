"""The settings model: manifests load, bad fields are named."""

from __future__ import annotations

import os
import re

import pytest
import tomli_w

from indexer.config import load_settings
from indexer.errors import ConfigError

GOOD = {
    "chain": {"chain_id": 31337, "rpc_url": "http://127.0.0.1:8545", "deployment_block": 1},
    "tokens": [{"symbol": "AAPLx", "address": "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB", "decimals": 18, "asset_class": "single_stock",
                "accounting": "rebasing_shares", "feed": "AAPL/USD"}],
    "feeds": [{"name": "AAPL/USD", "address": "0x" + "22" * 20, "decimals": 8, "kind": "stock",
               "quote": "per_share", "heartbeat": 3600, "calendar": "XNYS", "token": "AAPLx"}],
}


def write(tmp_path, data):
    p = tmp_path / "c.toml"
    p.write_text(tomli_w.dumps(data))
    return p


def test_a_manifest_loads_with_lowercase_addresses_and_one_url(tmp_path):
    s = load_settings(write(tmp_path, GOOD))
    assert s.chain.rpc_urls == ["http://127.0.0.1:8545"]
    assert s.tokens[0].address == "0x" + "ab" * 20
    assert s.token("AAPLx").feed == "AAPL/USD"
    assert s.chain.multicall3 == "0xca11bde05977b3631167028862be2a173976ca11"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("INDEXER_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/x")
    assert load_settings(write(tmp_path, GOOD)).database_url.endswith("/x")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["tokens"][0].update(address="0x1234"), "tokens.address: '0x1234' has 4 hex digits; an address has 40"),
    (lambda d: d["tokens"][0].update(address="0x" + "Ab" * 20), "tokens.address: '0xAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAb' has a wrong EIP-55 checksum"),
    (lambda d: d["tokens"][0].update(accounting="magic"), "tokens.0.accounting"),
    (lambda d: d["tokens"][0].update(decimals=99), "tokens.0.decimals"),
    (lambda d: d["feeds"][0].update(quote=None) or d["feeds"][0].pop("quote"), "feeds[AAPL/USD].quote"),
    (lambda d: d["chain"].update(rpc_url="ftp://x"), "chain.rpc_urls"),
    (lambda d: d["chain"].pop("chain_id"), "chain.chain_id: Field required"),
    (lambda d: d["tokens"].append(dict(d["tokens"][0])), "symbol 'AAPLx' is listed twice"),
])
def test_bad_fields_are_named(tmp_path, mutate, message):
    data = {k: (v if not isinstance(v, list) else [dict(x) for x in v]) for k, v in GOOD.items()}
    data["chain"] = dict(GOOD["chain"])
    mutate(data)
    with pytest.raises(ConfigError, match=None) as exc:
        load_settings(write(tmp_path, data))
    assert message in str(exc.value)


def copy_good() -> dict:
    data = {k: (v if not isinstance(v, list) else [dict(x) for x in v]) for k, v in GOOD.items()}
    data["chain"] = dict(GOOD["chain"])
    return data


@pytest.fixture
def no_indexer_env(monkeypatch):
    for var in [v for v in os.environ if v.upper().startswith("INDEXER_")]:
        monkeypatch.delenv(var)
    return monkeypatch


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(databse_url="postgresql+psycopg://u@h/prod"),
     "databse_url: unknown setting; did you mean database_url?"),
    (lambda d: d["chain"].update(deploymnet_block=5), "chain.deploymnet_block: unknown setting; did you mean "
                                                      "chain.deployment_block?"),
    (lambda d: d["chain"].update(retry={"timout": 3}), "chain.retry.timout: unknown setting; did you mean "
                                                       "chain.retry.timeout?"),
    (lambda d: d.update(service={"http_prot": 9000}), "service.http_prot: unknown setting; did you mean "
                                                      "service.http_port?"),
    (lambda d: d["tokens"][0].update(symbl="AAPLx"), "tokens.0.symbl: unknown setting; did you mean tokens.0.symbol?"),
    (lambda d: d["feeds"][0].update(heartbeet=60), "feeds.0.heartbeet: unknown setting; did you mean feeds.0.heartbeat?"),
    (lambda d: d.update(zzz=1), "zzz: unknown setting; known are chain, tokens, feeds, pools, database_url, policy_path, "
                                "service, retention, alerts, world, events"),
])
def test_an_unknown_key_is_an_error_that_suggests_the_nearest_name(tmp_path, no_indexer_env, mutate, message):
    data = copy_good()
    mutate(data)
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, data))
    assert str(exc.value) == f"{tmp_path / 'c.toml'}: {message}"


def test_the_world_table_stays_free_form(tmp_path, no_indexer_env):
    s = load_settings(write(tmp_path, {**copy_good(), "world": {"seed": 7, "anything": {"x": 1}}}))
    assert s.world == {"seed": 7, "anything": {"x": 1}}


@pytest.mark.parametrize(("var", "message"), [
    ("INDEXER_DATABSE_URL", "environment variable INDEXER_DATABSE_URL: unknown setting; did you mean "
                            "INDEXER_DATABASE_URL?"),
    ("INDEXER_SERVICE__HTTP_PROT", "environment variable INDEXER_SERVICE__HTTP_PROT: unknown setting; did you mean "
                                   "INDEXER_SERVICE__HTTP_PORT?"),
    ("INDEXER_CHAIN__RETRY__MAX_RETIRES", "environment variable INDEXER_CHAIN__RETRY__MAX_RETIRES: unknown setting; "
                                          "did you mean INDEXER_CHAIN__RETRY__MAX_RETRIES?"),
    ("INDEXER_CHAIN__RPC_URL", "environment variable INDEXER_CHAIN__RPC_URL: unknown setting; did you mean "
                               "INDEXER_CHAIN__RPC_URLS?"),
    ("INDEXER_SERVCE__HTTP_PORT", "environment variable INDEXER_SERVCE__HTTP_PORT: unknown setting; did you mean "
                                  "INDEXER_SERVICE__HTTP_PORT?"),
    ("INDEXER_NOTHING_LIKE_IT", "environment variable INDEXER_NOTHING_LIKE_IT: unknown setting; known are "
                                "INDEXER_CHAIN, INDEXER_TOKENS, INDEXER_FEEDS, INDEXER_POOLS, INDEXER_DATABASE_URL, INDEXER_POLICY_PATH, "
                                "INDEXER_SERVICE, INDEXER_RETENTION, INDEXER_ALERTS, INDEXER_WORLD, INDEXER_EVENTS"),
    ("indexer_policy_pth", "environment variable indexer_policy_pth: unknown setting; did you mean "
                           "INDEXER_POLICY_PATH?"),
    ("INDEXER_TOKENS__0__SYMBOL", "environment variable INDEXER_TOKENS__0__SYMBOL: INDEXER_TOKENS is not a table of "
                                  "settings; set it whole (a list as JSON: INDEXER_TOKENS='[...]')"),
    ("INDEXER_DATABASE_URL__HOST", "environment variable INDEXER_DATABASE_URL__HOST: INDEXER_DATABASE_URL is not a "
                                   "table of settings; set it whole (INDEXER_DATABASE_URL=...)"),
])
def test_an_unknown_indexer_variable_is_an_error(tmp_path, no_indexer_env, var, message):
    no_indexer_env.setenv(var, "1")
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, GOOD))
    assert str(exc.value) == message


def test_nested_variables_merge_with_the_file_and_ignore_case(tmp_path, no_indexer_env):
    no_indexer_env.setenv("INDEXER_SERVICE__HTTP_PORT", "9200")
    no_indexer_env.setenv("indexer_chain__retry__max_retries", "2")
    no_indexer_env.setenv("INDEXER_WORLD__NOTE", "free-form")
    s = load_settings(write(tmp_path, {**copy_good(), "service": {"http_port": 1, "sync_interval_s": 7.5},
                                       "chain": {**GOOD["chain"], "retry": {"timeout": 3}}}))
    assert (s.service.http_port, s.service.sync_interval_s) == (9200, 7.5)
    assert (s.chain.retry.max_retries, s.chain.retry.timeout) == (2, 3.0)
    assert s.chain.rpc_urls == ["http://127.0.0.1:8545"]
    assert s.world == {"note": "free-form"}


def test_precedence_is_override_then_environment_then_file_then_default(tmp_path, no_indexer_env):
    bare = write(tmp_path, GOOD)
    assert load_settings(bare).database_url == "sqlite:///collateral.sqlite"
    filed = tmp_path / "filed.toml"
    filed.write_text(tomli_w.dumps({**GOOD, "database_url": "sqlite:///file.sqlite"}))
    assert load_settings(filed).database_url == "sqlite:///file.sqlite"
    no_indexer_env.setenv("INDEXER_DATABASE_URL", "sqlite:///env.sqlite")
    assert load_settings(filed).database_url == "sqlite:///env.sqlite"
    assert load_settings(filed, database_url="sqlite:///flag.sqlite").database_url == "sqlite:///flag.sqlite"


@pytest.mark.parametrize("pool, message", [
    ({"name": "p", "address": "0x" + "11" * 20, "token": "NOPE"}, "pools[p].token: no token with symbol 'NOPE'"),
    ({"name": "p", "address": "0x" + "11" * 20, "token": "AAPLx", "quote_feed": "NOPE"},
     "pools[p].quote_feed: no feed named 'NOPE' in [[feeds]]"),
    ({"name": "p", "address": "0x" + "11" * 20, "token": "AAPLx", "protocol": "curve"}, "pools.0.protocol"),
])
def test_a_pool_must_name_a_configured_token_and_feed(tmp_path, pool, message):
    data = {**GOOD, "pools": [pool]}
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, data))


def test_a_pool_loads_and_may_not_share_an_address(tmp_path):
    pool = {"name": "AAPLx/USDC", "address": "0x" + "33" * 20, "token": "AAPLx", "quote_feed": "AAPL/USD"}
    s = load_settings(write(tmp_path, {**GOOD, "pools": [pool]}))
    assert [(p.name, p.protocol, p.quote_feed) for p in s.pools_of("AAPLx")] == [("AAPLx/USDC", "uniswap_v3", "AAPL/USD")]
    with pytest.raises(ConfigError, match="is used twice by tokens, feeds or pools"):
        load_settings(write(tmp_path, {**GOOD, "pools": [{**pool, "address": GOOD["feeds"][0]["address"]}]}))
    with pytest.raises(ConfigError, match="two pools share a name"):
        load_settings(write(tmp_path, {**GOOD, "pools": [pool, {**pool, "address": "0x" + "44" * 20}]}))


VAULT = {"symbol": "vAAPLx", "address": "0x" + "55" * 20, "decimals": 18, "asset_class": "single_stock",
         "accounting": "plain", "vault_asset": "AAPLx"}


@pytest.mark.parametrize(("vault", "message"), [
    ({"vault_asset": "NOPE"}, "tokens[vAAPLx].vault_asset: no token with symbol 'NOPE'"),
    ({"accounting": "rebasing_shares"}, "tokens[vAAPLx]: an ERC-4626 vault's shares are plain ERC-20 units"),
    ({"feed": "AAPL/USD"}, "tokens[vAAPLx]: an ERC-4626 vault's shares are plain ERC-20 units valued through its "
                           "asset: accounting = \"plain\" and no feed or reserve_feed"),
])
def test_a_vault_names_a_configured_asset_and_has_no_feed_of_its_own(tmp_path, vault, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, {**GOOD, "tokens": [*GOOD["tokens"], {**VAULT, **vault}]}))


def test_a_vault_loads_and_a_vault_over_a_vault_does_not(tmp_path):
    s = load_settings(write(tmp_path, {**GOOD, "tokens": [*GOOD["tokens"], VAULT]}))
    assert s.token("vAAPLx").vault_asset == "AAPLx" and s.token("AAPLx").vault_asset is None
    nested = {**VAULT, "symbol": "vvAAPLx", "address": "0x" + "66" * 20, "vault_asset": "vAAPLx"}
    with pytest.raises(ConfigError, match=re.escape("tokens[vvAAPLx].vault_asset: vAAPLx is itself a vault")):
        load_settings(write(tmp_path, {**GOOD, "tokens": [*GOOD["tokens"], VAULT, nested]}))
