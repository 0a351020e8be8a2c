"""Start-up checks of a sync: the node is the configured chain, and every contract is what the
configuration says it is. Each problem stops start-up with a ConfigError naming the field and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from indexer.chain.headers import read_head
from indexer.chain.logs import LogFetcher
from indexer.chain.pools import PoolMeta, read_pool_meta
from indexer.chain.rpc import RpcClient
from indexer.chain.state import read_sanctions_lists
from indexer.chain.tokens import Surface, probe_surfaces
from indexer.chain.vaults import VaultMeta, read_vault_meta
from indexer.config import Settings
from indexer.errors import ChainDataError, ConfigError, RpcError
from indexer.sync.context import SyncContext
from indexer.sync.end import state_at_recent_block
from indexer.types import Accounting, BalanceSource

T = TypeVar("T")


def prepare(settings: Settings, rpc: RpcClient, *, max_blocks_per_tick: int | None = None) -> SyncContext:
    """Check the chain and every contract once; raise ConfigError naming what is wrong. The tick's
    block range is `service.blocks_per_tick` unless `max_blocks_per_tick` says otherwise."""
    chain_id = _check_chain(settings, rpc)
    _check_code(settings, rpc)
    head = read_head(rpc)
    surfaces = _check_tokens(settings, rpc, head)
    rebasing = [t.address for t in settings.tokens if t.accounting == Accounting.REBASING_SHARES]
    sanctions = _at_head(settings, rpc, head, lambda: read_sanctions_lists(
        rpc, rebasing, head, settings.chain.multicall3)) if rebasing else []
    return SyncContext(
        settings, rpc, chain_id, {t.address: t.accounting for t in settings.tokens},
        [f.address for f in settings.feeds], sanctions, new_fetcher(),
        max_blocks_per_tick or settings.service.blocks_per_tick,
        polled=frozenset(t.address for t in settings.tokens if t.balance_source == BalanceSource.POLL),
        surfaces=surfaces, pools=_check_pools(settings, rpc, head), vaults=_check_vaults(settings, rpc, head))


def new_fetcher() -> LogFetcher:
    """The sync's log fetcher: it starts at one block and grows while answers are light (a deployment's
    first blocks can hold a whole token's mints); a dense chain settles near 50,000 logs per request."""
    return LogFetcher(initial_range=1, target_logs=50_000)


def _at_head(settings: Settings, rpc: RpcClient, head: int, read: Callable[[], T]) -> T:
    """A start-up read at the head the node just reported: a load-balanced provider's backend that has not seen
    that block yet answers "header not found", which passes (`sync.end.state_at_recent_block`)."""
    return state_at_recent_block(rpc, settings.chain.retry, head, read)


def _check_chain(settings: Settings, rpc: RpcClient) -> int:
    try:
        chain_id = int(rpc.call("eth_chainId"), 16)
    except RpcError as exc:
        raise ConfigError(f"chain.rpc_urls: cannot reach {rpc.url}: {exc}") from None
    if chain_id != settings.chain.chain_id:
        raise ConfigError(f"chain.chain_id: the node at {rpc.url} is chain {chain_id}, the configuration says "
                          f"{settings.chain.chain_id}")
    return chain_id


def _check_code(settings: Settings, rpc: RpcClient) -> None:
    addresses = [t.address for t in settings.tokens] + [f.address for f in settings.feeds] + \
        [p.address for p in settings.pools]
    codes = rpc.batch([("eth_getCode", [a, "latest"]) for a in addresses])
    empty = [a for a, c in zip(addresses, codes, strict=True) if c in ("0x", "", None)]
    if empty:
        names = {t.address: t.symbol for t in settings.tokens} | {f.address: f.name for f in settings.feeds} | \
            {p.address: f"pool {p.name}" for p in settings.pools}
        raise ConfigError("no contract code at " + ", ".join(f"{names[a]} ({a})" for a in empty)
                          + ": check the address and the chain")


def _check_tokens(settings: Settings, rpc: RpcClient, head: int) -> dict[str, Surface]:
    """Each token's surface, probed at the head; the accounting model it means must be the configured one."""
    surfaces = _at_head(settings, rpc, head, lambda: probe_surfaces(rpc, [t.address for t in settings.tokens], head,
                                                                   settings.chain.multicall3))
    for t in settings.tokens:
        surface = surfaces[t.address]
        if not surface.has("totalSupply"):
            raise ConfigError(f"tokens[{t.symbol}] ({t.address}) does not answer totalSupply(): not an ERC-20")
        detected = surface.accounting
        if detected != t.accounting:
            raise ConfigError(
                f"tokens[{t.symbol}].accounting = {str(t.accounting)!r}, but the contract at {t.address} is "
                f"{str(detected)!r} ({_evidence(detected, surface)}): set accounting = \"{detected}\"")
    return surfaces


def _check_pools(settings: Settings, rpc: RpcClient, head: int) -> dict[str, PoolMeta]:
    """What each configured pool is on the chain; it must answer as a Uniswap v3 pool and trade its token."""
    if not settings.pools:
        return {}
    try:
        metas = _at_head(settings, rpc, head, lambda: read_pool_meta(rpc, [p.address for p in settings.pools], head,
                                                                    settings.chain.multicall3))
    except ChainDataError as exc:
        raise ConfigError(f"pools: {exc}") from None
    for p in settings.pools:
        meta, token = metas[p.address], settings.token(p.token).address
        if token not in (meta.token0, meta.token1):
            raise ConfigError(f"pools[{p.name}].token = {p.token!r}, but the pool at {p.address} trades {meta.token0} "
                              f"against {meta.token1}, neither of which is {p.token} ({token})")
    return metas


def _check_vaults(settings: Settings, rpc: RpcClient, head: int) -> dict[str, VaultMeta]:
    """What each configured ERC-4626 vault is: it must answer as one, over its configured asset, with the
    configured decimals."""
    vaults = [t for t in settings.tokens if t.vault_asset is not None]
    if not vaults:
        return {}
    try:
        found = _at_head(settings, rpc, head, lambda: read_vault_meta(rpc, [t.address for t in vaults], head,
                                                                     settings.chain.multicall3))
    except ChainDataError as exc:
        raise ConfigError(f"tokens: {exc}") from None
    out = {}
    for t in vaults:
        asset_address, decimals = found[t.address]
        asset = settings.token(t.vault_asset)  # type: ignore[arg-type]
        if asset_address != asset.address:
            raise ConfigError(f"tokens[{t.symbol}].vault_asset = {asset.symbol!r} ({asset.address}), but the vault at "
                              f"{t.address} holds {asset_address}")
        if decimals != t.decimals:
            raise ConfigError(f"tokens[{t.symbol}].decimals = {t.decimals}, but the vault at {t.address} answers "
                              f"decimals() = {decimals}")
        out[t.address] = VaultMeta(t.address, asset.address, decimals,
                                   asset.accounting == Accounting.REBASING_SHARES)
    return out


def _evidence(detected: Accounting, surface: Surface) -> str:
    if detected == Accounting.REBASING_SHARES:
        return "it answers sharesOf and getCurrentMultiplier"
    if detected == Accounting.UI_MULTIPLIER:
        return "it answers " + ("uiMultiplier" if surface.has("uiMultiplier") else "multiplier") + " without shares"
    return "it answers neither sharesOf and getCurrentMultiplier nor a UI multiplier"
