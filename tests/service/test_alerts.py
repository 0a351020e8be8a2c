"""Webhook alerts: the status transitions and feed changes as pure functions; delivery to a real HTTP receiver
on a free port (content and signature, a retry after a 500, Retry-After on a 429, dead letters listed and
replayed from the command line, nothing sent twice after a restart, nothing written without the lease) on
SQLite and PostgreSQL; and the service end to end on a dev chain: real risk runs and staleness watches, one
leader and a standby, then a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from indexer import cli
from indexer.addresses import checksum
from indexer.chain.rpc import RpcClient
from indexer.config import AlertsConfig, Settings, load_settings
from indexer.devchain.anvil import free_port
from indexer.devchain.chain import DevChain, short_timeline, start_devchain
from indexer.devchain.live import produce_blocks
from indexer.errors import ConfigError
from indexer.offchain import load_files
from indexer.risk import load_policy
from indexer.service.alerts import (
    FEED_RECOVERED,
    FEED_STALE,
    SIGNATURE_HEADER,
    WALLET_STATUS_WORSENED,
    Alerts,
    FeedWatch,
    RunWallets,
    event_id,
    feed_events,
    judge,
    retry_after_s,
    sign,
    wallet_events,
    worsened,
)
from indexer.service.leader import Deposed, Leadership
from indexer.service.metrics import Registry
from indexer.service.service import Service
from indexer.store import models as m
from indexer.store.engine import make_engine, open_store, upgrade
from tests.service.waiting import wait_until

CID = 31337
POLICY = load_policy("default").meta.name
STATUSES = ("healthy", "margin_call", "liquidate", "unpriced")


# ------------------------------------------------------------------------------ pure: transitions
def test_which_status_changes_are_worse():
    worse = {(old, new) for old in (None, *STATUSES) for new in STATUSES if worsened(old, new)}
    assert worse == {
        ("healthy", "margin_call"), ("healthy", "liquidate"), ("margin_call", "liquidate"),
        ("healthy", "unpriced"), ("margin_call", "unpriced"), ("liquidate", "unpriced"),
        # a wallet the earlier run did not hold counts as healthy before
        (None, "margin_call"), (None, "liquidate"), (None, "unpriced"),
    }


def _run(run_id: int, rows: dict[str, tuple[str, float, float, float]], block: int = 100) -> RunWallets:
    wallets = sorted(rows)
    col = lambda k: np.array([rows[w][k] for w in wallets], dtype=np.float64)  # noqa: E731
    return RunWallets(chain_id=CID, run_id=run_id, block_number=block, block_timestamp=1_767_312_000,
                      wallet=wallets, status=[rows[w][0] for w in wallets], equity=col(1), im=col(2), mm=col(3),
                      excess=col(1) - col(2))


def test_wallet_events_from_two_runs_arrays():
    w = {c: "0x" + c * 40 for c in "abcdefgh"}
    before = _run(7, {w["a"]: ("healthy", 100, 10, 1), w["b"]: ("healthy", 100, 10, 1),
                      w["c"]: ("margin_call", 5, 10, 1), w["d"]: ("liquidate", -1, 10, 1),
                      w["e"]: ("unpriced", 0, 0, 0), w["f"]: ("margin_call", 5, 10, 1),
                      w["h"]: ("liquidate", 0, 1, 1)})
    after = _run(9, {w["a"]: ("margin_call", 8, 10, 1), w["b"]: ("healthy", 100, 10, 1),
                     w["c"]: ("liquidate", 0.5, 10, 1), w["d"]: ("unpriced", float("nan"), 10, 1),
                     w["e"]: ("liquidate", -3, 10, 1), w["f"]: ("healthy", 50, 10, 1),
                     w["g"]: ("margin_call", 2, 4, 0.5)}, block=120)  # h left the book: nothing
    events = wallet_events(before, after)
    assert [(e.body["wallet"], e.body["old_status"], e.body["new_status"]) for e in events] == [
        (w["a"], "healthy", "margin_call"), (w["c"], "margin_call", "liquidate"), (w["d"], "liquidate", "unpriced"),
        (w["g"], None, "margin_call")]
    a = events[0]
    assert a.type == WALLET_STATUS_WORSENED and a.id == event_id(CID, "wallet", 9, w["a"])
    assert a.body == {"id": a.id, "type": "wallet_status_worsened", "chain_id": CID, "run_id": 9,
                      "previous_run_id": 7, "block": 120, "time": "2026-01-02T00:00:00Z", "wallet": w["a"],
                      "old_status": "healthy", "new_status": "margin_call", "equity": 8.0, "im": 10.0, "mm": 1.0,
                      "excess": -2.0}
    assert events[2].body["equity"] is None  # not a number in the run: null in JSON
    assert json.loads(events[2].json())["excess"] is None
    assert wallet_events(after, after) == []
    assert wallet_events(_run(1, {}), _run(2, {})) == []


def _watch(block: int, stale: dict[str, bool], updated: int = 1_767_300_000) -> FeedWatch:
    names = sorted(stale)
    return FeedWatch(chain_id=CID, block_number=block, time=1_767_312_000, feed=names,
                     address=["0x" + f"{i:040x}" for i in range(len(names))], kind=["crypto"] * len(names),
                     stale=[stale[n] for n in names], age_s=[12_000] * len(names), limit_s=[3_900] * len(names),
                     updated_at=[updated] * len(names))


def test_feed_events_from_a_watch_and_the_states_alerted():
    events, states = feed_events({}, _watch(50, {"BTC/USD": True, "ETH/USD": False}))
    assert [(e.type, e.body["feed"]) for e in events] == [(FEED_STALE, "BTC/USD")]
    assert states == {"BTC/USD": (True, 1_767_300_000), "ETH/USD": (False, 1_767_300_000)}
    b = events[0].body
    assert b == {"id": event_id(CID, "feed_stale", "BTC/USD", 50), "type": "feed_stale", "chain_id": CID,
                 "run_id": None, "block": 50, "time": "2026-01-02T00:00:00Z", "feed": "BTC/USD",
                 "feed_address": "0x" + "0" * 40, "feed_kind": "crypto", "age_s": 12_000, "limit_s": 3_900,
                 "last_update": "2026-01-01T20:40:00Z"}
    # still stale: nothing; fresh again: recovered only when asked for, and the state moves on either way
    assert feed_events(states, _watch(51, {"BTC/USD": True, "ETH/USD": False})) == ([], {})
    fresh = _watch(52, {"BTC/USD": False, "ETH/USD": False}, updated=1_767_311_000)
    assert feed_events(states, fresh) == ([], {"BTC/USD": (False, 1_767_311_000)})
    events, changed = feed_events(states, fresh, on_recovery=True)
    assert [(e.type, e.body["feed"], e.body["block"]) for e in events] == [(FEED_RECOVERED, "BTC/USD", 52)]
    assert changed == {"BTC/USD": (False, 1_767_311_000)}
    never = feed_events({}, _watch(53, {"X/USD": True}, updated=0))[0][0].body
    assert never["age_s"] is None and never["last_update"] is None


def test_answers_signatures_and_retry_after():
    assert judge(200).kind == judge(204).kind == "delivered"
    for status in (408, 425, 429, 500, 502, 503, 504):
        assert judge(status).kind == "retry" and judge(status).error_kind == f"http_{status}"
    for status in (301, 400, 401, 403, 404, 410, 422):
        assert judge(status).kind == "permanent"
    assert judge(429, retry_after=3.0).retry_after_s == 3.0 and judge(503, retry_after=2.0).retry_after_s == 2.0
    assert judge(500, retry_after=3.0).retry_after_s is None  # only 429 and 503 say when to come back
    assert judge(500, body="boom\n").error == "HTTP 500: boom"
    assert judge(None, error="no answer within 2 s", error_kind="timeout").kind == "retry"
    now = 1_767_312_000.0
    assert retry_after_s("7", now) == 7.0
    assert retry_after_s(format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True), now) == 30.0
    assert retry_after_s(None, now) is retry_after_s("soon", now) is None
    body = b'{"a":1}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------------------ a real receiver
@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on a free port: records every post; answers each path from its script in turn
    (status and headers; the last answer repeats), 200 by default."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.posts.append(Post(self.path, dict(self.headers), body, time.monotonic()))
                    answers = outer.script.get(self.path) or [(200, {})]
                    status, headers = answers.pop(0) if len(answers) > 1 else answers[0]
                reply = b"ok" if status < 300 else b"receiver says no"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()



def fast(**kw) -> AlertsConfig:
    return AlertsConfig(**{"backoff_base_s": 0.05, "backoff_cap_s": 0.2, "poll_s": 0.05, "timeout_s": 2.0, **kw})


_run_no = iter(range(1, 10**6))


def store_run(engine, rows: dict[str, tuple[str, float]], *, block: int | None = None, policy: str = POLICY) -> int:
    """A risk run of the chain under the policy (default: ours) with these wallets' (status, equity)."""
    block = block if block is not None else 1_000 + next(_run_no)
    with engine.begin() as conn:
        run_id = conn.execute(m.RiskRunRecord.__table__.insert().values(
            chain_id=CID, block_number=block, block_timestamp=1_767_312_000 + block, policy_name=policy,
            policy_version="1", policy_hash="0" * 64, market_state="open", seconds_to_next_open=0,
            wallets=len(rows), holdings=0, positions=0, collateral_usd=0.0, started_at=time.time(), seconds=0.1)
        ).inserted_primary_key[0]
        if rows:
            conn.execute(m.RiskWallet.__table__.insert(), [dict(
                run_id=run_id, wallet=w, market_value=0.0, collateral=0.0, im=10.0, mm=1.0, upnl=0.0, cash=0.0,
                equity=eq, excess=eq - 10.0, status=st, l_joint=0.0, l_indep=0.0, wrong_way=0.0, worst_scenario="",
                worst_scenario_loss=0.0, stressed_excess=0.0, binding="parametric") for w, (st, eq) in rows.items()])
    return int(run_id)


def count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def cursor(engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(m.AlertCursor.run_id).where(m.AlertCursor.chain_id == CID)).scalar()


W1, W2, W3 = ("0x" + c * 40 for c in "123")


@pytest.fixture
def engine(db_url):
    upgrade(db_url)
    e = make_engine(db_url)
    yield e
    e.dispose()


def test_events_are_delivered_signed_once_and_not_again_after_a_restart(engine, receiver):
    url = receiver.url("/hook")
    metrics = Registry()
    alerts = Alerts(engine, CID, fast(webhook_urls=[url], secret="s3cret"), metrics, policy_path="default")
    assert alerts.compare_runs() == []  # no run yet: nothing, and no cursor
    first = store_run(engine, {W1: ("healthy", 50), W2: ("healthy", 50), W3: ("margin_call", 5)})
    assert alerts.compare_runs() == [] and cursor(engine) == first  # the first run is the baseline
    second = store_run(engine, {W1: ("liquidate", -4), W2: ("healthy", 60), W3: ("unpriced", 0)})
    found = alerts.compare_runs()
    assert [(e.body["wallet"], e.body["new_status"]) for e in found] == [(W1, "liquidate"), (W3, "unpriced")]
    assert cursor(engine) == second and count(engine, m.AlertOutbox) == 2
    watch = _watch(second, {"BTC/USD": True, "ETH/USD": False})
    assert [e.type for e in alerts.watch_feeds(watch)] == [FEED_STALE]
    assert alerts.watch_feeds(watch) == []

    assert alerts.deliver_due(url) == alerts.cfg.poll_s  # nothing left pending
    posts = receiver.at("/hook")
    assert [p.event["type"] for p in posts] == [WALLET_STATUS_WORSENED, WALLET_STATUS_WORSENED, FEED_STALE]
    for p in posts:
        assert p.headers[SIGNATURE_HEADER] == sign("s3cret", p.body)
        assert p.headers["X-Indexer-Event-Id"] == p.event["id"] and p.headers["Content-Type"] == "application/json"
    w1 = posts[0].event
    assert w1 == {"id": event_id(CID, "wallet", second, W1), "type": "wallet_status_worsened", "chain_id": CID,
                  "run_id": second, "previous_run_id": first, "block": w1["block"], "time": w1["time"], "wallet": W1,
                  "old_status": "healthy", "new_status": "liquidate", "equity": -4.0, "im": 10.0, "mm": 1.0,
                  "excess": -14.0}
    assert posts[2].event["feed"] == "BTC/USD" and posts[2].event["limit_s"] == 3_900
    assert metrics.value("alerts_sent_total", type=WALLET_STATUS_WORSENED) == 2
    assert metrics.value("alerts_sent_total", type=FEED_STALE) == 1
    assert count(engine, m.AlertOutbox) == 0

    # a restart: a new instance on the same database finds nothing new, so posts nothing again
    again = Alerts(make_engine(str(engine.url.render_as_string(hide_password=False))), CID,
                   fast(webhook_urls=[url], secret="s3cret"), Registry(), policy_path="default")
    try:
        assert again.compare_runs() == [] and again.watch_feeds(watch) == []
        third = store_run(engine, {W1: ("liquidate", -5), W2: ("healthy", 60), W3: ("unpriced", 0)})
        assert again.compare_runs() == [] and cursor(engine) == third  # same statuses: nothing
        again.deliver_due(url)
        assert len(receiver.at("/hook")) == 3
    finally:
        again.engine.dispose()


def test_runs_are_compared_one_after_the_other_under_our_policy_and_a_long_backlog_in_one_step(engine, monkeypatch):
    alerts = Alerts(engine, CID, fast(webhook_urls=["http://127.0.0.1:9/none"]), Registry(), policy_path="default")
    first = store_run(engine, {W1: ("healthy", 50)})
    assert alerts.compare_runs() == []
    store_run(engine, {W1: ("unpriced", 0)}, policy="another")  # a run under another policy is not compared
    calls = store_run(engine, {W1: ("margin_call", 5)})
    back = store_run(engine, {W1: ("healthy", 50)})
    worst = store_run(engine, {W1: ("liquidate", -5)})
    steps = [(e.body["previous_run_id"], e.body["run_id"], e.body["new_status"]) for e in alerts.compare_runs()]
    assert steps == [(first, calls, "margin_call"), (back, worst, "liquidate")]
    monkeypatch.setattr("indexer.service.alerts.MAX_BACKLOG", 2)
    for status in ("healthy", "margin_call", "healthy"):
        last = store_run(engine, {W1: (status, 1)})
    assert alerts.compare_runs() == []  # liquidate then healthy: the newest against the last compared, better
    assert cursor(engine) == last
    # a run whose wallet rows retention deleted compares with nothing: the next run is a new baseline
    with engine.begin() as conn:
        conn.execute(m.RiskWallet.__table__.delete().where(m.RiskWallet.run_id == last))
    newest = store_run(engine, {W1: ("liquidate", -5), W2: ("unpriced", 0)})
    assert alerts.compare_runs() == [] and cursor(engine) == newest


def test_a_receiver_answering_500_then_200_gets_the_event_on_a_retry(engine, receiver):
    receiver.script["/flaky"] = [(500, {}), (200, {})]
    url = receiver.url("/flaky")
    metrics = Registry()
    alerts = Alerts(engine, CID, fast(webhook_urls=[url]), metrics, policy_path="default")
    store_run(engine, {W1: ("healthy", 50)})
    assert alerts.compare_runs() == []  # the baseline (with no cursor, the newest run is)
    alerts.start()
    try:
        store_run(engine, {W1: ("margin_call", 5)})
        alerts.wake()
        posts = wait_until(lambda: len(receiver.at("/flaky")) >= 2 and receiver.at("/flaky"), 10, "the retry")
        wait_until(lambda: count(engine, m.AlertOutbox) == 0, 5, "the delivery recorded")
    finally:
        alerts.stop()
    assert len(receiver.at("/flaky")) == 2
    assert posts[0].body == posts[1].body and posts[0].event["wallet"] == W1
    assert posts[1].at - posts[0].at >= 0.05 / 2  # backoff: at least half the base, drawn with jitter
    assert metrics.value("alerts_failed_total", kind="http_500") == 1
    assert metrics.value("alerts_sent_total", type=WALLET_STATUS_WORSENED) == 1
    assert count(engine, m.AlertDeadLetter) == 0


def test_a_429_with_retry_after_holds_the_url_for_that_long(engine, receiver):
    receiver.script["/busy"] = [(429, {"Retry-After": "1"}), (200, {})]
    url = receiver.url("/busy")
    alerts = Alerts(engine, CID, fast(webhook_urls=[url]), Registry(), policy_path="default")
    store_run(engine, {W1: ("healthy", 50), W2: ("healthy", 50)})
    assert alerts.compare_runs() == []
    store_run(engine, {W1: ("margin_call", 5), W2: ("margin_call", 5)})
    alerts.start()
    try:
        alerts.wake()
        wait_until(lambda: len(receiver.at("/busy")) >= 3, 10, "both delivered")
        wait_until(lambda: count(engine, m.AlertOutbox) == 0, 5, "the deliveries recorded")
    finally:
        alerts.stop()
    posts = receiver.at("/busy")
    assert [p.event["wallet"] for p in posts] == [W1, W1, W2]  # the refused one again first, then the next
    assert posts[1].at - posts[0].at >= 0.95  # Retry-After: 1, not the 0.05 s backoff
    assert posts[2].at - posts[0].at >= 0.95  # the URL got nothing else meanwhile


def _config_file(tmp_path, db_url: str):
    path = tmp_path / "alerts.toml"
    path.write_text(f'database_url = "{db_url}"\n[chain]\nchain_id = {CID}\nrpc_url = "http://127.0.0.1:9"\n'
                    f'deployment_block = 0\n[[tokens]]\nsymbol = "T"\naddress = "0x{"11" * 20}"\ndecimals = 18\n'
                    'asset_class = "stock"\naccounting = "plain"\n')
    return path


def test_alerts_settings_are_checked_like_every_table(tmp_path, monkeypatch):
    path = _config_file(tmp_path, "sqlite:///x.sqlite")
    base = path.read_text()
    path.write_text(base + '[alerts]\nwebhook_urls = ["https://ops.example.com/a"]\nsecret = "s3cret-value"\n'
                    'max_attempts = 3\n')
    s = load_settings(path)
    assert s.alerts.webhook_urls == ["https://ops.example.com/a"] and s.alerts.max_attempts == 3
    assert s.alerts.secret.get_secret_value() == "s3cret-value" and "s3cret" not in repr(s)
    assert load_settings(_config_file(tmp_path, "sqlite:///x.sqlite")).alerts.webhook_urls == []  # off by default
    path.write_text(base + '[alerts]\nwebhook_url = ["https://ops.example.com/a"]\n')
    with pytest.raises(ConfigError, match=r"alerts.webhook_url: unknown setting; did you mean alerts.webhook_urls\?"):
        load_settings(path)
    path.write_text(base + '[alerts]\nwebhook_urls = ["ops.example.com/a"]\n')
    with pytest.raises(ConfigError, match="is not an http"):
        load_settings(path)
    path.write_text(base)
    monkeypatch.setenv("INDEXER_ALERTS__WEBHOOK_URLS", '["http://127.0.0.1:9/x"]')
    monkeypatch.setenv("INDEXER_ALERTS__SECRET", "from-env")
    s = load_settings(path)
    assert s.alerts.webhook_urls == ["http://127.0.0.1:9/x"] and s.alerts.secret.get_secret_value() == "from-env"


def test_an_always_failing_receiver_ends_in_the_dead_letter_table_and_a_replay_delivers(engine, receiver, tmp_path):
    receiver.script["/down"] = [(503, {})]
    receiver.script["/gone"] = [(404, {})]
    down, gone = receiver.url("/down"), receiver.url("/gone")
    metrics = Registry()
    alerts = Alerts(engine, CID, fast(webhook_urls=[down, gone], max_attempts=3), metrics, policy_path="default")
    store_run(engine, {W1: ("healthy", 50)})
    assert alerts.compare_runs() == []
    run = store_run(engine, {W1: ("liquidate", -1)})
    alerts.start()
    try:
        alerts.wake()
        wait_until(lambda: count(engine, m.AlertDeadLetter) == 2, 10, "two dead letters")
    finally:
        alerts.stop()
    assert len(receiver.at("/down")) == 3 and len(receiver.at("/gone")) == 1  # a 404 is not tried again
    assert count(engine, m.AlertOutbox) == 0
    assert metrics.value("alerts_dead_letter_total") == 2
    assert metrics.value("alerts_failed_total", kind="http_503") == 3
    assert metrics.value("alerts_failed_total", kind="http_404") == 1

    config = _config_file(tmp_path, str(engine.url.render_as_string(hide_password=False)))
    runner = CliRunner()
    listed = runner.invoke(cli.app, ["alerts", "dead-letters", "--config", str(config), "--json"])
    assert listed.exit_code == 0, listed.output
    letters = {d["url"]: d for d in json.loads(listed.output)}
    assert set(letters) == {down, gone}
    d = letters[down]
    assert d["attempts"] == 3 and d["last_error"] == "HTTP 503: receiver says no" and d["replayed_at"] is None
    assert d["event_type"] == WALLET_STATUS_WORSENED and d["body"]["run_id"] == run and d["body"]["wallet"] == W1
    assert d["event_id"] == d["body"]["id"] and letters[gone]["attempts"] == 1
    text = runner.invoke(cli.app, ["alerts", "dead-letters", "--config", str(config)]).output
    assert f"{d['id']}  " in text and "3 attempts: HTTP 503: receiver says no" in text

    receiver.script["/down"] = [(200, {})]  # the receiver is back: replay its letter
    replayed = runner.invoke(cli.app, ["alerts", "replay", str(d["id"]), "999", "--config", str(config)])
    assert replayed.exit_code == 0, replayed.output
    assert f"queued 1 dead letter again ({d['id']}); not found or replayed before: 999" in replayed.output
    assert count(engine, m.AlertOutbox) == 1
    later = Alerts(engine, CID, fast(webhook_urls=[down, gone]), Registry(), policy_path="default")
    assert later.deliver_due(down) == later.cfg.poll_s
    assert receiver.at("/down")[-1].body == receiver.at("/down")[0].body  # the same event, the same id
    left = json.loads(runner.invoke(cli.app, ["alerts", "dead-letters", "--config", str(config), "--json"]).output)
    assert [x["url"] for x in left] == [gone]
    assert runner.invoke(cli.app, ["alerts", "replay", "--config", str(config)]).exit_code == 1  # says what to give


def test_without_the_lease_nothing_is_written_and_a_standby_sends_nothing(engine, receiver):
    url = receiver.url("/hook")
    fenced = make_engine(str(engine.url.render_as_string(hide_password=False)))
    lease = Leadership(fenced, CID)
    lease.install_fence()
    try:
        store_run(engine, {W1: ("healthy", 50)})
        alerts = Alerts(fenced, CID, fast(webhook_urls=[url]), Registry(), policy_path="default")
        with pytest.raises(Deposed):
            alerts.compare_runs()
        assert cursor(engine) is None
        standby = Alerts(fenced, CID, fast(webhook_urls=[url]), Registry(), policy_path="default",
                         is_leader=lambda: False)
        standby.start()
        time.sleep(0.3)
        standby.stop()
        assert cursor(engine) is None and receiver.posts == []
        assert lease.try_acquire() is True  # leading, the same instance compares
        assert alerts.compare_runs() == [] and cursor(engine) is not None
    finally:
        lease.release()
        fenced.dispose()


# ------------------------------------------------------------------------------ the service, end to end
@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Iterator[DevChain]:
    c = start_devchain(port=free_port(), state_dir=tmp_path_factory.mktemp("chain"), seed=11, scale="small",
                       timeline=short_timeline(4))
    yield c
    c.node.stop(remove_state=True)


SERVICE = dict(http_port=0, sync_interval_s=0.3, leader_poll_s=0.5, risk_min_interval_s=0.3,
               reconcile_interval_s=3600.0, staleness_interval_s=0.3, unhealthy_on_stale_feed=False)


def service_settings(chain: DevChain, db_url: str, url: str) -> Settings:
    s = load_settings(chain.manifest_path, database_url=db_url)
    return s.model_copy(update={"service": s.service.model_copy(update=SERVICE),
                                "alerts": fast(webhook_urls=[url], secret="s3cret", on_recovery=True, poll_s=0.1)})


@contextmanager
def running(settings: Settings) -> Iterator[Service]:
    svc = Service(settings, rpc=RpcClient(settings.chain.rpc_urls[0], timeout=10, max_retries=0))
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def test_the_service_alerts_on_real_runs_and_feeds_once_from_the_leader(chain, db_url, receiver, tmp_path):
    url = receiver.url("/hook")
    settings = service_settings(chain, db_url, url)
    engine = open_store(settings)
    load_files(engine, settings, accounts=settings.world["accounts_csv"], positions=settings.world["positions_csv"])
    rpc = RpcClient(chain.url, timeout=60)

    def events(kind: str | None = None) -> list[dict]:
        return [p.event for p in receiver.at("/hook") if kind is None or p.event["type"] == kind]

    def head_ts() -> int:
        return int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    try:
        with running(settings) as leader, running(settings) as standby:
            wait_until(lambda: leader.is_leader(), 30, "the first instance to lead")
            wait_until(lambda: cursor(engine), 60, "the first risk run compared (the baseline)")
            baseline = cursor(engine)
            # a healthy client of the baseline takes a position far under water: the next run liquidates it
            with engine.connect() as conn:
                wallet = conn.execute(select(m.RiskWallet.wallet).join(
                    m.Account, m.Account.wallet == m.RiskWallet.wallet).where(
                    m.RiskWallet.run_id == baseline, m.RiskWallet.status == "healthy")
                    .order_by(m.RiskWallet.wallet).limit(1)).scalar_one()
            book = tmp_path / "positions.csv"
            book.write_text("wallet,instrument,base_asset,size,entry_price,leverage\n"
                            f"{checksum(wallet[2:])},BTC-PERP,BTC,50,5000000,10\n")
            load_files(engine, settings, positions=book, merge=True)
            # and two hours pass with no round: the crypto feeds turn stale (past 3,600 s + 300 s of grace)
            rpc.call("evm_mine", [head_ts() + 7_200])
            got = wait_until(lambda: [e for e in events(WALLET_STATUS_WORSENED) if e["wallet"] == wallet], 60,
                             "the wallet's alert")
            assert len(got) == 1
            alert = got[0]
            assert (alert["old_status"], alert["new_status"], alert["chain_id"]) == ("healthy", "liquidate", CID)
            assert alert["previous_run_id"] == baseline and alert["run_id"] > baseline
            assert alert["equity"] < alert["mm"] and alert["excess"] < 0
            with engine.connect() as conn:
                block = conn.execute(select(m.RiskRunRecord.block_number).where(
                    m.RiskRunRecord.id == alert["run_id"])).scalar_one()
                equity = conn.execute(select(m.RiskWallet.equity).where(
                    m.RiskWallet.run_id == alert["run_id"], m.RiskWallet.wallet == wallet)).scalar_one()
            assert alert["block"] == block and alert["equity"] == pytest.approx(equity)
            stale = wait_until(lambda: {e["feed"] for e in events(FEED_STALE)} >= {"BTC/USD", "ETH/USD"} and
                               events(FEED_STALE), 30, "the crypto feeds' alerts")
            btc = next(e for e in stale if e["feed"] == "BTC/USD")
            assert btc["age_s"] > btc["limit_s"] == 3_900 and btc["feed_kind"] == "crypto"

            # fresh rounds again (the world's crypto feeds publish on the hour): the feeds recover (on_recovery)
            produce_blocks(rpc, chain.sim, 1, 3_600 - head_ts() % 3_600)
            wait_until(lambda: {e["feed"] for e in events(FEED_RECOVERED)} >= {"BTC/USD", "ETH/USD"}, 30,
                       "the recoveries")
            wait_until(lambda: count(engine, m.AlertOutbox) == 0, 10, "every delivery made")
            assert standby.ctx is None and not standby.alerts.metrics.value("alerts_sent_total",
                                                                            type=WALLET_STATUS_WORSENED)
            sent = sum(leader.metrics.value("alerts_sent_total", type=t) or 0
                       for t in (WALLET_STATUS_WORSENED, FEED_STALE, FEED_RECOVERED))
            assert sent == len(events())
        posts = receiver.at("/hook")
        assert len({p.event["id"] for p in posts}) == len(posts)  # each event once: the standby sent nothing
        assert all(p.headers[SIGNATURE_HEADER] == sign("s3cret", p.body) for p in posts)

        # a restart: the new leader runs risk again and watches the feeds, and sends nothing already sent
        before, compared = len(posts), cursor(engine)
        with running(settings) as again:
            wait_until(lambda: (again.metrics.value("risk_runs_total") or 0) >= 1, 60, "the new leader's risk run")
            with engine.connect() as conn:
                newest = conn.execute(select(func.max(m.RiskRunRecord.id))).scalar_one()
            wait_until(lambda: cursor(engine) == newest, 30, "its comparison")
            time.sleep(1.0)  # staleness watches and finder turns
            assert cursor(engine) > compared and (again.metrics.value("alerts_sent_total", type=FEED_STALE) or 0) == 0
        assert len(receiver.at("/hook")) == before
    finally:
        rpc.close()
        engine.dispose()
