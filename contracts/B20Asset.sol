// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IssuerToken} from "./ScaledUiStock.sol";

/// @title B20Asset
/// @notice Imitation of the Beryl surface of Base's B20 "Asset" tokens (Coinbase tokenized stocks; on Base
/// they are protocol precompiles, here a plain contract). Balances stay raw; `multiplier()` scales a view
/// of them. A stored 0 (never set) reads as WAD_PRECISION. `updateMultiplier` is instant and logs
/// MultiplierUpdated(multiplier); transfers log a plain Transfer only. The Cobalt ERC-8056 aliases,
/// scheduled updates, announcements and policies are not part of this imitation, and OPERATOR_ROLE is
/// only exposed as its constant: the issuer (owner) holds every role.
contract B20Asset is IssuerToken {
    uint256 public constant WAD_PRECISION = 1e18;
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @dev 0 until the first update: read through multiplier(), which maps 0 to WAD_PRECISION.
    uint256 private _multiplier;

    event MultiplierUpdated(uint256 multiplier);

    error InvalidMultiplier();

    constructor(string memory name_, string memory symbol_, uint8 decimals_) IssuerToken(name_, symbol_, decimals_) {}

    function multiplier() public view returns (uint256) {
        uint256 stored = _multiplier;
        return stored == 0 ? WAD_PRECISION : stored;
    }

    /// @notice Instant update; the multiplier must be in (0, type(uint128).max].
    function updateMultiplier(uint256 newMultiplier) external onlyOwner {
        if (newMultiplier == 0 || newMultiplier > type(uint128).max) revert InvalidMultiplier();
        _multiplier = newMultiplier;
        emit MultiplierUpdated(newMultiplier);
    }

    function scaledBalanceOf(address account) external view returns (uint256) {
        return (balanceOf(account) * multiplier()) / WAD_PRECISION;
    }

    function toScaledBalance(uint256 rawBalance) external view returns (uint256) {
        return (rawBalance * multiplier()) / WAD_PRECISION;
    }

    function toRawBalance(uint256 scaledBalance) external view returns (uint256 rawBalance) {
        return (scaledBalance * WAD_PRECISION) / multiplier();
    }
}
