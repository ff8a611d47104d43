"""Benchmark: the payments world simulator against the handbook's own way of writing it.

Each case runs in a fresh subprocess pinned to one CPU core (``sched_setaffinity``, and
Polars limited to one thread), so that peak memory and time are the case's own. Cases:

* ``truth``: our simulator, ground-truth transactions with fraud labels, in memory;
* ``world``: our full ``generate_world`` (truth as Parquet, the JSON-lines raw feed with
  dirty rows, chargebacks, reference exports) written to disk;
* ``handbook``: ``handbook_reference.py``, the handbook's pandas code (loop per customer
  and per transaction) on the same world size.

Run ``python benchmarks/bench_world.py`` (about 5 minutes and ~6 GB of scratch disk on 2
cores); ``--skip-handbook`` leaves out the 2.5-minute reference run.
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


def run_case(case: str, customers: int, terminals: int, days: int, scratch: Path) -> dict[str, Any]:
    """Runs inside the pinned subprocess; returns the figures as a dict."""
    began = time.perf_counter()
    if case == "truth":
        import polars as pl

        from lakebed.world.spec import WorldSpec
        from lakebed.world.transactions import TransactionSimulator

        spec = WorldSpec(n_customers=customers, n_terminals=terminals, n_days=days)
        simulator = TransactionSimulator(spec)
        transactions = frauds = 0
        for frame in simulator.days(0, days):
            transactions += len(frame)
            frauds += int(frame["is_fraud"].sum())
        del pl
    elif case == "world":
        from lakebed.world.generate import generate_world
        from lakebed.world.spec import WorldSpec

        spec = WorldSpec(n_customers=customers, n_terminals=terminals, n_days=days)
        summary = generate_world(spec, scratch, chunk_days=8).summary
        transactions, frauds = summary.transactions, summary.frauds
    elif case == "handbook":
        sys.path.insert(0, str(Path(__file__).parent))
        from handbook_reference import generate_world as handbook_world

        world = handbook_world(customers, terminals, days)
        transactions = len(world.transactions)
        frauds = int(world.transactions["TX_FRAUD"].sum())
    else:
        raise ValueError(f"unknown case {case!r}")
    seconds = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "case": case,
        "customers": customers,
        "terminals": terminals,
        "days": days,
        "transactions": transactions,
        "frauds": frauds,
        "seconds": round(seconds, 2),
        "tx_per_second": round(transactions / seconds),
        "peak_rss_mb": round(peak_kib / 1024),
    }


def spawn(case: str, customers: int, terminals: int, days: int) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="lakebed-bench-"))
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, __file__, "--case", case, "--customers", str(customers),
        "--terminals", str(terminals), "--days", str(days), "--scratch", str(scratch),
    ]  # fmt: skip
    try:
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--scratch", type=Path)
    parser.add_argument("--scale-transactions", type=int, default=20_000_000)
    parser.add_argument("--skip-handbook", action="store_true")
    args = parser.parse_args()

    if args.case:  # inside the pinned child
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(
            json.dumps(run_case(args.case, args.customers, args.terminals, args.days, args.scratch))
        )
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    scale_customers = round(args.scale_transactions / HANDBOOK_TRANSACTIONS_PER_CUSTOMER)
    plan = [
        ("truth", 5000, 10000, 183),
        ("world", 5000, 10000, 183),
        *([] if args.skip_handbook else [("handbook", 5000, 10000, 183)]),
        ("truth", scale_customers, 10000, 183),
        ("world", scale_customers, 10000, 183),
        # Four times the days, same customers: peak memory must stay flat (streamed chunks).
        ("world", 5000, 10000, 732),
    ]
    results = []
    for case in plan:
        console.log(f"running {case[0]} with {case[1]:,} customers ...")
        results.append(spawn(*case))

    table = Table(title="World generation, one core each")
    for column in ("case", "customers", "days", "transactions", "seconds", "tx/s", "peak RSS MB"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r["case"],
            f"{r['customers']:,}",
            f"{r['days']:,}",
            f"{r['transactions']:,}",
            f"{r['seconds']:.1f}",
            f"{r['tx_per_second']:,}",
            f"{r['peak_rss_mb']:,}",
        )
    console.print(table)
    by_case = {(r["case"], r["customers"]): r for r in results if r["days"] == 183}
    if ("handbook", 5000) in by_case:
        handbook = by_case["handbook", 5000]["tx_per_second"]
        for ours in ("truth", "world"):
            speedup = by_case[ours, 5000]["tx_per_second"] / handbook
            console.print(f"{ours} vs handbook, default world: {speedup:,.0f}x faster")
    console.print_json(json.dumps(results))


if __name__ == "__main__":
    main()
