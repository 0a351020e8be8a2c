// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable45} from "./TransparentProxy.sol";

/// @title ChainalysisOracle
/// @notice Imitation of the Chainalysis on-chain sanctions oracle, shaped like the mock Backed tests its
/// tokens against (`SanctionsListMock`): an owner-maintained list, array events for additions and removals,
/// and a verbose check that logs its answer. Backed tokens call only `isSanctioned`.
contract ChainalysisOracle is Ownable45 {
    mapping(address => bool) private _sanctioned;

    event SanctionedAddress(address indexed addr);
    event NonSanctionedAddress(address indexed addr);
    event SanctionedAddressesAdded(address[] addrs);
    event SanctionedAddressesRemoved(address[] addrs);

    function name() external pure returns (string memory) {
        return "Chainalysis sanctions oracle";
    }

    function addToSanctionsList(address[] memory newSanctions) public onlyOwner {
        for (uint256 i = 0; i < newSanctions.length; ++i) {
            _sanctioned[newSanctions[i]] = true;
        }
        emit SanctionedAddressesAdded(newSanctions);
    }

    function removeFromSanctionsList(address[] memory removeSanctions) public onlyOwner {
        for (uint256 i = 0; i < removeSanctions.length; ++i) {
            _sanctioned[removeSanctions[i]] = false;
        }
        emit SanctionedAddressesRemoved(removeSanctions);
    }

    function isSanctioned(address addr) public view returns (bool) {
        return _sanctioned[addr];
    }

    /// @notice Same answer as isSanctioned, logged as SanctionedAddress or NonSanctionedAddress.
    function isSanctionedVerbose(address addr) public returns (bool) {
        if (_sanctioned[addr]) {
            emit SanctionedAddress(addr);
            return true;
        }
        emit NonSanctionedAddress(addr);
        return false;
    }
}
