"""SQL serving on the cluster profile against real servers: pyiceberg writes to the
PostgreSQL catalog and the S3 warehouse, Trino reads the same tables, and ``lakebed sql``
and ``POST /sql`` answer through it.

PostgreSQL, SeaweedFS and Trino run for the whole module (Trino takes ~15 s to start; the
first run on a machine also downloads it, ~820 MB). The restart test comes last: it stops
Trino and brings it back on the same home.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from trino.exceptions import TrinoUserError
from typer.testing import CliRunner

from lakebed.cli import app
from lakebed.config import Settings
from lakebed.lake.catalog import open_catalog
from lakebed.serve.api import create_app
from lakebed.serve.engine import (
    EngineUnreachable,
    QueryFailed,
    QueryTimeout,
    TrinoEngine,
    open_engine,
)
from lakebed.serve.guard import QueryRefused
from lakebed.services import PostgresServer, SeaweedfsServer, TrinoServer, deploy_dir
from tests.cluster import cluster_settings

# The module's Trino fixture (`x as x`: imported for pytest to find, not to call).
from tests.cluster import trino as trino

CARDS = pa.table(
    {
        "card_id": pa.array([1, 2, 3], pa.int64()),
        "holder": pa.array(["Ada", "Grace", None], pa.string()),
        "limit_eur": pa.array([1500.0, 2500.5, None], pa.float64()),
        "issued_on": pa.array([date(2024, 1, 2), date(2025, 6, 30), None], pa.date32()),
    }
)
EXPECTED = [
    [1, "Ada", 1500.0, "2024-01-02"],
    [2, "Grace", 2500.5, "2025-06-30"],
    [3, None, None, None],
]


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer, seaweedfs: SeaweedfsServer
) -> None:
    """gold.cards and bronze.raw_cards, written by pyiceberg as the pipeline writes them."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = cluster_settings(
            monkeypatch, tmp_path_factory.mktemp("writer"), postgres, seaweedfs
        )
        catalog = open_catalog(settings)
    for name in ("gold.cards", "bronze.raw_cards"):
        table = catalog.create_table(name, CARDS.schema)
        table.append(CARDS)


@pytest.fixture
def settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    postgres: PostgresServer,
    seaweedfs: SeaweedfsServer,
    trino: TrinoServer,
    published: None,
) -> Settings:
    monkeypatch.setenv("LAKEBED_SERVE__TRINO_URL", trino.url)
    return cluster_settings(monkeypatch, tmp_path, postgres, seaweedfs)


@pytest.fixture
def engine(settings: Settings) -> Iterator[TrinoEngine]:
    opened = open_engine(settings)
    assert isinstance(opened, TrinoEngine)
    with opened:
        yield opened


def rows_as_reader(engine: TrinoEngine, sql: str) -> list[Any]:
    """Straight to Trino as the serving user: no guard in between."""
    cursor = engine.connect().cursor()
    cursor.execute(sql)
    rows: list[Any] = cursor.fetchall()
    return rows


def test_deploy_dir_holds_the_script() -> None:
    assert (deploy_dir() / "trino" / "trino.sh").is_file()


def test_an_empty_dir_is_unhealthy_and_down_is_harmless(tmp_path: Path) -> None:
    server = TrinoServer(tmp_path / "trino")
    assert not server.healthy()
    server.down()


def test_trino_reads_what_pyiceberg_wrote(engine: TrinoEngine) -> None:
    result = engine.query("SELECT * FROM gold.cards ORDER BY card_id")
    assert result.columns == ["card_id", "holder", "limit_eur", "issued_on"]
    assert result.types == ["BIGINT", "VARCHAR", "DOUBLE", "DATE"]
    assert result.rows == EXPECTED
    assert not result.truncated


def test_only_silver_and_gold_are_listed(engine: TrinoEngine) -> None:
    tables = {table.qualified_name: table for table in engine.tables()}
    assert "gold.cards" in tables
    assert not any(name.startswith("bronze.") for name in tables)
    assert [column.name for column in tables["gold.cards"].columns] == CARDS.column_names


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO gold.cards VALUES (4, 'Alan', 10.0, DATE '2020-01-01')",
        "CREATE TABLE gold.stolen AS SELECT * FROM gold.cards",
        "DROP TABLE gold.cards",
        "DELETE FROM gold.cards",
    ],
)
def test_trino_itself_refuses_the_reader_any_write(engine: TrinoEngine, statement: str) -> None:
    with pytest.raises(TrinoUserError, match="Access Denied") as refused:
        rows_as_reader(engine, statement)
    assert refused.value.error_name == "PERMISSION_DENIED"
    assert rows_as_reader(engine, "SELECT count(*) FROM gold.cards") == [[3]]


def test_trino_hides_bronze_and_other_catalogs_from_the_reader(engine: TrinoEngine) -> None:
    assert sorted(row[0] for row in rows_as_reader(engine, "SHOW SCHEMAS")) == ["gold", "silver"]
    with pytest.raises(TrinoUserError, match="Access Denied"):
        rows_as_reader(engine, "SELECT * FROM system.runtime.nodes")


def test_the_guard_refuses_before_trino_sees_the_query(engine: TrinoEngine) -> None:
    with pytest.raises(QueryRefused, match="only SELECT"):
        engine.query("DROP TABLE gold.cards")
    with pytest.raises(QueryRefused, match="bronze"):
        engine.query("SELECT * FROM bronze.raw_cards")
    assert engine.query("SELECT count(*) FROM gold.cards").rows == [[3]]


@pytest.mark.parametrize(("max_rows", "returned", "truncated"), [(2, 2, True), (3, 3, False)])
def test_max_rows_truncates_and_says_so(
    engine: TrinoEngine, max_rows: int, returned: int, truncated: bool
) -> None:
    result = engine.query("SELECT * FROM gold.cards ORDER BY card_id", max_rows=max_rows)
    assert (result.row_count, result.truncated) == (returned, truncated)
    assert result.rows == EXPECTED[:returned]


def test_trino_errors_carry_trinos_message(engine: TrinoEngine) -> None:
    with pytest.raises(QueryFailed, match="'no_such_column' cannot be resolved") as failed:
        engine.query("SELECT no_such_column FROM gold.cards")
    assert "\n" not in str(failed.value)


def test_duckdb_sql_is_written_as_trino_sql(engine: TrinoEngine) -> None:
    # range() and ILIKE are DuckDB's; the guard's dialect is the same on both profiles.
    result = engine.query("SELECT count(*) AS n FROM gold.cards, range(10) WHERE holder ILIKE 'a%'")
    assert result.rows == [[10]]


def test_a_query_past_the_time_limit_is_cancelled(settings: Settings) -> None:
    engine = TrinoEngine(settings.serve.trino_url, timeout_seconds=1)
    with pytest.raises(QueryTimeout, match="longer than 1 s"):
        engine.query("SELECT count(*) FROM range(10000) a, range(10000) b, range(10000) c")


def test_post_sql_and_lakebed_sql_answer_through_trino(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    response = client.post("/sql", json={"sql": "SELECT * FROM gold.cards ORDER BY card_id"})
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == EXPECTED
    assert "gold.cards" in {table["name"] for table in client.get("/tables").json()["tables"]}
    refused = client.post("/sql", json={"sql": "DELETE FROM gold.cards"})
    assert (refused.status_code, refused.json()["error"]) == (400, "refused")

    result = CliRunner().invoke(
        app, ["sql", "SELECT holder FROM gold.cards WHERE card_id = 2", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == "holder\nGrace\n"


def test_a_restarted_trino_answers_the_next_query(
    settings: Settings, engine: TrinoEngine, trino: TrinoServer
) -> None:
    assert engine.query("SELECT count(*) FROM gold.cards").rows == [[3]]
    trino.down()
    assert not trino.healthy()
    with pytest.raises(EngineUnreachable, match="did not answer"):
        engine.query("SELECT count(*) FROM gold.cards")
    response = TestClient(create_app(settings)).post("/sql", json={"sql": "SELECT 1"})
    assert (response.status_code, response.json()["error"]) == (503, "engine_unavailable")
    trino.up()
    assert trino.healthy()
    assert engine.query("SELECT * FROM gold.cards ORDER BY card_id").rows == EXPECTED
