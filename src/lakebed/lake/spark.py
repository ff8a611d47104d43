"""Spark on the cluster profile: a session whose default catalog is the lakehouse's own.

Spark reaches the same Iceberg catalog as pyiceberg and Trino: Iceberg's JDBC catalog on
the PostgreSQL that ``lake.catalog_uri`` names (pyiceberg's SQL catalog *is* that schema),
under the same catalog name, with the ``s3://`` warehouse read and written through
Iceberg's S3FileIO. So ``silver.transactions`` means one table to all three engines.

The jars Spark needs beside the pyspark wheel (Iceberg runtime, AWS bundle, PostgreSQL
driver, Kafka source) are fetched once from Maven Central by ``deploy/spark/spark.sh``
and passed as local files: nothing is resolved when a session starts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from lakebed.config import Settings
from lakebed.lake.catalog import CATALOG_NAME, S3_SCHEMES
from lakebed.services import deploy_dir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Two cores: more shuffle partitions than that only add scheduling overhead on one box.
_SHUFFLE_PARTITIONS = 4
_DRIVER_MEMORY = "4g"


class SparkSetupError(RuntimeError):
    """Spark cannot start for the cluster profile; the message says what to fix."""


def spark_version_needed() -> str:
    """The Spark release the fetched jars are built for (pyspark must be the same)."""
    return _script("version").strip()


def spark_jars() -> list[Path]:
    """The cached jars (fetched from Maven Central on first use)."""
    return [Path(path) for path in _script("jars").strip().split(",") if path]


def _script(command: str) -> str:
    script = deploy_dir() / "spark" / "spark.sh"
    try:
        done = subprocess.run(
            ["bash", str(script), command], capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired as error:
        raise SparkSetupError(f"spark.sh {command} still running after 900 s") from error
    if done.returncode != 0:
        raise SparkSetupError(f"spark.sh {command} failed:\n{(done.stdout + done.stderr).strip()}")
    return done.stdout


def check_pyspark() -> None:
    """pyspark must be the release the Kafka connector was fetched for, to the patch."""
    try:
        import pyspark
    except ImportError as error:
        raise SparkSetupError(
            "the cluster profile needs pyspark; install it with: pip install -e '.[cluster]'"
        ) from error
    needed = spark_version_needed()
    if pyspark.__version__ != needed:
        raise SparkSetupError(
            f"pyspark {pyspark.__version__} is installed, but the Spark jars in "
            f"deploy/spark/pom.xml are for Spark {needed}: pip install pyspark=={needed}"
        )


def jdbc_catalog(settings: Settings) -> tuple[str, str, str]:
    """(JDBC URL, user, password) of the catalog database that ``lake.catalog_uri`` names."""
    uri = settings.lake.catalog_uri or ""
    parts = urlsplit(uri)
    if not parts.scheme.startswith("postgresql"):
        raise SparkSetupError(
            "Spark shares the Iceberg catalog through JDBC, which needs lake.catalog_uri to "
            f"name a PostgreSQL database (postgresql+psycopg2://...), not {parts.scheme or uri!r}"
        )
    host = parts.hostname or "127.0.0.1"
    url = f"jdbc:postgresql://{host}:{parts.port or 5432}{parts.path or '/'}"
    return url, unquote(parts.username or ""), unquote(parts.password or "")


def spark_conf(settings: Settings, jars: list[Path]) -> dict[str, str]:
    """Every Spark setting of a cluster-profile session, the catalog's credentials included."""
    lake = settings.lake
    if not lake.warehouse or urlsplit(lake.warehouse).scheme not in S3_SCHEMES:
        raise SparkSetupError(
            f"the cluster profile's warehouse must be on S3 (s3://...), not {lake.warehouse!r}"
        )
    url, user, password = jdbc_catalog(settings)
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    conf = {
        "spark.master": "local[2]",
        "spark.app.name": "lakebed",
        "spark.driver.memory": _DRIVER_MEMORY,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.jars": ",".join(str(jar) for jar in jars),
        # No Hive metastore (and no metastore_db folder in the working directory): the
        # session's own catalog stays in memory, every table lives in the Iceberg one.
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(_SHUFFLE_PARTITIONS),
        "spark.sql.extensions": (
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
        ),
        "spark.sql.defaultCatalog": CATALOG_NAME,
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.uri": url,
        f"{prefix}.jdbc.user": user,
        f"{prefix}.jdbc.password": password,
        f"{prefix}.warehouse": lake.warehouse,
        f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{prefix}.client.region": lake.s3_region,
        f"{prefix}.s3.path-style-access": str(lake.s3_path_style).lower(),
    }
    if lake.s3_endpoint:
        conf[f"{prefix}.s3.endpoint"] = lake.s3_endpoint
    if lake.s3_access_key:
        conf[f"{prefix}.s3.access-key-id"] = lake.s3_access_key
    if lake.s3_secret_key:
        conf[f"{prefix}.s3.secret-access-key"] = lake.s3_secret_key.get_secret_value()
    return conf


def write_spark_defaults(settings: Settings, folder: Path, *, work_dir: Path) -> Path:
    """``spark-defaults.conf`` in ``folder`` (for ``SPARK_CONF_DIR``), readable by its owner
    only: it holds the catalog's and the S3 server's credentials.

    dbt-spark's session method starts its own SparkSession in dbt's process; this file is
    how that session gets the same settings as :func:`spark_session`.
    """
    check_pyspark()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spark-defaults.conf"
    conf = spark_conf(settings, spark_jars())
    # The session catalog's (empty) warehouse: in the data home, not wherever dbt runs.
    conf["spark.sql.warehouse.dir"] = str(work_dir / "spark-warehouse")
    lines = [f"{key} {value}" for key, value in conf.items()]
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def spark_session(settings: Settings) -> SparkSession:
    """A session on the lakehouse's catalog (the JVM starts here: a few seconds)."""
    check_pyspark()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_conf(settings, spark_jars()).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
