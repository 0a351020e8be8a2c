"""Retention of stored risk runs (store/retention.py): the pure choice of what each run keeps, by hypothesis
against the rules as documented, and the thin delete on SQLite and PostgreSQL with real stored runs of a
synced world: exactly the rows the policy keeps remain, every run row stays, a second pass deletes nothing."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, text, update
from typer.testing import CliRunner

from indexer.cli import app
from indexer.config import RetentionConfig, load_settings
from indexer.errors import ConfigError
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.store.progress import synced_head
from indexer.store.retention import (
    DAY,
    HOUR,
    NOTE_PREFIX,
    Keep,
    StoredRun,
    apply,
    kept,
    plan,
    stored_runs,
    survey,
)
from tests.conftest import DATABASES
from tests.runs.worlds import POLICY, synced_world

ALL, WALLETS, ROW = Keep.ALL, Keep.WALLETS, Keep.ROW


# ------------------------------------------------------------------------------------------ the rules, restated
def first_of(members: list[StoredRun], level: Keep) -> StoredRun:
    """The run a tier keeps of a bucket, as documented: of the runs holding the most of what the tier keeps,
    one on the chain if there is one, and of those the one stored first."""
    for held in range(level, -1, -1):
        for orphaned in (False, True):
            pool = [r for r in members if min(r.holds, level) == held and r.orphaned == orphaned]
            if pool:
                return min(pool, key=lambda r: r.id)
    raise AssertionError("empty bucket")


def protected(runs: list[StoredRun], policy: RetentionConfig) -> set[int]:
    """The newest keep_last runs by id, and the chain's latest (highest block, then id, not orphaned)."""
    ids = {r.id for r in sorted(runs, key=lambda r: r.id)[-policy.keep_last:]}
    on_chain = [r for r in runs if not r.orphaned]
    if on_chain:
        ids.add(max(on_chain, key=lambda r: (r.block_number, r.id)).id)
    return ids


def tier_periods(policy: RetentionConfig) -> list[tuple[int, float, float]]:
    return [(HOUR, policy.hourly_hours * HOUR, policy.hourly_wallets_days * DAY),
            (DAY, policy.daily_days * DAY, policy.daily_wallets_days * DAY)]


def level_at(bucket: int, size: int, full_s: float, wallets_s: float, now: float) -> Keep | None:
    """A bucket counts while it ends within the period: [start, start + size) overlaps (now - period, ...)."""
    ends = (bucket + 1) * size
    if full_s and now - ends < full_s:
        return ALL
    if wallets_s and now - ends < wallets_s:
        return WALLETS
    return None


def buckets_of(runs: list[StoredRun], size: int) -> dict[int, list[StoredRun]]:
    out: dict[int, list[StoredRun]] = defaultdict(list)
    for r in runs:
        out[r.block_time // size].append(r)
    return out


def oracle(runs: list[StoredRun], policy: RetentionConfig, now: float) -> dict[int, Keep]:
    keep = {r.id: (ALL if r.id in protected(runs, policy) else ROW) for r in runs}
    for size, full_s, wallets_s in tier_periods(policy):
        for b, members in buckets_of(runs, size).items():
            level = level_at(b, size, full_s, wallets_s, now)
            if level is not None:
                first = first_of(members, level)
                keep[first.id] = max(keep[first.id], level)
    return keep


def applied(runs: list[StoredRun], policy: RetentionConfig, now: float) -> list[StoredRun]:
    keep = kept(runs, policy, now)
    return [replace(r, holds=min(r.holds, keep[r.id])) for r in runs]


# ------------------------------------------------------------------------------------------ strategies
NOW = 1_767_225_600 + 40 * DAY  # a UTC midnight; `now` is drawn around it


@st.composite
def histories(draw) -> tuple[list[StoredRun], float]:
    now = NOW + draw(st.integers(-DAY, DAY))
    span = draw(st.sampled_from([3 * HOUR, 2 * DAY, 20 * DAY, 500 * DAY]))  # dense hours or sparse days
    n = draw(st.integers(0, 50))
    times = sorted(draw(st.lists(st.integers(now - span, now + HOUR // 4), min_size=n, max_size=n)))
    ids = list(range(1, n + 1))
    if draw(st.booleans()):  # runs stored for past blocks, or in any order
        ids = draw(st.permutations(ids))
    runs = []
    for i, (t, run_id) in enumerate(zip(times, ids, strict=True)):
        runs.append(StoredRun(run_id, block_number=10 + i, block_time=t,
                              orphaned=draw(st.sampled_from([False, False, False, True])),
                              holds=draw(st.sampled_from([ALL, ALL, ALL, WALLETS, ROW]))))
    return runs, float(now)


policies = st.builds(
    RetentionConfig, keep_last=st.integers(1, 6), hourly_hours=st.sampled_from([0, 1, 2.5, 6, 48]),
    hourly_wallets_days=st.sampled_from([0, 0.05, 1, 14]), daily_days=st.sampled_from([0, 1, 3, 35]),
    daily_wallets_days=st.sampled_from([0, 2, 400]))

PROPERTY = settings(max_examples=400, deadline=None)


# ------------------------------------------------------------------------------------------ properties
@PROPERTY
@given(histories(), policies)
def test_kept_is_the_documented_rule(history, policy):
    runs, now = history
    want = oracle(runs, policy, now)
    assert kept(runs, policy, now) == want
    # the plan: exactly the runs holding more than that, the oldest first
    assert [(t.run_id, t.holds, t.keep) for t in plan(runs, policy, now)] == [
        (r.id, r.holds, want[r.id]) for r in sorted(runs, key=lambda r: (r.block_time, r.id)) if want[r.id] < r.holds]


@PROPERTY
@given(histories(), policies)
def test_the_newest_runs_and_the_latest_keep_everything(history, policy):
    runs, now = history
    keep = kept(runs, policy, now)
    newest = sorted(runs, key=lambda r: r.id)[-policy.keep_last:]
    assert all(keep[r.id] == ALL for r in newest)
    on_chain = [r for r in runs if not r.orphaned]
    if on_chain:
        assert keep[max(on_chain, key=lambda r: (r.block_number, r.id)).id] == ALL
    thinned = {t.run_id for t in plan(runs, policy, now)}
    assert not thinned & {r.id for r in newest}


@PROPERTY
@given(histories(), policies)
def test_exactly_one_run_of_each_hour_keeps_everything_within_the_hourly_period(history, policy):
    """Within `hourly_hours`, the runs of an hour that keep everything are its first run and the protected
    runs (newest, latest) that fall in it: no more, no fewer."""
    runs, now = history
    keep = kept(runs, policy, now)
    guarded = protected(runs, policy)
    for b, members in buckets_of(runs, HOUR).items():
        if not policy.hourly_hours or now - (b + 1) * HOUR >= policy.hourly_hours * HOUR:
            continue
        full = {r.id for r in members if keep[r.id] == ALL}
        assert full == {first_of(members, ALL).id} | {r.id for r in members if r.id in guarded}
        assert len(full - guarded) <= 1


@PROPERTY
@given(histories(), policies)
def test_the_kept_run_of_an_hour_is_its_earliest(history, policy):
    """With every run on the chain and holding everything, an hour keeps its first run: the earliest stored,
    which for runs stored as they are valued is the earliest of the hour."""
    runs, now = history
    runs = sorted((replace(r, orphaned=False, holds=ALL) for r in runs), key=lambda r: r.block_time)
    runs = [replace(r, id=i + 1) for i, r in enumerate(runs)]  # stored in the order they are valued
    keep = kept(runs, policy, now)
    for b, members in buckets_of(runs, HOUR).items():
        if policy.hourly_hours and now - (b + 1) * HOUR < policy.hourly_hours * HOUR:
            earliest = min(members, key=lambda r: (r.block_time, r.id))
            assert keep[earliest.id] == ALL
            assert all(keep[r.id] < ALL for r in members if r is not earliest and r.id not in protected(runs, policy))


@PROPERTY
@given(histories(), policies)
def test_nothing_younger_than_the_shortest_period_is_removed(history, policy):
    """Younger than the policy's shortest period, a run loses rows only to a stand-in of its own bucket that
    keeps what the tier keeps and comes first (holds more, is on the chain, or was stored before it); and no
    run, of any age, loses its risk_runs row (the plan never goes below ROW, which is the row itself)."""
    runs, now = history
    periods = [(p, size, level) for size, full_s, wallets_s in tier_periods(policy)
               for p, level in ((full_s, ALL), (wallets_s, WALLETS)) if p > 0]
    if not periods:
        return
    shortest, size, _ = min(periods, key=lambda x: x[0])
    full_s, wallets_s = next((f, w) for sz, f, w in tier_periods(policy) if sz == size)
    keep = kept(runs, policy, now)
    members_of = buckets_of(runs, size)
    for r in runs:
        if now - r.block_time >= shortest:
            continue
        level = level_at(r.block_time // size, size, full_s, wallets_s, now)
        assert level is not None  # its bucket ends after it was valued: within the period
        if keep[r.id] >= min(r.holds, level):
            continue  # it keeps what its tier keeps

        def order(x: StoredRun, lv: Keep = level) -> tuple:
            return -min(x.holds, lv), x.orphaned, x.id

        stand_ins = [s for s in members_of[r.block_time // size]
                     if s.id != r.id and keep[s.id] >= level and order(s) < order(r)]
        assert stand_ins, f"run {r.id} lost rows at age {now - r.block_time}s < {shortest}s with no stand-in"
    assert all(t.keep >= ROW for t in plan(runs, policy, now))


@PROPERTY
@given(histories(), policies)
def test_applying_twice_removes_nothing_more(history, policy):
    runs, now = history
    once = applied(runs, policy, now)
    assert plan(once, policy, now) == []
    assert applied(once, policy, now) == once


@PROPERTY
@given(histories(), policies, st.integers(0, 3 * DAY))
def test_a_later_pass_never_leaves_a_bucket_without_its_stand_in(history, policy, later):
    """Applied at now, then again later: every bucket its tier still keeps, and that held such a run before,
    still has one run that keeps the tier's level (the stand-in kept at now stays the stand-in)."""
    runs, now = history
    twice = applied(applied(runs, policy, now), policy, now + later)
    for size, full_s, wallets_s in tier_periods(policy):
        before, after = buckets_of(runs, size), buckets_of(twice, size)
        for b, members in before.items():
            level = level_at(b, size, full_s, wallets_s, now + later)
            if level is not None and any(r.holds >= level for r in members):
                assert any(r.holds >= level for r in after[b]), (size, b, level)


@PROPERTY
@given(histories(), policies)
def test_runs_that_hold_nothing_change_nothing(history, policy):
    """The store passes only the runs that hold rows (with the newest and the latest): leaving the others out
    changes nothing the policy keeps."""
    runs, now = history
    guarded = protected(runs, policy)
    holding = [r for r in runs if r.holds > ROW or r.id in guarded]
    full = kept(runs, policy, now)
    part = kept(holding, policy, now)
    assert {i: k for i, k in full.items() if i in part} == part
    assert plan(runs, policy, now) == plan(holding, policy, now)


# ------------------------------------------------------------------------------------------ examples
def at(day: int, hour: int, minute: int = 0) -> int:
    return NOW + day * DAY + hour * HOUR + minute * 60


def test_an_example_read_as_the_documentation_says():
    policy = RetentionConfig(keep_last=2, hourly_hours=3, hourly_wallets_days=1, daily_days=2, daily_wallets_days=10)
    now = at(20, 12, 30)
    runs = [
        StoredRun(1, 1, at(5, 9)),  # its day ended 14.5 days ago: the row only
        StoredRun(2, 2, at(12, 8, 10)),  # the first of day 12, which ended 7.5 days ago: its wallet rows
        StoredRun(3, 3, at(12, 8, 20)),  # the second of day 12: the row only
        StoredRun(4, 4, at(19, 23, 10)),  # the first of day 19, which ended 12.5 hours ago: everything
        StoredRun(5, 5, at(20, 8, 30)),  # the first of day 20 (everything) and of hour 8
        StoredRun(6, 6, at(20, 8, 50), orphaned=True),  # hour 8 has a run on the chain: the row only
        StoredRun(7, 7, at(20, 9, 5), orphaned=True),  # hour 9 has no run on the chain: its first stands for it
        StoredRun(8, 8, at(20, 9, 40), orphaned=True),  # the second of hour 9: the row only
        StoredRun(9, 9, at(20, 10, 15)),  # hour 10 ended 1.5 hours ago: everything
        StoredRun(10, 10, at(20, 10, 45)),  # the second of hour 10: the row only
        StoredRun(11, 11, at(20, 12, 25)),  # the latest, and one of the newest two
        StoredRun(12, 9, at(20, 10, 15)),  # stored last for a past block: newest, but hour 10 stays run 9's
    ]
    keep = kept(runs, policy, now)
    assert keep == {1: ROW, 2: WALLETS, 3: ROW, 4: ALL, 5: ALL, 6: ROW, 7: ALL, 8: ROW, 9: ALL, 10: ROW,
                    11: ALL, 12: ALL}
    # later, nothing newer stored: hour 9 leaves the hourly period (3 h) for the wallet rows' (1 day) ...
    later = applied(runs, policy, now)
    assert kept(later, policy, at(20, 13, 45)) == {**keep, 7: WALLETS}
    # ... then that too, with hour 10; day 19 leaves the daily period (2 days); day 20 keeps run 5
    assert kept(later, policy, at(22, 1)) == {**keep, 7: ROW, 9: ROW, 4: WALLETS}


def test_a_day_at_the_default_cadence_keeps_a_bounded_set():
    """A run every 10 s for 3 days under the defaults: the newest 60, one per hour of the last 48, one per day;
    everything else is down to its row."""
    policy = RetentionConfig()
    start = NOW - 3 * DAY
    runs = [StoredRun(i + 1, i + 1, start + 10 * i) for i in range(3 * 8_640)]
    now = runs[-1].block_time
    keep = kept(runs, policy, now)
    hours = {r.block_time // HOUR for r in runs if now - (r.block_time // HOUR + 1) * HOUR < 48 * HOUR}
    assert len(hours) == 49  # the hour in progress and the 48 before it
    full = {i for i, k in keep.items() if k == ALL}
    assert len(full) == 60 + 49 + 1  # the newest 60 (in the last hour, after its first), 49 hours, the first day
    # the first day's hours 0 to 22 are within 14 days: their first runs keep their wallet rows (hour 0's: all)
    assert sum(1 for k in keep.values() if k == WALLETS) == 22
    assert len(plan(runs, policy, now)) == len(runs) - len(full)


def test_retention_settings_are_checked_like_every_table(tmp_path, monkeypatch):
    base = "[chain]\nchain_id = 1\nrpc_url = \"http://x\"\ndeployment_block = 0\n" \
           "[[tokens]]\nsymbol = \"A\"\naddress = \"0x" + "11" * 20 + "\"\ndecimals = 6\nasset_class = \"x\"\n" \
           "accounting = \"plain\"\n"
    path = tmp_path / "c.toml"
    path.write_text(base + "[retention]\nkeep_last = 5\nhourly_hours = 0\n")
    s = load_settings(path)
    assert (s.retention.keep_last, s.retention.hourly_hours, s.retention.daily_days) == (5, 0.0, 35.0)
    path.write_text(base + "[retention]\nkeep_lats = 5\n")
    with pytest.raises(ConfigError, match=r"retention\.keep_lats: unknown setting; did you mean retention\.keep_last"):
        load_settings(path)
    path.write_text(base + "[retention]\nkeep_last = 0\n")
    with pytest.raises(ConfigError, match=r"retention\.keep_last"):
        load_settings(path)
    path.write_text(base)
    monkeypatch.setenv("INDEXER_RETENTION__DAILY_WALLETS_DAYS", "30")
    assert load_settings(path).retention.daily_wallets_days == 30.0
    monkeypatch.setenv("INDEXER_RETENTION__DAILY_WALET_DAYS", "30")
    with pytest.raises(ConfigError, match="did you mean INDEXER_RETENTION__DAILY_WALLETS_DAYS"):
        load_settings(path)


# ------------------------------------------------------------------------------------------ the store
@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """Six days of the demo world synced into a fresh SQLite and PostgreSQL database, with its book."""
    with synced_world(tmp_path_factory.mktemp("retention"), 6) as (chain, _rpc, stores):
        yield chain, {s.kind: s for s in stores}


@pytest.fixture
def stores(synced):
    return synced[1]


RUN_TABLES = (m.RiskHolding, m.RiskPosition, m.RiskWallet)
OTHER_CHAIN = 1


def _clear(engine) -> None:
    with engine.begin() as conn:
        for model in (*RUN_TABLES, m.RiskRunRecord):
            conn.execute(delete(model))


def _rows_per_run(conn) -> dict[str, dict[int, int]]:
    return {model.__tablename__: dict(conn.execute(select(model.run_id, func.count()).group_by(model.run_id)).all())
            for model in RUN_TABLES}


def _fingerprint(conn, run_id: int) -> tuple:
    """What a kept run's rows say, to check they are untouched."""
    h, p, w = (mod.__table__ for mod in RUN_TABLES)
    return (conn.execute(select(func.count(), func.sum(h.c.market_value)).where(h.c.run_id == run_id)).one(),
            conn.execute(select(func.count(), func.sum(p.c.notional)).where(p.c.run_id == run_id)).one(),
            conn.execute(select(func.count(), func.sum(w.c.equity)).where(w.c.run_id == run_id)).one())


def _other_chain_run(conn) -> int:
    """A very old run of another chain sharing the database, with one wallet row: never this chain's business."""
    run_id = conn.execute(m.RiskRunRecord.__table__.insert().values(
        chain_id=OTHER_CHAIN, block_number=5, block_timestamp=0, policy_name="p", policy_version="v",
        policy_hash="0" * 64, market_state="open", seconds_to_next_open=0, wallets=1, holdings=0, positions=0,
        collateral_usd=0.0, started_at=0.0, seconds=0.0)).inserted_primary_key[0]
    conn.execute(m.RiskWallet.__table__.insert().values(
        run_id=run_id, wallet="0x" + "22" * 20, market_value=0, collateral=0, im=0, mm=0, upnl=0, cash=0, equity=0,
        excess=0, status="healthy", l_joint=0, l_indep=0, wrong_way=0, worst_scenario="", worst_scenario_loss=0,
        stressed_excess=0, binding="parametric"))
    return int(run_id)


def _store_runs(store) -> tuple[dict[str, int], int]:
    """Real runs of the synced world, named as the expectations below read them; returns them and the synced
    head's time. This world's node kept the token state of its head block only, so every run values the
    head; each is then relabelled in `risk_runs` with the block and time it stands for here (what the policy
    reads of a run: its id, block, block time and orphaned_at). Its rows are the real ones."""
    engine, cid = store.engine, store.chain_id
    with engine.connect() as conn:
        head_block, head = synced_head(conn, cid)
    ago = {"A": 5 * DAY, "B": 5 * DAY,  # B: A's block again, the same day
           "C": 2 * DAY,
           "G": 3 * HOUR + 10 * 60,  # orphaned below, alone in its hour
           "D": 90 * 60, "E": 90 * 60,  # E: D's block again, the same hour
           "H": 0,  # the latest
           "I": 5 * DAY}  # stored last, for a past block (A's): the newest
    ids = {name: run_and_store(engine, cid, POLICY).run_id for name in ago}
    rr = m.RiskRunRecord.__table__
    with engine.begin() as conn:
        for name, s in ago.items():
            conn.execute(update(rr).where(rr.c.id == ids[name]).values(
                block_number=head_block - s // 1_800, block_timestamp=head - s))
        conn.execute(update(rr).where(rr.c.id == ids["G"]).values(orphaned_at=head + 1.5))
        ids["other chain"] = _other_chain_run(conn)
    return ids, head


POLICY_SMALL = RetentionConfig(keep_last=1, hourly_hours=4, hourly_wallets_days=0, daily_days=0, daily_wallets_days=10,
                               batch_rows=700)
EXPECTED = {"A": WALLETS, "B": ROW, "C": WALLETS, "G": ALL, "D": ALL, "E": ROW, "H": ALL, "I": ALL}


@pytest.mark.parametrize("kind", DATABASES)
def test_thinning_leaves_exactly_the_rows_the_policy_keeps(stores, kind):
    store = stores[kind]
    engine, cid = store.engine, store.chain_id
    _clear(engine)
    ids, head = _store_runs(store)
    with engine.connect() as conn:
        runs = {r.id: r for r in stored_runs(conn, cid, POLICY_SMALL.keep_last)}
        assert set(runs) == {ids[k] for k in EXPECTED}  # this chain's runs only
        assert kept(runs.values(), POLICY_SMALL, head) == {ids[k]: v for k, v in EXPECTED.items()}
        before = _rows_per_run(conn)
        totals = {r.id: r for r in conn.execute(select(m.RiskRunRecord)).all()}
        prints = {ids[k]: _fingerprint(conn, ids[k]) for k in EXPECTED}

    done = apply(engine, cid, POLICY_SMALL)
    assert done.now == head and done.complete
    assert done.planned == done.thinned == 4  # A, C to their wallet rows; B, E to their row
    deleted = sum(done.rows_deleted.values())
    assert done.transactions >= math.ceil(deleted / POLICY_SMALL.batch_rows) > 4

    with engine.connect() as conn:
        after = _rows_per_run(conn)
        rows = {r.id: r for r in conn.execute(select(m.RiskRunRecord)).all()}
        assert set(rows) == set(totals)  # every run row stays
        for name, level in EXPECTED.items():
            run_id, total = ids[name], totals[ids[name]]
            want = {"risk_holdings": total.holdings if level == ALL else 0,
                    "risk_positions": total.positions if level == ALL else 0,
                    "risk_wallets": total.wallets if level >= WALLETS else 0}
            assert {t: after[t].get(run_id, 0) for t in want} == want, name
            assert {t: before[t].get(run_id, 0) for t in want if want[t]} == {t: n for t, n in want.items() if n}
            row = rows[run_id]
            assert (row.holdings, row.positions, row.wallets, row.collateral_usd) == (
                total.holdings, total.positions, total.wallets, total.collateral_usd)  # its totals stay
            lines = row.notes.split("\n") if row.notes else []
            added = [x for x in lines if x.startswith(NOTE_PREFIX)]
            if level == ALL:
                assert added == [] and _fingerprint(conn, run_id) == prints[run_id]
            else:
                assert row.notes.startswith(total.notes)  # the run's own notes come first, as they were
                assert len(added) == 1
                assert ("its wallet rows are kept" in added[0]) == (level == WALLETS)
                if level == WALLETS:
                    assert _fingerprint(conn, run_id)[2] == prints[run_id][2]
        assert after["risk_wallets"][ids["other chain"]] == 1

    again = apply(engine, cid, POLICY_SMALL)
    assert (again.planned, again.transactions, sum(again.rows_deleted.values())) == (0, 0, 0)
    with engine.connect() as conn:
        assert _rows_per_run(conn) == after
        assert {r.id: r.notes for r in conn.execute(select(m.RiskRunRecord)).all()} == {i: r.notes for i, r in rows.items()}


@pytest.mark.parametrize("kind", DATABASES)
def test_a_pass_stopped_between_batches_goes_on_at_the_next(stores, kind):
    """Each batch commits on its own: stopped after two, the rows deleted so far stay deleted, no run is noted
    before its last rows go, and the next pass finishes the job with what the first would have left."""
    store = stores[kind]
    engine, cid = store.engine, store.chain_id
    _clear(engine)
    ids, head = _store_runs(store)
    calls = []

    def two_batches() -> bool:
        calls.append(1)
        return len(calls) <= 2

    first = apply(engine, cid, POLICY_SMALL, go_on=two_batches)
    assert first.transactions == 2 and not first.complete
    assert sum(first.rows_deleted.values()) == 2 * POLICY_SMALL.batch_rows
    with engine.connect() as conn:
        partly = _rows_per_run(conn)
        notes = dict(conn.execute(select(m.RiskRunRecord.id, m.RiskRunRecord.notes)).all())
        noted = {i for i, n in notes.items() if NOTE_PREFIX in n}
        for i in noted:  # a run noted is a run done
            assert partly["risk_holdings"].get(i, 0) == partly["risk_positions"].get(i, 0) == 0
    rest = apply(engine, cid, POLICY_SMALL)
    assert rest.complete and first.thinned + rest.thinned == 4
    with engine.connect() as conn:
        after = _rows_per_run(conn)
        for name, level in EXPECTED.items():
            assert (ids[name] in after["risk_holdings"]) == (level == ALL), name
            assert (ids[name] in after["risk_wallets"]) == (level >= WALLETS), name
        notes = dict(conn.execute(select(m.RiskRunRecord.id, m.RiskRunRecord.notes)).all())
        assert sum(n.count(NOTE_PREFIX) for n in notes.values()) == 4


@pytest.mark.parametrize("kind", DATABASES)
def test_wallet_rows_go_later_and_the_row_says_so(stores, kind):
    """A run kept to its wallet rows loses them once its day leaves daily_wallets_days: a second note."""
    store = stores[kind]
    engine, cid = store.engine, store.chain_id
    _clear(engine)
    ids, head = _store_runs(store)
    apply(engine, cid, POLICY_SMALL)
    later = head + 6 * DAY  # A's day (5 days before the head) now ended over 10 days before
    with engine.connect() as conn:
        found = survey(conn, cid, POLICY_SMALL, now=later)
    # and G's and D's hours have left the hourly period: G (orphaned) to its row, D to its day's wallet rows
    assert [(t.run_id, t.holds, t.keep) for t in found.plan] == [
        (ids["A"], WALLETS, ROW), (ids["G"], ALL, ROW), (ids["D"], ALL, WALLETS)]
    done = apply(engine, cid, POLICY_SMALL, now=later)
    assert done.thinned == 3
    with engine.connect() as conn:
        notes = conn.execute(select(m.RiskRunRecord.notes).where(m.RiskRunRecord.id == ids["A"])).scalar()
        added = [x for x in notes.split("\n") if x.startswith(NOTE_PREFIX)]
        assert len(added) == 2 and added[1].startswith(NOTE_PREFIX + "wallet rows deleted at ")
        assert conn.execute(text("SELECT COUNT(*) FROM risk_wallets WHERE run_id = :r"), {"r": ids["A"]}).scalar() == 0


@pytest.mark.parametrize("kind", DATABASES)
def test_prune_applies_the_configured_policy_once(synced, kind, monkeypatch):
    chain, stores = synced
    store = stores[kind]
    _clear(store.engine)
    ids, _ = _store_runs(store)
    for key in ("keep_last", "hourly_hours", "hourly_wallets_days", "daily_days", "daily_wallets_days"):
        monkeypatch.setenv(f"INDEXER_RETENTION__{key.upper()}", str(getattr(POLICY_SMALL, key)))
    args = ["prune", "--config", str(chain.manifest_path), "--database-url", store.settings.database_url]
    runner = CliRunner()
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would thin 4 runs (2 to their wallet rows, 2 to their run row)" in dry.output
    with store.engine.connect() as conn:
        assert set(_rows_per_run(conn)["risk_holdings"]) >= {ids[k] for k in EXPECTED}  # nothing deleted
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "4 runs thinned" in done.output
    assert "runs keeping everything: 4; keeping their wallet rows: 2" in done.output
    with store.engine.connect() as conn:
        after = _rows_per_run(conn)
    assert set(after["risk_holdings"]) == {ids[k] for k, v in EXPECTED.items() if v == ALL}
    assert set(after["risk_wallets"]) == {ids[k] for k, v in EXPECTED.items() if v >= WALLETS} | {ids["other chain"]}
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "0 runs thinned, 0 rows deleted in 0 transactions" in again.output
