"""Off-chain inputs of the risk run: the venue's accounts and crypto positions, loaded from CSV.

Parsing is pure: :func:`parse_accounts` and :func:`parse_positions` read the whole file, check every
row and return the rows or every problem with its line number. :func:`store` writes a file only when
it has no bad row, in one transaction: a file is never half loaded.

accounts.csv:   wallet, jurisdiction, tier, kyc_status[, cash_usd]
                (jurisdiction: an assigned ISO 3166-1 alpha-2 code, from pycountry; tier: one the
                configured policy's [accounts] allowed_tiers names, unless it allows "*")
positions.csv:  wallet, instrument, base_asset, size, entry_price, leverage

By default a file replaces the whole table (it is the venue's current book); ``merge`` upserts its
rows by key and keeps the others.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pycountry
from sqlalchemy import Connection, delete

from indexer.addresses import AddressError, parse_address
from indexer.errors import IndexerError
from indexer.risk.policy import load_policy
from indexer.store import models as m
from indexer.store.writes import upsert

KYC_STATUSES = ("approved", "pending", "rejected")
MAX_REPORTED = 50
Kind = Literal["accounts", "positions"]


class LoadError(IndexerError):
    """A file with bad rows; nothing was loaded. ``problems`` holds (line, message) pairs."""

    def __init__(self, path: str, problems: list[tuple[int, str]], rows_seen: int):
        self.problems = problems
        shown = "\n".join(f"  line {line}: {msg}" for line, msg in problems[:MAX_REPORTED])
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        super().__init__(f"{path}: {len(problems)} problem(s) in {rows_seen} data rows; nothing was loaded\n"
                         f"{shown}{more}")


@dataclass
class Parsed:
    kind: Kind
    rows: list[dict] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    rows_seen: int = 0


@dataclass(frozen=True)
class Column:
    name: str
    parse: Callable[[str], object]
    required: bool = True
    default: object = None


class _Bad(ValueError):
    pass


def _number(what: str, *, positive: bool = False, non_negative: bool = False, non_zero: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            raise _Bad(f"{what}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise _Bad(f"{what}: {text!r} is not a finite number")
        if positive and value <= 0:
            raise _Bad(f"{what}: {text!r} must be > 0")
        if non_negative and value < 0:
            raise _Bad(f"{what}: {text!r} must be >= 0")
        if non_zero and value == 0:
            raise _Bad(f"{what}: 0 is not a position; leave the row out")
        return value
    return parse


def _wallet(text: str) -> str:
    try:
        return parse_address(text, "wallet")
    except AddressError as exc:
        raise _Bad(str(exc)) from None


# ISO 3166 reserves UK "exceptionally" (at the United Kingdom's request) without assigning it: GB is the code
_RESERVED_FOR = {"UK": "GB"}


def _jurisdiction(text: str) -> str:
    code = text.strip().upper()
    if len(code) == 2 and code.isascii() and code.isalpha() and pycountry.countries.get(alpha_2=code) is not None:
        return code
    hint = _RESERVED_FOR.get(code)
    if hint is None:
        try:  # a name or an alpha-3 code: say which alpha-2 code it is
            hint = pycountry.countries.lookup(text.strip()).alpha_2
        except LookupError:
            hint = None
    what = ("is not an ISO 3166-1 alpha-2 country code" if len(code) != 2 or not code.isascii() or not code.isalpha()
            else "is not an assigned ISO 3166-1 alpha-2 country code")
    raise _Bad(f"jurisdiction: {text!r} {what}" + (f"; did you mean {hint!r}?" if hint else " (such as DE or SG)"))


def _tier(tiers: Iterable[str], policy: str):
    """Tiers the policy allows (matched without regard to case, stored as the policy spells them);
    a policy that allows "*" takes any tier."""
    allowed = list(dict.fromkeys(tiers))
    by_lower = {t.lower(): t for t in allowed}
    word = _word("tier", 32)

    def parse(text: str) -> str:
        value = word(text)
        if "*" in allowed:
            return value
        if value.lower() in by_lower:
            return by_lower[value.lower()]
        near = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
        raise _Bad(f"tier: {text!r} is not one of the tiers {policy} allows ({', '.join(allowed)})"
                   + (f"; did you mean {by_lower[near[0]]!r}?" if near else ""))
    return parse


def _word(what: str, max_len: int, choices: Iterable[str] | None = None):
    allowed = tuple(choices) if choices else None

    def parse(text: str) -> str:
        value = text.strip()
        if allowed is not None:
            value = value.lower()
            if value not in allowed:
                raise _Bad(f"{what}: {text!r} is not one of {', '.join(allowed)}")
        if not value:
            raise _Bad(f"{what}: empty")
        if len(value) > max_len:
            raise _Bad(f"{what}: longer than {max_len} characters")
        return value
    return parse


def _account_columns(tiers: Iterable[str], policy: str) -> tuple[Column, ...]:
    return (
        Column("wallet", _wallet),
        Column("jurisdiction", _jurisdiction),
        Column("tier", _tier(tiers, policy)),
        Column("kyc_status", _word("kyc_status", 16, KYC_STATUSES)),
        Column("cash_usd", _number("cash_usd", non_negative=True), required=False, default=0.0),
    )


def _position_columns(base_assets: Iterable[str]) -> tuple[Column, ...]:
    known = sorted(set(base_assets))

    def base(text: str) -> str:
        value = text.strip().upper()
        if value not in known:
            raise _Bad(f"base_asset: {text!r} has no price feed; known: {', '.join(known) or 'none configured'}")
        return value

    return (
        Column("wallet", _wallet),
        Column("instrument", _word("instrument", 64)),
        Column("base_asset", base),
        Column("size", _number("size", non_zero=True)),
        Column("entry_price", _number("entry_price", positive=True)),
        Column("leverage", _number("leverage", positive=True)),
    )


def _parse(kind: Kind, text: str, columns: tuple[Column, ...], key: tuple[str, ...]) -> Parsed:
    out = Parsed(kind)
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    seen: dict[tuple, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            missing = [c.name for c in columns if c.required and c.name not in header]
            unknown = [h for h in header if h not in {c.name for c in columns}]
            dupes = sorted({h for h in header if header.count(h) > 1})
            for msg in ([f"header: missing column(s) {', '.join(missing)}"] if missing else []) + \
                       ([f"header: unknown column(s) {', '.join(unknown)}"] if unknown else []) + \
                       ([f"header: column(s) {', '.join(dupes)} given twice"] if dupes else []):
                out.problems.append((line, msg))
            if out.problems:
                return out
            continue
        out.rows_seen += 1
        if len(row) != len(header):
            out.problems.append((line, f"{len(row)} fields, the header has {len(header)}"))
            continue
        cells = dict(zip(header, row, strict=True))
        parsed: dict[str, object] = {}
        for col in columns:
            if col.name not in cells or (not col.required and not cells[col.name].strip()):
                parsed[col.name] = col.default
                continue
            try:
                parsed[col.name] = col.parse(cells[col.name])
            except _Bad as exc:
                out.problems.append((line, str(exc)))
        if len(parsed) != len(columns):
            continue
        k = tuple(parsed[c] for c in key)
        if k in seen:
            out.problems.append((line, f"{', '.join(key)} {', '.join(map(str, k))} already given on line {seen[k]}"))
            continue
        seen[k] = line
        out.rows.append(parsed)
    if header is None:
        out.problems.append((1, f"empty file: expected a header line with {', '.join(c.name for c in columns)}"))
    return out


def parse_accounts(text: str, tiers: Iterable[str], *, policy: str = "the policy") -> Parsed:
    """`tiers`: the policy's [accounts] allowed_tiers (["*"]: any); `policy` names it in the messages."""
    return _parse("accounts", text, _account_columns(tiers, policy), ("wallet",))


def parse_positions(text: str, base_assets: Iterable[str]) -> Parsed:
    return _parse("positions", text, _position_columns(base_assets), ("wallet", "instrument"))


def base_assets_of(feed_names: Iterable[str]) -> list[str]:
    """Base assets a position can be marked with: the X of every configured "X/USD" feed."""
    return sorted({n.split("/")[0].upper() for n in feed_names if n.upper().endswith("/USD")})


def read_file(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LoadError(str(p), [(0, "file not found")], 0) from None
    except UnicodeDecodeError as exc:
        raise LoadError(str(p), [(0, f"not UTF-8 text ({exc.reason} at byte {exc.start})")], 0) from None


def store(conn: Connection, parsed: Parsed, *, source: str, merge: bool = False) -> int:
    """Write a parsed file (only a clean one) in the caller's transaction; return the rows written."""
    if parsed.problems:
        raise LoadError(source, parsed.problems, parsed.rows_seen)
    now = int(time.time())
    table = (m.Account if parsed.kind == "accounts" else m.Position).__table__
    keys = ["wallet"] if parsed.kind == "accounts" else ["wallet", "instrument"]
    if not merge:
        conn.execute(delete(table))
    upsert(conn, table, [dict(r, loaded_at=now) for r in parsed.rows], keys)
    return len(parsed.rows)


def position_assets(settings) -> list[str]:
    """Base assets positions may use under these settings: every configured crypto or stablecoin feed."""
    return base_assets_of(f.name for f in settings.feeds if f.kind in ("crypto", "stablecoin"))


def account_tiers(settings) -> tuple[list[str], str]:
    """(the tiers accounts may have under these settings: their policy's [accounts] allowed_tiers, the
    policy's name and version for messages)."""
    policy = load_policy(settings.policy_path)
    return list(policy.accounts.allowed_tiers), f"policy {policy.meta.name} {policy.meta.version}"


def parse_file(kind: Kind, path: str | Path, settings) -> Parsed:
    text = read_file(path)
    if kind == "accounts":
        tiers, policy = account_tiers(settings)
        parsed = parse_accounts(text, tiers, policy=policy)
    else:
        parsed = parse_positions(text, position_assets(settings))
    if parsed.problems:
        raise LoadError(str(path), parsed.problems, parsed.rows_seen)
    return parsed


def load_files(engine, settings, *, accounts: str | Path | None = None, positions: str | Path | None = None,
               merge: bool = False) -> dict[str, int]:
    """Parse every given file first, then write them all in one transaction; {kind: rows}."""
    parsed = {kind: (parse_file(kind, path, settings), str(path))
              for kind, path in (("accounts", accounts), ("positions", positions)) if path is not None}
    with engine.begin() as conn:
        return {kind: store(conn, p, source=src, merge=merge) for kind, (p, src) in parsed.items()}
