"""`collateral-indexer`: the command line. Commands parse their options, call the library and print;
the work lives below (sync/, runs/, service/, devchain/)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from indexer.catalog.command import config_app
from indexer.errors import IndexerError
from indexer.log_format import LogFormat, configure_logging, error_line

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Collateral indexer for tokenized stocks.")
devchain_app = typer.Typer(no_args_is_help=True, help="A local anvil chain with the demo world.")
load_app = typer.Typer(no_args_is_help=True, help="Load the venue's off-chain accounts and positions from CSV.")
risk_app = typer.Typer(no_args_is_help=True, help="Risk runs: eligibility, haircuts, margin and joint stress.")
app.add_typer(devchain_app, name="devchain")
app.add_typer(load_app, name="load")
app.add_typer(risk_app, name="risk")
app.add_typer(config_app, name="config")
alerts_app = typer.Typer(no_args_is_help=True, help="Webhook alerts: list failed deliveries and replay them.")
app.add_typer(alerts_app, name="alerts")

console = Console()
err = Console(stderr=True)
DEFAULT_STATE = Path(".devchain")
DEFAULT_CONFIG = DEFAULT_STATE / "manifest.toml"

# ------------------------------------------------------------------------------------------ options
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Configuration TOML (a dev chain manifest works).")]
DatabaseUrlOpt = Annotated[str | None, typer.Option("--database-url", help="Overrides the configuration's database_url.")]
BlockOpt = Annotated[int | None, typer.Option("--block", help="At this synced block (default: the synced head).")]
AtOpt = Annotated[str | None, typer.Option("--at", help="...or at the last synced block at or before this time "
                                                       "(unix seconds or ISO 8601).")]
PolicyOpt = Annotated[str | None, typer.Option("--policy", help="Policy: a bundled name (default, kraken_2026) or a "
                                                                ".toml file (default: the configuration's policy_path).")]
MergeOpt = Annotated[bool, typer.Option("--merge", help="Upsert these rows and keep the others (default: replace all).")]
StateDirOpt = Annotated[Path, typer.Option(help="Folder for the node's state, logs and the manifest.")]


LogFormatOpt = Annotated[LogFormat, typer.Option(
    "--log-format", case_sensitive=False, help="Log lines on stderr: text, or json (one JSON object per line: time, "
                                               "level, logger, event and the record's fields).")]
_log_format = LogFormat.TEXT  # the run's --log-format (set by `main`)


def fail(message: str, code: int = 1) -> NoReturn:
    if _log_format is LogFormat.JSON:  # stderr stays one JSON object per line
        sys.stderr.write(error_line(message, exit_code=code) + "\n")
        sys.stderr.flush()
    else:
        err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings(config: Path, database_url: str | None):
    from indexer.config import load_settings

    return load_settings(config, **({"database_url": database_url} if database_url else {}))


@contextmanager
def _reading(config: Path, database_url: str | None, *, hint: str = "run `collateral-indexer init-db` and a sync first",
             errors: tuple[type[BaseException], ...] | None = None) -> Iterator[tuple[Any, Any]]:
    """(settings, engine) for a command that reads the store, the engine disposed on the way out; a bad
    configuration, a refusal of the indexer's own, or a database that is not there, not migrated or busy
    (`errors`, default SQLAlchemyError) is one line on stderr and exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from indexer.store.engine import make_engine

    try:
        settings = _settings(config, database_url)
    except IndexerError as exc:
        fail(str(exc))
    unreadable = errors or (SQLAlchemyError,)
    engine = make_engine(settings.database_url)
    try:
        yield settings, engine
    except IndexerError as exc:
        fail(str(exc))
    except unreadable as exc:
        fail(f"cannot read {settings.database_url}: {type(exc).__name__}: {str(exc).splitlines()[0]} ({hint})")
    finally:
        engine.dispose()


def _terminate_on_sigterm() -> None:
    """SIGTERM behaves like Ctrl-C so `finally` blocks stop what was started."""

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


TIME_FORMS = ("unix seconds (e.g. 1773154800) or an ISO 8601 date or time (e.g. 2026-03-10, 2026-03-10T15:00:00Z, "
              "2026-03-10T10:00:00-05:00; UTC when no offset is given)")
MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the last time ISO 8601 (and datetime) can write


def parse_time(value: str) -> int:
    """Unix seconds (a whole number >= 0) from an integer or an ISO 8601 date or time (UTC when no offset
    is given); ValueError saying the accepted forms otherwise."""
    text = value.strip()
    if text.isdigit():
        seconds = int(text)
    else:
        try:
            t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not a time: give {TIME_FORMS}") from None
        seconds = int((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp())
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"{value!r} is out of range: give a time from 1970-01-01 to 9999-12-31, as {TIME_FORMS}")
    return seconds


def _block_or_time(block: int | None, at: str | None) -> tuple[int | None, int | None]:
    """`--block N` or `--at TIME` (see parse_time); a bad --at is one line and exit code 2."""
    if block is not None and at is not None:
        fail("give --block or --at, not both")
    if at is None:
        return block, None
    try:
        return block, parse_time(at)
    except ValueError as exc:
        fail(f"--at {exc}", code=2)


# ------------------------------------------------------------------------------------------ dev chain
@devchain_app.command("up")
def devchain_up(
    port: Annotated[int, typer.Option(help="TCP port for the node's JSON-RPC.")] = 8545,
    seed: Annotated[str, typer.Option(help="World seed: the same seed builds the same world.")] = "7",
    scale: Annotated[str, typer.Option(help="small (1,200 wallets, ~50k transfers) or bench (100k wallets, 1M+).")] = "small",
    live: Annotated[bool, typer.Option("--live", help="Keep producing blocks with transfers and price rounds.")] = False,
    interval: Annotated[float, typer.Option(help="Live: wall-clock seconds between blocks.")] = 2.0,
    step: Annotated[int, typer.Option(help="Live: chain seconds between blocks (chain time runs faster).")] = 900,
    state_dir: StateDirOpt = DEFAULT_STATE,
    foreground: Annotated[bool, typer.Option("--foreground", help="Stay attached; Ctrl-C stops the chain.")] = False,
    seconds: Annotated[float, typer.Option(help="With --foreground: stop after this many seconds (0: until Ctrl-C).")] = 0,
    days: Annotated[int, typer.Option(help="Build only the first DAYS days of the world (0: all of it).")] = 0,
) -> None:
    """Start anvil, deploy the demo world and write its manifest (STATE_DIR/manifest.toml)."""
    from indexer.devchain.chain import short_timeline, spawn_live
    from indexer.devchain.specs import TIMELINE

    chain = _start(port=port, state_dir=state_dir, seed=seed, scale=scale,
                   timeline=short_timeline(days) if days > 0 else TIMELINE)
    if not foreground:
        if live:
            pid = spawn_live(state_dir, interval=interval, step=step)
            console.print(f"live producer running (pid {pid}); stop both with `collateral-indexer devchain down`")
        else:
            console.print("stop it with `collateral-indexer devchain down`")
        return
    _attached(chain, live=live, interval=interval, step=step, seconds=seconds)


def _start(*, port: int, state_dir: Path, seed: str, scale: str, timeline):
    """Start the dev chain with a progress bar on a terminal, else one plain line per step on stdout (flushed);
    one clear line and exit 1 on failure, nothing left running."""
    from indexer.devchain.chain import parse_seed, start_devchain
    from indexer.devchain.progress import PlainProgress

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
               TimeElapsedColumn()]
    try:
        seed_value = parse_seed(seed)
        _terminate_on_sigterm()
        if not (console.is_terminal and err.is_terminal):  # a log file, a pipe, CI: a bar would show nothing
            plain = PlainProgress(sys.stdout)
            chain = start_devchain(port=port, state_dir=state_dir, seed=seed_value, scale=scale, timeline=timeline,
                                   progress=plain.blocks, phase=plain.phase)
        else:
            with Progress(*columns, console=err, transient=True) as progress:
                task = progress.add_task("starting", total=None)
                chain = start_devchain(port=port, state_dir=state_dir, seed=seed_value, scale=scale,
                                       timeline=timeline,
                                       progress=lambda i, n: progress.update(task, completed=i, total=n),
                                       phase=lambda text: progress.update(task, description=text))
    except KeyboardInterrupt:
        fail("interrupted: the dev chain was stopped", 130)
    except IndexerError as exc:
        fail(str(exc))
    console.print(f"dev chain up at {chain.url}; manifest: {chain.manifest_path}")
    return chain


def _attached(chain, *, live: bool, interval: float, step: int, seconds: float,
              database_url: str | None = None) -> None:
    """Show the world, keep it live, and (with a database) sync it and serve it; Ctrl-C stops everything."""
    from indexer.chain.rpc import RpcClient
    from indexer.config import load_settings
    from indexer.devchain.demo import LiveProducer, sync_world, with_free_metrics_port
    from indexer.devchain.show import world_renderable

    rpc = RpcClient(chain.url)
    producer = None
    try:
        settings = load_settings(chain.manifest_path)
        console.print(world_renderable(settings, rpc))
        deadline = time.monotonic() + seconds if seconds > 0 else None
        if live:
            console.print(f"producing a block every {interval}s ({step}s of chain time); Ctrl-C stops")

            def on_block(number: int, t: int, n_tx: int) -> None:
                if database_url is None:
                    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))
                    console.print(f"block {number} at {stamp} UTC: {n_tx} transactions", highlight=False)

            producer = LiveProducer(chain, interval=interval, step=step, seconds=seconds or None, on_block=on_block)
        if database_url is not None:
            settings = settings.model_copy(update={"database_url": database_url})
            console.print(f"syncing into {settings.database_url}")
            loaded = sync_world(settings, _backfill)
            if loaded:
                console.print("loaded the off-chain book: " + ", ".join(f"{n:,} {k}" for k, n in loaded.items()))
            remaining = 0.0 if deadline is None else max(0.1, deadline - time.monotonic())
            _serve(with_free_metrics_port(settings), seconds=remaining, summary_every=5.0)
        else:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except IndexerError as exc:
        err.print(f"[red]error:[/red] {exc}")
    finally:
        if producer is not None:
            producer.stop()
        rpc.close()
        chain.node.stop(remove_state=True)
        console.print("dev chain stopped")


@devchain_app.command("down")
def devchain_down(state_dir: Annotated[Path, typer.Option(help="The folder given to `devchain up`.")] = DEFAULT_STATE
                  ) -> None:
    """Stop the dev chain and its live producer, and remove the node's disposable state."""
    from indexer.devchain.chain import stop_devchain

    stopped = stop_devchain(state_dir)
    console.print("stopped " + ", ".join(stopped) if stopped else f"no dev chain was running from {state_dir}")


@devchain_app.command("live", hidden=True)
def devchain_live(state_dir: StateDirOpt = DEFAULT_STATE, interval: float = 2.0, step: int = 900) -> None:
    """Produce live blocks on a dev chain started by `devchain up` (used by `up --live`)."""
    from indexer.chain.rpc import RpcClient
    from indexer.config import load_settings
    from indexer.devchain.chain import MANIFEST
    from indexer.devchain.live import load_sim, run_live

    _terminate_on_sigterm()
    try:
        settings = load_settings(state_dir / MANIFEST)
        rpc = RpcClient(settings.chain.rpc_urls[0])
        run_live(rpc, load_sim(state_dir), interval=interval, step=step, stop=threading.Event())
    except KeyboardInterrupt:
        pass
    except IndexerError as exc:
        fail(str(exc))


@devchain_app.command("show")
def devchain_show(
    manifest: Annotated[Path, typer.Option(help="Manifest written by `devchain up`.")] = DEFAULT_CONFIG,
) -> None:
    """Show the world on a running dev chain: tokens, feeds, latest prices, events."""
    from indexer.chain.rpc import RpcClient
    from indexer.config import load_settings
    from indexer.devchain.show import world_renderable

    try:
        settings = load_settings(manifest)
        rpc = RpcClient(settings.chain.rpc_urls[0], max_retries=1, timeout=10)
        console.print(world_renderable(settings, rpc))
    except IndexerError as exc:
        fail(str(exc))


@app.command("demo")
def demo(
    port: Annotated[int, typer.Option(help="TCP port for the dev chain.")] = 8545,
    seed: str = "7",
    seconds: Annotated[float, typer.Option(help="Run the service this many seconds once the database is in place "
                                                "(default $DEMO_SECONDS; 0: until Ctrl-C).")]
    = float(os.environ.get("DEMO_SECONDS", "0") or 0),
    state_dir: StateDirOpt = Path(".devchain-demo"),
    database_url: Annotated[str, typer.Option(help="Where the demo syncs the world (an SQLite database is built "
                                                   "beside it and replaces it only when the demo's sync and "
                                                   "daily runs succeeded).")] = "sqlite:///demo.sqlite",
    days: Annotated[int, typer.Option(help="Build only the first DAYS days of the world (0: all of it).")] = 0,
) -> None:
    """Build the demo world, syncing it as it is built; store a risk run per trading day of it; put the database
    in place with a configuration file beside it (NAME.toml); then keep the chain and the service live until
    Ctrl-C or --seconds, and print three commands to try on the configuration."""
    from indexer.chain.rpc import RpcClient
    from indexer.config import load_settings
    from indexer.devchain.chain import parse_seed, short_timeline
    from indexer.devchain.demo import (
        DemoFiles,
        LiveProducer,
        commands_to_try,
        daily_runs,
        start_synced_world,
        with_free_metrics_port,
        write_demo_config,
    )
    from indexer.devchain.progress import PlainProgress
    from indexer.devchain.show import world_renderable
    from indexer.devchain.specs import TIMELINE

    files = DemoFiles.for_url(database_url)
    previous = Path(files.database_url.removeprefix("sqlite:///"))
    kept = f" ({previous} is left as it was)" if files.separate and previous.exists() else ""
    plain = not (console.is_terminal and err.is_terminal)  # a log file, a pipe, CI: lines, not bars
    files.discard_building()  # what a demo killed half-way left behind
    try:
        seed_value = parse_seed(seed)
        _terminate_on_sigterm()
        build = dict(port=port, state_dir=state_dir, seed=seed_value, database_url=files.building_url,
                     timeline=short_timeline(days) if days > 0 else TIMELINE)
        if plain:
            lines = PlainProgress(sys.stdout)
            chain, loaded = start_synced_world(**build, progress=lines.blocks, phase=lines.phase)
        else:
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("blocks, synced as they come"), TimeElapsedColumn(), console=err,
                          transient=True) as bar:
                task = bar.add_task("starting", total=None)
                chain, loaded = start_synced_world(
                    **build, progress=lambda i, n: bar.update(task, completed=i, total=n),
                    phase=lambda text: bar.update(task, description=text))
    except KeyboardInterrupt:
        files.discard_building()
        fail(f"interrupted: the dev chain was stopped{kept}", 130)
    except IndexerError as exc:
        files.discard_building()
        fail(f"{exc}{kept}")
    console.print(f"dev chain up at {chain.url}, synced into {files.building_url}; the off-chain book: "
                  + ", ".join(f"{n:,} {k}" for k, n in loaded.items()), highlight=False)

    rpc = RpcClient(chain.url)
    producer, ready, problem, crash = None, False, None, None
    try:
        settings = load_settings(chain.manifest_path, database_url=files.building_url)
        console.print(world_renderable(settings, rpc))
        console.print("storing a risk run at 19:00 UTC of every XNYS trading day of the world", highlight=False)
        started = time.monotonic()
        with Progress(TextColumn("[bold]daily risk runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=plain) as bar:
            task = bar.add_task("runs", total=None)
            runs = daily_runs(settings, on_run=lambda i, n: bar.update(task, completed=i, total=n))
        console.print(f"stored {len(runs.run_ids)} risk runs, one at 19:00 UTC per XNYS trading day of the world, "
                      f"in {time.monotonic() - started:.0f}s", highlight=False)
        for line in runs.refused:
            console.print(f"  [yellow]not run:[/yellow] {line}", highlight=False, soft_wrap=True)
        files.promote()
        settings = settings.model_copy(update={"database_url": files.database_url})
        write_demo_config(chain.manifest_path, files.config, files.database_url)
        ready = True
        console.print(f"database {files.database_url}; configuration {files.config}", highlight=False)
        producer = LiveProducer(chain, interval=2.0, step=900, seconds=seconds or None)
        console.print("producing a block every 2.0s (900s of chain time); Ctrl-C stops")
        _serve(with_free_metrics_port(settings), seconds=seconds, summary_every=5.0)
    except KeyboardInterrupt:
        pass
    except IndexerError as exc:
        problem = str(exc)
    except Exception as exc:  # the database is in place: say how to use it before the traceback
        if not ready:
            raise
        crash = exc
    finally:
        if producer is not None:
            producer.stop()
        rpc.close()
        chain.node.stop(remove_state=True)
        if not ready:
            files.discard_building()
        console.print("dev chain stopped")
    if not ready:
        fail(f"{problem or 'interrupted'}{kept}", 1 if problem else 130)
    console.print(f"the demo's configuration: {files.config} (every command takes it); try:", highlight=False,
                  soft_wrap=True)
    for command in commands_to_try(settings, files.config):
        console.print(f"  {command}", highlight=False, soft_wrap=True)
    if crash is not None:
        raise crash
    if problem:
        fail(problem)


# ------------------------------------------------------------------------------------------ sync
@app.command("init-db")
def init_db(config: ConfigOpt = DEFAULT_CONFIG, database_url: DatabaseUrlOpt = None) -> None:
    """Create or upgrade the schema (Alembic migrations) and register the configured tokens and feeds."""
    from indexer.store.engine import open_store

    try:
        settings = _settings(config, database_url)
        open_store(settings).dispose()
    except IndexerError as exc:
        fail(str(exc))
    console.print(f"schema ready at {settings.database_url}")


@app.command("prune")
def prune_cmd(
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")] = False,
) -> None:
    """Thin stored risk runs to what [retention] keeps, once (what the service's retention job does): every
    run keeps its risk_runs row; holdings, positions and wallet rows go as the periods say."""
    from indexer.store import retention
    from indexer.store.engine import open_store

    try:
        settings = _settings(config, database_url)
        engine = open_store(settings)
        cid, policy = settings.chain.chain_id, settings.retention
        try:
            if dry_run:
                with engine.connect() as conn:
                    found = retention.survey(conn, cid, policy)
                planned, kept = ([], None) if found is None else (found.plan, found.kept_after())
                now = None if found is None else found.now
            else:
                done = retention.apply(engine, cid, policy)
                planned, kept, now = None, done.kept, done.now
        finally:
            engine.dispose()
    except IndexerError as exc:
        fail(str(exc))
    if now is None:
        fail(f"nothing is synced for chain {cid} yet: its runs' ages are measured from the synced head")
    at = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    K = retention.Keep
    if planned is not None:
        to_wallets = sum(1 for t in planned if t.keep == K.WALLETS)
        console.print(f"at chain time {at}: would thin {len(planned):,} runs ({to_wallets:,} to their wallet rows, "
                      f"{len(planned) - to_wallets:,} to their run row)", highlight=False, soft_wrap=True)
    else:
        console.print(f"at chain time {at}: {done.thinned:,} runs thinned, {sum(done.rows_deleted.values()):,} rows "
                      f"deleted in {done.transactions:,} transactions, {done.seconds:.1f}s", highlight=False,
                      soft_wrap=True)
    console.print(f"runs keeping everything: {kept[K.ALL]:,}; keeping their wallet rows: {kept[K.WALLETS]:,}; "
                  "every run keeps its risk_runs row", highlight=False, soft_wrap=True)


@app.command("sync")
def sync_cmd(
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Sync to the target block, then exit.")] = False,
    to_block: Annotated[int | None, typer.Option("--to-block", help="Stop at this block instead of the head.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between ticks while following the head.")] = 2.0,
    blocks_per_tick: Annotated[int | None, typer.Option(
        help="Largest block range written in one transaction (default: service.blocks_per_tick).")] = None,
) -> None:
    """Backfill from the deployment block to the head, then follow it (Ctrl-C or SIGTERM stops it at once:
    a tick in progress is rolled back whole and written again by the next run)."""
    from indexer.chain.headers import read_target
    from indexer.chain.rpc import RpcClient
    from indexer.store.engine import open_store
    from indexer.sync.startup import prepare
    from indexer.sync.tick import sync_tick

    _terminate_on_sigterm()
    log = logging.getLogger("indexer.sync")
    try:
        settings = _settings(config, database_url)
        engine = open_store(settings)
        ctx = prepare(settings, RpcClient.for_chain(settings.chain), max_blocks_per_tick=blocks_per_tick)
        _backfill(engine, ctx, to_block if to_block is not None else read_target(ctx.rpc, settings.chain.confirmations))
        if once or to_block is not None:
            return
        console.print("following the head; Ctrl-C stops")
        while True:
            result = _tick_through_faults(lambda: sync_tick(engine, ctx))
            if result is None:
                time.sleep(interval)
                continue
            log.info("tick %d..%d logs=%d transfers=%d rounds=%d reorg_to=%s %.2fs", result.from_block,
                     result.to_block, result.logs, result.transfers, result.rounds, result.reorg_to, result.seconds,
                     extra={"chain": ctx.chain_id, "from_block": result.from_block, "block": result.to_block,
                            "logs": result.logs, "transfers": result.transfers, "rounds": result.rounds,
                            "reorg_to": result.reorg_to, "seconds": round(result.seconds, 3)})
            console.print(f"synced to block {result.to_block} ({result.logs} logs, {result.rounds} rounds)"
                          + (f"; reorg rolled back to {result.reorg_to}" if result.reorg_to is not None else ""),
                          highlight=False)
    except KeyboardInterrupt:
        console.print("stopped: every tick is written whole or not at all (one in progress was rolled back); "
                      "the database is consistent and the next run goes on from its checkpoint")
    except IndexerError as exc:
        fail(str(exc))


def _backfill(engine, ctx, goal: int) -> None:
    """Ticks up to `goal` with a progress bar (blocks/s, logs/s, ETA), moving page by page within a tick."""
    from indexer.store.progress import read_checkpoint
    from indexer.sync.tick import sync_tick

    with engine.connect() as conn:
        cp = read_checkpoint(conn, ctx.chain_id)
    first = ctx.settings.chain.deployment_block if cp is None else cp.block_number + 1
    started, n_logs = time.monotonic(), 0
    columns = [TextColumn("[bold]backfill"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
               TextColumn("blocks · {task.fields[bps]:,.0f} blocks/s · {task.fields[lps]:,.0f} logs/s"),
               TimeRemainingColumn()]
    # with --log-format json stderr carries JSON lines only: no bar there
    with Progress(*columns, console=err, transient=False, disable=_log_format is LogFormat.JSON) as progress:
        task = progress.add_task("backfill", total=max(0, goal - first + 1), bps=0.0, lps=0.0)

        def show(block: int, logs: int) -> None:  # within a tick: written, committed with the tick
            done = max(0, block - first + 1)
            elapsed = max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=done, bps=done / elapsed, lps=(n_logs + logs) / elapsed)

        while (result := _tick_through_faults(lambda: sync_tick(engine, ctx, to_block=goal, on_page=show))) is not None:
            n_logs += result.logs
            show(result.to_block, 0)
    console.print(f"synced blocks {first}..{goal}: {n_logs:,} logs in {time.monotonic() - started:.1f}s")


def _tick_through_faults(tick):
    """`sync.tick.through_passing_faults`, saying each wait on stderr."""
    from indexer.sync.tick import through_passing_faults

    def say(exc, pause: float) -> None:
        if _log_format is LogFormat.JSON:
            logging.getLogger("indexer.sync").warning("provider trouble (%s): %s; trying again in %.0fs", exc.kind,
                                                      exc, pause, extra={"kind": exc.kind, "retry_in_s": pause})
            return
        err.print(f"[yellow]provider trouble ({exc.kind}): {exc}; trying again in {pause:.0f}s[/yellow]",
                  highlight=False, soft_wrap=True)

    return through_passing_faults(tick, say)


@app.command("reconcile")
def reconcile_cmd(config: ConfigOpt = DEFAULT_CONFIG, database_url: DatabaseUrlOpt = None) -> None:
    """Check every stored balance against balanceOf at the synced block; record and repair mismatches."""
    from indexer.chain.rpc import RpcClient
    from indexer.store.engine import open_store
    from indexer.sync.reconcile import reconcile
    from indexer.sync.startup import prepare

    try:
        settings = _settings(config, database_url)
        result = reconcile(open_store(settings), prepare(settings, RpcClient.for_chain(settings.chain)))
    except IndexerError as exc:
        fail(str(exc))
    if result is None:
        fail("nothing is synced yet: run `collateral-indexer sync` first")
    console.print(f"block {result.block}: {result.checked:,} balances checked, {result.mismatches} mismatches "
                  f"recorded and repaired, {result.failed_reads} failed reads, {result.seconds:.1f}s")


# ------------------------------------------------------------------------------------------ service
@app.command("run")
def run_cmd(
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    port: Annotated[int | None, typer.Option("--port", help="HTTP port for /metrics and /healthz (overrides "
                                                            "service.http_port; 0: any free port).")] = None,
    seconds: Annotated[float, typer.Option("--seconds", help="Stop after this many seconds (0: until SIGTERM or "
                                                             "Ctrl-C).")] = 0.0,
    summary_every: Annotated[float, typer.Option("--summary-every", help="Print a one-line summary this often "
                                                                         "(seconds; 0: never).")] = 0.0,
) -> None:
    """The background service: sync ticks, reconcile, risk runs and a feed-staleness watch, one leader per chain."""
    try:
        settings = _settings(config, database_url)
        if port is not None:
            settings = settings.model_copy(update={"service": settings.service.model_copy(update={"http_port": port})})
        _serve(settings, seconds=seconds, summary_every=summary_every)
    except IndexerError as exc:
        fail(str(exc))


def _serve(settings, *, seconds: float = 0.0, summary_every: float = 0.0) -> None:
    """Run the service until SIGTERM/SIGINT or `seconds`; the running job finishes its transaction first."""
    from indexer.service.service import Service

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    service = Service(settings)
    try:
        service.start()
        console.print(f"service running for chain {settings.chain.chain_id} into {settings.database_url}; "
                      f"metrics at http://{settings.service.http_host}:{service.http.port}/metrics", highlight=False)
        deadline = time.monotonic() + seconds if seconds else None
        next_summary = time.monotonic() + summary_every
        while not stop.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if summary_every and time.monotonic() >= next_summary:
                next_summary += summary_every
                console.print(_summary_line(service), highlight=False)
    finally:
        console.print("stopping: finishing the current job", highlight=False)
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.print("stopped; the database is consistent", highlight=False)


def _summary_line(service) -> str:
    return service.summary_line()  # a standby shows the leader's last tick, not a sync of its own


# ------------------------------------------------------------------------------------------ lookups
@app.command("wallet")
def wallet_cmd(
    addresses: Annotated[list[str] | None, typer.Argument(help="Wallet addresses (0x...); '-' reads them from stdin.")] = None,
    from_file: Annotated[Path | None, typer.Option("--file", "-f", help="Read addresses from this file (one per line, "
                                                                         "# comments).")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    block: Annotated[int | None, typer.Option("--block", help="Answer from the latest risk run at or before this "
                                                              "block.")] = None,
    at: AtOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (schema: docs/wallet-lookup.schema.json).")] = False,
    clients_only: Annotated[bool, typer.Option("--clients-only", help="Answer only the venue's clients (an account "
                                                                      "on file); refuse other wallets.")] = False,
    clients: Annotated[bool, typer.Option("--clients", help="No addresses: list the venue's clients nearest a margin "
                                                            "call.")] = False,
    top: Annotated[int, typer.Option("--top", min=0, help="With --clients: how many.")] = 20,
) -> None:
    """Look wallets up: holdings, prices, every haircut component, eligibility, collateral, margin, stress.

    Inputs that are not addresses (and, with --clients-only, wallets with no account on file) are named on
    stderr and the exit status is 2; the others are still answered."""
    if clients:
        if addresses or from_file is not None:
            fail("--clients lists the clients nearest a margin call: give it without addresses", code=2)
        client_listing(config=config, database_url=database_url, block=block, at=at, as_json=as_json, top=top)
        return
    wallet_lookup(addresses or [], from_file=from_file, config=config, database_url=database_url, block=block,
                  at=at, as_json=as_json, clients_only=clients_only)


def wallet_lookup(addresses: list[str], *, from_file: Path | None, config: Path, database_url: str | None,
                  block: int | None, at: str | None, as_json: bool, clients_only: bool = False) -> None:
    from indexer.lookup import NOT_A_CLIENT, addresses_in, lookup
    from indexer.lookup_view import invalid_lines, render
    from indexer.store.engine import make_engine

    block, at_time = _block_or_time(block, at)
    inputs = [a for a in addresses if a != "-"]
    if "-" in addresses:
        inputs += addresses_in(sys.stdin.read())
    if from_file is not None:
        try:
            inputs += addresses_in(from_file.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            fail(f"cannot read {from_file}: {exc.strerror}")
        except UnicodeDecodeError as exc:
            fail(f"cannot read {from_file}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    if not inputs:
        fail("give at least one wallet address (arguments, --file FILE, or '-' for stdin)", code=2)
    try:
        settings = _settings(config, database_url)
        engine = make_engine(settings.database_url)
        with engine.connect() as conn:
            doc = lookup(conn, settings.chain.chain_id, inputs, block=block, at=at_time, clients_only=clients_only)
        engine.dispose()
    except IndexerError as exc:
        fail(str(exc))
    except Exception as exc:  # a database that is not there, not migrated, or busy
        first = str(exc).splitlines()[0]
        hint = ("another process is writing it: an SQLite database's first backfill holds it while each tick "
                "writes; try again when the tick has committed" if "database is locked" in first
                else "run `collateral-indexer init-db` and a sync first")
        fail(f"cannot read {settings.database_url}: {type(exc).__name__}: {first} ({hint})")
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        render(doc, console)
    refused = [b for b in doc["invalid"] if b["error"] == NOT_A_CLIENT]  # --clients-only
    for line in invalid_lines({"invalid": [b for b in doc["invalid"] if b not in refused]}) + [
            f"[red]not a client[/red] {b['input']}: {b['error']}" for b in refused]:
        err.print(line, highlight=False, soft_wrap=True)  # the others are answered above; the exit code says so
    if doc["invalid"]:
        raise typer.Exit(2)


def client_listing(*, config: Path, database_url: str | None, block: int | None, at: str | None, as_json: bool,
                   top: int) -> None:
    """`wallet --clients`: the venue's clients nearest a margin call in the run (JSON: docs/sql.md, "Client views")."""
    from rich.text import Text

    from indexer.lookup import clients_nearest_margin_call
    from indexer.lookup_view import PANEL_EDGE, STATUS_STYLE, Col, table_or_list, usd

    block, at_time = _block_or_time(block, at)
    with _reading(config, database_url, errors=(Exception,)) as (settings, engine), engine.connect() as conn:
        doc = clients_nearest_margin_call(conn, settings.chain.chain_id, top=top, block=block, at=at_time)
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    run = doc["run"]
    when = datetime.fromtimestamp(run["block_timestamp"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"risk run {run['id']} · block {run['block_number']} · {when} · XNYS {run['market_state']} · "
                  f"policy {run['policy_version']}", highlight=False)
    console.print(f"{doc['clients']:,} clients: " + ", ".join(f"{k} {v:,}" for k, v in doc["status_counts"].items()),
                  highlight=False)
    cols = (Col("client"), Col("status"), Col("equity", number=True), Col("IM", number=True), Col("MM", number=True),
            Col("excess", number=True), Col("equity/IM", number=True), Col("account"))
    rows = [[c["checksummed"], Text(c["status"] or "not in run", style=STATUS_STYLE.get(c["status"] or "", "dim")),
             usd(c["equity"]), usd(c["im"]), usd(c["mm"]), usd(c["excess"]),
             "-" if c["equity_to_im"] is None else f"{c['equity_to_im']:.3f}",
             f"{c['jurisdiction']}, {c['tier']}, KYC {c['kyc_status']}"] for c in doc["nearest_margin_call"]]
    console.print(table_or_list(f"nearest a margin call (first {len(rows)})", cols, rows,
                                max(console.width - PANEL_EDGE, 20)))


@app.command("report")
def report_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html (created if missing).")] = Path("report"),
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    run: Annotated[int | None, typer.Option("--run", help="Report this risk run (default: the latest).")] = None,
    policy: PolicyOpt = None,
) -> None:
    """A self-contained HTML risk report (charts, no network) of a stored risk run."""
    from indexer.report import write_report
    from indexer.risk import load_policy
    from indexer.runs.compare import venue_policies
    from indexer.store.engine import make_engine

    try:
        settings = _settings(config, database_url)
        engine = make_engine(settings.database_url)
        path = write_report(engine, settings.chain.chain_id, out, run_id=run,
                            policy=load_policy(policy or settings.policy_path),
                            venues=venue_policies(policy or settings.policy_path))
        engine.dispose()
    except IndexerError as exc:
        fail(str(exc))
    console.print(f"report written to {path}", highlight=False)


@app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the files (created if missing).")] = Path("export"),
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    run: Annotated[int | None, typer.Option("--run", help="Export this risk run (default: the latest that is not "
                                                          "orphaned, at or before --block / --at when given).")] = None,
    block: Annotated[int | None, typer.Option("--block", help="Balances at this synced block (default: the run's "
                                                              "block with --run, else the synced head).")] = None,
    at: AtOpt = None,
    tables: Annotated[list[str] | None, typer.Option(
        "--table", "-t", help="run, wallets, holdings, positions or balances; once or more (default: the run's "
                              "four tables, or balances with --block / --at).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or parquet.")] = "csv",
    batch_rows: Annotated[int, typer.Option("--batch-rows", min=1, help="Rows read and written at a time.")] = 50_000,
) -> None:
    """Write a stored risk run's rows, or every holder's balance of every token at a block, as CSV or Parquet
    files for BI tools. Exact integers are decimal strings; every table comes from one read transaction."""

    from indexer.runs.export import export

    block, at_time = _block_or_time(block, at)
    fmt = fmt.lower()
    if fmt not in ("csv", "parquet"):
        fail(f"--format {fmt!r}: give csv or parquet", code=2)
    with _reading(config, database_url) as (settings, engine):
        result = export(engine, settings.chain.chain_id, out, tables=tables, run_id=run, block=block, at=at_time,
                        fmt=fmt, batch_rows=batch_rows)
    if result.run is not None:
        r = result.run
        when = datetime.fromtimestamp(r["block_timestamp"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        orphaned = (f"; orphaned (a reorg removed its block at "
                    f"{datetime.fromtimestamp(r['orphaned_at'], UTC).strftime('%Y-%m-%d %H:%M UTC')})"
                    if r.get("orphaned_at") is not None else "")
        console.print(f"run {r['id']}: block {r['block_number']} ({when}), policy {r['policy_version']}{orphaned}",
                      highlight=False)
    if result.block_number is not None:
        console.print(f"balances at block {result.block_number}", highlight=False)
    for f in result.files:
        console.print(f"  {f.path}: {f.rows:,} row{'' if f.rows == 1 else 's'}", highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------ off-chain book
def _load(kind: str, path: Path, config: Path, database_url: str | None, merge: bool) -> None:
    from indexer.offchain import load_files
    from indexer.store.engine import open_store

    try:
        settings = _settings(config, database_url)
        engine = open_store(settings)
        n = load_files(engine, settings, merge=merge, **{kind: path})[kind]
        engine.dispose()
    except IndexerError as exc:
        fail(str(exc))
    console.print(f"{kind}: {n:,} rows loaded from {path} ({'merged into' if merge else 'replacing'} the table)")


@load_app.command("accounts")
def load_accounts(
    path: Annotated[Path, typer.Argument(help="CSV: wallet, jurisdiction, tier, kyc_status[, cash_usd].")],
    config: ConfigOpt = DEFAULT_CONFIG, database_url: DatabaseUrlOpt = None, merge: MergeOpt = False,
) -> None:
    """Validate every row, then load them all in one transaction (or nothing, with each bad line named)."""
    _load("accounts", path, config, database_url, merge)


@load_app.command("positions")
def load_positions(
    path: Annotated[Path, typer.Argument(help="CSV: wallet, instrument, base_asset, size, entry_price, leverage.")],
    config: ConfigOpt = DEFAULT_CONFIG, database_url: DatabaseUrlOpt = None, merge: MergeOpt = False,
) -> None:
    """Validate every row, then load them all in one transaction (or nothing, with each bad line named)."""
    _load("positions", path, config, database_url, merge)


# ------------------------------------------------------------------------------------------ risk
@risk_app.command("run")
def risk_run(
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    block: BlockOpt = None,
    at: AtOpt = None,
    policy: PolicyOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's summary as JSON.")] = False,
) -> None:
    """Load the snapshot from the synced tables, run the risk engine, store the results (one run id)."""
    from indexer.runs.job import run_and_store
    from indexer.store.engine import open_store

    block, at_time = _block_or_time(block, at)
    try:
        settings = _settings(config, database_url)
        engine = open_store(settings)
        summary = run_and_store(engine, settings.chain.chain_id, policy or settings.policy_path, block=block, at=at_time)
        engine.dispose()
    except IndexerError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(asdict(summary), indent=2))
        return
    when = datetime.fromtimestamp(summary.block_timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"risk run {summary.run_id}: block {summary.block_number} ({when}, XNYS {summary.market_state}), "
                  f"policy {summary.policy}", highlight=False)
    console.print(f"  {summary.wallets:,} wallets, {summary.holdings:,} holdings, {summary.positions:,} positions; "
                  f"collateral {summary.collateral_usd:,.2f} USD", highlight=False)
    console.print("  " + ", ".join(f"{k} {v:,}" for k, v in summary.status_counts.items())
                  + f"; load {summary.load_s:.2f}s, run {summary.compute_s:.2f}s, write {summary.write_s:.2f}s",
                  highlight=False)
    for note in summary.notes:
        console.print(f"  [yellow]note:[/yellow] {note}", highlight=False)


_STATUS_STYLE = {"healthy": "green", "margin_call": "yellow", "liquidate": "red", "unpriced": "magenta"}


@risk_app.command("compare")
def risk_compare(
    policies: Annotated[list[str] | None, typer.Option(
        "--policy", help="A policy (bundled name or .toml file), given twice or more: the first is ours (the "
                         "reference), the others venues' disclosed rules (default: the configuration's policy "
                         "and kraken_2026).")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    block: BlockOpt = None,
    at: AtOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON: totals, every wallet, every "
                                                         "under-reserved wallet.")] = False,
    top: Annotated[int, typer.Option("--top", min=0, help="Under-reserved wallets shown on the terminal.")] = 20,
) -> None:
    """Two or more policies on the same snapshot: totals, and the wallets a venue's rule counts more cushion
    for than ours (largest shortfall first). Nothing is stored."""
    from rich.table import Table

    from indexer.runs.compare import compare_policies, comparison_document, venue_policies

    block, at_time = _block_or_time(block, at)
    with _reading(config, database_url) as (settings, engine):
        specs = list(policies) if policies else venue_policies(settings.policy_path)
        result = compare_policies(engine, settings.chain.chain_id, specs, block=block, at=at_time)
    if as_json:
        print(json.dumps(comparison_document(result), indent=2))
        return
    c = result.comparison
    when = datetime.fromtimestamp(result.block_timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"policies compared at block {result.block_number} ({when}, XNYS {result.market_state}); "
                  "nothing stored", highlight=False)
    for k, version in enumerate(c.versions):
        console.print(f"  {'ours' if k == 0 else 'venue'}: {version}", highlight=False)
    t0 = c.totals[0]
    console.print(f"  {t0.wallets:,} wallets, {t0.active_wallets:,} with holdings or positions; "
                  f"load {result.load_s:.2f}s, run {result.compute_s:.2f}s", highlight=False)

    totals = Table(title="Totals per policy (USD, every wallet)", title_justify="left")
    totals.add_column("")
    for k, name in enumerate(c.names):
        totals.add_column(f"{name} (ours)" if k == 0 else name, justify="right")
    money = [("market value", "market_value"), ("collateral", "collateral"), ("equity", "equity"), ("IM", "im"),
             ("excess", "excess"), ("stressed excess", "stressed_excess")]
    for label, key in money:
        totals.add_row(label, *(f"{getattr(t, key):,.2f}" for t in c.totals))
    for status in c.totals[0].status_counts:
        totals.add_row(status.replace("_", " "), *(f"{t.status_counts[status]:,}" for t in c.totals))
    totals.add_row("stressed excess < 0", *(f"{t.stressed_negative:,}" for t in c.totals))
    totals.add_row("under-reserved", "-", *(f"{t.under_reserved:,}" for t in c.totals[1:]))
    totals.add_row("shortfall (sum)", "-", *(f"{t.shortfall:,.2f}" for t in c.totals[1:]))
    console.print(totals)

    u = c.under
    if not len(u):
        console.print(f"no wallet is under-reserved: no venue counts more cushion than {c.names[0]} (tolerance "
                      f"{c.tolerance_usd} USD)", highlight=False)
        return
    shown = min(top, len(u))
    venues = len(c.names) > 2  # with one venue its name is in the title
    table = Table(title=f"Under-reserved against {', '.join(c.names[1:])}: a venue counts more cushion than "
                        f"{c.names[0]} ({len(u):,} wallet-venue pairs, top {shown} by shortfall = excess venue - "
                        "excess ours; USD)", title_justify="left")
    for col in ("#", "wallet", *(("venue",) if venues else ()), "status\nours", "status\nvenue", "excess\nours",
                "excess\nvenue", "shortfall", "stressed\nours", "stressed\nvenue"):
        table.add_column(col, justify="right" if col == "#" or col.split()[0] in ("excess", "shortfall", "stressed")
                         else "left", no_wrap=col == "wallet", overflow="fold")
    status = [c.status_names(k) for k in range(len(c.names))]
    for i in range(shown):
        row, k = int(u.row[i]), int(u.policy[i])
        a, b = status[0][row], status[k][row]
        stressed_b = f"{c.stressed_excess[k, row]:,.0f}"
        table.add_row(str(i + 1), str(c.wallets[row]), *((c.names[k],) if venues else ()),
                      f"[{_STATUS_STYLE[a]}]{a}[/]", f"[{_STATUS_STYLE[b]}]{b}[/]",
                      f"{c.excess[0, row]:,.0f}", f"{c.excess[k, row]:,.0f}", f"{u.shortfall[i]:,.0f}",
                      f"{c.stressed_excess[0, row]:,.0f}",
                      f"[bold]{stressed_b}[/]" if u.stress_flip[i] else stressed_b)
    if shown:
        console.print(table)
    flips = int(u.status_flip.sum())
    stress_flips = int(u.stress_flip.sum())
    console.print(f"  {flips:,} healthy under a venue but margin_call or liquidate under {c.names[0]}; "
                  f"{stress_flips:,} with stressed excess >= 0 under a venue but < 0 under {c.names[0]}"
                  + ("" if shown == len(u) else f"; all {len(u):,} with --json"), highlight=False)


_VERDICT_STYLE = {"consistent": "green", "over-covers": "cyan", "under-covers": "red", "no windows": "dim"}


@app.command("backtest")
def backtest_cmd(
    policies: Annotated[list[str] | None, typer.Option(
        "--policy", help="A policy (bundled name or .toml file), once or more: the first is ours (default: the "
                         "configuration's policy and kraken_2026).")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    block: BlockOpt = None,
    at: AtOpt = None,
    min_returns: Annotated[int, typer.Option(
        "--min-returns", min=2, help="A window counts once its feed's sigma rests on this many returns.")] = 20,
    tokens: Annotated[bool, typer.Option("--tokens/--no-tokens", help="Also a table per token.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
    windows: Annotated[bool, typer.Option("--windows", help="With --json: every window too.")] = False,
) -> None:
    """Would the policy's haircuts have covered the moves that followed? Over every stored round up to B: per
    asset class and token, the share of H-session windows and of weekend and holiday gaps whose adverse move
    exceeded the haircut set at the window's start, against 1 - confidence (Kupiec's test). Nothing is stored."""
    from rich import box
    from rich.table import Table

    from indexer.runs.backtest import backtest_document, backtest_policies
    from indexer.runs.compare import venue_policies

    block, at_time = _block_or_time(block, at)
    with _reading(config, database_url) as (settings, engine):
        specs = list(policies) if policies else venue_policies(settings.policy_path)
        result = backtest_policies(engine, settings.chain.chain_id, specs, block=block, at=at_time,
                                   min_returns=min_returns)
    if as_json:
        print(json.dumps(backtest_document(result, windows=windows), indent=2))
        return
    first = min((b.first for b in result.results if b.first), default=0)
    last = max((b.last for b in result.results), default=0)
    day = lambda ts: datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d") if ts else "-"  # noqa: E731
    console.print(f"haircut backtest at block {result.block_number}: {result.rounds:,} stored rounds, windows "
                  f"from {day(first)} to {day(last)}; nothing stored", highlight=False)
    for k, (name, bt) in enumerate(zip(result.names, result.results, strict=True)):
        console.print(f"  {'ours' if k == 0 else 'venue'}: {name} {bt.version}: confidence {bt.confidence:.2%}, "
                      f"expected failure rate {bt.expected:.2%}, horizon {bt.horizon_sessions} sessions",
                      highlight=False)
    skipped = vars(result.results[0].skipped)
    console.print("  not counted: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in skipped.items())
                  + f" (a window counts once sigma rests on {min_returns} returns)", highlight=False)
    for note in result.results[0].excluded:
        console.print(f"  [yellow]not backtested:[/yellow] {note}", highlight=False)

    def pct(x: float) -> str:
        return "-" if x != x else f"{x:.1%}"

    short = {"consistent": "ok", "under-covers": "under", "over-covers": "over", "no windows": "-"}

    def kupiec(p_value: float, v: str) -> str:
        return f"{p_value:.3f} [{_VERDICT_STYLE[v]}]{short[v]}[/]"

    def table(title: str, groups: list) -> Table:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
        t.add_column("", no_wrap=True, min_width=max((len(c.group) for g in groups for c in g), default=1))
        for col in ("n", "failed", "Kupiec p", "vol part\nfailed", "Kupiec p\n(vol part)"):
            t.add_column(col, justify="right", no_wrap=True)
        for g in groups:
            for c in g:
                has = c.statistical_windows > 0
                t.add_row(c.group, f"{c.windows:,}", f"{c.failures:,} {pct(c.rate)}", kupiec(c.p_value, c.verdict),
                          f"{c.statistical_failures:,} {pct(c.statistical_rate)}" if has else "-",
                          kupiec(c.statistical_p_value, c.statistical_verdict) if has else "no vol part")
            t.add_section()
        return t

    for k, (name, bt) in enumerate(zip(result.names, result.results, strict=True)):
        who = "ours" if k == 0 else "venue"
        for kind, what in (("horizon", f"windows of {bt.horizon_sessions} sessions"),
                           ("gap", "weekend and holiday gaps")):
            groups = [[c for c in bt.classes if c.kind == kind and c.windows]]
            if tokens:
                groups.append([c for c in bt.tokens if c.kind == kind and c.windows])
            if any(groups):
                console.print(table(f"{name} ({who}): {what}, per asset class"
                                    + (" and per token" if tokens else ""), groups))
    console.print("  failed: the adverse move exceeded the whole haircut set at the window's start; vol part: it "
                  "exceeded h_vol (a horizon window) or h_gap (a gap) alone; Kupiec's test at 5% against "
                  "1 - confidence: ok (consistent), under (too many failures), over (fewer than expected)",
                  highlight=False)


# ------------------------------------------------------------------------------------------ alerts
@alerts_app.command("dead-letters")
def alerts_dead_letters(
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
    replayed: Annotated[bool, typer.Option("--all", help="Also those replayed already.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON, each with its event.")] = False,
) -> None:
    """Webhook deliveries of the chain that failed their last attempt: id, when, event, URL, attempts, last error."""

    from indexer.store import alerts as alert_store

    with (_reading(config, database_url, hint="run `collateral-indexer init-db` first") as (settings, engine),
          engine.connect() as conn):
        letters = alert_store.dead_letters(conn, settings.chain.chain_id, replayed=replayed)
    if as_json:
        print(json.dumps([{**asdict(d), "body": json.loads(d.body)} for d in letters], indent=2))
        return
    if not letters:
        console.print("no dead letters" + ("" if replayed else " waiting for a replay"), highlight=False)
        return
    for d in letters:
        when = datetime.fromtimestamp(d.failed_at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        again = "" if d.replayed_at is None else " (replayed)"
        console.print(f"{d.id}  {when}  {d.event_type} {d.event_id}  {d.url}  {d.attempts} attempts: "
                      f"{d.last_error}{again}", highlight=False, markup=False, soft_wrap=True)


@alerts_app.command("replay")
def alerts_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letters by id (`alerts dead-letters`).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead letter of the chain not replayed yet.")] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Queue dead letters again, the same event to the same URL with attempts from 0; the service's leader
    delivers them at its next turn."""
    from indexer.store import alerts as alert_store
    from indexer.store.engine import open_writer

    if not ids and not every:
        fail("name the dead letters to replay by id, or give --all")
    try:
        settings = _settings(config, database_url)
        engine = open_writer(settings.database_url)
        try:
            with engine.begin() as conn:
                done = alert_store.replay(conn, None if every else ids, settings.chain.chain_id)
        finally:
            engine.dispose()
    except IndexerError as exc:
        fail(str(exc))
    missing = sorted(set(ids or ()) - set(done))
    console.print(f"queued {len(done)} dead letter{'s' if len(done) != 1 else ''} again"
                  + (f" ({', '.join(map(str, done))})" if done else "")
                  + (f"; not found or replayed before: {', '.join(map(str, missing))}" if missing else ""),
                  highlight=False)
    if missing and not done:
        raise typer.Exit(1)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"collateral-indexer {version('collateral-indexer')}")
        except PackageNotFoundError:
            typer.echo("collateral-indexer (version unknown: the package is not installed)")
        raise typer.Exit(0)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: LogFormatOpt = LogFormat.TEXT,
    show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
) -> None:
    global _log_format
    _log_format = log_format
    configure_logging(log_format, logging.DEBUG if verbose else logging.WARNING)


if __name__ == "__main__":
    app()
