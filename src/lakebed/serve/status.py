"""Read-only views of the platform's state, for the dashboard and anyone else watching:
the lakehouse's layers, quarantine and last run (``GET /lakehouse/status``), the model
registry beside the handbook's published results (``GET /models``, ``GET
/models/{version}/evaluation``), and the stream engine's recent alerts and figures (``GET
/stream/alerts``, ``GET /stream/activity``).

Each view reads what its system already records (Iceberg snapshots, the run log, MLflow,
the activity file) and answers on an empty data home too, with ``message`` saying what to
run. The lakehouse view scans tables, so it is cached per set of snapshot ids: a dashboard
refreshing every few seconds costs one scan per pipeline run.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
import polars as pl
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from lakebed.config import Settings
from lakebed.fraud.models import spec_named
from lakebed.lake.runs import read_runs
from lakebed.stream.activity import Activity, activity_file
from lakebed.stream.latency import Latencies

QUARANTINE_SAMPLES = 3
_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})")
# The tables whose rows per day are charted, and the date each is counted by: bronze and
# quarantine by the landing file's day (when the row arrived), silver and gold by event date.
DAILY: dict[str, tuple[str, str]] = {
    "bronze.transactions": ("bronze", "_source_file"),
    "silver.quarantine": ("quarantine", "source_file"),
    "silver.transactions": ("silver", "event_date"),
    "gold.fct_transactions": ("gold", "event_date"),
}


class NotFoundError(LookupError):
    """A named thing (a model version's evaluation...) does not exist: 404."""


class LayerTable(BaseModel):
    table: str
    layer: Literal["bronze", "silver", "gold"]
    rows: int
    snapshot_id: int | None


class QuarantineRule(BaseModel):
    feed: str
    rule: str
    rows: int
    samples: list[str] = Field(description="a few of the raw lines, as they arrived")


class DailyRows(BaseModel):
    day: str
    layer: str = Field(description="bronze, quarantine (by landing day), silver, gold (by event)")
    rows: int


class TestOut(BaseModel):
    name: str
    status: str
    message: str


class RunOut(BaseModel):
    started_at: str
    finished_at: str
    files_ingested: int
    files_unchanged: int
    rows_ingested: int
    unparsed_rows: int
    skipped: str | None
    models: dict[str, int]
    tests: list[TestOut]
    published: dict[str, str]


class LakehouseStatus(BaseModel):
    layers: list[LayerTable]
    daily: list[DailyRows]
    quarantine: list[QuarantineRule]
    last_run: RunOut | None
    last_build: RunOut | None = Field(description="the last run that ran dbt (its tests)")
    message: str | None = None


class VersionOut(BaseModel):
    version: str
    model: str
    title: str
    champion: bool
    auc_roc: float | None
    average_precision: float | None
    card_precision_at_100: float | None
    training_window: str | None
    feature_set_version: str | None


class HandbookOut(BaseModel):
    model: str
    auc_roc: float
    average_precision: float
    card_precision_at_100: float


class ModelsOut(BaseModel):
    champion: str | None
    versions: list[VersionOut]
    handbook: list[HandbookOut] = Field(description="the handbook's published results")
    message: str | None = None


class CurveOut(BaseModel):
    x: list[float]
    y: list[float]


class EvaluationOut(BaseModel):
    version: str
    model: str
    roc: CurveOut = Field(description="x: false positive rate, y: true positive rate")
    precision_recall: CurveOut = Field(description="x: recall, y: precision")
    importance: dict[str, float] = Field(description="mean score drop, largest first")
    fraud_rate: float


class AlertsOut(BaseModel):
    alerts: list[dict[str, Any]] = Field(description="newest first; each has an increasing id")
    message: str | None = None


class BucketOut(BaseModel):
    start: float
    transactions: int
    alerts: int
    dead_letters: int
    p50_ms: float | None
    p99_ms: float | None


class HistogramOut(BaseModel):
    edges_ms: list[float] = Field(description="bin edges, one more than counts")
    counts: list[int]


class ActivityOut(BaseModel):
    since: float
    until: float
    bucket_seconds: float
    transactions: int
    alerts: int
    dead_letters: int
    throughput: float = Field(description="transactions per second over the window")
    p50_ms: float | None
    p99_ms: float | None
    buckets: list[BucketOut]
    histogram: HistogramOut
    last_batch_at: float | None
    message: str | None = None


def status_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    cache = _LakehouseCache(settings)

    @router.get("/lakehouse/status", response_model=LakehouseStatus)
    def lakehouse_status() -> LakehouseStatus:
        return cache.get()

    @router.get("/models", response_model=ModelsOut)
    def models() -> ModelsOut:
        return _models(settings)

    @router.get("/models/{version}/evaluation", response_model=EvaluationOut)
    def evaluation(version: str) -> EvaluationOut:
        return _evaluation(settings, version)

    @router.get("/stream/alerts", response_model=AlertsOut)
    def alerts(
        after: int = Query(0, ge=0, description="only alerts with a larger id"),
        limit: int = Query(50, gt=0, le=1000),
    ) -> AlertsOut:
        if not activity_file(settings).exists():
            return AlertsOut(alerts=[], message=NO_STREAM)
        activity = Activity.open(settings, readonly=True)
        try:
            return AlertsOut(alerts=activity.alerts(after, limit))
        finally:
            activity.close()

    @router.get("/stream/activity", response_model=ActivityOut)
    def activity(
        minutes: float = Query(5, gt=0, le=24 * 60, description="the window, ending now"),
        bucket_seconds: float = Query(10, gt=0, le=3600),
    ) -> ActivityOut:
        return _activity(settings, minutes, bucket_seconds)

    return router


NO_STREAM = "the stream engine has not run yet: run `lakebed stream` (or `make demo`)"


class _LakehouseCache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._value: LakehouseStatus | None = None

    def get(self) -> LakehouseStatus:
        from lakebed.lake.catalog import NAMESPACES, open_catalog

        with self._lock:
            catalog = open_catalog(self.settings)
            tables = {}
            for namespace in NAMESPACES:
                for identifier in sorted(catalog.list_tables(namespace)):
                    tables[".".join(identifier)] = catalog.load_table(identifier)
            runs = read_runs(self.settings)
            key = (
                tuple((name, _snapshot_id(table)) for name, table in tables.items()),
                len(runs),
                runs[-1].finished_at if runs else None,
            )
            if key != self._key or self._value is None:
                self._value = _lakehouse(tables, runs)
                self._key = key
            return self._value


def _snapshot_id(table: Any) -> int | None:
    snapshot = table.current_snapshot()
    return int(snapshot.snapshot_id) if snapshot else None


def _lakehouse(tables: dict[str, Any], runs: list[Any]) -> LakehouseStatus:
    layers = []
    for name, table in tables.items():
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot and snapshot.summary else None
        rows = int(summary.get("total-records") or 0) if summary else 0
        layer = name.split(".", 1)[0]
        layers.append(
            LayerTable(table=name, layer=layer, rows=rows, snapshot_id=_snapshot_id(table))
        )
    daily: list[DailyRows] = []
    for name, (label, column) in DAILY.items():
        table = tables.get(name)
        if table is None or table.current_snapshot() is None:
            continue
        frame = pl.scan_iceberg(table).select(column)
        if column == "event_date":
            day = pl.col(column).cast(pl.Utf8)
        else:
            day = pl.col(column).str.extract(_DAY.pattern, 1)
        counts = (
            frame.select(day.alias("day"))
            .drop_nulls()
            .group_by("day")
            .agg(pl.len().alias("rows"))
            .sort("day")
            .collect()
        )
        daily += [DailyRows(day=d, layer=label, rows=n) for d, n in counts.iter_rows()]
    quarantine = []
    if "silver.quarantine" in tables and tables["silver.quarantine"].current_snapshot():
        grouped = (
            pl.scan_iceberg(tables["silver.quarantine"])
            .select("feed", "failed_rule", "raw_line", "source_file", "line_number")
            .sort("feed", "failed_rule", "source_file", "line_number")
            .group_by("feed", "failed_rule", maintain_order=True)
            .agg(pl.len().alias("rows"), pl.col("raw_line").head(QUARANTINE_SAMPLES))
            .collect()
        )
        for feed, rule, rows, samples in grouped.iter_rows():
            quarantine.append(
                QuarantineRule(
                    feed=feed, rule=rule, rows=rows, samples=[str(s) for s in samples or []]
                )
            )
    built = [run for run in runs if run.built]
    message = None
    if not tables or not any(layer.rows for layer in layers):
        message = "the lakehouse is empty: run `lakebed run` (or `make demo`) to build it"
    return LakehouseStatus(
        layers=layers,
        daily=daily,
        quarantine=quarantine,
        last_run=RunOut(**asdict(runs[-1])) if runs else None,
        last_build=RunOut(**asdict(built[-1])) if built else None,
        message=message,
    )


def _registry(settings: Settings) -> Any:
    from lakebed.fraud.registry import Registry

    return Registry(settings) if Registry.exists(settings) else None


def _title(name: str) -> str:
    try:
        return spec_named(name).title
    except (KeyError, ValueError, LookupError):
        return name


def _models(settings: Settings) -> ModelsOut:
    from lakebed.fraud.train import HANDBOOK_RESULTS

    handbook = [
        HandbookOut(model=name, auc_roc=auc, average_precision=ap, card_precision_at_100=cp)
        for name, (auc, ap, cp) in HANDBOOK_RESULTS.items()
    ]
    registry = _registry(settings)
    versions = registry.versions() if registry is not None else []
    if not versions:
        untrained = "no model is trained yet: run `lakebed train --promote-best` (or `make demo`)"
        return ModelsOut(champion=None, versions=[], handbook=handbook, message=untrained)
    out = [
        VersionOut(
            version=v.version,
            model=v.model,
            title=_title(v.model),
            champion=v.champion,
            auc_roc=v.metrics.get("auc_roc"),
            average_precision=v.metrics.get("average_precision"),
            card_precision_at_100=v.metrics.get("card_precision_at_100"),
            training_window=v.tags.get("training_window"),
            feature_set_version=v.tags.get("feature_set_version"),
        )
        for v in versions
    ]
    champion = next((v.version for v in out if v.champion), None)
    message: str | None = (
        None if champion else "no champion yet: run `lakebed models promote VERSION`"
    )
    return ModelsOut(champion=champion, versions=out, handbook=handbook, message=message)


def _evaluation(settings: Settings, version: str) -> EvaluationOut:
    from lakebed.fraud.registry import UnknownVersionError

    registry = _registry(settings)
    if registry is None:
        raise NotFoundError("no model is trained yet: run `lakebed train`")
    try:
        found = registry.version(version)
    except UnknownVersionError as error:
        raise NotFoundError(str(error)) from None
    evaluation = registry.evaluation(found)
    if evaluation is None:
        raise NotFoundError(
            f"version {version} has no stored evaluation (trained by an older Lakebed): "
            "run `lakebed train` again"
        )
    return EvaluationOut(
        version=found.version,
        model=found.model,
        roc=CurveOut(**asdict(evaluation.roc)),
        precision_recall=CurveOut(**asdict(evaluation.precision_recall)),
        importance=evaluation.importance,
        fraud_rate=evaluation.fraud_rate,
    )


def _activity(settings: Settings, minutes: float, bucket_seconds: float) -> ActivityOut:
    empty = HistogramOut(edges_ms=[], counts=[])
    if not activity_file(settings).exists():
        return ActivityOut(
            since=0, until=0, bucket_seconds=bucket_seconds, transactions=0, alerts=0,
            dead_letters=0, throughput=0.0, p50_ms=None, p99_ms=None, buckets=[],
            histogram=empty, last_batch_at=None, message=NO_STREAM,
        )  # fmt: skip
    activity = Activity.open(settings, readonly=True)
    try:
        window = activity.window(minutes * 60, bucket_seconds)
    finally:
        activity.close()
    latencies = window.latencies
    histogram = empty
    used = np.flatnonzero(latencies.counts)
    if len(used):
        low, high = int(used[0]), int(used[-1]) + 1
        histogram = HistogramOut(
            edges_ms=[float(e) for e in Latencies.edges[low : high + 1]],
            counts=[int(c) for c in latencies.counts[low:high]],
        )
    message = None
    if not window.transactions:
        message = f"no transaction scored in the last {minutes:g} minutes"
    return ActivityOut(
        since=window.since,
        until=window.until,
        bucket_seconds=window.bucket_seconds,
        transactions=window.transactions,
        alerts=window.alerts,
        dead_letters=window.dead_letters,
        throughput=window.throughput,
        p50_ms=latencies.percentile(50) if len(latencies) else None,
        p99_ms=latencies.percentile(99) if len(latencies) else None,
        buckets=[BucketOut(**asdict(bucket)) for bucket in window.buckets],
        histogram=histogram,
        last_batch_at=window.last_batch_at,
        message=message,
    )
