// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ScaledUiStockCore} from "./ScaledUiStock.sol";

/// @title ScaledUiStockDraft
/// @notice ScaledUiStock as tokens built against the early ERC-8056 draft (Dec 2025 - Jan 2026) log a change:
/// the 4-argument UIMultiplierUpdated(oldMultiplier, newMultiplier, setAtTimestamp, effectiveAtTimestamp),
/// topic0 0x69cf8174..., where setAtTimestamp is the block time of the call. Everything else is identical.
contract ScaledUiStockDraft is ScaledUiStockCore {
    event UIMultiplierUpdated(
        uint256 oldMultiplier, uint256 newMultiplier, uint256 setAtTimestamp, uint256 effectiveAtTimestamp
    );

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ScaledUiStockCore(name_, symbol_, decimals_) {}

    function _emitUIMultiplierUpdated(uint256 oldMultiplier, uint256 newMultiplier, uint256 effectiveAtTimestamp)
        internal
        override
    {
        emit UIMultiplierUpdated(oldMultiplier, newMultiplier, block.timestamp, effectiveAtTimestamp);
    }
}
