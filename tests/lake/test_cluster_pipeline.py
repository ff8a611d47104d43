"""The medallion pipeline on the cluster profile, for real: bronze by pyiceberg into the S3
warehouse, silver and gold by dbt-spark (session method) over the same dbt project, all in
one Iceberg JDBC catalog on PostgreSQL.

The promise under test: the same world gives the same silver and gold tables as the local
profile's DuckDB build (row counts and per-column checksums), and every engine reads what
the others wrote.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute
import pytest
from pyiceberg.catalog import Catalog

from lakebed.config import Settings
from lakebed.lake.catalog import open_catalog
from lakebed.lake.fingerprint import LOAD_COLUMNS, canonical, fingerprint
from lakebed.lake.pipeline import build_stage, ingest_stage, publish_stage
from lakebed.lake.publish import PublishedTable
from lakebed.lake.spark import spark_session
from lakebed.lake.transform import BuildResult
from lakebed.serve.demo import EXAMPLE_QUERIES
from lakebed.serve.engine import DuckDBEngine, TrinoEngine
from lakebed.services import PostgresServer, SeaweedfsServer, TrinoServer
from lakebed.world.generate import Generated
from tests.cluster import cluster_settings
from tests.conftest import Lakehouse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


# The last days of transactions and chargebacks arrive in a second run, so that the
# incremental fact table is merged on Spark before it is compared with the local build.
LATER_DAYS = 8


@dataclass(frozen=True)
class ClusterLakehouse:
    settings: Settings
    catalog: Catalog
    first_build: BuildResult
    build: BuildResult
    published: list[PublishedTable]


@pytest.fixture(scope="module")
def cluster_lakehouse(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    seaweedfs: SeaweedfsServer,
    small_world: Generated,
) -> Iterator[ClusterLakehouse]:
    home = tmp_path_factory.mktemp("cluster-lakehouse")
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = cluster_settings(monkeypatch, home, postgres, seaweedfs)
        for folder in ("landing", "world"):
            shutil.copytree(small_world.data_home / folder, settings.data_home / folder)
        later = home / "later"
        for feed in ("transactions", "chargebacks"):
            (later / feed).mkdir(parents=True)
            for path in sorted((settings.data_home / "landing" / feed).iterdir())[-LATER_DAYS:]:
                path.rename(later / feed / path.name)
        catalog = open_catalog(settings)
        ingest_stage(settings, catalog)
        first_build = build_stage(settings, catalog)
        for feed in ("transactions", "chargebacks"):
            for path in (later / feed).iterdir():
                path.rename(settings.data_home / "landing" / feed / path.name)
        ingest_stage(settings, catalog)
        build = build_stage(settings, catalog)
        published = publish_stage(settings, catalog)
        yield ClusterLakehouse(settings, catalog, first_build, build, published)


@pytest.fixture(scope="module")
def spark(cluster_lakehouse: ClusterLakehouse) -> Iterator[SparkSession]:
    session = spark_session(cluster_lakehouse.settings)
    yield session
    session.stop()


def test_dbt_builds_and_tests_every_model_on_spark(
    cluster_lakehouse: ClusterLakehouse, lakehouse: Lakehouse
) -> None:
    build = cluster_lakehouse.build
    assert build.success, [(n.name, n.status, n.message) for n in build.failures]
    # The same project: every data test and every table ran on both engines; the
    # staging views are ephemeral on Spark (inlined, so not run on their own).
    for kind in ("test", "seed"):
        local = {n.name for n in lakehouse.build.nodes if n.kind == kind}
        assert {n.name for n in build.nodes if n.kind == kind} == local, kind
    local = {n.name for n in lakehouse.build.nodes if n.kind == "model"}
    cluster = {n.name for n in build.nodes if n.kind == "model"}
    assert cluster <= local
    assert all(name.startswith(("stg_", "int_")) for name in local - cluster), local - cluster
    assert {"int_transactions_checked", "int_transactions_duplicates"} <= cluster
    assert set(build.counts("test")) == {"pass"}
    assert sum(build.counts("test").values()) > 50


def test_silver_and_gold_equal_the_local_profiles(
    cluster_lakehouse: ClusterLakehouse, lakehouse: Lakehouse
) -> None:
    local_tables = {p.identifier for p in lakehouse.published}
    cluster_tables = {p.identifier for p in cluster_lakehouse.published}
    assert cluster_tables == local_tables
    assert {t.split(".")[0] for t in local_tables} == {"silver", "gold"}
    for identifier in sorted(local_tables):
        ours = lakehouse.catalog.load_table(identifier).scan().to_arrow()
        theirs = cluster_lakehouse.catalog.load_table(identifier).scan().to_arrow()
        assert ours.num_rows > 0, identifier
        assert theirs.column_names == ours.column_names, identifier
        differences = fingerprint(ours, exclude=LOAD_COLUMNS).differences(
            fingerprint(theirs, exclude=LOAD_COLUMNS)
        )
        assert differences == [], f"{identifier}: {differences}"


def test_published_rows_come_from_the_tables_spark_wrote(
    cluster_lakehouse: ClusterLakehouse,
) -> None:
    for published in cluster_lakehouse.published:
        table = cluster_lakehouse.catalog.load_table(published.identifier)
        assert published.mode == "written by dbt"
        assert published.rows == table.scan().to_arrow().num_rows, published.identifier
        assert table.location().startswith("s3://lakebed/warehouse/"), published.identifier


def test_spark_reads_what_pyiceberg_wrote(
    cluster_lakehouse: ClusterLakehouse, spark: SparkSession
) -> None:
    # Bronze is written by pyiceberg (lakebed ingest).
    catalog = cluster_lakehouse.catalog
    bronze = catalog.load_table("bronze.transactions").scan().to_arrow()
    row = spark.sql(
        "select count(*) as n, count(distinct _source_file) as files, sum(_line_number) as s "
        "from bronze.transactions"
    ).collect()[0]
    assert row["n"] == bronze.num_rows
    assert row["files"] == len(set(bronze.column("_source_file").to_pylist()))
    assert row["s"] == sum(bronze.column("_line_number").to_pylist())


def test_pyiceberg_reads_what_spark_wrote(
    cluster_lakehouse: ClusterLakehouse, spark: SparkSession
) -> None:
    spark.sql("drop table if exists gold.spark_written")
    spark.sql(
        "create table gold.spark_written using iceberg as "
        "select event_date, count(*) as transactions, sum(amount) as amount "
        "from gold.fct_transactions group by event_date"
    )
    written = cluster_lakehouse.catalog.load_table("gold.spark_written").scan().to_arrow()
    expected = (
        cluster_lakehouse.catalog.load_table("gold.fct_transactions")
        .scan()
        .to_arrow()
        .group_by("event_date")
        .aggregate([("transaction_id", "count"), ("amount", "sum")])
    )
    assert written.num_rows == expected.num_rows
    assert sorted(written.column("transactions").to_pylist()) == sorted(
        expected.column("transaction_id_count").to_pylist()
    )
    assert sum(written.column("amount").to_pylist()) == sum(
        expected.column("amount_sum").to_pylist()
    )
    spark.sql("drop table gold.spark_written")


def test_trino_reads_what_spark_wrote(
    cluster_lakehouse: ClusterLakehouse, trino: TrinoServer
) -> None:
    engine = TrinoEngine(trino.url, user="lakebed_reader")
    fct = cluster_lakehouse.catalog.load_table("gold.fct_transactions").scan().to_arrow()
    result = engine.query(
        "SELECT count(*), count(DISTINCT card_id), sum(amount) FROM gold.fct_transactions"
    )
    assert result.rows == [
        [
            fct.num_rows,
            len(set(fct.column("card_id").to_pylist())),
            float(sum(fct.column("amount").to_pylist())),
        ]
    ]


def _answers(rows: list[list[object]]) -> list[list[str]]:
    return [[canonical(float(v) if isinstance(v, int | float) else v) for v in r] for r in rows]


@pytest.mark.parametrize(("title", "sql"), EXAMPLE_QUERIES, ids=[t for t, _ in EXAMPLE_QUERIES])
def test_gold_example_queries_answer_the_same_on_trino_and_duckdb(
    cluster_lakehouse: ClusterLakehouse,
    lakehouse: Lakehouse,
    trino: TrinoServer,
    title: str,
    sql: str,
) -> None:
    """What a user asks of gold answers the same on both profiles' serving engines."""
    on_trino = TrinoEngine(trino.url, user="lakebed_reader").query(sql)
    with DuckDBEngine(lakehouse.catalog) as duckdb:
        on_duckdb = duckdb.query(sql)
    assert on_trino.row_count > 0
    assert on_trino.columns == on_duckdb.columns
    assert _answers(on_trino.rows) == _answers(on_duckdb.rows), title


def test_the_fact_table_was_merged_incrementally(cluster_lakehouse: ClusterLakehouse) -> None:
    """DuckDB deletes and inserts the rebuilt dates; Spark merges them by transaction id.
    The second run rebuilt only the dates its new lines touched, in one more commit."""
    assert cluster_lakehouse.first_build.success
    fct = cluster_lakehouse.catalog.load_table("gold.fct_transactions")
    operations = [
        snapshot.summary.operation.value for snapshot in fct.snapshots() if snapshot.summary
    ]
    assert len(operations) >= 2, operations
    rebuilt = next(n for n in cluster_lakehouse.build.nodes if n.name == "fct_transactions")
    assert rebuilt.status == "success"
    built_at = fct.scan(selected_fields=("_built_at",)).to_arrow().column("_built_at")
    runs = pa.compute.value_counts(built_at).to_pylist()
    assert len(runs) == 2, "the second run kept the first run's untouched dates"


def test_cluster_settings_need_postgres_for_spark(tmp_path: Path) -> None:
    from lakebed.lake.spark import SparkSetupError, jdbc_catalog

    settings = Settings(
        data_home=tmp_path,
        profile="cluster",
        lake={"catalog_uri": "sqlite:///x.db", "warehouse": "s3://b/w"},
    )
    with pytest.raises(SparkSetupError, match="PostgreSQL"):
        jdbc_catalog(settings)
