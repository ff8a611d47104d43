"""The Kafka event log (cluster profile), through confluent-kafka (librdkafka).

Exactly-once: a transactional producer sends the batch's outputs and the consumer's
offsets in one Kafka transaction; consumers read ``read_committed``, so an aborted or
unfinished batch (a worker killed mid-batch) is never seen, and its input is read again.
A restarted worker keeps its ``transactional.id`` (the previous incarnation is fenced and
its open transaction aborted at once) and its static group membership (it gets its
partitions back without waiting for the session to time out).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka import (
    Consumer as KafkaConsumer,
)
from confluent_kafka import (
    Producer as KafkaProducer,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from lakebed.stream.log import Consumer, EventLog, LogError, Producer, Record
from lakebed.stream.topics import TopicSpec

TIMEOUT_S = 30.0
COMPACTED_CONFIG = {
    "cleanup.policy": "compact",
    # Small segments and a low dirty ratio: the pointer topic stays a handful of records.
    "segment.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1000",
}


class KafkaLog(EventLog):
    # A transaction costs a warm local broker 2-4 ms of CPU (its coordinator's log, the
    # markers, the offsets), whatever its size: a worker committing every batch of a quiet
    # stream (~5 ms each at 5k events/s) kept the broker ~0.9 of a core busy. Every 10 ms
    # at most, a worker's commits cost the broker a fraction of that, for at most 10 ms
    # more latency.
    commit_interval_ms = 10

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        self._cluster_id: str | None = None

    @property
    def log_id(self) -> str:
        if self._cluster_id is None:
            self._cluster_id = str(self._admin.list_topics(timeout=TIMEOUT_S).cluster_id)
        return f"kafka-{self._cluster_id}"

    def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        try:
            metadata = self._admin.list_topics(timeout=TIMEOUT_S)
        except KafkaException as error:
            raise LogError(f"Kafka at {self.bootstrap_servers} does not answer: {error}") from error
        existing = set(metadata.topics)
        brokers = len(metadata.brokers)
        replicas = min(3, brokers)
        wanted = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=replicas,
                config={
                    **(COMPACTED_CONFIG if spec.compacted else {}),
                    "min.insync.replicas": str(max(1, replicas - 1)),
                },
            )
            for spec in specs
            if spec.name not in existing
        ]
        if not wanted:
            return
        for name, future in self._admin.create_topics(wanted).items():
            try:
                future.result(TIMEOUT_S)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise LogError(f"cannot create topic {name}: {error}") from error

    def producer(self, transactional_id: str | None = None) -> KafkaLogProducer:
        return KafkaLogProducer(self.bootstrap_servers, transactional_id)

    def consumer(
        self, group: str, topics: Sequence[str], instance: str | None = None
    ) -> KafkaLogConsumer:
        return KafkaLogConsumer(self.bootstrap_servers, group, topics, instance)

    def close(self) -> None:
        """The admin client holds no connection that needs closing."""


class KafkaLogConsumer(Consumer):
    def __init__(
        self, bootstrap_servers: str, group: str, topics: Sequence[str], instance: str | None
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            # How long the broker holds a fetch while nothing new is there. New records
            # (and a transaction's commit, for read_committed) answer it at once, so a long
            # wait costs no latency, while 5 ms kept a broker busy: a read_committed reader
            # of 50-record transactions saw them 1.9 ms (p50) after the commit with the
            # broker at 85 % of a core, 1.2 ms at 35 % with 500 (measured).
            "fetch.wait.max.ms": 500,
            "enable.partition.eof": False,
        }
        if instance is not None:
            config["group.instance.id"] = instance
        self._consumer = KafkaConsumer(config)
        self._consumer.subscribe(list(topics))
        self._closed = False

    @property
    def native(self) -> KafkaConsumer:
        return self._consumer

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        # What librdkafka has fetched already, without waiting; only when that is nothing,
        # wait for one message and take what came with it. (``consume(n, timeout)`` would
        # hold every record until ``n`` arrived or the timeout passed.)
        messages = self._consumer.consume(max_records, 0)
        if not messages:
            first = self._consumer.poll(timeout_s)
            if first is None:
                return []
            more = self._consumer.consume(max_records - 1, 0) if max_records > 1 else []
            messages = [first, *more]
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise LogError(f"consume failed: {error}")
            records.append(_record(message))
        return records

    def positions(self) -> list[TopicPartition]:
        assigned = self._consumer.assignment()
        return [p for p in self._consumer.position(assigned) if p.offset >= 0]

    def commit(self) -> None:
        positions = self.positions()
        if positions:
            self._consumer.commit(offsets=positions, asynchronous=False)

    def rewind(self) -> None:
        assigned = self._consumer.assignment()
        if not assigned:
            return
        for partition in self._consumer.committed(assigned, timeout=TIMEOUT_S):
            offset = partition.offset if partition.offset >= 0 else OFFSET_BEGINNING
            self._consumer.seek(TopicPartition(partition.topic, partition.partition, offset))

    def lag(self) -> int:
        total = 0
        for partition in self.positions():
            _, high = self._consumer.get_watermark_offsets(
                partition, timeout=TIMEOUT_S, cached=False
            ) or (0, 0)
            total += max(0, high - partition.offset)
        return total

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()


def _record(message: Message) -> Record:
    _, timestamp = message.timestamp()
    return Record(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        timestamp_ms=timestamp,
    )


def producer_config(bootstrap_servers: str, transactional_id: str | None) -> dict[str, Any]:
    """librdkafka's settings for the log's producers (the benchmark's load uses them too)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        # A plain producer waits 5 ms to fill a request: at 5k records/s, 1 ms meant
        # requests of ~5 records and the broker busy 89 % of a core, 5 ms 32 %. A
        # transactional one (the engine) sends at once: its batch is in hand, and with
        # 5 ms a commit took longer (p50 4.9 vs 3.0 ms) and the broker did more.
        "linger.ms": 1 if transactional_id is not None else 5,
        "compression.type": "lz4",
        # A transaction's offsets are refused (CONCURRENT_TRANSACTIONS) until the
        # coordinator has finished the previous commit, a few ms; at the default 100 ms
        # backoff a batch's commit took 11 ms at the median and 117 at p90 on a local
        # broker, with 2-10 ms 4 and 10 (measured, batches of 100).
        "retry.backoff.ms": 2,
        "retry.backoff.max.ms": 10,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = 10_000
    return config


class KafkaLogProducer(Producer):
    def __init__(self, bootstrap_servers: str, transactional_id: str | None) -> None:
        config = producer_config(bootstrap_servers, transactional_id)
        self._producer = KafkaProducer(config)
        self._errors: list[str] = []
        if transactional_id is not None:
            self._producer.init_transactions(TIMEOUT_S)

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"on_delivery": self._delivered}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        self._produce(topic, key, value, kwargs)
        self._producer.poll(0)

    def send_all(self, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
        """As ``send`` for each, with one look at delivery reports for the lot."""
        kwargs: dict[str, Any] = {"on_delivery": self._delivered}
        for topic, key, value in records:
            self._produce(topic, key, value, kwargs)
        self._producer.poll(0)

    def _produce(
        self, topic: str, key: bytes | None, value: bytes | None, kwargs: dict[str, Any]
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, **kwargs)
                return
            except BufferError:
                self._producer.poll(0.05)  # the local queue is full: let it drain

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(f"{message.topic()}: {error}")

    def flush(self) -> None:
        left = self._producer.flush(TIMEOUT_S)
        if left:
            raise LogError(f"{left} records not acknowledged within {TIMEOUT_S:.0f} s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise LogError(f"delivery failed: {errors[0]} ({len(errors)} records)")

    def begin(self) -> None:
        self._producer.begin_transaction()

    def commit(self, consumer: Consumer | None = None) -> None:
        try:
            if isinstance(consumer, KafkaLogConsumer):
                positions = consumer.positions()
                if positions:
                    self._producer.send_offsets_to_transaction(
                        positions, consumer.native.consumer_group_metadata(), TIMEOUT_S
                    )
            self._producer.commit_transaction(TIMEOUT_S)
        except KafkaException as error:
            raise LogError(f"transaction commit failed: {error}") from error

    def abort(self) -> None:
        self._producer.abort_transaction(TIMEOUT_S)

    def close(self) -> None:
        self._producer.flush(TIMEOUT_S)
