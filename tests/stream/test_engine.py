"""The stream engine on the in-process log and store: outputs, dead letters, and exactly
one output per input when a batch fails half-way."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import orjson
import pytest

from lakebed.fraud.features import FEATURE_NAMES
from lakebed.fraud.models import FraudModel
from lakebed.stream.engine import ModelLoader, StreamEngine, publish_champion, registry_loader
from lakebed.stream.log import EventLog, Record
from lakebed.stream.memory_log import MemoryLog
from lakebed.stream.memory_store import MemoryStore
from lakebed.stream.replay import feed_messages
from lakebed.stream.store import Floats, Transactions
from lakebed.stream.topics import (
    ALERTS,
    CHAMPION,
    DEAD_LETTER,
    SCORED,
    TOPICS,
    TRANSACTIONS,
)
from tests.conftest import Lakehouse, Trained

BAD = [
    (b"not json at all", "message"),
    (b'{"transaction_id": "tx_bad1"}', "event_time"),
    (
        b'{"transaction_id":"tx_bad2","event_time":"2018-05-01T10:00:00+02:00",'
        b'"card":{"card_id":"c","customer_id":"seven"},"terminal":{"terminal_id":1},'
        b'"amount":{"value":5.0,"currency":"EUR"}}',
        "card.customer_id",
    ),
    (  # larger than any 64-bit id: a dead letter, not a batch that fails forever
        b'{"transaction_id":"tx_bad3","event_time":"2018-05-01T10:00:00+02:00",'
        b'"card":{"card_id":"c","customer_id":100000000000000000000},'
        b'"terminal":{"terminal_id":1},"amount":{"value":5.0,"currency":"EUR"}}',
        "card.customer_id",
    ),
    (  # valid by the schema, but from the future: it would expire every window's history
        b'{"transaction_id":"tx_bad4","event_time":"2106-02-07T06:28:15+00:00",'
        b'"card":{"card_id":"c","customer_id":7},"terminal":{"terminal_id":1},'
        b'"amount":{"value":5.0,"currency":"EUR"}}',
        "event_time",
    ),
]


@dataclass(frozen=True)
class Feed:
    messages: list[tuple[str, bytes | None, bytes]]

    @property
    def transactions(self) -> int:
        return sum(1 for topic, key, _ in self.messages if topic == TRANSACTIONS and key)


@pytest.fixture(scope="module")
def feed(lakehouse: Lakehouse) -> Feed:
    """Four days of the small world's raw feed (its dirty lines included)."""
    world = lakehouse.settings.world
    first = world.start_date + timedelta(days=30)
    messages = list(feed_messages(lakehouse.home, first, first + timedelta(days=3)))
    return Feed(messages)


@pytest.fixture(scope="module")
def champion(trained: Trained) -> ModelLoader:
    load = registry_loader(trained.settings)
    model, version = load(None)
    return lambda _version: (model, version)


def publish(log: EventLog, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    log.create_topics(TOPICS)
    with log.producer() as producer:
        for topic, key, value in messages:
            producer.send(topic, key, value)
        producer.flush()


def read_all(log: EventLog, topic: str) -> list[Record]:
    with log.consumer(f"reader.{topic}", [topic]) as consumer:
        records: list[Record] = []
        while batch := consumer.poll(10_000, 0.1):
            records += batch
        return records


def test_every_transaction_is_scored_once_and_bad_ones_dead_lettered(
    feed: Feed, champion: ModelLoader, lakehouse: Lakehouse
) -> None:
    log, store = MemoryLog(), MemoryStore()
    publish(log, feed.messages + [(TRANSACTIONS, b"outside", bad) for bad, _ in BAD])
    engine = StreamEngine(log, store, champion, lakehouse.settings)
    stats = engine.run(idle_exit_s=0.3)

    scored = [orjson.loads(r.value or b"") for r in read_all(log, SCORED)]
    dead = [orjson.loads(r.value or b"") for r in read_all(log, DEAD_LETTER)]
    alerts = [orjson.loads(r.value or b"") for r in read_all(log, ALERTS)]
    assert len(scored) + len(dead) == sum(1 for m in feed.messages if m[0] == TRANSACTIONS) + len(
        BAD
    )
    assert stats.transactions == len(scored) > 1_000
    for bad, field in BAD:  # the error names the field, the raw message is kept
        letter = next(d for d in dead if d["value"] == bad.decode())
        assert letter["error"].startswith(field), letter
    threshold = lakehouse.settings.fraud.review_threshold
    assert alerts
    assert all(a["probability"] >= threshold for a in alerts)
    assert all(a["reasons"] and a["reasons"][0]["feature"] in FEATURE_NAMES for a in alerts)
    assert {a["transaction_id"] for a in alerts} <= {s["transaction_id"] for s in scored}
    # the champion pointer was published on the compacted topic
    assert [orjson.loads(r.value or b"")["version"] for r in read_all(log, CHAMPION)] == [
        engine.version
    ]


class FailingStore(MemoryStore):
    """The in-process store failing once, on its n-th batch, after updating: a crash
    between the feature update and the log commit."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at = fail_at

    def update(self, batch: Transactions) -> Floats:
        features = super().update(batch)
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("the store went away")
        return features


def outputs(log: EventLog) -> Iterator[tuple[str, bytes]]:
    for topic in (SCORED, ALERTS, DEAD_LETTER):
        for record in read_all(log, topic):
            yield topic, record.value or b""


def test_a_batch_that_fails_half_way_is_redone_exactly_once(
    feed: Feed, champion: ModelLoader, lakehouse: Lakehouse
) -> None:
    settings = lakehouse.settings.model_copy(
        update={"stream": lakehouse.settings.stream.model_copy(update={"batch_size": 100})}
    )
    clean_log = MemoryLog()
    publish(clean_log, feed.messages)
    StreamEngine(clean_log, MemoryStore(), champion, settings).run(idle_exit_s=0.3)

    log = MemoryLog()
    publish(log, feed.messages)
    store = FailingStore(fail_at=5)
    with pytest.raises(ConnectionError):
        StreamEngine(log, store, champion, settings).run(idle_exit_s=0.3)
    assert 0 < len(read_all(log, SCORED)) <= 4 * 100  # four batches committed, not the 5th
    StreamEngine(log, store, champion, settings).run(idle_exit_s=0.3)  # the restart
    assert sorted(outputs(log)) == sorted(outputs(clean_log))


def test_stop_finishes_the_batch_in_hand(
    feed: Feed, champion: ModelLoader, lakehouse: Lakehouse
) -> None:
    import threading

    log = MemoryLog()
    publish(log, feed.messages)
    stop = threading.Event()
    engine = StreamEngine(log, MemoryStore(), champion, lakehouse.settings)
    stats = engine.run(stop=stop, on_batch=lambda s: stop.set() if s.batches == 3 else None)
    assert stats.batches == 3
    assert len(read_all(log, SCORED)) == stats.transactions  # committed, nothing half-done


def test_workers_follow_a_new_champion_without_stopping(
    feed: Feed, trained: Trained, lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pointing the compacted champion topic at another version switches a running worker
    to it at its next look (every few seconds, between batches)."""
    monkeypatch.setattr("lakebed.stream.engine.CHAMPION_RECHECK_S", 0.05)
    model, version = registry_loader(trained.settings)(None)
    loaded: list[str | None] = []

    def load(wanted: str | None) -> tuple[FraudModel, str]:
        loaded.append(wanted)
        return model, wanted or version

    log = MemoryLog()
    transactions = [m for m in feed.messages if m[0] == TRANSACTIONS]
    half = len(transactions) // 2
    publish(log, transactions[:half])
    engine = StreamEngine(log, MemoryStore(), load, lakehouse.settings)
    stop = threading.Event()
    worker = threading.Thread(target=engine.run, kwargs={"stop": stop})
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while engine.lag() != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        publish_champion(log, "next")
        while engine.version != "next" and time.monotonic() < deadline:
            time.sleep(0.01)
        publish(log, transactions[half:])
        while engine.lag() != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(30)
    assert loaded == [None, "next"]
    versions = [orjson.loads(r.value or b"")["model_version"] for r in read_all(log, SCORED)]
    assert versions[:10] == [version] * 10
    assert versions[-10:] == ["next"] * 10


@pytest.mark.parametrize("interval_ms", [0, 400])
def test_a_quiet_stream_is_committed_once_an_interval(
    feed: Feed, champion: ModelLoader, lakehouse: Lakehouse, interval_ms: int
) -> None:
    """Records arriving 20 ms apart: committed one by one with no interval, and with one
    of 400 ms gathered into a transaction (two at most: the first record may find the
    interval since the engine started already over)."""
    settings = lakehouse.settings.model_copy(
        update={
            "stream": lakehouse.settings.stream.model_copy(
                update={"commit_interval_ms": interval_ms}
            )
        }
    )
    log = MemoryLog()
    log.create_topics(TOPICS)
    engine = StreamEngine(log, MemoryStore(), champion, settings)
    sent = [m for m in feed.messages if m[0] == TRANSACTIONS][:10]

    def produce() -> None:
        with log.producer() as producer:
            for topic, key, value in sent:
                producer.send(topic, key, value)
                time.sleep(0.02)

    began = time.time()
    threading.Thread(target=produce, daemon=True).start()
    stats = engine.run(idle_exit_s=0.6)
    assert stats.transactions + stats.dead_letters == len(sent)
    # the last commit, before the idle wait that ended the run (the bench's throughput)
    assert began < stats.last_batch_at < time.time() - 0.5
    assert stats.summary()["last_batch_at"] == stats.last_batch_at
    assert len(read_all(log, SCORED)) == stats.transactions
    if interval_ms:
        assert stats.batches <= 2
    else:
        assert stats.batches >= 5
