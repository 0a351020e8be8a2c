// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import "@chainlink/contracts/src/v0.8/vendor/multicall/ebd8b64/src/Multicall3.sol";
