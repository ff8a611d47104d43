"""Stream → lake: scored events land in bronze (Iceberg) in micro-batches, exactly once.

Each micro-batch is one Iceberg commit that also records, in its snapshot summary, the
next offset of every partition it covers. The log's committed offsets follow; if the sink
dies between the two commits, the next run reads some records again and skips every one
below the offsets the table already holds. So a record lands once, whatever the crash.

This sink runs inside ``lakebed stream`` (after a replay). On the cluster profile,
``lakebed stream-to-lake`` does the same job from Kafka with Spark Structured Streaming
(:mod:`lakebed.stream.spark_sink`): same table, same schema, same offsets in the snapshot
summary, so either can take over where the other stopped.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from lakebed.stream.log import EventLog, Record
from lakebed.stream.topics import SCORED

TABLE = "bronze.scored_events"
OFFSETS_PROPERTY = "lakebed.stream.offsets"
SCHEMA = pa.schema(
    [
        pa.field("payload", pa.string(), nullable=False),
        pa.field("_topic", pa.string(), nullable=False),
        pa.field("_partition", pa.int32(), nullable=False),
        pa.field("_offset", pa.int64(), nullable=False),
        pa.field("_produced_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("_batch_id", pa.string(), nullable=False),
    ]
)


@dataclass
class SinkStats:
    records: int = 0
    skipped: int = 0
    commits: int = 0


def scored_table(catalog: Catalog) -> Table:
    try:
        return catalog.load_table(TABLE)
    except NoSuchTableError:
        return catalog.create_table(TABLE, schema=SCHEMA)


def landed_offsets(table: Table) -> dict[str, int]:
    """``log/topic/partition`` -> the next offset to land, as of the last commit."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return {}
    recorded = snapshot.summary.additional_properties.get(OFFSETS_PROPERTY)
    return {key: int(value) for key, value in json.loads(recorded).items()} if recorded else {}


class LakeSink:
    def __init__(
        self,
        log: EventLog,
        catalog: Catalog,
        group: str = "lakebed-lake-sink",
        batch_records: int = 20_000,
        max_wait_s: float = 2.0,
    ) -> None:
        self.log = log
        self.table = scored_table(catalog)
        self.group = group
        self.batch_records = batch_records
        self.max_wait_s = max_wait_s
        self.stats = SinkStats()

    def run(
        self, stop: threading.Event | None = None, idle_exit_s: float | None = None
    ) -> SinkStats:
        stop = stop or threading.Event()
        idle_since = time.monotonic()
        with self.log.consumer(self.group, [SCORED]) as consumer:
            while not stop.is_set():
                records: list[Record] = []
                deadline = time.monotonic() + self.max_wait_s
                while len(records) < self.batch_records and time.monotonic() < deadline:
                    got = consumer.poll(self.batch_records - len(records), 0.2)
                    records += got
                    if not got and records:
                        break
                if not records:
                    if idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                        break
                    continue
                idle_since = time.monotonic()
                self._land(records)
                consumer.commit()
        return self.stats

    def _slot(self, record: Record) -> str:
        """Offsets mean something only within one log: the key names the log too."""
        return f"{self.log.log_id}/{record.topic}/{record.partition}"

    def _land(self, records: list[Record]) -> None:
        self.table.refresh()
        landed = landed_offsets(self.table)
        fresh = [r for r in records if r.offset >= landed.get(self._slot(r), 0)]
        self.stats.skipped += len(records) - len(fresh)
        if not fresh:
            return
        offsets = dict(landed)
        for record in fresh:
            key = self._slot(record)
            offsets[key] = max(offsets.get(key, 0), record.offset + 1)
        now = datetime.now(UTC)
        batch = uuid.uuid4().hex
        rows = pa.table(
            {
                "payload": [(r.value or b"").decode("utf-8", "replace") for r in fresh],
                "_topic": [r.topic for r in fresh],
                "_partition": pa.array([r.partition for r in fresh], pa.int32()),
                "_offset": pa.array([r.offset for r in fresh], pa.int64()),
                "_produced_at": pa.array(
                    [r.timestamp_ms * 1000 for r in fresh], pa.timestamp("us", tz="UTC")
                ),
                "_ingested_at": pa.array([now] * len(fresh), pa.timestamp("us", tz="UTC")),
                "_batch_id": [batch] * len(fresh),
            },
            schema=SCHEMA,
        )
        self.table.append(rows, snapshot_properties={OFFSETS_PROPERTY: json.dumps(offsets)})
        self.stats.records += len(fresh)
        self.stats.commits += 1
