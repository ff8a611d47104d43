"""The cluster profile's lakehouse storage against real servers: PostgreSQL holds the
Iceberg catalog, SeaweedFS serves the warehouse over S3.

Both run for the whole module (started once, ~5 s together) and the lifecycle tests
restart them in place, so the round trip at the end also proves that a restart keeps
the catalog and the objects. The first run on a machine compiles SeaweedFS with Go
(about 7 minutes; ``make services`` does it ahead of the tests).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import sqlalchemy
from pyarrow import fs

from lakebed.lake.catalog import NAMESPACES, catalog_properties, open_catalog
from lakebed.services import PostgresServer, SeaweedfsServer, ServiceError, deploy_dir, free_ports
from tests.cluster import (
    BUCKET,
    cluster_settings,
    s3_client,
)


def test_deploy_dir_holds_the_scripts() -> None:
    assert (deploy_dir() / "postgres" / "postgres.sh").is_file()
    assert (deploy_dir() / "seaweedfs" / "seaweedfs.sh").is_file()


def test_an_empty_dir_is_unhealthy_and_down_is_harmless(tmp_path: Path) -> None:
    for server in (PostgresServer(tmp_path / "pg"), SeaweedfsServer(tmp_path / "s3")):
        assert not server.healthy()
        server.down()


def test_postgres_refuses_a_home_its_user_cannot_reach(tmp_path: Path) -> None:
    # Only as root does the server run as another user (postgres), who cannot enter
    # pytest's 0700 folders; the script must say so instead of failing in initdb.
    server = PostgresServer(tmp_path / "pg", port=free_ports(15532, 1))
    if Path("/proc/self").owner() != "root":
        server.up()
        server.down()
        return
    with pytest.raises(ServiceError, match="the postgres user cannot enter"):
        server.up()


class TestPostgres:
    def test_accepts_the_user_with_its_password_only(self, postgres: PostgresServer) -> None:
        assert postgres.healthy()
        engine = sqlalchemy.create_engine(postgres.catalog_uri)
        try:
            with engine.connect() as connection:
                row = connection.execute(
                    sqlalchemy.text("SELECT current_user, current_database(), version()")
                ).one()
        finally:
            engine.dispose()
        assert row[0] == "lakebed"
        assert row[1] == "lakebed"
        assert str(row[2]).startswith("PostgreSQL")

        wrong = PostgresServer(postgres.home, postgres.port, password="wrong")
        engine = sqlalchemy.create_engine(wrong.catalog_uri)
        try:
            with pytest.raises(sqlalchemy.exc.OperationalError, match="password authentication"):
                engine.connect()
        finally:
            engine.dispose()

    def test_listens_on_loopback_only(self, postgres: PostgresServer) -> None:
        conf = (postgres.home / "data" / "postgresql.conf").read_text()
        assert "listen_addresses = '127.0.0.1'" in conf
        assert (postgres.home / f".s.PGSQL.{postgres.port}").is_socket()

    def test_up_again_is_a_no_op(self, postgres: PostgresServer) -> None:
        pid = (postgres.home / "data" / "postmaster.pid").read_text().split()[0]
        postgres.up()
        assert (postgres.home / "data" / "postmaster.pid").read_text().split()[0] == pid

    def test_up_on_another_port_of_a_running_home_fails(self, postgres: PostgresServer) -> None:
        moved = PostgresServer(postgres.home, postgres.port + 1)
        with pytest.raises(ServiceError, match="already serves PostgreSQL"):
            moved.up()

    def test_down_then_up_keeps_the_data(self, postgres: PostgresServer) -> None:
        engine = sqlalchemy.create_engine(postgres.catalog_uri)
        try:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text("CREATE TABLE kept (n int)"))
                connection.execute(sqlalchemy.text("INSERT INTO kept VALUES (42)"))
        finally:
            engine.dispose()
        postgres.down()
        assert not postgres.healthy()
        postgres.down()  # stopping a stopped server is fine
        postgres.up()
        engine = sqlalchemy.create_engine(postgres.catalog_uri)
        try:
            with engine.begin() as connection:
                assert connection.execute(sqlalchemy.text("SELECT n FROM kept")).scalar() == 42
                connection.execute(sqlalchemy.text("DROP TABLE kept"))
        finally:
            engine.dispose()


class TestSeaweedfs:
    def test_serves_the_bucket_to_signed_requests_only(self, seaweedfs: SeaweedfsServer) -> None:
        assert seaweedfs.healthy()
        s3 = s3_client(seaweedfs)
        assert s3.get_file_info(BUCKET).type == fs.FileType.Directory
        with s3.open_output_stream(f"{BUCKET}/probe/hello.txt") as out:
            out.write(b"hello")
        with s3.open_input_stream(f"{BUCKET}/probe/hello.txt") as stream:
            assert stream.read() == b"hello"
        with pytest.raises(OSError, match=r"SIGNATURE_DOES_NOT_MATCH|AccessDenied|403"):
            s3_client(seaweedfs, secret_key="wrong").get_file_info(fs.FileSelector(BUCKET))

    def test_up_again_is_a_no_op(self, seaweedfs: SeaweedfsServer) -> None:
        pid = (seaweedfs.home / "seaweedfs.pid").read_text()
        seaweedfs.up()
        assert (seaweedfs.home / "seaweedfs.pid").read_text() == pid

    def test_down_then_up_keeps_the_objects(self, seaweedfs: SeaweedfsServer) -> None:
        seaweedfs.down()
        assert not seaweedfs.healthy()
        assert not (seaweedfs.home / "seaweedfs.pid").exists()
        seaweedfs.up()
        with s3_client(seaweedfs).open_input_stream(f"{BUCKET}/probe/hello.txt") as stream:
            assert stream.read() == b"hello"


def test_cluster_profile_round_trip(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    postgres: PostgresServer,
    seaweedfs: SeaweedfsServer,
) -> None:
    """Catalog in PostgreSQL, data files in the S3 bucket, read back by pyiceberg and Polars."""
    settings = cluster_settings(monkeypatch, tmp_path, postgres, seaweedfs)
    assert settings.profile == "cluster"
    properties = catalog_properties(settings)
    assert properties["s3.endpoint"] == seaweedfs.endpoint
    assert properties["s3.force-virtual-addressing"] == "false"

    catalog = open_catalog(settings)
    assert {namespace[0] for namespace in catalog.list_namespaces()} >= set(NAMESPACES)
    assert open_catalog(settings).list_namespaces() == catalog.list_namespaces()  # idempotent

    data = pa.table(
        {
            "tx_id": pa.array(range(10_000), pa.int64()),
            "amount_cents": pa.array([i * 7 % 50_000 for i in range(10_000)], pa.int64()),
            "terminal": pa.array([f"t{i % 97}" for i in range(10_000)], pa.string()),
        }
    )
    table = catalog.create_table("bronze.round_trip", schema=data.schema)
    table.append(data)
    table.append(data.slice(0, 10))

    # A fresh catalog (a new process would see the same): the table is in PostgreSQL.
    again = open_catalog(settings).load_table("bronze.round_trip")
    expected = pa.concat_tables([data, data.slice(0, 10)]).sort_by("tx_id")
    assert again.scan().to_arrow().sort_by("tx_id").equals(expected)
    scanned = pl.scan_iceberg(again).collect().sort("tx_id", maintain_order=True)
    assert scanned.to_arrow().cast(expected.schema).equals(expected)

    engine = sqlalchemy.create_engine(postgres.catalog_uri)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables"
                )
            ).all()
    finally:
        engine.dispose()
    assert ("bronze", "round_trip") in {(row[0], row[1]) for row in rows}
    assert all(str(row[2]).startswith(f"s3://{BUCKET}/warehouse/") for row in rows)

    # The data files really are objects in the bucket.
    data_files = {
        str(path).removeprefix("s3://")
        for path in again.inspect.files().column("file_path").to_pylist()
    }
    assert len(data_files) == 2
    listed = s3_client(seaweedfs).get_file_info(
        fs.FileSelector(f"{BUCKET}/warehouse", recursive=True)
    )
    objects = {info.path: info.size for info in listed if info.type == fs.FileType.File}
    assert data_files <= objects.keys()
    assert all(objects[path] > 0 for path in data_files)
    assert any(path.endswith(".metadata.json") for path in objects)


def test_lakebed_services_up_status_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI starts the PostgreSQL that lake.catalog_uri names, in the data home, and
    status says what answers and where."""
    from typer.testing import CliRunner

    from lakebed.cli import app

    runner = CliRunner()
    # Under /tmp: as root the server runs as the postgres user (see tests/cluster.py).
    home = Path(tempfile.mkdtemp(prefix="lakebed-cli-"))
    home.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out
    port = free_ports(15600, 1)
    monkeypatch.setenv("LAKEBED_CONFIG", str(home / "absent.toml"))
    monkeypatch.setenv("LAKEBED_DATA_HOME", str(home))
    monkeypatch.setenv(
        "LAKEBED_LAKE__CATALOG_URI", f"postgresql+psycopg2://cli:pw@127.0.0.1:{port}/lake"
    )
    monkeypatch.setenv("LAKEBED_SERVE__TRINO_URL", f"http://127.0.0.1:{free_ports(18700, 1)}")
    try:
        up = runner.invoke(app, ["services", "up", "postgres"])
        assert up.exit_code == 0, up.output
        assert f"postgres is up on postgresql://cli@127.0.0.1:{port}/lake" in up.output
        status = runner.invoke(app, ["services", "status"])
        assert status.exit_code == 0, status.output
        lines = dict(line.split(": ", 1) for line in status.output.strip().splitlines())
        assert lines["postgres"] == f"up postgresql://cli@127.0.0.1:{port}/lake"
        assert lines["trino"].startswith("down http://127.0.0.1:")
        down = runner.invoke(app, ["services", "down", "postgres"])
        assert down.exit_code == 0, down.output
        status = runner.invoke(app, ["services", "status"])
        assert f"postgres: down postgresql://cli@127.0.0.1:{port}/lake" in status.output
    finally:
        runner.invoke(app, ["services", "down", "postgres"])
        shutil.rmtree(home, ignore_errors=True)
