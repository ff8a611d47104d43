"""The lakehouse flow: generate -> ingest -> dbt build -> publish, with retries.

Import this module only after ``environment.prepare_prefect(settings)``. Without a
``PREFECT_API_URL`` the flow runs in-process against a temporary local Prefect server that
Prefect starts itself; with one (``prefect server start``), runs show up in the Prefect UI.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from lakebed.config import Settings
from lakebed.lake.bronze import IngestReport
from lakebed.lake.bronze import Progress as IngestProgress
from lakebed.lake.catalog import open_catalog
from lakebed.lake.pipeline import (
    LakehouseReport,
    build_stage,
    ingest_stage,
    layer_rows,
    needs_build,
    publish_stage,
    quarantine_by_rule,
)
from lakebed.lake.publish import PublishedTable
from lakebed.lake.runs import RunRecord, record_run
from lakebed.lake.transform import BuildResult
from lakebed.world.generate import Generated, Progress, generate_world

# Rich progress callbacks cannot travel as flow parameters (those are serialised for the
# Prefect API); the CLI sets these hooks around a run instead.
generate_progress: Progress | None = None
ingest_progress: IngestProgress | None = None
TRANSIENT = (OSError, TimeoutError)


class RefusedFilesError(RuntimeError):
    """Landing files changed after they were ingested: the run stops before dbt."""

    def __init__(self, refused: list[str]) -> None:
        self.refused = refused
        super().__init__("landing files refused:\n  " + "\n  ".join(refused))


def _transient(_: object, __: object, state: object) -> bool:
    """Retry file-system and network hiccups, not bugs or failed data tests."""
    try:
        state.result()  # type: ignore[attr-defined]
    except TRANSIENT:
        return True
    except Exception:
        return False
    return False


@task(name="generate", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def generate(settings: Settings, chunk_days: int) -> Generated:
    return generate_world(
        settings.world, settings.data_home, chunk_days=chunk_days, on_progress=generate_progress
    )


@task(
    name="ingest",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def ingest(settings: Settings) -> IngestReport:
    return ingest_stage(settings, open_catalog(settings), on_progress=ingest_progress)


@task(name="dbt build", retries=1, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def build(settings: Settings) -> BuildResult:
    return build_stage(settings, open_catalog(settings))


@task(
    name="publish",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def publish(settings: Settings) -> list[PublishedTable]:
    return publish_stage(settings, open_catalog(settings))


@flow(name="lakehouse", validate_parameters=False, log_prints=False)
def lakehouse(
    settings: Settings, chunk_days: int = 8, generate_world: bool = True
) -> LakehouseReport:
    if generate_world:
        generate(settings, chunk_days)
    started = datetime.now(UTC)
    ingested = ingest(settings)
    if ingested.refused:
        raise RefusedFilesError(ingested.refused)
    catalog = open_catalog(settings)
    report = LakehouseReport(ingest=ingested, skipped=needs_build(catalog, ingested))
    if report.skipped is None:
        report.build = build(settings)
        report.published = publish(settings)
    report.layer_rows = layer_rows(catalog)
    report.quarantine = quarantine_by_rule(catalog)
    record_run(settings, RunRecord.of(report, started, datetime.now(UTC)))
    return report


def run(
    settings: Settings,
    *,
    chunk_days: int = 8,
    generate_world: bool = True,
    on_generate: Progress | None = None,
    on_ingest: IngestProgress | None = None,
) -> LakehouseReport:
    global generate_progress, ingest_progress
    generate_progress, ingest_progress = on_generate, on_ingest
    try:
        return lakehouse(settings, chunk_days=chunk_days, generate_world=generate_world)
    finally:
        generate_progress = ingest_progress = None
