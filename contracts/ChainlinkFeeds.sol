// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControllerInterface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AccessControllerInterface.sol";
import {AggregatorV2V3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV2V3Interface.sol";

/// @title ChainlinkOwned
/// @notice Two-step ownership as Chainlink's `Owned` (v0.6 proxies, libocr): the deployer owns the contract
/// without a constructor event; transferOwnership only proposes, the proposed owner accepts.
abstract contract ChainlinkOwned {
    address public owner;
    address private pendingOwner;

    event OwnershipTransferRequested(address indexed from, address indexed to);
    event OwnershipTransferred(address indexed from, address indexed to);

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "Only callable by owner");
        _;
    }

    function transferOwnership(address _to) external onlyOwner {
        pendingOwner = _to;
        emit OwnershipTransferRequested(owner, _to);
    }

    function acceptOwnership() external {
        require(msg.sender == pendingOwner, "Must be proposed owner");
        address previous = owner;
        owner = msg.sender;
        pendingOwner = address(0);
        emit OwnershipTransferred(previous, msg.sender);
    }
}

/// @title FeedProxy
/// @notice Imitation of Chainlink's `EACAggregatorProxy` (v0.6): the stable address consumers read. Every
/// aggregator it has pointed to is a phase, numbered from 1; proxy round ids are `phase << 64 | aggregator
/// round`, for the round id AND answeredInRound. Rounds of old phases stay readable through
/// `phaseAggregators`. An unknown phase makes getRoundData call address(0), which reverts with empty data;
/// the V2 getters answer 0 instead. proposeAggregator/confirmAggregator log nothing (the v0.7+ proxies'
/// AggregatorProposed/AggregatorConfirmed do not exist in v0.6). With an access controller set, reads
/// require `hasAccess(msg.sender, msg.data)` ("No access").
contract FeedProxy is ChainlinkOwned, AggregatorV2V3Interface {
    struct Phase {
        uint16 id;
        AggregatorV2V3Interface aggregator;
    }

    uint256 private constant PHASE_OFFSET = 64;
    uint256 private constant PHASE_SIZE = 16;
    uint256 private constant MAX_ID = 2 ** (PHASE_OFFSET + PHASE_SIZE) - 1;

    Phase private currentPhase;
    AggregatorV2V3Interface public proposedAggregator;
    mapping(uint16 => AggregatorV2V3Interface) public phaseAggregators;
    AccessControllerInterface public accessController;

    constructor(address _aggregator, address _accessController) {
        _setAggregator(_aggregator);
        setController(_accessController);
    }

    modifier checkAccess() {
        AccessControllerInterface ac = accessController;
        require(address(ac) == address(0) || ac.hasAccess(msg.sender, msg.data), "No access");
        _;
    }

    modifier hasProposal() {
        require(address(proposedAggregator) != address(0), "No proposed aggregator present");
        _;
    }

    function setController(address _accessController) public onlyOwner {
        accessController = AccessControllerInterface(_accessController);
    }

    // ------------------------------------------------------------------------------------------ V2 reads

    function latestAnswer() external view override checkAccess returns (int256) {
        return currentPhase.aggregator.latestAnswer();
    }

    function latestTimestamp() external view override checkAccess returns (uint256) {
        return currentPhase.aggregator.latestTimestamp();
    }

    function latestRound() external view override checkAccess returns (uint256 roundId) {
        Phase memory phase = currentPhase;
        return _addPhase(phase.id, uint64(phase.aggregator.latestRound()));
    }

    function getAnswer(uint256 _roundId) external view override checkAccess returns (int256) {
        if (_roundId > MAX_ID) return 0;
        (uint16 phase, uint64 aggregatorRoundId) = _parseIds(_roundId);
        AggregatorV2V3Interface source = phaseAggregators[phase];
        if (address(source) == address(0)) return 0;
        return source.getAnswer(aggregatorRoundId);
    }

    function getTimestamp(uint256 _roundId) external view override checkAccess returns (uint256) {
        if (_roundId > MAX_ID) return 0;
        (uint16 phase, uint64 aggregatorRoundId) = _parseIds(_roundId);
        AggregatorV2V3Interface source = phaseAggregators[phase];
        if (address(source) == address(0)) return 0;
        return source.getTimestamp(aggregatorRoundId);
    }

    // ------------------------------------------------------------------------------------------ V3 reads

    function getRoundData(uint80 _roundId)
        external
        view
        override
        checkAccess
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (uint16 phase, uint64 aggregatorRoundId) = _parseIds(_roundId);
        // no zero-address guard, as in v0.6: an unknown phase is a call to address(0) and reverts empty
        (roundId, answer, startedAt, updatedAt, answeredInRound) =
            phaseAggregators[phase].getRoundData(aggregatorRoundId);
        return (_addPhase(phase, uint64(roundId)), answer, startedAt, updatedAt, _addPhase(phase, uint64(answeredInRound)));
    }

    function latestRoundData()
        external
        view
        override
        checkAccess
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Phase memory phase = currentPhase;
        (roundId, answer, startedAt, updatedAt, answeredInRound) = phase.aggregator.latestRoundData();
        return (
            _addPhase(phase.id, uint64(roundId)), answer, startedAt, updatedAt, _addPhase(phase.id, uint64(answeredInRound))
        );
    }

    /// @notice The proposed aggregator's own round, without phase bits.
    function proposedGetRoundData(uint80 _roundId)
        external
        view
        checkAccess
        hasProposal
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return proposedAggregator.getRoundData(_roundId);
    }

    function proposedLatestRoundData()
        external
        view
        checkAccess
        hasProposal
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return proposedAggregator.latestRoundData();
    }

    // --------------------------------------------------------------------------- metadata (no access check)

    function aggregator() external view returns (address) {
        return address(currentPhase.aggregator);
    }

    function phaseId() external view returns (uint16) {
        return currentPhase.id;
    }

    function decimals() external view override returns (uint8) {
        return currentPhase.aggregator.decimals();
    }

    function version() external view override returns (uint256) {
        return currentPhase.aggregator.version();
    }

    function description() external view override returns (string memory) {
        return currentPhase.aggregator.description();
    }

    // ------------------------------------------------------------------------------ aggregator changes

    function proposeAggregator(address _aggregator) external onlyOwner {
        proposedAggregator = AggregatorV2V3Interface(_aggregator);
    }

    function confirmAggregator(address _aggregator) external onlyOwner {
        require(_aggregator == address(proposedAggregator), "Invalid proposed aggregator");
        delete proposedAggregator;
        _setAggregator(_aggregator);
    }

    function _setAggregator(address _aggregator) private {
        uint16 id = currentPhase.id + 1;
        currentPhase = Phase(id, AggregatorV2V3Interface(_aggregator));
        phaseAggregators[id] = AggregatorV2V3Interface(_aggregator);
    }

    function _addPhase(uint16 phase, uint64 originalId) private pure returns (uint80) {
        return uint80((uint256(phase) << PHASE_OFFSET) | originalId);
    }

    function _parseIds(uint256 roundId) private pure returns (uint16, uint64) {
        return (uint16(roundId >> PHASE_OFFSET), uint64(roundId));
    }
}

/// @title FeedReadAccessController
/// @notice The read access rule of Chainlink's `SimpleReadAccessController`, which EAC proxies and
/// access-controlled aggregators consult: allowed if listed, if checking is disabled, or if the caller is
/// the transaction origin (so off-chain eth_call from an account always passes; contracts must be listed).
contract FeedReadAccessController is ChainlinkOwned, AccessControllerInterface {
    mapping(address => bool) internal accessList;
    bool public checkEnabled = true;

    event AddedAccess(address user);
    event RemovedAccess(address user);
    event CheckAccessEnabled();
    event CheckAccessDisabled();

    function hasAccess(address _user, bytes calldata) external view override returns (bool) {
        return accessList[_user] || !checkEnabled || _user == tx.origin;
    }

    function addAccess(address _user) external onlyOwner {
        if (!accessList[_user]) {
            accessList[_user] = true;
            emit AddedAccess(_user);
        }
    }

    function removeAccess(address _user) external onlyOwner {
        if (accessList[_user]) {
            accessList[_user] = false;
            emit RemovedAccess(_user);
        }
    }

    function enableAccessCheck() external onlyOwner {
        if (!checkEnabled) {
            checkEnabled = true;
            emit CheckAccessEnabled();
        }
    }

    function disableAccessCheck() external onlyOwner {
        if (checkEnabled) {
            checkEnabled = false;
            emit CheckAccessDisabled();
        }
    }
}

/// @title OcrAggregator
/// @notice Imitation of libocr's OCR1 `OffchainAggregator` ("OffchainAggregator 4.0.0", version 4): rounds
/// are uint32 and numbered from 1, each accepted report stores (median, block.timestamp) and logs
/// NewTransmission, NewRound(round, 0, now) and AnswerUpdated(median, round, now), in that order.
/// `latestRoundData` never reverts (zeros before the first report); `getRoundData` reverts "No data present"
/// above uint32 and returns zeros (with the id echoed) for a missing round that fits.
///
/// Simplified write path: `transmit` keeps the real selector and report encoding (abi-encoded
/// rawReportContext, rawObservers, int192[] observations) and the report checks on its contents (stale
/// epoch-round, observer indices, sorted observations, median = observations[n / 2], min-max range), but it
/// accepts the report from one configured transmitter WITHOUT verifying the oracle signatures (`rs`, `ss`,
/// `rawVs` are ignored), without a config digest check (there is no setConfig) and without billing.
contract OcrAggregator is ChainlinkOwned, AggregatorV2V3Interface {
    struct Transmission {
        int192 answer;
        uint64 timestamp;
    }

    uint256 private constant MAX_NUM_ORACLES = 31;
    string private constant V3_NO_DATA_ERROR = "No data present";

    int192 public immutable minAnswer;
    int192 public immutable maxAnswer;
    uint8 public immutable override decimals;
    uint256 public constant override version = 4;

    uint32 internal latestAggregatorRoundId;
    uint40 internal latestEpochAndRound;
    bytes16 internal latestConfigDigest;
    mapping(uint32 => Transmission) internal transmissions;
    string internal descriptionText;
    address internal transmitter;

    event NewTransmission(
        uint32 indexed aggregatorRoundId,
        int192 answer,
        address transmitter,
        int192[] observations,
        bytes observers,
        bytes32 rawReportContext
    );

    constructor(int192 _minAnswer, int192 _maxAnswer, uint8 _decimals, string memory _description, address _transmitter) {
        minAnswer = _minAnswer;
        maxAnswer = _maxAnswer;
        decimals = _decimals;
        descriptionText = _description;
        transmitter = _transmitter;
    }

    function typeAndVersion() external pure virtual returns (string memory) {
        return "OffchainAggregator 4.0.0";
    }

    function description() external view override returns (string memory) {
        return descriptionText;
    }

    /// @notice Stand-in for setConfig's transmitter list (one transmitter). Logs nothing.
    function setTransmitter(address _transmitter) external onlyOwner {
        transmitter = _transmitter;
    }

    function transmitters() external view returns (address[] memory list) {
        list = new address[](1);
        list[0] = transmitter;
    }

    /// @notice Selector 0xc9807539, as OCR1. Signatures are NOT checked (see the contract notice).
    function transmit(bytes calldata _report, bytes32[] calldata, bytes32[] calldata, bytes32) external {
        (bytes32 rawReportContext, bytes32 rawObservers, int192[] memory observations) =
            abi.decode(_report, (bytes32, bytes32, int192[]));
        uint40 epochAndRound = uint40(uint256(rawReportContext));
        require(latestEpochAndRound < epochAndRound, "stale report");
        require(observations.length > 0 && observations.length <= MAX_NUM_ORACLES, "num observations out of bounds");

        bytes memory observers = new bytes(observations.length);
        bool[MAX_NUM_ORACLES] memory seen;
        for (uint256 i = 0; i < observations.length; ++i) {
            uint8 index = uint8(rawObservers[i]);
            require(index < MAX_NUM_ORACLES && !seen[index], "observer index repeated");
            seen[index] = true;
            observers[i] = rawObservers[i];
        }
        require(msg.sender == transmitter, "unauthorized transmitter");

        for (uint256 i = 0; i + 1 < observations.length; ++i) {
            require(observations[i] <= observations[i + 1], "observations not sorted");
        }
        int192 median = observations[observations.length / 2];
        require(minAnswer <= median && median <= maxAnswer, "median is out of min-max range");

        latestEpochAndRound = epochAndRound;
        latestConfigDigest = bytes16(rawReportContext << 88);
        uint32 roundId = ++latestAggregatorRoundId;
        transmissions[roundId] = Transmission(median, uint64(block.timestamp));

        emit NewTransmission(roundId, median, msg.sender, observations, observers, rawReportContext);
        emit NewRound(roundId, address(0), block.timestamp);
        emit AnswerUpdated(median, roundId, block.timestamp);
    }

    /// @notice OCR1's EOA-only view of the latest report's context and result.
    function latestTransmissionDetails()
        external
        view
        returns (bytes16 configDigest, uint32 epoch, uint8 round, int192 latestAnswer_, uint64 latestTimestamp_)
    {
        require(msg.sender == tx.origin, "Only callable by EOA");
        Transmission memory t = transmissions[latestAggregatorRoundId];
        return (latestConfigDigest, uint32(latestEpochAndRound >> 8), uint8(latestEpochAndRound), t.answer, t.timestamp);
    }

    // ------------------------------------------------------------------------------------------ V2 reads

    function latestAnswer() public view override returns (int256) {
        return transmissions[latestAggregatorRoundId].answer;
    }

    function latestTimestamp() public view override returns (uint256) {
        return transmissions[latestAggregatorRoundId].timestamp;
    }

    function latestRound() public view override returns (uint256) {
        return latestAggregatorRoundId;
    }

    function getAnswer(uint256 _roundId) public view override returns (int256) {
        if (_roundId > 0xFFFFFFFF) return 0;
        return transmissions[uint32(_roundId)].answer;
    }

    function getTimestamp(uint256 _roundId) public view override returns (uint256) {
        if (_roundId > 0xFFFFFFFF) return 0;
        return transmissions[uint32(_roundId)].timestamp;
    }

    // ------------------------------------------------------------------------------------------ V3 reads

    function getRoundData(uint80 _roundId)
        public
        view
        virtual
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        require(_roundId <= 0xFFFFFFFF, V3_NO_DATA_ERROR);
        Transmission memory t = transmissions[uint32(_roundId)];
        return (_roundId, t.answer, t.timestamp, t.timestamp, _roundId);
    }

    function latestRoundData()
        public
        view
        virtual
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        roundId = latestAggregatorRoundId;
        Transmission memory t = transmissions[uint32(roundId)];
        return (roundId, t.answer, t.timestamp, t.timestamp, roundId);
    }

    function _appendRound(int192 answer, uint64 timestamp) internal returns (uint32 roundId) {
        roundId = ++latestAggregatorRoundId;
        transmissions[roundId] = Transmission(answer, timestamp);
    }
}

/// @title OcrAggregatorWithFaults
/// @notice OcrAggregator plus ONE test-only function that is NOT part of the real OffchainAggregator:
/// `testOnlyPublishFaultyRound` appends a round with a chosen answer, updatedAt and answeredInRound, to
/// replay the faulty rounds seen on Flux-era feeds (stale answeredInRound < roundId, updatedAt of 0,
/// non-positive answers). Such a round logs NewRound then AnswerUpdated with the chosen time (no
/// NewTransmission: it did not come from a report). Never deploy this where the real contract is meant.
contract OcrAggregatorWithFaults is OcrAggregator {
    mapping(uint32 => uint80) private answeredInRoundOverride;
    mapping(uint32 => bool) private overridden;

    constructor(int192 _minAnswer, int192 _maxAnswer, uint8 _decimals, string memory _description, address _transmitter)
        OcrAggregator(_minAnswer, _maxAnswer, _decimals, _description, _transmitter)
    {}

    /// @notice TEST ONLY, not in the real contract: publish a faulty round; returns its aggregator round id.
    function testOnlyPublishFaultyRound(int192 answer, uint64 updatedAt, uint80 answeredInRound)
        external
        onlyOwner
        returns (uint32 roundId)
    {
        roundId = _appendRound(answer, updatedAt);
        overridden[roundId] = true;
        answeredInRoundOverride[roundId] = answeredInRound;
        emit NewRound(roundId, address(0), updatedAt);
        emit AnswerUpdated(answer, roundId, updatedAt);
    }

    function getRoundData(uint80 _roundId)
        public
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (roundId, answer, startedAt, updatedAt, answeredInRound) = super.getRoundData(_roundId);
        if (overridden[uint32(_roundId)]) answeredInRound = answeredInRoundOverride[uint32(_roundId)];
    }

    function latestRoundData()
        public
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        (roundId, answer, startedAt, updatedAt, answeredInRound) = super.latestRoundData();
        if (overridden[uint32(roundId)]) answeredInRound = answeredInRoundOverride[uint32(roundId)];
    }
}
