"""The lakehouse stages as plain functions, and the report a run ends with.

The Prefect flow (``lakebed.flows.lakehouse``) wires these stages with retries; they stay
free of Prefect so they can be called and tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
from pyiceberg.catalog import Catalog

from lakebed.config import Settings
from lakebed.lake.bronze import IngestReport, Progress, ingest
from lakebed.lake.catalog import NAMESPACES
from lakebed.lake.publish import PublishedTable, publish, written_in_place
from lakebed.lake.transform import BuildResult, dbt_database, run_dbt


@dataclass
class LakehouseReport:
    ingest: IngestReport
    build: BuildResult | None = None
    published: list[PublishedTable] = field(default_factory=list)
    skipped: str | None = None  # why dbt and publishing did not run
    layer_rows: dict[str, int] = field(default_factory=dict)
    quarantine: dict[tuple[str, str], int] = field(default_factory=dict)


def ingest_stage(
    settings: Settings, catalog: Catalog, on_progress: Progress | None = None
) -> IngestReport:
    landing = settings.data_home.resolve() / "landing"
    return ingest(
        catalog, landing, batch_files=settings.lake.ingest_batch_files, on_progress=on_progress
    )


def needs_build(catalog: Catalog, report: IngestReport) -> str | None:
    """Why the build can be skipped (nothing new and gold exists), or None to build."""
    if report.rows or any(feed.files_ingested for feed in report.feeds):
        return None
    if not catalog.table_exists("gold.fct_transactions"):
        return None
    return "no new landing files since the last build; silver and gold are up to date"


def build_stage(settings: Settings, catalog: Catalog) -> BuildResult:
    result = run_dbt(settings, catalog)
    if not result.success:
        failed = ", ".join(f"{n.name} ({n.status})" for n in result.failures) or "see dbt logs"
        raise RuntimeError(f"dbt build failed: {failed}")
    return result


def publish_stage(settings: Settings, catalog: Catalog) -> list[PublishedTable]:
    if settings.profile == "cluster":  # dbt-spark wrote silver and gold into the catalog
        return written_in_place(catalog)
    return publish(catalog, dbt_database(settings))


def layer_rows(catalog: Catalog) -> dict[str, int]:
    """Rows of every table in bronze, silver and gold, from snapshot summaries (no scan)."""
    rows: dict[str, int] = {}
    for namespace in NAMESPACES:
        for identifier in sorted(catalog.list_tables(namespace)):
            table = catalog.load_table(identifier)
            snapshot = table.current_snapshot()
            total = snapshot.summary.get("total-records") if snapshot and snapshot.summary else None
            rows[".".join(identifier)] = int(total or 0)
    return rows


def quarantine_by_rule(catalog: Catalog) -> dict[tuple[str, str], int]:
    if not catalog.table_exists("silver.quarantine"):
        return {}
    table = catalog.load_table("silver.quarantine")
    counts = (
        pl.scan_iceberg(table)
        .group_by("feed", "failed_rule")
        .agg(pl.len().alias("rows"))
        .sort("feed", "failed_rule")
        .collect()
    )
    return {(feed, rule): rows for feed, rule, rows in counts.iter_rows()}
