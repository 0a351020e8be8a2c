"""Risk policy: the one place every risk number lives (RISK.md, opening paragraph).

A policy is a TOML file validated into frozen pydantic models. Its identity is the sha256 of the
canonical JSON of the validated model, so two files that say the same thing (comments, key order,
``0.1`` vs ``1e-1``) share a hash, and any change to a number changes it. Results carry
``Policy.version_string`` so every number can be traced to the policy that produced it.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from statistics import NormalDist
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from indexer.errors import IndexerError

FEED_KINDS = ("stock", "crypto", "stable")
CRYPTO_SHOCK_KEY = "crypto"  # scenario shock applied to crypto feeds (positions' base assets)

Fraction01 = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Positive = Annotated[float, Field(gt=0.0)]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class PolicyError(IndexerError, ValueError):
    """A policy that cannot be used; the message names the dotted field path and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Meta(_Model):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""


class EligibilityPolicy(_Model):
    min_value_usd: NonNegative  # BELOW_MINIMUM dust floor (RISK.md section 3)


class AccountsPolicy(_Model):
    require_account: bool  # ACCOUNT_UNKNOWN when a wallet has no account record
    require_kyc: bool  # ACCOUNT_KYC when the account's KYC is not approved
    allowed_jurisdictions: list[str] = Field(min_length=1)  # ISO 3166 alpha-2, or ["*"] for any
    blocked_jurisdictions: list[str] = []
    allowed_tiers: list[str] = Field(min_length=1)  # or ["*"] for any


class AssetClassPolicy(_Model):
    eligible: bool
    base_haircut: Fraction01  # h_base (RISK.md section 4)
    wallet_share_cap: Fraction01 | None = None  # overrides concentration.wallet_share_cap for the class


class TokenPolicy(_Model):
    asset_class: str
    eligible: bool | None = None  # overrides the class
    base_haircut: Fraction01 | None = None  # overrides the class
    daily_liquidity_usd: Positive | None = None  # enables k * sqrt(value / daily_liquidity)
    wallet_cap_usd: NonNegative | None = None  # per-wallet cap on this token's collateral value


class VolatilityPolicy(_Model):
    enabled: bool = True
    ewma_lambda: float = Field(gt=0.0, lt=1.0)
    confidence: float = Field(gt=0.5, lt=1.0)
    horizon_days: Positive  # liquidation horizon H in trading days
    lookback_days: int = Field(ge=2)  # returns in the anti-procyclical window (sessions, for stock feeds)
    continuous_lookback_days: int = Field(default=365, ge=2)  # daily returns of 24/7 feeds in the window
    floor: dict[str, Fraction01]  # daily sigma floor per feed kind
    sigma_without_history: Fraction01  # daily sigma assumed when a feed has no usable returns

    @field_validator("floor")
    @classmethod
    def _every_kind(cls, v: dict[str, float]) -> dict[str, float]:
        missing = [k for k in FEED_KINDS if k not in v]
        extra = [k for k in v if k not in FEED_KINDS]
        if missing or extra:
            raise ValueError(
                f"needs exactly the feed kinds {list(FEED_KINDS)}; missing {missing}, unknown {extra}"
            )
        return v

    @property
    def z(self) -> float:
        """One-sided normal quantile of ``confidence`` (2.326 for 0.99)."""
        return NormalDist().inv_cdf(self.confidence)


class SizeBand(_Model):
    from_usd: NonNegative
    addon: Fraction01  # marginal haircut add-on for the part of the value inside this band


class SizePolicy(_Model):
    bands: list[SizeBand] = Field(min_length=1)
    impact_k: NonNegative  # k in k * sqrt(value / daily_liquidity_usd)
    supply_k: NonNegative  # k in k * sqrt(balance / total_supply)

    @field_validator("bands")
    @classmethod
    def _bands_start_at_zero_and_increase(cls, v: list[SizeBand]) -> list[SizeBand]:
        if v[0].from_usd != 0.0:
            raise ValueError("the first band must start at from_usd = 0")
        for a, b in zip(v, v[1:], strict=False):
            if not b.from_usd > a.from_usd:
                raise ValueError(f"from_usd must strictly increase ({a.from_usd} then {b.from_usd})")
        return v


class LiquidityPolicy(_Model):
    """Measured DEX liquidity (docs/risk.md section 15): the square-root impact term of h_size, the platform
    liquidation cost and the price against NAV. Used only for tokens whose snapshot has fresh measures; every
    other token keeps ``tokens.<symbol>.daily_liquidity_usd`` and ``size.impact_k``."""

    enabled: bool = True  # false: measures are ignored, every token keeps the configured figure
    impact_y: NonNegative = 1.0  # Y of the square-root law, impact = Y sigma sqrt(H) sqrt(Q / A)
    participation: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2  # share of the horizon's volume a sale takes
    depth_move_bp: Literal[100, 200, 500] = 100  # which measured depth counts as the standing depth
    volume_basis: Literal["7d", "lower"] = "7d"  # ADV: the 7-day mean, or the lower of it and the last 24 h
    impact_cap: Fraction01 = 0.5  # the liquidity term (per holding and platform-wide) never exceeds this
    platform_cost: bool = True  # the cost of liquidating all that is pledged feeds the platform cut
    nav_tolerance_bp: NonNegative = 200.0  # NAV_DEVIATION beyond |pool / NAV - 1| of this many bp
    max_age_s: int = Field(default=3_600, gt=0)  # measures read longer ago than this (updated_at) are stale


class VaultPolicy(_Model):
    """ERC-4626 vaults over a listed token (docs/risk.md section 16). A vault share is valued at its rate
    (convertToAssets) times its asset's value; the vault must be listed in [tokens] itself."""

    # VAULT_RATE_JUMP when the rate, in the asset's value-continuous units, moved by more than this between
    # two reads (max(a/b, b/a) - 1) at or before B within window_s
    max_rate_jump: Annotated[float, Field(gt=0.0)] = 0.05
    window_s: int = Field(default=604_800, gt=0, le=90 * 86_400)  # runs load 90 days of reads (runs/snapshot.py)


class GapPolicy(_Model):
    enabled: bool = True
    cap: Fraction01  # h_gap never exceeds this


class ConcentrationPolicy(_Model):
    wallet_share_cap: Annotated[float, Field(gt=0.0, le=1.0)]
    platform_supply_share_cap: Annotated[float, Field(gt=0.0, le=1.0)]


class StalenessRule(_Model):
    heartbeat_s: int = Field(gt=0)  # used when the feed's own heartbeat is not configured
    grace_s: int = Field(ge=0)
    # past the limit (heartbeat + grace) a price takes the stale add-on; past this multiple of the limit
    # it is cut off (ORACLE_STALE, ineligible). 1.0 brings back a cliff at the limit.
    cutoff_multiple: float = Field(default=4.0, ge=1.0)


class StalenessPolicy(_Model):
    stock: StalenessRule
    crypto: StalenessRule
    stable: StalenessRule


class ReservesPolicy(_Model):
    tolerance: Fraction01  # RESERVE_SHORTFALL when reserves < supply shares * (1 - tolerance)
    max_age_s: int = Field(default=172_800, gt=0)  # RESERVE_STALE when the reserve round is older (wall clock)


class ValuationPolicy(_Model):
    # a price published before a corporate action now in force: value it at the multiplier of its own time
    # ("value_at_round"), or make the holding ineligible until the feed prints again ("ineligible",
    # code PRICE_BEFORE_ACTION)
    price_before_action: Literal["value_at_round", "ineligible"] = "value_at_round"
    # VALUATION_INCONSISTENT when the feed's adjusted price across the token's latest action moved by more
    # than this log return (the feed contradicts the multiplier: a split a feed did not pass through, or
    # passed through twice), or when reserves exceed the shares the supply represents by more than
    # reserve_excess (the multiplier or the reserve report is off)
    action_move_tolerance: Annotated[float, Field(gt=0.0)] = 0.25
    reserve_excess: Annotated[float, Field(gt=0.0)] = 0.25


class MarginTier(_Model):
    up_to_notional_usd: Positive | None = None  # None: no upper bound (the last tier)
    im_rate: Fraction01
    mm_rate: Fraction01


class MarginPolicy(_Model):
    im_mode: Literal["leverage", "tiers"]
    max_leverage: Annotated[float, Field(ge=1.0)]
    mm_rate: Fraction01
    tiers: list[MarginTier] = []

    @model_validator(mode="after")
    def _consistent(self) -> MarginPolicy:
        if self.mm_rate > 1.0 / self.max_leverage:
            raise ValueError(
                f"mm_rate {self.mm_rate} exceeds the initial margin rate at max_leverage "
                f"(1/{self.max_leverage}); lower mm_rate or max_leverage"
            )
        if self.im_mode == "tiers" and not self.tiers:
            raise ValueError("im_mode = 'tiers' needs at least one [[margin.tiers]] entry")
        for i, t in enumerate(self.tiers):
            if t.mm_rate > t.im_rate:
                raise ValueError(f"tiers[{i}]: mm_rate {t.mm_rate} exceeds im_rate {t.im_rate}")
            last = i == len(self.tiers) - 1
            if (t.up_to_notional_usd is None) != last:
                raise ValueError(f"tiers[{i}]: only the last tier omits up_to_notional_usd, and it must")
            if i and t.up_to_notional_usd is not None:
                prev = self.tiers[i - 1].up_to_notional_usd
                if prev is not None and not t.up_to_notional_usd > prev:
                    raise ValueError(f"tiers[{i}]: up_to_notional_usd must increase")
        return self


class Scenario(_Model):
    name: Identifier
    source: str = Field(min_length=1)  # the real episode the shocks are calibrated to
    shocks: dict[str, Annotated[float, Field(ge=-1.0)]]  # simple return per asset class and "crypto"
    crypto_feed_shocks: dict[str, Annotated[float, Field(ge=-1.0)]] = {}  # per crypto feed name
    risk_off: bool = False  # DEX depth shrinks by stress.depth_factor in this scenario (docs/risk.md section 15)


class StressPolicy(_Model):
    vol_multiplier: Annotated[float, Field(ge=1.0)]
    equity_crypto_corr_floor: Annotated[float, Field(ge=-1.0, le=1.0)]
    equity_classes: list[str]  # asset classes whose stock feeds are on the equity side of the floor
    two_sided: bool = True  # also stress the regime where equity-crypto correlations fall to -floor
    # risk-off stresses see this fraction of the measured DEX depth (volume is kept: it rises in crashes)
    depth_factor: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2
    parametric_risk_off: bool = True  # the parametric stress (both regimes) is risk-off
    scenarios: list[Scenario] = Field(min_length=1)

    @field_validator("scenarios")
    @classmethod
    def _unique_names(cls, v: list[Scenario]) -> list[Scenario]:
        names = [s.name for s in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"scenario names must be unique; repeated: {dupes}")
        return v


class Policy(_Model):
    meta: Meta
    eligibility: EligibilityPolicy
    accounts: AccountsPolicy
    asset_classes: dict[Identifier, AssetClassPolicy] = Field(min_length=1)
    tokens: dict[str, TokenPolicy]
    volatility: VolatilityPolicy
    size: SizePolicy
    gap: GapPolicy
    concentration: ConcentrationPolicy
    staleness: StalenessPolicy
    reserves: ReservesPolicy
    valuation: ValuationPolicy = ValuationPolicy()
    liquidity: LiquidityPolicy = LiquidityPolicy()
    vaults: VaultPolicy = VaultPolicy()
    margin: MarginPolicy
    stress: StressPolicy

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        if CRYPTO_SHOCK_KEY in self.asset_classes:
            raise ValueError(
                f"asset_classes.{CRYPTO_SHOCK_KEY}: the name is reserved for the crypto shock of scenarios; rename the class"
            )
        for sym, tok in self.tokens.items():
            if tok.asset_class not in self.asset_classes:
                raise ValueError(
                    f"tokens.{sym}.asset_class: unknown asset class {tok.asset_class!r}; "
                    f"use one of {sorted(self.asset_classes)} or add [asset_classes.{tok.asset_class}]"
                )
        for cls_name in self.stress.equity_classes:
            if cls_name not in self.asset_classes:
                raise ValueError(
                    f"stress.equity_classes: unknown asset class {cls_name!r}; use one of {sorted(self.asset_classes)}"
                )
        needed = [*self.asset_classes, CRYPTO_SHOCK_KEY]
        for i, sc in enumerate(self.stress.scenarios):
            missing = [k for k in needed if k not in sc.shocks]
            unknown = [k for k in sc.shocks if k not in needed]
            if missing:
                raise ValueError(
                    f"stress.scenarios[{i}].shocks: scenario {sc.name!r} has no shock for {missing}; "
                    "add one per asset class and for 'crypto'"
                )
            if unknown:
                raise ValueError(
                    f"stress.scenarios[{i}].shocks: scenario {sc.name!r} names unknown classes {unknown}; "
                    f"use {needed}"
                )
        return self

    # -- identity -------------------------------------------------------------------------------

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no whitespace) of the validated policy."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def version_string(self) -> str:
        return f"{self.meta.name}/{self.meta.version}+sha256:{self.content_hash[:12]}"

    # -- resolved per-token values ----------------------------------------------------------------

    def token_eligible(self, symbol: str) -> bool:
        tok = self.tokens.get(symbol)
        if tok is None:
            return False
        return self.asset_classes[tok.asset_class].eligible if tok.eligible is None else tok.eligible

    def token_base_haircut(self, symbol: str) -> float:
        """h_base of a token; 1.0 (nothing counts) for a token the policy does not list."""
        tok = self.tokens.get(symbol)
        if tok is None:
            return 1.0
        return (
            self.asset_classes[tok.asset_class].base_haircut if tok.base_haircut is None else tok.base_haircut
        )

    def token_wallet_share_cap(self, symbol: str) -> float:
        tok = self.tokens.get(symbol)
        if tok is not None:
            cap = self.asset_classes[tok.asset_class].wallet_share_cap
            if cap is not None:
                return cap
        return self.concentration.wallet_share_cap

    def scenario_token_shock(self, scenario: Scenario, symbol: str) -> float:
        tok = self.tokens.get(symbol)
        return 0.0 if tok is None else scenario.shocks[tok.asset_class]

    def scenario_crypto_shock(self, scenario: Scenario, feed_name: str) -> float:
        return scenario.crypto_feed_shocks.get(feed_name, scenario.shocks[CRYPTO_SHOCK_KEY])


# -- loading --------------------------------------------------------------------------------------

_FIXES = {
    "missing": "add it to the policy file",
    "extra_forbidden": "remove it or fix its spelling",
    "greater_than_equal": "raise it to the bound",
    "less_than_equal": "lower it to the bound",
    "greater_than": "raise it above the bound",
    "less_than": "lower it below the bound",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "int_type": "write an integer",
    "int_from_float": "write an integer",
    "bool_type": "write true or false",
    "string_pattern_mismatch": "use lower_case_with_underscores",
    "too_short": "add at least one entry",
    "literal_error": "use one of the allowed values",
}


def _dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _policy_error(exc: ValidationError, source: str) -> PolicyError:
    lines = []
    for err in exc.errors(include_url=False):
        path = _dotted(err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        fix = _FIXES.get(err["type"])
        # model-level checks put the dotted path in the message themselves
        text = msg if not err["loc"] else f"{path}: {msg}"
        lines.append(text + (f" ({fix})" if fix else ""))
    return PolicyError(f"invalid policy {source}:\n  " + "\n  ".join(lines))


def policy_from_mapping(
    data: Mapping[str, Any],
    *,
    known_tokens: Iterable[str] | None = None,
    known_feeds: Iterable[str] | None = None,
    source: str = "<mapping>",
) -> Policy:
    """Validate a parsed policy. ``known_tokens`` / ``known_feeds``: reject names the indexer does not know."""
    try:
        policy = Policy.model_validate(dict(data))
    except ValidationError as exc:
        raise _policy_error(exc, source) from None
    if known_tokens is not None:
        known = set(known_tokens)
        for sym in policy.tokens:
            if sym not in known:
                raise PolicyError(
                    f"invalid policy {source}:\n  tokens.{sym}: unknown token {sym!r}; "
                    f"remove it or add it to the indexer's token config (known: {sorted(known)})"
                )
    if known_feeds is not None:
        feeds = set(known_feeds)
        for i, sc in enumerate(policy.stress.scenarios):
            for name in sc.crypto_feed_shocks:
                if name not in feeds:
                    raise PolicyError(
                        f"invalid policy {source}:\n  stress.scenarios[{i}].crypto_feed_shocks.{name}: "
                        f"unknown feed {name!r}; use one of {sorted(feeds)}"
                    )
    return policy


BUNDLED = Path(__file__).resolve().parents[1] / "policies"  # the policies shipped in the package


def bundled_policies() -> list[str]:
    return sorted(p.stem for p in BUNDLED.glob("*.toml"))


def policy_file(value: str | Path) -> Path:
    """The file of a policy named by its path, or by the name of a bundled policy (`default`,
    `kraken_2026`: a bare name without `.toml`)."""
    p = Path(value)
    if p.suffix != ".toml" and len(p.parts) == 1:
        bundled = BUNDLED / f"{p.name}.toml"
        if not bundled.is_file():
            raise PolicyError(f"no bundled policy named {str(value)!r}: the bundled ones are "
                              f"{', '.join(bundled_policies())}; or give the path of a policy .toml file")
        return bundled
    return p


def load_policy(
    path: str | Path,
    *,
    known_tokens: Iterable[str] | None = None,
    known_feeds: Iterable[str] | None = None,
) -> Policy:
    """Read and validate a policy TOML file (a path, or the name of a bundled policy: `policy_file`)."""
    p = policy_file(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {p} not found: check the policy path in the config") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {p} is not valid TOML: {exc}") from None
    return policy_from_mapping(data, known_tokens=known_tokens, known_feeds=known_feeds, source=str(p))
