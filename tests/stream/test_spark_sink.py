"""Stream → lake on the cluster profile, for real: Kafka, Spark Structured Streaming, the
Iceberg JDBC catalog on PostgreSQL and the S3 warehouse on SeaweedFS.

The promise under test: every committed scored event lands in ``bronze.scored_events``
once, with its partition, offset and payload, whatever happens to the job: a catch-up run
after another, a micro-batch run again, a lost checkpoint, a SIGKILL mid-way. Each test
lands a topic of its own into the one table, and reads it back with pyiceberg.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from pyiceberg.catalog import Catalog
from typer.testing import CliRunner

from lakebed.cli import app
from lakebed.config import Settings
from lakebed.lake.catalog import open_catalog
from lakebed.lake.spark import spark_session
from lakebed.services import KafkaCluster, PostgresServer, SeaweedfsServer
from lakebed.stream.kafka_log import KafkaLog
from lakebed.stream.sink import SCHEMA, TABLE, landed_offsets, scored_table
from lakebed.stream.spark_sink import checkpoint_dir, run
from lakebed.stream.topics import TopicSpec
from tests.cluster import cluster_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LAKEBED = str(Path(sys.executable).with_name("lakebed"))
PARTITIONS = 4

Landed = dict[tuple[int, int], str]


@dataclass(frozen=True)
class Lake:
    settings: Settings
    env: dict[str, str]
    catalog: Catalog
    log: KafkaLog


@pytest.fixture(scope="module")
def lake(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    seaweedfs: SeaweedfsServer,
    kafka: KafkaCluster,
) -> Iterator[Lake]:
    home = tmp_path_factory.mktemp("spark-sink")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("LAKEBED_STREAM__KAFKA_BOOTSTRAP", kafka.bootstrap_servers)
        settings = cluster_settings(monkeypatch, home, postgres, seaweedfs)
        log = KafkaLog(kafka.bootstrap_servers)
        try:
            yield Lake(settings, dict(os.environ), open_catalog(settings), log)
        finally:
            log.close()


@pytest.fixture(scope="module")
def spark(lake: Lake) -> Iterator[SparkSession]:
    session = spark_session(lake.settings)
    yield session
    session.stop()


def new_topic(lake: Lake) -> str:
    topic = f"scored.test-{uuid.uuid4().hex[:8]}"
    lake.log.create_topics([TopicSpec(topic, partitions=PARTITIONS)])
    return topic


def produce(lake: Lake, topic: str, first: int, count: int, *, abort: bool = False) -> None:
    """Scored events ``t<first>`` .. keyed by card; in a transaction that aborts if asked."""
    producer = lake.log.producer(f"test-{uuid.uuid4().hex}" if abort else None)
    if abort:
        producer.begin()
    for i in range(first, first + count):
        value = orjson.dumps({"transaction_id": f"t{i}", "probability": i / 10_000})
        producer.send(topic, f"card{i % 37}".encode(), value)
    producer.flush()
    if abort:
        producer.abort()
    producer.close()


def committed(lake: Lake, topic: str) -> Landed:
    """What a read_committed consumer finds in the topic: the events that must land.

    Partitions are assigned, not subscribed to: no group to join, so nothing to wait for.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": lake.settings.stream.kafka_bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions}
        consumer.assign(partitions)
        found: Landed = {}
        deadline = time.monotonic() + 30
        while any(p.offset < ends[p.partition] for p in consumer.position(partitions)):
            assert time.monotonic() < deadline, "the topic could not be read to its end"
            for message in consumer.consume(10_000, 0.5):
                assert message.error() is None, message.error()
                value = (message.value() or b"").decode()
                found[(message.partition() or 0, message.offset() or 0)] = value
        return found
    finally:
        consumer.close()


def rows(lake: Lake, topic: str) -> pa.Table:
    return lake.catalog.load_table(TABLE).scan(row_filter=f"_topic == '{topic}'").to_arrow()


def landed(lake: Lake, topic: str) -> Landed:
    """The topic's rows in bronze; a (partition, offset) found twice fails at once."""
    table = rows(lake, topic)
    keys = list(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys)), "an event landed twice"
    return dict(zip(keys, table["payload"].to_pylist(), strict=True))


def test_catch_up_runs_land_each_committed_event_once(
    lake: Lake, spark: SparkSession, tmp_path: Path
) -> None:
    topic = new_topic(lake)
    produce(lake, topic, 0, 400)
    produce(lake, topic, 10_000, 50, abort=True)  # a worker killed mid-transaction
    first = run(lake.settings, available_now=True, topic=topic, spark=spark)
    truth = committed(lake, topic)
    assert len(truth) == 400
    assert landed(lake, topic) == truth
    assert (first.records, first.skipped) == (400, 0)

    produce(lake, topic, 400, 300)
    second = run(lake.settings, available_now=True, topic=topic, spark=spark)
    truth = committed(lake, topic)
    assert len(truth) == 700
    assert landed(lake, topic) == truth
    assert (second.records, second.skipped) == (300, 0)

    table = lake.catalog.load_table(TABLE)
    # The very table the local sink creates: the two profiles' tables are interchangeable.
    local = scored_table(open_catalog(Settings(data_home=tmp_path)))
    assert table.schema() == local.schema()
    assert table.schema().as_arrow().names == SCHEMA.names
    assert table.location().startswith("s3://lakebed/warehouse/")
    # Its offsets as the local sink records them: next offset per log/topic/partition.
    ours = {k: v for k, v in landed_offsets(table).items() if f"/{topic}/" in k}
    expected = {p: max(o for q, o in truth if q == p) + 1 for p in {p for p, _ in truth}}
    assert ours == {f"{lake.log.log_id}/{topic}/{p}": n for p, n in expected.items()}
    written = rows(lake, topic)
    assert len(set(written["_batch_id"].to_pylist())) == first.commits + second.commits
    assert pc.all(pc.greater_equal(written["_ingested_at"], written["_produced_at"])).as_py()


def test_a_batch_run_again_or_a_lost_checkpoint_lands_nothing_twice(
    lake: Lake, spark: SparkSession
) -> None:
    topic = new_topic(lake)
    produce(lake, topic, 0, 300)
    first = run(
        lake.settings, available_now=True, topic=topic, max_offsets_per_trigger=100, spark=spark
    )
    assert first.commits >= 3
    assert len(landed(lake, topic)) == 300

    # A crash after the Iceberg commit, before Spark's commit log: the last batch runs again.
    commits = checkpoint_dir(lake.settings, topic) / "commits"
    last = max((p for p in commits.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    last.unlink()
    (commits / f".{last.name}.crc").unlink(missing_ok=True)  # its checksum, as never written
    again = run(lake.settings, available_now=True, topic=topic, spark=spark)
    assert again.batches == 1
    assert again.skipped > 0
    assert again.records == 0
    assert len(landed(lake, topic)) == 300

    # No checkpoint at all: a new query starts at the offsets the table holds.
    shutil.rmtree(checkpoint_dir(lake.settings, topic))
    produce(lake, topic, 300, 50)
    fresh = run(lake.settings, available_now=True, topic=topic, spark=spark)
    assert (fresh.records, fresh.skipped) == (50, 0)
    assert landed(lake, topic) == committed(lake, topic)


def start_job(lake: Lake, topic: str, output: IO[bytes], *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [LAKEBED, "stream-to-lake", "--topic", topic, "--interval", "0.5", *options],
        env=lake.env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the JVM dies with it
    )


def landed_count(lake: Lake, topic: str) -> int:
    """Events landed by the table's offsets (metadata only: cheap to poll). Offsets of a
    topic without transactions run from 0 without gaps, so the next offsets add up to it."""
    offsets = landed_offsets(lake.catalog.load_table(TABLE))
    return sum(n for key, n in offsets.items() if f"/{topic}/" in key)


def wait_until(what: str, done: Callable[[], bool], job: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while not done():
        assert job.poll() is None, f"the job exited ({job.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within 180 s"
        time.sleep(0.5)


def test_a_killed_job_resumes_without_loss_or_duplicates(lake: Lake, tmp_path: Path) -> None:
    topic = new_topic(lake)
    produce(lake, topic, 0, 600)
    with (tmp_path / "killed.log").open("wb") as output:
        job = start_job(lake, topic, output, "--max-offsets", "50")
        try:
            wait_until("first commit", lambda: landed_count(lake, topic) > 0, job)
        finally:
            os.killpg(job.pid, signal.SIGKILL)  # the Python driver and its JVM, at once
            job.wait()
    before = len(landed(lake, topic))
    assert 0 < before < 600, "the job was to be killed mid-way"

    produce(lake, topic, 600, 100)
    with (tmp_path / "resumed.log").open("wb") as output:
        job = start_job(lake, topic, output)
        try:
            wait_until("all 700", lambda: landed_count(lake, topic) >= 700, job)
            job.send_signal(signal.SIGTERM)  # as a supervisor stops it: the driver only
            code = job.wait(60)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
    said = (tmp_path / "resumed.log").read_text(errors="replace")
    assert code == 0, said[-3000:]
    assert "stopped: " in said
    truth = committed(lake, topic)
    assert len(truth) == 700
    assert landed(lake, topic) == truth


def test_the_local_profile_points_to_lakebed_stream(isolated: None) -> None:
    result = CliRunner().invoke(app, ["stream-to-lake"])
    assert result.exit_code == 2
    assert "lakebed stream" in result.output
