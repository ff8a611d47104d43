"""The status views the dashboard reads, over an empty data home and over a real
lakehouse, model registry and stream activity."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from lakebed.config import Settings
from lakebed.fraud.features import FEATURE_NAMES
from lakebed.lake.pipeline import layer_rows, quarantine_by_rule
from lakebed.lake.runs import DbtTest, RunRecord, read_runs, record_run, runs_file
from lakebed.serve.api import create_app
from lakebed.stream.activity import Activity
from lakebed.stream.latency import Latencies
from tests.conftest import Lakehouse, Trained


def test_an_empty_data_home_says_what_to_run(tmp_path: Path) -> None:
    client = TestClient(create_app(Settings(data_home=tmp_path)))
    lake = client.get("/lakehouse/status").json()
    assert lake["last_run"] is None
    assert "lakebed run" in lake["message"]
    models = client.get("/models").json()
    assert models["versions"] == []
    assert "lakebed train" in models["message"]
    assert len(models["handbook"]) == 4
    missing = client.get("/models/1/evaluation")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert "lakebed stream" in client.get("/stream/alerts").json()["message"]
    activity = client.get("/stream/activity").json()
    assert activity["transactions"] == 0
    assert "lakebed stream" in activity["message"]


def test_lakehouse_status_matches_the_catalog(lakehouse: Lakehouse) -> None:
    client = TestClient(create_app(lakehouse.settings))
    status = client.get("/lakehouse/status").json()
    assert status["message"] is None
    rows = {layer["table"]: layer["rows"] for layer in status["layers"]}
    assert rows == layer_rows(lakehouse.catalog)
    daily = pl.DataFrame(status["daily"])
    per_layer = dict(daily.group_by("layer").agg(pl.col("rows").sum()).iter_rows())
    assert per_layer["silver"] == rows["silver.transactions"]
    assert per_layer["gold"] == rows["gold.fct_transactions"]
    assert per_layer["bronze"] == rows["bronze.transactions"]
    quarantined = {(q["feed"], q["rule"]): q["rows"] for q in status["quarantine"]}
    assert quarantined == quarantine_by_rule(lakehouse.catalog)
    raw = pl.scan_iceberg(lakehouse.catalog.load_table("silver.quarantine")).collect()
    for rule in status["quarantine"]:
        lines = raw.filter(
            (pl.col("feed") == rule["feed"]) & (pl.col("failed_rule") == rule["rule"])
        )["raw_line"].to_list()
        assert 1 <= len(rule["samples"]) <= 3
        assert set(rule["samples"]) <= set(lines)


def test_the_last_run_and_the_last_build_are_shown(tmp_path: Path) -> None:
    settings = Settings(data_home=tmp_path)
    built = RunRecord(
        "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", 3, 0, 100, 2, None,
        {"success": 5}, [DbtTest("unique_x", "pass", ""), DbtTest("not_null_y", "fail", "1")],
        {"gold.x": "replaced"},
    )  # fmt: skip
    skipped = RunRecord(
        "2026-01-02T00:00:00+00:00", "2026-01-02T00:00:05+00:00", 0, 3, 0, 0, "nothing new"
    )
    record_run(settings, built)
    record_run(settings, skipped)
    with runs_file(settings).open("a") as log:
        log.write('{"torn": \n')  # a run killed mid-write costs only its own line
    assert read_runs(settings) == [built, skipped]
    status = TestClient(create_app(settings)).get("/lakehouse/status").json()
    assert status["last_run"]["skipped"] == "nothing new"
    assert status["last_build"]["finished_at"] == built.finished_at
    assert [t["status"] for t in status["last_build"]["tests"]] == ["pass", "fail"]


def test_the_flow_records_its_run(trained: Trained) -> None:
    # The session's default lake records its run the way the flow does.
    [run] = read_runs(trained.settings)[:1]
    assert run.built
    assert run.files_ingested > 0
    assert run.tests
    assert all(test.status == "pass" for test in run.tests)


def test_models_and_their_curves(trained: Trained) -> None:
    client = TestClient(create_app(trained.settings))
    models = client.get("/models").json()
    assert models["champion"] == trained.champion
    # Every trained version is listed (other tests of the session may register more).
    listed = {v["version"] for v in models["versions"]}
    assert {r.version for r in trained.report.results} <= listed
    for result in trained.report.results:
        evaluation = client.get(f"/models/{result.version}/evaluation").json()
        roc, pr = evaluation["roc"], evaluation["precision_recall"]
        assert len(roc["x"]) <= 302
        # The stored curves are the model's: their areas are its AUC and (about) its AP.
        assert abs(_trapezoid(roc["x"], roc["y"]) - result.auc_roc) < 0.01
        assert abs(_steps(pr["x"], pr["y"]) - result.average_precision) < 0.05
        importance = list(evaluation["importance"].values())
        assert set(evaluation["importance"]) == set(FEATURE_NAMES)
        assert importance == sorted(importance, reverse=True)
        assert importance[0] > 0


def _trapezoid(x: list[float], y: list[float]) -> float:
    return sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2 for i in range(len(x) - 1))


def _steps(recall: list[float], precision: list[float]) -> float:
    return sum((recall[i + 1] - recall[i]) * precision[i + 1] for i in range(len(recall) - 1))


def test_stream_views_merge_batches_exactly(tmp_path: Path) -> None:
    settings = Settings(data_home=tmp_path)
    activity = Activity.open(settings)
    now = 1_800_000_000.0
    batches = [[1.0, 2.0, 3.0], [10.0, 20.0], [500.0]]
    alert = b'{"transaction_id": "tx_1", "probability": 0.9, "reasons": []}'
    for offset, latencies in enumerate(batches):
        activity.record("w", len(latencies), [alert], 0, latencies, at=now - 30 + offset * 10)
    activity.record("w", 1, [], 1, [7.0], at=now - 3600)  # outside a 5-minute window
    window = activity.window(300, bucket_seconds=10, until=now)
    everything = Latencies()
    everything.add([v for batch in batches for v in batch])
    assert window.transactions == 6
    assert window.dead_letters == 0
    assert len(window.buckets) == 3
    assert window.latencies.percentile(50) == everything.percentile(50)
    assert window.latencies.percentile(99) == everything.percentile(99)
    # One alert per transaction id, however often it was published.
    assert [a["transaction_id"] for a in activity.alerts()] == ["tx_1"]
    newest = activity.alerts()[0]["id"]
    assert activity.alerts(after=newest) == []
    activity.close()


@pytest.mark.parametrize("minutes", [0, -1, 100_000])
def test_bad_windows_are_a_422(tmp_path: Path, minutes: int) -> None:
    client = TestClient(create_app(Settings(data_home=tmp_path)))
    response = client.get("/stream/activity", params={"minutes": minutes})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_the_api_reads_what_the_engine_recorded(tmp_path: Path) -> None:
    settings = Settings(data_home=tmp_path)
    writer = Activity.open(settings)
    alert = b'{"transaction_id": "tx_9", "probability": 0.97, "decision": "block", "reasons": []}'
    writer.record("worker-0", 3, [alert], 1, [4.0, 5.0, 6.0])
    client = TestClient(create_app(settings))
    activity = client.get("/stream/activity", params={"minutes": 5}).json()
    assert (activity["transactions"], activity["alerts"], activity["dead_letters"]) == (3, 1, 1)
    assert activity["message"] is None
    assert sum(activity["histogram"]["counts"]) == 3
    assert len(activity["histogram"]["edges_ms"]) == len(activity["histogram"]["counts"]) + 1
    [shown] = client.get("/stream/alerts").json()["alerts"]
    assert (shown["transaction_id"], shown["decision"]) == ("tx_9", "block")
    # Reading took no lock: the engine keeps writing while the API reads.
    writer.record("worker-0", 1, [], 0, [1.0])
    writer.close()
    assert client.get("/stream/activity").json()["transactions"] == 4
