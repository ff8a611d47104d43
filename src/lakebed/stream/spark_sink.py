"""Stream → lake on the cluster profile: Spark Structured Streaming lands Kafka's scored
events in ``bronze.scored_events`` (Iceberg), exactly once.

The table is the local sink's (:mod:`lakebed.stream.sink`): created by the same code with
the same schema, and every commit records the same thing in its snapshot summary, the next
offset of each ``kafka-<cluster id>/<topic>/<partition>`` landed so far. So the table, not
Spark's checkpoint, knows what has landed, and either sink can take over from the other.

Exactly once, in three parts:

- Spark's checkpoint fixes each micro-batch's offset range before the batch runs (its
  offset log), so a batch run again after a crash reads the very same records.
- Each micro-batch is one Iceberg append that carries the new offsets in its summary. The
  JDBC catalog swaps the table's metadata pointer with a compare-and-set in PostgreSQL:
  rows and offsets land together or not at all.
- Before it writes, a batch drops every record below the offsets the table holds. A batch
  run again after a crash between the Iceberg commit and Spark's commit log lands nothing
  twice, and a lost checkpoint starts a new query at the table's offsets, not at the
  topic's beginning.

Kafka is read ``read_committed``: the engine publishes scores in Kafka transactions, and a
score of an aborted one (a worker killed mid-batch) was never decided. ``failOnDataLoss``
stays on: offsets gone before they landed (retention ran out, the topic was recreated)
leave a hole in the record of every decision, which must stop the job, not pass silently.

One job per topic at a time: two would both pass the filter before either commits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka.admin import AdminClient

from lakebed.config import Settings
from lakebed.lake.catalog import CATALOG_NAME, open_catalog
from lakebed.lake.spark import spark_session
from lakebed.stream.kafka_log import TIMEOUT_S, KafkaLog
from lakebed.stream.sink import OFFSETS_PROPERTY, TABLE, landed_offsets, scored_table
from lakebed.stream.topics import SCORED

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

DEFAULT_INTERVAL_S = 10.0
# How often the driver looks for a stop request while the query runs.
_POLL_S = 1
# Spark 4.1's Kafka source fails its progress report after the first micro-batch of a query
# restarted with a batch in hand (one a crash interrupted): SPARK-55271,
# github.com/apache/spark/issues/55236. The batch itself has committed by then, so starting
# the query once more goes on where it should.
_SPARK_55271 = '"scala.Option.get()" is null'


def checkpoint_dir(settings: Settings, topic: str = SCORED) -> Path:
    """Spark's checkpoint of the job landing ``topic``, in the data home.

    A local folder, not S3: Spark needs no extra jars (Hadoop's S3A) for it, and its
    metadata logs get atomic renames. Losing it costs a re-plan, not a duplicate: the
    table's offsets say where to start again.
    """
    return settings.data_home.resolve() / "stream" / "spark-checkpoints" / "scored_events" / topic


@dataclass(frozen=True)
class BatchReport:
    batch_id: str
    read: int
    landed: int

    @property
    def skipped(self) -> int:
        """Records of the batch that the table already held (a batch run again)."""
        return self.read - self.landed


@dataclass
class SparkSinkStats:
    batches: int = 0
    records: int = 0
    skipped: int = 0
    commits: int = 0
    stopped: bool = False


class SinkStoppingError(RuntimeError):
    """A micro-batch began after a stop was asked for: it is refused, so runs again later."""


def run(
    settings: Settings,
    *,
    available_now: bool,
    topic: str = SCORED,
    interval_s: float = DEFAULT_INTERVAL_S,
    max_offsets_per_trigger: int | None = None,
    checkpoint: Path | None = None,
    spark: SparkSession | None = None,
    stop: threading.Event | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> SparkSinkStats:
    """Land ``topic`` in bronze until it is drained (``available_now``) or ``stop`` is set.

    ``available_now`` is a catch-up job: every record the topic holds when it starts, in
    micro-batches of at most ``max_offsets_per_trigger`` records, then it returns. Otherwise
    a micro-batch starts every ``interval_s`` seconds until ``stop`` is set; the batch in
    hand commits first. A session passed in stays open; one started here is stopped.
    """
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, not {interval_s}")
    if max_offsets_per_trigger is not None and max_offsets_per_trigger <= 0:
        raise ValueError(f"max_offsets_per_trigger must be positive, not {max_offsets_per_trigger}")
    bootstrap = settings.stream.kafka_bootstrap
    table = scored_table(open_catalog(settings))
    sink = _Sink(table, KafkaLog(bootstrap).log_id, topic, on_batch)
    session = spark or spark_session(settings)  # checks that pyspark is there and fits
    from pyspark.errors import StreamingQueryException

    stop = stop or threading.Event()

    try:
        reader = (
            session.readStream.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topic)
            .option("startingOffsets", sink.starting_offsets(_partitions(bootstrap, topic)))
            .option("kafka.isolation.level", "read_committed")
            .option("failOnDataLoss", "true")
            .option("includeHeaders", "false")
        )
        if max_offsets_per_trigger is not None:
            reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
        writer = (
            reader.load()
            .writeStream.queryName(f"lakebed-bronze-{topic}")
            .option("checkpointLocation", str(checkpoint or checkpoint_dir(settings, topic)))
            .foreachBatch(sink.land)
        )
        if available_now:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=f"{round(interval_s * 1000)} milliseconds")
        for attempt in range(2):
            query = writer.start()
            sink.started(query.id)
            try:
                _await(query, sink, stop)
                break
            except StreamingQueryException as error:
                if attempt or _SPARK_55271 not in str(error):
                    raise
                # The batch did commit (Spark's commit log included): start again once.
    finally:
        if spark is None:
            session.stop()
    return sink.stats


def _partitions(bootstrap: str, topic: str) -> list[int]:
    """The topic's partitions now (none if it does not exist yet)."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=TIMEOUT_S)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return []
    return sorted(found.partitions)


def _await(query: StreamingQuery, sink: _Sink, stop: threading.Event) -> None:
    from pyspark.errors import StreamingQueryException

    try:
        while query.isActive and not stop.is_set():
            query.awaitTermination(_POLL_S)
    except StreamingQueryException:
        if not sink.stopping:
            raise
    if query.isActive:
        sink.stop()
        query.stop()
    sink.stats.stopped = stop.is_set()
    error = query.exception()
    if error is not None and not sink.stopping:
        raise error


class _Sink:
    """The foreachBatch function, and what it needs across batches."""

    def __init__(
        self,
        table: Table,
        log_id: str,
        topic: str,
        on_batch: Callable[[BatchReport], None] | None,
    ) -> None:
        self.table = table
        self.topic = topic
        self.prefix = f"{log_id}/{topic}/"
        self.on_batch = on_batch
        self.stats = SparkSinkStats()
        self.stopping = False
        self._query_id = ""
        self._ready = threading.Event()
        # Held while a batch writes: a stop waits for the commit in hand.
        self._writing = threading.Lock()

    def started(self, query_id: str) -> None:
        self._query_id = query_id
        self._ready.set()

    def stop(self) -> None:
        """Refuse batches from now on; return once the batch in hand (if any) committed."""
        self.stopping = True
        with self._writing:
            pass

    def landed(self) -> dict[int, int]:
        """Partition -> the next offset to land, as the table's last commit says."""
        self.table.refresh()
        return {
            int(key.removeprefix(self.prefix)): offset
            for key, offset in landed_offsets(self.table).items()
            if key.startswith(self.prefix)
        }

    def starting_offsets(self, partitions: list[int]) -> str:
        """Where a new query starts: after what the table holds (earliest elsewhere).

        Spark wants every partition named once offsets are given, and uses this only
        when the checkpoint is new: a running query's own offsets come first.
        """
        landed = self.landed()
        if not partitions or not landed:
            return "earliest"
        return json.dumps({self.topic: {str(p): landed.get(p, -2) for p in partitions}})

    def land(self, batch: DataFrame, epoch_id: int) -> None:
        from pyspark.sql import functions as fn

        self._ready.wait()
        with self._writing:
            if self.stopping:
                raise SinkStoppingError(
                    f"stopping: micro-batch {epoch_id} is left for the next run"
                )
            landed = self.landed()
            batch_id = f"spark-{self._query_id}-{epoch_id}"
            fresh = _fresh(landed)
            rows = batch.select(
                # A tombstone (no value) lands as "", as in the local sink; invalid UTF-8 is
                # replaced, not an error.
                fn.coalesce(fn.make_valid_utf8(fn.col("value").cast("string")), fn.lit("")).alias(
                    "payload"
                ),
                fn.col("topic").alias("_topic"),
                fn.col("partition").alias("_partition"),
                fn.col("offset").alias("_offset"),
                fn.col("timestamp").alias("_produced_at"),
                fn.lit(datetime.now(UTC)).alias("_ingested_at"),
                fn.lit(batch_id).alias("_batch_id"),
            ).persist()
            try:
                counts = (
                    rows.groupBy("_partition")
                    .agg(
                        fn.count(fn.lit(1)).alias("read"),
                        fn.count(fn.when(fresh, 1)).alias("fresh"),
                        fn.max(fn.when(fresh, fn.col("_offset"))).alias("last"),
                    )
                    .collect()
                )
                read = sum(int(row["read"]) for row in counts)
                new = sum(int(row["fresh"]) for row in counts)
                if new:
                    offsets = landed_offsets(self.table)
                    for row in counts:
                        if row["last"] is not None:
                            offsets[f"{self.prefix}{row['_partition']}"] = int(row["last"]) + 1
                    (
                        rows.where(fresh)
                        .writeTo(f"{CATALOG_NAME}.{TABLE}")
                        .option(f"snapshot-property.{OFFSETS_PROPERTY}", json.dumps(offsets))
                        .append()
                    )
                    self.stats.commits += 1
            finally:
                rows.unpersist()
            self.stats.batches += 1
            self.stats.records += new
            self.stats.skipped += read - new
        if self.on_batch is not None:
            self.on_batch(BatchReport(batch_id, read, new))


def _fresh(landed: dict[int, int]) -> Column:
    """True for a record at or past its partition's landed offset."""
    from pyspark.sql import functions as fn

    fresh = fn.lit(True)
    for partition, offset in landed.items():
        fresh = fresh & ~((fn.col("_partition") == partition) & (fn.col("_offset") < offset))
    return fresh
