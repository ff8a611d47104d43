"""Benchmark: the cluster profile against the local profile on the same world, on one box.

Why: the cluster profile (PostgreSQL catalog, S3 warehouse on SeaweedFS, dbt on Spark,
Trino for SQL) exists for data and readers that outgrow one machine, not for speed on one.
This measures what it costs where it does not pay off, so that the choice is made on
numbers: the same world built by both profiles in the same run, on the same machine.

* **Cold start of the stack**: PostgreSQL, SeaweedFS and Trino started from empty homes
  with their downloads already cached (fetched first, not timed), each until it answers
  (``lakebed.services``: the same scripts as ``lakebed services up``).
* **Build**: the world is generated once (not timed), then built on the local profile
  (bronze ingestion into Iceberg on SQLite and local files, ``dbt build`` on DuckDB,
  publishing silver and gold to Iceberg) and on the cluster profile (bronze into the S3
  warehouse with the catalog in PostgreSQL, ``dbt build`` on Spark ``local[2]`` through
  dbt-spark's session method, which writes silver and gold in place). dbt runs in a child
  process on both; its start-up (and, on Spark, the JVM and the session) is the time
  before its first node, from ``run_results.json``. A Spark session's start on its own is
  measured apart, in a fresh process, before the build.
* **Same gold?** Every gold table of the two builds is fingerprinted (row count and a
  checksum per column, run columns excluded: ``lakebed.lake.fingerprint``), not timed.
* **Queries**: each gold example query of ``make demo`` (``lakebed.serve.demo``) on
  ``DuckDBEngine`` (local: silver and gold copied into memory when it opens, timed apart)
  and ``TrinoEngine`` (cluster: the Iceberg tables in place on S3): one cold run, then
  ``--repeat`` warm runs, p50 and max as the client sees them. The answers are compared.

Run ``python benchmarks/bench_cluster.py``: the default world (``Settings().world`` with no
configuration: 5,000 customers, about 1.77M transactions) takes 10 to 15 minutes on 2
cores, most of it the Spark build. ``--customers``, ``--terminals`` and ``--days`` make
the world smaller, but not the run much shorter (``--customers 500 --terminals 1000
--days 30``: about 7 minutes): on Spark most of the cost is per dbt node, not per row. Figures go to
``bench_cluster.json`` and ``bench_cluster.md`` in ``--scratch-dir`` (a new folder under
/tmp by default), which keeps nothing else unless ``--keep`` is given. Services use free
ports from 25432 (PostgreSQL), 29500 (SeaweedFS) and 28600 (Trino), so the defaults and
concurrent test runs are left alone. The 1-minute load average is sampled throughout and
reported: on a shared 2-core box the figures mean little without it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lakebed.config import Settings
from lakebed.lake.catalog import lakehouse_dir, open_catalog
from lakebed.lake.fingerprint import LOAD_COLUMNS, canonical, fingerprint
from lakebed.lake.pipeline import build_stage, ingest_stage, publish_stage
from lakebed.serve.demo import EXAMPLE_QUERIES
from lakebed.serve.engine import DuckDBEngine, QueryResult, TrinoEngine
from lakebed.services import PostgresServer, SeaweedfsServer, TrinoServer, free_ports
from lakebed.world.generate import generate_world
from lakebed.world.spec import WorldSpec

BUCKET = "lakebed"
ACCESS_KEY = "lakebed-bench"
SECRET_KEY = "lakebed-bench-secret"
PROFILES = ("local", "cluster")
QUERY_KEYS = ("cold", "p50", "max")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


class LoadSampler:
    """The 1-minute load average every few seconds: on a shared 2-core box, the figures
    mean little without what else ran beside them."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), os.getloadavg()[0]))
            self._stop.wait(every)

    @contextmanager
    def window(self, windows: dict[str, dict[str, float]], name: str) -> Iterator[None]:
        began = time.perf_counter()
        yield
        ended = time.perf_counter()
        loads = [load for at, load in self.samples if began <= at <= ended] or [os.getloadavg()[0]]
        windows[name] = {"mean": round(statistics.fmean(loads), 1), "max": round(max(loads), 1)}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def timed(seconds: dict[str, float], key: str) -> Iterator[None]:
    began = time.perf_counter()
    yield
    seconds[key] = round(time.perf_counter() - began, 2)


# --- the stack -------------------------------------------------------------------------


class Stack:
    """PostgreSQL, SeaweedFS and Trino of this run, with their homes under ``scratch``."""

    def __init__(self, scratch: Path) -> None:
        # As root PostgreSQL runs as the postgres user, who cannot enter a 0700 folder
        # made by mkdtemp: its home is a folder of its own under /tmp.
        self.pg_home = Path(tempfile.mkdtemp(prefix="lakebed-bench-pg-"))
        self.postgres = PostgresServer(self.pg_home, port=free_ports(25432, 1), password="bench-pw")
        self.seaweedfs = SeaweedfsServer(
            scratch / "seaweedfs",
            s3_port=free_ports(29500, 15),
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            bucket=BUCKET,
        )
        self.trino = TrinoServer(
            scratch / "trino",
            port=free_ports(28600, 1),
            jdbc_url=self.postgres.jdbc_url,
            jdbc_user=self.postgres.user,
            jdbc_password=self.postgres.password,
            warehouse=f"s3://{BUCKET}/warehouse",
            s3_endpoint=self.seaweedfs.endpoint,
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SECRET_KEY,
        )
        self.started: list[PostgresServer | SeaweedfsServer | TrinoServer] = []

    def fetch(self) -> None:
        """Downloads and builds into the shared cache (a no-op once cached): not timed."""
        self.seaweedfs.build()
        self.trino.fetch()

    def up(self, server: PostgresServer | SeaweedfsServer | TrinoServer) -> float:
        began = time.perf_counter()
        self.started.append(server)
        server.up()
        return round(time.perf_counter() - began, 2)

    def down(self) -> None:
        for server in reversed(self.started):
            try:
                server.down()
            except Exception as error:  # the others must still stop
                print(f"could not stop {type(server).__name__}: {error}", file=sys.stderr)
        shutil.rmtree(self.pg_home, ignore_errors=True)

    def cluster_settings(self, data_home: Path) -> Settings:
        return Settings(
            data_home=data_home,
            profile="cluster",
            lake={
                "catalog_uri": self.postgres.catalog_uri,
                "warehouse": f"s3://{BUCKET}/warehouse",
                "s3_endpoint": self.seaweedfs.endpoint,
                "s3_access_key": ACCESS_KEY,
                "s3_secret_key": SECRET_KEY,
            },
        )


# --- builds ------------------------------------------------------------------------------


def dbt_timing(target: Path, began_at: datetime, ended_at: datetime) -> dict[str, Any]:
    """Wall time before dbt's first node (process, parse, connection: on Spark the JVM and
    the session), between first and last node, and after; node seconds per layer."""
    manifest = json.loads((target / "manifest.json").read_text())
    results = json.loads((target / "run_results.json").read_text())["results"]
    starts, ends = [], []
    layers: dict[str, float] = {}
    for result in results:
        times = [t for t in result.get("timing", []) if t.get("started_at")]
        if times:
            starts.append(datetime.fromisoformat(times[0]["started_at"].replace("Z", "+00:00")))
            ends.append(datetime.fromisoformat(times[-1]["completed_at"].replace("Z", "+00:00")))
        node = manifest["nodes"][result["unique_id"]]
        kind = node["resource_type"]
        layer = "tests" if kind == "test" else node["fqn"][1] if kind == "model" else kind
        layers[layer] = round(layers.get(layer, 0.0) + result["execution_time"], 2)
    first, last = min(starts), max(ends)
    return {
        "dbt start-up": round((first - began_at).total_seconds(), 2),
        "dbt nodes": round((last - first).total_seconds(), 2),
        "dbt after nodes": round((ended_at - last).total_seconds(), 2),
        "node_seconds": layers,
    }


def build(settings: Settings, console: Console) -> dict[str, Any]:
    """Ingest, dbt build and publish, as ``lakebed lakehouse`` runs them; each stage timed."""
    seconds: dict[str, float] = {}
    with timed(seconds, "catalog"):
        catalog = open_catalog(settings)
    with timed(seconds, "bronze"):
        ingested = ingest_stage(settings, catalog)
    console.log(f"  {settings.profile} bronze: {seconds['bronze']:.1f} s")
    began_at = datetime.now(UTC)
    with timed(seconds, "dbt build"):
        result = build_stage(settings, catalog)
    dbt = dbt_timing(lakehouse_dir(settings) / "dbt-target", began_at, datetime.now(UTC))
    console.log(f"  {settings.profile} dbt build: {seconds['dbt build']:.1f} s")
    with timed(seconds, "publish"):
        published = publish_stage(settings, catalog)
    for key in ("dbt start-up", "dbt nodes", "dbt after nodes"):
        seconds[key] = dbt[key]
    seconds["end to end"] = round(
        sum(seconds[k] for k in ("catalog", "bronze", "dbt build", "publish")), 2
    )
    return {
        "seconds": seconds,
        "bronze_rows": ingested.rows,
        "models": dict(result.counts("model")),
        "tests": dict(result.counts("test")),
        "node_seconds": dbt["node_seconds"],
        "published": sorted(p.identifier for p in published),
    }


def spark_session_seconds(stack: Stack, data_home: Path) -> dict[str, float]:
    """A Spark session on the lakehouse's catalog started in a fresh process, as dbt-spark
    starts one: imports, JVM and jars, then a first catalog lookup."""
    env = {
        **os.environ,
        "LAKEBED_CONFIG": str(data_home / "absent.toml"),
        "LAKEBED_PROFILE": "cluster",
        "LAKEBED_DATA_HOME": str(data_home),
        "LAKEBED_LAKE__CATALOG_URI": stack.postgres.catalog_uri,
        "LAKEBED_LAKE__WAREHOUSE": f"s3://{BUCKET}/warehouse",
        "LAKEBED_LAKE__S3_ENDPOINT": stack.seaweedfs.endpoint,
        "LAKEBED_LAKE__S3_ACCESS_KEY": ACCESS_KEY,
        "LAKEBED_LAKE__S3_SECRET_KEY": SECRET_KEY,
    }
    done = subprocess.run(
        [sys.executable, __file__, "--case", "spark-session"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"the Spark session did not start:\n{tail}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def spark_session_case() -> None:
    """Inside the child: the settings come from ``LAKEBED_*`` as a user would give them."""
    began = time.perf_counter()
    from lakebed.lake.spark import spark_session

    imported = time.perf_counter()
    spark = spark_session(Settings())
    started = time.perf_counter()
    spark.sql("SHOW NAMESPACES").collect()
    looked_up = time.perf_counter()
    spark.stop()
    print(
        json.dumps(
            {
                "imports": round(imported - began, 2),
                "session (JVM, jars)": round(started - imported, 2),
                "first catalog call": round(looked_up - started, 2),
            }
        )
    )


# --- same gold ---------------------------------------------------------------------------


def compare_gold(local: Settings, cluster: Settings, tables: list[str]) -> dict[str, list[str]]:
    """Differences per table between the builds' fingerprints (empty lists: the same)."""
    ours, theirs = open_catalog(local), open_catalog(cluster)
    found = {}
    for identifier in tables:
        a = ours.load_table(identifier).scan().to_arrow()
        b = theirs.load_table(identifier).scan().to_arrow()
        differences = fingerprint(a, exclude=LOAD_COLUMNS).differences(
            fingerprint(b, exclude=LOAD_COLUMNS)
        )
        if a.column_names != b.column_names:
            differences.insert(0, f"columns: {a.column_names} vs {b.column_names}")
        found[identifier] = differences
    return found


# --- queries -----------------------------------------------------------------------------


def answers(result: QueryResult) -> list[list[str]]:
    return [
        [canonical(float(v) if isinstance(v, int | float) else v) for v in row]
        for row in result.rows
    ]


def time_queries(
    query: Callable[[str], QueryResult], repeat: int
) -> tuple[dict[str, dict[str, float]], dict[str, list[list[str]]]]:
    """Per example query: the cold run, then ``repeat`` warm runs (client wall time, ms)."""
    figures, results = {}, {}
    for title, sql in EXAMPLE_QUERIES:
        began = time.perf_counter()
        result = query(sql)
        cold = time.perf_counter() - began
        warm = []
        for _ in range(repeat):
            began = time.perf_counter()
            query(sql)
            warm.append(time.perf_counter() - began)
        figures[title] = {
            "cold_ms": round(cold * 1000, 1),
            "p50_ms": round(statistics.median(warm) * 1000, 1),
            "max_ms": round(max(warm) * 1000, 1),
        }
        results[title] = answers(result)
    return figures, results


# --- output ------------------------------------------------------------------------------


def cell(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def pair(local: float | None, cluster: float | None) -> list[str]:
    return [cell(local), cell(cluster), ratio(cluster, local)]


def ratio(cluster: float | None, local: float | None) -> str:
    return "—" if cluster is None or not local else f"{cluster / local:,.1f}x"


def report_tables(figures: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the console and for the markdown file."""
    world = figures["world"]
    tables = []
    start = figures["cold_start"]
    tables.append(
        (
            "Cold start of the cluster stack (downloads cached, empty homes)",
            ["service", "seconds"],
            [[name, cell(s)] for name, s in start.items()],
        )
    )
    local, cluster = figures["builds"]["local"]["seconds"], figures["builds"]["cluster"]["seconds"]
    labels = {
        "catalog": "open the catalog",
        "bronze": "bronze ingestion",
        "dbt build": "dbt build (silver + gold + tests)",
        "dbt start-up": "  of which before the first node",
        "dbt nodes": "  of which models, seeds and tests",
        "dbt after nodes": "  of which after the last node",
        "publish": "publish silver and gold",
        "end to end": "end to end",
    }
    tables.append(
        (
            f"Medallion build, {world['customers']:,} customers, "
            f"{world['transactions']:,} transactions ({world['landing_mb']:,} MB landing)",
            ["stage", "local (DuckDB), s", "cluster (Spark), s", "cluster / local"],
            [[label, *pair(local.get(key), cluster.get(key))] for key, label in labels.items()],
        )
    )
    session = figures["spark_session"]
    tables.append(
        (
            "Spark session on its own (fresh process, as dbt-spark starts it)",
            ["step", "seconds"],
            [[name, cell(s)] for name, s in session.items()],
        )
    )
    duck, trino = figures["queries"]["duckdb"], figures["queries"]["trino"]
    rows = [
        ["DuckDB engine open (copies silver + gold into memory)",
         cell(figures["queries"]["duckdb_open_s"] * 1000, 0), "", "", "", "", ""],
    ]  # fmt: skip
    for title, _ in EXAMPLE_QUERIES:
        on_both = (duck[title], trino[title])
        rows.append([title, *(cell(ran[f"{k}_ms"]) for ran in on_both for k in QUERY_KEYS)])
    tables.append(
        (
            f"Gold example queries, ms (cold run, then {figures['repeat']} warm runs)",
            ["query", *(f"{engine} {k}" for engine in ("DuckDB", "Trino") for k in QUERY_KEYS)],
            rows,
        )
    )
    return tables


def markdown(tables: list[tuple[str, list[str], list[list[str]]]]) -> str:
    parts = []
    for title, header, rows in tables:
        parts.append(f"**{title}**\n")
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|---" + "|---:" * (len(header) - 1) + "|")
        parts.extend("| " + " | ".join(row) + " |" for row in rows)
        parts.append("")
    return "\n".join(parts)


def print_tables(console: Console, tables: list[tuple[str, list[str], list[list[str]]]]) -> None:
    for title, header, rows in tables:
        table = Table(title=title)
        for index, column in enumerate(header):
            table.add_column(column, justify="left" if index == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)


# --- the run -----------------------------------------------------------------------------


def world_spec(args: argparse.Namespace) -> WorldSpec:
    """The handbook-sized default world, with the sizes the options change."""
    changes = {
        key: value
        for key, value in (
            ("n_customers", args.customers),
            ("n_terminals", args.terminals),
            ("n_days", args.days),
        )
        if value is not None
    }
    return WorldSpec.model_validate({**WorldSpec().model_dump(), **changes})


def run(args: argparse.Namespace, scratch: Path, console: Console) -> dict[str, Any]:
    spec = world_spec(args)
    figures: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
        },
        "repeat": args.repeat,
        "load": {},  # the 1-minute load average while each part ran (2 cores)
    }
    load = LoadSampler()
    console.log(f"generating the world ({spec.n_customers:,} customers, not timed) ...")
    generated = generate_world(spec, scratch / "world", chunk_days=8)
    summary = generated.summary
    figures["world"] = {
        "customers": spec.n_customers,
        "terminals": spec.n_terminals,
        "days": spec.n_days,
        "transactions": summary.transactions,
        "landing_mb": round(summary.bytes_written / 1e6),
    }
    console.log(f"  {summary.transactions:,} transactions in {generated.seconds:.1f} s")
    homes = {profile: scratch / profile for profile in PROFILES}
    for home in homes.values():
        for folder in ("landing", "world"):
            shutil.copytree(generated.data_home / folder, home / folder)
    if not args.keep:
        shutil.rmtree(generated.data_home, ignore_errors=True)

    # The local build first, with none of the cluster's servers running beside it.
    console.log("local profile: building ...")
    local = Settings(data_home=homes["local"])
    with load.window(figures["load"], "local build"):
        figures["builds"] = {"local": build(local, console)}

    stack = Stack(scratch)
    try:
        console.log("fetching the servers into the cache (not timed) ...")
        stack.fetch()
        console.log("starting PostgreSQL and SeaweedFS ...")
        start = {
            "PostgreSQL": stack.up(stack.postgres),
            "SeaweedFS (S3)": stack.up(stack.seaweedfs),
        }
        cluster = stack.cluster_settings(homes["cluster"])
        console.log("a Spark session on its own ...")
        figures["spark_session"] = spark_session_seconds(stack, homes["cluster"])
        console.log("cluster profile: building ...")
        with load.window(figures["load"], "cluster build"):
            figures["builds"]["cluster"] = build(cluster, console)
        # Trino starts after the Spark build, so that its idle JVM does not share the two
        # cores with Spark; its start-up is the same either way.
        console.log("starting Trino ...")
        with load.window(figures["load"], "Trino start"):
            start["Trino"] = stack.up(stack.trino)
        start["whole stack"] = round(sum(start.values()), 2)
        figures["cold_start"] = start

        gold = [t for t in figures["builds"]["local"]["published"] if t.startswith("gold.")]
        if args.check_silver:
            gold = figures["builds"]["local"]["published"]
        console.log(f"comparing {len(gold)} tables' fingerprints (not timed) ...")
        began = time.perf_counter()
        differences = compare_gold(local, cluster, gold)
        figures["same_tables"] = {
            "compared": gold,
            "differences": {t: d for t, d in differences.items() if d},
            "seconds": round(time.perf_counter() - began, 1),
        }
        figures["same_tables"]["published_same"] = (
            figures["builds"]["local"]["published"] == figures["builds"]["cluster"]["published"]
        )

        console.log("queries ...")
        began = time.perf_counter()
        duckdb = DuckDBEngine(open_catalog(local))
        opened = time.perf_counter() - began
        try:
            with load.window(figures["load"], "DuckDB queries"):
                on_duckdb, duckdb_answers = time_queries(duckdb.query, args.repeat)
        finally:
            duckdb.close()
        engine = TrinoEngine(stack.trino.url, user=stack.trino.reader_user)
        with load.window(figures["load"], "Trino queries"):
            on_trino, trino_answers = time_queries(engine.query, args.repeat)
        figures["queries"] = {
            "duckdb_open_s": round(opened, 2),
            "duckdb": on_duckdb,
            "trino": on_trino,
            "same_answers": {
                title: duckdb_answers[title] == trino_answers[title] for title, _ in EXAMPLE_QUERIES
            },
        }
    finally:
        stack.down()
        load.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)  # inside a child
    parser.add_argument("--customers", type=int, help="world size (default: 5,000)")
    parser.add_argument("--terminals", type=int, help="world size (default: 10,000)")
    parser.add_argument("--days", type=int, help="world length in days (default: 183)")
    parser.add_argument("--repeat", type=int, default=20, help="warm runs per query")
    parser.add_argument(
        "--check-silver", action="store_true", help="fingerprint silver too, not only gold"
    )
    parser.add_argument("--scratch-dir", type=Path, help="where homes and figures go")
    parser.add_argument("--keep", action="store_true", help="keep the world and data homes")
    args = parser.parse_args()

    if args.case == "spark-session":
        spark_session_case()
        return

    console = Console(width=max(Console().width, 120))  # the tables need the room
    scratch = args.scratch_dir or Path(tempfile.mkdtemp(prefix="lakebed-bench-cluster-"))
    scratch.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    try:
        figures = run(args, scratch, console)
    finally:
        if not args.keep:
            for name in ("world", *PROFILES, "seaweedfs", "trino"):
                shutil.rmtree(scratch / name, ignore_errors=True)
    figures["run_seconds"] = round(time.perf_counter() - began, 1)

    tables = report_tables(figures)
    print_tables(console, tables)
    same = figures["same_tables"]
    if same["differences"]:
        console.print(f"[red]gold differs between the profiles: {same['differences']}")
    else:
        console.print(
            f"The {len(same['compared'])} tables compared have the same fingerprints on both "
            f"profiles (rows and per-column checksums, run columns excluded; "
            f"{same['seconds']:.0f} s, not timed)."
        )
    console.print(f"Same answers on DuckDB and Trino: {figures['queries']['same_answers']}")
    console.print(f"1-minute load average (mean, max) on {os.cpu_count()} cores: {figures['load']}")
    for profile in PROFILES:
        result = figures["builds"][profile]
        console.print(
            f"{profile}: models {result['models']}, tests {result['tests']}; node seconds "
            f"by layer: {result['node_seconds']}"
        )
    (scratch / "bench_cluster.json").write_text(json.dumps(figures, indent=2) + "\n")
    (scratch / "bench_cluster.md").write_text(markdown(tables))
    console.print(f"Whole run {figures['run_seconds']:,.0f} s; figures in {scratch}")


if __name__ == "__main__":
    main()
