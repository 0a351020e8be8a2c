"""`collateral-indexer run`: the sync tick, the reconcile job, the risk run and the feed-staleness watch
on one APScheduler, behind the chain's leader lease (service/leader.py), with /metrics and /healthz.

Jobs never overlap themselves and coalesce missed runs. A job that fails is logged and counted and
runs again at its next time; the service itself does not die on a bad answer. Stopping (SIGTERM,
SIGINT) lets the running job finish its transaction, then gives the lease up.

Webhook alerts (service/alerts.py) follow the stored risk runs and the staleness watch on threads of their
own, on the leader only.

Health is the chain's: each successful sync tick of the leader is stored in the lease row (time, synced
block, the node's head), so every instance, leader or standby, answers /healthz from the same record.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from apscheduler.schedulers.background import BackgroundScheduler

from indexer.chain.rpc import RpcClient
from indexer.config import Settings
from indexer.errors import IndexerError
from indexer.risk import assess_staleness, load_policy, xnys
from indexer.runs.job import run_and_store
from indexer.service.alerts import Alerts, feed_watch
from indexer.service.http import HealthServer
from indexer.service.leader import Deposed, Leadership
from indexer.service.metrics import Registry
from indexer.store import retention
from indexer.store.engine import open_store
from indexer.store.progress import synced_head
from indexer.store.state import last_updates
from indexer.sync.context import SyncContext
from indexer.sync.reconcile import reconcile
from indexer.sync.startup import prepare
from indexer.sync.tick import sync_tick
from indexer.types import FeedKind

log = logging.getLogger(__name__)


def declare(metrics: Registry) -> None:
    g, c = metrics.gauge, metrics.counter
    g("leader", "1 while this instance holds the chain's leader lease and writes, 0 while it stands by")
    g("chain_head_block", "Latest block number the RPC node reports")
    g("synced_block", "Last block written by the sync (checkpoint)")
    g("head_lag_blocks", "Blocks between the node's head and the synced block")
    g("head_lag_seconds", "Seconds of chain time between the node's head block and the synced block")
    g("last_tick_success_timestamp_seconds", "Wall-clock unix time of the last successful sync tick")
    c("ticks_total", "Sync ticks that wrote a block range")
    c("job_errors_total", "Failed job runs by job and error kind")
    c("rows_written_total", "Rows written by the sync, by kind (logs, transfers, rounds)")
    c("reorgs_total", "Reorgs detected and rolled back")
    c("rpc_requests_total", "HTTP requests sent to the RPC endpoints")
    c("rpc_calls_total", "JSON-RPC calls sent (a batch counts each call)")
    c("rpc_errors_total", "RPC errors by kind (timeout, rate_limited, server_error, ...)")
    c("rpc_retries_total", "RPC retries after backoff")
    c("reconcile_runs_total", "Reconcile runs completed")
    c("reconcile_checked_total", "Balances checked against balanceOf")
    c("reconcile_mismatches_total", "Stored balances that differed from balanceOf (recorded and repaired)")
    c("risk_runs_total", "Risk runs stored")
    c("retention_runs_thinned_total", "Risk runs whose rows beyond what [retention] keeps were deleted")
    c("retention_rows_deleted_total", "Risk-run rows deleted by the retention job, by table")
    g("risk_run_duration_seconds", "Duration of the last risk run (load, compute)")
    g("risk_run_block", "Block valued by the last risk run")
    g("wallets", "Wallets per margin status in the last risk run")
    g("feed_age_seconds", "Age of each feed's latest round at the synced head's time")
    g("feed_stale", "1 when the feed is stale by its heartbeat and grace (stock feeds on the XNYS clock)")


@dataclass
class Health:
    healthy: bool
    role: str
    reasons: list[str]
    detail: dict


class Service:
    def __init__(self, settings: Settings, *, rpc: RpcClient | None = None) -> None:
        self.settings = settings
        self.cfg = settings.service
        self.chain_id = settings.chain.chain_id
        self.metrics = Registry()
        declare(self.metrics)
        self.metrics.set("leader", 0)
        self.engine = open_store(settings)
        self.rpc = rpc or RpcClient(settings.chain.rpc_urls)
        self.leader = Leadership(self.engine, self.chain_id, poll_s=self.cfg.leader_poll_s)
        self.leader.install_fence()  # every commit of this engine checks the lease first
        self.ctx: SyncContext | None = None
        self.stop_requested = threading.Event()
        self._risk_dirty = False
        self._last_risk = 0.0
        self._last_tick_wall: float | None = None
        self._stale: list[str] = []
        self.last_risk = None
        self._writer = threading.Lock()
        # webhook alerts ([alerts]): found and delivered on their own threads, by the leader only
        self.alerts = Alerts(self.engine, self.chain_id, settings.alerts, self.metrics,
                             policy_path=settings.policy_path, is_leader=self.is_leader, write_lock=self._writer)
        # a job still running at its next turn is skipped by design (max_instances=1): not worth a warning
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        self.http: HealthServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.http = HealthServer(self.cfg.http_host, self.cfg.http_port, self)
        self.http.start()
        now = datetime.now(UTC)
        add = self.scheduler.add_job
        add(self._job("leader", self.elect), "interval", seconds=self.cfg.leader_poll_s, id="leader", next_run_time=now)
        add(self._job("sync", self.sync_job, writes=True), "interval", seconds=self.cfg.sync_interval_s, id="sync", next_run_time=now)
        add(self._job("risk", self.risk_job, writes=True), "interval", seconds=max(self.cfg.risk_min_interval_s, 0.5), id="risk")
        add(self._job("reconcile", self.reconcile_job, writes=True), "interval", seconds=self.cfg.reconcile_interval_s, id="reconcile")
        add(self._job("staleness", self.staleness_job), "interval", seconds=self.cfg.staleness_interval_s,
            id="staleness", next_run_time=now)
        if self.settings.retention.enabled:
            add(self._job("retention", self.retention_job), "interval", seconds=self.settings.retention.interval_s,
                id="retention")
        self.scheduler.start()
        self.alerts.start()
        log.info("service started: metrics at http://%s:%d/metrics", self.cfg.http_host, self.http.port)

    def stop(self) -> None:
        """Let the running job finish (one transaction), then give the lease up and close."""
        self.stop_requested.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.alerts.stop()
        self.leader.release()
        self.metrics.set("leader", 0)
        if self.http is not None:
            self.http.stop()
        self.rpc.close()
        self.engine.dispose()

    def _job(self, name: str, fn, *, writes: bool = False):
        def run() -> None:
            if self.stop_requested.is_set():
                return
            try:
                if writes:
                    with self._writer:  # sync, risk and reconcile write one at a time (SQLite has one writer)
                        fn()
                else:
                    fn()
            except Exception as exc:  # a job never takes the service down
                kind = getattr(exc, "kind", None) or type(exc).__name__
                self.metrics.inc("job_errors_total", job=name, kind=str(kind))
                if isinstance(exc, IndexerError):
                    log.warning("%s job failed: %s", name, exc)
                else:
                    log.exception("%s job failed", name)
                if isinstance(exc, Deposed) or not self.leader.held:
                    self._step_down()
        return run

    # -- jobs --------------------------------------------------------------------------------
    def elect(self) -> None:
        """The leader job: renew the lease while leading, else take it over when it is free."""
        was = self.ctx is not None
        if self.leader.try_acquire():
            if not was:
                try:
                    self.ctx = prepare(self.settings, self.rpc)
                except Exception:
                    self.leader.release()  # this instance cannot lead (the chain unreachable, say): let another
                    raise
                self.metrics.set("leader", 1)
                self._risk_dirty = True
                log.info("this instance (%s) is now the leader for chain %d (fencing token %d)",
                         self.leader.holder, self.chain_id, self.leader.token)
        elif was:
            self._step_down()

    def _step_down(self) -> None:
        if self.ctx is not None:
            self.ctx = None
            self.metrics.set("leader", 0)
            log.info("this instance (%s) stands by for chain %d", self.leader.holder, self.chain_id)

    def is_leader(self) -> bool:
        if self.ctx is None:
            return False
        if not self.leader.still_held():
            self._step_down()
            return False
        return True

    def sync_job(self) -> None:
        """Tick until caught up (a backfill runs tick after tick), stopping between ticks on request. Each
        tick that ends without an error (it wrote a range, or found nothing new to write) is stored in the
        lease row with the synced block and the node's head: the record /healthz reads on every instance."""
        while not self.stop_requested.is_set() and self.is_leader():
            result = sync_tick(self.engine, self.ctx)
            synced, head, lag_s = self._observe_head()
            self._last_tick_wall = time.time()
            self.metrics.set("last_tick_success_timestamp_seconds", self._last_tick_wall)
            if not self.leader.record_tick(synced_block=synced, head_block=head, head_lag_seconds=lag_s):
                self._step_down()
                return
            if result is None:
                return
            self.metrics.inc("ticks_total")
            for kind, n in (("logs", result.logs), ("transfers", result.transfers), ("rounds", result.rounds)):
                self.metrics.inc("rows_written_total", n, kind=kind)
            if result.reorg_to is not None:
                self.metrics.inc("reorgs_total")
            self._risk_dirty = True  # a new block moves time: balances of rebasing tokens, round ages
        self._maybe_risk()

    def _observe_head(self) -> tuple[int | None, int, int | None]:
        """(synced block, the node's head, chain seconds between them), also set as metrics."""
        head = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        head_n, head_ts = int(head["number"], 16), int(head["timestamp"], 16)
        with self.engine.connect() as conn:
            synced = synced_head(conn, self.chain_id)
        self.metrics.set("chain_head_block", head_n)
        self._collect_rpc()
        if synced is None:
            return None, head_n, None
        cp, ts = synced
        self.metrics.set("synced_block", cp)
        self.metrics.set("head_lag_blocks", head_n - cp)
        self.metrics.set("head_lag_seconds", max(0, head_ts - ts))
        return cp, head_n, max(0, head_ts - ts)

    def _collect_rpc(self) -> None:
        s = self.rpc.stats
        self.metrics.set("rpc_requests_total", s.requests)
        self.metrics.set("rpc_calls_total", s.calls)
        self.metrics.set("rpc_retries_total", s.retries)
        self.metrics.replace("rpc_errors_total", {(("kind", k),): float(v) for k, v in s.errors.items()})

    def risk_job(self) -> None:
        self._maybe_risk()

    def _maybe_risk(self) -> None:
        """Run risk when a tick changed its inputs and the last run is at least risk_min_interval_s old:
        right after the tick when due, else at the risk job's next turn."""
        if not self._risk_dirty or time.time() - self._last_risk < self.cfg.risk_min_interval_s:
            return
        if not self.is_leader():
            return
        self._risk_dirty = False
        summary = run_and_store(self.engine, self.chain_id, self.settings.policy_path)
        self._last_risk = time.time()
        self.metrics.inc("risk_runs_total")
        self.metrics.set("risk_run_duration_seconds", summary.load_s + summary.compute_s + summary.write_s)
        self.metrics.set("risk_run_block", summary.block_number)
        self.metrics.replace("wallets", {(("status", k),): float(v) for k, v in summary.status_counts.items()})
        self.last_risk = summary
        self.alerts.wake()  # compare it with the run before, off this thread

    def retention_job(self) -> None:
        """Thin old risk runs to what `[retention]` keeps (store/retention.py): transactions of at most
        `retention.batch_rows` deleted rows, each under the writer lock and fenced like every write, so sync
        and risk go on between them; it stops between two when the service stops or stands by."""
        if not self.is_leader():
            return
        done = retention.apply(self.engine, self.chain_id, self.settings.retention, lock=self._writer,
                               go_on=lambda: not self.stop_requested.is_set() and self.ctx is not None)
        self.metrics.inc("retention_runs_thinned_total", done.thinned)
        for table, n in done.rows_deleted.items():
            self.metrics.inc("retention_rows_deleted_total", n, table=table)
        if done.thinned:
            log.info("retention: %d runs thinned, %d rows deleted in %d transactions, %.1fs", done.thinned,
                     sum(done.rows_deleted.values()), done.transactions, done.seconds)

    def reconcile_job(self) -> None:
        if not self.is_leader():
            return
        result = reconcile(self.engine, self.ctx)
        if result is not None:
            self.metrics.inc("reconcile_runs_total")
            self.metrics.inc("reconcile_checked_total", result.checked)
            self.metrics.inc("reconcile_mismatches_total", result.mismatches)

    def staleness_job(self) -> None:
        """Age of every feed's latest round at the synced head's time; stock feeds on the XNYS clock."""
        policy = load_policy(self.settings.policy_path)
        with self.engine.connect() as conn:
            synced = synced_head(conn, self.chain_id)
            if synced is None:
                return
            now = synced[1]
            latest = last_updates(conn, self.chain_id, now)
        feeds = self.settings.feeds
        if not feeds:
            return
        kinds = np.array([FeedKind(f.kind).code for f in feeds], dtype=np.int8)
        updated = np.array([latest.get(f.address, 0) for f in feeds], dtype=np.int64)
        heartbeats = np.array([f.heartbeat for f in feeds], dtype=np.int64)
        assessed = assess_staleness(kinds, updated, heartbeats, int(now), policy, xnys())
        stale = assessed.stale
        self.metrics.replace("feed_age_seconds", {(("feed", f.name),): float(now - u) if u else float("nan")
                                                  for f, u in zip(feeds, updated.tolist(), strict=True)})
        self.metrics.replace("feed_stale", {(("feed", f.name),): float(s) for f, s in zip(feeds, stale, strict=True)})
        self._stale = [f.name for f, s in zip(feeds, stale, strict=True) if s]
        lag = self.metrics.value("head_lag_blocks")
        if self.ctx is not None and lag is not None and lag <= self.cfg.max_lag_blocks:  # the leader, caught up
            self.alerts.observe(feed_watch(self.chain_id, synced[0], int(now), feeds, updated, assessed))

    # -- health ------------------------------------------------------------------------------
    def health(self) -> Health:
        """The chain's health from the lease row, the same on the leader and on a standby: unhealthy when
        no leader ticked successfully within `service.max_lag_seconds` (or never), when the head lag at
        the last tick passes `service.max_lag_blocks`, or (`service.unhealthy_on_stale_feed`) when a feed
        is stale."""
        role = "leader" if self.ctx is not None else "standby"
        cfg = self.cfg
        detail: dict = {"instance": self.leader.holder, "leader": None, "fencing_token": None,
                        "lease_expires_in_s": None, "last_tick": None, "last_tick_age_s": None, "last_tick_by": None,
                        "synced_block": None, "head_block": None, "lag_blocks": None, "lag_seconds": None,
                        "max_lag_blocks": cfg.max_lag_blocks, "max_lag_seconds": cfg.max_lag_seconds,
                        "stale_feeds": list(self._stale)}
        try:
            lease = self.leader.read()
        except Exception as exc:  # noqa: BLE001 - an unreadable database is an unhealthy answer, not a 500
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Health(False, role, [f"the database cannot be read: {first}"], detail)
        reasons: list[str] = []
        if lease is not None and lease.live:
            detail.update(leader=lease.holder, fencing_token=lease.token, lease_expires_in_s=None
                          if lease.expires_at is None else round(lease.expires_at - lease.now, 3))
        age = None
        if lease is not None and lease.last_tick_at is not None:
            age = max(0.0, lease.now - lease.last_tick_at)
            lag = None if lease.synced_block is None else max(0, lease.head_block - lease.synced_block)
            detail.update(last_tick=lease.last_tick_at, last_tick_age_s=round(age, 3),
                          last_tick_by=lease.last_tick_holder, synced_block=lease.synced_block,
                          head_block=lease.head_block, lag_blocks=lag, lag_seconds=lease.head_lag_seconds)
        if age is None:
            reasons.append(f"no successful sync tick recorded for chain {self.chain_id}"
                           + ("" if detail["leader"] else " and no instance leads it"))
        elif age > cfg.max_lag_seconds:
            reasons.append(f"no successful sync tick for {age:.0f} s > {cfg.max_lag_seconds:.0f} s "
                           f"(the last by {lease.last_tick_holder}; leader now: {detail['leader'] or 'none'})")
        if detail["lag_blocks"] is not None and detail["lag_blocks"] > cfg.max_lag_blocks:
            reasons.append(f"head lag {detail['lag_blocks']} blocks > {cfg.max_lag_blocks} at the last tick")
        if cfg.unhealthy_on_stale_feed and self._stale:
            reasons.append("stale feeds: " + ", ".join(self._stale))
        return Health(not reasons, role, reasons, detail)

    def summary_line(self) -> str:
        """The one-line status `run --summary-every` prints: the leader's sync and risk; a standby says so and
        shows the leader's last tick (from the lease row), never a synced block of its own."""
        h = self.health()
        d = h.detail
        if h.role == "leader":
            v = self.metrics.value
            parts = ["leader", f"synced {int(v('synced_block') or 0):,}", f"lag {int(v('head_lag_blocks') or 0)} blocks"]
            run = self.last_risk
            if run is not None:
                parts.append(f"risk run {run.run_id} at block {run.block_number} ({run.market_state}): "
                             f"collateral {run.collateral_usd:,.0f} USD, "
                             + ", ".join(f"{k} {n:,}" for k, n in run.status_counts.items()))
        else:
            parts = [f"standby (leader: {d['leader'] or 'none'})"]
            if d["last_tick"] is None:
                parts.append("no leader's tick recorded")
            else:
                synced = "nothing synced" if d["synced_block"] is None else f"synced {d['synced_block']:,}"
                lag = "" if d["lag_blocks"] is None else f", lag {d['lag_blocks']} blocks"
                parts.append(f"leader's last tick {d['last_tick_age_s']:.0f} s ago by {d['last_tick_by']}: {synced}{lag}")
        if d["stale_feeds"]:
            parts.append("stale: " + ", ".join(d["stale_feeds"]))
        if not h.healthy:
            parts.append("unhealthy: " + "; ".join(h.reasons))
        return " · ".join(parts)
