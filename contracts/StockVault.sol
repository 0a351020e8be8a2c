// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";

/// @title StockVault
/// @notice OpenZeppelin Contracts 5.1.0's ERC4626 as published, over one tokenized stock: nothing overridden,
/// so the decimals offset is 0 and `totalAssets()` is the asset's `balanceOf(vault)`. A plain `transfer` of the
/// asset to the vault (a donation) raises `convertToAssets` for every holder, as it does in naive vaults on
/// mainnet. The dev world wraps TSLAx in one (docs/liquidity.md, "The dev world's vault").
contract StockVault is ERC4626 {
    constructor(IERC20 asset_, string memory name_, string memory symbol_) ERC20(name_, symbol_) ERC4626(asset_) {}
}
