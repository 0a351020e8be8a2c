"""One snapshot of the world at block B, as arrays (RISK.md section 1). Plain data, no I/O.

Integers from the chain (balances, multipliers, supplies, reserves, oracle answers and round ids)
stay Python ints (numpy ``object`` arrays; ``int64`` is accepted when the values fit) because uint256
exceeds every machine type. Holdings' balances, the one column with a row per holding, may instead
come in the fixed-width form: ``(n, 4)`` uint64 limbs (:func:`is_limbs`), which loaders build from
decimal text with :func:`balances_from_decimal_strings` and which converts without a Python object
per row. Integers become floats in exactly one place: :func:`to_float_units`, or its fixed-width
sibling :func:`limbs_to_float_units` (and, for the ratio of two multipliers, :meth:`CorporateActions.ratios`).

Layout:
- tokens, feeds: one row per token / feed; tokens point at their price feed by ``feed_idx``;
- holdings: COO triplets ``(wallet_idx, token_idx, balance_raw)``, one row per non-empty pair, no
  duplicate pairs (see :meth:`Snapshot.validate`);
- accounts: one row per wallet index ``0..n_wallets-1`` (``has_account`` false where none is on file);
- positions: one row per crypto position;
- history: every feed's rounds up to B in CSR form (``offsets``), sorted by ``updated_at`` per feed;
- actions: every token's corporate actions up to B (splits, reverse splits, stock dividends folded into
  its multiplier) in CSR form, sorted by effective time: what adjusts its feed's history and pairs each
  price with the multiplier of its own time (docs/risk.md section 2);
- liquidity: optional, one row per token: the measured DEX depth, volume and pool price at B
  (docs/risk.md section 15); a token without measures keeps the policy's configured liquidity figure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from indexer.risk.errors import SnapshotError
from indexer.risk.uint256 import is_limbs, limbs_to_float_units, raw_ints, to_float_units
from indexer.types import Accounting, FeedKind, UnixSeconds

# -- snapshot parts --------------------------------------------------------------------------------


_CSR_COLUMNS = frozenset({"vault_move_offsets", "vault_move_at", "vault_move"})  # not one row per token


@dataclass(frozen=True, eq=False)
class Tokens:
    symbol: np.ndarray  # str, keys into the policy's [tokens]
    decimals: np.ndarray  # int64
    accounting: np.ndarray  # int8, Accounting.code
    multiplier_raw: np.ndarray  # object ints, 18-decimal fixed point in force at B (10**18 = 1)
    paused: np.ndarray  # bool
    feed_idx: np.ndarray  # int64 into Feeds, -1 = no price feed
    quote: np.ndarray  # int8, PriceQuote.code of that feed for this token
    total_supply_raw: np.ndarray  # object ints, totalSupply at B
    has_reserve: np.ndarray  # bool, a proof-of-reserve figure is configured
    reserve_raw: np.ndarray  # object ints, reserves held by the custodian, in shares
    reserve_decimals: np.ndarray  # int64
    reserve_updated_at: np.ndarray | None = None  # int64, updatedAt of the reserve round; None: not known
    # ERC-4626 vaults over another listed token (docs/risk.md section 16); None: no vault in the snapshot
    vault_asset_idx: np.ndarray | None = None  # int64, the asset's token index; -1: not a vault
    vault_rate_raw: np.ndarray | None = None  # object ints, convertToAssets(10**decimals) at B; 0: no read
    # the moves of each vault's rate between consecutive reads up to B, CSR: token t owns rows
    # vault_move_offsets[t]:vault_move_offsets[t+1], oldest first; at: the later read's time; move: max(a/b, b/a) - 1
    vault_move_offsets: np.ndarray | None = None  # int64, n_tokens + 1
    vault_move_at: np.ndarray | None = None  # int64
    vault_move: np.ndarray | None = None  # float64

    def __len__(self) -> int:
        return len(self.symbol)


@dataclass(frozen=True, eq=False)
class Feeds:
    """The latest round of each feed at B (Chainlink AggregatorV3 ``latestRoundData``)."""

    name: np.ndarray  # str, e.g. "AAPL/USD", "BTC/USD"
    kind: np.ndarray  # int8, FeedKind.code
    decimals: np.ndarray  # int64
    has_round: np.ndarray  # bool, False: no round at all
    round_id: np.ndarray  # object ints (uint80)
    answer_raw: np.ndarray  # object ints (int256)
    updated_at: np.ndarray  # int64, UTC seconds
    answered_in_round: np.ndarray  # object ints (uint80)
    heartbeat_s: np.ndarray  # int64, the feed's configured heartbeat; 0 = use the policy's for its kind

    def __len__(self) -> int:
        return len(self.name)


@dataclass(frozen=True, eq=False)
class FeedHistory:
    """Rounds per feed up to B, CSR: feed f owns rows ``offsets[f]:offsets[f+1]``, sorted by time."""

    offsets: np.ndarray  # int64, len n_feeds + 1
    updated_at: np.ndarray  # int64
    answer_raw: np.ndarray  # object ints or int64
    flagged: np.ndarray | None = None  # int64 per feed: rounds left out of the history (not `ok`); None: 0

    @classmethod
    def empty(cls, n_feeds: int) -> FeedHistory:
        return cls(
            np.zeros(n_feeds + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
        )


@dataclass(frozen=True, eq=False)
class CorporateActions:
    """Corporate actions per token up to B, CSR: token t owns rows ``offsets[t]:offsets[t+1]``, sorted by
    ``effective_at``. From ``effective_at`` on, one share before the action is ``new / old`` shares
    (``indexer.accounting.CorporateAction``); the exact integers stay ints until the engine's boundary."""

    offsets: np.ndarray  # int64, len n_tokens + 1
    effective_at: np.ndarray  # int64
    new: np.ndarray  # object ints
    old: np.ndarray  # object ints

    @classmethod
    def empty(cls, n_tokens: int) -> CorporateActions:
        z = np.zeros(0, dtype=object)
        return cls(np.zeros(n_tokens + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), z, z.copy())

    def ratios(self) -> np.ndarray:
        """``new / old`` per action as float64: the int -> float boundary of corporate actions."""
        return np.array([int(n) / int(o) for n, o in zip(self.new, self.old, strict=True)], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Holdings:
    wallet_idx: np.ndarray  # int64
    token_idx: np.ndarray  # int64
    balance_raw: np.ndarray  # balanceOf at B: object ints, int64, or (n, 4) uint64 limbs (is_limbs)
    frozen: np.ndarray  # bool, the wallet is frozen on that token

    def __len__(self) -> int:
        return len(self.wallet_idx)

    def balance_ints(self) -> list[int]:
        """Balances as Python ints, whatever the form of ``balance_raw`` (for the reference, checks)."""
        return raw_ints(self.balance_raw)

    def balance_units(self, decimals: np.ndarray) -> np.ndarray:
        """Balances in token units as float64 (``decimals``: per token): the int -> float boundary."""
        ti = np.asarray(self.token_idx, dtype=np.int64)
        if is_limbs(self.balance_raw):
            return limbs_to_float_units(self.balance_raw, decimals, index=ti)
        return to_float_units(self.balance_raw, decimals, index=ti)


@dataclass(frozen=True, eq=False)
class Accounts:
    """Off-chain account records, one row per wallet index."""

    wallet: np.ndarray  # str addresses, row i = wallet index i
    has_account: np.ndarray  # bool
    jurisdiction: np.ndarray  # numpy str ('<U2'), ISO 3166 alpha-2 ("" when unknown)
    tier: np.ndarray  # numpy str ('<U16'); object arrays work but cost a conversion per run
    kyc_approved: np.ndarray  # bool
    sanctioned: np.ndarray  # bool
    cash_usd: np.ndarray  # float64, cash held with the venue (0 when none)

    def __len__(self) -> int:
        return len(self.wallet)


@dataclass(frozen=True, eq=False)
class Positions:
    """Crypto positions margined by the wallet's collateral (RISK.md section 6)."""

    wallet_idx: np.ndarray  # int64
    feed_idx: np.ndarray  # int64, the base asset's price feed (the mark)
    size: np.ndarray  # float64, signed, in base units (long > 0)
    entry_price: np.ndarray  # float64
    leverage: np.ndarray  # float64, > 0

    def __len__(self) -> int:
        return len(self.wallet_idx)

    @classmethod
    def empty(cls) -> Positions:
        z = np.zeros(0)
        zi = np.zeros(0, dtype=np.int64)
        return cls(zi, zi.copy(), z, z.copy(), z.copy())


@dataclass(frozen=True, eq=False)
class Liquidity:
    """Measured DEX liquidity per token at B, one row per token (docs/risk.md section 15).

    The measures come from the token's Uniswap v3 pools (``indexer.liquidity.v3``), **selling the token**,
    in token units (whole tokens, ``raw / 10**decimals``) so that a split with no market move scales depth and
    volume by the split ratio exactly as it scales balances. A row with ``measured`` false (the token has no
    pool) is ignored whatever its other values: the token keeps the policy's configured figure, as without
    this table. Float64 arrays (int64 for ``updated_at``), NaN where a figure is not known:

    - ``depth_1pct``, ``depth_2pct``, ``depth_5pct``: the largest sale, summed over the token's pools, whose
      swap moves each pool's price by at most 1%, 2%, 5% (``v3.depths``, fee included);
    - ``volume_24h``, ``volume_7d``: token units swapped in the pools (either direction, each swap's
      token amount once) in the 24 hours and the 7 days up to B;
    - ``pool_price_usd``: USD per token, the pools' mid prices weighted by their 2% depth (the price a sale
      split across the pools by their depth starts from; a thin pool off the market carries the weight of
      what it can absorb); NaN where no pool's quote asset has a USD price;
    - ``premium_bp``: optional, the sync's own premium of that price against the oracle's answer
      (``v3.premium_bp``), kept for comparison: the engine judges the price against the NAV it values at
      (which carries corporate actions), ``TokenRisk.nav_premium_bp``;
    - ``fresh``: the pools were read at B (the pool sync is not behind); stale measures are not used;
    - ``updated_at``: optional, the block time of the pool reads; older than ``liquidity.max_age_s`` is stale.
    """

    measured: np.ndarray  # bool, the token has pool measures
    fresh: np.ndarray  # bool, the measures are current at B
    depth_1pct: np.ndarray  # float64, token units
    depth_2pct: np.ndarray  # float64, token units
    depth_5pct: np.ndarray  # float64, token units
    volume_24h: np.ndarray  # float64, token units
    volume_7d: np.ndarray  # float64, token units
    pool_price_usd: np.ndarray  # float64, USD per token; NaN = none
    premium_bp: np.ndarray | None = None  # float64, the sync's premium against the oracle answer; NaN = none
    updated_at: np.ndarray | None = None  # int64, block time of the pool reads; None: ``fresh`` alone decides
    # optional, the same measures in USD (what the sales pay, what the swaps traded): where given and finite the
    # engine counts depth and volume in value, converted to token units at its own NAV per token (section 15)
    depth_1pct_usd: np.ndarray | None = None
    depth_2pct_usd: np.ndarray | None = None
    depth_5pct_usd: np.ndarray | None = None
    volume_24h_usd: np.ndarray | None = None
    volume_7d_usd: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.measured)

    @classmethod
    def absent(cls, n_tokens: int) -> Liquidity:
        """No token measured: the engine's numbers are those of no liquidity table at all."""
        nan = np.full(n_tokens, np.nan)
        no = np.zeros(n_tokens, dtype=bool)
        return cls(no, no.copy(), nan, nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy())

    def validate(self, n_tokens: int) -> None:
        """Shapes, and for measured fresh rows (the ones the engine uses): finite non-negative depths rising
        with the move, non-negative volumes with the 7 days at least the last 24 hours, a positive pool price
        or NaN. A stale row may hold anything (NaN where a read failed): it is not used."""
        for f in fields(self):
            col = getattr(self, f.name)
            if col is not None and len(col) != n_tokens:
                raise SnapshotError(f"liquidity.{f.name}: {len(col)} rows, expected one per token ({n_tokens})")
        m = np.asarray(self.measured, dtype=bool) & np.asarray(self.fresh, dtype=bool)
        if not m.any():
            return
        cols = {}
        for name in ("depth_1pct", "depth_2pct", "depth_5pct", "volume_24h", "volume_7d"):
            v = np.asarray(getattr(self, name), dtype=np.float64)[m]
            bad = ~np.isfinite(v) | (v < 0)
            if bad.any():
                raise SnapshotError(
                    f"liquidity.{name}: {int(bad.sum())} measured fresh tokens have a negative, NaN or infinite "
                    "value; give token units >= 0, or set measured = false for a token without pools (fresh = "
                    "false where the read failed)")
            cols[name] = v
        for lo, hi in (("depth_1pct", "depth_2pct"), ("depth_2pct", "depth_5pct")):
            if (cols[hi] < cols[lo]).any():
                raise SnapshotError(f"liquidity.{hi}: smaller than {lo} for a measured fresh token; a larger move "
                                    "absorbs at least as much (check the moves' order)")
        if (cols["volume_7d"] < cols["volume_24h"] * (1.0 - 1e-9)).any():
            raise SnapshotError("liquidity.volume_7d: smaller than volume_24h for a measured fresh token; the 7 days "
                                "include the last 24 hours (check the windows)")
        price = np.asarray(self.pool_price_usd, dtype=np.float64)[m]
        if (~np.isnan(price) & ~(np.isfinite(price) & (price > 0))).any():
            raise SnapshotError("liquidity.pool_price_usd: must be a positive finite USD price per token, or NaN "
                                "where no pool has a USD quote")
        for name in ("depth_1pct_usd", "depth_2pct_usd", "depth_5pct_usd", "volume_24h_usd", "volume_7d_usd"):
            col = getattr(self, name)
            if col is not None:
                v = np.asarray(col, dtype=np.float64)[m]
                if (np.isinf(v) | (v < 0)).any():
                    raise SnapshotError(f"liquidity.{name}: negative or infinite for a measured token; give USD >= 0, "
                                        "or NaN to count that token in token units")
        if self.premium_bp is not None and np.isinf(np.asarray(self.premium_bp, dtype=np.float64)[m]).any():
            raise SnapshotError("liquidity.premium_bp: infinite; give NaN where there is no premium")


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything the engine needs about block B. ``block_timestamp`` is the engine's "now"."""

    block_number: int
    block_timestamp: UnixSeconds
    tokens: Tokens
    feeds: Feeds
    history: FeedHistory
    holdings: Holdings
    accounts: Accounts
    positions: Positions
    actions: CorporateActions | None = None  # None: no token had one
    liquidity: Liquidity | None = None  # None: no token has DEX measures (the policy's configured figures)

    @property
    def n_wallets(self) -> int:
        return len(self.accounts)

    def validate(self) -> None:
        """Check shapes, index ranges, ordering and uniqueness; raise SnapshotError naming the field.

        Not called by the engine on every run (sorting a million pairs costs time): loaders call it
        once after building a snapshot, tests call it on every generated world.
        """
        for part_name in ("tokens", "feeds", "holdings", "accounts", "positions"):
            part = getattr(self, part_name)
            n = len(part)
            for f in fields(part):
                col = getattr(part, f.name)
                if col is not None and f.name not in _CSR_COLUMNS and len(col) != n:
                    raise SnapshotError(
                        f"{part_name}.{f.name}: {len(col)} rows, expected {n} like the others"
                    )
        n_t, n_f, n_w = len(self.tokens), len(self.feeds), self.n_wallets
        _check_index("tokens.feed_idx", self.tokens.feed_idx, n_f, allow_minus_one=True)
        if self.tokens.vault_asset_idx is not None:
            _check_index("tokens.vault_asset_idx", self.tokens.vault_asset_idx, n_t, allow_minus_one=True)
            assets = self.tokens.vault_asset_idx[self.tokens.vault_asset_idx >= 0]
            if (self.tokens.vault_asset_idx[assets] >= 0).any():
                raise SnapshotError("tokens.vault_asset_idx: a vault's asset is itself a vault")
            t = self.tokens
            if t.vault_rate_raw is None or len(t.vault_rate_raw) != n_t:
                raise SnapshotError("tokens.vault_rate_raw: one per token with tokens.vault_asset_idx")
            off = t.vault_move_offsets
            if (off is None or len(off) != n_t + 1 or off[0] != 0 or (np.diff(off) < 0).any()
                    or t.vault_move_at is None or t.vault_move is None
                    or not len(t.vault_move_at) == len(t.vault_move) == off[-1]):
                raise SnapshotError("tokens.vault_move_offsets: must have n_tokens + 1 entries from 0 to "
                                    "len(vault_move_at) == len(vault_move)")
        _check_index("holdings.wallet_idx", self.holdings.wallet_idx, n_w)
        _check_index("holdings.token_idx", self.holdings.token_idx, n_t)
        _check_index("positions.wallet_idx", self.positions.wallet_idx, n_w)
        _check_index("positions.feed_idx", self.positions.feed_idx, n_f)
        if len(self.holdings):
            key = self.holdings.wallet_idx.astype(np.int64) * max(n_t, 1) + self.holdings.token_idx
            if len(np.unique(key)) != len(key):
                raise SnapshotError(
                    "holdings: duplicate (wallet_idx, token_idx) pairs; sum them into one row"
                )
            if not is_limbs(self.holdings.balance_raw) and any(b < 0 for b in self.holdings.balance_ints()):
                raise SnapshotError("holdings.balance_raw: negative balance; balances are uint256")
        if len(self.positions) and not (np.asarray(self.positions.leverage) > 0).all():
            raise SnapshotError("positions.leverage: must be > 0; use 1 for an unlevered position")
        bad = set(np.unique(self.feeds.kind).tolist()) - {k.code for k in FeedKind}
        if bad:
            raise SnapshotError(f"feeds.kind: unknown codes {sorted(bad)}; use FeedKind.code")
        bad = set(np.unique(self.tokens.accounting).tolist()) - {a.code for a in Accounting}
        if bad:
            raise SnapshotError(f"tokens.accounting: unknown codes {sorted(bad)}; use Accounting.code")
        a = self.actions
        if a is not None:
            if len(a.offsets) != n_t + 1 or a.offsets[0] != 0 or a.offsets[-1] != len(a.effective_at):
                raise SnapshotError("actions.offsets: must have n_tokens + 1 entries from 0 to len(effective_at)")
            if not len(a.new) == len(a.old) == len(a.effective_at):
                raise SnapshotError("actions: one new and one old multiplier per effective_at")
            if any(int(o) <= 0 or int(n) <= 0 for n, o in zip(a.new, a.old, strict=True)):
                raise SnapshotError("actions: multipliers must be positive")
        if self.liquidity is not None:
            self.liquidity.validate(n_t)
        h = self.history
        if len(h.offsets) != n_f + 1 or h.offsets[0] != 0 or h.offsets[-1] != len(h.updated_at):
            raise SnapshotError("history.offsets: must have n_feeds + 1 entries from 0 to len(updated_at)")
        if len(h.answer_raw) != len(h.updated_at):
            raise SnapshotError("history.answer_raw: one answer per updated_at")
        for f in range(n_f):
            ts = h.updated_at[h.offsets[f] : h.offsets[f + 1]]
            if len(ts) > 1 and (np.diff(ts) < 0).any():
                raise SnapshotError(
                    f"history: rounds of feed {self.feeds.name[f]!r} are not sorted by updated_at"
                )


def _check_index(name: str, idx: np.ndarray, n: int, allow_minus_one: bool = False) -> None:
    if len(idx) == 0:
        return
    lo = -1 if allow_minus_one else 0
    if int(np.min(idx)) < lo or int(np.max(idx)) >= n:
        raise SnapshotError(f"{name}: index out of range [{lo}, {n}); fix the row mapping in the loader")
