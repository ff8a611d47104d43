"""Replaying the world's last days through the engine: the demo and the benchmark.

The online store is first warmed from gold (the days before the replay, as far back as the
longest window reaches): what a real deployment does once when it starts, so features are
complete from the first event. Then a producer thread sends the raw feed's lines — dirty
ones included, which end as dead letters — at an offered rate, while the engine scores
them. Latency is measured from the moment a transaction was produced to the commit that
published its score (and its alert).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import polars as pl
from pyiceberg.catalog import Catalog

from lakebed.config import Settings
from lakebed.stream.activity import Activity
from lakebed.stream.engine import EngineStats, ModelLoader, StreamEngine
from lakebed.stream.latency import Latencies
from lakebed.stream.log import EventLog
from lakebed.stream.sink import LakeSink
from lakebed.stream.store import RETENTION_DAYS, Chargebacks, FeatureStore, Transactions
from lakebed.stream.topics import ALERTS, CHARGEBACKS, TOPICS, TRANSACTIONS
from lakebed.world.feed import chargebacks_file, transactions_file

WARM_BATCH = 100_000
Message = tuple[str, bytes | None, bytes]  # topic, key, value


@dataclass(frozen=True)
class ReplayReport:
    days: tuple[date, date]
    offered_rate: float
    transactions: int
    chargebacks: int
    dead_letters: int
    alerts: int
    alert_frauds: int
    frauds: int
    elapsed_s: float
    busy_s: float
    latencies: Latencies
    model_version: str
    landed: int

    @property
    def throughput(self) -> float:
        """Events processed per second of wall time."""
        return self.transactions / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def capacity(self) -> float:
        """Events per second of the engine's busy time, at the batch sizes this load gave:
        batches are whatever has arrived, so a light load makes small batches, each with
        its fixed cost, and a backlog makes large ones (the benchmark's capacity)."""
        return self.transactions / self.busy_s if self.busy_s else 0.0

    @property
    def precision(self) -> float:
        return self.alert_frauds / self.alerts if self.alerts else float("nan")

    @property
    def recall(self) -> float:
        return self.alert_frauds / self.frauds if self.frauds else float("nan")


def warm_up(
    store: FeatureStore, catalog: Catalog, before: datetime, days: int = RETENTION_DAYS
) -> int:
    """Load gold's transactions of the ``days`` before ``before`` (by default all that
    any window reaches) and the chargebacks reported by then into ``store``; returns the
    transactions loaded."""
    since = before - timedelta(days=days)
    table = catalog.load_table("gold.fct_transactions")
    frame = pl.from_arrow(
        table.scan(
            row_filter=f"event_date >= '{since.date()}' and event_date <= '{before.date()}'",
            selected_fields=(
                "transaction_id",
                "event_time",
                "customer_id",
                "terminal_id",
                "amount",
                "is_fraud",
                "fraud_reported_at",
            ),
        ).to_arrow()
    )
    assert isinstance(frame, pl.DataFrame)
    naive = before.astimezone(UTC).replace(tzinfo=None)
    frame = frame.filter(
        (pl.col("event_time") < naive) & (pl.col("event_time") >= since.replace(tzinfo=None))
    ).sort("event_time")
    frauds = frame.filter(pl.col("is_fraud") & (pl.col("fraud_reported_at") < naive))
    store.record_chargebacks(
        Chargebacks(
            frauds["transaction_id"].to_list(),
            frauds["fraud_reported_at"].dt.epoch("s").to_numpy().astype(np.int64),
        )
    )
    for start in range(0, frame.height, WARM_BATCH):
        chunk = frame.slice(start, WARM_BATCH)
        store.update(
            Transactions.of(
                chunk["transaction_id"].to_list(),
                chunk["event_time"].dt.epoch("s").to_list(),
                chunk["customer_id"].to_list(),
                chunk["terminal_id"].to_list(),
                chunk["amount"].cast(pl.Float64).to_list(),
            )
        )
    return frame.height


def feed_messages(
    data_home: Path, first: date, last: date
) -> Iterator[tuple[str, bytes | None, bytes]]:
    """(topic, key, line) of the raw feed's files delivered from ``first`` to ``last``:
    transactions keyed by card (a line that does not parse goes unkeyed), then the day's
    chargebacks keyed by transaction."""
    day = first
    while day <= last:
        for topic, path, field in (
            (TRANSACTIONS, transactions_file(day), "card"),
            (CHARGEBACKS, chargebacks_file(day), "transaction_id"),
        ):
            file = data_home / path
            if not file.exists():
                continue
            with file.open("rb") as lines:
                for line in lines:
                    line = line.rstrip(b"\n")
                    yield topic, _key(line, field), line
        day += timedelta(days=1)


def _key(line: bytes, field: str) -> bytes | None:
    try:
        value = orjson.loads(line)[field]
        if field == "card":
            value = value["card_id"]
        return str(value).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def replay_days(settings: Settings) -> tuple[date, date]:
    """The last ``stream.replay_days`` days of the world's feed."""
    world = settings.world
    last = world.last_day
    first = max(world.start_date, last - timedelta(days=settings.stream.replay_days - 1))
    return first, last


def replay(
    settings: Settings,
    log: EventLog,
    store: FeatureStore,
    catalog: Catalog,
    load_model: ModelLoader,
    offered_rate: float = 20_000.0,
    on_progress: Callable[[int, int], None] | None = None,
    activity: Activity | None = None,
) -> ReplayReport:
    """Warm the store, then produce the last days at ``offered_rate`` events/s while the
    engine consumes them; returns what happened."""
    first, last = replay_days(settings)
    warm_up(store, catalog, datetime.combine(first, datetime.min.time(), UTC))
    log.create_topics(TOPICS)
    messages = list(feed_messages(settings.data_home, first, last))
    engine = StreamEngine(log, store, load_model, settings, activity=activity)
    produced = threading.Event()

    def produce() -> None:
        with log.producer() as producer:
            began = time.perf_counter()
            for sent, (topic, key, value) in enumerate(messages, 1):
                producer.send(topic, key, value)
                ahead = sent / offered_rate - (time.perf_counter() - began)
                if ahead > 0.001:
                    time.sleep(ahead)
            producer.flush()
        produced.set()

    feeder = threading.Thread(target=produce, name="replay-producer", daemon=True)
    total = len(messages)

    def progress(stats: EngineStats) -> None:
        if on_progress is not None:
            on_progress(stats.transactions + stats.chargebacks + stats.dead_letters, total)

    feeder.start()
    stats = engine.run(idle_exit_s=None, on_batch=progress, stop=_stop_when_done(produced, engine))
    feeder.join()
    landed = LakeSink(log, catalog).run(idle_exit_s=0.5)
    alerted = _alerted(log)
    frauds = _frauds(catalog, first, last)
    return ReplayReport(
        days=(first, last),
        offered_rate=offered_rate,
        transactions=stats.transactions,
        chargebacks=stats.chargebacks,
        dead_letters=stats.dead_letters,
        alerts=stats.alerts,
        alert_frauds=len(alerted & frauds),
        frauds=len(frauds),
        elapsed_s=stats.elapsed_s,
        busy_s=stats.busy_s,
        latencies=stats.latencies,
        model_version=engine.version,
        landed=landed.records,
    )


def _stop_when_done(produced: threading.Event, engine: StreamEngine) -> threading.Event:
    """Set once the producer is done and the engine has caught up."""
    stop = threading.Event()

    def watch() -> None:
        produced.wait()
        while engine.lag() != 0:
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=watch, name="replay-watch", daemon=True).start()
    return stop


def _alerted(log: EventLog) -> set[str]:
    ids: set[str] = set()
    with log.consumer("lakebed-replay-alerts", [ALERTS]) as consumer:
        while records := consumer.poll(10_000, 0.2):
            ids.update(str(orjson.loads(r.value or b"{}")["transaction_id"]) for r in records)
    return ids


def _frauds(catalog: Catalog, first: date, last: date) -> set[str]:
    """Frauds of the replayed days as gold knows them (from chargebacks)."""
    table = catalog.load_table("gold.fct_transactions")
    rows = table.scan(
        row_filter=f"event_date >= '{first}' and event_date <= '{last}' and is_fraud == true",
        selected_fields=("transaction_id",),
    ).to_arrow()
    return set(rows.column("transaction_id").to_pylist())
