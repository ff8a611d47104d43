"""Bronze ingestion: verbatim, idempotent, incremental, atomic under a real kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from lakebed.config import Settings
from lakebed.lake.bronze import _json_lines, ingest
from lakebed.lake.catalog import open_catalog
from lakebed.lake.transform import expose_bronze
from lakebed.world.generate import Generated, generate_world
from lakebed.world.spec import WorldSpec
from tests.conftest import Lakehouse, copy_world
from tests.world.helpers import feed_lines, manifest


def bronze(lakehouse: Lakehouse, table: str) -> pl.DataFrame:
    return pl.scan_iceberg(lakehouse.catalog.load_table(f"bronze.{table}")).collect()


def test_every_line_lands_verbatim(lakehouse: Lakehouse) -> None:
    rows = bronze(lakehouse, "transactions")
    lines = feed_lines(lakehouse.home)
    assert len(rows) == sum(len(file_lines) for file_lines in lines.values())
    for row in rows.sample(200, seed=1).iter_rows(named=True):
        raw = lines[f"landing/{row['_source_file']}"][row["_line_number"] - 1]
        expected = raw.decode("utf-8", errors="backslashreplace")
        assert row["payload"] == expected
        assert len(row["_file_sha256"]) == 64
    chargebacks = bronze(lakehouse, "chargebacks")
    assert len(chargebacks) == sum(
        len(v) for v in feed_lines(lakehouse.home, "chargebacks").values()
    )


def test_unparsable_lines_are_kept_with_their_error(lakehouse: Lakehouse) -> None:
    rows = bronze(lakehouse, "transactions").filter(pl.col("_parse_error").is_not_null())
    broken = manifest(lakehouse.home).filter(
        pl.col("kind").is_in(["truncated_json", "invalid_utf8"])
    )
    located = {
        (f"landing/{f}", n) for f, n in rows.select("_source_file", "_line_number").iter_rows()
    }
    assert located == set(broken.select("file", "line_number").iter_rows())
    errors = rows["_parse_error"].to_list()
    assert any(e.startswith("invalid UTF-8") for e in errors)
    assert any(e.startswith("invalid JSON") for e in errors)


def test_reference_exports_keep_line_numbers(lakehouse: Lakehouse) -> None:
    customers = bronze(lakehouse, "customers").sort("_line_number")
    assert customers["_line_number"][0] == 2  # line 1 is the header
    assert customers["customer_id"][0] == "0"
    assert customers["payload"][0].startswith("0,card_00000000,")


def test_reingest_adds_nothing(lakehouse: Lakehouse) -> None:
    table = lakehouse.catalog.load_table("bronze.transactions")
    snapshots = len(table.snapshots())
    report = ingest(lakehouse.catalog, lakehouse.home / "landing")
    assert report.rows == 0
    assert all(feed.files_ingested == 0 for feed in report.feeds)
    skipped = {feed.table: feed.files_unchanged for feed in report.feeds}
    assert skipped == {feed.table: feed.files_ingested for feed in lakehouse.ingest.feeds}
    assert len(table.refresh().snapshots()) == snapshots


def test_changed_file_is_refused_by_name_and_new_files_still_land(
    small_world: Generated, tmp_path: Path
) -> None:
    settings = copy_world(small_world, tmp_path)
    landing = tmp_path / "landing"
    catalog = open_catalog(settings)
    ingest(catalog, landing)
    changed = landing / "transactions" / "transactions_2018-04-03.jsonl"
    changed.write_bytes(changed.read_bytes() + b'{"late":"correction"}\n')
    extra = landing / "transactions" / "transactions_2018-06-30.jsonl"
    extra.write_bytes(b'{"schema_version":1}\n')
    report = ingest(catalog, landing)
    assert len(report.refused) == 1
    assert "transactions/transactions_2018-04-03.jsonl" in report.refused[0]
    assert "content changed" in report.refused[0]
    feed = next(f for f in report.feeds if f.table == "transactions")
    assert (feed.files_ingested, feed.rows) == (1, 1)


def test_killed_ingest_leaves_whole_batches_and_a_rerun_completes(tmp_path: Path) -> None:
    spec = WorldSpec(seed=5, n_customers=2000, n_terminals=4000, n_days=60)
    generate_world(spec, tmp_path)
    script = (
        "import sys; from pathlib import Path; from lakebed.config import Settings;"
        "from lakebed.lake.catalog import open_catalog; from lakebed.lake.bronze import ingest;"
        "s = Settings(data_home=Path(sys.argv[1]));"
        "ingest(open_catalog(s), s.data_home / 'landing', batch_files=2)"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    metadata = tmp_path / "lakehouse" / "warehouse" / "bronze" / "transactions" / "metadata"
    deadline = time.monotonic() + 120
    while len(list(metadata.glob("*.metadata.json"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "ingest finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    catalog = open_catalog(Settings(data_home=tmp_path))
    lines = {
        name.removeprefix("landing/"): len(rows) for name, rows in feed_lines(tmp_path).items()
    }
    partial = pl.scan_iceberg(catalog.load_table("bronze.transactions")).collect()
    per_file = dict(partial.group_by("_source_file").len().iter_rows())
    assert 0 < len(per_file) < len(lines)
    assert all(per_file[name] == lines[name] for name in per_file)  # whole files only

    report = ingest(catalog, tmp_path / "landing", batch_files=2)
    assert report.refused == []
    done = pl.scan_iceberg(catalog.load_table("bronze.transactions")).collect()
    assert dict(done.group_by("_source_file").len().iter_rows()) == lines
    assert done.select("_source_file", "_line_number").n_unique() == len(done)


@pytest.mark.parametrize("content", [b"", b"\n"])
def test_an_empty_file_is_ingested_once(tmp_path: Path, content: bytes) -> None:
    landing = tmp_path / "landing"
    (landing / "transactions").mkdir(parents=True)
    (landing / "transactions" / "transactions_2018-04-01.jsonl").write_bytes(content)
    catalog = open_catalog(Settings(data_home=tmp_path))
    first = ingest(catalog, landing)
    second = ingest(catalog, landing)
    transactions = {feed.table: feed for feed in second.feeds}["transactions"]
    assert {feed.table: feed for feed in first.feeds}["transactions"].files_ingested == 1
    assert (transactions.files_ingested, transactions.files_unchanged) == (0, 1)


def test_an_export_with_another_header_is_refused_alone(tmp_path: Path) -> None:
    reference = tmp_path / "landing" / "reference"
    reference.mkdir(parents=True)
    (reference / "customers.csv").write_text("customer_id,card_id,home_x,home_y\n1,card_1,2,3\n")
    (reference / "customers_v2.csv").write_text("id,card,x,y\n2,card_2,4,5\n")
    catalog = open_catalog(Settings(data_home=tmp_path))
    report = ingest(catalog, tmp_path / "landing")
    assert report.refused == [
        "reference/customers_v2.csv: header id,card,x,y is not the expected "
        "customer_id,card_id,home_x,home_y"
    ]
    customers = {feed.table: feed for feed in report.feeds}["customers"]
    assert (customers.files_ingested, customers.rows) == (1, 1)


def not_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@pytest.mark.parametrize(
    "content",
    [
        b'{"a": 1}\n{"b": 2}\n',
        b'{"a": 1}\n{"b": 2}',  # no newline at the end
        b'{"a": 1}\n\n\n{"b": "\xc3\xa9"}\n',  # blank lines count; multi-byte UTF-8
        b'{"a": 1}\r\n{"b": 2}\r\n',  # a carriage return stays in the payload
        b'{"a": 1}\n{"b": "\xff"}\n{"c": 3}',  # a bad byte, in a line of its own
        b'{"a": "\xc3\n\xa9"}\n\xff\xfe\n{"b": 2}\n',  # a character cut by a newline
        b"\n",
        b"",
    ],
)
def test_json_lines_split_exactly_as_the_bytes_say(content: bytes) -> None:
    lines = _json_lines(content)
    expected = content.decode("utf-8", errors="backslashreplace").split("\n")
    if expected[-1] == "":
        expected.pop()
    assert lines.payloads.to_pylist() == expected
    errors = lines.errors.to_pylist()
    assert len(errors) == len(expected)
    bad = [n for n, line in enumerate(content.split(b"\n")[: len(expected)]) if not_utf8(line)]
    assert [n for n, error in enumerate(errors) if error] == bad
    assert all(errors[n].startswith("invalid UTF-8") for n in bad)


def test_bronze_views_follow_the_catalog_from_empty_to_ingested(tmp_path: Path) -> None:
    """dbt reads bronze through views; a run before the first landing files (empty views)
    and the runs after it must each replace them, also over a database that an older
    version left with an empty bronze table."""
    landing = tmp_path / "landing"
    (landing / "transactions").mkdir(parents=True)
    catalog = open_catalog(Settings(data_home=tmp_path))
    database = tmp_path / "dbt.duckdb"
    ingest(catalog, landing)
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE SCHEMA bronze")
        connection.execute("CREATE TABLE bronze.transactions (payload VARCHAR)")

    def bronze_lines() -> list[tuple[str, str | None, int]]:
        with duckdb.connect(str(database), read_only=True) as connection:
            return connection.execute(
                "SELECT payload, _parse_error, _line_number FROM bronze.transactions"
            ).fetchall()

    for _ in range(2):
        expose_bronze(catalog, database)
        assert bronze_lines() == []
    (landing / "transactions" / "transactions_2018-04-01.jsonl").write_text('{"a": 1}\n')
    ingest(catalog, landing)
    expose_bronze(catalog, database)
    assert bronze_lines() == [('{"a": 1}', None, 1)]
