// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IssuedToken} from "./IssuedToken.sol";

/// @title StockToken
/// @notice What every tokenized stock of the demo world says about its underlying, readable on chain:
/// the ticker and an identifier (ISIN).
abstract contract StockToken is IssuedToken {
    string private _ticker;
    string private _isin;

    constructor(string memory ticker_, string memory isin_) {
        _ticker = ticker_;
        _isin = isin_;
    }

    /// @notice Ticker of the underlying equity.
    function ticker() external view returns (string memory) {
        return _ticker;
    }

    /// @notice ISIN (or other identifier) of the underlying equity.
    function isin() external view returns (string memory) {
        return _isin;
    }
}
