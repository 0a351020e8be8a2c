// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The one call a Backed token makes on its sanctions list (the Chainalysis oracle interface).
interface IXStockSanctionsList {
    function isSanctioned(address addr) external view returns (bool);
}

/// @title XStockBase
/// @notice Imitation of Backed Finance's `BackedAutoFeeTokenImplementation` (the xStocks token), written from
/// the behaviour described in docs/contracts.md, not from its source. It runs behind `TransparentProxy` and is
/// initialised through the proxy, as the real tokens are.
///
/// The token is a rebasing ERC-20: accounts hold shares and `balanceOf = shares * multiplier / 1e18` (floored).
/// The multiplier decays by `feePerPeriod` at every fee period boundary and can be replaced by the
/// multiplier updater, immediately or at an activation time before the next boundary. Nothing is written or
/// logged when a boundary or an activation time passes: the `updateMultiplier` fold of the next
/// state-changing call catches storage up and emits `MultiplierUpdated` with the value of that moment.
///
/// The external surface (names, selectors, return tuples, events with their indexed flags, revert strings)
/// and the storage layout (slot for slot, including the OpenZeppelin 4.5 upgradeable gaps) follow the real
/// contract, so an indexer reading events, calls or storage slots sees what it would see on mainnet.
/// `XStockV3` is the November 2025 code (activation time, no schedule events, no update history) and
/// `XStockV4` the current one (`multiplierUpdates`, `MultiplierScheduled`, `MultiplierScheduleOverridden`).
abstract contract XStockBase {
    // ------------------------------------------------------------------------------------------ storage
    // The layout mirrors the real proxy storage: Initializable (slot 0), ContextUpgradeable gap (1-50),
    // OwnableUpgradeable (51, gap 52-100), ERC20Upgradeable (101-105, gap 106-150), the permit base
    // (151-152, gap 153-202), BackedTokenImplementation (203-208, gap 209-257), then the auto-fee variables
    // (258-268). The share total sits at slot 264 exactly as on mainnet, where it has no getter.

    bool private _initialized; // slot 0, byte 0
    bool private _initializing; // slot 0, byte 1
    uint256[50] private __gapContext;
    address private _owner; // slot 51
    uint256[49] private __gapOwnable;
    /// @dev ERC20Upgradeable's `_balances` (slot 101). Unused by the share accounting, as on mainnet.
    mapping(address => uint256) private _unusedBalances;
    mapping(address => mapping(address => uint256)) private _allowances; // slot 102
    /// @dev ERC20Upgradeable's `_totalSupply` (slot 103). Unused, as on mainnet.
    uint256 private _unusedTotalSupply;
    string private _name; // slot 104
    string private _symbol; // slot 105
    uint256[45] private __gapErc20;
    mapping(address => uint256) public nonces; // slot 151
    // solhint-disable-next-line var-name-mixedcase
    bytes32 public DOMAIN_SEPARATOR; // slot 152, built once by the initializer
    uint256[50] private __gapPermit;
    address public minter; // slot 203
    address public burner; // slot 204
    address public pauser; // slot 205, bytes 0-19
    bool public delegateMode; // slot 205, byte 20
    mapping(address => bool) public delegateWhitelist; // slot 206
    bool public isPaused; // slot 207, byte 0
    address public sanctionsList; // slot 207, bytes 1-20
    string public terms; // slot 208
    uint256[49] private __gapBacked;
    address public multiplierUpdater; // slot 258
    uint256 public lastTimeFeeApplied; // slot 259
    uint256 public feePerPeriod; // slot 260, 1e18 = 100 % per period
    uint256 public periodLength; // slot 261, seconds
    uint256 public lastMultiplier; // slot 262, 1e18 = one token per share
    mapping(address => uint256) private _shares; // slot 263
    uint256 internal _totalShares; // slot 264
    uint256 public lastMultiplierNonce; // slot 265
    uint256 public newMultiplierNonce; // slot 266
    uint256 public newMultiplier; // slot 267
    uint256 public newMultiplierActivationTime; // slot 268

    // ---------------------------------------------------------------------------------------- constants

    string public constant VERSION = "1.1.0";

    bytes32 public constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    bytes32 public constant DELEGATED_TRANSFER_TYPEHASH =
        keccak256("DELEGATED_TRANSFER(address owner,address to,uint256 value,uint256 nonce,uint256 deadline)");
    bytes32 public constant DELEGATED_TRANSFER_SHARES_TYPEHASH =
        keccak256("DELEGATED_TRANSFER_SHARES(address owner,address to,uint256 value,uint256 nonce,uint256 deadline)");

    string internal constant DEFAULT_TERMS = "https://www.backedassets.fi/legal-documentation";
    uint256 internal constant ONE = 1e18;
    uint256 private constant SECP256K1_HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // ------------------------------------------------------------------------------------------- events

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event NewMinter(address indexed newMinter);
    event NewBurner(address indexed newBurner);
    event NewPauser(address indexed newPauser);
    event NewSanctionsList(address indexed newSanctionsList);
    event DelegateWhitelistChange(address indexed whitelistAddress, bool status);
    event DelegateModeChange(bool delegateMode);
    event PauseModeChange(bool pauseMode);
    event NewTerms(string newTerms);
    event NewMultiplierUpdater(address indexed newMultiplierUpdater);
    event TransferShares(address indexed from, address indexed to, uint256 value);
    event MultiplierUpdated(uint256 value);

    // ---------------------------------------------------------------------------------------- modifiers

    /// @dev OpenZeppelin 4.5's one-shot initializer: a bool pair, no `Initialized` event, no reinitializer.
    modifier initializer() {
        require(
            _initializing ? address(this).code.length == 0 : !_initialized,
            "Initializable: contract is already initialized"
        );
        bool topLevel = !_initializing;
        if (topLevel) {
            _initializing = true;
            _initialized = true;
        }
        _;
        if (topLevel) {
            _initializing = false;
        }
    }

    modifier onlyOwner() {
        require(_owner == msg.sender, "Ownable: caller is not the owner");
        _;
    }

    /// @dev The relayer (msg.sender), not the signer, must be allowed.
    modifier allowedDelegate() {
        require(delegateMode || delegateWhitelist[msg.sender], "BackedToken: Unauthorized delegate");
        _;
    }

    /// @dev The lazy fold: catches storage up with the fee periods passed and an activated schedule.
    modifier updateMultiplier() {
        _fold();
        _;
    }

    /// @dev Locks the implementation as the real constructor does: it runs the two-argument initializer
    /// (name "Backed Token Implementation", symbol "BTI", owner = deployer, logging OwnershipTransferred and
    /// NewTerms from the implementation address) and then sets lastTimeFeeApplied to 1, so every
    /// initializer reverts on the implementation itself.
    constructor() {
        initialize("Backed Token Implementation", "BTI");
        lastTimeFeeApplied = 1;
    }

    // ------------------------------------------------------------------------------------- initializers

    function initialize(string memory name_, string memory symbol_) public virtual {
        _initializeToken(name_, symbol_);
        _initializeAutoFee(24 * 3600, block.timestamp, 0);
    }

    /// @notice The initializer the factory calls through the proxy constructor (selector 0x7544e6b3).
    function initialize(
        string memory name_,
        string memory symbol_,
        uint256 _periodLength,
        uint256 _lastTimeFeeApplied,
        uint256 _feePerPeriod
    ) external virtual {
        _initializeToken(name_, symbol_);
        _initializeAutoFee(_periodLength, _lastTimeFeeApplied, _feePerPeriod);
    }

    /// @notice Upgrade path from the non-rebasing base token. No access control, as on mainnet.
    function initialize_v2(uint256 _periodLength, uint256 _lastTimeFeeApplied, uint256 _feePerPeriod)
        external
        virtual
    {
        _initializeAutoFee(_periodLength, _lastTimeFeeApplied, _feePerPeriod);
    }

    /// @notice Upgrade path from the pre-activation-time code. No access control, no event.
    function initialize_v3() external virtual {
        require(newMultiplier == 0, "BackedAutoFeeTokenImplementation v3 already initialized");
        newMultiplier = lastMultiplier;
        newMultiplierNonce = lastMultiplierNonce;
        newMultiplierActivationTime = 0;
    }

    function _initializeToken(string memory name_, string memory symbol_) internal initializer {
        _name = name_;
        _symbol = symbol_;
        _transferOwnership(msg.sender);
        DOMAIN_SEPARATOR = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256(bytes(name_)),
                keccak256(bytes("1")),
                block.chainid,
                address(this)
            )
        );
        _setTerms(DEFAULT_TERMS);
    }

    /// @dev Sets the fee clock and the multiplier state. Emits nothing.
    function _initializeAutoFee(uint256 _periodLength, uint256 _lastTimeFeeApplied, uint256 _feePerPeriod)
        internal
        virtual
    {
        require(lastTimeFeeApplied == 0, "BackedAutoFeeTokenImplementation already initialized");
        require(_lastTimeFeeApplied != 0, "Invalid last time fee applied");
        lastMultiplier = ONE;
        lastMultiplierNonce = 0;
        newMultiplier = ONE;
        newMultiplierNonce = 0;
        newMultiplierActivationTime = 0;
        periodLength = _periodLength;
        lastTimeFeeApplied = _lastTimeFeeApplied;
        feePerPeriod = _feePerPeriod;
        _afterAutoFeeInitialized();
    }

    // --------------------------------------------------------------------------------- version hooks

    /// @dev Called once the auto-fee state is initialised (V4 records its genesis history entry).
    function _afterAutoFeeInitialized() internal virtual {}

    /// @dev Called when an explicit update is scheduled for a future time (V4 emits MultiplierScheduled).
    function _afterScheduled(uint256 scheduledMultiplier, uint256 activationTime) internal virtual {}

    /// @dev Called after every explicit update (V4 records it in multiplierUpdates).
    function _afterExplicitUpdate(uint256 previousMultiplier, uint256 updatedMultiplier, uint256 activationTime)
        internal
        virtual
    {}

    // ---------------------------------------------------------------------------------------- ERC-20 views

    function name() public view returns (string memory) {
        return _name;
    }

    function symbol() public view returns (string memory) {
        return _symbol;
    }

    /// @notice Always 18. (`pure` here; the real ABI says `view`, which changes no selector or result.)
    function decimals() public pure returns (uint8) {
        return 18;
    }

    function totalSupply() public view returns (uint256) {
        (uint256 m,,) = getCurrentMultiplier();
        return (_totalShares * m) / ONE;
    }

    function balanceOf(address account) public view returns (uint256) {
        (uint256 m,,) = getCurrentMultiplier();
        return (_shares[account] * m) / ONE;
    }

    function allowance(address owner_, address spender) public view returns (uint256) {
        return _allowances[owner_][spender];
    }

    function owner() public view returns (address) {
        return _owner;
    }

    // -------------------------------------------------------------------------------- multiplier views

    /// @notice The live multiplier. While a schedule is pending the last value, flat and without fee;
    /// otherwise the scheduled (or last) value decayed once per whole period since lastTimeFeeApplied,
    /// floored at every step. The nonce advances by the periods only when a fee is charged.
    function getCurrentMultiplier()
        public
        view
        virtual
        returns (uint256 currentMultiplier, uint256 periodsPassed, uint256 currentMultiplierNonce)
    {
        if (block.timestamp < newMultiplierActivationTime) {
            return (lastMultiplier, 0, lastMultiplierNonce);
        }
        periodsPassed = (block.timestamp - lastTimeFeeApplied) / periodLength;
        currentMultiplier = newMultiplier;
        currentMultiplierNonce = newMultiplierNonce;
        uint256 fee = feePerPeriod;
        if (fee > 0) {
            for (uint256 i = 0; i < periodsPassed; ++i) {
                currentMultiplier = (currentMultiplier * (ONE - fee)) / ONE;
            }
            currentMultiplierNonce += periodsPassed;
        }
    }

    /// @notice The stored multiplier in force, WITHOUT the fee accrued since lastTimeFeeApplied.
    function multiplier() external view returns (uint256) {
        return block.timestamp >= newMultiplierActivationTime ? newMultiplier : lastMultiplier;
    }

    /// @notice The stored nonce in force, WITHOUT the periods accrued since lastTimeFeeApplied.
    function multiplierNonce() external view returns (uint256) {
        return block.timestamp >= newMultiplierActivationTime ? newMultiplierNonce : lastMultiplierNonce;
    }

    function sharesOf(address account) public view returns (uint256) {
        return _shares[account];
    }

    function getSharesByUnderlyingAmount(uint256 _underlyingAmount) external view returns (uint256) {
        (uint256 m,,) = getCurrentMultiplier();
        return (_underlyingAmount * ONE) / m;
    }

    function getUnderlyingAmountByShares(uint256 _sharesAmount) external view returns (uint256) {
        (uint256 m,,) = getCurrentMultiplier();
        return (_sharesAmount * m) / ONE;
    }

    // ------------------------------------------------------------------------------------ ERC-20 writes

    function transfer(address to, uint256 amount) external returns (bool) {
        _transferAmount(msg.sender, to, amount);
        return true;
    }

    /// @dev Allowance first (Approval logged before the fold), then the transfer, as OZ 4.5 orders it.
    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _spendAllowance(from, msg.sender, amount);
        _transferAmount(from, to, amount);
        return true;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        _approve(msg.sender, spender, amount);
        return true;
    }

    function increaseAllowance(address spender, uint256 addedValue) external returns (bool) {
        _approve(msg.sender, spender, _allowances[msg.sender][spender] + addedValue);
        return true;
    }

    function decreaseAllowance(address spender, uint256 subtractedValue) external returns (bool) {
        uint256 current = _allowances[msg.sender][spender];
        require(current >= subtractedValue, "ERC20: decreased allowance below zero");
        unchecked {
            _approve(msg.sender, spender, current - subtractedValue);
        }
        return true;
    }

    function transferShares(address to, uint256 sharesAmount) external updateMultiplier returns (bool) {
        _transferSharesValued(msg.sender, to, sharesAmount);
        return true;
    }

    /// @dev Fold, then the allowance (in token units, at the folded multiplier), then the move.
    function transferSharesFrom(address from, address to, uint256 sharesAmount)
        external
        updateMultiplier
        returns (bool)
    {
        uint256 amount = (sharesAmount * lastMultiplier) / ONE;
        _spendAllowance(from, msg.sender, amount);
        _moveShares(from, to, sharesAmount, amount);
        return true;
    }

    // ------------------------------------------------------------------------------ mint, burn, pause

    /// @notice Minter only, to any account; no sanctions check.
    function mint(address account, uint256 amount) external {
        require(msg.sender == minter, "BackedToken: Only minter");
        require(account != address(0), "ERC20: mint to the zero address");
        _beforeTokenTransfer(address(0), account);
        (uint256 m,,) = getCurrentMultiplier();
        uint256 shares = (amount * ONE) / m;
        _totalShares += shares;
        _shares[account] += shares;
        emit Transfer(address(0), account, amount);
        emit TransferShares(address(0), account, shares);
    }

    /// @notice Burner only, and only from the burner's own balance or the token contract's.
    function burn(address account, uint256 amount) external {
        require(msg.sender == burner, "BackedToken: Only burner");
        require(account == msg.sender || account == address(this), "BackedToken: Cannot burn account");
        require(account != address(0), "ERC20: burn from the zero address");
        _beforeTokenTransfer(account, address(0));
        (uint256 m,,) = getCurrentMultiplier();
        uint256 shares = (amount * ONE) / m;
        uint256 held = _shares[account];
        require(held >= shares, "ERC20: burn amount exceeds balance");
        unchecked {
            _shares[account] = held - shares;
        }
        _totalShares -= shares;
        emit Transfer(account, address(0), amount);
        emit TransferShares(account, address(0), shares);
    }

    /// @notice Pauser only; logs PauseModeChange even when the mode does not change.
    function setPause(bool newPauseMode) external {
        require(msg.sender == pauser, "BackedToken: Only pauser");
        isPaused = newPauseMode;
        emit PauseModeChange(newPauseMode);
    }

    // ------------------------------------------------------------------------------------- owner setters

    function setMinter(address newMinter) external onlyOwner {
        minter = newMinter;
        emit NewMinter(newMinter);
    }

    function setBurner(address newBurner) external onlyOwner {
        burner = newBurner;
        emit NewBurner(newBurner);
    }

    function setPauser(address newPauser) external onlyOwner {
        pauser = newPauser;
        emit NewPauser(newPauser);
    }

    function setMultiplierUpdater(address newMultiplierUpdater) external onlyOwner {
        multiplierUpdater = newMultiplierUpdater;
        emit NewMultiplierUpdater(newMultiplierUpdater);
    }

    /// @notice The candidate must answer isSanctioned(token) with false (a call to a non-contract reverts).
    function setSanctionsList(address newSanctionsList) external onlyOwner {
        require(
            !IXStockSanctionsList(newSanctionsList).isSanctioned(address(this)),
            "BackedToken: Wrong List interface"
        );
        sanctionsList = newSanctionsList;
        emit NewSanctionsList(newSanctionsList);
    }

    function setDelegateWhitelist(address whitelistAddress, bool status) external onlyOwner {
        delegateWhitelist[whitelistAddress] = status;
        emit DelegateWhitelistChange(whitelistAddress, status);
    }

    function setDelegateMode(bool _delegateMode) external onlyOwner {
        delegateMode = _delegateMode;
        emit DelegateModeChange(_delegateMode);
    }

    function setTerms(string memory newTerms) external onlyOwner {
        _setTerms(newTerms);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "Ownable: new owner is the zero address");
        _transferOwnership(newOwner);
    }

    function renounceOwnership() external onlyOwner {
        _transferOwnership(address(0));
    }

    // ----------------------------------------------------------------------- fee parameters (no events)

    function updateFeePerPeriod(uint256 newFeePerPeriod) external onlyOwner updateMultiplier {
        require(newMultiplierActivationTime == 0, "Multiplier activation in progress");
        feePerPeriod = newFeePerPeriod;
    }

    function setLastTimeFeeApplied(uint256 newLastTimeFeeApplied) external onlyOwner updateMultiplier {
        require(newMultiplierActivationTime == 0, "Multiplier activation in progress");
        require(newLastTimeFeeApplied != 0, "Invalid last time fee applied");
        lastTimeFeeApplied = newLastTimeFeeApplied;
    }

    function setPeriodLength(uint256 newPeriodLength) external onlyOwner updateMultiplier {
        require(newMultiplierActivationTime == 0, "Multiplier activation in progress");
        periodLength = newPeriodLength;
    }

    // ------------------------------------------------------------------------------- explicit updates

    /// @notice Multiplier updater only. `oldMultiplier` must equal the live (fee-decayed) multiplier after the
    /// fold. The nonce becomes lastMultiplierNonce + 1. An activation time in the future schedules the value
    /// (it must come before the next fee boundary); 0 or a past time applies it at once.
    function updateMultiplierValue(
        uint256 pendingNewMultiplier,
        uint256 oldMultiplier,
        uint256 pendingNewMultiplierActivationTime
    ) public {
        _beginExplicitUpdate(oldMultiplier);
        _updateMultiplier(pendingNewMultiplier, lastMultiplierNonce + 1, pendingNewMultiplierActivationTime);
        _afterExplicitUpdate(oldMultiplier, pendingNewMultiplier, pendingNewMultiplierActivationTime);
    }

    /// @notice As updateMultiplierValue with an explicit nonce, which must exceed the live nonce.
    function updateMultiplierWithNonce(
        uint256 newMultiplier_,
        uint256 oldMultiplier,
        uint256 newMultiplierNonce_,
        uint256 pendingNewMultiplierActivationTime
    ) external {
        _beginExplicitUpdate(oldMultiplier);
        (,, uint256 currentNonce) = getCurrentMultiplier();
        require(currentNonce < newMultiplierNonce_, "BackedToken: Multiplier nonce is outdated.");
        _updateMultiplier(newMultiplier_, newMultiplierNonce_, pendingNewMultiplierActivationTime);
        _afterExplicitUpdate(oldMultiplier, newMultiplier_, pendingNewMultiplierActivationTime);
    }

    /// @dev The modifier chain of both explicit updates: updater check, fold, then the old-value check.
    function _beginExplicitUpdate(uint256 oldMultiplier) private {
        require(msg.sender == multiplierUpdater, "BackedToken: Only multiplier updater");
        _fold();
        (uint256 current,,) = getCurrentMultiplier();
        require(current == oldMultiplier, "BackedToken: Multiplier changed in the meantime");
    }

    // ------------------------------------------------------------------------------------- delegation

    function permit(address owner_, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        allowedDelegate
    {
        require(block.timestamp <= deadline, "ERC20Permit: expired deadline");
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner_, spender, value, _useNonce(owner_), deadline));
        _checkSigner(owner_, structHash, v, r, s);
        _approve(owner_, spender, value);
    }

    /// @notice `value` is in token units.
    function delegatedTransfer(address owner_, address to, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        allowedDelegate
    {
        require(block.timestamp <= deadline, "ERC20Permit: expired deadline");
        bytes32 structHash =
            keccak256(abi.encode(DELEGATED_TRANSFER_TYPEHASH, owner_, to, value, _useNonce(owner_), deadline));
        _checkSigner(owner_, structHash, v, r, s);
        _transferAmount(owner_, to, value);
    }

    /// @notice `value` is in shares.
    function delegatedTransferShares(
        address owner_,
        address to,
        uint256 value,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external allowedDelegate updateMultiplier {
        require(block.timestamp <= deadline, "ERC20Permit: expired deadline");
        bytes32 structHash =
            keccak256(abi.encode(DELEGATED_TRANSFER_SHARES_TYPEHASH, owner_, to, value, _useNonce(owner_), deadline));
        _checkSigner(owner_, structHash, v, r, s);
        _transferSharesValued(owner_, to, value);
    }

    // --------------------------------------------------------------------------------------- internals

    function _fold() internal {
        (uint256 current, uint256 periods, uint256 currentNonce) = getCurrentMultiplier();
        lastTimeFeeApplied = lastTimeFeeApplied + periodLength * periods;
        if (lastMultiplier != current) {
            _updateMultiplier(current, currentNonce, 0);
        }
    }

    function _updateMultiplier(uint256 value, uint256 nonce, uint256 activationTime) internal {
        require(value != 0, "BackedToken: Multiplier cannot be zero");
        require(
            activationTime < lastTimeFeeApplied + periodLength,
            "BackedToken: Activation time needs to be before next period"
        );
        newMultiplier = value;
        newMultiplierNonce = nonce;
        if (activationTime > block.timestamp) {
            newMultiplierActivationTime = activationTime;
            _afterScheduled(value, activationTime);
        } else {
            newMultiplierActivationTime = 0;
            lastMultiplier = value;
            lastMultiplierNonce = nonce;
            emit MultiplierUpdated(value);
        }
    }

    /// @dev Amount-based move: shares = floor(amount * 1e18 / m); the events carry the requested amount.
    function _transferAmount(address from, address to, uint256 amount) internal {
        (uint256 m,,) = getCurrentMultiplier();
        _moveShares(from, to, (amount * ONE) / m, amount);
    }

    /// @dev Share-based move: the Transfer value is floor(shares * m / 1e18).
    function _transferSharesValued(address from, address to, uint256 sharesAmount) internal {
        (uint256 m,,) = getCurrentMultiplier();
        _moveShares(from, to, sharesAmount, (sharesAmount * m) / ONE);
    }

    function _moveShares(address from, address to, uint256 sharesAmount, uint256 tokenAmount) internal {
        require(from != address(0), "ERC20: transfer from the zero address");
        require(to != address(0), "ERC20: transfer to the zero address");
        _beforeTokenTransfer(from, to);
        uint256 held = _shares[from];
        require(held >= sharesAmount, "ERC20: transfer amount exceeds balance");
        unchecked {
            _shares[from] = held - sharesAmount;
        }
        _shares[to] += sharesAmount;
        emit Transfer(from, to, tokenAmount);
        emit TransferShares(from, to, sharesAmount);
    }

    /// @dev Fold first, then pause, then sanctions on both parties of a transfer (not on mint or burn).
    function _beforeTokenTransfer(address from, address to) internal {
        _fold();
        require(!isPaused, "BackedToken: token transfer while paused");
        if (from != address(0) && to != address(0)) {
            require(!IXStockSanctionsList(sanctionsList).isSanctioned(from), "BackedToken: sender is sanctioned");
            require(!IXStockSanctionsList(sanctionsList).isSanctioned(to), "BackedToken: receiver is sanctioned");
        }
    }

    function _spendAllowance(address owner_, address spender, uint256 amount) internal {
        require(!IXStockSanctionsList(sanctionsList).isSanctioned(spender), "BackedToken: spender is sanctioned");
        uint256 current = _allowances[owner_][spender];
        if (current != type(uint256).max) {
            require(current >= amount, "ERC20: insufficient allowance");
            unchecked {
                _approve(owner_, spender, current - amount);
            }
        }
    }

    function _approve(address owner_, address spender, uint256 amount) internal {
        require(owner_ != address(0), "ERC20: approve from the zero address");
        require(spender != address(0), "ERC20: approve to the zero address");
        _allowances[owner_][spender] = amount;
        emit Approval(owner_, spender, amount);
    }

    function _transferOwnership(address newOwner) internal {
        address previous = _owner;
        _owner = newOwner;
        emit OwnershipTransferred(previous, newOwner);
    }

    function _setTerms(string memory newTerms) internal {
        terms = newTerms;
        emit NewTerms(newTerms);
    }

    function _useNonce(address owner_) internal returns (uint256 current) {
        current = nonces[owner_];
        nonces[owner_] = current + 1;
    }

    /// @dev EIP-712 digest against the stored domain separator, recovered with ecrecover under the
    /// malleability rules of OpenZeppelin 4.5's ECDSA (low s, v of 27 or 28), with its revert strings.
    function _checkSigner(address owner_, bytes32 structHash, uint8 v, bytes32 r, bytes32 s) internal view {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR, structHash));
        require(uint256(s) <= SECP256K1_HALF_ORDER, "ECDSA: invalid signature 's' value");
        require(v == 27 || v == 28, "ECDSA: invalid signature 'v' value");
        address signer = ecrecover(digest, v, r, s);
        require(signer != address(0), "ECDSA: invalid signature");
        require(signer == owner_, "ERC20Permit: invalid signature");
    }
}

/// @title XStockV3
/// @notice The auto-fee token as of Backed's tag `activation-time` (commit 040534a, 2025-11-11): activation
/// times and nonces, `initialize_v3`, exact share transfers. Scheduling an update logs NOTHING, and there is
/// no `multiplierUpdates` history.
contract XStockV3 is XStockBase {}

/// @title XStockV4
/// @notice The auto-fee token as of Backed's `main` / tag `multiplier-history` (commit 35859e8, 2026-06-25):
/// everything in V3 plus the history of explicit updates (`multiplierUpdates`, genesis entry {1e18, 1e18, 0}),
/// `initialize_v4`, `MultiplierScheduled` and `MultiplierScheduleOverridden`. A new explicit update while
/// the last history entry is still pending overwrites that entry in place.
contract XStockV4 is XStockBase {
    struct MultiplierUpdate {
        uint256 previousMultiplier;
        uint256 newMultiplier;
        uint256 activationTime;
    }

    MultiplierUpdate[] public multiplierUpdates; // slot 269

    event MultiplierScheduled(uint256 newMultiplier, uint256 activationTime);
    event MultiplierScheduleOverridden(
        uint256 overriddenMultiplier,
        uint256 overriddenActivationTime,
        uint256 newMultiplier,
        uint256 newActivationTime
    );

    function multiplierUpdatesLength() external view returns (uint256) {
        return multiplierUpdates.length;
    }

    /// @notice Upgrade path from V3: pushes the genesis entry, then backfills `_pastMultipliersUpdates`.
    /// No access control and no events (the upgrade runs it atomically through ProxyAdmin.upgradeAndCall).
    function initialize_v4(MultiplierUpdate[] calldata _pastMultipliersUpdates) external {
        require(multiplierUpdates.length == 0, "BackedAutoFeeTokenImplementation v4 already initialized");
        multiplierUpdates.push(MultiplierUpdate(ONE, ONE, 0));
        for (uint256 i = 0; i < _pastMultipliersUpdates.length; ++i) {
            require(
                _pastMultipliersUpdates[i].previousMultiplier > 0,
                "BackedAutoFeeTokenImplementation: previousMultiplier cannot be zero"
            );
            multiplierUpdates.push(_pastMultipliersUpdates[i]);
        }
    }

    function _afterAutoFeeInitialized() internal override {
        multiplierUpdates.push(MultiplierUpdate(ONE, ONE, 0));
    }

    function _afterScheduled(uint256 scheduledMultiplier, uint256 activationTime) internal override {
        emit MultiplierScheduled(scheduledMultiplier, activationTime);
    }

    /// @dev Records {old argument, new value, max(activation, now)}; a still-pending last entry is
    /// overwritten in place (length unchanged) and MultiplierScheduleOverridden logged after the new
    /// MultiplierScheduled/MultiplierUpdated. An empty array (upgraded, not yet migrated) appends.
    function _afterExplicitUpdate(uint256 previousMultiplier, uint256 updatedMultiplier, uint256 activationTime)
        internal
        override
    {
        MultiplierUpdate memory entry = MultiplierUpdate(
            previousMultiplier, updatedMultiplier, activationTime > block.timestamp ? activationTime : block.timestamp
        );
        uint256 count = multiplierUpdates.length;
        if (count > 0 && multiplierUpdates[count - 1].activationTime > block.timestamp) {
            MultiplierUpdate memory replaced = multiplierUpdates[count - 1];
            multiplierUpdates[count - 1] = entry;
            emit MultiplierScheduleOverridden(
                replaced.newMultiplier, replaced.activationTime, entry.newMultiplier, entry.activationTime
            );
        } else {
            multiplierUpdates.push(entry);
        }
    }
}
