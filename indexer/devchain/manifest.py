"""The dev chain's manifest: a TOML file the indexer's configuration loads directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from indexer.config import MULTICALL3_ADDRESS
from indexer.devchain.anvil import CHAIN_ID
from indexer.devchain.deploy import BuildReport
from indexer.devchain.pools import ARBITRAGEUR, LIQUIDITY_PROVIDER, TRADERS, UNISWAP_DEPLOYER
from indexer.devchain.specs import (
    CRYPTO,
    CRYPTO_HEARTBEAT,
    POOL_QUOTE,
    POOLS,
    PRICE_DECIMALS,
    RESERVE_DECIMALS,
    RESERVE_HEARTBEAT,
    STABLE_HEARTBEAT,
    STOCK_HEARTBEAT,
    TOKENS,
    VAULTS,
    Scale,
    Timeline,
)
from indexer.devchain.vaults import ATTACKER, VAULT_DEPLOYER
from indexer.devchain.world import Deployment, price_feed_name, reserve_feed_name


def manifest_data(
    *, rpc_url: str, seed: int, scale: Scale, timeline: Timeline, dep: Deployment, report: BuildReport
) -> dict[str, Any]:
    tokens = []
    feeds = []
    for spec in TOKENS:
        feed = price_feed_name(spec)
        entry: dict[str, Any] = {
            "symbol": spec.symbol,
            "name": spec.name,
            "address": dep.tokens[spec.symbol],
            "decimals": spec.decimals,
            "underlying": spec.underlying,
            "asset_class": spec.asset_class,
            "accounting": spec.accounting.value,
            "feed": feed,
        }
        if spec.isin:
            entry["isin"] = spec.isin
        if spec.has_reserve_feed:
            entry["reserve_feed"] = reserve_feed_name(spec.symbol)
        tokens.append(entry)
        stable = spec.asset_class == "stablecoin"
        feeds.append({
            "name": feed,
            "address": dep.price_feeds[feed],
            "decimals": PRICE_DECIMALS,
            "kind": "stablecoin" if stable else "stock",
            "quote": spec.quote,
            "heartbeat": STABLE_HEARTBEAT if stable else STOCK_HEARTBEAT,
            "calendar": "24/7" if stable else "XNYS",
            "token": spec.symbol,
        })
        if spec.has_reserve_feed:
            name = reserve_feed_name(spec.symbol)
            feeds.append({
                "name": name,
                "address": dep.reserve_feeds[spec.symbol],
                "decimals": RESERVE_DECIMALS,
                "kind": "reserve",
                "heartbeat": RESERVE_HEARTBEAT,
                "calendar": "24/7",
                "token": spec.symbol,
            })
    by_symbol = {t.symbol: t for t in TOKENS}
    for vault in VAULTS:  # an ERC-4626 vault over a token: plain shares, valued through its asset (no feed)
        if vault.symbol not in dep.vaults:
            continue
        asset = by_symbol[vault.asset]
        tokens.append({
            "symbol": vault.symbol,
            "name": vault.name,
            "address": dep.vaults[vault.symbol],
            "decimals": vault.decimals,
            "underlying": asset.underlying,
            "asset_class": asset.asset_class,
            "accounting": "plain",
            "vault_asset": vault.asset,
        })
    for c in CRYPTO:
        feeds.append({
            "name": c.pair,
            "address": dep.price_feeds[c.pair],
            "decimals": PRICE_DECIMALS,
            "kind": "crypto",
            "quote": "per_token",
            "heartbeat": CRYPTO_HEARTBEAT,
            "calendar": "24/7",
        })
    world_pools: dict[str, Any] = {}
    if dep.uniswap:  # the published Uniswap v3 contracts and the actors that trade in the pools (pools.py)
        world_pools = {
            "uniswap": {**dep.uniswap, "deployer": UNISWAP_DEPLOYER},
            "dex_actors": {"liquidity_provider": LIQUIDITY_PROVIDER, "arbitrageur": ARBITRAGEUR,
                           "traders": list(TRADERS)},
        }
    if dep.vaults:  # the vaults, their deployer and the account that donates to one (vaults.py)
        world_pools["vaults"] = dict(dep.vaults)
        world_pools["vault_actors"] = {"deployer": VAULT_DEPLOYER, "attacker": ATTACKER}
    quote_feed = price_feed_name(next(t for t in TOKENS if t.symbol == POOL_QUOTE))
    pools = [{"name": spec.name, "address": dep.pools[spec.name], "token": spec.token, "protocol": "uniswap_v3",
              "quote_feed": quote_feed} for spec in POOLS if spec.name in dep.pools]
    return {
        "chain": {
            "chain_id": CHAIN_ID,
            "rpc_url": rpc_url,
            "deployment_block": report.deployment_block,
            "confirmations": 0,
            "multicall3": MULTICALL3_ADDRESS,
        },
        "world": {
            "seed": seed,
            "scale": scale.name,
            "wallets": scale.wallets,
            "start": timeline.start,
            "end": timeline.end,
            "block_seconds": timeline.block_seconds,
            "head_block": report.head_block,
            "blocks": report.blocks,
            "transactions": report.transactions,
            "transfers": report.transfers,
            "build_seconds": round(report.seconds, 2),
            "issuer": dep.issuer,
            "updater": dep.updater,
            "sanctions_list": dep.sanctions_list,
            "factory": dep.factory,
            "proxy_admin": dep.proxy_admin,
            "implementations": dict(dep.implementations),
            "disperse": dep.disperse,
            "market_maker": dep.market_maker,
            "aggregators": {name: list(addrs) for name, addrs in dep.aggregators.items()},
            "contracts": {**{spec.symbol: spec.contract for spec in TOKENS},
                          **{v.symbol: "stock_vault" for v in VAULTS if v.symbol in dep.vaults}},
            **world_pools,
        },
        "tokens": tokens,
        "feeds": feeds,
        "pools": pools,
        "events": [_toml_safe(e) for e in report.events],
    }


def _toml_safe(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if v is not None}


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(tomli_w.dumps(data).encode())
    tmp.replace(path)  # never leave a half-written manifest
