"""`collateral-indexer config new`: a configuration for a real chain, written from the bundled catalog.

The file loads as it is (`indexer.config.load_settings`) and says, in comments, what is still to fill
in: the price feeds (the issuers' lists carry none), a deployment block that shortens the first
backfill, and the risk policy's entries for these symbols.
"""

from __future__ import annotations

import textwrap
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import tomli_w
import typer
from pydantic import ValidationError

from indexer.catalog import (
    CHAINS,
    FAMILIES,
    CatalogError,
    Family,
    build_config,
    chain_label,
    feed_hint,
    load_family,
    resolve_chain,
)
from indexer.errors import ConfigError

config_app = typer.Typer(no_args_is_help=True, help="Configuration files for real chains, from the bundled catalog.")


@config_app.callback()
def _group() -> None:
    """Configuration files for real chains, from the bundled catalog of xStocks and Ondo deployments."""


def _line(key: str, value: Any, comment: str | None = None) -> str:
    if isinstance(value, list):  # one line, so that a comment can follow
        text = f"{key} = [" + ", ".join(tomli_w.dumps({"v": v}).strip().removeprefix("v = ") for v in value) + "]"
    else:
        text = tomli_w.dumps({key: value}).strip()
    return f"{text}  # {comment}" if comment else text


def render_config(family: Family, chain: str, config: dict[str, Any], *, written: date | None = None) -> str:
    """The TOML text of a `build_config` result, with the comments that say what to fill in. Loading it
    gives back `config` exactly (the command checks)."""
    written = written or date.today()
    tokens = config["tokens"]
    c = config["chain"]
    first = feed_hint(family, next(t for t in family.tokens if t.symbol == tokens[0]["symbol"]))
    out = [
        f"# Collateral indexer configuration: {len(tokens)} {family.name} tokens ({family.issuer}) on {chain_label(chain)}.",
        f"# Written {written.isoformat()} by `collateral-indexer config new` from the bundled catalog",
        f"# (indexer/catalog/{family.name}.toml: {family.source!r} {family.source_version}, {family.source_timestamp}).",
        "# It loads as it is; before its numbers mean anything, fill in:",
        "#",
        "# 1. Price feeds. The issuers' token lists carry no feed addresses, so there is no [[feeds]] and every",
        "#    holding is ORACLE_MISSING (valued at nothing) until you add one per token. Under each token a",
        "#    comment names the feed; its address, decimals and heartbeat come from the feed's page on",
        f"#    data.chain.link for {chain}. Add a block like this one, then `feed = \"{first['name']}\"` on the token:",
        "#",
        "#    [[feeds]]",
        f"#    name = \"{first['name']}\"",
        "#    address = \"0x...\"     # the feed's proxy address on this chain",
        "#    decimals = 8          # the feed's decimals()",
        f"#    kind = \"{first['kind']}\"",
        f"#    quote = \"{first['quote']}\"",
        "#    heartbeat = 86400     # the feed's heartbeat, seconds",
        f"#    calendar = \"{first['calendar']}\"",
        f"#    token = \"{tokens[0]['symbol']}\"",
        "#",
        *[f"#    {line}" for line in _wrapped(f"Quote {family.quote_note}.")],
        "#",
        "# 2. chain.deployment_block: 0 reads from genesis. It works, but the block at which the earliest of",
        "#    these tokens was deployed (its contract-creation transaction on the chain's explorer) makes the",
        "#    first backfill much shorter.",
        "#",
        "# 3. The risk policy (policy_path; default: the bundled `default`) lists its own symbols with their",
        "#    asset class and haircut: a token it does not list is never eligible collateral",
        "#    (TOKEN_NOT_ELIGIBLE). The asset_class below is our classification, not the issuer's, and is used",
        "#    by the reports only.",
        "#",
        *[f"# {line}" for line in _wrapped(f"Accounting {family.accounting.value}: {family.accounting_note}.")],
        "",
    ]
    if "database_url" in config:
        out += [_line("database_url", config["database_url"]), ""]
    out += [
        "[chain]",
        _line("chain_id", c["chain_id"], chain),
        _line("rpc_urls", c["rpc_urls"], "list several for failover, tried in this order"),
        _line("deployment_block", c["deployment_block"], "0: from genesis; a real deployment block shortens the first backfill"),
        _line("confirmations", c["confirmations"], "reorgs are found and rolled back; a number, \"safe\" or \"finalized\" "
              "reads only settled blocks"),
    ]
    by_symbol = {t.symbol: t for t in family.tokens}
    for t in tokens:
        hint = feed_hint(family, by_symbol[t["symbol"]])
        out += ["", "[[tokens]]", *(_line(k, v) for k, v in t.items()),
                f"# feed = \"{hint['name']}\"  # to add: [[feeds]] name = \"{hint['name']}\", kind = \"{hint['kind']}\", "
                f"quote = \"{hint['quote']}\", calendar = \"{hint['calendar']}\", token = \"{t['symbol']}\" (address, "
                f"decimals, heartbeat: data.chain.link, {chain})"]
    return "\n".join(out) + "\n"


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, width=104, break_on_hyphens=False)


def _error(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@config_app.command("new")
def config_new(
    family: Annotated[str, typer.Option("--family", help=f"Token family: {' or '.join(FAMILIES)}.")],
    chain: Annotated[str, typer.Option("--chain", help="Chain name or id: "
                                       + ", ".join(f"{n} ({i})" for n, i in CHAINS.items()) + ".")],
    rpc: Annotated[list[str], typer.Option("--rpc", help="JSON-RPC URL of the chain; repeat for failover.")],
    symbols: Annotated[str | None, typer.Option("--symbols", help="Only these tokens, comma-separated "
                                                "(e.g. AAPLx,TSLAx); default: all of the family's on the chain.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: FAMILY-CHAIN.toml here).")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="database_url to write (default: the "
                                                     "indexer's, sqlite:///collateral.sqlite).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write a configuration for a real chain: the family's tokens there, from the issuer's list."""
    from indexer.config import Settings, _describe

    for url in rpc:
        if not url.startswith(("http://", "https://")):
            _error(f"--rpc {url!r} is not an http(s) URL")
    wanted = [s.strip() for s in symbols.split(",") if s.strip()] if symbols is not None else None
    if wanted is not None and not wanted:
        _error("--symbols is empty: give symbols such as AAPLx,TSLAx, or leave the option out for all of them")
    try:
        fam = load_family(family.strip().lower())
        name = resolve_chain(fam, chain)
        config = build_config(fam, name, rpc, symbols=wanted, database_url=database_url)
    except CatalogError as exc:
        _error(str(exc))
    text = render_config(fam, name, config)
    try:  # what load_settings will read: the text must give back the configuration and validate
        if tomllib.loads(text) != config:
            raise ConfigError("the written TOML does not read back as the configuration")
        Settings(**config)
    except ValidationError as exc:
        _error(f"the configuration does not validate: {_describe(exc)}", 1)
    except ConfigError as exc:
        _error(f"the configuration does not validate: {exc}", 1)
    path = out if out is not None else Path(f"{fam.name}-{name}.toml")
    if path.exists() and not force:
        _error(f"{path} exists: choose another --out, or --force to overwrite it", 1)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _error(f"cannot write {path}: {exc.strerror}", 1)
    n = len(config["tokens"])
    typer.echo(f"wrote {path}: {n} {fam.name} token{'s' * (n != 1)} on {chain_label(name)}, "
               f"accounting {fam.accounting.value}")
    typer.echo("to fill in (comments in the file say how):")
    typer.echo(f"  - [[feeds]]: none yet, the issuers' lists carry no feed addresses; until each token has one, its "
               f"holdings are ORACLE_MISSING (quote {fam.feed_quote.value}; the feed to add is named under each token)")
    typer.echo("  - chain.deployment_block = 0 reads from genesis; the tokens' deployment block shortens the first backfill")
    typer.echo("  - the risk policy lists its own symbols: tokens it does not list are not eligible collateral")
    typer.echo(f"then: collateral-indexer init-db --config {path}")
