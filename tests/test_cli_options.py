"""The command line's options: configuration typos stop it, the precedence of flag, environment, file and
default, a bad --at, --version, --log-format json."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tomllib
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from indexer.cli import app, parse_time
from indexer.devchain.anvil import free_port
from indexer.log_format import JsonFormatter
from tests.conftest import fresh_database

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {
    "chain": {"chain_id": 31337, "rpc_url": "http://127.0.0.1:1", "deployment_block": 1},
    "tokens": [{"symbol": "X", "address": "0x" + "11" * 20, "decimals": 18, "asset_class": "single_stock",
                "accounting": "plain"}],
}
WALLET = "0x" + "22" * 20


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A test folder as the working directory (where the default database would go), no INDEXER_* set."""
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.upper().startswith("INDEXER_")]:
        monkeypatch.delenv(var)
    return tmp_path


def write_config(folder: Path, **top) -> Path:
    path = folder / "indexer.toml"
    path.write_text(tomli_w.dumps({**CONFIG, **top}))
    return path


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ 1: unknown keys
def test_a_misspelt_database_url_stops_init_db_before_anything_is_written(here):
    with fresh_database("postgresql", here) as prod:
        config = write_config(here, databse_url=prod)
        res = invoke("init-db", "--config", str(config))
        assert res.exit_code == 1, res.output
        assert res.stderr.strip() == f"error: {config}: databse_url: unknown setting; did you mean database_url?"
        assert res.stdout == ""
        assert not (here / "collateral.sqlite").exists()  # the default was not used instead
        assert tables(prod) == set()


def test_a_misspelt_key_in_a_nested_table_stops_init_db(here):
    config = write_config(here, service={"http_prot": 9200})
    res = invoke("init-db", "--config", str(config))
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"error: {config}: service.http_prot: unknown setting; did you mean "
                                  "service.http_port?")
    assert not (here / "collateral.sqlite").exists()


def test_an_unknown_indexer_variable_stops_init_db(here):
    config = write_config(here)
    res = invoke("init-db", "--config", str(config), env={"INDEXER_DATABSE_URL": f"sqlite:///{here / 'x.sqlite'}"})
    assert res.exit_code == 1
    assert res.stderr.strip() == ("error: environment variable INDEXER_DATABSE_URL: unknown setting; did you mean "
                                  "INDEXER_DATABASE_URL?")
    assert list(here.glob("*.sqlite")) == []


# ------------------------------------------------------------------------------------------ 2: precedence
def test_flag_beats_environment_beats_file_beats_default(here):
    """Each level in turn, with every lower level set too: init-db writes the schema where it should and
    nowhere else."""
    def url(name: str) -> str:
        return f"sqlite:///{here / name}"

    def init(config: Path, *flags: str, env: dict[str, str] | None = None) -> str:
        res = invoke("init-db", "--config", str(config), *flags, env=env)
        assert res.exit_code == 0, res.output
        return res.stdout.strip()

    assert init(write_config(here)) == "schema ready at sqlite:///collateral.sqlite"
    assert "risk_runs" in tables(f"sqlite:///{here / 'collateral.sqlite'}")
    (here / "collateral.sqlite").unlink()

    with_file = write_config(here, database_url=url("file.sqlite"))
    assert init(with_file) == f"schema ready at {url('file.sqlite')}"
    assert "risk_runs" in tables(url("file.sqlite"))

    assert init(with_file, env={"INDEXER_DATABASE_URL": url("env.sqlite")}) == f"schema ready at {url('env.sqlite')}"
    assert "risk_runs" in tables(url("env.sqlite"))

    assert init(with_file, "--database-url", url("flag.sqlite"),
                env={"INDEXER_DATABASE_URL": url("env.sqlite")}) == f"schema ready at {url('flag.sqlite')}"
    assert "risk_runs" in tables(url("flag.sqlite"))
    assert sorted(p.name for p in here.glob("*.sqlite")) == ["env.sqlite", "file.sqlite", "flag.sqlite"]


# ------------------------------------------------------------------------------------------ 3: --at
@pytest.fixture
def initialized(here):
    """A configuration and its real, migrated SQLite database (nothing synced)."""
    config = write_config(here, database_url=f"sqlite:///{here / 'db.sqlite'}")
    assert invoke("init-db", "--config", str(config)).exit_code == 0
    return config


FORMS = ("unix seconds (e.g. 1773154800) or an ISO 8601 date or time (e.g. 2026-03-10, 2026-03-10T15:00:00Z, "
         "2026-03-10T10:00:00-05:00; UTC when no offset is given)")


@pytest.mark.parametrize("command", [["wallet", WALLET], ["risk", "run"], ["risk", "compare"]])
@pytest.mark.parametrize(("at", "message"), [
    ("yesterday", f"error: --at 'yesterday' is not a time: give {FORMS}"),
    ("2026-13-01", f"error: --at '2026-13-01' is not a time: give {FORMS}"),
    ("-5", f"error: --at '-5' is not a time: give {FORMS}"),
    ("99999999999999999999", "error: --at '99999999999999999999' is out of range: give a time from 1970-01-01 to "
                             f"9999-12-31, as {FORMS}"),
    ("0001-01-01", f"error: --at '0001-01-01' is out of range: give a time from 1970-01-01 to 9999-12-31, as {FORMS}"),
])
def test_a_bad_at_is_one_line_about_the_at_value(initialized, command, at, message):
    res = invoke(*command, "--config", str(initialized), "--at", at)
    assert res.exit_code == 2, res.output
    assert res.stderr.strip() == message
    assert res.stdout == "" and "Traceback" not in res.output and "init-db" not in res.output


@pytest.mark.parametrize(("text", "seconds"), [
    ("1773154800", 1_773_154_800), (" 1773154800 ", 1_773_154_800), ("0", 0),
    ("2026-03-10T15:00:00Z", 1_773_154_800), ("2026-03-10T10:00:00-05:00", 1_773_154_800),
    ("2026-03-10 15:00", 1_773_154_800), ("2026-03-10", 1_773_100_800), ("9999-12-31T23:59:59Z", 253_402_300_799),
])
def test_the_accepted_forms_of_a_time(text, seconds):
    assert parse_time(text) == seconds


def test_a_good_at_reaches_the_database(initialized):
    res = invoke("wallet", WALLET, "--config", str(initialized), "--at", "2026-03-10T10:00:00-05:00")
    assert res.exit_code == 1
    assert res.stderr.strip() == ("error: no risk run is stored at or before time 1773154800: run "
                                  "`collateral-indexer risk run` (or the service) first")


# ------------------------------------------------------------------------------------------ 4: --version
def test_version_prints_the_package_version():
    res = invoke("--version")
    assert res.exit_code == 0, res.output
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version("collateral-indexer") == expected
    assert res.stdout == f"collateral-indexer {expected}\n"


# ------------------------------------------------------------------------------------------ 5: --log-format
def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("INDEXER_")}
    return subprocess.run([sys.executable, "-m", "indexer.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL)


def unreachable_config(folder: Path) -> Path:
    chain = {**CONFIG["chain"], "rpc_url": f"http://127.0.0.1:{free_port()}",
             "retry": {"max_retries": 1, "backoff_base": 0.01, "timeout": 2, "patience_s": 0}}
    path = folder / "unreachable.toml"
    path.write_text(tomli_w.dumps({**CONFIG, "chain": chain, "database_url": f"sqlite:///{folder / 's.sqlite'}"}))
    return path


def test_sync_with_json_logs_writes_one_json_object_per_line(tmp_path):
    """A sync that cannot reach its RPC: the migrations' and the HTTP client's records (-v), then the error
    that ends it, each one JSON object on its own line of stderr."""
    r = run_cli("--log-format", "json", "-v", "sync", "--once", "--config", str(unreachable_config(tmp_path)),
                cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) >= 3
    for doc in docs:
        assert list(doc)[:4] == ["time", "level", "logger", "event"]
        assert doc["time"].endswith("Z")
        assert datetime.fromisoformat(doc["time"]).utcoffset().total_seconds() == 0
        assert doc["level"] in {"debug", "info", "warning", "error"}
    loggers = {d["logger"] for d in docs}
    assert "alembic.runtime.migration" in loggers  # the schema was made on the way
    assert "urllib3.connectionpool" in loggers  # and the chain was tried
    last = docs[-1]
    assert (last["level"], last["logger"], last["exit_code"]) == ("error", "indexer.cli", 1)
    assert last["event"].startswith("chain.rpc_urls: cannot reach http://127.0.0.1:")


def test_text_logs_stay_the_default(tmp_path):
    r = run_cli("sync", "--once", "--config", str(unreachable_config(tmp_path)), cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error: chain.rpc_urls: cannot reach http://127.0.0.1:")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.stderr.splitlines()[0])


def test_a_json_line_carries_the_fields_the_log_call_supplies():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.json_lines")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("reorg: rolled back to block %d", 41, extra={"chain": 31337, "block": 41, "path": Path("/x")})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("tick failed", extra={"chain": 1, "event": "not the message"})
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert datetime.fromisoformat(first.pop("time")).utcoffset().total_seconds() == 0
    assert first == {"level": "warning", "logger": "tests.json_lines", "event": "reorg: rolled back to block 41",
                     "chain": 31337, "block": 41, "path": "/x"}
    assert (second["event"], second["chain"], second["level"]) == ("tick failed", 1, "error")
    assert second["exception"].startswith("Traceback") and second["exception"].endswith("ValueError: boom")
