"""Benchmark: the fraud models against the handbook's published results, and /score latency.

Why: the fraud model claims the handbook's protocol; its published table (ch. 3.4 and
ch. 5) is the baseline, so ours is measured on a world with the handbook's parameters and
the same dates (train 2018-07-25..31, delay to 08-07, test 08-08..14), in two variants:

* ``point in time`` (what ``lakebed train`` does): terminal risk counts only frauds whose
  chargeback was reported before the transaction, as a live scorer would know them;
* ``handbook features``: terminal risk from every fraud in the window, reported or not, as
  the handbook computes it (its labels are known at once). Same SQL minus the reported-at
  condition, same models; it shows what the point-in-time rule costs, and that the
  pipeline reproduces the handbook when given the handbook's features.

Then the champion's scoring latency: ``Scorer.score`` on one transaction in-process
(features from the history + prediction + reasons), a batch of 1,000 in-process, and
``POST /score`` over HTTP to a real uvicorn server on loopback, one request at a time.

Run ``python benchmarks/bench_fraud.py`` (about 3 minutes on 2 cores; the lakehouse of
the default world is built first unless ``--data-home`` already has it).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lakebed.config import Settings
from lakebed.fraud.dataset import read_gold_features, split
from lakebed.fraud.features import FEATURE_NAMES, WINDOW_FEATURES, features_of, render_model
from lakebed.fraud.metrics import auc_roc, average_precision, card_precision_at_k
from lakebed.fraud.models import MODEL_SPECS, FraudModel
from lakebed.fraud.train import HANDBOOK_RESULTS, HANDBOOK_WINDOW, train
from lakebed.lake.catalog import open_catalog

HANDBOOK_ROWS = {
    "logistic_regression": "logistic regression",
    "random_forest": "random forest",
    "xgboost": "XGBoost",
}
POINT_IN_TIME = "and frauds.fraud_reported_at < scored.event_time"
# The handbook's features: ours without the recent terminal windows (those that end at the
# transaction, which only the reported-before rule keeps honest).
RECENT = {f.name for f in WINDOW_FEATURES if f.tag}
HANDBOOK_FEATURES = tuple(name for name in FEATURE_NAMES if name not in RECENT)


def build_lakehouse(settings: Settings) -> None:
    from lakebed.lake.pipeline import build_stage, ingest_stage, publish_stage
    from lakebed.world.generate import generate_world

    catalog = open_catalog(settings)
    if catalog.table_exists("gold.fct_transactions"):
        print(f"reusing the lakehouse in {settings.data_home}")
        return
    started = time.perf_counter()
    generate_world(settings.world, settings.data_home)
    ingest_stage(settings, catalog)
    build_stage(settings, catalog)
    publish_stage(settings, catalog)
    print(f"built the default world's lakehouse in {time.perf_counter() - started:.0f} s")


def handbook_terminal_features(settings: Settings, start: date, end: date) -> pl.DataFrame:
    """Terminal windows the handbook's way: every fraud counts, reported or not."""
    import duckdb

    table = open_catalog(settings).load_table("gold.fct_transactions")
    fact = table.scan(
        row_filter=f"event_date >= '2018-06-01' and event_date < '{end}'",
        selected_fields=("transaction_id", "terminal_id", "event_time", "is_fraud",
                         "fraud_reported_at", "customer_id", "amount"),
    ).to_arrow()  # fmt: skip
    sql = render_model("terminal", source="fact")
    assert POINT_IN_TIME in sql
    connection = duckdb.connect()
    connection.register("fact", fact)
    frame = pl.from_arrow(connection.sql(sql.replace(POINT_IN_TIME, "")).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    names = [f.name for f in features_of("terminal") if not f.tag]
    return frame.select("transaction_id", *names)


def evaluate(frame: pl.DataFrame, names: tuple[str, ...] = FEATURE_NAMES) -> list[dict[str, Any]]:
    train_set, test_set = split(frame, HANDBOOK_WINDOW)
    x = train_set.select(names).to_numpy().astype(np.float64)
    y = train_set["is_fraud"].to_numpy().astype(np.int8)
    x_test = test_set.select(names).to_numpy().astype(np.float64)
    y_test = test_set["is_fraud"].to_numpy().astype(np.int8)
    rows = []
    for spec in MODEL_SPECS:
        started = time.perf_counter()
        model = FraudModel.fit(spec, x, y)
        seconds = time.perf_counter() - started
        scores = model.score(x_test)
        cp, _ = card_precision_at_k(test_set["event_date"], test_set["card_id"], y_test, scores)
        rows.append(
            {
                "model": spec.name,
                "auc": auc_roc(y_test, scores),
                "ap": average_precision(y_test, scores),
                "cp100": cp,
                "fit_s": seconds,
            }
        )
    return rows


def print_models(variant: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{variant}")
    print(f"{'model':<24} {'AUC':>6} {'AP':>6} {'CP@100':>7} {'fit s':>6}   handbook")
    for row in rows:
        published = HANDBOOK_RESULTS.get(HANDBOOK_ROWS.get(row["model"], ""))
        theirs = " / ".join(f"{v:.3f}" for v in published) if published else "-"
        print(
            f"{row['model']:<24} {row['auc']:>6.3f} {row['ap']:>6.3f} {row['cp100']:>7.3f} "
            f"{row['fit_s']:>6.1f}   {theirs}"
        )
    best = HANDBOOK_RESULTS["XGBoost, model selection"]
    print(f"{'handbook best (ch. 5)':<24} {best[0]:>6.3f} {best[1]:>6.3f} {best[2]:>7.3f}")


def percentiles(samples: list[float]) -> str:
    values = np.array(samples) * 1000
    return (
        f"p50 {np.percentile(values, 50):.2f} ms · p99 {np.percentile(values, 99):.2f} ms · "
        f"mean {statistics.fmean(values):.2f} ms (n={len(values)})"
    )


def raw_events(home: Path, day: str, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted((home / "landing" / "transactions").glob(f"*{day}*")):
        for line in path.read_bytes().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("amount"), dict):
                events.append(event)
    return events[:count]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bench_scoring(settings: Settings, requests: int, skip_http: bool) -> None:
    import httpx

    from lakebed.fraud.registry import Registry
    from lakebed.fraud.scoring import RawTransaction, Scorer

    report = train(settings, models=["xgboost"])
    assert report.results[0].version is not None
    Registry(settings).promote(report.results[0].version)
    started = time.perf_counter()
    scorer = Scorer.load(settings)
    print(f"\nscorer loaded in {time.perf_counter() - started:.1f} s "
          f"({len(scorer.history):,} transactions of history)")  # fmt: skip
    events = raw_events(settings.data_home, "2018-08-1", requests)
    transactions = [RawTransaction.model_validate(e) for e in events]
    for transaction in transactions[:50]:  # warm-up
        scorer.score([transaction])
    one = []
    for transaction in transactions:
        started = time.perf_counter()
        scorer.score([transaction])
        one.append(time.perf_counter() - started)
    print(f"in-process, one transaction:   {percentiles(one)}")
    started = time.perf_counter()
    scorer.score(transactions[:1000])
    batch = time.perf_counter() - started
    print(f"in-process, batch of 1,000:    {batch * 1000:.0f} ms ({1000 / batch:,.0f} tx/s)")
    if skip_http:
        return
    port = free_port()
    environment = {**os.environ, "LAKEBED_DATA_HOME": str(settings.data_home),
                   "LAKEBED_SERVE__PORT": str(port)}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "lakebed.cli", "serve"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the API did not start in 120 s")
                time.sleep(0.2)
            for event in events[:50]:
                client.post("/score", json=event).raise_for_status()
            over_http = []
            for event in events:
                started = time.perf_counter()
                client.post("/score", json=event).raise_for_status()
                over_http.append(time.perf_counter() - started)
        print(f"HTTP POST /score, sequential:  {percentiles(over_http)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", type=Path, help="reuse/keep the lakehouse here")
    parser.add_argument("--requests", type=int, default=2000, help="scoring requests timed")
    parser.add_argument("--skip-http", action="store_true", help="in-process scoring only")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakebed-bench-fraud-") as scratch:
        settings = Settings(data_home=arguments.data_home or Path(scratch))
        build_lakehouse(settings)
        window = HANDBOOK_WINDOW
        gold = read_gold_features(open_catalog(settings), window.train_start, window.test_end)
        print(f"protocol: {window.describe()}")
        print_models("point in time (lakebed train)", evaluate(gold.frame))
        print_models(
            "point in time, the handbook's features only (no recent terminal windows)",
            evaluate(gold.frame, HANDBOOK_FEATURES),
        )
        handbook = handbook_terminal_features(settings, window.train_start, window.test_end)
        leaky = gold.frame.drop(handbook.columns[1:]).join(
            handbook, on="transaction_id", maintain_order="left"
        )
        print_models("handbook features (labels known at once)", evaluate(leaky, HANDBOOK_FEATURES))
        bench_scoring(settings, arguments.requests, arguments.skip_http)


if __name__ == "__main__":
    main()
