"""Bronze ingestion on the cluster profile's storage, for real: the Iceberg catalog in
PostgreSQL, the warehouse on an S3 server (SeaweedFS), and the S3 server stopped in the
middle of an ingestion.

The promise under test: a batch whose files cannot be written fails with a message that
says what and where, nothing of it is committed, and a rerun once the storage is back
completes the work with no row twice, to the same bronze tables as the local profile's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lakebed.config import Settings
from lakebed.lake.bronze import FEEDS, WarehouseWriteError, bronze_table, ingested_files
from lakebed.lake.catalog import open_catalog
from lakebed.lake.pipeline import ingest_stage, layer_rows
from lakebed.services import PostgresServer, SeaweedfsServer
from lakebed.world.generate import Generated
from tests.cluster import cluster_settings
from tests.conftest import Lakehouse

BATCH_FILES = 8


def _lines(path: Path, header: bool) -> int:
    return len(path.read_bytes().splitlines()) - (1 if header else 0)


def test_s3_down_mid_ingest_commits_nothing_partial_and_a_rerun_completes(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    postgres: PostgresServer,
    seaweedfs: SeaweedfsServer,
    small_world: Generated,
    lakehouse: Lakehouse,
) -> None:
    monkeypatch.setenv("LAKEBED_LAKE__INGEST_BATCH_FILES", str(BATCH_FILES))
    settings: Settings = cluster_settings(monkeypatch, tmp_path, postgres, seaweedfs)
    landing = settings.data_home / "landing"
    shutil.copytree(small_world.data_home / "landing", landing)
    catalog = open_catalog(settings)

    def stop_storage_after_first_batch(table: str, done: int, todo: int) -> None:
        if table == "transactions" and done == BATCH_FILES:
            seaweedfs.down()

    with pytest.raises(WarehouseWriteError) as failed:
        ingest_stage(settings, catalog, on_progress=stop_storage_after_first_batch)
    message = str(failed.value)
    assert message.startswith("bronze.transactions: 8 landing files (")
    assert "s3://lakebed/warehouse" in message
    assert "Nothing of this batch was committed" in message

    seaweedfs.up()
    feed = next(f for f in FEEDS if f.table == "transactions")
    table = bronze_table(catalog, feed)
    committed = ingested_files(table)
    assert len(committed) == BATCH_FILES  # the first batch, and nothing of the second
    rows = table.scan().to_polars()
    expected = sum(_lines(landing / name, feed.is_csv) for name in committed)
    assert rows.height == expected

    report = ingest_stage(settings, catalog)
    assert not report.refused
    on_s3 = layer_rows(catalog)
    local = layer_rows(lakehouse.catalog)
    bronze = [name for name in local if name.startswith("bronze.")]
    assert {name: on_s3[name] for name in bronze} == {name: local[name] for name in bronze}
    rows = bronze_table(catalog, feed).scan().to_polars()
    assert rows.height == rows.select("_source_file", "_line_number").unique().height
    # The same rows as the local profile's bronze, line for line.
    local_rows = bronze_table(lakehouse.catalog, feed).scan().to_polars()
    columns = ["_source_file", "_line_number", "payload"]
    assert (
        rows.select(columns).sort(columns[:2]).equals(local_rows.select(columns).sort(columns[:2]))
    )
