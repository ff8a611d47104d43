"""Generate a world into the data home: ground truth, the raw feed and reference exports.

Everything is written to a staging folder first and moved into place at the end, world/
last: a crash leaves the previous world intact (or none), never half of one, and the
rerun starts clean. A world whose fingerprint matches the spec is reused, not rewritten.

Layout under the data home::

    landing/transactions/transactions_<day>.jsonl   raw events, by delivery day
    landing/chargebacks/chargebacks_<day>.jsonl     fraud reports, by delivery day
    landing/reference/{customers,terminals}.csv     reference exports
    world/                                          ground truth (not for the pipeline)
        spec.json, summary.json, customers.parquet, terminals.parquet,
        compromised_{terminals,customers}.csv, dirty_rows.csv,
        transactions/transactions_<day>.parquet
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl

from lakebed.world.dirt import DIRTY_KINDS
from lakebed.world.events import card_key
from lakebed.world.feed import FeedStats, FeedWriter
from lakebed.world.spec import WorldSpec
from lakebed.world.transactions import TransactionSimulator

Progress = Callable[[int, int], None]
"""Called with (days done, transactions so far)."""

PLACED = ("landing/transactions", "landing/chargebacks", "landing/reference", "world")
STAGING = ".staging"


@dataclass(frozen=True)
class WorldSummary:
    fingerprint: str
    days: int
    customers: int
    terminals: int
    transactions: int
    frauds: int
    frauds_by_scenario: dict[str, int]
    chargebacks: int
    transaction_lines: int
    dirty_by_kind: dict[str, int]
    transaction_files: int
    chargeback_files: int
    reference_files: int
    bytes_written: int

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.transactions if self.transactions else 0.0


@dataclass(frozen=True)
class Generated:
    summary: WorldSummary
    seconds: float
    reused: bool
    data_home: Path


def read_summary(data_home: Path) -> WorldSummary | None:
    path = data_home / "world" / "summary.json"
    if not path.exists():
        return None
    return WorldSummary(**json.loads(path.read_text()))


def existing_fingerprint(data_home: Path) -> str | None:
    """The fingerprint the world on disk was generated with (it includes the simulator's
    output version, so it cannot be recomputed from spec.json alone)."""
    summary = read_summary(data_home)
    return summary.fingerprint if summary else None


def generate_world(
    spec: WorldSpec,
    data_home: Path,
    *,
    chunk_days: int = 8,
    force: bool = False,
    on_progress: Progress | None = None,
) -> Generated:
    if chunk_days < 1:
        raise ValueError(f"chunk_days must be at least 1, got {chunk_days}")
    began = time.perf_counter()
    data_home = data_home.resolve()
    summary = read_summary(data_home)
    if not force and summary and _is_complete(data_home, spec):
        return Generated(summary, time.perf_counter() - began, True, data_home)

    shutil.rmtree(data_home / STAGING, ignore_errors=True)
    staging = data_home / STAGING / f"{spec.fingerprint()}-{os.getpid()}"
    summary = _write_world(spec, staging, chunk_days, on_progress)
    _swap_into_place(staging, data_home)
    shutil.rmtree(data_home / STAGING, ignore_errors=True)
    return Generated(summary, time.perf_counter() - began, False, data_home)


def _is_complete(data_home: Path, spec: WorldSpec) -> bool:
    same = existing_fingerprint(data_home) == spec.fingerprint()
    return same and all((data_home / place).is_dir() for place in PLACED)


def _write_world(
    spec: WorldSpec, root: Path, chunk_days: int, on_progress: Progress | None
) -> WorldSummary:
    simulator = TransactionSimulator(spec)
    truth_dir = root / "world" / "transactions"
    truth_dir.mkdir(parents=True)
    feed = FeedWriter(spec, simulator.terminals, root)

    transactions = 0
    by_scenario: dict[int, int] = {}
    for first in range(0, spec.n_days, chunk_days):
        last = min(first + chunk_days, spec.n_days)
        days = list(simulator.days(first, last))
        for offset, frame in enumerate(days):
            on_day = spec.start_date + timedelta(days=first + offset)
            frame.write_parquet(truth_dir / f"transactions_{on_day.isoformat()}.parquet")
            counts = frame["fraud_scenario"].value_counts()
            for scenario, count in counts.iter_rows():
                by_scenario[scenario] = by_scenario.get(scenario, 0) + count
        chunk = pl.concat(days)
        transactions += len(chunk)
        feed.add(chunk, last - 1)
        if on_progress:
            on_progress(last, transactions)
    stats = feed.finish()

    _write_profiles(spec, simulator, root)
    frauds = {f"scenario_{s}": by_scenario.get(s, 0) for s in (1, 2, 3)}
    summary = _summarise(spec, simulator, transactions, frauds, stats)
    (root / "world" / "spec.json").write_text(spec.model_dump_json(indent=2) + "\n")
    (root / "world" / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary


def _write_profiles(spec: WorldSpec, simulator: TransactionSimulator, root: Path) -> None:
    world = root / "world"
    customers = simulator.customers.to_frame(simulator.reach)
    terminals = simulator.terminals.to_frame(spec.feed.currencies)
    customers.write_parquet(world / "customers.parquet")
    terminals.write_parquet(world / "terminals.parquet")

    fraud = simulator.fraud
    for name, draw in (
        ("terminal_id", fraud.compromised_terminals),
        ("customer_id", fraud.compromised_customers),
    ):
        rows = [(day, int(entity)) for day in range(spec.n_days) for entity in draw(day)]
        frame = pl.DataFrame(rows, schema={"day": pl.Int64, name: pl.Int64}, orient="row")
        frame.write_csv(world / f"compromised_{name.removesuffix('_id')}s.csv")

    reference = root / "landing" / "reference"
    reference.mkdir(parents=True)
    customers.select(
        "customer_id",
        card_key().alias("card_id"),
        pl.col("x").round(4).alias("home_x"),
        pl.col("y").round(4).alias("home_y"),
    ).write_csv(reference / "customers.csv")
    terminals.with_columns(pl.col("x").round(4), pl.col("y").round(4)).write_csv(
        reference / "terminals.csv"
    )


def _summarise(
    spec: WorldSpec,
    simulator: TransactionSimulator,
    transactions: int,
    frauds: dict[str, int],
    stats: FeedStats,
) -> WorldSummary:
    return WorldSummary(
        fingerprint=spec.fingerprint(),
        days=spec.n_days,
        customers=simulator.customers.size,
        terminals=simulator.terminals.size,
        transactions=transactions,
        frauds=sum(frauds.values()),
        frauds_by_scenario=frauds,
        chargebacks=stats.chargebacks,
        transaction_lines=stats.transaction_lines,
        dirty_by_kind={kind: stats.dirty.get(kind, 0) for kind in DIRTY_KINDS},
        transaction_files=stats.transaction_files,
        chargeback_files=stats.chargeback_files,
        reference_files=2,
        bytes_written=stats.bytes_written,
    )


def _swap_into_place(staging: Path, data_home: Path) -> None:
    """Replace the placed folders. The old world/ leaves first and the new one arrives
    last, so a world/ folder on disk always describes the landing files beside it."""
    trash = data_home / STAGING / "replaced"
    trash.mkdir(parents=True, exist_ok=True)
    for place in ("world", *PLACED[:-1]):
        target = data_home / place
        if target.exists():
            target.rename(trash / place.replace("/", "_"))
    for place in PLACED:
        target = data_home / place
        target.parent.mkdir(parents=True, exist_ok=True)
        (staging / place).rename(target)
