"""Silver and gold with dbt: run ``dbt build`` on the profile's engine, report the results.

One dbt project serves both profiles; where the engines' SQL differs, the models call the
project's macros, which dispatch per adapter.

On the local profile dbt runs on DuckDB (dbt-duckdb) in a database file under the data
home. DuckDB cannot read Iceberg offline (its extension downloads at run time), so bronze
is exposed as views over the Parquet data files of the tables' current snapshots, planned
by pyiceberg: zero-copy, and exactly the committed data (bronze is append-only, so there
are no delete files to apply). Publishing then copies silver and gold into Iceberg.

On the cluster profile dbt runs on Spark (dbt-spark, session method) whose default
catalog is the lakehouse's Iceberg catalog: it reads bronze and writes silver and gold
in place, so there is nothing to expose and nothing to copy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog

from lakebed.config import Settings
from lakebed.lake.bronze import FEEDS, bronze_table
from lakebed.lake.catalog import lakehouse_dir
from lakebed.lake.spark import write_spark_defaults

DBT_PROJECT = Path(__file__).resolve().parents[3] / "dbt"
_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


@dataclass(frozen=True)
class NodeResult:
    name: str
    kind: str  # model, test, seed
    status: str  # success, pass, fail, error, warn, skipped
    message: str
    rows: int | None


@dataclass
class BuildResult:
    success: bool
    nodes: list[NodeResult] = field(default_factory=list)

    def counts(self, kind: str) -> Counter[str]:
        return Counter(node.status for node in self.nodes if node.kind == kind)

    @property
    def failures(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status in ("fail", "error")]


def dbt_database(settings: Settings) -> Path:
    return lakehouse_dir(settings) / "dbt.duckdb"


def expose_bronze(catalog: Catalog, database: Path) -> None:
    """(Re)create ``bronze.<table>`` views over the current Iceberg data files; a table
    with no data yet is an empty view with the bronze schema, so that every run, before
    and after the first landing files, replaces a view with a view."""
    connection = duckdb.connect(str(database))
    try:
        connection.execute("CREATE SCHEMA IF NOT EXISTS bronze")
        for feed in FEEDS:
            table = bronze_table(catalog, feed)
            tasks = list(table.scan().plan_files())
            if any(task.delete_files for task in tasks):
                raise RuntimeError(f"bronze.{feed.table} has delete files; bronze is append-only")
            paths = [_local_path(task.file.file_path) for task in tasks]
            view = f"bronze.{feed.table}"
            if paths:
                files = ", ".join(f"'{path}'" for path in paths)
                body = f"SELECT * FROM read_parquet([{files}])"
            else:
                columns = ", ".join(
                    f"CAST(NULL AS {_DUCKDB_TYPES[f.type]}) AS {f.name}" for f in feed.schema()
                )
                body = f"SELECT {columns} WHERE false"
            kind = connection.execute(
                "SELECT table_type FROM information_schema.tables "
                "WHERE table_schema = 'bronze' AND table_name = ?",
                [feed.table],
            ).fetchall()
            if kind == [("BASE TABLE",)]:  # an empty bronze table, from before this was a view
                connection.execute(f"DROP TABLE {view}")
            connection.execute(f"CREATE OR REPLACE VIEW {view} AS {body}")
    finally:
        connection.close()


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"the local profile reads local files, not {uri}")
    return unquote(parsed.path).replace("'", "''")


def _dbt_environment(settings: Settings, database: Path) -> dict[str, str]:
    """dbt reads its profile from these variables (see dbt/profiles.yml); on the cluster
    profile, the Spark session that dbt-spark starts reads ``SPARK_CONF_DIR``."""
    environment = {
        **os.environ,
        "LAKEBED_DBT_TARGET": settings.profile,
        "LAKEBED_DBT_DUCKDB_PATH": str(database),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DO_NOT_TRACK": "1",
    }
    if settings.profile == "cluster":
        conf_dir = lakehouse_dir(settings) / "spark-conf"
        write_spark_defaults(settings, conf_dir, work_dir=lakehouse_dir(settings))
        environment["SPARK_CONF_DIR"] = str(conf_dir)
    return environment


def run_dbt(
    settings: Settings, catalog: Catalog, arguments: list[str] | None = None
) -> BuildResult:
    """``dbt build`` (or the given command) over the current bronze snapshot.

    dbt runs in a child process: its adapter keeps global state and open connections for
    the life of a process, which would hold the DuckDB file against the publish step.
    """
    lakehouse_dir(settings).mkdir(parents=True, exist_ok=True)
    database = dbt_database(settings)
    if settings.profile == "local":
        expose_bronze(catalog, database)
    target_dir = lakehouse_dir(settings) / "dbt-target"
    results_file = target_dir / "run_results.json"
    results_file.unlink(missing_ok=True)
    command = [
        sys.executable, "-c", "from dbt.cli.main import cli; cli()",
        *(arguments or ["build"]),
        "--project-dir", str(DBT_PROJECT),
        "--profiles-dir", str(DBT_PROJECT),
        "--target-path", str(target_dir),
        "--log-path", str(lakehouse_dir(settings) / "dbt-logs"),
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        env=_dbt_environment(settings, database),
        capture_output=True,
        text=True,
        cwd=lakehouse_dir(settings),  # where Spark would leave its scratch folders
    )
    if not results_file.exists():
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-20:])
        raise RuntimeError(f"dbt did not run (exit code {completed.returncode}):\n{tail}")
    executed = json.loads(results_file.read_text())["results"]
    nodes = [
        NodeResult(
            name=result["unique_id"].split(".")[-1],
            kind=result["unique_id"].split(".")[0],
            status=result["status"],
            message=str(result.get("message") or ""),
            rows=(result.get("adapter_response") or {}).get("rows_affected"),
        )
        for result in executed
    ]
    return BuildResult(success=completed.returncode == 0, nodes=nodes)
