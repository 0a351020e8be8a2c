// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IssuedToken} from "./IssuedToken.sol";

/// @title PlainToken
/// @notice Fixed-balance ERC-20 (e.g. a stablecoin) whose issuer can mint, burn and move balances. It is the
/// baseline against which the stock tokens' scaled and rebasing balances are compared.
contract PlainToken is IssuedToken {
    constructor(string memory name, string memory symbol, uint8 decimals_, address issuer)
        ERC20(name, symbol)
        Ownable(issuer)
        IssuedToken(decimals_)
    {}
}
