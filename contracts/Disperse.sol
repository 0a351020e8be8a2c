// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IERC20Transfers {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @title Disperse
/// @notice Sends one token from the caller to many recipients in one transaction, the way disperse.app's
/// `disperseTokenSimple(token, recipients, values)` does: each leg is the token's own `transferFrom` from the
/// caller (who approved this contract), so each emits the token's ordinary events. The demo world's market
/// maker distributes xStocks this way; a Backed token has no batch transfer of its own.
contract Disperse {
    error LengthMismatch();
    error TransferFailed(uint256 index);

    function disperseTokenSimple(IERC20Transfers token, address[] calldata recipients, uint256[] calldata values)
        external
    {
        if (recipients.length != values.length) revert LengthMismatch();
        for (uint256 i = 0; i < recipients.length; ++i) {
            if (!token.transferFrom(msg.sender, recipients[i], values[i])) revert TransferFailed(i);
        }
    }
}
