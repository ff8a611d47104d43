"""DuckDBEngine over a real pyiceberg SQLite catalog: results, limits, lockdown, refresh."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import duckdb
import pytest
from pyiceberg.catalog import Catalog

from lakebed.config import Settings
from lakebed.serve.engine import (
    DuckDBEngine,
    EngineUnreachable,
    NothingPublished,
    QueryFailed,
    QueryTimeout,
    TrinoEngine,
    open_engine,
    to_csv,
    to_json,
)
from lakebed.serve.guard import QueryRefused
from tests.serve import customers, make_lake, publish

SLOW = "SELECT count(*) FROM range(100000000) a, range(100000) b"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Catalog]:
    """Shared by the tests that only read; the others publish into ``own_lake``."""
    return make_lake(tmp_path_factory.mktemp("lake"))


@pytest.fixture(scope="module")
def engine(lake: tuple[Settings, Catalog]) -> Iterator[DuckDBEngine]:
    with DuckDBEngine(lake[1], max_rows=100, timeout_seconds=10) as engine:
        yield engine


@pytest.fixture
def own_lake(tmp_path: Path) -> tuple[Settings, Catalog]:
    return make_lake(tmp_path)


def test_query_returns_rows_with_json_friendly_values(engine: DuckDBEngine) -> None:
    result = engine.query("SELECT * FROM gold.dim_customer ORDER BY customer_id")
    assert result.columns == ["customer_id", "name", "signup_day", "last_seen", "balance"]
    assert result.types == ["BIGINT", "VARCHAR", "DATE", "TIMESTAMP", "DECIMAL(12,2)"]
    assert result.rows[0] == [1, "customer 1", "2024-01-02", "2024-02-01T01:30:00", 0.25]
    assert result.row_count == 5
    assert not result.truncated
    assert result.elapsed_seconds >= 0


def test_silver_tables_are_served_and_bronze_is_not(engine: DuckDBEngine) -> None:
    assert engine.query("SELECT count(*) FROM silver.stg_customers").rows == [[0]]
    with pytest.raises(QueryRefused, match="bronze"):
        engine.query("SELECT * FROM bronze.raw_customers")


@pytest.mark.parametrize(("max_rows", "returned", "truncated"), [(2, 2, True), (5, 5, False)])
def test_max_rows_truncates_and_says_so(
    engine: DuckDBEngine, max_rows: int, returned: int, truncated: bool
) -> None:
    result = engine.query("SELECT * FROM gold.dim_customer", max_rows=max_rows)
    assert (result.row_count, result.truncated) == (returned, truncated)


def test_engine_default_max_rows_applies(lake: tuple[Settings, Catalog]) -> None:
    with DuckDBEngine(lake[1], max_rows=3) as engine:
        result = engine.query("SELECT * FROM range(10)")
    assert (result.row_count, result.truncated) == (3, True)


def test_slow_query_is_interrupted(lake: tuple[Settings, Catalog]) -> None:
    with DuckDBEngine(lake[1], timeout_seconds=0.2) as engine:
        started = time.perf_counter()
        with pytest.raises(QueryTimeout, match=r"longer than 0\.2 s"):
            engine.query(SLOW)
        assert time.perf_counter() - started < 10
        assert engine.query("SELECT count(*) FROM gold.dim_customer").rows == [[5]]


def test_engine_errors_become_query_failed(engine: DuckDBEngine) -> None:
    with pytest.raises(QueryFailed, match="nope") as failed:
        engine.query("SELECT nope FROM gold.dim_customer")
    assert "Traceback" not in str(failed.value)


def test_guard_runs_inside_query(engine: DuckDBEngine) -> None:
    with pytest.raises(QueryRefused, match="DROP"):
        engine.query("DROP TABLE gold.dim_customer")
    with pytest.raises(QueryRefused, match="statements"):
        engine.query("SELECT 1; DROP TABLE gold.dim_customer")
    assert engine.query("SELECT count(*) FROM gold.dim_customer").rows == [[5]]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM glob('/etc/*')",
        "COPY gold.dim_customer TO '{tmp}/leak.csv'",
        "ATTACH '{tmp}/other.db' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SET autoload_known_extensions = true",
    ],
)
def test_duckdb_itself_refuses_when_the_guard_is_bypassed(
    engine: DuckDBEngine, tmp_path: Path, sql: str
) -> None:
    """Defence in depth: the locked connection refuses files and settings on its own."""
    with pytest.raises(duckdb.Error):
        engine.connection.execute(sql.format(tmp=tmp_path)).fetchall()
    assert not (tmp_path / "leak.csv").exists()
    assert not (tmp_path / "other.db").exists()


def test_refresh_picks_up_a_new_snapshot(own_lake: tuple[Settings, Catalog]) -> None:
    catalog = own_lake[1]
    with DuckDBEngine(catalog, refresh_interval=3600) as engine:
        before = {t.qualified_name: t.snapshot_id for t in engine.tables()}
        publish(catalog, "gold.dim_customer", customers(6, 2))
        # Not yet checked: the interval has not passed.
        assert engine.query("SELECT count(*) FROM gold.dim_customer").rows == [[5]]
        assert engine.refresh()
        assert not engine.refresh()
        assert engine.query("SELECT count(*) FROM gold.dim_customer").rows == [[7]]
        after = {t.qualified_name: t.snapshot_id for t in engine.tables()}
    assert after["gold.dim_customer"] != before["gold.dim_customer"]
    assert after["silver.stg_customers"] is None  # created, never written


def test_a_failed_refresh_keeps_serving_the_loaded_tables(
    own_lake: tuple[Settings, Catalog],
) -> None:
    with DuckDBEngine(own_lake[1], refresh_interval=0) as engine:
        table = publish(own_lake[1], "gold.dim_customer", customers(6, 2))
        for task in table.scan().plan_files():  # its data files vanish
            Path(task.file.file_path.removeprefix("file://")).unlink()
        with pytest.raises(FileNotFoundError):
            engine.refresh()
        # The query's own refresh fails the same way, logs it and answers from the copy.
        assert engine.query("SELECT count(*) FROM gold.dim_customer").rows == [[5]]


def test_queries_see_new_and_dropped_tables(own_lake: tuple[Settings, Catalog]) -> None:
    catalog = own_lake[1]
    with DuckDBEngine(catalog, refresh_interval=0) as engine:
        publish(catalog, "gold.fct_signups", customers(1, 3))
        assert engine.query("SELECT count(*) FROM gold.fct_signups").rows == [[3]]
        catalog.drop_table("gold.fct_signups")
        with pytest.raises(QueryRefused, match=r"unknown table gold\.fct_signups"):
            engine.query("SELECT count(*) FROM gold.fct_signups")


def test_tables_lists_columns_with_engine_types(engine: DuckDBEngine) -> None:
    tables = {table.qualified_name: table for table in engine.tables()}
    assert sorted(tables) == ["gold.dim_customer", "silver.stg_customers"]
    columns = tables["gold.dim_customer"].columns
    assert [(c.name, c.type) for c in columns][:2] == [
        ("customer_id", "BIGINT"),
        ("name", "VARCHAR"),
    ]
    assert isinstance(tables["gold.dim_customer"].snapshot_id, int)


def test_empty_lake_says_to_run_the_pipeline(tmp_path: Path) -> None:
    with closing(open_engine(Settings(data_home=tmp_path))) as engine:
        assert engine.tables() == []
        assert engine.query("SELECT 42").rows == [[42]]
        with pytest.raises(NothingPublished, match="run the pipeline"):
            engine.query("SELECT * FROM gold.fct_transactions")


def test_values_survive_strict_json(engine: DuckDBEngine) -> None:
    result = engine.query(
        "SELECT 'nan'::DOUBLE AS nan, 1.5::DECIMAL(4, 2) AS dec, [1, 2] AS list, "
        "{'a': DATE '2024-01-02'} AS struct, INTERVAL 1 DAY AS span, 'ab'::BLOB AS blob, "
        "TIME '12:30:00' AS at, NULL AS nothing"
    )
    assert result.rows == [
        [None, 1.5, [1, 2], {"a": "2024-01-02"}, "1 day, 0:00:00", "YWI=", "12:30:00", None]
    ]
    json.dumps(result.rows, allow_nan=False)


def test_csv_and_json_renderings(engine: DuckDBEngine) -> None:
    result = engine.query(
        "SELECT customer_id, name, [customer_id] AS ids, NULL AS nothing "
        "FROM gold.dim_customer ORDER BY customer_id LIMIT 2"
    )
    assert to_csv(result) == (
        "customer_id,name,ids,nothing\n1,customer 1,[1],\n2,customer 2,[2],\n"
    )
    payload = json.loads(to_json(result))
    assert payload["rows"] == [[1, "customer 1", [1], None], [2, "customer 2", [2], None]]
    assert {"columns", "types", "row_count", "truncated", "elapsed_ms"} <= set(payload)


def test_concurrent_queries_share_one_engine(engine: DuckDBEngine) -> None:
    sql = "SELECT sum(customer_id) FROM gold.dim_customer, range(1000)"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(engine.query, [sql] * 16))
    assert all(result.rows == [[15_000]] for result in results)


def test_cluster_profile_serves_through_trino(tmp_path: Path) -> None:
    # Opening connects to nothing: Trino is reached per query (tests/services/test_trino.py).
    engine = open_engine(Settings(data_home=tmp_path, profile="cluster"))
    assert isinstance(engine, TrinoEngine)
    assert engine.url == "http://127.0.0.1:18090"
    assert (engine.user, engine.catalog) == ("lakebed_reader", "lakebed")


def test_trino_reads_are_retried_while_trino_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_NODES_AVAILABLE right after start is retried; for good it becomes a 503."""
    from lakebed.serve import engine as module

    engine = open_engine(Settings(data_home=tmp_path, profile="cluster"))
    assert isinstance(engine, TrinoEngine)
    failure = EngineUnreachable("Trino cannot run queries now: No nodes available")
    answer = module.QueryResult(["x"], ["INTEGER"], [[1]], False, 0.0)
    attempts: list[int] = []

    def starting(statement: str, limit: int) -> module.QueryResult:
        attempts.append(1)
        if len(attempts) < 3:
            raise module._TransientError(failure)
        return answer

    monkeypatch.setattr(engine, "_run_once", starting)
    assert engine._run("SELECT 1", 10) is answer
    assert len(attempts) == 3

    def never(statement: str, limit: int) -> module.QueryResult:
        raise module._TransientError(failure)

    monkeypatch.setattr(engine, "_run_once", never)
    monkeypatch.setattr(module, "TRINO_RETRY_SECONDS", 1.0)
    with pytest.raises(EngineUnreachable, match="No nodes available"):
        engine._run("SELECT 1", 10)
