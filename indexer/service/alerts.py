"""Webhook alerts: the service's leader posts a JSON event to each `[alerts] webhook_urls` entry when a
wallet's margin status worsens between two consecutive risk runs of the chain, or a feed turns stale (and,
with `on_recovery`, when it has a fresh round again).

Events are found in the database's own transactions and delivered off the sync's path:

- **Finding** (one thread): the next risk run of the service's policy after the one last compared
  (`alert_cursors`) is compared with it (`wallet_events`, pure), and the newest staleness watch with the
  feed states last alerted (`feed_events`, pure). The events go into `alert_outbox`, one row per URL, in
  the transaction that moves the cursor or the feed states on: a restart neither finds an event twice nor
  loses one, and a standby (or a leader that lost its lease: the commit is fenced) writes none. The first
  run compared is the baseline: it raises no event.
- **Delivering** (a thread per URL): due rows are posted; a 2xx answer deletes the row; a timeout, a
  refused connection, 408, 425, 429 or 5xx is tried again after an exponential backoff with jitter
  (`chain.retry.RetryPolicy.delay`), or after the receiver's Retry-After on 429 and 503 (the URL gets
  nothing else meanwhile); after `max_attempts` tries, or at once on any other answer (a 4xx, a
  redirect), the row moves to `alert_dead_letters` with its last error, for an operator to replay.

Each event has an `id` (a UUID, the same in every retry and replay: receivers de-duplicate by it). With
`secret` set, each post carries `X-Indexer-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body.
Only the leader delivers; a leader that dies between a receiver's 2xx and deleting the row has the
event posted again by the next leader, with the same id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import numpy as np
import requests
from sqlalchemy import Engine

from indexer import __version__
from indexer.chain.retry import RetryPolicy
from indexer.config import AlertsConfig, FeedConfig
from indexer.risk import load_policy
from indexer.service.leader import Deposed
from indexer.service.metrics import Registry
from indexer.store import alerts as q

log = logging.getLogger(__name__)

WALLET_STATUS_WORSENED = "wallet_status_worsened"
FEED_STALE = "feed_stale"
FEED_RECOVERED = "feed_recovered"
EVENT_TYPES = (WALLET_STATUS_WORSENED, FEED_STALE, FEED_RECOVERED)

SIGNATURE_HEADER = "X-Indexer-Signature"
EVENT_ID_HEADER = "X-Indexer-Event-Id"
EVENT_TYPE_HEADER = "X-Indexer-Event"

# event ids are UUIDs named from what the event is about (chain, run or watch, wallet or feed)
_NAMESPACE = uuid.UUID("5b0c1d9e-3f57-4c2a-9a51-8f2f0e0b7a11")
_RANK = {"healthy": 0, "margin_call": 1, "liquidate": 2}
RETRY_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_BACKLOG = 100  # runs not compared yet beyond which only the newest is compared with the last one compared


def declare(metrics: Registry) -> None:
    c = metrics.counter
    c("alerts_sent_total", "Alert deliveries a webhook answered with 2xx, by event type")
    c("alerts_failed_total", "Alert delivery attempts that failed (to be retried or dead-lettered), by kind")
    c("alerts_dead_letter_total", "Alert deliveries moved to alert_dead_letters after their last attempt")


# ------------------------------------------------------------------------------ events (pure)
@dataclass(frozen=True)
class Event:
    id: str
    type: str
    body: dict  # the JSON object posted; holds `id` and `type` too

    def json(self) -> str:
        return json.dumps(self.body, separators=(",", ":"), sort_keys=True, allow_nan=False)


def _iso(ts: float | int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _num(v) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def event_id(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def worsened(old: str | None, new: str) -> bool:
    """healthy -> margin_call; healthy or margin_call -> liquidate; anything else -> unpriced. A wallet that
    was not in the earlier run (`old` None) counts as healthy before."""
    if new == "unpriced":
        return old != "unpriced"
    if old == "unpriced":
        return False
    return _RANK[new] > _RANK[old or "healthy"]


@dataclass(frozen=True)
class RunWallets:
    """One risk run's wallets as arrays (the columns of `risk_wallets`)."""

    chain_id: int
    run_id: int
    block_number: int
    block_timestamp: int
    wallet: Sequence[str]
    status: Sequence[str]
    equity: Sequence[float]
    im: Sequence[float]
    mm: Sequence[float]
    excess: Sequence[float]


def wallet_events(before: RunWallets, after: RunWallets) -> list[Event]:
    """One `wallet_status_worsened` event per wallet of `after` whose status is worse than in `before`
    (`worsened`), in wallet order. Wallets missing from `after` raise nothing."""
    old = dict(zip(before.wallet, before.status, strict=True))
    events = []
    for i, (w, new) in enumerate(zip(after.wallet, after.status, strict=True)):
        was = old.get(w)
        if not worsened(was, new):
            continue
        eid = event_id(after.chain_id, "wallet", after.run_id, w)
        events.append(Event(eid, WALLET_STATUS_WORSENED, {
            "id": eid, "type": WALLET_STATUS_WORSENED, "chain_id": after.chain_id, "run_id": after.run_id,
            "previous_run_id": before.run_id, "block": after.block_number, "time": _iso(after.block_timestamp),
            "wallet": w, "old_status": was, "new_status": new, "equity": _num(after.equity[i]),
            "im": _num(after.im[i]), "mm": _num(after.mm[i]), "excess": _num(after.excess[i])}))
    events.sort(key=lambda e: e.body["wallet"])
    return events


@dataclass(frozen=True)
class FeedWatch:
    """One staleness watch: every feed at the synced head's block and time."""

    chain_id: int
    block_number: int
    time: int  # the synced block's timestamp: ages are measured at it
    feed: Sequence[str]  # names
    address: Sequence[str]
    kind: Sequence[str]
    stale: Sequence[bool]
    age_s: Sequence[int]  # on the feed's clock (trading seconds for stock feeds)
    limit_s: Sequence[int]  # heartbeat (in sessions for stock feeds) + the policy's grace
    updated_at: Sequence[int]  # the latest round's updatedAt; 0 when the feed has none


def feed_events(before: Mapping[str, tuple[bool, int | None]], watch: FeedWatch, *,
                on_recovery: bool = False) -> tuple[list[Event], dict[str, tuple[bool, int | None]]]:
    """(events, feed states to store) of a watch against the states last alerted: `feed_stale` for a feed
    stale now and not before (a feed never seen counts as fresh), `feed_recovered` (with `on_recovery`)
    for one stale before and fresh now. The states to store are those that changed or were never seen."""
    events: list[Event] = []
    changed: dict[str, tuple[bool, int | None]] = {}
    for i, name in enumerate(watch.feed):
        stale = bool(watch.stale[i])
        updated = int(watch.updated_at[i]) or None
        seen = before.get(name)
        was = bool(seen[0]) if seen is not None else False
        if seen is None or was != stale:
            changed[name] = (stale, updated)
        if stale == was or (not stale and not on_recovery):
            continue
        etype = FEED_STALE if stale else FEED_RECOVERED
        eid = event_id(watch.chain_id, etype, name, watch.block_number)
        events.append(Event(eid, etype, {
            "id": eid, "type": etype, "chain_id": watch.chain_id, "run_id": None, "block": watch.block_number,
            "time": _iso(watch.time), "feed": name, "feed_address": watch.address[i], "feed_kind": watch.kind[i],
            "age_s": int(watch.age_s[i]) if updated else None, "limit_s": int(watch.limit_s[i]),
            "last_update": _iso(updated)}))
    return events, changed


def feed_watch(chain_id: int, block_number: int, now: int, feeds: Sequence[FeedConfig], updated_at: np.ndarray,
               staleness) -> FeedWatch:
    """A watch from the service's staleness job (`risk.staleness.assess_staleness`'s answer)."""
    return FeedWatch(chain_id=chain_id, block_number=block_number, time=int(now), feed=[f.name for f in feeds],
                     address=[f.address for f in feeds], kind=[str(f.kind.value) for f in feeds],
                     stale=np.asarray(staleness.stale).tolist(), age_s=np.asarray(staleness.age_s).tolist(),
                     limit_s=np.asarray(staleness.limit_s).tolist(), updated_at=np.asarray(updated_at).tolist())


# ------------------------------------------------------------------------------ delivery (pure parts)
def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the body under the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_after_s(value: str | None, now: float) -> float | None:
    """A Retry-After header in seconds from `now` (delay-seconds or an HTTP date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        when = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | retry | permanent
    error: str | None = None  # what went wrong, for the outbox and the dead letter
    error_kind: str | None = None  # for alerts_failed_total{kind}: timeout, connection, http_500, ...
    retry_after_s: float | None = None


def judge(status: int | None, *, error: str | None = None, error_kind: str | None = None,
          retry_after: float | None = None, body: str = "") -> Outcome:
    """What an answer (or its absence: `status` None, with the error) means for the delivery."""
    if status is None:
        return Outcome("retry", error or "no answer", error_kind or "connection")
    if 200 <= status < 300:
        return Outcome("delivered")
    text = f"HTTP {status}" + (f": {body.strip()[:200]}" if body.strip() else "")
    if status in RETRY_STATUSES:
        return Outcome("retry", text, f"http_{status}", retry_after if status in RETRY_AFTER_STATUSES else None)
    return Outcome("permanent", text, f"http_{status}")


# ------------------------------------------------------------------------------ the service's part
class Alerts:
    """Finds events into the outbox and delivers it, while `is_leader()`; `write_lock` is held around each
    write (the service's writer lock: SQLite has one writer)."""

    def __init__(self, engine: Engine, chain_id: int, cfg: AlertsConfig, metrics: Registry, *, policy_path: str,
                 is_leader: Callable[[], bool] = lambda: True, write_lock: threading.Lock | None = None,
                 rng: random.Random | None = None) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.cfg = cfg
        self.metrics = metrics
        declare(metrics)
        self.urls = list(cfg.webhook_urls)
        self.policy_path = policy_path
        self._policy_name: str | None = None
        self.is_leader = is_leader
        self._lock = write_lock if write_lock is not None else nullcontext()
        self.retry = RetryPolicy(timeout=cfg.timeout_s, backoff_base=cfg.backoff_base_s,
                                 backoff_cap=cfg.backoff_cap_s, retry_after_cap=cfg.retry_after_cap_s)
        self.rng = rng or random.Random()
        self._secret = (cfg.secret.get_secret_value() or None) if cfg.secret is not None else None  # "": unsigned
        self._stop = threading.Event()
        self._find = threading.Event()
        self._send = {u: threading.Event() for u in self.urls}
        self._hold: dict[str, float] = {}  # url -> monotonic time before which it gets nothing (Retry-After)
        self._watch: FeedWatch | None = None
        self._watch_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._complained: dict[str, float] = {}  # what went wrong -> when it was last logged with its traceback

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled or self._threads:
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._finder, name="alerts-find", daemon=True)]
        self._threads += [threading.Thread(target=self._sender, args=(u,), name=f"alerts-send-{i}", daemon=True)
                          for i, u in enumerate(self.urls)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float | None = None) -> None:
        """Let a running attempt finish (at most `timeout_s`), then return."""
        self._stop.set()
        for e in (self._find, *self._send.values()):
            e.set()
        for t in self._threads:
            t.join(timeout if timeout is not None else self.cfg.timeout_s + 30)
        self._threads = []

    def wake(self) -> None:
        """A risk run was stored: compare it now rather than at the next poll."""
        self._find.set()

    def observe(self, watch: FeedWatch) -> None:
        """The newest staleness watch; compared with the feed states at the finder's next turn."""
        if not self.enabled:
            return
        with self._watch_lock:
            self._watch = watch
        self._find.set()

    # -- finding ----------------------------------------------------------------------------
    @property
    def policy_name(self) -> str:
        if self._policy_name is None:
            self._policy_name = load_policy(self.policy_path).meta.name
        return self._policy_name

    def compare_runs(self) -> list[Event]:
        """Compare every run stored since the cursor with the one before it, one transaction each; the events
        queued. A backlog of more than `MAX_BACKLOG` runs (the alerts were off for a while) is one step: the
        last run compared against the newest."""
        found: list[Event] = []
        while not self._stop.is_set():
            with self.engine.connect() as conn:  # anything to compare? (without the writer lock)
                if self._next(conn) is None:
                    return found
            with self._lock, self.engine.begin() as conn:
                cursor, run = self._next(conn) or (None, None)
                if run is None:
                    return found
                base = None if cursor is None else q.run_ref(conn, cursor)
                before = None if base is None or base.policy_name != run.policy_name else self._wallets(conn, base)
                if before is not None and len(before.wallet) != base.wallets:
                    before = None  # its wallet rows were deleted (retention): nothing to compare with
                events: list[Event] = []
                if before is not None:
                    events = wallet_events(before, self._wallets(conn, run))
                    q.enqueue(conn, self.chain_id, [(e.id, e.type, e.json()) for e in events], self.urls)
                q.set_cursor(conn, self.chain_id, run.id)
            if before is None:
                log.info("alerts: risk run %d of chain %d is the baseline of later comparisons", run.id, self.chain_id)
            elif events:
                log.info("alerts: risk run %d against run %d: %d wallets worse", run.id, base.id, len(events))
            found += events
        return found

    def _next(self, conn) -> tuple[int | None, q.RunRef] | None:
        """(the cursor, the run to compare with it next), or None when there is none."""
        cursor = q.read_cursor(conn, self.chain_id)
        if cursor is None or q.runs_after(conn, self.chain_id, cursor, self.policy_name) > MAX_BACKLOG:
            run = q.last_run(conn, self.chain_id, self.policy_name)
        else:
            run = q.next_run(conn, self.chain_id, cursor, self.policy_name)
        return None if run is None or run.id == cursor else (cursor, run)

    def _wallets(self, conn, run: q.RunRef) -> RunWallets:
        cols = q.run_wallet_columns(conn, run.id)
        return RunWallets(chain_id=self.chain_id, run_id=run.id, block_number=run.block_number,
                          block_timestamp=run.block_timestamp, **cols)

    def watch_feeds(self, watch: FeedWatch | None = None) -> list[Event]:
        """The newest watch (given, or observed) against the feed states last alerted; the events queued."""
        if watch is None:
            with self._watch_lock:
                watch, self._watch = self._watch, None
        if watch is None:
            return []
        with self.engine.connect() as conn:
            before = q.feed_states(conn, self.chain_id)
        events, changed = feed_events(before, watch, on_recovery=self.cfg.on_recovery)
        if not changed:
            return []
        with self._lock, self.engine.begin() as conn:
            if q.feed_states(conn, self.chain_id) != before:  # another writer moved them: take the next watch
                return []
            q.enqueue(conn, self.chain_id, [(e.id, e.type, e.json()) for e in events], self.urls)
            q.set_feed_states(conn, self.chain_id, watch.block_number, changed)
        for e in events:
            log.info("alerts: feed %s %s at block %d", e.body["feed"],
                     "is stale" if e.type == FEED_STALE else "recovered", watch.block_number)
        return events

    def _finder(self) -> None:
        while not self._stop.is_set():
            self._find.wait(self.cfg.poll_s)
            self._find.clear()
            if self._stop.is_set():
                return
            try:
                if not self.is_leader():
                    continue
                if self.compare_runs() + self.watch_feeds():
                    for e in self._send.values():
                        e.set()
            except Deposed as exc:
                log.info("alerts: %s", exc)
            except Exception as exc:
                self._complain(exc, "finding events failed; trying again at the next turn")

    # -- delivering -------------------------------------------------------------------------
    def deliver_due(self, url: str, session: requests.Session | None = None) -> float:
        """Post the URL's due deliveries, one at a time, while this instance leads; the seconds until the
        next one is due (the poll interval when none is pending)."""
        own = session is None
        session = session or requests.Session()
        try:
            while not self._stop.is_set():
                held = self._hold.get(url, 0.0) - time.monotonic()
                if held > 0:
                    return held
                with self.engine.connect() as conn:
                    batch = q.due(conn, self.chain_id, url)
                if not batch:
                    break
                for d in batch:
                    if self._stop.is_set() or not self.is_leader():
                        return self.cfg.poll_s
                    self.attempt(d, session)
                    if self._hold.get(url, 0.0) > time.monotonic():
                        break
            with self.engine.connect() as conn:
                wait = q.seconds_to_next(conn, self.chain_id, url)
            return self.cfg.poll_s if wait is None else wait
        finally:
            if own:
                session.close()

    def attempt(self, d: q.Delivery, session: requests.Session) -> Outcome:
        """One post of one delivery, and its outcome stored: delivered (deleted), retried later, or dead."""
        body = d.body.encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"collateral-indexer/{__version__}",
                   EVENT_ID_HEADER: d.event_id, EVENT_TYPE_HEADER: d.event_type}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            r = session.post(d.url, data=body, headers=headers, timeout=self.cfg.timeout_s, allow_redirects=False)
            outcome = judge(r.status_code, retry_after=retry_after_s(r.headers.get("Retry-After"), time.time()),
                            body=r.text if r.status_code >= 300 else "")
        except requests.Timeout:
            outcome = judge(None, error=f"no answer within {self.cfg.timeout_s:g} s", error_kind="timeout")
        except requests.ConnectionError as exc:
            outcome = judge(None, error=f"connection failed: {_first_line(exc)}", error_kind="connection")
        except requests.RequestException as exc:
            outcome = judge(None, error=f"request failed: {_first_line(exc)}", error_kind="request")
        attempts = d.attempts + 1
        dead = outcome.kind == "permanent" or (outcome.kind == "retry" and attempts >= self.cfg.max_attempts)
        delay = 0.0
        with self._lock, self.engine.begin() as conn:
            if outcome.kind == "delivered":
                q.delivered(conn, d.id)
            elif dead:
                q.dead_letter(conn, d, attempts=attempts, error=outcome.error or "")
            else:
                delay = self.retry.delay(attempts - 1, outcome.retry_after_s, rng=self.rng)
                q.retry_later(conn, d.id, attempts=attempts, delay_s=delay, error=outcome.error or "")
        if outcome.kind == "delivered":
            self.metrics.inc("alerts_sent_total", type=d.event_type)
            log.info("alerts: %s %s delivered to %s (attempt %d)", d.event_type, d.event_id, d.url, attempts)
            return outcome
        self.metrics.inc("alerts_failed_total", kind=outcome.error_kind or "other")
        if dead:
            self.metrics.inc("alerts_dead_letter_total")
            log.warning("alerts: %s %s to %s dead-lettered after %d attempts: %s", d.event_type, d.event_id, d.url,
                        attempts, outcome.error)
        else:
            if outcome.retry_after_s is not None:
                self._hold[d.url] = time.monotonic() + delay
            log.info("alerts: %s %s to %s failed (attempt %d: %s); trying again in %.1f s", d.event_type,
                     d.event_id, d.url, attempts, outcome.error, delay)
        return outcome

    def _sender(self, url: str) -> None:
        wake = self._send[url]
        with requests.Session() as session:
            while not self._stop.is_set():
                wait = self.cfg.poll_s
                try:
                    if self.is_leader():
                        wait = self.deliver_due(url, session)
                except Deposed as exc:
                    log.info("alerts: %s", exc)
                except Exception as exc:
                    self._complain(exc, f"delivering to {url} failed; trying again at the next turn")
                wake.wait(max(0.01, min(wait, self.cfg.poll_s)))
                wake.clear()

    def _complain(self, exc: Exception, what: str) -> None:
        """Log an unexpected failure with its traceback once a minute per kind, else in one line at debug."""
        key = f"{what}: {type(exc).__name__}: {_first_line(exc)}"
        now = time.monotonic()
        if now - self._complained.get(key, -math.inf) >= 60.0:
            self._complained[key] = now
            log.exception("alerts: %s", what)
        else:
            log.debug("alerts: %s", key)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
