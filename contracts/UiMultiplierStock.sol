// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IssuedToken} from "./IssuedToken.sol";
import {StockToken} from "./StockToken.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title UiMultiplierStock
/// @notice Tokenized share whose raw ERC-20 balances never change on corporate actions. Splits, reverse
/// splits and similar events are expressed through a display multiplier (modelled on ERC-8056 "Scaled UI
/// Amount"): the number of underlying shares a holder owns is `balanceOf * uiMultiplier() / 1e18`.
/// @dev The issuer (owner) schedules multiplier changes ahead of time. A scheduled change takes effect
/// silently when its timestamp is reached: no transaction and no event mark that moment, so consumers must
/// evaluate `uiMultiplier()` at the block they care about rather than wait for a log.
contract UiMultiplierStock is StockToken, Pausable {
    uint256 private constant ONE = 1e18;

    /// @dev Multiplier in force before the pending update (if any) becomes effective.
    uint256 private _uiMultiplier = ONE;

    /// @notice Value and activation time of the most recently scheduled update; 0/0 until the first one.
    /// @dev Deliberately not cleared once the update is effective: they keep returning the last scheduled
    /// values until the next `updateUIMultiplier` call, which folds them into the current multiplier.
    /// Use `uiMultiplier()` for the value in force.
    uint256 public newUIMultiplier;
    uint256 public effectiveAt;

    mapping(address => bool) private _frozen;

    event UIMultiplierUpdated(
        uint256 oldMultiplier, uint256 newMultiplier, uint256 setAtTimestamp, uint256 effectiveAtTimestamp
    );
    /// @dev Same signature as ERC-3643 so compliance tooling recognises it; `owner` is the agent acting.
    event AddressFrozen(address indexed userAddress, bool indexed isFrozen, address indexed owner);

    error AccountFrozen(address account);
    error InvalidMultiplier();
    error EffectiveTimeInPast(uint256 effectiveAtTimestamp, uint256 nowTimestamp);
    error UpdateAlreadyPending(uint256 effectiveAtTimestamp);

    constructor(
        string memory name,
        string memory symbol,
        uint8 decimals_,
        string memory ticker_,
        string memory isin_,
        address issuer
    ) ERC20(name, symbol) Ownable(issuer) IssuedToken(decimals_) StockToken(ticker_, isin_) {
    }

    // ------------------------------------------------------------------ UI multiplier

    /// @notice Multiplier in force at the current block (18-decimal fixed point, 1e18 = one share per token).
    function uiMultiplier() public view returns (uint256) {
        if (_pendingIsEffective()) {
            return newUIMultiplier;
        }
        return _uiMultiplier;
    }

    /// @notice Schedule a multiplier change. An effective time equal to the current block applies at once.
    /// @dev Only one update may wait at a time so that consumers never have to reason about a queue; an
    /// update that is already effective is folded into the current value first.
    function updateUIMultiplier(uint256 newMultiplier, uint256 effectiveAtTimestamp) external onlyOwner {
        if (newMultiplier == 0) revert InvalidMultiplier();
        if (effectiveAtTimestamp < block.timestamp) {
            revert EffectiveTimeInPast(effectiveAtTimestamp, block.timestamp);
        }
        if (effectiveAt != 0) {
            if (block.timestamp < effectiveAt) revert UpdateAlreadyPending(effectiveAt);
            _uiMultiplier = newUIMultiplier;
        }

        uint256 oldMultiplier = _uiMultiplier;
        newUIMultiplier = newMultiplier;
        effectiveAt = effectiveAtTimestamp;
        emit UIMultiplierUpdated(oldMultiplier, newMultiplier, block.timestamp, effectiveAtTimestamp);
    }

    function toUIAmount(uint256 rawAmount) public view returns (uint256) {
        return Math.mulDiv(rawAmount, uiMultiplier(), ONE);
    }

    function fromUIAmount(uint256 uiAmount) public view returns (uint256) {
        return Math.mulDiv(uiAmount, ONE, uiMultiplier());
    }

    function balanceOfUI(address account) external view returns (uint256) {
        return toUIAmount(balanceOf(account));
    }

    function totalSupplyUI() external view returns (uint256) {
        return toUIAmount(totalSupply());
    }

    function _pendingIsEffective() private view returns (bool) {
        uint256 at = effectiveAt;
        return at != 0 && block.timestamp >= at;
    }

    // ------------------------------------------------------------------ compliance

    function setAddressFrozen(address account, bool frozen) external onlyOwner {
        _frozen[account] = frozen;
        emit AddressFrozen(account, frozen, msg.sender);
    }

    function isFrozen(address account) external view returns (bool) {
        return _frozen[account];
    }

    function pause() external onlyOwner {
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    // ------------------------------------------------------------------ issuance

    /// @dev Single choke point for transfers, mints and burns. A frozen account can neither send nor
    /// receive, but the issuer may still burn from it: that is how frozen holdings are seized.
    function _update(address from, address to, uint256 value) internal override whenNotPaused {
        if (to != address(0)) {
            if (_frozen[to]) revert AccountFrozen(to);
            if (from != address(0) && _frozen[from]) revert AccountFrozen(from);
        }
        super._update(from, to, value);
    }
}
