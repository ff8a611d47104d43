"""The pipeline's run log: one JSON line per lakehouse run, in the data home.

The dashboard and the API show the last run and the dbt test results of the last build
from here. A file, not a table: it is written after the Iceberg commits, by any profile,
and a reader needs neither the catalog nor dbt's target folder (which the next build
overwrites). Lines are appended whole and read tolerantly, so a run killed mid-write costs
at most its own line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lakebed.config import Settings
from lakebed.lake.catalog import lakehouse_dir
from lakebed.lake.pipeline import LakehouseReport

KEEP_RUNS = 200


@dataclass(frozen=True)
class DbtTest:
    name: str
    status: str  # pass, fail, error, warn, skipped
    message: str


@dataclass(frozen=True)
class RunRecord:
    started_at: str  # ISO 8601, UTC
    finished_at: str
    files_ingested: int
    files_unchanged: int
    rows_ingested: int
    unparsed_rows: int
    skipped: str | None  # why dbt did not run
    models: dict[str, int] = field(default_factory=dict)  # status -> count
    tests: list[DbtTest] = field(default_factory=list)
    published: dict[str, str] = field(default_factory=dict)  # table -> mode

    @property
    def built(self) -> bool:
        return self.skipped is None

    @classmethod
    def of(cls, report: LakehouseReport, started: datetime, finished: datetime) -> RunRecord:
        build = report.build
        return cls(
            started_at=started.isoformat(),
            finished_at=finished.isoformat(),
            files_ingested=sum(feed.files_ingested for feed in report.ingest.feeds),
            files_unchanged=sum(feed.files_unchanged for feed in report.ingest.feeds),
            rows_ingested=report.ingest.rows,
            unparsed_rows=sum(feed.unparsed_rows for feed in report.ingest.feeds),
            skipped=report.skipped,
            models=dict(build.counts("model")) if build else {},
            tests=[
                DbtTest(node.name, node.status, node.message)
                for node in (build.nodes if build else [])
                if node.kind == "test"
            ],
            published={table.identifier: table.mode for table in report.published},
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        tests = [DbtTest(**test) for test in data.get("tests", [])]
        return cls(**{**data, "tests": tests})


def runs_file(settings: Settings) -> Path:
    return lakehouse_dir(settings) / "runs.jsonl"


def record_run(settings: Settings, record: RunRecord) -> None:
    """Append ``record``; the log keeps the last ``KEEP_RUNS`` runs."""
    path = runs_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = [json.dumps(asdict(run)) for run in read_runs(settings)[-(KEEP_RUNS - 1) :]]
    kept.append(json.dumps(asdict(record)))
    scratch = path.with_suffix(".tmp")
    scratch.write_text("\n".join(kept) + "\n")
    os.replace(scratch, path)  # whole or not at all


def read_runs(settings: Settings) -> list[RunRecord]:
    """Every recorded run, oldest first; a damaged line is skipped, not fatal."""
    path = runs_file(settings)
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            runs.append(RunRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError):
            continue
    return runs
