"""Scored events land in bronze once, even when the sink dies between its two commits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from lakebed.config import Settings
from lakebed.lake.catalog import open_catalog
from lakebed.stream.memory_log import MemoryConsumer, MemoryLog
from lakebed.stream.sink import TABLE, LakeSink
from lakebed.stream.topics import SCORED, TOPICS


class CrashingLog(MemoryLog):
    """Its consumers die once at their first offset commit: after the Iceberg commit."""

    crashed = False

    def consumer(
        self, group: str, topics: Sequence[str], instance: str | None = None
    ) -> MemoryConsumer:
        consumer = super().consumer(group, topics, instance)
        log = self

        def commit() -> None:
            if not log.crashed:
                log.crashed = True
                raise RuntimeError("killed between the two commits")
            MemoryConsumer.commit(consumer)

        consumer.commit = commit  # type: ignore[method-assign]
        return consumer


def test_each_scored_event_lands_once(tmp_path: Path) -> None:
    settings = Settings(data_home=tmp_path)
    catalog = open_catalog(settings)
    log = CrashingLog()
    log.create_topics(TOPICS)
    with log.producer() as producer:
        for i in range(500):
            producer.send(SCORED, f"card{i % 7}".encode(), f'{{"transaction_id": "t{i}"}}'.encode())
    with pytest.raises(RuntimeError, match="between the two commits"):
        LakeSink(log, catalog, batch_records=200).run(idle_exit_s=0.2)
    stats = LakeSink(log, catalog, batch_records=200).run(idle_exit_s=0.2)
    assert stats.skipped > 0  # the first batch came again and was recognised
    rows = catalog.load_table(TABLE).scan().to_arrow()
    payloads = rows.column("payload").to_pylist()
    assert len(payloads) == len(set(payloads)) == 500
