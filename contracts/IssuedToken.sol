// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title IssuedToken
/// @notice The issuer's operations shared by every token of the demo world: mint, burn, and the
/// ERC-3643-style batches. Each leg goes through ERC20's `_mint`, `_burn` or `_transfer`, so the token's
/// own `_update` rules (pause, freeze, sanctions, share accounting) apply to it, and it emits the token's
/// ordinary events. The owner is the issuer.
abstract contract IssuedToken is ERC20, Ownable {
    uint8 private immutable _decimals;

    error ArrayLengthMismatch();

    constructor(uint8 decimals_) {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    function burn(address from, uint256 amount) external onlyOwner {
        _burn(from, amount);
    }

    function batchMint(address[] calldata to, uint256[] calldata amounts) external onlyOwner {
        if (to.length != amounts.length) revert ArrayLengthMismatch();
        for (uint256 i = 0; i < to.length; ++i) {
            _mint(to[i], amounts[i]);
        }
    }

    /// @notice Issuer-initiated transfers between holders (ERC-3643 `batchForcedTransfer`): genuine
    /// transfers that move balances, one Transfer event (and the token's other events) per leg.
    function batchForcedTransfer(address[] calldata from, address[] calldata to, uint256[] calldata amounts)
        external
        onlyOwner
    {
        if (from.length != to.length || from.length != amounts.length) revert ArrayLengthMismatch();
        for (uint256 i = 0; i < from.length; ++i) {
            _transfer(from[i], to[i], amounts[i]);
        }
    }
}
