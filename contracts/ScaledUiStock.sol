// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable45} from "./TransparentProxy.sol";

/// @title IssuerToken
/// @notice A raw-balance ERC-20 with the issuer functions tokenized securities share (ERC-3643 T-REX style):
/// the issuer (owner, standing in for T-REX's agent role) mints, burns and force-transfers, singly or in
/// batches. Balances never rescale. `_checkTransfer` (ordinary transfers only) and `_afterMove` (after every
/// Transfer log) are the hooks the concrete tokens use.
abstract contract IssuerToken is Ownable45 {
    string private _name;
    string private _symbol;
    uint8 private immutable _decimals;
    mapping(address => uint256) private _balances;
    mapping(address => mapping(address => uint256)) private _allowances;
    uint256 private _totalSupply;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        _name = name_;
        _symbol = symbol_;
        _decimals = decimals_;
    }

    function name() external view returns (string memory) {
        return _name;
    }

    function symbol() external view returns (string memory) {
        return _symbol;
    }

    function decimals() external view returns (uint8) {
        return _decimals;
    }

    function totalSupply() public view returns (uint256) {
        return _totalSupply;
    }

    function balanceOf(address account) public view returns (uint256) {
        return _balances[account];
    }

    function allowance(address owner_, address spender) external view returns (uint256) {
        return _allowances[owner_][spender];
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        require(spender != address(0), "ERC20: approve to the zero address");
        _allowances[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _checkTransfer(msg.sender, to);
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _checkTransfer(from, to);
        uint256 current = _allowances[from][msg.sender];
        if (current != type(uint256).max) {
            require(current >= amount, "ERC20: insufficient allowance");
            unchecked {
                _allowances[from][msg.sender] = current - amount;
            }
            emit Approval(from, msg.sender, current - amount);
        }
        _move(from, to, amount);
        return true;
    }

    // ----------------------------------------------------------------------------------- issuer functions

    function mint(address _to, uint256 _amount) public onlyOwner {
        require(_to != address(0), "ERC20: mint to the zero address");
        _totalSupply += _amount;
        _balances[_to] += _amount;
        emit Transfer(address(0), _to, _amount);
        _afterMove(address(0), _to, _amount);
    }

    function burn(address _userAddress, uint256 _amount) public onlyOwner {
        uint256 held = _balances[_userAddress];
        require(held >= _amount, "ERC20: burn amount exceeds balance");
        unchecked {
            _balances[_userAddress] = held - _amount;
            _totalSupply -= _amount;
        }
        emit Transfer(_userAddress, address(0), _amount);
        _afterMove(_userAddress, address(0), _amount);
    }

    function batchMint(address[] calldata _toList, uint256[] calldata _amounts) external onlyOwner {
        require(_toList.length == _amounts.length, "length mismatch");
        for (uint256 i = 0; i < _toList.length; ++i) {
            mint(_toList[i], _amounts[i]);
        }
    }

    /// @notice Issuer transfer between holders; bypasses pause and freezes, as T-REX's forced transfer.
    function forcedTransfer(address _from, address _to, uint256 _amount) public onlyOwner returns (bool) {
        _move(_from, _to, _amount);
        return true;
    }

    function batchForcedTransfer(address[] calldata _fromList, address[] calldata _toList, uint256[] calldata _amounts)
        external
        onlyOwner
    {
        require(_fromList.length == _toList.length && _toList.length == _amounts.length, "length mismatch");
        for (uint256 i = 0; i < _fromList.length; ++i) {
            forcedTransfer(_fromList[i], _toList[i], _amounts[i]);
        }
    }

    // ---------------------------------------------------------------------------------------- internals

    function _move(address from, address to, uint256 amount) internal {
        require(from != address(0), "ERC20: transfer from the zero address");
        require(to != address(0), "ERC20: transfer to the zero address");
        uint256 held = _balances[from];
        require(held >= amount, "ERC20: transfer amount exceeds balance");
        unchecked {
            _balances[from] = held - amount;
        }
        _balances[to] += amount;
        emit Transfer(from, to, amount);
        _afterMove(from, to, amount);
    }

    function _checkTransfer(address from, address to) internal view virtual {}

    function _afterMove(address from, address to, uint256 amount) internal virtual {}
}

/// @title ScaledUiStockCore
/// @notice ERC-8056 ("Scaled UI Amount") token as Robinhood's Stock Tokens expose it, on the IssuerToken
/// base, with the T-REX compliance surface (address freezes, token pause). Balances stay raw; the UI
/// multiplier only scales a displayed amount. A scheduled multiplier takes effect lazily at `effectiveAt`:
/// no log, no storage write; afterwards `newUIMultiplier()` stays equal to `uiMultiplier()` and
/// `effectiveAt()` keeps the past time. The event of a change is emitted when it is made or staged, by the
/// concrete contract (3-argument in ScaledUiStock, the early draft's 4-argument in ScaledUiStockDraft).
abstract contract ScaledUiStockCore is IssuerToken {
    uint256 internal constant ONE = 1e18;

    uint256 private _uiMultiplier = ONE;
    uint256 private _newUIMultiplier = ONE;
    uint256 private _effectiveAt;
    bool private _oraclePaused;
    bool private _tokenPaused;
    mapping(address => bool) private _frozen;

    event TransferWithScaledUI(address indexed from, address indexed to, uint256 value, uint256 uiValue);
    event AddressFrozen(address indexed userAddress, bool indexed isFrozen, address indexed owner);
    event Paused(address account);
    event Unpaused(address account);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) IssuerToken(name_, symbol_, decimals_) {}

    // ----------------------------------------------------------------------------------- ERC-8056 reads

    function uiMultiplier() public view returns (uint256) {
        return block.timestamp >= _effectiveAt ? _newUIMultiplier : _uiMultiplier;
    }

    function newUIMultiplier() external view returns (uint256) {
        return _newUIMultiplier;
    }

    function effectiveAt() external view returns (uint256) {
        return _effectiveAt;
    }

    function balanceOfUI(address account) external view returns (uint256) {
        return (balanceOf(account) * uiMultiplier()) / ONE;
    }

    function totalSupplyUI() external view returns (uint256) {
        return (totalSupply() * uiMultiplier()) / ONE;
    }

    /// @notice ERC-165, IScaledUIAmount (0xa60bf13d) and IScaledUIAmountNewUIMultiplier (0x4bd27648); not
    /// the Conversion extension (toUIAmount/fromUIAmount are absent).
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 || interfaceId == 0xa60bf13d || interfaceId == 0x4bd27648;
    }

    // ---------------------------------------------------------------------------------- multiplier admin

    /// @notice Immediate update: in force from this block; effectiveAt becomes now.
    function updateMultiplier(uint256 newMultiplier) external onlyOwner {
        require(newMultiplier > 0, "multiplier must be positive");
        uint256 old = uiMultiplier();
        _uiMultiplier = newMultiplier;
        _newUIMultiplier = newMultiplier;
        _effectiveAt = block.timestamp;
        _emitUIMultiplierUpdated(old, newMultiplier, block.timestamp);
    }

    /// @notice Scheduled update, in force from `effectiveAt_`. A value that already took effect is rolled
    /// into the current one first; a still-pending one is replaced.
    function updateMultiplier(uint256 newMultiplier, uint256 effectiveAt_) external onlyOwner {
        require(newMultiplier > 0, "multiplier must be positive");
        require(effectiveAt_ > block.timestamp, "effective time must be in the future");
        uint256 old = uiMultiplier();
        _uiMultiplier = old;
        _newUIMultiplier = newMultiplier;
        _effectiveAt = effectiveAt_;
        _emitUIMultiplierUpdated(old, newMultiplier, effectiveAt_);
    }

    /// @notice The corporate-action flag the Chainlink feed of the token honours (it freezes while set).
    function oraclePaused() external view returns (bool) {
        return _oraclePaused;
    }

    function pauseOracle() external onlyOwner {
        _oraclePaused = true;
    }

    function unpauseOracle() external onlyOwner {
        _oraclePaused = false;
    }

    // ---------------------------------------------------------------------------------- compliance (T-REX)

    function setAddressFrozen(address _userAddress, bool _freeze) external onlyOwner {
        _frozen[_userAddress] = _freeze;
        emit AddressFrozen(_userAddress, _freeze, msg.sender);
    }

    function isFrozen(address _userAddress) external view returns (bool) {
        return _frozen[_userAddress];
    }

    function paused() external view returns (bool) {
        return _tokenPaused;
    }

    function pause() external onlyOwner {
        require(!_tokenPaused, "Pausable: Paused");
        _tokenPaused = true;
        emit Paused(msg.sender);
    }

    function unpause() external onlyOwner {
        require(_tokenPaused, "Pausable: Not Paused");
        _tokenPaused = false;
        emit Unpaused(msg.sender);
    }

    function _checkTransfer(address from, address to) internal view override {
        require(!_tokenPaused, "Pausable: Paused");
        require(!_frozen[from] && !_frozen[to], "wallet is frozen");
    }

    function _afterMove(address from, address to, uint256 amount) internal override {
        emit TransferWithScaledUI(from, to, amount, (amount * uiMultiplier()) / ONE);
    }

    function _emitUIMultiplierUpdated(uint256 oldMultiplier, uint256 newMultiplier, uint256 effectiveAtTimestamp)
        internal
        virtual;
}

/// @title ScaledUiStock
/// @notice The token as Robinhood deploys it today: the current ERC-8056 3-argument UIMultiplierUpdated.
contract ScaledUiStock is ScaledUiStockCore {
    event UIMultiplierUpdated(uint256 oldMultiplier, uint256 newMultiplier, uint256 effectiveAtTimestamp);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ScaledUiStockCore(name_, symbol_, decimals_) {}

    function _emitUIMultiplierUpdated(uint256 oldMultiplier, uint256 newMultiplier, uint256 effectiveAtTimestamp)
        internal
        override
    {
        emit UIMultiplierUpdated(oldMultiplier, newMultiplier, effectiveAtTimestamp);
    }
}
