"""ERC-4626 vaults whose asset is a configured token (EIP-4626; OpenZeppelin Contracts 5.1.0 `ERC4626`):
what a vault is (`asset()`, `decimals()`), checked at start-up, and its exchange rate at a block
(`convertToAssets` of one whole share, `totalAssets`, `totalSupply`, and, for a rebasing asset, the asset's
multiplier in force at the same block, which carries the rate across the asset's corporate actions:
docs/liquidity.md, "ERC-4626 vaults"). Pure planning and decoding around one Multicall3 round trip each.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.chain.multicall import Call, read_calls
from indexer.chain.rpc import RpcClient
from indexer.chain.tokens import READS, Read
from indexer.errors import ChainDataError
from indexer.liquidity.vaults import VaultRead

ASSET = Read("asset()", ("address",))
DECIMALS = Read("decimals()", ("uint8",))
CONVERT_TO_ASSETS = Read("convertToAssets(uint256)", ("uint256",))
TOTAL_ASSETS = Read("totalAssets()", ("uint256",))
TOTAL_SUPPLY = READS["totalSupply"]
CURRENT_MULTIPLIER = READS["getCurrentMultiplier"]


@dataclass(frozen=True)
class VaultMeta:
    """A configured vault as the chain describes it."""

    address: str
    asset: str  # asset(), lower case
    decimals: int  # the vault share's decimals(): convertToAssets is asked for 10**decimals
    rebasing_asset: bool  # the asset is a rebasing xStock: its multiplier is read with each rate


def read_vault_meta(rpc: RpcClient, vaults: list[str], block: int, multicall: str | None) -> dict[str, tuple[str, int]]:
    """Each vault's (asset, decimals); ChainDataError naming a vault that does not answer as an ERC-4626 vault
    (no `asset()`, no `decimals()`, or a `convertToAssets` that reverts)."""
    results = read_calls(rpc, [Call(v, r.selector) for v in vaults for r in (ASSET, DECIMALS)], block,
                         multicall=multicall)
    out = {}
    for i, v in enumerate(vaults):
        (ok_a, asset), (ok_d, dec) = results[2 * i:2 * i + 2]
        if not (ok_a and ok_d and len(asset) >= 32 and len(dec) >= 32):
            raise ChainDataError(f"vault {v} does not answer asset() and decimals(): not an ERC-4626 vault")
        out[v] = (str(ASSET.decode(asset)).lower(), int(DECIMALS.decode(dec)))
    probes = read_calls(rpc, [convert_call(v, d) for v, (_, d) in out.items()], block, multicall=multicall)
    for v, (ok, data) in zip(out, probes, strict=True):
        if not ok or len(data) < 32:
            raise ChainDataError(f"vault {v} does not answer convertToAssets(uint256): not an ERC-4626 vault")
    return out


def convert_call(vault: str, decimals: int) -> Call:
    return Call(vault, CONVERT_TO_ASSETS.selector + (10**decimals).to_bytes(32, "big"))


def rate_calls(meta: VaultMeta) -> list[Call]:
    calls = [convert_call(meta.address, meta.decimals), Call(meta.address, TOTAL_ASSETS.selector),
             Call(meta.address, TOTAL_SUPPLY.selector)]
    return calls + ([Call(meta.asset, CURRENT_MULTIPLIER.selector)] if meta.rebasing_asset else [])


def read_vault_rates(rpc: RpcClient, vaults: list[VaultMeta], block: int, multicall: str | None
                     ) -> dict[str, VaultRead | None]:
    """{vault: its rate at `block`}; None for a vault whose reads failed there (recorded by the caller). A vault
    with no code at `block` yet (every call answers nothing) is left out."""
    calls = [rate_calls(v) for v in vaults]
    results = read_calls(rpc, [c for cs in calls for c in cs], block, multicall=multicall)
    out: dict[str, VaultRead | None] = {}
    i = 0
    for v, cs in zip(vaults, calls, strict=True):
        answers = results[i:i + len(cs)]
        i += len(cs)
        if all(ok and not data for ok, data in answers[:3]):
            continue  # not deployed at this block
        out[v.address] = _rate(v, answers)
    return out


def _rate(v: VaultMeta, answers: list[tuple[bool, bytes]]) -> VaultRead | None:
    if not all(ok and len(data) >= 32 for ok, data in answers):
        return None
    try:
        rate, total_assets, supply = (int(r.decode(d)) for r, (_, d) in  # type: ignore[call-overload]
                                      zip((CONVERT_TO_ASSETS, TOTAL_ASSETS, TOTAL_SUPPLY), answers, strict=False))
        mult = int(CURRENT_MULTIPLIER.decode(answers[3][1])[0]) if v.rebasing_asset else None  # type: ignore[index]
    except (ValueError, TypeError):
        return None
    return VaultRead(rate, total_assets, supply, mult)
