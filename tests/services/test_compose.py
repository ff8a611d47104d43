"""deploy/compose.yaml, the cluster profile's servers for Docker users, checked without Docker.

No Docker engine or compose plugin exists here, so the file is checked two ways: against
the Compose Specification's JSON schema (vendored in deploy/compose/), and by compose-go
(the loader that Docker Compose itself uses, built with Go like the other cluster
servers; ``docker compose config`` would run the same loader). The rest reads the YAML for what
the loaders cannot know: ports and credentials equal to the native scripts', mounted files
that exist, Trino's catalog pointing at the compose services, and the access rules.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lakebed.services import PostgresServer, SeaweedfsServer, deploy_dir

DEPLOY = deploy_dir()
COMPOSE_FILE = DEPLOY / "compose.yaml"
SCHEMA_FILE = DEPLOY / "compose" / "compose-spec.json"
TRINO_ETC = DEPLOY / "compose" / "trino" / "etc"
# The compose-go release whose schema is vendored (deploy/compose/README.md).
COMPOSE_GO = "github.com/compose-spec/compose-go/v2/cmd@v2.16.2"
# lakebed.services has no TrinoServer yet; read its port default here once it does.
TRINO_PORT = 18090
LOOPBACK = "127.0.0.1"

# ${VAR}, ${VAR:-default}, ${VAR-default}, and $$ (a literal $ for the container's shell).
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
_TRINO_ENV = re.compile(r"\$\{ENV:([A-Za-z_][A-Za-z0-9_]*)\}")


def _interpolate(value: Any) -> Any:
    """The file as Compose sees it with no variable set: every ``${VAR:-x}`` becomes ``x``.

    The defaults are what a user gets, and what must equal the native scripts' defaults;
    the caller's environment is deliberately ignored so the test reads the same anywhere.
    """
    if isinstance(value, str):
        return _VARIABLE.sub(
            lambda m: "$" if m.group(0) == "$$" else (m.group(2) or ""),
            value,
        )
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    return value


def _raw_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{COMPOSE_FILE} is not a YAML mapping"
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    interpolated = _interpolate(_raw_compose())
    assert isinstance(interpolated, dict)
    return interpolated


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict), "compose.yaml has no services mapping"
    assert found, "compose.yaml defines no services"
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port, either syntax."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        if len(parts) == 3:
            ports.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            ports.append(("", int(parts[0]), int(parts[1])))
        else:  # a container port alone: Docker picks a host port on every interface
            ports.append(("", 0, int(parts[0])))
    return ports


def _host_port(services: dict[str, dict[str, Any]], name: str) -> int:
    published = _published(services[name])
    assert len(published) == 1, f"service {name} should publish one port, not {published}"
    return published[0][1]


def _container_port(services: dict[str, dict[str, Any]], name: str) -> int:
    return _published(services[name])[0][2]


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/", "~")):
            mounts.append((source, target))
    return mounts


def _named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "volume":
                names.append(volume["source"])
            continue
        source = str(volume).split(":")[0]
        if ":" in str(volume) and not source.startswith((".", "/", "~")):
            names.append(source)
    return names


def _dependencies(service: dict[str, Any]) -> dict[str, str]:
    """Each service this one waits for, and the condition (the list form means started)."""
    depends_on = service.get("depends_on", {})
    if isinstance(depends_on, list):
        return dict.fromkeys(depends_on, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends_on.items()}


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if not check:
        return False
    return not check.get("disable", False) and check.get("test") != ["NONE"]


def _default(cls: type[Any], name: str) -> Any:
    """A dataclass field's default: the native server's port or credential."""
    for field in dataclasses.fields(cls):
        if field.name == name:
            return field.default
    raise AssertionError(f"{cls.__name__} has no field {name}")


def _properties(path: Path) -> dict[str, str]:
    """A Java .properties file of plain key=value lines (all that these files use)."""
    props = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def _trino_mount_source(services: dict[str, dict[str, Any]], target: str) -> Path:
    for source, mounted_at in _bind_mounts(services["trino"]):
        if mounted_at == target:
            return (DEPLOY / source).resolve()
    raise AssertionError(f"nothing is mounted at {target} in the trino service")


# --- the file against the Compose Specification ---------------------------------------


def _schema_errors(document: Any) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    # The schema has no "format" keywords, so no format checker is needed.
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []


def test_the_schema_check_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The schema is strict enough to catch a misspelt key, so the check above means something."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["trino"]["healthcheck"]["intervall"] = "5s"
    broken["services"]["postgres"]["depends_on"] = "seaweedfs"
    errors = _schema_errors(broken)
    assert any("intervall" in error for error in errors), errors
    assert any("services.postgres.depends_on" in error for error in errors), errors


def _compose_go(compose_file: Path) -> subprocess.CompletedProcess[str]:
    """compose-go's own loader (interpolation, schema, model consistency) on the file.

    Built from the Go module proxy by ``go run`` (seconds, once; Go's build cache keeps
    it), as the SeaweedFS and Weaviate servers are. Run from deploy/, where the file's
    relative paths start, with no COMPOSE_* variable that could redirect it.
    """
    if shutil.which("go") is None:
        pytest.fail(
            "go not found: the compose-go check needs Go, like the SeaweedFS and "
            "Weaviate servers of the cluster profile (https://go.dev/dl/)"
        )
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMPOSE_")}
    env |= {"GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"}
    return subprocess.run(
        ["go", "run", COMPOSE_GO, "-format=json", str(compose_file)],
        cwd=DEPLOY,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_compose_go_loads_the_file() -> None:
    result = _compose_go(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    # The loader's own reading of the ports agrees with this file's intent.
    model = json.loads(result.stdout)
    assert set(model["services"]) == set(_raw_compose()["services"])
    for name, service in model["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == LOOPBACK, f"{name} publishes {port}"


def test_compose_go_rejects_a_broken_file(tmp_path: Path) -> None:
    """It parses what the schema only sees as strings (here a port), so it adds a check.

    Its command loads the model without the project's consistency checks (an unknown
    service in depends_on, an undeclared volume): the tests below check those.
    """
    broken = _raw_compose()
    broken["services"]["trino"]["ports"] = [f"{LOOPBACK}:eighteen-oh-ninety:8080"]
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = _compose_go(path)
    assert result.returncode != 0
    assert "eighteen-oh-ninety" in result.stderr


# --- what Docker users get -------------------------------------------------------------


def test_every_image_has_a_pinned_tag(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"service {name} has no image"
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository, f"service {name}: {image} has no tag"
        assert "/" not in tag, f"service {name}: {image} has no tag"
        assert tag != "latest", f"service {name}: {image} is not pinned"


def test_every_port_is_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"service {name} uses the host network"
        for host_ip, host_port, _ in _published(service):
            assert host_ip == LOOPBACK, f"service {name} publishes {host_port} on {host_ip!r}"
            assert host_port, f"service {name} lets Docker pick a host port"


def test_host_ports_equal_the_native_defaults(services: dict[str, dict[str, Any]]) -> None:
    """So the same LAKEBED_* settings reach the servers whichever way they were started."""
    assert _host_port(services, "postgres") == _default(PostgresServer, "port")
    assert _host_port(services, "seaweedfs") == _default(SeaweedfsServer, "s3_port")
    assert _host_port(services, "trino") == TRINO_PORT


def test_default_credentials_equal_the_native_defaults(
    services: dict[str, dict[str, Any]],
) -> None:
    postgres = _environment(services["postgres"])
    assert postgres["POSTGRES_USER"] == _default(PostgresServer, "user")
    assert postgres["POSTGRES_PASSWORD"] == _default(PostgresServer, "password")
    assert postgres["POSTGRES_DB"] == _default(PostgresServer, "database")
    seaweedfs = _environment(services["seaweedfs"])
    assert seaweedfs["AWS_ACCESS_KEY_ID"] == _default(SeaweedfsServer, "access_key")
    assert seaweedfs["AWS_SECRET_ACCESS_KEY"] == _default(SeaweedfsServer, "secret_key")
    assert seaweedfs["S3_BUCKET"] == _default(SeaweedfsServer, "bucket")


def test_credentials_follow_the_native_scripts_variables() -> None:
    """A LAKEBED_PG_*/LAKEBED_S3_* variable set for deploy/*.sh changes the compose stack too."""
    raw = _raw_compose()["services"]
    expected = {
        "postgres": {
            "POSTGRES_USER": "LAKEBED_PG_USER",
            "POSTGRES_PASSWORD": "LAKEBED_PG_PASSWORD",
            "POSTGRES_DB": "LAKEBED_PG_DATABASE",
        },
        "seaweedfs": {
            "AWS_ACCESS_KEY_ID": "LAKEBED_S3_ACCESS_KEY",
            "AWS_SECRET_ACCESS_KEY": "LAKEBED_S3_SECRET_KEY",
            "S3_BUCKET": "LAKEBED_S3_BUCKET",
        },
    }
    for name, variables in expected.items():
        env = _environment(raw[name])
        for key, variable in variables.items():
            assert env[key].startswith(f"${{{variable}:-"), f"{name}.{key} = {env[key]}"


def test_depends_on_waits_for_what_can_report_it(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, condition in _dependencies(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if condition == "service_healthy":
                assert _has_healthcheck(services[dependency]), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", (
                    f"{name} waits for {dependency} to finish, which restarts"
                )
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"


def test_up_wait_has_something_to_wait_for(services: dict[str, dict[str, Any]]) -> None:
    """``up --wait`` returns once every server is healthy and every one-shot has finished.

    A one-shot (init) service that nothing waits for makes ``up --wait`` fail when it
    exits, even with status 0 (docker/compose#10596), so each must be depended on.
    """
    awaited = {
        dependency
        for service in services.values()
        for dependency, condition in _dependencies(service).items()
        if condition == "service_completed_successfully"
    }
    for name, service in services.items():
        if name in awaited:
            continue
        assert _has_healthcheck(service), f"{name} runs without a healthcheck"
    assert _dependencies(services["trino"]) == {
        "postgres": "service_healthy",
        "seaweedfs": "service_healthy",
    }


def test_mounted_files_exist_and_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for source, target in _bind_mounts(service):
            path = (DEPLOY / source).resolve()
            assert path.is_file(), f"{name} mounts {source} at {target}, which does not exist"
            assert path.is_relative_to(DEPLOY), f"{name} mounts {source} from outside deploy/"
        for volume in _named_volumes(service):
            assert volume in declared, f"{name} uses the undeclared volume {volume}"


def test_trino_reads_the_mounted_configuration(services: dict[str, dict[str, Any]]) -> None:
    """The files land where Trino looks: etc/catalog/<name>.properties, etc/access-control."""
    catalog = _trino_mount_source(services, "/etc/trino/catalog/lakebed.properties")
    assert catalog == TRINO_ETC / "catalog" / "lakebed.properties"
    access = _trino_mount_source(services, "/etc/trino/access-control.properties")
    props = _properties(access)
    assert props["access-control.name"] == "file"
    rules = _trino_mount_source(services, props["security.config-file"])
    assert rules == TRINO_ETC / "rules.json"


def test_trino_catalog_points_at_the_compose_services(
    services: dict[str, dict[str, Any]],
) -> None:
    raw = _properties(TRINO_ETC / "catalog" / "lakebed.properties")
    trino_env = _environment(services["trino"])
    for key, value in raw.items():
        for variable in _TRINO_ENV.findall(value):
            assert variable in trino_env, f"{key} reads ${{ENV:{variable}}}, unset in trino"
    props = {
        key: _TRINO_ENV.sub(lambda m: trino_env[m.group(1)], value) for key, value in raw.items()
    }
    postgres = _environment(services["postgres"])
    seaweedfs = _environment(services["seaweedfs"])

    assert props["connector.name"] == "iceberg"
    assert props["iceberg.catalog.type"] == "jdbc"
    # pyiceberg and Spark open the catalog by this name: it keys every catalog row.
    assert props["iceberg.jdbc-catalog.catalog-name"] == "lakebed"
    assert props["iceberg.jdbc-catalog.driver-class"] == "org.postgresql.Driver"
    assert props["iceberg.jdbc-catalog.connection-url"] == (
        f"jdbc:postgresql://postgres:{_container_port(services, 'postgres')}"
        f"/{postgres['POSTGRES_DB']}"
    )
    assert props["iceberg.jdbc-catalog.connection-user"] == postgres["POSTGRES_USER"]
    assert props["iceberg.jdbc-catalog.connection-password"] == postgres["POSTGRES_PASSWORD"]
    assert props["iceberg.jdbc-catalog.default-warehouse-dir"] == (
        f"s3://{seaweedfs['S3_BUCKET']}/warehouse"
    )

    assert props["fs.native-s3.enabled"] == "true"
    assert props["s3.endpoint"] == f"http://seaweedfs:{_container_port(services, 'seaweedfs')}"
    assert props["s3.region"] == "us-east-1"
    assert props["s3.path-style-access"] == "true"
    assert props["s3.aws-access-key"] == seaweedfs["AWS_ACCESS_KEY_ID"]
    assert props["s3.aws-secret-key"] == seaweedfs["AWS_SECRET_ACCESS_KEY"]


# --- Trino's access rules, evaluated the way Trino's file-based access control does ----


def _rules() -> dict[str, list[dict[str, Any]]]:
    loaded = json.loads((TRINO_ETC / "rules.json").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _first_match(rules: list[dict[str, Any]], **names: str) -> dict[str, Any] | None:
    """The first rule whose patterns (full-match regexes; absent means any) all match."""
    for rule in rules:
        if all(re.fullmatch(rule.get(key, ".*"), value) for key, value in names.items()):
            return rule
    return None


def _catalog_access(user: str, catalog: str) -> str:
    rule = _first_match(_rules()["catalogs"], user=user, catalog=catalog)
    if rule is None:
        # Trino appends one rule of its own after the file's: anyone may use the
        # system catalog (unless a catch-all rule of the file matched first).
        return "all" if catalog == "system" else "none"
    access = rule["allow"]
    assert isinstance(access, str)
    return access


def _table_privileges(user: str, catalog: str, schema: str = "gold") -> set[str]:
    rule = _first_match(_rules()["tables"], user=user, catalog=catalog, schema=schema, table="t")
    return set() if rule is None else set(rule["privileges"])


def _schema_owner(user: str, catalog: str) -> bool:
    rule = _first_match(_rules()["schemas"], user=user, catalog=catalog, schema="gold")
    return rule is not None and bool(rule["owner"])


def test_lakebed_reader_may_only_read_silver_and_gold() -> None:
    """The serving path's user, as deploy/trino/trino.sh configures the native server."""
    assert _catalog_access("lakebed_reader", "lakebed") == "read-only"
    assert _table_privileges("lakebed_reader", "lakebed", "gold") == {"SELECT"}
    assert _table_privileges("lakebed_reader", "lakebed", "silver") == {"SELECT"}
    assert _table_privileges("lakebed_reader", "lakebed", "bronze") == set()
    assert not _schema_owner("lakebed_reader", "lakebed")
    assert _catalog_access("lakebed_reader", "tpch") == "none"


def test_lakebed_may_do_anything() -> None:
    assert _catalog_access("lakebed", "lakebed") == "all"
    assert {"SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"} <= _table_privileges(
        "lakebed", "lakebed"
    )
    assert _schema_owner("lakebed", "lakebed")


def test_other_users_reach_nothing() -> None:
    assert _catalog_access("mallory", "lakebed") == "none"
    assert _table_privileges("mallory", "lakebed") == set()
