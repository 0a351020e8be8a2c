"""Policy files: validation with errors that name the field, and identity by content hash."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from indexer.devchain.specs import VAULTS
from indexer.risk.policy import PolicyError, load_policy, policy_from_mapping
from tests.oracles.synthetic import CRYPTO_FEEDS, DEFAULT_TOKENS

from .worlds import DEFAULT_POLICY, KRAKEN_POLICY, default_policy_data

WORLD_SYMBOLS = {t.symbol for t in DEFAULT_TOKENS} | {v.symbol for v in VAULTS}  # and the dev world's vault
WORLD_FEEDS = {t.feed for t in DEFAULT_TOKENS} | {name for name, _, _ in CRYPTO_FEEDS}


def data() -> dict[str, Any]:
    return copy.deepcopy(default_policy_data())


def rejected(mapping: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(PolicyError) as exc:
        policy_from_mapping(mapping, **kwargs)
    return str(exc.value)


def test_default_policy_loads_against_the_default_world() -> None:
    policy = load_policy(DEFAULT_POLICY, known_tokens=WORLD_SYMBOLS, known_feeds=WORLD_FEEDS)
    assert set(policy.tokens) == WORLD_SYMBOLS
    assert policy.token_base_haircut("SPYx") == 0.15
    assert policy.token_base_haircut("AAPLx") == 0.25
    assert policy.token_base_haircut("NOT_LISTED") == 1.0
    assert not policy.token_eligible("NOT_LISTED")
    assert policy.volatility.z == pytest.approx(2.326347874)
    assert re.fullmatch(r"default/2026\.3\+sha256:[0-9a-f]{12}", policy.version_string)
    assert re.fullmatch(r"[0-9a-f]{64}", policy.content_hash)


def test_kraken_preset_reproduces_the_disclosed_rule() -> None:
    kraken = load_policy(KRAKEN_POLICY, known_tokens=WORLD_SYMBOLS, known_feeds=WORLD_FEEDS)
    assert kraken.token_base_haircut("SPYx") == 0.10
    assert kraken.token_base_haircut("MSTRx") == 0.30
    assert kraken.tokens["SPYx"].wallet_cap_usd == 1_000_000.0
    assert kraken.tokens["AAPLx"].wallet_cap_usd == 250_000.0
    assert kraken.tokens["GLDx"].wallet_cap_usd == 100_000.0
    assert not kraken.token_eligible("TLT") and not kraken.token_eligible("USDC")
    assert kraken.accounts.blocked_jurisdictions == ["US"]
    assert not kraken.volatility.enabled and not kraken.gap.enabled
    assert kraken.content_hash != load_policy(DEFAULT_POLICY).content_hash


def test_hash_ignores_comments_key_order_and_number_spelling(tmp_path: Path) -> None:
    original = load_policy(DEFAULT_POLICY)
    shuffled = {k: data()[k] for k in reversed(list(data()))}
    shuffled["asset_classes"]["single_stock"]["base_haircut"] = 2.5e-1
    path = tmp_path / "same.toml"
    path.write_text("# a different comment\n" + tomli_w.dumps(shuffled))
    assert load_policy(path).content_hash == original.content_hash


def test_changing_any_number_changes_the_hash() -> None:
    base = policy_from_mapping(data()).content_hash
    changed = data()
    changed["stress"]["equity_crypto_corr_floor"] = 0.81
    assert policy_from_mapping(changed).content_hash != base


def test_missing_field_is_named_with_its_path() -> None:
    d = data()
    del d["volatility"]["ewma_lambda"]
    msg = rejected(d)
    assert "volatility.ewma_lambda: Field required (add it to the policy file)" in msg


def test_haircut_outside_unit_interval_is_named() -> None:
    d = data()
    d["asset_classes"]["single_stock"]["base_haircut"] = 1.5
    assert "asset_classes.single_stock.base_haircut: Input should be less than or equal to 1" in rejected(d)
    d = data()
    d["tokens"]["AAPLx"]["base_haircut"] = -0.1
    assert "tokens.AAPLx.base_haircut: Input should be greater than or equal to 0" in rejected(d)


def test_unknown_token_is_rejected_against_the_config() -> None:
    msg = rejected(data(), known_tokens=WORLD_SYMBOLS - {"AAPLx"})
    assert "tokens.AAPLx: unknown token 'AAPLx'" in msg
    assert "add it to the indexer's token config" in msg


def test_unknown_feed_in_a_scenario_is_rejected() -> None:
    msg = rejected(data(), known_feeds={"BTC/USD"})
    assert "stress.scenarios[0].crypto_feed_shocks.ETH/USD: unknown feed 'ETH/USD'" in msg


def test_token_with_an_unknown_asset_class_is_named() -> None:
    d = data()
    d["tokens"]["AAPLx"]["asset_class"] = "meme_stock"
    assert "tokens.AAPLx.asset_class: unknown asset class 'meme_stock'" in rejected(d)


def test_scenario_without_a_shock_for_every_class_is_named() -> None:
    d = data()
    del d["stress"]["scenarios"][1]["shocks"]["bond_etf"]
    assert (
        "stress.scenarios[1].shocks: scenario 'equity_gap_monday_open' has no shock for ['bond_etf']"
        in rejected(d)
    )


def test_misspelled_key_is_reported_as_unknown() -> None:
    d = data()
    d["gap"]["capp"] = 0.2
    assert "gap.capp: Extra inputs are not permitted (remove it or fix its spelling)" in rejected(d)


def test_inconsistent_margin_and_size_bands_are_named() -> None:
    d = data()
    d["margin"]["mm_rate"] = 0.2
    assert "margin: mm_rate 0.2 exceeds the initial margin rate at max_leverage" in rejected(d)
    d = data()
    d["size"]["bands"][0]["from_usd"] = 5.0
    assert "size.bands: the first band must start at from_usd = 0" in rejected(d)
    d = data()
    d["stress"]["equity_classes"] = ["single_stock", "penny_stock"]
    assert "stress.equity_classes: unknown asset class 'penny_stock'" in rejected(d)


def test_liquidity_parameters_are_checked_and_a_policy_without_them_takes_the_defaults() -> None:
    d = data()
    d["liquidity"]["depth_move_bp"] = 300
    d["liquidity"]["participation"] = 0.0
    d["stress"]["depth_factor"] = 1.5
    msg = rejected(d)
    assert "liquidity.depth_move_bp: Input should be 100, 200 or 500 (use one of the allowed values)" in msg
    assert "liquidity.participation: Input should be greater than 0" in msg
    assert "stress.depth_factor: Input should be less than or equal to 1" in msg
    d = data()
    del d["liquidity"]
    for sc in d["stress"]["scenarios"]:
        del sc["risk_off"]
    older = policy_from_mapping(d)  # a policy written before section 15 still loads
    assert older.liquidity == load_policy(DEFAULT_POLICY).liquidity
    assert not any(sc.risk_off for sc in older.stress.scenarios)


def test_every_error_is_reported_at_once() -> None:
    d = data()
    d["asset_classes"]["single_stock"]["base_haircut"] = 2.0
    d["concentration"]["wallet_share_cap"] = 0.0
    msg = rejected(d)
    assert "asset_classes.single_stock.base_haircut" in msg
    assert "concentration.wallet_share_cap: Input should be greater than 0" in msg


def test_missing_or_broken_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found: check the policy path"):
        load_policy(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[meta\nname = 1")
    with pytest.raises(PolicyError, match="is not valid TOML"):
        load_policy(bad)
