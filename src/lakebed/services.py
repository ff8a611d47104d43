"""Kafka, Redis, Weaviate, PostgreSQL, SeaweedFS (S3) and Trino as plain local processes.

For tests and the cluster profile on one box.

The work is done by the shell scripts in the repository's ``deploy/`` folder, so that a
developer, CI and Python all start the same services the same way; this module only
gives them typed handles (ports, bootstrap string, URL) and turns a script's failure
into an exception that carries the script's own explanation.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

if TYPE_CHECKING:
    from lakebed.config import Settings

# The first `up` on a machine may fetch Kafka's jars from Maven Central (minutes on
# a slow link); anything longer than this is a hang, not a download.
_SCRIPT_TIMEOUT_S = 900.0
# The first Weaviate or SeaweedFS `up` compiles the server from source: 5 to 7 minutes
# on two cores with the module downloads, more on a slower machine or link.
_BUILD_TIMEOUT_S = 2700.0
_SCRIPTS = (
    "kafka/kafka.sh",
    "redis/redis.sh",
    "weaviate/weaviate.sh",
    "postgres/postgres.sh",
    "seaweedfs/seaweedfs.sh",
    "trino/trino.sh",
)


class ServiceError(RuntimeError):
    """A deploy script failed; the message holds its output (the broker's log tail)."""


def deploy_dir() -> Path:
    """The repository's ``deploy/`` folder.

    The scripts are not packaged with the wheel: they need the checkout (its pom,
    its log config), so an installed copy without one must say so plainly.
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "deploy"
        if all((candidate / script).is_file() for script in _SCRIPTS):
            return candidate
    raise ServiceError(
        f"no deploy/ folder with {', '.join(_SCRIPTS)} above {here}; "
        "the service scripts live in the lakebed repository, run from a checkout"
    )


def _run(
    script: Path,
    *args: str,
    timeout: float = _SCRIPT_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    # Through bash, so a checkout that lost its executable bits still works.
    try:
        return subprocess.run(
            ["bash", str(script), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            # A script's settings (credentials) on top of the caller's environment.
            env=None if env is None else {**os.environ, **env},
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(
            f"{script.name} {' '.join(args)} still running after {timeout:.0f} s"
        ) from exc


def _check(
    script: Path,
    *args: str,
    timeout: float = _SCRIPT_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> None:
    result = _run(script, *args, timeout=timeout, env=env)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceError(
            f"{script.name} {' '.join(args)} failed (exit {result.returncode}):\n{output}"
        )


@dataclass(frozen=True)
class _ScriptedServer:
    """A server that one deploy script starts, stops and checks, its state under ``home``.

    ``down`` is harmless when nothing runs; ``healthy`` is the script's own check.
    """

    home: Path
    SCRIPT: ClassVar[str]  # the script, relative to deploy/

    @property
    def _script(self) -> Path:
        return deploy_dir() / self.SCRIPT

    def down(self) -> None:
        _check(self._script, "down", str(self.home))

    def healthy(self) -> bool:
        return _run(self._script, "health", str(self.home)).returncode == 0


@dataclass(frozen=True)
class KafkaCluster(_ScriptedServer):
    """Kafka brokers (KRaft, each node also a controller) under one directory.

    Node ``i`` serves clients on ``base_port + i``; ``brokers`` is 1 or 3 because
    only those give a controller quorum worth having. Restarting on the same
    ``home`` keeps topics and offsets. ``healthy`` is false as soon as one node is
    down, though clients may still be served: a fault test needs to see the crash it
    caused, not just whether producing works.
    """

    SCRIPT = "kafka/kafka.sh"
    brokers: int = 1
    base_port: int = 19092

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{self.base_port + i}" for i in range(self.brokers))

    def up(self) -> None:
        """Idempotent, and returns only once every broker can host replicas.

        So a fixture may call it unconditionally and a test may create a topic with
        replication factor 3 straight away (an open port alone does not promise that).
        """
        _check(self._script, "up", str(self.home), str(self.brokers), str(self.base_port))

    def kill_broker(self, index: int) -> None:
        """SIGKILL one node (0-based): a crash, with no controlled shutdown or leader handover."""
        _check(self._script, "kill", str(self.home), str(index))

    def start_broker(self, index: int) -> None:
        """Bring a killed node back on its own data, waiting until it rejoins."""
        _check(self._script, "start-node", str(self.home), str(index))


@dataclass(frozen=True)
class RedisServer(_ScriptedServer):
    """One Redis without persistence: state lasts as long as the process."""

    SCRIPT = "redis/redis.sh"
    port: int = 16379

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def up(self) -> None:
        _check(self._script, "up", str(self.home), str(self.port))

    def healthy(self) -> bool:
        return _run(self._script, "health", str(self.home), str(self.port)).returncode == 0


@dataclass(frozen=True)
class WeaviateServer(_ScriptedServer):
    """One single-node Weaviate, its data kept under ``home`` across restarts.

    Besides REST and gRPC it opens four cluster ports (``http_port + 2`` to ``+ 5``:
    gossip, data, raft, raft RPC), so two servers need http ports at least 6 apart.
    """

    SCRIPT = "weaviate/weaviate.sh"
    http_port: int = 18080
    grpc_port: int = 18081

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def build(self) -> None:
        """Compile the server into the shared cache if it is not there (minutes, once)."""
        _check(self._script, "build", timeout=_BUILD_TIMEOUT_S)

    def up(self) -> None:
        """Idempotent, and returns only once the server answers ready (its schema
        store has a raft leader), so a client may create a collection straight away."""
        _check(
            self._script,
            "up",
            str(self.home),
            str(self.http_port),
            str(self.grpc_port),
            timeout=_BUILD_TIMEOUT_S,
        )


@dataclass(frozen=True)
class PostgresServer(_ScriptedServer):
    """One PostgreSQL cluster (Debian's server) with its data under ``home``, kept across restarts.

    ``up`` creates ``user`` with ``password`` (checked on TCP, scram-sha-256) and the
    database ``database`` owned by it. Run as root, the server runs as the ``postgres``
    system user, which must be able to reach ``home`` (pytest's 0700 temporary
    folders are out of its reach; a folder under /tmp is not).
    """

    SCRIPT = "postgres/postgres.sh"
    port: int = 15432
    user: str = "lakebed"
    password: str = field(default="lakebed", repr=False)
    database: str = "lakebed"

    @property
    def url(self) -> str:
        """The database's address without the password (safe to print)."""
        return f"postgresql://{quote(self.user, safe='')}@127.0.0.1:{self.port}/{self._db}"

    @property
    def catalog_uri(self) -> str:
        """The SQLAlchemy URL with the password: ``lake.catalog_uri`` for this server."""
        return (
            f"postgresql+psycopg2://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{self._db}"
        )

    @property
    def jdbc_url(self) -> str:
        """The JDBC URL (user and password apart), as Java clients of the catalog need it."""
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{self._db}"

    @property
    def _db(self) -> str:
        return quote(self.database, safe="")

    @property
    def _env(self) -> dict[str, str]:
        return {
            "LAKEBED_PG_USER": self.user,
            "LAKEBED_PG_PASSWORD": self.password,
            "LAKEBED_PG_DATABASE": self.database,
        }

    def up(self) -> None:
        """Idempotent; returns once the database accepts connections from ``user``."""
        _check(self._script, "up", str(self.home), str(self.port), env=self._env)


@dataclass(frozen=True)
class SeaweedfsServer(_ScriptedServer):
    """One SeaweedFS (master, volume, filer and S3 gateway in one process), data kept in ``home``.

    Lakebed uses it only through the S3 API, so any S3-compatible server can take its
    place. ``up`` creates ``bucket``; requests are signed (SigV4) with the one key pair.
    Besides S3 on ``s3_port`` it opens ``s3_port + 1`` to ``+ 3`` and ``+ 10`` to ``+ 14``,
    so two servers need S3 ports at least 15 apart.
    """

    SCRIPT = "seaweedfs/seaweedfs.sh"
    s3_port: int = 19000
    access_key: str = "lakebed"
    secret_key: str = field(default="lakebed-secret", repr=False)
    bucket: str = "lakebed"

    @property
    def endpoint(self) -> str:
        """The S3 endpoint (path-style addressing: ``<endpoint>/<bucket>/<key>``)."""
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def url(self) -> str:
        return self.endpoint

    @property
    def _env(self) -> dict[str, str]:
        return {
            "LAKEBED_S3_ACCESS_KEY": self.access_key,
            "LAKEBED_S3_SECRET_KEY": self.secret_key,
            "LAKEBED_S3_BUCKET": self.bucket,
        }

    def build(self) -> None:
        """Compile the server into the shared cache if it is not there (minutes, once)."""
        _check(self._script, "build", timeout=_BUILD_TIMEOUT_S)

    def up(self) -> None:
        """Idempotent; returns once S3 answers and ``bucket`` exists."""
        _check(
            self._script,
            "up",
            str(self.home),
            str(self.s3_port),
            timeout=_BUILD_TIMEOUT_S,
            env=self._env,
        )


@dataclass(frozen=True)
class TrinoServer(_ScriptedServer):
    """One Trino (a coordinator that also works) serving the lakehouse's Iceberg tables.

    Its catalog ``lakebed`` is the Iceberg JDBC catalog in PostgreSQL (``jdbc_url``,
    ``jdbc_user``, ``jdbc_password``) with the data on S3 (``s3_*``, ``warehouse``): the
    same catalog pyiceberg writes. ``admin_user`` may do anything; ``reader_user`` may
    only read silver and gold (Trino's file-based access control). Its config, data and
    log live under ``home``; only ``port`` is opened, on 127.0.0.1. The first ``up``
    fetches the server (~820 MB) into ~/.cache/lakebed/trino.
    """

    SCRIPT = "trino/trino.sh"
    port: int = 18090
    jdbc_url: str = "jdbc:postgresql://127.0.0.1:15432/lakebed"
    jdbc_user: str = "lakebed"
    jdbc_password: str = field(default="lakebed", repr=False)
    warehouse: str = "s3://lakebed/warehouse"
    s3_endpoint: str = "http://127.0.0.1:19000"
    s3_region: str = "us-east-1"
    s3_path_style: bool = True
    s3_access_key: str = "lakebed"
    s3_secret_key: str = field(default="lakebed-secret", repr=False)
    admin_user: str = "lakebed"
    reader_user: str = "lakebed_reader"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def _env(self) -> dict[str, str]:
        return {
            "LAKEBED_TRINO_JDBC_URL": self.jdbc_url,
            "LAKEBED_TRINO_JDBC_USER": self.jdbc_user,
            "LAKEBED_TRINO_JDBC_PASSWORD": self.jdbc_password,
            "LAKEBED_TRINO_WAREHOUSE": self.warehouse,
            "LAKEBED_S3_ENDPOINT": self.s3_endpoint,
            "LAKEBED_S3_REGION": self.s3_region,
            "LAKEBED_S3_PATH_STYLE": str(self.s3_path_style).lower(),
            "LAKEBED_S3_ACCESS_KEY": self.s3_access_key,
            "LAKEBED_S3_SECRET_KEY": self.s3_secret_key,
            "LAKEBED_TRINO_ADMIN_USER": self.admin_user,
            "LAKEBED_TRINO_READER_USER": self.reader_user,
        }

    def fetch(self) -> None:
        """Download the server into the shared cache if it is not there (once)."""
        _check(self._script, "fetch")

    def up(self) -> None:
        """Idempotent; returns once Trino has loaded its catalog and answers ``SELECT 1``."""
        _check(self._script, "up", str(self.home), str(self.port), env=self._env)


def port_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:``port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: a port lingering in TIME_WAIT is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(start: int, span: int = 1) -> int:
    """From ``start`` up, a port with ``span`` free ports from it: for tests and benchmarks
    that start servers beside a developer's own (or a concurrent run's) on one machine."""
    for port in range(start, start + 5000, max(span, 10)):
        if all(port_free(port + offset) for offset in range(span)):
            return port
    raise RuntimeError(f"no {span} free ports from {start}")


def service_home(settings: Settings, name: str) -> Path:
    """Where a service started by ``lakebed services up`` keeps its data and logs."""
    return settings.data_home / "services" / name
