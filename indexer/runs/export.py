"""Exports for BI tools: a stored risk run's rows, and every holder's balance of every token at a block, as
CSV or Parquet files (README, "Exports").

What is exported:
- ``run`` (the ``risk_runs`` row), ``wallets``, ``holdings`` and ``positions`` (``risk_wallets``,
  ``risk_holdings``, ``risk_positions``) of one run, with every stored column, in key order;
- ``balances``: each holder's ``balanceOf`` of each token at block B, computed as a risk run at B computes it
  (``indexer/runs/snapshot.py``): at the synced head the ``balances`` table; at an earlier block each holder's
  last ``balance_changes`` row turned into ``balanceOf`` with the multiplier in force at B.

Exact integers (uint256 / int256: balances, units, multipliers, round ids) are written as decimal strings,
in CSV and in Parquet alike: Arrow's widest decimal holds 76 digits and a uint256 needs 78. Next to them a
float64 ``balance`` in token units is the convenience column. Floats are the stored float64 values (CSV:
the shortest text that reads back to the same float); booleans are ``true``/``false`` in CSV.

Rows are read in batches (a server-side cursor on PostgreSQL) and written batch by batch (Parquet: one row
group per batch, through ``ParquetWriter``), so a table of millions of rows never sits in memory. Every
table of one export comes from one read transaction (REPEATABLE READ on PostgreSQL, one SQLite read
transaction), so a sync tick committing meanwhile does not mix two heads. Each file is written under a
temporary name and renamed when complete: a failed export leaves no partial file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Connection, Engine, Float, Integer, Table, func, select

from indexer.accounting import WAD, balance_of_units, units_model
from indexer.errors import IndexerError
from indexer.runs.snapshot import resolve_block, tokens_in_force
from indexer.store import models as m
from indexer.store.registry import token_rows
from indexer.store.runs import latest_run
from indexer.store.types import Int256, Uint256
from indexer.types import Accounting

FORMATS = ("csv", "parquet")
RUN_TABLES: dict[str, Table] = {
    "run": m.RiskRunRecord.__table__,
    "wallets": m.RiskWallet.__table__,
    "holdings": m.RiskHolding.__table__,
    "positions": m.RiskPosition.__table__,
}
TABLES = (*RUN_TABLES, "balances")
BATCH_ROWS = 50_000

# column kinds: how each is written
EXACT, FLOAT, INT, BOOL, TEXT = "exact", "float", "int", "bool", "text"

BALANCE_COLUMNS = (("chain_id", INT), ("block_number", INT), ("token", TEXT), ("symbol", TEXT), ("decimals", INT),
                   ("accounting", TEXT), ("wallet", TEXT), ("balance_raw", EXACT), ("balance", FLOAT),
                   ("units_raw", EXACT), ("multiplier_raw", EXACT))


class ExportError(IndexerError):
    """Nothing to export as asked (no such run, a block not synced) or the output cannot be written."""


@dataclass(frozen=True)
class ExportedFile:
    table: str
    path: Path
    rows: int


@dataclass
class ExportResult:
    chain_id: int
    run: dict[str, Any] | None  # the exported run's `risk_runs` row, when run tables were exported
    block_number: int | None  # the block of the balances, when exported
    files: list[ExportedFile] = field(default_factory=list)


# -------------------------------------------------------------------------------- what to export
def default_tables(*, block: int | None, at: int | None, run_id: int | None) -> list[str]:
    """The balances when a block or time is given (and no run), else the run's four tables."""
    return ["balances"] if (block is not None or at is not None) and run_id is None else list(RUN_TABLES)


FILE_STEMS = {"run": "risk_run", "wallets": "risk_wallets", "holdings": "risk_holdings",
              "positions": "risk_positions", "balances": "balances_block"}


def file_name(table: str, *, run_id: int | None, block: int | None, fmt: str) -> str:
    """`risk_holdings_42.csv` (run 42), `balances_block_1234.parquet` (block 1234)."""
    return f"{FILE_STEMS[table]}_{block if table == 'balances' else run_id}.{fmt}"


def _kind(column) -> str:
    t = column.type
    if isinstance(t, (Uint256, Int256)):
        return EXACT
    if isinstance(t, Boolean):
        return BOOL
    if isinstance(t, Float):
        return FLOAT
    if isinstance(t, Integer):
        return INT
    return TEXT


def run_columns(table: str) -> list[tuple[str, str]]:
    """(name, kind) of a run table's columns, in the table's order."""
    return [(c.name, _kind(c)) for c in RUN_TABLES[table].columns]


def find_export_run(conn: Connection, chain_id: int, run_id: int | None, *, block: int | None = None,
                    at: int | None = None) -> dict[str, Any]:
    """The run asked for by id (orphaned or not), else the latest run that is not orphaned (at or before
    `block` / block time `at`)."""
    rr = m.RiskRunRecord.__table__
    if run_id is not None:
        row = conn.execute(select(rr).where(rr.c.id == run_id, rr.c.chain_id == chain_id)).mappings().first()
        if row is None:
            raise ExportError(f"no risk run {run_id} is stored for chain {chain_id}")
        return dict(row)
    row = latest_run(conn, chain_id, block=block, at=at)
    if row is None:
        where = (f" at or before block {block}" if block is not None else
                 f" at or before time {at}" if at is not None else "")
        raise ExportError(f"no risk run is stored for chain {chain_id}{where} (orphaned runs are left out): "
                          "run `collateral-indexer risk run` first, or give --run ID")
    return dict(row._mapping)


# -------------------------------------------------------------------------------- readers
def run_batches(conn: Connection, table: str, run_id: int, batch_rows: int) -> Iterator[list[tuple]]:
    """The run's rows of a run table in key order, `batch_rows` at a time."""
    t = RUN_TABLES[table]
    if table == "run":
        q = select(t).where(t.c.id == run_id)
    else:
        q = select(t).where(t.c.run_id == run_id).order_by(*[c for c in t.primary_key.columns if c.name != "run_id"])
    for part in conn.execute(q.execution_options(yield_per=batch_rows)).partitions():
        yield [tuple(r) for r in part]


@dataclass(frozen=True)
class BalancePlan:
    """Everything balances at a block need but the holders: the block, and each token and its multiplier."""

    chain_id: int
    block_number: int
    block_timestamp: int
    head: int
    tokens: dict[str, dict]
    multipliers: dict[str, int]


def plan_balances(conn: Connection, chain_id: int, block: int | None = None, at: int | None = None) -> BalancePlan:
    """Resolve the block (the synced head by default) and the multiplier of each token in force at it;
    SnapshotUnavailable (an IndexerError) names a block that is not synced or not stored."""
    number, ts, head = resolve_block(conn, chain_id, block, at)
    toks = token_rows(conn, chain_id)
    multipliers, _ = tokens_in_force(conn, chain_id, toks, number, ts)
    return BalancePlan(chain_id, number, ts, head, {t["address"]: t for t in toks}, multipliers)


def balance_batches(conn: Connection, plan: BalancePlan, batch_rows: int) -> Iterator[list[tuple]]:
    """(BALANCE_COLUMNS) of every positive balance at the plan's block, by token and wallet, in batches."""
    b, bc = m.Balance.__table__, m.BalanceChange.__table__
    cid, number = plan.chain_id, plan.block_number
    if number == plan.head:
        q = (select(b.c.token, b.c.wallet, b.c.balance_raw, b.c.units_raw)
             .where(b.c.chain_id == cid, b.c.balance_raw > 0).order_by(b.c.token, b.c.wallet))
        convert: Callable[[str, int], int | None] | None = None
    else:
        ranked = select(bc.c.token, bc.c.wallet, bc.c.units_raw, func.row_number().over(
            partition_by=(bc.c.token, bc.c.wallet), order_by=(bc.c.block_number.desc(), bc.c.log_index.desc()))
            .label("rn")).where(bc.c.chain_id == cid, bc.c.block_number <= number).subquery()
        q = (select(ranked.c.token, ranked.c.wallet, ranked.c.units_raw)
             .where(ranked.c.rn == 1).order_by(ranked.c.token, ranked.c.wallet))
        models = {a: units_model(Accounting(t["accounting"]), t["balance_source"]) for a, t in plan.tokens.items()}

        def convert(token: str, units: int) -> int:
            return balance_of_units(models[token], units, plan.multipliers.get(token, WAD))[0]

    for part in conn.execute(q.execution_options(yield_per=batch_rows)).partitions():
        out = []
        for row in part:
            token, wallet = row[0], row[1]
            tok = plan.tokens.get(token)
            if tok is None:
                continue
            if convert is None:
                balance, units = int(row[2]), int(row[3])
            else:
                units = int(row[2])
                balance = convert(token, units)
                if balance <= 0:
                    continue
            out.append((cid, number, token, tok["symbol"], tok["decimals"], tok["accounting"], wallet, balance,
                        balance / 10 ** tok["decimals"], units, plan.multipliers.get(token, WAD)))
        if out:
            yield out


# -------------------------------------------------------------------------------- writers
def _csv_cell(kind: str, v: Any) -> Any:
    if v is None:
        return ""
    if kind == EXACT:
        return str(int(v))
    if kind == FLOAT:
        return repr(float(v))  # the shortest text that reads back to the same float64
    if kind == BOOL:
        return "true" if v else "false"
    return v


class _CsvSink:
    def __init__(self, path: Path, columns: Sequence[tuple[str, str]]):
        self.kinds = [k for _, k in columns]
        self.file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.writer = csv.writer(self.file)
        self.writer.writerow([n for n, _ in columns])

    def write(self, rows: list[tuple]) -> None:
        kinds = self.kinds
        self.writer.writerows([[_csv_cell(k, v) for k, v in zip(kinds, r, strict=True)] for r in rows])

    def close(self) -> None:
        self.file.close()


_EXACT_META = {b"collateral_indexer.exact": b"exact integer (uint256/int256) as a decimal string"}


class _ParquetSink:
    def __init__(self, path: Path, columns: Sequence[tuple[str, str]], metadata: dict[str, str]):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        types = {EXACT: pa.string(), FLOAT: pa.float64(), INT: pa.int64(), BOOL: pa.bool_(), TEXT: pa.string()}
        self.kinds = [k for _, k in columns]
        self.schema = pa.schema([pa.field(n, types[k], metadata=_EXACT_META if k == EXACT else None)
                                 for n, k in columns], metadata={k: str(v) for k, v in metadata.items()})
        self.writer = pq.ParquetWriter(str(path), self.schema)

    def write(self, rows: list[tuple]) -> None:
        pa = self.pa
        arrays = []
        for i, (kind, f) in enumerate(zip(self.kinds, self.schema, strict=True)):
            values = [r[i] for r in rows]
            if kind == EXACT:
                values = [None if v is None else str(int(v)) for v in values]
            elif kind == BOOL:
                values = [None if v is None else bool(v) for v in values]
            arrays.append(pa.array(values, type=f.type))
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


def _write(path: Path, fmt: str, columns: Sequence[tuple[str, str]], batches: Iterator[list[tuple]],
           metadata: dict[str, str]) -> int:
    """Write the batches to `path` through a temporary file renamed when complete; the row count."""
    partial = path.with_name(f".{path.name}.partial")
    rows = 0
    try:
        sink = _CsvSink(partial, columns) if fmt == "csv" else _ParquetSink(partial, columns, metadata)
        try:
            for batch in batches:
                sink.write(batch)
                rows += len(batch)
        finally:
            sink.close()
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return rows


def prepare_out(out: Path) -> None:
    """The output folder exists (created if missing) and takes files; ExportError otherwise."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ExportError(f"cannot write to {out}: it is a file, not a folder") from None
    except OSError as exc:
        raise ExportError(f"cannot write to {out}: {exc.strerror or exc}") from None
    if not out.is_dir():
        raise ExportError(f"cannot write to {out}: not a folder")
    probe = out / f".export-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ExportError(f"cannot write to {out}: {exc.strerror or exc}") from None


# -------------------------------------------------------------------------------- the export
def _read_snapshot(conn: Connection) -> None:
    """One read transaction for the whole export."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")  # pysqlite opens none for reads: each SELECT would see its own state


def export(engine: Engine, chain_id: int, out: Path, *, tables: Sequence[str] | None = None,
           run_id: int | None = None, block: int | None = None, at: int | None = None, fmt: str = "csv",
           batch_rows: int = BATCH_ROWS) -> ExportResult:
    """Write the chosen tables to `out` as `fmt` files.

    Run tables come from run `run_id`, else from the latest run that is not orphaned (at or before
    `block` / `at` when given). Balances are at `block` / `at`, else at run `run_id`'s block when given,
    else at the synced head. Everything is checked before the first file is written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: give one of {', '.join(FORMATS)}")
    chosen = list(dict.fromkeys(tables or default_tables(block=block, at=at, run_id=run_id)))
    unknown = [t for t in chosen if t not in TABLES]
    if unknown:
        raise ExportError(f"unknown table {unknown[0]!r}: give one of {', '.join(TABLES)}")
    if batch_rows < 1:
        raise ExportError("the batch size must be at least 1 row")
    with ExitStack() as stack:
        conn = stack.enter_context(engine.connect())
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        _read_snapshot(conn)
        run = None
        if any(t in RUN_TABLES for t in chosen) or ("balances" in chosen and run_id is not None
                                                     and block is None and at is None):
            run = find_export_run(conn, chain_id, run_id, block=block, at=at)
        plan = None
        if "balances" in chosen:
            if block is None and at is None and run_id is not None:
                plan = plan_balances(conn, chain_id, run["block_number"])
            else:
                plan = plan_balances(conn, chain_id, block, at)
        prepare_out(out)
        result = ExportResult(chain_id, run if any(t in RUN_TABLES for t in chosen) else None,
                              None if plan is None else plan.block_number)
        for table in chosen:
            if table == "balances":
                meta = {"collateral_indexer.table": "balances", "chain_id": chain_id, "block_number": plan.block_number,
                        "block_timestamp": plan.block_timestamp}
                path = out / file_name(table, run_id=None, block=plan.block_number, fmt=fmt)
                try:
                    n = _write(path, fmt, BALANCE_COLUMNS, balance_batches(conn, plan, batch_rows), meta)
                except OSError as exc:
                    raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
            else:
                meta = {"collateral_indexer.table": RUN_TABLES[table].name, "chain_id": chain_id,
                        "run_id": run["id"], "block_number": run["block_number"],
                        "policy_version": run["policy_version"]}
                path = out / file_name(table, run_id=run["id"], block=None, fmt=fmt)
                try:
                    n = _write(path, fmt, run_columns(table), run_batches(conn, table, run["id"], batch_rows), meta)
                except OSError as exc:
                    raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
            result.files.append(ExportedFile(table, path, n))
        conn.rollback()  # read only
    return result
