"""The HTTP API through FastAPI's TestClient, over a real engine and catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lakebed.config import Settings
from lakebed.serve.api import create_app
from lakebed.serve.engine import DuckDBEngine
from lakebed.services import free_ports
from tests.serve import make_lake


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings, _ = make_lake(tmp_path_factory.mktemp("lake"))
    return settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """The app as ``lakebed serve`` runs it: it opens its own engine at startup."""
    with TestClient(create_app(settings)) as client:
        yield client


def error_of(response: Any, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == kind
    assert "Traceback" not in response.text
    message: str = body["message"]
    return message


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "profile": "local"}


def test_sql_returns_rows(client: TestClient) -> None:
    response = client.post(
        "/sql", json={"sql": "SELECT customer_id, signup_day FROM gold.dim_customer ORDER BY 1"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["customer_id", "signup_day"]
    assert body["types"] == ["BIGINT", "DATE"]
    assert body["rows"][:2] == [[1, "2024-01-02"], [2, "2024-01-03"]]
    assert (body["row_count"], body["truncated"]) == (5, False)
    assert body["elapsed_ms"] >= 0


def test_max_rows_truncates(client: TestClient) -> None:
    body = client.post("/sql", json={"sql": "FROM gold.dim_customer", "max_rows": 2}).json()
    assert (body["row_count"], body["truncated"]) == (2, True)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DROP TABLE gold.dim_customer", "not DROP"),
        ("SELECT 1; DROP TABLE gold.dim_customer", "2 statements"),
        ("SELECT 1;/* */DROP TABLE gold.dim_customer", "2 statements"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT * FROM '/etc/passwd'", "unknown table"),
        ("SELECT * FROM bronze.raw_customers", "bronze"),
        ("SELECT getenv('HOME')", "getenv"),
        ("", "no SQL statement"),
    ],
)
def test_refused_statements_are_400_with_the_reason(
    client: TestClient, sql: str, reason: str
) -> None:
    message = error_of(client.post("/sql", json={"sql": sql}), 400, "refused")
    assert reason in message
    assert client.post("/sql", json={"sql": "SELECT count(*) FROM gold.dim_customer"}).json()[
        "rows"
    ] == [[5]]


def test_query_failure_is_400_with_the_engine_message(client: TestClient) -> None:
    response = client.post("/sql", json={"sql": "SELECT nope FROM gold.dim_customer"})
    assert "nope" in error_of(response, 400, "query_failed")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "sql"),
        ({"query": "SELECT 1"}, "sql"),
        ({"sql": 42}, "sql"),
        ({"sql": "SELECT 1", "max_rows": 0}, "max_rows"),
        ({"sql": "SELECT 1", "max_rows": "many"}, "max_rows"),
        ({"sql": "SELECT 1", "max_rows": 10_001}, "max_rows"),
    ],
)
def test_invalid_body_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    message = error_of(client.post("/sql", json=body), 422, "invalid_request")
    assert message.startswith(field) or f"{field}:" in message


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/sql", content=b"{not json", headers={"content-type": "application/json"}
    )
    error_of(response, 422, "invalid_request")


def test_timeout_is_504(settings: Settings) -> None:
    limited = settings.model_copy(
        update={"serve": settings.serve.model_copy(update={"timeout_seconds": 0.2})}
    )
    with TestClient(create_app(limited)) as client:
        response = client.post(
            "/sql", json={"sql": "SELECT count(*) FROM range(100000000) a, range(100000) b"}
        )
    assert "cancelled" in error_of(response, 504, "timeout")


def test_tables_lists_silver_and_gold_with_columns(client: TestClient) -> None:
    body = client.get("/tables").json()
    assert body["message"] is None
    tables = {table["name"]: table for table in body["tables"]}
    assert sorted(tables) == ["gold.dim_customer", "silver.stg_customers"]
    assert tables["gold.dim_customer"]["columns"][0] == {"name": "customer_id", "type": "BIGINT"}


def test_empty_lake_says_to_run_the_pipeline(tmp_path: Path) -> None:
    client = TestClient(create_app(Settings(data_home=tmp_path)))  # no lifespan: opens lazily
    assert "run the pipeline" in client.get("/tables").json()["message"]
    response = client.post("/sql", json={"sql": "SELECT * FROM gold.fct_transactions"})
    assert "run the pipeline" in error_of(response, 503, "nothing_published")


def test_unusable_engine_is_503_with_the_reason(tmp_path: Path) -> None:
    # The cluster profile's Trino, at a port where nothing listens.
    url = f"http://127.0.0.1:{free_ports(18900, 1)}"
    settings = Settings(data_home=tmp_path, profile="cluster", serve={"trino_url": url})
    client = TestClient(create_app(settings))
    response = client.post("/sql", json={"sql": "SELECT 1"})
    assert f"Trino at {url} did not answer" in error_of(response, 503, "engine_unavailable")


def test_an_engine_passed_in_is_used_and_left_open(settings: Settings) -> None:
    with DuckDBEngine.from_settings(settings) as engine:
        with TestClient(create_app(settings, engine)) as client:
            assert client.post("/sql", json={"sql": "SELECT 1 AS one"}).json()["rows"] == [[1]]
        assert engine.query("SELECT 2").rows == [[2]]
