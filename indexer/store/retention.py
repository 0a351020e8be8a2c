"""What is kept of stored risk runs (`[retention]`), and the thin delete that applies it.

A stored run is its `risk_runs` row and its rows in `risk_holdings`, `risk_positions` and `risk_wallets`:
megabytes per run, a run every few seconds at the service's default cadence. Per chain, the policy keeps

- everything of the newest `keep_last` runs (the last stored, by id) and of the chain's latest run (the
  `latest_run` view's: the highest block not orphaned);
- everything of the first run of each UTC hour whose hour ends within `hourly_hours` of now, and its
  wallet rows while the hour ends within `hourly_wallets_days`;
- the same per UTC day with `daily_days` and `daily_wallets_days`;
- of every other run, its `risk_runs` row: never deleted, so a run id cited anywhere still names its run,
  with the run's totals; a line of its notes (`retention: ...`) says what was deleted and when.

"Now" is chain time: the synced head's block time. The first run of an hour or a day is its run stored
first (the lowest id; in the service, the earliest valued), among the runs that still hold what the tier
keeps, preferring runs whose block is on the chain: orphaned runs (`orphaned_at`) follow the same policy,
and stand for an hour only when it has no run on the chain that holds as much. So a run stored later, for
a past block say, never displaces the kept run of its hour (its id is higher), and once the hour's other
runs are thinned (they hold less) neither does a reorg: a run kept stays kept while its tier lasts.

`kept` and `plan` are pure. `apply` deletes in transactions of at most `batch_rows` rows each (its
caller's lock held around each one, so other writers go on between them), and writes a run's note in the
transaction that deletes its last rows. Applying the policy again deletes nothing more.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum

from sqlalchemy import Connection, Engine, Table, case, select, text, update

from indexer.config import RetentionConfig
from indexer.store import models as m
from indexer.store.progress import synced_head
from indexer.store.runs import latest_run

HOUR, DAY = 3_600, 86_400
NOTE_PREFIX = "retention: "

_rr = m.RiskRunRecord.__table__
_holdings, _positions, _wallets = m.RiskHolding.__table__, m.RiskPosition.__table__, m.RiskWallet.__table__


class Keep(IntEnum):
    """What of a run is stored, each level with everything below it."""

    ROW = 0  # its risk_runs row
    WALLETS = 1  # and its risk_wallets rows
    ALL = 2  # and its risk_holdings and risk_positions rows


@dataclass(frozen=True, slots=True)
class StoredRun:
    id: int
    block_number: int
    block_time: int
    orphaned: bool = False
    holds: Keep = Keep.ALL  # what of it is still stored


@dataclass(frozen=True, slots=True)
class Thinning:
    """Run `run_id` holds `holds`; the policy keeps `keep` of it (less)."""

    run_id: int
    holds: Keep
    keep: Keep


def tiers(policy: RetentionConfig) -> list[tuple[int, float, float]]:
    """(bucket seconds, seconds everything is kept, seconds the wallet rows are kept) per tier."""
    return [(HOUR, policy.hourly_hours * HOUR, policy.hourly_wallets_days * DAY),
            (DAY, policy.daily_days * DAY, policy.daily_wallets_days * DAY)]


def bucket_level(bucket: int, size: int, full_s: float, wallets_s: float, now: float) -> Keep | None:
    """What a tier keeps of its run for bucket `bucket` (start `bucket * size`): everything while the bucket
    ends within `full_s` of `now`, the wallet rows while it ends within `wallets_s`; None after that."""
    end = (bucket + 1) * size
    if full_s > 0 and end > now - full_s:
        return Keep.ALL
    if wallets_s > 0 and end > now - wallets_s:
        return Keep.WALLETS
    return None


def stand_in_order(run: StoredRun, level: Keep) -> tuple[int, bool, int]:
    """Which run of a bucket the tier keeps (the least): one that holds the most of `level`, on the chain
    rather than orphaned, stored first."""
    return -min(run.holds, level), run.orphaned, run.id


def kept(runs: Iterable[StoredRun], policy: RetentionConfig, now: float) -> dict[int, Keep]:
    """What the policy keeps of each run, at chain time `now`."""
    runs = list(runs)
    keep = {r.id: Keep.ROW for r in runs}
    for r in sorted(runs, key=lambda r: r.id)[-policy.keep_last:]:
        keep[r.id] = Keep.ALL
    on_chain = [r for r in runs if not r.orphaned]
    if on_chain:
        keep[max(on_chain, key=lambda r: (r.block_number, r.id)).id] = Keep.ALL
    for size, full_s, wallets_s in tiers(policy):
        if full_s <= 0 and wallets_s <= 0:
            continue
        buckets: dict[int, list[StoredRun]] = defaultdict(list)
        for r in runs:
            buckets[r.block_time // size].append(r)
        for b, members in buckets.items():
            level = bucket_level(b, size, full_s, wallets_s, now)
            if level is not None:
                first = min(members, key=lambda r, lv=level: stand_in_order(r, lv))
                keep[first.id] = max(keep[first.id], level)
    return keep


def plan(runs: Iterable[StoredRun], policy: RetentionConfig, now: float) -> list[Thinning]:
    """The runs that hold more than the policy keeps, the oldest first."""
    runs = list(runs)
    return thinnings(runs, kept(runs, policy, now))


def thinnings(runs: Iterable[StoredRun], keep: dict[int, Keep]) -> list[Thinning]:
    return [Thinning(r.id, r.holds, keep[r.id])
            for r in sorted(runs, key=lambda r: (r.block_time, r.id)) if keep[r.id] < r.holds]


# ------------------------------------------------------------------------------------------ the store
def _run_ids_in(conn: Connection, table: Table) -> set[int]:
    """The run ids that have rows in `table`: one index probe per run (a loose scan of its key, which
    starts with run_id), not a read of every row."""
    name = table.name
    return set(conn.execute(text(
        f"WITH RECURSIVE ids(run_id) AS (SELECT MIN(run_id) FROM {name} UNION ALL "
        f"SELECT (SELECT MIN(run_id) FROM {name} WHERE run_id > ids.run_id) FROM ids WHERE ids.run_id IS NOT NULL) "
        "SELECT run_id FROM ids WHERE run_id IS NOT NULL")).scalars())


def stored_runs(conn: Connection, chain_id: int, keep_last: int) -> list[StoredRun]:
    """The chain's runs that still hold rows besides their own, with the newest `keep_last` and the latest:
    every run the policy might thin or must keep (a run that holds nothing else changes nothing)."""
    detail = _run_ids_in(conn, _holdings) | _run_ids_in(conn, _positions)
    wallets = _run_ids_in(conn, _wallets)
    ids = detail | wallets
    ids.update(conn.execute(select(_rr.c.id).where(_rr.c.chain_id == chain_id).order_by(_rr.c.id.desc())
                            .limit(keep_last)).scalars())
    latest = latest_run(conn, chain_id)
    if latest is not None:
        ids.add(latest.id)
    out, ordered = [], sorted(ids)
    for i in range(0, len(ordered), 5_000):
        rows = conn.execute(select(_rr.c.id, _rr.c.block_number, _rr.c.block_timestamp, _rr.c.orphaned_at)
                            .where(_rr.c.chain_id == chain_id, _rr.c.id.in_(ordered[i:i + 5_000])))
        out.extend(StoredRun(int(r.id), int(r.block_number), int(r.block_timestamp), r.orphaned_at is not None,
                             Keep.ALL if r.id in detail else Keep.WALLETS if r.id in wallets else Keep.ROW)
                   for r in rows)
    return out


def _tables_beyond(keep: Keep) -> tuple[Table, ...]:
    return (_holdings, _positions) if keep == Keep.WALLETS else (_holdings, _positions, _wallets)


def _delete_some(conn: Connection, table: Table, run_id: int, limit: int) -> int:
    """Delete up to `limit` rows of `run_id` in `table`, found by their physical address (an index range
    of the run, then the rows themselves; PostgreSQL: a TID scan)."""
    name = table.name
    if conn.dialect.name == "postgresql":
        sql = (f"DELETE FROM {name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {name} WHERE run_id = :run "
               "LIMIT :n))")
    else:
        sql = f"DELETE FROM {name} WHERE rowid IN (SELECT rowid FROM {name} WHERE run_id = :run LIMIT :n)"
    return int(conn.execute(text(sql), {"run": run_id, "n": limit}).rowcount or 0)


def _any_left(conn: Connection, table: Table, run_id: int) -> bool:
    return conn.execute(select(table.c.run_id).where(table.c.run_id == run_id).limit(1)).first() is not None


def note(t: Thinning, at: float) -> str:
    """The line added to the run's notes once its rows beyond `t.keep` are deleted."""
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    what = ("holdings and positions deleted" if t.keep == Keep.WALLETS
            else "wallet rows deleted" if t.holds == Keep.WALLETS else "holdings, positions and wallet rows deleted")
    kept_ = "; its wallet rows are kept" if t.keep == Keep.WALLETS else "; this row and its totals are kept"
    return f"{NOTE_PREFIX}{what} at {when}{kept_}"


def _add_note(conn: Connection, run_id: int, line: str) -> None:
    conn.execute(update(_rr).where(_rr.c.id == run_id).values(
        notes=case((_rr.c.notes == "", line), else_=_rr.c.notes + "\n" + line)))


def thin_batch(conn: Connection, todo: Sequence[Thinning], batch_rows: int, *, at: float
               ) -> tuple[int, Counter[str]]:
    """In `conn`'s transaction: delete up to `batch_rows` rows of the runs of `todo`, in order, and note each
    run whose rows beyond its `keep` are then all gone. Returns how many runs of `todo`, from the first,
    are done, and the rows deleted per table."""
    budget, done, deleted = batch_rows, 0, Counter()
    for t in todo:
        for table in _tables_beyond(t.keep):
            if budget > 0:
                n = _delete_some(conn, table, t.run_id, budget)
                deleted[table.name] += n
                budget -= n
                if budget > 0:
                    continue  # fewer than asked: none left
            if _any_left(conn, table, t.run_id):
                return done, deleted
        _add_note(conn, t.run_id, note(t, at))
        done += 1
    return done, deleted


@dataclass(frozen=True)
class Survey:
    now: int  # chain time
    runs: list[StoredRun]
    keep: dict[int, Keep]
    plan: list[Thinning]

    def kept_after(self) -> Counter[Keep]:
        """Runs per level once the plan is applied, among the runs that hold rows besides their own."""
        return Counter(min(self.keep[r.id], r.holds) for r in self.runs if r.holds > Keep.ROW)


def survey(conn: Connection, chain_id: int, policy: RetentionConfig, *, now: float | None = None
           ) -> Survey | None:
    """The chain's runs that hold rows, what the policy keeps of each at `now` (default: the synced head's
    block time) and the plan; None when nothing is synced and no `now` is given."""
    if now is None:
        head = synced_head(conn, chain_id)
        if head is None:
            return None
        now = head[1]
    runs = stored_runs(conn, chain_id, policy.keep_last)
    keep = kept(runs, policy, now)
    return Survey(int(now), runs, keep, thinnings(runs, keep))


@dataclass
class Applied:
    now: int | None  # the chain time the policy was applied at (None: nothing is synced)
    planned: int = 0  # runs that held more than the policy keeps
    thinned: int = 0  # of them, runs whose rows beyond it are all deleted (and noted)
    rows_deleted: Counter[str] = field(default_factory=Counter)  # per table
    transactions: int = 0
    seconds: float = 0.0
    kept: Counter[Keep] = field(default_factory=Counter)  # runs per level kept, among those holding rows

    @property
    def complete(self) -> bool:
        return self.thinned == self.planned


def apply(engine: Engine, chain_id: int, policy: RetentionConfig, *, now: float | None = None,
          lock: AbstractContextManager | None = None, go_on: Callable[[], bool] | None = None,
          clock: Callable[[], float] = time.time) -> Applied:
    """Thin the chain's runs to what `policy` keeps at chain time `now` (default: the synced head's block
    time): transactions of at most `policy.batch_rows` deleted rows, each with `lock` held (the service's
    writer lock) and committed through the engine's own checks (the service's fence). Stops between two
    transactions when `go_on()` turns false; the next application goes on from there."""
    started = time.perf_counter()
    with engine.connect() as conn:
        found = survey(conn, chain_id, policy, now=now)
    if found is None:
        return Applied(now=None)
    todo = deque(found.plan)
    result = Applied(now=found.now, planned=len(todo), kept=found.kept_after())
    while todo and (go_on is None or go_on()):
        with lock or nullcontext(), engine.begin() as conn:
            done, deleted = thin_batch(conn, todo, policy.batch_rows, at=clock())
        result.transactions += 1
        result.rows_deleted.update(deleted)
        result.thinned += done
        for _ in range(done):
            todo.popleft()
    result.seconds = time.perf_counter() - started
    return result
