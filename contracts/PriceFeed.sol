// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {AggregatorV2V3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV2V3Interface.sol";

/// @title PriceFeed
/// @notice Price feed that answers exactly like a Chainlink EACAggregatorProxy in a single phase: round ids
/// carry the phase in their top bits, the whole history stays queryable, and unknown rounds revert from
/// `getRoundData`/`latestRoundData` but read as 0 from the V2 getters.
/// @dev `transmitRaw` exists to replay the faulty rounds seen on real feeds (non-positive answers,
/// `updatedAt == 0`, stale `answeredInRound`) so consumers' validation can be exercised.
contract PriceFeed is AggregatorV2V3Interface, Ownable {
    /// @dev One storage slot per round, as Chainlink's OCR aggregators pack a transmission
    /// (int192 answer, 32-bit timestamps). A whole history of rounds stays cheap to keep.
    struct Round {
        int192 answer;
        uint32 startedAt;
        uint32 updatedAt;
    }

    uint8 private constant PHASE_OFFSET = 64;
    string private constant NO_DATA = "No data present";

    uint8 public immutable decimals;
    uint256 public immutable version;
    uint16 public immutable phaseId;
    string public description;
    address public updater;

    /// @dev Keyed by aggregator round (the low 64 bits of the proxy round id), which starts at 1.
    mapping(uint64 => Round) private _rounds;
    /// @dev Only rounds whose answeredInRound differs from their own id (faulty rounds) are stored here,
    /// as answeredInRound + 1 so that a stored 0 can be told from "not stored".
    mapping(uint64 => uint96) private _answeredInRound;
    uint64 private _latestAggregatorRound;

    event UpdaterSet(address indexed updater);

    error NotUpdater(address caller);
    error ValueOutOfRange();

    modifier onlyUpdater() {
        if (msg.sender != updater) revert NotUpdater(msg.sender);
        _;
    }

    /// @dev The updater also owns the feed, so one key both publishes prices and can hand publishing over.
    constructor(uint8 decimals_, string memory description_, uint256 version_, uint16 phaseId_, address updater_)
        Ownable(updater_)
    {
        decimals = decimals_;
        description = description_;
        version = version_;
        phaseId = phaseId_;
        updater = updater_;
        emit UpdaterSet(updater_);
    }

    function setUpdater(address newUpdater) external onlyOwner {
        updater = newUpdater;
        emit UpdaterSet(newUpdater);
    }

    // ------------------------------------------------------------------ publishing

    /// @notice Publish a well-formed round stamped with the current block time.
    function transmit(int256 answer) external onlyUpdater {
        uint80 roundId = _proxyRoundId(_latestAggregatorRound + 1);
        _record(answer, block.timestamp, block.timestamp, roundId);
    }

    /// @notice Publish a round with every field chosen by the caller. `answeredInRound` is a proxy round id.
    function transmitRaw(int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
        external
        onlyUpdater
    {
        _record(answer, startedAt, updatedAt, answeredInRound);
    }

    function _record(int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound) private {
        uint64 aggregatorRound = _latestAggregatorRound + 1;
        _latestAggregatorRound = aggregatorRound;
        if (
            answer > type(int192).max || answer < type(int192).min || startedAt > type(uint32).max
                || updatedAt > type(uint32).max
        ) revert ValueOutOfRange();
        _rounds[aggregatorRound] = Round(int192(answer), uint32(startedAt), uint32(updatedAt));
        uint256 roundId = _proxyRoundId(aggregatorRound);
        if (answeredInRound != roundId) _answeredInRound[aggregatorRound] = uint96(answeredInRound) + 1;

        emit NewRound(roundId, msg.sender, startedAt);
        emit AnswerUpdated(answer, roundId, updatedAt);
    }

    // ------------------------------------------------------------------ AggregatorV3Interface

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        uint64 aggregatorRound = _latestAggregatorRound;
        require(aggregatorRound != 0, NO_DATA);
        return _roundData(aggregatorRound);
    }

    function getRoundData(uint80 roundId_)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (bool known, uint64 aggregatorRound) = _parse(roundId_);
        require(known, NO_DATA);
        return _roundData(aggregatorRound);
    }

    // ------------------------------------------------------------------ AggregatorInterface (V2)

    function latestAnswer() external view returns (int256) {
        return _rounds[_latestAggregatorRound].answer;
    }

    function latestTimestamp() external view returns (uint256) {
        return _rounds[_latestAggregatorRound].updatedAt;
    }

    /// @dev Like a Chainlink proxy this is phase-prefixed even before the first round (aggregator round 0).
    function latestRound() external view returns (uint256) {
        return _proxyRoundId(_latestAggregatorRound);
    }

    function getAnswer(uint256 roundId) external view returns (int256) {
        if (roundId > type(uint80).max) return 0;
        (bool known, uint64 aggregatorRound) = _parse(uint80(roundId));
        return known ? _rounds[aggregatorRound].answer : int256(0);
    }

    function getTimestamp(uint256 roundId) external view returns (uint256) {
        if (roundId > type(uint80).max) return 0;
        (bool known, uint64 aggregatorRound) = _parse(uint80(roundId));
        return known ? _rounds[aggregatorRound].updatedAt : 0;
    }

    // ------------------------------------------------------------------ round ids

    function _proxyRoundId(uint64 aggregatorRound) private view returns (uint80) {
        return (uint80(phaseId) << PHASE_OFFSET) | uint80(aggregatorRound);
    }

    function _parse(uint80 roundId) private view returns (bool known, uint64 aggregatorRound) {
        aggregatorRound = uint64(roundId);
        known = (roundId >> PHASE_OFFSET) == phaseId && aggregatorRound != 0
            && aggregatorRound <= _latestAggregatorRound;
    }

    function _roundData(uint64 aggregatorRound)
        private
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round storage r = _rounds[aggregatorRound];
        roundId = _proxyRoundId(aggregatorRound);
        uint96 answered = _answeredInRound[aggregatorRound];
        return (roundId, r.answer, r.startedAt, r.updatedAt, answered == 0 ? roundId : uint80(answered - 1));
    }
}
