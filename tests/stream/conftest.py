"""The real services (Kafka, Redis) started once per session, and both implementations
of the log and of the feature store, for the tests that hold them to one contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lakebed.services import KafkaCluster, RedisServer
from lakebed.stream.kafka_log import KafkaLog
from lakebed.stream.log import EventLog
from lakebed.stream.memory_log import MemoryLog
from lakebed.stream.memory_store import MemoryStore
from lakebed.stream.redis_store import RedisStore
from lakebed.stream.store import FeatureStore


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), port=16479)
    server.up()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(Path(tmp_path_factory.mktemp("kafka")), brokers=1, base_port=19492)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[FeatureStore]:
    implementation: FeatureStore
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        implementation = RedisStore(server.url)
    else:
        implementation = MemoryStore()
    implementation.clear()
    try:
        yield implementation
    finally:
        implementation.clear()
        implementation.close()


@pytest.fixture(params=["memory", "kafka"])
def log(request: pytest.FixtureRequest) -> Iterator[EventLog]:
    implementation: EventLog
    if request.param == "kafka":
        cluster: KafkaCluster = request.getfixturevalue("kafka")
        implementation = KafkaLog(cluster.bootstrap_servers)
    else:
        implementation = MemoryLog()
    try:
        yield implementation
    finally:
        implementation.close()
