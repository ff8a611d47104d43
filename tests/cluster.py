"""PostgreSQL (the Iceberg catalog), an S3 server (SeaweedFS) and Trino (SQL serving) for
the tests of the cluster profile, started once per module that uses them, and the settings
a user would give to reach them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyarrow import fs

from lakebed.config import Settings
from lakebed.services import PostgresServer, SeaweedfsServer, ServiceError, TrinoServer, free_ports

ACCESS_KEY = "lakebed-test"
SECRET_KEY = "lakebed-test-secret"
BUCKET = "lakebed"


def start(server: PostgresServer | SeaweedfsServer | TrinoServer, name: str) -> None:
    try:
        server.up()
    except ServiceError as error:
        pytest.fail(f"{name} could not start in {server.home}:\n{error}", pytrace=False)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: as root the server runs as the postgres user, who
    # cannot enter pytest's 0700 base folder. /tmp is open to it.
    home = Path(tempfile.mkdtemp(prefix="lakebed-pg-"))
    server = PostgresServer(home, port=free_ports(15432, 1), password="s3cr:t@pw")
    try:
        start(server, "PostgreSQL")
        yield server
    finally:
        server.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedfsServer]:
    server = SeaweedfsServer(
        tmp_path_factory.mktemp("seaweedfs"),
        s3_port=free_ports(19500, 15),
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        bucket=BUCKET,
    )
    try:
        start(server, "SeaweedFS")
        yield server
    finally:
        server.down()


@pytest.fixture(scope="module")
def trino(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    seaweedfs: SeaweedfsServer,
) -> Iterator[TrinoServer]:
    """Trino over the module's PostgreSQL catalog and S3 warehouse (~15 s to start; the
    first run on a machine also downloads the server, ~820 MB)."""
    server = TrinoServer(
        tmp_path_factory.mktemp("trino"),
        port=free_ports(18600, 1),
        jdbc_url=postgres.jdbc_url,
        jdbc_user=postgres.user,
        jdbc_password=postgres.password,
        warehouse=f"s3://{BUCKET}/warehouse",
        s3_endpoint=seaweedfs.endpoint,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
    )
    try:
        start(server, "Trino")
        yield server
    finally:
        server.down()


def s3_client(server: SeaweedfsServer, secret_key: str = SECRET_KEY) -> fs.S3FileSystem:
    return fs.S3FileSystem(
        access_key=server.access_key,
        secret_key=secret_key,
        endpoint_override=server.endpoint,
        region="us-east-1",
        force_virtual_addressing=False,
    )


def cluster_settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    postgres: PostgresServer,
    seaweedfs: SeaweedfsServer,
) -> Settings:
    """The cluster profile as a user configures it: ``LAKEBED_*`` variables."""
    monkeypatch.setenv("LAKEBED_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("LAKEBED_PROFILE", "cluster")
    monkeypatch.setenv("LAKEBED_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("LAKEBED_LAKE__CATALOG_URI", postgres.catalog_uri)
    monkeypatch.setenv("LAKEBED_LAKE__WAREHOUSE", f"s3://{BUCKET}/warehouse")
    monkeypatch.setenv("LAKEBED_LAKE__S3_ENDPOINT", seaweedfs.endpoint)
    monkeypatch.setenv("LAKEBED_LAKE__S3_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("LAKEBED_LAKE__S3_SECRET_KEY", SECRET_KEY)
    return Settings()
