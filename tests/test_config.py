"""The settings model: manifests load, bad fields are named."""

from __future__ import annotations

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
