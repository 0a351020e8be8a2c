#!/usr/bin/env node
// Compiles contracts/*.sol with the pinned npm `solc` and writes ABIs and deployable artifacts.
//
//   node scripts/build_contracts.mjs           write indexer/abis/<Name>.json and build/contracts/<Name>.json
//                                              (and copy the published third-party artifacts: PUBLISHED below)
//   node scripts/build_contracts.mjs --check   compile in memory; exit 1 listing ABI files that are stale
//
// BUILD_DIR (default build/contracts) and ABI_DIR (default indexer/abis) override the output directories;
// relative values are taken from the repository root.
//
// Output is a pure function of the sources, the resolved library files and the settings below, so two
// builds of the same tree are byte-identical (the reproducibility test depends on this). Source units are
// named by repository-relative paths because solc embeds those names in the metadata hash at the end of
// the bytecode; absolute paths would make artifacts depend on where the checkout lives.

import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONTRACTS_DIR = path.join(ROOT, "contracts");
const NODE_MODULES = path.join(ROOT, "node_modules");
const LIBRARY_PREFIXES = ["@openzeppelin/", "@chainlink/"];

// Contracts the Python side deploys or decodes. Anything else compiled along the way is not written out.
const ARTIFACTS = [
  "XStockV3",
  "XStockV4",
  "TransparentProxy",
  "ProxyAdmin",
  "XStockFactory",
  "ChainalysisOracle",
  "FeedProxy",
  "FeedReadAccessController",
  "OcrAggregator",
  "OcrAggregatorWithFaults",
  "ScaledUiStock",
  "ScaledUiStockDraft",
  "B20Asset",
  "Disperse",
  "PlainToken",
  "Multicall3",
  "StockVault",
];

// Third-party contracts deployed as published: the npm packages' own compiled artifacts (package.json pins
// the exact versions), copied as they are, never recompiled. Their ABIs go to <ABI_DIR>/published/ (written at
// setup, not committed: they come from the package), their bytecode to the build folder like ours.
const PUBLISHED = {
  UniswapV3Factory: "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
  UniswapV3Pool: "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
  NonfungiblePositionManager:
    "@uniswap/v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
  SwapRouter: "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
  QuoterV2: "@uniswap/v3-periphery/artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json",
  TickLens: "@uniswap/v3-periphery/artifacts/contracts/lens/TickLens.sol/TickLens.json",
};

const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  viaIR: false,
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
  },
};

function fail(message) {
  process.stderr.write(`build_contracts: ${message}\n`);
  process.exit(1);
}

function outputDir(envName, fallback) {
  return path.resolve(ROOT, process.env[envName] || fallback);
}

function toPosix(p) {
  return p.split(path.sep).join("/");
}

function readSources() {
  if (!fs.existsSync(CONTRACTS_DIR)) fail(`no contracts directory at ${CONTRACTS_DIR}`);
  const files = fs
    .readdirSync(CONTRACTS_DIR)
    .filter((name) => name.endsWith(".sol"))
    .sort();
  if (files.length === 0) fail(`no .sol files in ${CONTRACTS_DIR}`);
  const sources = {};
  for (const name of files) {
    const unit = toPosix(path.relative(ROOT, path.join(CONTRACTS_DIR, name)));
    sources[unit] = { content: fs.readFileSync(path.join(CONTRACTS_DIR, name), "utf8") };
  }
  return sources;
}

// Only the declared npm libraries are reachable, so a stray import cannot pull in arbitrary files.
function makeImportResolver(resolved) {
  return (importPath) => {
    if (!LIBRARY_PREFIXES.some((prefix) => importPath.startsWith(prefix))) {
      return { error: `import outside ${LIBRARY_PREFIXES.join(", ")} is not allowed: ${importPath}` };
    }
    const file = path.resolve(NODE_MODULES, importPath);
    if (!file.startsWith(NODE_MODULES + path.sep)) {
      return { error: `import escapes node_modules: ${importPath}` };
    }
    if (!fs.existsSync(file)) {
      return { error: `file not found: ${importPath} (is the package installed?)` };
    }
    const content = fs.readFileSync(file, "utf8");
    resolved[importPath] = content;
    return { contents: content };
  };
}

function compile() {
  const sources = readSources();
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const resolved = {};
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: makeImportResolver(resolved) }));

  const diagnostics = output.errors || [];
  const errors = diagnostics.filter((d) => d.severity === "error");
  // Warnings inside the pinned libraries are not actionable here (e.g. Multicall3's use of
  // block.difficulty); only our own are shown.
  const ownWarnings = diagnostics.filter(
    (d) => d.severity !== "error" && !LIBRARY_PREFIXES.some((p) => d.sourceLocation?.file?.startsWith(p)),
  );
  for (const d of ownWarnings) process.stderr.write(d.formattedMessage || `${d.severity}: ${d.message}\n`);
  if (errors.length > 0) {
    for (const d of errors) process.stderr.write(d.formattedMessage || `error: ${d.message}\n`);
    fail(`compilation failed with ${errors.length} error(s) (solc ${solc.version()})`);
  }

  const found = {};
  for (const [unit, contracts] of Object.entries(output.contracts || {})) {
    for (const [name, artifact] of Object.entries(contracts)) {
      if (!ARTIFACTS.includes(name)) continue;
      if (found[name]) fail(`contract name ${name} is defined in both ${found[name].unit} and ${unit}`);
      found[name] = { unit, artifact };
    }
  }
  const missing = ARTIFACTS.filter((name) => !found[name]);
  if (missing.length > 0) fail(`expected contracts not produced by the compiler: ${missing.join(", ")}`);

  // Every byte that can influence the output: compiler, settings, own sources and resolved imports.
  const allSources = { ...resolved };
  for (const [unit, { content }] of Object.entries(sources)) allSources[unit] = content;
  const hash = createHash("sha256");
  hash.update(`solc ${solc.version()}\n`);
  hash.update(`settings ${JSON.stringify(SETTINGS)}\n`);
  for (const unit of Object.keys(allSources).sort()) {
    const digest = createHash("sha256").update(allSources[unit]).digest("hex");
    hash.update(`${unit} ${digest}\n`);
  }
  const published = readPublished();
  for (const { artifact, sha256 } of Object.values(published.info)) hash.update(`published ${artifact} ${sha256}\n`);

  const files = { abi: {}, build: {} };
  for (const name of ARTIFACTS) {
    const { abi, evm } = found[name].artifact;
    if (!evm.bytecode.object) fail(`${name} has no bytecode (abstract contract or interface?)`);
    files.abi[`${name}.json`] = pretty(abi);
    files.build[`${name}.json`] = pretty({
      abi,
      bytecode: `0x${evm.bytecode.object}`,
      deployedBytecode: `0x${evm.deployedBytecode.object}`,
    });
  }
  files.build["BUILD_INFO.json"] = pretty({
    solcVersion: solc.version(),
    settings: SETTINGS,
    inputsSha256: hash.digest("hex"),
    sources: Object.keys(allSources).sort(),
    contracts: Object.fromEntries(ARTIFACTS.map((name) => [name, found[name].unit])),
    published: published.info,
  });
  files.published = published.abi;
  Object.assign(files.build, published.build);
  return files;
}

// The published artifacts, checked: each names the contract we expect, has bytecode and needs no linking.
function readPublished() {
  const files = { abi: {}, build: {}, info: {} };
  for (const [name, artifactPath] of Object.entries(PUBLISHED)) {
    if (ARTIFACTS.includes(name)) fail(`contract name ${name} is both compiled here and published`);
    const file = path.join(NODE_MODULES, artifactPath);
    if (!fs.existsSync(file)) fail(`published artifact not found: ${artifactPath} (is the package installed?)`);
    const raw = fs.readFileSync(file);
    const artifact = JSON.parse(raw);
    if (artifact.contractName !== name) fail(`${artifactPath} holds ${artifact.contractName}, not ${name}`);
    const linked = Object.keys(artifact.linkReferences || {}).length + Object.keys(artifact.deployedLinkReferences || {}).length;
    if (linked > 0) fail(`${name} needs linked libraries, which the published-artifact copy does not do`);
    if (!artifact.bytecode || artifact.bytecode === "0x") fail(`${name} has no bytecode in ${artifactPath}`);
    const pkgName = artifactPath.split("/").slice(0, 2).join("/");
    const pkg = JSON.parse(fs.readFileSync(path.join(NODE_MODULES, pkgName, "package.json"), "utf8"));
    const { abi, bytecode, deployedBytecode } = artifact;
    files.abi[`${name}.json`] = pretty(abi);
    files.build[`${name}.json`] = pretty({ abi, bytecode, deployedBytecode });
    files.info[name] = {
      package: `${pkgName}@${pkg.version}`,
      artifact: artifactPath,
      sha256: createHash("sha256").update(raw).digest("hex"),
    };
  }
  return files;
}

function pretty(value) {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function writeAll(dir, files) {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const target = path.join(dir, name);
    // Leaving unchanged files untouched keeps their mtimes, so make-style rules do not rebuild needlessly.
    if (fs.existsSync(target) && fs.readFileSync(target, "utf8") === content) continue;
    fs.writeFileSync(target, content);
  }
}

function staleFiles(dir, files) {
  const stale = [];
  for (const [name, content] of Object.entries(files)) {
    const target = path.join(dir, name);
    if (!fs.existsSync(target)) stale.push(`${toPosix(path.relative(ROOT, target))} (missing)`);
    else if (fs.readFileSync(target, "utf8") !== content) stale.push(toPosix(path.relative(ROOT, target)));
  }
  return stale;
}

function main(argv) {
  const unknown = argv.filter((arg) => arg !== "--check");
  if (unknown.length > 0) fail(`unknown argument(s): ${unknown.join(" ")} (usage: build_contracts.mjs [--check])`);
  const check = argv.includes("--check");

  const files = compile();
  const abiDir = outputDir("ABI_DIR", path.join("indexer", "abis"));
  const buildDir = outputDir("BUILD_DIR", path.join("build", "contracts"));

  const publishedDir = path.join(abiDir, "published");
  if (check) {
    const stale = [...staleFiles(abiDir, files.abi), ...staleFiles(publishedDir, files.published)];
    if (stale.length > 0) {
      process.stderr.write(
        `build_contracts: ABI files out of date with contracts/ or the published packages (run node scripts/build_contracts.mjs):\n` +
          stale.map((s) => `  ${s}\n`).join(""),
      );
      process.exit(1);
    }
    process.stdout.write(
      `ABIs up to date (${Object.keys(files.abi).length} contracts, solc ${solc.version()}; ` +
        `${Object.keys(files.published).length} published)\n`,
    );
    return;
  }

  writeAll(abiDir, files.abi);
  writeAll(publishedDir, files.published);
  writeAll(buildDir, files.build);
  process.stdout.write(
    `compiled ${Object.keys(files.abi).length} contracts with solc ${solc.version()}, ` +
      `copied ${Object.keys(files.published).length} published: ` +
      `ABIs in ${toPosix(path.relative(ROOT, abiDir)) || "."}, artifacts in ${toPosix(path.relative(ROOT, buildDir))}\n`,
  );
}

main(process.argv.slice(2));
