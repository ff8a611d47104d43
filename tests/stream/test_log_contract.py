"""One contract, two event logs: the in-process log and Kafka behave alike."""

from __future__ import annotations

import time
import uuid

import pytest

from lakebed.stream.log import Consumer, EventLog, Record
from lakebed.stream.topics import TopicSpec


def topic(log: EventLog, partitions: int = 4, compacted: bool = False) -> str:
    name = f"test.{uuid.uuid4().hex[:10]}"
    log.create_topics([TopicSpec(name, partitions, compacted)])
    return name


def drain(consumer: Consumer, expected: int, timeout_s: float = 30.0) -> list[Record]:
    """Poll until ``expected`` records came (or the time is up), then a little longer to
    catch any record too many."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        records += consumer.poll(500, 0.2)
    records += consumer.poll(500, 0.5)
    return records


def send(log: EventLog, name: str, pairs: list[tuple[bytes, bytes]]) -> None:
    with log.producer() as producer:
        for key, value in pairs:
            producer.send(name, key, value)
        producer.flush()


def test_a_key_keeps_its_order_on_one_partition(log: EventLog) -> None:
    name = topic(log)
    pairs = [(f"card{i % 5}".encode(), f"{i}".encode()) for i in range(200)]
    send(log, name, pairs)
    with log.consumer(f"g.{uuid.uuid4().hex}", [name]) as consumer:
        records = drain(consumer, 200)
    assert len(records) == 200
    for card in {key for key, _ in pairs}:
        mine = [r for r in records if r.key == card]
        assert len({r.partition for r in mine}) == 1
        values = [int(r.value or b"") for r in sorted(mine, key=lambda r: r.offset)]
        assert values == sorted(values)


def test_poll_returns_what_is_there_without_waiting_for_a_full_batch(log: EventLog) -> None:
    """The engine's latency rests on this: a batch is whatever has arrived, so three
    records come back long before the timeout, not when 1,000 have piled up."""
    name = topic(log, partitions=1)
    with log.consumer(f"g.{uuid.uuid4().hex}", [name]) as consumer:
        assert consumer.poll(1000, 0.3) == []  # nothing there: it waits, then gives up
        send(log, name, [(b"k", b"first")])
        assert [r.value for r in drain(consumer, 1)] == [b"first"]  # joined the group
        send(log, name, [(b"k", f"{i}".encode()) for i in range(3)])
        records: list[Record] = []
        began = time.monotonic()
        while len(records) < 3 and time.monotonic() - began < 30:
            records += consumer.poll(1000, 10.0)
        waited = time.monotonic() - began
    assert [r.value for r in records] == [b"0", b"1", b"2"]
    assert waited < 5.0, f"poll held {len(records)} records for {waited:.1f} s"


def test_group_members_share_partitions_and_resume_from_commits(log: EventLog) -> None:
    name, group = topic(log), f"g.{uuid.uuid4().hex}"
    send(log, name, [(f"k{i}".encode(), b"first") for i in range(100)])
    with log.consumer(group, [name]) as one, log.consumer(group, [name]) as two:
        seen: list[Record] = []
        deadline = time.monotonic() + 30
        while len(seen) < 100 and time.monotonic() < deadline:
            seen += one.poll(50, 0.2) + two.poll(50, 0.2)
        one.commit()
        two.commit()
    assert sorted(r.key or b"" for r in seen) == sorted(f"k{i}".encode() for i in range(100))
    send(log, name, [(b"later", b"second")])
    with log.consumer(group, [name]) as again:
        records = drain(again, 1)
    assert [r.value for r in records] == [b"second"]


def test_a_transaction_publishes_outputs_and_offsets_together(log: EventLog) -> None:
    source, sink, group = topic(log), topic(log), f"g.{uuid.uuid4().hex}"
    send(log, source, [(f"k{i}".encode(), f"{i}".encode()) for i in range(20)])
    producer = log.producer(transactional_id=f"tx.{uuid.uuid4().hex}")
    with log.consumer(f"g.{uuid.uuid4().hex}", [sink]) as reader:
        with log.consumer(group, [source]) as worker:
            records = drain(worker, 20)
            producer.begin()
            for record in records:
                producer.send(sink, record.key, b"out-" + (record.value or b""))
            producer.flush()
            assert reader.poll(100, 1.0) == []  # in flight: invisible to read_committed
            producer.abort()
            worker.rewind()
            again = drain(worker, 20)  # the aborted batch is read again
            assert sorted(r.offset for r in again) == sorted(r.offset for r in records)
            producer.begin()
            for record in again:
                producer.send(sink, record.key, b"out-" + (record.value or b""))
            producer.commit(worker)
        outputs = drain(reader, 20)
    producer.close()
    assert sorted(int((r.value or b"")[4:]) for r in outputs) == list(range(20))
    with log.consumer(group, [source]) as restarted:  # the offsets were committed with it
        assert drain(restarted, 0, timeout_s=1.0) == []


def test_compaction_keeps_the_last_value_per_key(log: EventLog) -> None:
    name = topic(log, partitions=1, compacted=True)
    for round_ in range(5):
        send(log, name, [(f"key{k}".encode(), f"{round_}".encode()) for k in range(10)])
    time.sleep(1.2)  # past segment.ms: the next record rolls the segment, the cleaner runs
    deadline = time.monotonic() + 60
    while True:
        send(log, name, [(b"tick", b"x")])  # rolls the active segment
        with log.consumer(f"g.{uuid.uuid4().hex}", [name]) as consumer:
            records = [r for r in drain(consumer, 10, timeout_s=5) if r.key != b"tick"]
        latest = {r.key: r.value for r in records}
        if len(records) == 10 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(records) == 10, f"{len(records)} records left: not compacted"
    assert latest == {f"key{k}".encode(): b"4" for k in range(10)}


@pytest.mark.parametrize("payload", [b"", b"\x00\xff"])
def test_any_bytes_pass_through(log: EventLog, payload: bytes) -> None:
    name = topic(log, partitions=1)
    send(log, name, [(b"k", payload)])
    with log.consumer(f"g.{uuid.uuid4().hex}", [name]) as consumer:
        records = drain(consumer, 1)
    assert [r.value or b"" for r in records] == [payload]
