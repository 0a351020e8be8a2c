// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable45, ProxyAdmin, TransparentProxy} from "./TransparentProxy.sol";

/// @notice The token calls the factory makes right after creating a proxy, while it still owns the token.
interface IXStockConfigurable {
    function setMinter(address newMinter) external;
    function setBurner(address newBurner) external;
    function setPauser(address newPauser) external;
    function setMultiplierUpdater(address newMultiplierUpdater) external;
    function setSanctionsList(address newSanctionsList) external;
    function transferOwnership(address newOwner) external;
}

/// @title XStockFactory
/// @notice Imitation of Backed's `BackedAutoFeeTokenFactory`: owns one ProxyAdmin (handed to
/// `proxyAdminOwner`), and deploys each token as a TransparentProxy at a CREATE2 address salted with
/// keccak256(abi.encodePacked(name, symbol)), initialised in the proxy constructor, configured, then handed to
/// its owner, all in one transaction. The deployment logs, in order, from the token: Upgraded,
/// OwnershipTransferred(0, factory), NewTerms, AdminChanged(0, proxyAdmin), NewMinter, NewBurner, NewPauser,
/// NewMultiplierUpdater, NewSanctionsList, OwnershipTransferred(factory, owner); then from the factory:
/// NewToken.
///
/// Deployment detail that differs from the real factory: the real constructor deploys the token
/// implementation itself (`new BackedAutoFeeTokenImplementation()`); here the implementation (XStockV3 or
/// XStockV4) is deployed first and its address passed in, so one factory bytecode serves both versions.
/// The factory constructor therefore logs no implementation events (OwnershipTransferred and NewTerms from
/// the implementation address come from the implementation's own deployment transaction instead).
contract XStockFactory is Ownable45 {
    ProxyAdmin public immutable proxyAdmin;
    address public tokenImplementation;

    event NewToken(address indexed newToken, string name, string symbol);
    event NewImplementation(address indexed newImplementation);

    struct TokenDeploymentConfiguration {
        string name;
        string symbol;
        address tokenOwner;
        address minter;
        address burner;
        address pauser;
        address sanctionsList;
        address multiplierUpdater;
        uint256 periodLength;
        uint256 lastTimeFeeApplied;
        uint256 feePerPeriod;
    }

    constructor(address proxyAdminOwner, address implementation) {
        require(proxyAdminOwner != address(0), "Factory: address should not be 0");
        require(implementation != address(0), "Factory: address should not be 0");
        tokenImplementation = implementation;
        proxyAdmin = new ProxyAdmin();
        proxyAdmin.transferOwnership(proxyAdminOwner);
    }

    /// @notice Selector 0x7272f3ff. Owner, minter, burner and pauser must be set; the multiplier updater,
    /// the sanctions list address and the fee parameters are not checked here (setSanctionsList checks
    /// the list by calling it).
    function deployToken(TokenDeploymentConfiguration calldata configuration) external onlyOwner returns (address) {
        require(
            configuration.tokenOwner != address(0) && configuration.minter != address(0)
                && configuration.burner != address(0) && configuration.pauser != address(0),
            "Factory: address should not be 0"
        );
        bytes32 salt = keccak256(abi.encodePacked(configuration.name, configuration.symbol));
        bytes memory initData = abi.encodeWithSignature(
            "initialize(string,string,uint256,uint256,uint256)",
            configuration.name,
            configuration.symbol,
            configuration.periodLength,
            configuration.lastTimeFeeApplied,
            configuration.feePerPeriod
        );
        address token = address(new TransparentProxy{salt: salt}(tokenImplementation, address(proxyAdmin), initData));

        IXStockConfigurable configured = IXStockConfigurable(token);
        configured.setMinter(configuration.minter);
        configured.setBurner(configuration.burner);
        configured.setPauser(configuration.pauser);
        configured.setMultiplierUpdater(configuration.multiplierUpdater);
        configured.setSanctionsList(configuration.sanctionsList);
        configured.transferOwnership(configuration.tokenOwner);

        emit NewToken(token, configuration.name, configuration.symbol);
        return token;
    }

    /// @notice Changes the template for FUTURE deployments only; existing proxies are not upgraded.
    function updateImplementation(address newImplementation) external onlyOwner {
        require(newImplementation != address(0), "Factory: address should not be 0");
        tokenImplementation = newImplementation;
        emit NewImplementation(newImplementation);
    }
}
