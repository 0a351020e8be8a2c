"""The one settings model: chain, RPC URLs, tokens, feeds, database, policy.

Loaded once at start-up from a TOML file (the dev chain's manifest is such a file) with
environment overrides (`INDEXER_DATABASE_URL`, `INDEXER_CHAIN__RPC_URLS='["http://..."]'`, ...).
Precedence, highest first: the command line's overrides (`load_settings(path, **overrides)`), the
environment, the file, the defaults. Errors name the field and say what to put there; an unknown key, in
the file or as an `INDEXER_*` variable, is an error that suggests the nearest valid name.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from indexer.addresses import AddressError, parse_address
from indexer.chain.retry import RetryPolicy
from indexer.errors import ConfigError
from indexer.types import Accounting, BalanceSource, FeedKind, PriceQuote

MULTICALL3_ADDRESS = "0xca11bde05977b3631167028862be2a173976ca11"
ENV_PREFIX = "INDEXER_"
ENV_DELIMITER = "__"

# what `load_settings` read from the file: a source below the environment (see Settings.settings_customise_sources)
_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("indexer_settings_file", default=None)


def normalize_address(value: str, field: str = "address") -> str:
    """Lowercase 0x-hex; raises ConfigError naming the field when it is not a 20-byte address."""
    try:
        return parse_address(value, field)
    except AddressError as exc:
        raise ConfigError(str(exc)) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainConfig(_Strict):
    chain_id: int = Field(gt=0)
    rpc_urls: list[str] = Field(min_length=1)
    deployment_block: int = Field(ge=0)
    confirmations: int | Literal["safe", "finalized"] = 0
    multicall3: str | None = MULTICALL3_ADDRESS
    retry: RetryPolicy = Field(default_factory=RetryPolicy)  # `[chain.retry]`: the RPC client's retries

    @model_validator(mode="before")
    @classmethod
    def _single_url(cls, data: Any) -> Any:
        # the manifest writes one `rpc_url`; configuration files may list several `rpc_urls`
        if isinstance(data, dict) and "rpc_url" in data:
            data = dict(data)
            url = data.pop("rpc_url")
            data.setdefault("rpc_urls", [url])
        return data

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"{u!r} is not an http(s) URL")
        return urls

    @field_validator("multicall3")
    @classmethod
    def _mc(cls, v: str | None) -> str | None:
        return None if v in (None, "") else normalize_address(v, "chain.multicall3")

    @field_validator("confirmations")
    @classmethod
    def _conf(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("must be >= 0, or 'safe' / 'finalized'")
        return v


class TokenConfig(_Strict):
    symbol: str = Field(min_length=1)
    address: str
    decimals: int = Field(ge=0, le=77)
    underlying: str = ""
    isin: str = ""
    name: str = ""
    asset_class: str
    accounting: Accounting
    feed: str | None = None  # name of the price feed that values this token
    reserve_feed: str | None = None  # name of its proof-of-reserve feed
    balance_source: BalanceSource = BalanceSource.LOGS
    # an ERC-4626 vault whose asset is the configured token with this symbol: its shares are valued through
    # convertToAssets at the block (docs/liquidity.md, "ERC-4626 vaults"); it has no feed of its own
    vault_asset: str | None = None

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return normalize_address(v, "tokens.address")


class FeedConfig(_Strict):
    name: str = Field(min_length=1)
    address: str
    decimals: int = Field(ge=0, le=36)
    kind: FeedKind
    quote: PriceQuote | None = None
    heartbeat: int = Field(gt=0)
    calendar: Literal["XNYS", "24/7"] = "24/7"
    token: str | None = None  # the token it prices or whose reserves it reports

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return normalize_address(v, "feeds.address")


class PoolConfig(_Strict):
    """A DEX pool where a configured token trades (docs/liquidity.md). The pool's two tokens, fee and tick
    spacing are read from the chain at start-up; one of the two must be `token`'s address."""

    name: str = Field(min_length=1)
    address: str
    token: str  # the symbol of the configured token the pool trades
    protocol: Literal["uniswap_v3"] = "uniswap_v3"
    quote_feed: str | None = None  # a feed pricing the other token in USD; none: the other token counts at 1 USD

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return normalize_address(v, "pools.address")


class ServiceConfig(_Strict):
    """The background service (`collateral-indexer run`): job intervals, health thresholds, HTTP."""

    sync_interval_s: float = Field(2.0, gt=0)  # sync tick; never overlaps itself, missed runs coalesce
    blocks_per_tick: int = Field(2_000, gt=0)
    reconcile_interval_s: float = Field(600.0, gt=0)
    risk_min_interval_s: float = Field(10.0, ge=0)  # risk runs after a tick that changed inputs, at most this often
    staleness_interval_s: float = Field(30.0, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(9108, ge=0, le=65535)  # 0: pick a free port (printed at start)
    max_lag_blocks: int = Field(50, ge=0)  # /healthz turns unhealthy beyond this head lag ...
    max_lag_seconds: float = Field(600.0, ge=0)  # ... or this many seconds without a successful tick
    unhealthy_on_stale_feed: bool = True
    leader_poll_s: float = Field(1.0, gt=0)  # a standby instance tries to take the lead this often


class RetentionConfig(_Strict):
    """`[retention]`: what is kept of stored risk runs (store/retention.py), applied by the service's leader
    every `interval_s` and by `collateral-indexer prune`. Ages are chain time (the synced head's block time);
    hours and days are UTC. A period of 0 turns its tier off. Every run keeps its `risk_runs` row."""

    enabled: bool = True  # the service's retention job; `prune` applies the periods either way
    interval_s: float = Field(600.0, gt=0)
    batch_rows: int = Field(10_000, gt=0)  # rows deleted per transaction, at most
    keep_last: int = Field(60, ge=1)  # the newest N runs (by id) keep everything
    hourly_hours: float = Field(48.0, ge=0)  # the first run of each hour keeps everything this long ...
    hourly_wallets_days: float = Field(14.0, ge=0)  # ... and its wallet rows this long
    daily_days: float = Field(35.0, ge=0)  # the first run of each day keeps everything this long ...
    daily_wallets_days: float = Field(400.0, ge=0)  # ... and its wallet rows this long


class AlertsConfig(_Strict):
    """`[alerts]`: webhooks the service's leader posts to when a wallet's margin status worsens between two
    risk runs or a feed turns stale (service/alerts.py). No URL: no alerts."""

    webhook_urls: list[str] = Field(default_factory=list)
    secret: SecretStr | None = None  # HMAC-SHA256 key: each post signed in `X-Indexer-Signature: sha256=<hex>`
    on_recovery: bool = False  # also post `feed_recovered` when a stale feed has a fresh round again
    timeout_s: float = Field(10.0, gt=0)  # per delivery attempt
    max_attempts: int = Field(10, ge=1)  # then the delivery goes to `alert_dead_letters`
    backoff_base_s: float = Field(1.0, gt=0)  # the wait before retry n: base * 2**(n-1), capped, with jitter
    backoff_cap_s: float = Field(300.0, gt=0)
    retry_after_cap_s: float = Field(3600.0, ge=0)  # the longest wait a receiver's Retry-After may ask for
    poll_s: float = Field(1.0, gt=0)  # how often the delivery threads look for new or due deliveries

    @field_validator("webhook_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"{u!r} is not an http(s) URL")
        if len(set(urls)) != len(urls):
            raise ValueError("a URL is listed twice")
        return urls


class Settings(BaseSettings):
    """Everything the indexer needs to run against one chain."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid", frozen=True
    )

    chain: ChainConfig
    tokens: list[TokenConfig] = Field(min_length=1)
    feeds: list[FeedConfig] = Field(default_factory=list)
    pools: list[PoolConfig] = Field(default_factory=list)
    database_url: str = "sqlite:///collateral.sqlite"
    policy_path: str = "default"  # a bundled policy's name, or a .toml file (relative: to this file)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    world: dict[str, Any] = Field(default_factory=dict)  # what the dev chain says about its world
    events: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # highest first: keyword arguments (the command line's overrides), the environment, the file
        check_environment(os.environ)
        return init_settings, env_settings, InitSettingsSource(settings_cls, dict(_FILE_DATA.get() or {}))

    @model_validator(mode="after")
    def _references(self) -> Settings:
        symbols = [t.symbol for t in self.tokens]
        dup = {s for s in symbols if symbols.count(s) > 1}
        if dup:
            raise ValueError(f"tokens: symbol {sorted(dup)[0]!r} is listed twice")
        addrs = [t.address for t in self.tokens] + [f.address for f in self.feeds] + [p.address for p in self.pools]
        dup_a = {a for a in addrs if addrs.count(a) > 1}
        if dup_a:
            raise ValueError(f"address {sorted(dup_a)[0]} is used twice by tokens, feeds or pools")
        feeds = {f.name: f for f in self.feeds}
        if len(feeds) != len(self.feeds):
            raise ValueError("feeds: two feeds share a name")
        for t in self.tokens:
            for attr in ("feed", "reserve_feed"):
                ref = getattr(t, attr)
                if ref is not None and ref not in feeds:
                    raise ValueError(f"tokens[{t.symbol}].{attr}: no feed named {ref!r} in [[feeds]]")
            if t.feed is not None and feeds[t.feed].quote is None:
                raise ValueError(f"feeds[{t.feed}].quote: a price feed must say per_share or per_token")
            if t.vault_asset is not None:
                asset = next((a for a in self.tokens if a.symbol == t.vault_asset), None)
                if asset is None:
                    raise ValueError(f"tokens[{t.symbol}].vault_asset: no token with symbol {t.vault_asset!r}")
                if asset.vault_asset is not None:
                    raise ValueError(f"tokens[{t.symbol}].vault_asset: {asset.symbol} is itself a vault")
                if t.accounting != Accounting.PLAIN or t.feed is not None or t.reserve_feed is not None:
                    raise ValueError(f"tokens[{t.symbol}]: an ERC-4626 vault's shares are plain ERC-20 units valued "
                                     "through its asset: accounting = \"plain\" and no feed or reserve_feed")
        for f in self.feeds:
            if f.token is not None and f.token not in symbols:
                raise ValueError(f"feeds[{f.name}].token: no token with symbol {f.token!r}")
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pools: two pools share a name")
        for p in self.pools:
            if p.token not in symbols:
                raise ValueError(f"pools[{p.name}].token: no token with symbol {p.token!r}")
            if p.quote_feed is not None and p.quote_feed not in feeds:
                raise ValueError(f"pools[{p.name}].quote_feed: no feed named {p.quote_feed!r} in [[feeds]]")
        return self

    def token(self, symbol: str) -> TokenConfig:
        for t in self.tokens:
            if t.symbol == symbol:
                return t
        raise ConfigError(f"unknown token {symbol!r}: known are {', '.join(t.symbol for t in self.tokens)}")

    def pools_of(self, symbol: str) -> list[PoolConfig]:
        return [p for p in self.pools if p.token == symbol]

    def feed(self, name: str) -> FeedConfig:
        for f in self.feeds:
            if f.name == name:
                return f
        raise ConfigError(f"unknown feed {name!r}")


def load_settings(path: str | Path, **overrides: Any) -> Settings:
    """Read a TOML configuration (or a dev chain manifest); raise ConfigError with the field path.

    `overrides` (the command line's flags) beat the environment (`INDEXER_*`), which beats the file,
    which beats the defaults."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"configuration file {p} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {p} is not valid TOML: {exc}") from None
    policy = data.get("policy_path")
    if isinstance(policy, str) and (policy.endswith(".toml") or len(Path(policy).parts) > 1):
        data["policy_path"] = str((p.parent / policy).resolve())  # relative to the configuration file
    check_environment(os.environ)
    token = _FILE_DATA.set(data)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"{p}: {_describe(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    finally:
        _FILE_DATA.reset(token)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings table an annotation holds (`ChainConfig`, `list[TokenConfig]`, ...), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (model := _model_in(arg)) is not None:
            return model
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    """The keys a table accepts: its fields, and `rpc_url` in [chain] (the manifest's single URL)."""
    return [*model.model_fields, *(["rpc_url"] if model is ChainConfig else [])]


def _unknown(name: str, known: list[str], show: Callable[[str], str] = str,
             show_close: Callable[[str], str] | None = None) -> str:
    """`unknown setting; did you mean X?`, X the nearest of `known` (or the known keys when none is close),
    each written by `show` (the nearest by `show_close` when given)."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"unknown setting; did you mean {(show_close or show)(close[0])}?"
    return "unknown setting; known are " + ", ".join(show(k) for k in known)


def check_environment(environ: Mapping[str, str]) -> None:
    """Every `INDEXER_*` variable must name a setting (`INDEXER_SERVICE__HTTP_PORT`: service.http_port);
    raise ConfigError naming the first that does not, with the nearest valid name. Names are read without
    regard to case, as the settings model reads them. Free-form tables (world) take any key below them;
    lists (tokens, feeds) are set whole, as JSON."""
    for var in sorted(environ):
        if not var.upper().startswith(ENV_PREFIX):
            continue
        parts = var[len(ENV_PREFIX):].lower().split(ENV_DELIMITER)
        table: type[BaseModel] = Settings
        for depth, part in enumerate(parts):
            if part not in table.model_fields:
                above, rest = parts[:depth], parts[depth + 1:]
                hint = _unknown(part, list(table.model_fields), lambda k, _a=above: _env_name(*_a, k),
                                lambda k, _a=above, _r=rest: _env_name(*_a, k, *_r))
                raise ConfigError(f"environment variable {var}: {hint}")
            annotation = table.model_fields[part].annotation
            if depth == len(parts) - 1 or get_origin(annotation) is dict:
                break  # a setting, or a free-form table (world) that takes any key below it
            below = _model_in(annotation)
            if below is None or get_origin(annotation) is list:
                name = _env_name(*parts[:depth + 1])
                whole = f"(a list as JSON: {name}='[...]')" if get_origin(annotation) is list else f"({name}=...)"
                raise ConfigError(f"environment variable {var}: {name} is not a table of settings; set it whole "
                                  + whole)
            table = below


def _env_name(*keys: str) -> str:
    """The variable of a setting's path: ("service", "http_port") -> INDEXER_SERVICE__HTTP_PORT."""
    return ENV_PREFIX + ENV_DELIMITER.join(keys).upper()


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and err["loc"]:
            *above, key = err["loc"]
            table = Settings
            for part in above:  # walk down to the table that holds the key; list indices stay as they are
                if isinstance(part, str) and table is not None:
                    field = table.model_fields.get(part)
                    table = None if field is None else _model_in(field.annotation)
            if table is not None and isinstance(key, str):
                prefix = "".join(f"{x}." for x in above)
                parts.append(f"{prefix}{key}: " + _unknown(key, _keys(table), lambda k, _p=prefix: f"{_p}{k}"))
                continue
        parts.append(f"{loc}: {msg}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
