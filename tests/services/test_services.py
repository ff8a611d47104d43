"""The deploy scripts against real servers: Redis, one Kafka node, three Kafka nodes.

No mocks: what is worth knowing is whether the scripts bring up servers that real
clients can use, and whether a three-node cluster rides out a crashed broker.
Each server group lives in a class-scoped fixture, so it is stopped before the next
group starts (four JVMs at once would crowd a 2-core CI machine).

The first Kafka run fetches the broker's jars from Maven Central (about a minute);
later runs find them in the cache (~/.cache/lakebed).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from lakebed.services import KafkaCluster, RedisServer, ServiceError, deploy_dir, port_free


def _free_base_port(start: int, nodes: int) -> int:
    """A base port whose client and controller ports are all free.

    Fixed ports would collide with a developer's own cluster or a concurrent run. Start
    below Linux's ephemeral range (32768-60999): a port there that is free when checked
    can become a client connection's local port before the node binds it (the 3-node
    cluster at 39092 once lost a node to "Address already in use" while its peers
    connected to each other).
    """
    for base in range(start, start + 20_000, 1000):
        ports = [base + i for i in range(nodes)] + [base + 100 + i for i in range(nodes)]
        if all(port_free(port) for port in ports):
            return base
    raise RuntimeError(f"no free ports from {start}")


def _create_topic(bootstrap: str, topic: str, replicas: int, config: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=4, replication_factor=replicas, config=config)],
        operation_timeout=30,
    )
    for future in futures.values():
        future.result(timeout=60)


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 60_000}
    )
    for value in values:
        producer.produce(topic, value=value, key=value, on_delivery=on_delivery)
    assert producer.flush(90) == 0, "messages still unacknowledged"
    assert errors == []


def _consume(bootstrap: str, topic: str, count: int, group: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            value = message.value()
            assert isinstance(value, bytes)
            values.append(value)
    finally:
        consumer.close()
    return values


# Class-scoped: each server group is stopped when its class is done, before the
# next group starts.


@pytest.fixture(scope="class")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = RedisServer(tmp_path_factory.mktemp("redis"), port=port)
    try:
        server.up()
        yield server
    finally:
        server.down()


@pytest.fixture(scope="class")
def kafka1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(
        tmp_path_factory.mktemp("kafka1"), brokers=1, base_port=_free_base_port(29092, 1)
    )
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="class")
def kafka3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(
        tmp_path_factory.mktemp("kafka3"), brokers=3, base_port=_free_base_port(24092, 3)
    )
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def test_deploy_dir_holds_the_scripts() -> None:
    assert (deploy_dir() / "kafka" / "kafka.sh").is_file()
    assert (deploy_dir() / "redis" / "redis.sh").is_file()


def test_an_empty_dir_is_unhealthy_and_down_is_harmless(tmp_path: Path) -> None:
    # Fixtures call down() in `finally`, also after an up() that never got going.
    cluster = KafkaCluster(tmp_path / "kafka")
    assert not cluster.healthy()
    cluster.down()
    with pytest.raises(ServiceError, match="no such directory"):
        cluster.kill_broker(0)
    server = RedisServer(tmp_path / "redis")
    assert not server.healthy()
    server.down()


class TestRedis:
    def test_answers_ping(self, redis_server: RedisServer) -> None:
        client = redis.Redis.from_url(redis_server.url)
        try:
            assert client.ping() is True
            client.set("lakebed", "1")
            assert client.get("lakebed") == b"1"
        finally:
            client.close()
        assert redis_server.healthy()

    def test_up_again_is_a_no_op(self, redis_server: RedisServer) -> None:
        pid = (redis_server.home / "redis.pid").read_text()
        redis_server.up()
        assert (redis_server.home / "redis.pid").read_text() == pid

    def test_down_leaves_it_unhealthy(self, redis_server: RedisServer) -> None:
        redis_server.down()
        assert not redis_server.healthy()
        assert not (redis_server.home / "redis.pid").exists()


class TestKafkaSingleNode:
    def test_produce_and_consume(self, kafka1: KafkaCluster) -> None:
        assert kafka1.healthy()
        _create_topic(kafka1.bootstrap_servers, "single", 1, {})
        _produce(kafka1.bootstrap_servers, "single", [b"hello"])
        assert _consume(kafka1.bootstrap_servers, "single", 1, "g1") == [b"hello"]

    def test_up_again_is_a_no_op(self, kafka1: KafkaCluster) -> None:
        pid = (kafka1.home / "node-0" / "pid").read_text()
        kafka1.up()
        assert (kafka1.home / "node-0" / "pid").read_text() == pid

    def test_restart_keeps_the_data(self, kafka1: KafkaCluster) -> None:
        kafka1.down()
        assert not kafka1.healthy()
        kafka1.up()
        assert _consume(kafka1.bootstrap_servers, "single", 1, "g2") == [b"hello"]


class TestKafkaThreeNodes:
    def test_survives_a_crashed_broker(self, kafka3: KafkaCluster) -> None:
        bootstrap = kafka3.bootstrap_servers
        assert bootstrap.count(",") == 2
        assert kafka3.healthy()
        _create_topic(bootstrap, "replicated", 3, {"min.insync.replicas": "2"})
        before = [b"before-%d" % i for i in range(20)]
        _produce(bootstrap, "replicated", before)

        kafka3.kill_broker(2)
        assert not kafka3.healthy()
        # acks=all with two of three replicas in sync still meets min.insync.replicas.
        after = [b"after-%d" % i for i in range(20)]
        _produce(bootstrap, "replicated", after)
        consumed = _consume(bootstrap, "replicated", 40, "g3")
        assert sorted(consumed) == sorted(before + after)

        kafka3.start_broker(2)
        assert kafka3.healthy()
