// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IssuedToken} from "./IssuedToken.sol";
import {StockToken} from "./StockToken.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ISanctionsList} from "./SanctionsList.sol";

/// @title RebasingSharesStock
/// @notice Tokenized share that stores holdings as shares and reports balances as
/// `shares * multiplier / 1e18` (modelled on Backed Finance xStocks, BackedAutoFeeTokenImplementation).
/// The multiplier moves for two reasons, neither of which emits an event when it happens:
///  - a management fee: every elapsed `periodLength` removes `feePerPeriod` (18-decimal fraction) of it;
///  - a corporate action: the issuer schedules an absolute multiplier that replaces the base at a given time.
/// @dev Balances therefore change with time alone. Storage is brought up to date lazily by `_applyMultiplier`
/// at the start of every state-changing call, and `getCurrentMultiplier` computes the same value without
/// writing, so readers see identical figures whether or not a fold has happened yet.
contract RebasingSharesStock is StockToken, Pausable {
    uint256 private constant ONE = 1e18;

    mapping(address => uint256) public sharesOf;
    uint256 public totalShares;

    /// @notice Stored base multiplier; the value in force is `getCurrentMultiplier()`.
    uint256 public multiplier = ONE;
    /// @notice Start of the current fee period. Advanced by whole periods so period boundaries stay fixed.
    uint256 public lastTimeFeeApplied;
    uint256 public feePerPeriod;
    uint256 public periodLength;
    /// @notice Pending corporate action. `newMultiplier` keeps its last value after activation; only
    /// `newMultiplierActivationTime` is reset to 0, which means "nothing pending".
    uint256 public newMultiplier;
    uint256 public newMultiplierActivationTime;
    /// @notice Counts multiplier steps (one per fee period, one per activated corporate action).
    uint256 public multiplierNonce;

    /// @notice Chainalysis-compatible oracle; address(0) disables screening.
    address public sanctionsList;

    event TransferShares(address indexed from, address indexed to, uint256 value);
    event MultiplierScheduled(uint256 newMultiplier, uint256 activationTime);
    event FeePerPeriodUpdated(uint256 value);
    event PeriodLengthUpdated(uint256 value);
    event NewSanctionsList(address newSanctionsList);

    error AddressSanctioned(address account);
    error InsufficientShares(address account, uint256 shares, uint256 needed);
    error InvalidMultiplier();
    error InvalidFee(uint256 fee);
    error ActivationTimeNotInFuture(uint256 activationTime, uint256 nowTimestamp);
    error MultiplierAlreadyScheduled(uint256 activationTime);

    constructor(
        string memory name,
        string memory symbol,
        uint8 decimals_,
        string memory ticker_,
        string memory isin_,
        address issuer,
        address sanctionsList_,
        uint256 feePerPeriod_,
        uint256 periodLength_
    ) ERC20(name, symbol) Ownable(issuer) IssuedToken(decimals_) StockToken(ticker_, isin_) {
        if (feePerPeriod_ >= ONE) revert InvalidFee(feePerPeriod_);
        sanctionsList = sanctionsList_;
        feePerPeriod = feePerPeriod_;
        periodLength = periodLength_;
        lastTimeFeeApplied = block.timestamp;
    }

    // ------------------------------------------------------------------ multiplier

    /// @notice Multiplier in force at the current block, the number of fee periods not yet folded into
    /// storage, and the nonce storage will hold once they are.
    /// @dev Off-chain code reproduces this rule exactly; change it only together with the indexer.
    function getCurrentMultiplier()
        public
        view
        returns (uint256 newMultiplier_, uint256 periodsPassed, uint256 newMultiplierNonce)
    {
        newMultiplier_ = multiplier;
        uint256 last = lastTimeFeeApplied;
        newMultiplierNonce = multiplierNonce;

        uint256 activation = newMultiplierActivationTime;
        if (activation != 0 && block.timestamp >= activation) {
            // A corporate action sets an absolute value, so fees accrued before it are superseded and the
            // fee clock restarts at the activation time.
            newMultiplier_ = newMultiplier;
            last = activation;
            newMultiplierNonce += 1;
        }

        uint256 fee = feePerPeriod;
        uint256 len = periodLength;
        if (len > 0 && fee > 0) {
            periodsPassed = (block.timestamp - last) / len;
            // Iterated with rounding down at every step, as Backed does, rather than a closed-form power.
            for (uint256 i = 0; i < periodsPassed; ++i) {
                newMultiplier_ = newMultiplier_ * (ONE - fee) / ONE;
            }
            newMultiplierNonce += periodsPassed;
        }
    }

    function scheduleMultiplier(uint256 newMultiplier_, uint256 activationTime) external onlyOwner {
        _applyMultiplier();
        if (newMultiplierActivationTime != 0) revert MultiplierAlreadyScheduled(newMultiplierActivationTime);
        if (newMultiplier_ == 0) revert InvalidMultiplier();
        if (activationTime <= block.timestamp) revert ActivationTimeNotInFuture(activationTime, block.timestamp);
        newMultiplier = newMultiplier_;
        newMultiplierActivationTime = activationTime;
        emit MultiplierScheduled(newMultiplier_, activationTime);
    }

    function updateFeePerPeriod(uint256 fee) external onlyOwner {
        if (fee >= ONE) revert InvalidFee(fee);
        _applyMultiplier();
        _restartFeeClockIfIdle();
        feePerPeriod = fee;
        emit FeePerPeriodUpdated(fee);
    }

    function updatePeriodLength(uint256 len) external onlyOwner {
        _applyMultiplier();
        _restartFeeClockIfIdle();
        periodLength = len;
        emit PeriodLengthUpdated(len);
    }

    function getSharesByUnderlyingAmount(uint256 amount) public view returns (uint256) {
        (uint256 m,,) = getCurrentMultiplier();
        return Math.mulDiv(amount, ONE, m);
    }

    function getUnderlyingAmountByShares(uint256 shares) public view returns (uint256) {
        (uint256 m,,) = getCurrentMultiplier();
        return Math.mulDiv(shares, m, ONE);
    }

    /// @dev Writes what `getCurrentMultiplier` computes and returns the multiplier now in force. Period
    /// boundaries advance by whole periods (not to block.timestamp), so the multiplier and the fee clock never
    /// depend on when folding happens. `multiplierNonce` does across an activation: periods folded before it
    /// are counted, periods that were still unfolded when the absolute value replaced the base are not.
    function _applyMultiplier() internal returns (uint256 m) {
        m = multiplier;
        uint256 activation = newMultiplierActivationTime;
        if (activation != 0 && block.timestamp >= activation) {
            m = newMultiplier;
            multiplier = m;
            lastTimeFeeApplied = activation;
            newMultiplierActivationTime = 0;
            multiplierNonce += 1;
        }

        uint256 fee = feePerPeriod;
        uint256 len = periodLength;
        if (len > 0 && fee > 0) {
            uint256 last = lastTimeFeeApplied;
            uint256 periods = (block.timestamp - last) / len;
            if (periods > 0) {
                for (uint256 i = 0; i < periods; ++i) {
                    m = m * (ONE - fee) / ONE;
                }
                multiplier = m;
                lastTimeFeeApplied = last + periods * len;
                multiplierNonce += periods;
            }
        }
    }

    /// @dev While the fee is off, periods are not counted and `lastTimeFeeApplied` stands still. Without a
    /// restart, switching the fee on would charge it retroactively for the whole idle stretch.
    function _restartFeeClockIfIdle() private {
        if (feePerPeriod == 0 || periodLength == 0) {
            lastTimeFeeApplied = block.timestamp;
        }
    }

    // ------------------------------------------------------------------ ERC-20 views in balance units

    function balanceOf(address account) public view override returns (uint256) {
        return getUnderlyingAmountByShares(sharesOf[account]);
    }

    function totalSupply() public view override returns (uint256) {
        return getUnderlyingAmountByShares(totalShares);
    }

    // ------------------------------------------------------------------ transfers

    /// @notice Move an exact number of shares; the Transfer event carries their current balance value.
    function transferShares(address to, uint256 shares) external returns (bool) {
        if (to == address(0)) revert ERC20InvalidReceiver(address(0));
        uint256 m = _applyMultiplier();
        _moveShares(msg.sender, to, shares, Math.mulDiv(shares, m, ONE));
        return true;
    }

    // ------------------------------------------------------------------ compliance

    function setSanctionsList(address newSanctionsList) external onlyOwner {
        sanctionsList = newSanctionsList;
        emit NewSanctionsList(newSanctionsList);
    }

    function pause() external onlyOwner {
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    // ------------------------------------------------------------------ bookkeeping in shares (IssuedToken mints, burns and moves balance units)

    /// @dev Every ERC-20 path (transfer, transferFrom, mint, burn) lands here with `value` in balance units.
    /// OpenZeppelin's balance bookkeeping is bypassed entirely; holdings live in `sharesOf`.
    function _update(address from, address to, uint256 value) internal override {
        uint256 m = _applyMultiplier();
        // Checked in balance units: share rounding alone would let a transfer slightly above the balance
        // through, emitting a Transfer value the sender never had.
        if (from != address(0)) {
            uint256 balance = Math.mulDiv(sharesOf[from], m, ONE);
            if (value > balance) revert ERC20InsufficientBalance(from, balance, value);
        }
        _moveShares(from, to, Math.mulDiv(value, ONE, m), value);
    }

    /// @dev from == address(0) mints, to == address(0) burns. Minting to a sanctioned address is refused;
    /// burning from one is allowed so the issuer can seize.
    function _moveShares(address from, address to, uint256 shares, uint256 value) private {
        _requireNotPaused();
        if (to != address(0)) {
            _requireNotSanctioned(to);
            if (from != address(0)) _requireNotSanctioned(from);
        }

        if (from == address(0)) {
            totalShares += shares;
        } else {
            uint256 fromShares = sharesOf[from];
            if (shares > fromShares) revert InsufficientShares(from, fromShares, shares);
            unchecked {
                sharesOf[from] = fromShares - shares;
            }
        }

        if (to == address(0)) {
            unchecked {
                // Cannot underflow: the burnt shares were part of `from`'s holding, hence of the total.
                totalShares -= shares;
            }
        } else {
            unchecked {
                // Cannot overflow: no holding exceeds totalShares, which is checked on mint.
                sharesOf[to] += shares;
            }
        }

        emit Transfer(from, to, value);
        emit TransferShares(from, to, shares);
    }

    function _requireNotSanctioned(address account) private view {
        address list = sanctionsList;
        if (list != address(0) && ISanctionsList(list).isSanctioned(account)) {
            revert AddressSanctioned(account);
        }
    }
}
