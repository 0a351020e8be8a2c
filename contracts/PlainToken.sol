// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title PlainToken
/// @notice Fixed-balance ERC-20 (e.g. a stablecoin) whose issuer can mint, burn and move balances. It is the
/// baseline against which the stock tokens' scaled and rebasing balances are compared.
contract PlainToken is ERC20, Ownable {
    uint8 private immutable _decimals;

    error ArrayLengthMismatch();

    constructor(string memory name, string memory symbol, uint8 decimals_, address issuer)
        ERC20(name, symbol)
        Ownable(issuer)
    {
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

    /// @notice Issuer-initiated transfers (ERC-3643 `batchForcedTransfer`); each leg is an ordinary
    /// transfer with its own Transfer event.
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
