// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Ownable45
/// @notice Single-owner access as OpenZeppelin 4.5's `Ownable` behaves: the deployer owns the contract from
/// the constructor (logging OwnershipTransferred(0, deployer)), ownership moves in one step, and the revert
/// strings are OZ 4's. Shared by the proxy admin, the factory, the sanctions oracle and the issuer tokens.
abstract contract Ownable45 {
    address private _owner;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    constructor() {
        _transferOwnership(msg.sender);
    }

    modifier onlyOwner() {
        require(_owner == msg.sender, "Ownable: caller is not the owner");
        _;
    }

    function owner() public view returns (address) {
        return _owner;
    }

    function renounceOwnership() public onlyOwner {
        _transferOwnership(address(0));
    }

    function transferOwnership(address newOwner) public onlyOwner {
        require(newOwner != address(0), "Ownable: new owner is the zero address");
        _transferOwnership(newOwner);
    }

    function _transferOwnership(address newOwner) internal {
        address previous = _owner;
        _owner = newOwner;
        emit OwnershipTransferred(previous, newOwner);
    }
}

/// @title TransparentProxy
/// @notice Imitation of OpenZeppelin 4.5's `TransparentUpgradeableProxy` (the proxy behind every Backed token,
/// deployed as `BackedTokenProxy`). EIP-1967 slots; the admin may only call the admin functions, everyone
/// else is forwarded to the implementation by delegatecall.
///
/// The constructor does what OZ 4.5's constructor chain does, in its order: the ERC1967Proxy part sets the
/// implementation (Upgraded) and runs `_data` against it, then the transparent part sets the admin
/// (AdminChanged(0, admin)). So the initializer's logs come BETWEEN Upgraded and AdminChanged, and while the
/// initializer runs the admin slot is still empty.
contract TransparentProxy {
    /// @dev bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1)
    bytes32 internal constant IMPLEMENTATION_SLOT = 0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc;
    /// @dev bytes32(uint256(keccak256("eip1967.proxy.admin")) - 1)
    bytes32 internal constant ADMIN_SLOT = 0xb53127684a568b3173ae13b9f8a6016e243e63b6e8ee1178d6a717850b5d6103;

    event Upgraded(address indexed implementation);
    event AdminChanged(address previousAdmin, address newAdmin);
    /// @dev Part of OZ 4.5's ERC1967Upgrade ABI; a transparent proxy never emits it.
    event BeaconUpgraded(address indexed beacon);

    constructor(address _logic, address admin_, bytes memory _data) payable {
        _upgradeToAndCall(_logic, _data, false);
        _changeAdmin(admin_);
    }

    /// @dev The admin runs the function; anyone else is forwarded (so a token's own functions never clash).
    modifier ifAdmin() {
        if (msg.sender == _getAdmin()) {
            _;
        } else {
            _fallback();
        }
    }

    function admin() external ifAdmin returns (address admin_) {
        admin_ = _getAdmin();
    }

    function implementation() external ifAdmin returns (address implementation_) {
        implementation_ = _getImplementation();
    }

    function changeAdmin(address newAdmin) external ifAdmin {
        _changeAdmin(newAdmin);
    }

    function upgradeTo(address newImplementation) external ifAdmin {
        _upgradeToAndCall(newImplementation, bytes(""), false);
    }

    /// @dev As OZ 4.5, the call is forced: empty `data` still delegatecalls the new implementation.
    function upgradeToAndCall(address newImplementation, bytes calldata data) external payable ifAdmin {
        _upgradeToAndCall(newImplementation, data, true);
    }

    fallback() external payable {
        _fallback();
    }

    receive() external payable {
        _fallback();
    }

    function _fallback() internal {
        require(msg.sender != _getAdmin(), "TransparentUpgradeableProxy: admin cannot fallback to proxy target");
        address target = _getImplementation();
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            switch ok
            case 0 { revert(0, returndatasize()) }
            default { return(0, returndatasize()) }
        }
    }

    function _upgradeToAndCall(address newImplementation, bytes memory data, bool forceCall) internal {
        require(newImplementation.code.length > 0, "ERC1967: new implementation is not a contract");
        _store(IMPLEMENTATION_SLOT, newImplementation);
        emit Upgraded(newImplementation);
        if (data.length > 0 || forceCall) {
            (bool ok, bytes memory returned) = newImplementation.delegatecall(data);
            if (!ok) {
                if (returned.length > 0) {
                    assembly {
                        revert(add(returned, 32), mload(returned))
                    }
                }
                revert("Address: low-level delegate call failed");
            }
        }
    }

    function _changeAdmin(address newAdmin) internal {
        require(newAdmin != address(0), "ERC1967: new admin is the zero address");
        emit AdminChanged(_getAdmin(), newAdmin);
        _store(ADMIN_SLOT, newAdmin);
    }

    function _getAdmin() internal view returns (address value) {
        bytes32 slot = ADMIN_SLOT;
        assembly {
            value := sload(slot)
        }
    }

    function _getImplementation() internal view returns (address value) {
        bytes32 slot = IMPLEMENTATION_SLOT;
        assembly {
            value := sload(slot)
        }
    }

    function _store(bytes32 slot, address value) private {
        assembly {
            sstore(slot, value)
        }
    }
}

/// @title ProxyAdmin
/// @notice Imitation of OpenZeppelin 4.5's `ProxyAdmin`: the admin of the token proxies, owned by the
/// issuer; reads a proxy's implementation and admin by calling it as its admin, and upgrades it.
contract ProxyAdmin is Ownable45 {
    function getProxyImplementation(TransparentProxy proxy) public view returns (address) {
        (bool ok, bytes memory returned) = address(proxy).staticcall(hex"5c60da1b");
        require(ok);
        return abi.decode(returned, (address));
    }

    function getProxyAdmin(TransparentProxy proxy) public view returns (address) {
        (bool ok, bytes memory returned) = address(proxy).staticcall(hex"f851a440");
        require(ok);
        return abi.decode(returned, (address));
    }

    function changeProxyAdmin(TransparentProxy proxy, address newAdmin) public onlyOwner {
        proxy.changeAdmin(newAdmin);
    }

    function upgrade(TransparentProxy proxy, address implementation) public onlyOwner {
        proxy.upgradeTo(implementation);
    }

    function upgradeAndCall(TransparentProxy proxy, address implementation, bytes memory data)
        public
        payable
        onlyOwner
    {
        proxy.upgradeToAndCall{value: msg.value}(implementation, data);
    }
}
