// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice The read side of the Chainalysis sanctions oracle, which is all a token needs to screen parties.
interface ISanctionsList {
    function isSanctioned(address addr) external view returns (bool);
}

/// @title SanctionsList
/// @notice Local stand-in for the Chainalysis on-chain sanctions oracle. It keeps the oracle's function and
/// event names so that tokens and off-chain consumers built against the real oracle work unchanged.
contract SanctionsList is ISanctionsList, Ownable {
    mapping(address => bool) private _sanctioned;

    event SanctionedAddressesAdded(address[] addrs);
    event SanctionedAddressesRemoved(address[] addrs);

    constructor(address owner) Ownable(owner) {}

    function isSanctioned(address addr) external view returns (bool) {
        return _sanctioned[addr];
    }

    function addToSanctionsList(address[] calldata addrs) external onlyOwner {
        for (uint256 i = 0; i < addrs.length; ++i) {
            _sanctioned[addrs[i]] = true;
        }
        emit SanctionedAddressesAdded(addrs);
    }

    function removeFromSanctionsList(address[] calldata addrs) external onlyOwner {
        for (uint256 i = 0; i < addrs.length; ++i) {
            _sanctioned[addrs[i]] = false;
        }
        emit SanctionedAddressesRemoved(addrs);
    }
}
