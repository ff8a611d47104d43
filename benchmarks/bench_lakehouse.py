"""Benchmark: the medallion build, stage by stage, ours against the same pipeline in PySpark.

Why: the lakehouse claims to be fast on one machine. A claim like that is only worth the
baseline it is measured against, so this runs the engine most teams would use instead,
PySpark ``local[2]`` (``spark_medallion.py``: the same contracts, dedupe, labels and
windows), on the same landing files, in the same run, on the same machine.

For each world (the default 5,000 customers, about 1.75M transactions, and a 20M-transaction
world) the world is generated once (not timed), then each case runs in a fresh subprocess
so that peak memory, imports and JVM state are the case's own:

* ``ours``: ``lakebed.lake``: bronze ``ingest`` into Iceberg, ``run_dbt`` (``dbt build`` on
  DuckDB: models and their ~80 tests), ``publish`` of silver and gold to Iceberg;
* ``ours-no-tests``: the same with ``dbt build --exclude-resource-type test`` (seed and
  models), the closer match to Spark, which runs no tests;
* ``spark``: the PySpark pipeline, session start timed apart, writing Parquet;
* ``dbt-floor`` (beside ``spark``): ``dbt build`` of the same project over empty bronze,
  dbt's cost whatever the data, against what the speed-up goal leaves for our whole run.

Both use the machine's two cores. "startup" is imports plus the catalog (ours) or imports
plus the SparkSession and its JVM (Spark); "end to end" is startup plus every stage.

Run ``python benchmarks/bench_lakehouse.py``. On 2 cores the default world takes about 4
minutes with every case; the 20M world takes 1.5 minutes to generate and about 3.5 minutes
per case of ours, and PySpark far longer (budget most of an hour and ~20 GB of scratch disk
for the whole run). ``--skip-scale`` runs the default world only, ``--skip-spark`` and
``--skip-no-tests`` leave cases out, ``--world-home DIR`` keeps the generated worlds there
for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HANDBOOK_TRANSACTIONS_PER_CUSTOMER = 1_754_155 / 5000
CASES = ("ours", "ours-no-tests", "spark")
GOAL_SPEEDUP = 10
GOAL_SCALE_SECONDS = 120
COUNTED = (
    "bronze.transactions", "bronze.chargebacks", "silver.transactions", "silver.chargebacks",
    "silver.removed_duplicates", "silver.quarantine", "silver.customers", "silver.terminals",
    "gold.fct_transactions", "gold.dim_date", "gold.fraud_kpis_daily",
)  # fmt: skip
FIGURE_QUERIES = {
    **{table: f"SELECT count(*) FROM {table}" for table in COUNTED},
    "gold.fct_transactions.frauds": "SELECT count(*) FILTER (is_fraud) FROM gold.fct_transactions",
    "gold.fct_transactions.amount": "SELECT sum(amount)::double FROM gold.fct_transactions",
    "gold.customer_spending_windows.sum_transactions_30d":
        "SELECT sum(customer_transactions_30d)::bigint FROM gold.customer_spending_windows",
    "gold.customer_spending_windows.sum_mean_amount_30d":
        "SELECT round(sum(customer_mean_amount_30d), 2) FROM gold.customer_spending_windows",
    "gold.terminal_risk_windows.sum_transactions_30d":
        "SELECT sum(terminal_transactions_30d)::bigint FROM gold.terminal_risk_windows",
    "gold.terminal_risk_windows.sum_risk_30d":
        "SELECT round(sum(terminal_risk_30d), 4) FROM gold.terminal_risk_windows",
}  # fmt: skip


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def progress(stage: str, seconds: dict[str, float]) -> None:
    """A line on stderr per stage, for watching a long run (the parent shows it on failure)."""
    print(f"ours {stage}: {seconds[stage]:.1f} s", file=sys.stderr, flush=True)


def run_generate(customers: int, terminals: int, days: int, data_home: Path) -> dict[str, Any]:
    from lakebed.world.generate import generate_world
    from lakebed.world.spec import WorldSpec

    spec = WorldSpec(n_customers=customers, n_terminals=terminals, n_days=days)
    generated = generate_world(spec, data_home, chunk_days=8)
    summary = generated.summary
    return {
        "customers": customers,
        "transactions": summary.transactions,
        "transaction_lines": summary.transaction_lines,
        "chargebacks": summary.chargebacks,
        "landing_mb": round(summary.bytes_written / 1e6),
        "seconds": round(generated.seconds, 1),
        "reused": generated.reused,
    }


def dbt_seconds_by_layer(target: Path) -> dict[str, float]:
    """Node execution times summed per layer (threads overlap: not wall time)."""
    manifest = json.loads((target / "manifest.json").read_text())
    results = json.loads((target / "run_results.json").read_text())["results"]
    layers: dict[str, float] = {}
    for result in results:
        node = manifest["nodes"][result["unique_id"]]
        kind = node["resource_type"]
        layer = "tests" if kind == "test" else node["fqn"][1] if kind == "model" else kind
        layers[layer] = round(layers.get(layer, 0.0) + result["execution_time"], 2)
    return layers


def ours_figures(database: Path) -> dict[str, Any]:
    """The same figures as ``spark_medallion.check``, from the dbt database (not timed)."""
    import duckdb

    connection = duckdb.connect(str(database), read_only=True)
    try:
        figures: dict[str, Any] = {}
        for key, query in FIGURE_QUERIES.items():
            row = connection.execute(query).fetchone()
            value = row[0] if row else None
            figures[key] = round(value, 4) if isinstance(value, float) else value
        rules = connection.execute(
            "SELECT feed, failed_rule, count(*) FROM silver.quarantine GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        figures["silver.quarantine_by_rule"] = {f"{feed}/{rule}": n for feed, rule, n in rules}
        return figures
    finally:
        connection.close()


def run_ours(landing: Path, scratch: Path, with_tests: bool) -> dict[str, Any]:
    """Our pipeline as the flow runs it: ingest, dbt, publish; each stage timed."""
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    # Imports are startup, as the JVM is for Spark (dbt runs in its own child process).
    from lakebed.config import Settings
    from lakebed.lake.bronze import ingest
    from lakebed.lake.catalog import lakehouse_dir, open_catalog
    from lakebed.lake.publish import publish
    from lakebed.lake.transform import dbt_database, run_dbt

    settings = Settings(data_home=scratch)
    catalog = open_catalog(settings)
    seconds["startup"] = time.perf_counter() - began

    began = time.perf_counter()
    ingested = ingest(catalog, landing, batch_files=settings.lake.ingest_batch_files)
    seconds["bronze"] = time.perf_counter() - began
    progress("bronze", seconds)

    # Models without tests is `build` minus tests, not `run`: `dbt run` skips the seed that
    # the contracts read (iso_currencies), so on a fresh database it fails.
    command = None if with_tests else ["build", "--exclude-resource-type", "test"]
    began = time.perf_counter()
    build = run_dbt(settings, catalog, command)
    seconds["silver+gold"] = time.perf_counter() - began
    progress("silver+gold", seconds)
    if not build.success:
        failed = "; ".join(f"{n.name} ({n.status}): {n.message}" for n in build.failures)
        raise RuntimeError(f"dbt {' '.join(command or ['build'])} failed: {failed}")

    began = time.perf_counter()
    published = publish(catalog, dbt_database(settings))
    seconds["publish"] = time.perf_counter() - began
    progress("publish", seconds)

    return {
        "seconds": seconds,
        "figures": ours_figures(dbt_database(settings)),
        "bronze_rows": ingested.rows,
        "dbt": {
            "models": dict(build.counts("model")),
            "tests": dict(build.counts("test")),
            "node_seconds": dbt_seconds_by_layer(lakehouse_dir(settings) / "dbt-target"),
        },
        "published_tables": len(published),
    }


def run_dbt_floor(scratch: Path) -> dict[str, Any]:
    """``dbt build`` over empty bronze: what dbt costs whatever the data (its start-up,
    parsing the project, 100-odd nodes with their queries and commits). No dbt build of
    this project can be faster, so it bounds the end-to-end speed-up over PySpark."""
    from lakebed.config import Settings
    from lakebed.lake.bronze import ingest
    from lakebed.lake.catalog import open_catalog
    from lakebed.lake.transform import run_dbt

    landing = scratch / "landing"
    for folder in ("transactions", "chargebacks", "reference"):
        (landing / folder).mkdir(parents=True)
    settings = Settings(data_home=scratch)
    catalog = open_catalog(settings)
    ingest(catalog, landing)
    began = time.perf_counter()
    build = run_dbt(settings, catalog)
    seconds = time.perf_counter() - began
    if not build.success:
        raise RuntimeError(f"dbt build over empty bronze failed: {build.failures}")
    return {"seconds": {"dbt build": seconds}, "nodes": len(build.nodes)}


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    """Runs inside the subprocess; returns the figures as a dict."""
    if case == "generate":
        result = run_generate(args.customers, args.terminals, args.days, args.data_home)
    elif case == "dbt-floor":
        result = run_dbt_floor(args.scratch)
    elif case in ("ours", "ours-no-tests"):
        result = run_ours(args.landing, args.scratch, with_tests=case == "ours")
    elif case == "spark":
        began = time.perf_counter()
        sys.path.insert(0, str(Path(__file__).parent))
        import spark_medallion

        imported = time.perf_counter() - began
        result = spark_medallion.run(args.landing, args.scratch)
        result["seconds"]["startup"] += imported
    else:
        raise ValueError(f"unknown case {case!r}")
    result["case"] = case
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def spawn(case: str, arguments: list[str]) -> dict[str, Any]:
    """One case in a fresh interpreter; its last stdout line is the JSON result."""
    command = [sys.executable, __file__, "--case", case, *arguments]
    env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    began = time.perf_counter()
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if output.returncode != 0:
        tail = "\n".join(output.stderr.strip().splitlines()[-25:])
        raise RuntimeError(f"case {case} failed (exit {output.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - began, 1)
    return result


def world_cases(
    customers: int, args: argparse.Namespace, world_home: Path, console: Any
) -> dict[str, Any]:
    """Generate (or reuse) one world, then run every case over its landing files."""
    data_home = world_home / f"world-{customers}"
    sizes = ["--terminals", str(args.terminals), "--days", str(args.days)]
    console.log(f"world of {customers:,} customers: generating (not timed) ...")
    world = spawn(
        "generate", ["--customers", str(customers), *sizes, "--data-home", str(data_home)]
    )
    console.log(f"  {world['transactions']:,} transactions, {world['landing_mb']:,} MB of landing")
    results: dict[str, Any] = {"world": world}
    cases = [c for c in CASES if not (c == "spark" and args.skip_spark)]
    if args.skip_no_tests:
        cases.remove("ours-no-tests")
    for case in cases:
        console.log(f"  running {case} ...")
        results[case] = spawn_in_scratch(case, args, ["--landing", str(data_home / "landing")])
        console.log(f"  {case}: {results[case]['process_seconds']:.1f} s")
    if "spark" in results:  # the floor matters beside the baseline only
        results["dbt-floor"] = spawn_in_scratch("dbt-floor", args, [])
    return results


def spawn_in_scratch(case: str, args: argparse.Namespace, arguments: list[str]) -> dict[str, Any]:
    """``spawn`` with a fresh scratch folder of its own, removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix=f"lakebed-bench-{case}-", dir=args.scratch_dir))
    try:
        return spawn(case, [*arguments, "--scratch", str(scratch)])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def stage_rows(results: dict[str, Any]) -> list[tuple[str, list[float | None]]]:
    """(stage, seconds per column) in the order ours, ours-no-tests, spark."""
    columns = [results.get(case, {}).get("seconds", {}) for case in CASES]

    def total(seconds: dict[str, float], with_startup: bool) -> float | None:
        if not seconds:
            return None
        return sum(v for k, v in seconds.items() if with_startup or k != "startup")

    rows: list[tuple[str, list[float | None]]] = []
    for stage in ("startup", "bronze", "silver", "gold"):
        rows.append((stage, [s.get(stage) for s in columns]))
    spark = columns[2]
    both = spark["silver"] + spark["gold"] if spark else None
    rows.append(
        ("silver + gold", [columns[0].get("silver+gold"), columns[1].get("silver+gold"), both])
    )
    rows.append(("publish (Iceberg)", [columns[0].get("publish"), columns[1].get("publish"), None]))
    rows.append(("stages (no startup)", [total(s, False) for s in columns]))
    rows.append(("end to end", [total(s, True) for s in columns]))
    rows.append(("process wall", [results.get(c, {}).get("process_seconds") for c in CASES]))
    return rows


def _show(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int | float) else str(value)


def print_world(console: Any, results: dict[str, Any]) -> None:
    from rich.table import Table

    world = results["world"]
    table = Table(
        title=f"Medallion build, {world['customers']:,} customers, "
        f"{world['transactions']:,} transactions ({world['landing_mb']:,} MB landing), 2 cores"
    )
    for column in ("stage", "ours (dbt build)", "ours (no dbt tests)", "PySpark local[2]",
                   "speedup vs build", "speedup vs no tests"):  # fmt: skip
        table.add_column(column, justify="right")

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:,.1f}"

    def ratio(spark: float | None, ours: float | None) -> str:
        return "—" if spark is None or not ours else f"{spark / ours:,.1f}x"

    for stage, (build, run, spark) in stage_rows(results):
        table.add_row(
            stage, cell(build), cell(run), cell(spark), ratio(spark, build), ratio(spark, run)
        )
    spark_rss = results.get("spark", {})
    jvm = spark_rss.get("jvm_peak_rss_mb")
    table.add_row(
        "peak RSS MB",
        *(f"{results[c]['peak_rss_mb']:,}" if c in results else "—" for c in CASES[:2]),
        f"{spark_rss['peak_rss_mb']:,} + JVM {jvm:,}" if spark_rss and jvm else "—",
        "",
        "",
    )
    console.print(table)

    figures = Table(title="Same work? Row counts and sums, ours (dbt build) vs PySpark")
    for column in ("figure", "ours", "PySpark", "same"):
        figures.add_column(column, justify="right")
    ours = results.get("ours", results.get("ours-no-tests", {})).get("figures", {})
    theirs = results.get("spark", {}).get("figures", {})
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, dict) or isinstance(b, dict):
            for rule in sorted(set(a or {}) | set(b or {})):
                x, y = (a or {}).get(rule), (b or {}).get(rule)
                figures.add_row(f"{key}: {rule}", _show(x), _show(y), "yes" if x == y else "NO")
            continue
        close = a == b or (
            isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1e-6 * max(1, abs(a))
        )
        figures.add_row(key, _show(a), _show(b), "yes" if close else "NO")
    if theirs:
        console.print(figures)
    if "ours" in results:
        dbt = results["ours"]["dbt"]
        console.print(
            f"dbt build: models {dbt['models']}, tests {dbt['tests']}; node seconds by layer "
            f"(summed over 2 threads, not wall time): {dbt['node_seconds']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--scale-transactions", type=int, default=20_000_000)
    parser.add_argument("--skip-scale", action="store_true", help="the default world only")
    parser.add_argument("--skip-spark", action="store_true", help="leave out the baseline")
    parser.add_argument("--skip-no-tests", action="store_true", help="leave out ours-no-tests")
    parser.add_argument("--world-home", type=Path, help="keep generated worlds here")
    parser.add_argument("--scratch-dir", type=Path, help="parent of the per-case scratch")
    parser.add_argument("--data-home", type=Path)  # inside a child
    parser.add_argument("--landing", type=Path)  # inside a child
    parser.add_argument("--scratch", type=Path)  # inside a child
    args = parser.parse_args()

    if args.case:  # inside the child
        print(json.dumps(run_case(args.case, args)))
        return

    from rich.console import Console

    console = Console(width=max(Console().width, 120))  # the tables need the room
    scale_customers = round(args.scale_transactions / HANDBOOK_TRANSACTIONS_PER_CUSTOMER)
    sizes = [args.customers, *([] if args.skip_scale else [scale_customers])]
    world_home = args.world_home or Path(tempfile.mkdtemp(prefix="lakebed-bench-worlds-"))
    everything = []
    try:
        for customers in sizes:
            results = world_cases(customers, args, world_home, console)
            if not args.world_home:  # a 20M world is ~6 GB: do not keep two
                shutil.rmtree(world_home / f"world-{customers}", ignore_errors=True)
            print_world(console, results)
            everything.append(results)
    finally:
        if not args.world_home:
            shutil.rmtree(world_home, ignore_errors=True)

    for results in everything:
        ours, spark = results.get("ours"), results.get("spark")
        if not ours:
            continue
        ours_total = sum(ours["seconds"].values())
        line = f"{results['world']['transactions']:,} transactions: ours {ours_total:,.1f} s"
        if spark:
            speedup = sum(spark["seconds"].values()) / ours_total
            line += f", {speedup:,.1f}x PySpark end to end (goal >= {GOAL_SPEEDUP}x)"
        console.print(line)
        if spark and "dbt-floor" in results:
            floor = results["dbt-floor"]["seconds"]["dbt build"]
            budget = sum(spark["seconds"].values()) / GOAL_SPEEDUP
            console.print(
                f"  dbt build over empty bronze: {floor:,.1f} s, against the {budget:,.1f} s "
                f"that {GOAL_SPEEDUP}x PySpark leaves for ingest, build and publish together"
            )
    if len(everything) > 1 and "ours" in everything[-1]:
        seconds = sum(everything[-1]["ours"]["seconds"].values())
        verdict = "met" if seconds < GOAL_SCALE_SECONDS else "not met"
        console.print(
            f"scale world built in {seconds:,.1f} s (goal < {GOAL_SCALE_SECONDS} s): {verdict}"
        )
    console.print_json(json.dumps(everything))


if __name__ == "__main__":
    main()
