"""A backfill killed with SIGKILL resumes with no gap and no duplicate; bad configuration is named."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import tomli_w
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from indexer.chain.rpc import RpcClient
from indexer.config import load_settings
from indexer.errors import ConfigError
from indexer.store import indexes
from indexer.store.engine import make_engine
from indexer.store.models import metadata
from indexer.sync.startup import prepare
from indexer.types import Accounting
from tests.sync.checks import (
    assert_balances_match_chain,
    assert_rounds_match_chain,
    assert_transfers_match_logs,
    synced_block,
)


def _sync_cmd(manifest, db_url, *extra):
    return [sys.executable, "-m", "indexer.cli", "sync", "--once", "--config", str(manifest),
            "--database-url", db_url, "--blocks-per-tick", "20", *extra]


def test_sigkill_at_random_points_of_a_backfill_then_resume(world, manifest, db_url):
    """The world's backfill is killed four times at random moments; the resumed run equals the chain.

    Each run is killed at a random moment after it has committed a tick of its own, so that every kill
    falls inside the backfill (not in start-up) however fast this machine is."""
    rng = random.Random(5)
    engine = make_engine(db_url)
    kills = 0
    for _ in range(4):
        before = _checkpoint_or_none(engine, manifest.chain.chain_id)
        # small ticks, so that four short runs cover only part of the backfill
        proc = subprocess.Popen(_sync_cmd(world.manifest_path, db_url) + ["--blocks-per-tick", "3"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline \
                and _checkpoint_or_none(engine, manifest.chain.chain_id) == before:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    assert kills >= 3
    settings = manifest.model_copy(update={"database_url": db_url})
    rpc = RpcClient(world.url, timeout=120)
    partial = synced_block(engine, settings.chain.chain_id)
    assert partial is not None and partial < manifest.world["head_block"]
    with engine.connect() as conn:  # a first backfill sets the secondary indexes aside until it ends
        assert {ix.name for ix in indexes.missing(conn)} == {ix.name for ix in indexes.deferrable()}
        if conn.dialect.name == "sqlite":  # and was killed while it wrote through a rollback journal
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() != "wal"
    engine.dispose()
    done = subprocess.run(_sync_cmd(world.manifest_path, db_url), capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert synced_block(engine, settings.chain.chain_id) == manifest.world["head_block"]
    with engine.connect() as conn:  # the resumed run, once at the head, built them and went back to WAL
        assert indexes.missing(conn) == []
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert_transfers_match_logs(engine, settings, rpc)
    assert_balances_match_chain(engine, settings, rpc)
    assert_rounds_match_chain(engine, settings, rpc)
    engine.dispose()


def _checkpoint_or_none(engine, chain_id: int) -> int | None:
    try:
        return synced_block(engine, chain_id)
    except Exception:  # no schema yet: the first run is still migrating
        return None
    finally:
        engine.dispose()  # hold no connection between looks: SQLite's first backfill wants the file to itself


def _manifest_data(short_chain):
    import tomllib

    return tomllib.loads(short_chain.manifest_path.read_text())


def _load(tmp_path, data):
    p = tmp_path / "bad.toml"
    p.write_text(tomli_w.dumps(data))
    return load_settings(p)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_configuration_is_named_at_start_up(short_chain, tmp_path, db_url):
    rpc = RpcClient(short_chain.url, max_retries=0)
    data = _manifest_data(short_chain)

    wrong_chain = {**data, "chain": {**data["chain"], "chain_id": 1}}
    with pytest.raises(ConfigError, match="chain.chain_id: the node at .* is chain 31337"):
        prepare(_load(tmp_path, wrong_chain), rpc)

    no_code = {**data, "tokens": [{**data["tokens"][0], "address": "0x" + "42" * 20}, *data["tokens"][1:]]}
    with pytest.raises(ConfigError, match="no contract code at AAPLx"):
        prepare(_load(tmp_path, no_code), rpc)

    ui = next(i for i, t in enumerate(data["tokens"]) if t["accounting"] == Accounting.UI_MULTIPLIER.value)
    tokens = [dict(t) for t in data["tokens"]]
    tokens[ui]["accounting"] = "rebasing_shares"
    with pytest.raises(ConfigError, match=rf"tokens\[{tokens[ui]['symbol']}\].accounting = 'rebasing_shares'"):
        prepare(_load(tmp_path, {**data, "tokens": tokens}), rpc)

    xstock = next(i for i, t in enumerate(data["tokens"]) if t["accounting"] == Accounting.REBASING_SHARES.value)
    tokens = [dict(t) for t in data["tokens"]]
    tokens[xstock]["accounting"] = "plain"  # a real xStock: isPaused, sharesOf, getCurrentMultiplier; no paused()
    with pytest.raises(ConfigError, match=r"is 'rebasing_shares' \(it answers sharesOf and getCurrentMultiplier\): "
                                          r'set accounting = "rebasing_shares"'):
        prepare(_load(tmp_path, {**data, "tokens": tokens}), rpc)

    feed = data["feeds"][0]["address"]
    not_erc20 = {**data, "tokens": [{**data["tokens"][0], "address": feed}, *data["tokens"][1:]],
                 "feeds": data["feeds"][1:]}
    not_erc20["tokens"][0].pop("feed")
    not_erc20["tokens"][0].pop("reserve_feed")
    with pytest.raises(ConfigError, match="does not answer totalSupply"):
        prepare(_load(tmp_path, not_erc20), rpc)

    unreachable = RpcClient("http://127.0.0.1:9", max_retries=1, backoff_base=0.01, timeout=1)
    with pytest.raises(ConfigError, match="cannot reach"):
        prepare(_load(tmp_path, data), unreachable)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sync_command_takes_its_tick_size_from_the_configuration(short_chain, tmp_path, db_url, monkeypatch):
    """`service.blocks_per_tick` sizes the ticks of `collateral-indexer sync`; `--blocks-per-tick` overrides it."""
    from typer.testing import CliRunner

    from indexer import cli
    from indexer.sync import tick

    data = _manifest_data(short_chain)
    config = tmp_path / "seven.toml"
    config.write_text(tomli_w.dumps({**data, "service": {"blocks_per_tick": 7}}))
    spans: list[int] = []
    original = tick.sync_tick

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        if result is not None:
            spans.append(result.to_block - result.from_block + 1)
        return result

    monkeypatch.setattr(tick, "sync_tick", recording)
    first = data["chain"]["deployment_block"]
    for extra, size, goal in (([], 7, first + 29), (["--blocks-per-tick", "5"], 5, first + 59)):
        spans.clear()
        res = CliRunner().invoke(cli.app, ["sync", "--config", str(config), "--database-url", db_url,
                                           "--to-block", str(goal), *extra])
        assert res.exit_code == 0, res.output
        assert spans and max(spans) == size and all(s <= size for s in spans), spans
