"""The catalog of real tokenized-stock deployments shipped with the package: xStocks (Backed Finance)
and Ondo Global Markets, one TOML file per family (`xstocks.toml`, `ondo.toml` next to this module).

Each file carries the facts of the issuer's official token list (chain, lowercase address, symbol,
name, decimals) and two fields that are ours, not the issuer's: `underlying` (the symbol without the
family's suffix) and `asset_class` (a guess: `classify`). `render_catalog` writes a file from the
issuer's list, so a new list version is one call away and a test checks the shipped files against it.

`build_config` turns a family, a chain and RPC URLs into the dict `indexer.config.Settings` accepts.
Pure: the only I/O is reading this package's catalog files.
"""

from __future__ import annotations

import difflib
import json
import re
import textwrap
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

from indexer.addresses import checksum
from indexer.errors import ConfigError
from indexer.types import Accounting, FeedKind, PriceQuote

CHAINS: dict[str, int] = {"ethereum": 1, "arbitrum": 42161, "bnb": 56, "ink": 57073, "mantle": 5000, "hyperevm": 999}
_CHAIN_NAMES = {cid: name for name, cid in CHAINS.items()}
_ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")

# What we know about each family that its token list does not say. Notes end up in the catalog file
# and in every configuration written from it.
FAMILY_META: dict[str, dict[str, str]] = {
    "xstocks": {
        "issuer": "Backed Finance",
        "suffix": "x",
        "accounting": Accounting.REBASING_SHARES.value,
        "accounting_note": (
            "Backed's auto-fee token: the contract keeps shares and balanceOf = shares x multiplier; the "
            "multiplier moves with the management fee and corporate actions, so balances rebase and one "
            "token stands for one underlying share"),
        "feed_quote": PriceQuote.PER_SHARE.value,
        "quote_note": (
            "per_share: balanceOf already includes the multiplier, so the underlying's own equity price "
            "(a Chainlink AAPL/USD-style feed; the `price` field of Chainlink's Backed xStock Data Streams, "
            "report schema v10, which carries the multiplier separately as `currentMultiplier`) values "
            "one token. A price that already has the multiplier in it would count it twice. Chainlink "
            "documents its Total Return Value (price x multiplier) push feeds for Ondo, Robinhood and "
            "Coinbase tokens, not for xStocks. The engine values a rebasing token as balance x price "
            "with either label (docs/risk.md section 2): what matters is which feed you pick"),
    },
    "ondo": {
        "issuer": "Ondo Global Markets",
        "suffix": "on",
        "accounting": Accounting.PLAIN.value,
        "accounting_note": (
            "fixed balances: the issuer's multiplier (sValue: reinvested dividends, splits) lives in a "
            "separate contract, Ondo's SyntheticSharesOracle, which the indexer does not read"),
        "feed_quote": PriceQuote.PER_TOKEN.value,
        "quote_note": (
            "per_token: Chainlink's Ondo tokenized-equity feeds report the Total Return Value, underlying "
            "price x sValue, i.e. the price of one token with the multiplier inside "
            "(docs.chain.link/data-feeds/tokenized-equity-feeds/ondo, which lists them on Ethereum "
            "mainnet). A plain AAPL/USD equity feed would miss sValue and undervalue every holding"),
        "checksum_note": (
            "Reviewed 2026-12-02: the digits of 8 of them on ethereum (AALon, ABBVon, AMCon, ANETon, BBAIon, "
            "BMNRon, COPXon, USOon) match two independent third-party lists of Ondo's deployments, so the "
            "list's letter case is wrong, not its digits; the bnb ones were not cross-checked"),
    },
}
FAMILIES: tuple[str, ...] = tuple(FAMILY_META)

# -- asset classes: ours, not the issuer's -----------------------------------------------------------
# The rule: `etf` when the name says ETF, Fund or Trust, `single_stock` otherwise; then this table, by
# underlying ticker (the same ticker gets the same class in both families). The class names follow the
# bundled policies where they have one (single_stock, broad_index_etf, crypto_linked_stock,
# commodity_etf, bond_etf, stablecoin); etf, leveraged_etf, crypto_etf and tokenized_treasury are ours.
_GROUPS: dict[str, str] = {
    # equity funds whose names do not say ETF/Fund/Trust
    "etf": "COPX",
    # main-index trackers (the policies' class for SPYx / QQQx)
    "broad_index_etf": "SPY IVV QQQ VTI ITOT VT IWM IJH IJR EFA IEFA EEM IEMG",
    # physical metal trusts and commodity-futures funds (gold: the policies' class for GLDx)
    "commodity_etf": "GLD IAU FGDL SLV PPLT PALL GLTR USO BNO UNG CPER DBC PDBC FTGC BWET",
    # Treasury, corporate, loan, CLO and other fixed-income funds (the policies' class for TLT)
    "bond_etf": ("TLT IEF IEI SHY SGOV BIL TBLL USFR TIP AGG HYG HYGW HYS FLHY JAAA CLOA CLOI BRLN IGEB QLTA "
                 "BRHY EUHY LEMB GGOV SYSB SECU BINC BRTR YEAR"),
    # daily-reset leveraged or inverse funds; their names do not always say ETF
    "leveraged_etf": "TQQQ SQQQ PSQ SOXL SOXS",
    # spot crypto funds
    "crypto_etf": "IBIT ETHA FSOL",
    # businesses that move with crypto prices: treasury companies and their preferreds, miners,
    # exchanges and custodians (MSTR and COIN: the policies' class)
    "crypto_linked_stock": ("MSTR STRK STRC SATA BMNR SBET PURR COIN GLXY BLSH GEMI BTGO EXOD MARA RIOT CIFR HUT "
                            "BTDR HIVE BTBT"),
}
ASSET_CLASS_OVERRIDES: dict[str, str] = {t: cls for cls, tickers in _GROUPS.items() for t in tickers.split()}
# by symbol: tokens that are not stocks or funds at all
SYMBOL_CLASSES: dict[str, str] = {
    "USDon": "stablecoin",  # Ondo U.S. Dollar Token: 1:1 dollar settlement token of Ondo GM
    "USDY": "tokenized_treasury",  # Ondo U.S. Dollar Yield: a note on short-term Treasuries, accrues (not $1)
}
ASSET_CLASSES: frozenset[str] = frozenset({"single_stock", "etf", *_GROUPS, *SYMBOL_CLASSES.values()})
_FUND_WORDS = re.compile(r"\b(ETF|Fund|Trust)\b")
_PRICED_24_7 = frozenset({"stablecoin", "tokenized_treasury"})


def classify(symbol: str, underlying: str, name: str) -> str:
    """Our asset-class guess for a token (see the comments above `ASSET_CLASS_OVERRIDES`)."""
    if symbol in SYMBOL_CLASSES:
        return SYMBOL_CLASSES[symbol]
    if underlying in ASSET_CLASS_OVERRIDES:
        return ASSET_CLASS_OVERRIDES[underlying]
    return "etf" if _FUND_WORDS.search(name) else "single_stock"


def underlying_of(symbol: str, suffix: str) -> str:
    """The ticker without the family's suffix (AAPLx -> AAPL, BRK.Bx -> BRK.B, AAPLon -> AAPL)."""
    return symbol[: -len(suffix)] if symbol.endswith(suffix) and len(symbol) > len(suffix) else symbol


class CatalogError(ConfigError):
    """An unknown family, chain or symbol: one line naming the valid ones."""


@dataclass(frozen=True)
class CatalogToken:
    symbol: str
    name: str
    decimals: int
    underlying: str
    asset_class: str
    addresses: dict[str, str]  # chain name -> lowercase address


@dataclass(frozen=True)
class Family:
    name: str
    issuer: str
    accounting: Accounting
    accounting_note: str
    feed_quote: PriceQuote
    quote_note: str
    source: str  # the token list's `name`
    source_version: str
    source_timestamp: str
    written: date
    tokens: tuple[CatalogToken, ...]

    def chains(self) -> list[str]:
        """The chains the family has tokens on, in `CHAINS` order."""
        used = {c for t in self.tokens for c in t.addresses}
        return [c for c in CHAINS if c in used]

    def tokens_on(self, chain: str) -> list[CatalogToken]:
        return [t for t in self.tokens if chain in t.addresses]


def chain_label(chain: str) -> str:
    return f"{chain} ({CHAINS[chain]})"


def families() -> list[str]:
    return list(FAMILIES)


@cache
def load_family(name: str) -> Family:
    """The catalog of one family, read from the package."""
    if name not in FAMILY_META:
        raise CatalogError(f"unknown family {name!r}: use one of {', '.join(FAMILIES)}")
    data = tomllib.loads(resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8"))
    fam = data["family"]
    tokens = []
    for t in data["tokens"]:
        for chain, address in t["addresses"].items():
            if chain not in CHAINS or not _ADDRESS.match(address):
                raise ConfigError(f"catalog {name}.toml: {t['symbol']}: bad entry {chain} = {address!r}")
        tokens.append(CatalogToken(t["symbol"], t["name"], int(t["decimals"]), t["underlying"], t["asset_class"],
                                   dict(t["addresses"])))
    return Family(name=fam["name"], issuer=fam["issuer"], accounting=Accounting(fam["accounting"]),
                  accounting_note=fam["accounting_note"], feed_quote=PriceQuote(fam["feed_quote"]),
                  quote_note=fam["quote_note"], source=fam["source"], source_version=fam["source_version"],
                  source_timestamp=fam["source_timestamp"], written=fam["written"], tokens=tuple(tokens))


def resolve_chain(family: Family, chain: str | int) -> str:
    """A chain's name from its name (any case) or id, among the chains the family is on."""
    text = str(chain).strip().lower()
    name = _CHAIN_NAMES.get(int(text)) if text.isdigit() else (text if text in CHAINS else None)
    if name is None:
        raise CatalogError(f"unknown chain {str(chain)!r}: use one of {', '.join(map(chain_label, CHAINS))}")
    if name not in family.chains():
        raise CatalogError(f"{family.name} has no tokens on {chain_label(name)}: its chains are "
                           f"{', '.join(map(chain_label, family.chains()))}")
    return name


def select(family: Family, chain: str, symbols: list[str] | None = None) -> list[CatalogToken]:
    """The family's tokens on `chain` (a name from `resolve_chain`): all of them, or these symbols in
    this order (each once)."""
    on_chain = family.tokens_on(chain)
    if not symbols:
        return on_chain
    by_symbol = {t.symbol: t for t in on_chain}
    everywhere = {t.symbol: t for t in family.tokens}
    chosen: list[CatalogToken] = []
    for s in dict.fromkeys(symbols):
        if s in by_symbol:
            chosen.append(by_symbol[s])
            continue
        if s in everywhere:
            raise CatalogError(f"{s} is not on {chain}: it is on "
                               f"{', '.join(map(chain_label, everywhere[s].addresses))}; the "
                               f"{len(on_chain)} {family.name} symbols on {chain} are {', '.join(by_symbol)}")
        folded = {k.casefold(): k for k in by_symbol}
        close = difflib.get_close_matches(s.casefold(), folded, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(folded[c] for c in close)}?)" if close else ""
        raise CatalogError(f"unknown symbol {s!r} for {family.name} on {chain}{hint}; the {len(on_chain)} "
                           f"symbols there are {', '.join(by_symbol)}")
    return chosen


def feed_hint(family: Family, token: CatalogToken) -> dict[str, str]:
    """The Chainlink feed to add for a token: name (ours, the devchain's convention), kind, quote and
    calendar. Its address, decimals and heartbeat are not in the issuers' lists."""
    if token.asset_class in _PRICED_24_7:
        return {"name": f"{token.symbol}/USD", "kind": FeedKind.STABLE.value, "quote": PriceQuote.PER_TOKEN.value,
                "calendar": "24/7"}
    per_token = family.feed_quote is PriceQuote.PER_TOKEN
    return {"name": f"{token.symbol if per_token else token.underlying}/USD", "kind": FeedKind.STOCK.value,
            "quote": family.feed_quote.value, "calendar": "XNYS"}


def build_config(family: Family, chain: str, rpc_urls: list[str], *, symbols: list[str] | None = None,
                 database_url: str | None = None, deployment_block: int = 0,
                 confirmations: int | str = 0) -> dict[str, Any]:
    """A configuration in the shape `indexer.config.Settings` accepts, with no [[feeds]]: the issuers'
    lists carry no feed addresses (see `feed_hint`)."""
    chain = resolve_chain(family, chain)
    config: dict[str, Any] = {} if database_url is None else {"database_url": database_url}
    config["chain"] = {"chain_id": CHAINS[chain], "rpc_urls": list(rpc_urls), "deployment_block": deployment_block,
                       "confirmations": confirmations}
    config["tokens"] = [
        {"symbol": t.symbol, "address": t.addresses[chain], "decimals": t.decimals, "underlying": t.underlying,
         "name": t.name, "asset_class": t.asset_class, "accounting": family.accounting.value}
        for t in select(family, chain, symbols)
    ]
    return config


# -- writing a catalog file from the issuer's list ---------------------------------------------------

def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def _wrap(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, width=108, subsequent_indent="  ", break_on_hyphens=False)]


def render_catalog(tokenlist: dict[str, Any], family: str, written: date) -> str:
    """The catalog file of `family` from its issuer's token list (a parsed Uniswap-style token list).
    Raises ValueError when the list contradicts itself (a symbol with two names, a chain we do not know)."""
    meta = FAMILY_META[family]
    entries = tokenlist["tokens"]
    by_symbol: dict[str, dict[str, Any]] = {}
    for e in entries:
        cid = int(e["chainId"])
        if cid not in _CHAIN_NAMES:
            raise ValueError(f"{e['symbol']}: chain {cid} is not in CHAINS")
        chain, address = _CHAIN_NAMES[cid], e["address"].lower()
        if not _ADDRESS.match(address):
            raise ValueError(f"{e['symbol']} on {chain}: {e['address']!r} is not a 20-byte address")
        t = by_symbol.setdefault(e["symbol"], {"name": e["name"], "decimals": int(e["decimals"]), "addresses": {}})
        if (t["name"], t["decimals"]) != (e["name"], int(e["decimals"])) or chain in t["addresses"]:
            raise ValueError(f"{e['symbol']}: two different entries on {chain} or across chains")
        t["addresses"][chain] = address
    owners = Counter((c, a) for t in by_symbol.values() for c, a in t["addresses"].items())
    if any(n > 1 for n in owners.values()):
        raise ValueError("two symbols share an address on one chain")

    per_chain = Counter(c for t in by_symbol.values() for c in t["addresses"])
    multi = [t for t in by_symbol.values() if len(t["addresses"]) > 1]
    one_address = sum(1 for t in multi if len(set(t["addresses"].values())) == 1)
    reused = sum(1 for n in Counter(e["address"].lower() for e in entries).values() if n > 1)  # on 2+ chains
    bad_case = [e for e in entries
                if e["address"][2:] not in (e["address"][2:].lower(), e["address"][2:].upper())
                and checksum(e["address"][2:].lower()) != e["address"]]
    version = ".".join(str(tokenlist["version"][k]) for k in ("major", "minor", "patch"))
    others = sorted(s for s in by_symbol if s in SYMBOL_CLASSES)
    classes = Counter(classify(s, underlying_of(s, meta["suffix"]), t["name"]) for s, t in by_symbol.items())

    if one_address == len(multi):
        addresses = (f"every symbol listed on more than one chain ({len(multi)} of {len(by_symbol)}) has ONE address, "
                     "the same on each of its chains; a symbol is not on every chain (counts below)")
    elif one_address == 0 and not reused:
        addresses = (f"every symbol has a DIFFERENT address on each chain ({len(multi)} symbols on more than one "
                     "chain; no address is on two chains): never reuse one chain's address on another")
    else:
        addresses = (f"{one_address} of {len(multi)} multi-chain symbols keep one address across chains, the others "
                     "differ per chain")
    head = [
        f"# The {family} catalog: the tokenized stocks in the official token list of {meta['issuer']}, per chain.",
        "#",
        f"# Source: the token list {tokenlist['name']!r}, version {version}, timestamp {tokenlist['timestamp']}",
        f"# (the issuer's official list). Written {written.isoformat()} by indexer.catalog.render_catalog: regenerate",
        "# from a new list version rather than editing by hand (tests/test_catalog.py checks this file against it).",
        "#",
        "# Facts from the list: chain, address (lowercased), symbol, name, decimals.",
        f"# Ours, not the issuer's: `underlying` (the symbol without its {meta['suffix']!r} suffix) and `asset_class`, our",
        "# classification: `etf` when the name says ETF/Fund/Trust, `single_stock` otherwise, then an override table",
        "# by ticker (indexer/catalog/__init__.py, ASSET_CLASS_OVERRIDES and SYMBOL_CLASSES).",
        *_wrap("Classes here: " + ", ".join(f"{c} {n}" for c, n in sorted(classes.items(), key=lambda kv: (-kv[1], kv[0])))
               + "."),
        *(_wrap("Not stocks or funds, kept and marked: " + ", ".join(f"{s} ({SYMBOL_CLASSES[s]})" for s in others) + ".")
          if others else []),
        "#",
        *_wrap(f"Addresses across chains: {addresses}."),
        *_wrap(f"Entries: {len(entries)} ({len(by_symbol)} symbols). Per chain: "
               + ", ".join(f"{c} ({CHAINS[c]}) {per_chain[c]}" for c in CHAINS if per_chain[c]) + "."),
    ]
    if bad_case:
        runs = []  # where the bad ones sit in the list, per chain: first .. last symbol of each consecutive run
        for chain in CHAINS:
            here = [i for i, e in enumerate(entries) if _CHAIN_NAMES[int(e["chainId"])] == chain]
            bad = [k for k, i in enumerate(here) if entries[i] in bad_case]
            if bad:
                consecutive = bad[-1] - bad[0] + 1 == len(bad)
                span = f"{entries[here[bad[0]]]['symbol']} .. {entries[here[bad[-1]]]['symbol']}"
                runs.append(f"{chain} {len(bad)} ({'one consecutive run of the list, ' + span if consecutive else 'scattered'})")
        head += _wrap(
            f"Checksums: {len(bad_case)} of the list's {len(entries)} mixed-case addresses are not valid EIP-55: "
            f"{'; '.join(runs)}. The indexer's address parser rejects them as the list writes them; their hex digits "
            "are kept, lowercased. "
            + meta.get("checksum_note", "Check them against the issuer's site or the chain's explorer") + ".")
    head += ["#", *_wrap(f"Accounting: {meta['accounting']}: {meta['accounting_note']}."),
             *_wrap(f"Price feed quote: {meta['quote_note']}."), "", "[family]",
             f"name = {_s(family)}", f"issuer = {_s(meta['issuer'])}", f"accounting = {_s(meta['accounting'])}",
             f"accounting_note = {_s(meta['accounting_note'])}", f"feed_quote = {_s(meta['feed_quote'])}",
             f"quote_note = {_s(meta['quote_note'])}", f"source = {_s(tokenlist['name'])}",
             f"source_version = {_s(version)}", f"source_timestamp = {_s(tokenlist['timestamp'])}",
             f"written = {written.isoformat()}"]
    body = []
    for symbol in sorted(by_symbol, key=lambda s: (s.casefold(), s)):
        t = by_symbol[symbol]
        underlying = underlying_of(symbol, meta["suffix"])
        addrs = ", ".join(f"{c} = {_s(t['addresses'][c])}" for c in CHAINS if c in t["addresses"])
        body += ["", "[[tokens]]", f"symbol = {_s(symbol)}", f"name = {_s(t['name'])}", f"decimals = {t['decimals']}",
                 f"underlying = {_s(underlying)}", f"asset_class = {_s(classify(symbol, underlying, t['name']))}",
                 f"addresses = {{ {addrs} }}"]
    return "\n".join(head + body) + "\n"
