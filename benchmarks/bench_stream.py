"""Benchmark: the real-time engine's throughput and produce→score latency.

Why: the engine claims millisecond scoring at tens of thousands of events per second.
Measured here, on the default world's last week of raw feed (dirty lines included, each
round with fresh transaction ids so nothing is skipped as a replay):

* in-process (local profile): capacity with a backlog (events per second of busy time, one
  worker, one core for Python), then produce→score latency at fixed offered loads from a
  producer thread;
* Kafka + Redis (cluster profile): a real single-node broker and Redis, the producer in its
  own process at fixed offered loads, one and two ``lakebed stream`` worker processes;
  latency is from the record's create time to the commit of the transaction that
  published its score, and the consumer lag is sampled to see whether it keeps growing;
* the Kafka floor: the same worker loop with no work in it (``FloorEngine``), at the same
  loads, so the Kafka rows can be read against what Kafka's exactly-once path costs here.

The baselines in the same run are the offered load (a worker keeps up when the lag stays
flat) and the floor. Run ``python benchmarks/bench_stream.py`` (about 15 minutes on 2
cores, a minute of it warming the broker; ``--kafka-rounds engine`` leaves the floor out;
the default world's lakehouse and an XGBoost champion are built first unless
``--data-home`` has them). Writes ``stream_latency.png`` beside the results.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np

from lakebed.config import Settings
from lakebed.fraud.models import FraudModel
from lakebed.lake.catalog import open_catalog
from lakebed.services import KafkaCluster, RedisServer
from lakebed.stream.engine import Output, StreamEngine, registry_loader
from lakebed.stream.kafka_log import KafkaLog
from lakebed.stream.latency import Latencies, plot_latencies
from lakebed.stream.log import Record
from lakebed.stream.memory_log import MemoryLog
from lakebed.stream.memory_store import MemoryStore
from lakebed.stream.redis_store import RedisStore
from lakebed.stream.replay import Message, feed_messages, replay_days, warm_up
from lakebed.stream.topics import SCORED, TOPICS, TRANSACTIONS, TopicSpec

HERE = Path(__file__).resolve().parent
LAKEBED = str(Path(sys.executable).with_name("lakebed"))
WORKER_START_S = 60  # at most, to load the model and join the group
IDLE_EXIT_S = 12  # idle workers wait this long for the producer to begin


def prepare(data_home: Path | None) -> Settings:
    """A data home with the default world's gold and a champion."""
    from bench_fraud import build_lakehouse
    from lakebed.fraud.registry import Registry
    from lakebed.fraud.train import train

    home = data_home or Path(tempfile.mkdtemp(prefix="bench-stream-"))
    settings = Settings(data_home=home)
    if not (home / "lakehouse" / "catalog.db").exists():
        print("building the default world's lakehouse ...", flush=True)
        build_lakehouse(settings)
    if not Registry.exists(settings) or not Registry(settings).versions():
        print("training the XGBoost champion ...", flush=True)
        report = train(settings, ["xgboost"])
        assert report.best.version is not None
        Registry(settings).promote(report.best.version)
    elif all(not v.champion for v in Registry(settings).versions()):
        Registry(settings).promote(Registry(settings).versions()[0].version)
    return settings


def transactions(settings: Settings) -> list[Message]:
    first, last = replay_days(settings)
    return [m for m in feed_messages(settings.data_home, first, last) if m[0] == TRANSACTIONS]


EVENT_TIME = re.compile(rb'"event_time":"([^"]+)"')


def _event_time(value: bytes) -> tuple[datetime, re.Match[bytes]] | None:
    match = EVENT_TIME.search(value)
    if match is None:
        return None
    try:
        return datetime.fromisoformat(match[1].decode()), match
    except ValueError:  # a dirty line: sent as it is
        return None


def rounds(messages: list[Message], count: int) -> list[Message]:
    """``count`` messages: the days replayed again and again, each round with its own ids
    and its events that many days later than the round before. Time passes as in a live
    stream, so the stores expire what no window reaches and hold a steady month of events
    (with the same seconds every round, they grew by a round each time and so did their
    compactions)."""
    times = [t[0] for _, _, v in messages if (t := _event_time(v)) is not None]
    span = timedelta(days=(max(times).date() - min(times).date()).days + 1)
    out: list[Message] = []
    n = 0
    while len(out) < count:
        tag = f'"transaction_id":"r{n}_'.encode()
        for topic, key, value in messages[: count - len(out)]:
            value = value.replace(b'"transaction_id":"', tag, 1)
            if n and (found := _event_time(value)) is not None:
                at, match = found
                later = (at + n * span).isoformat().encode()
                value = value[: match.start(1)] + later + value[match.end(1) :]
            out.append((topic, key, value))
        n += 1
    return out


def start_of_replay(settings: Settings) -> datetime:
    first, _ = replay_days(settings)
    return datetime.combine(first, datetime.min.time(), UTC)


# -- in-process ------------------------------------------------------------------------


def in_process(settings: Settings, messages: list[Message], loads: list[int]) -> dict[str, Any]:
    load = registry_loader(settings)
    model, version = load(None)
    results: dict[str, Any] = {"loads": {}}

    def engine_with(log: MemoryLog) -> StreamEngine:
        store = MemoryStore()
        warm_up(store, open_catalog(settings), start_of_replay(settings))
        return StreamEngine(log, store, lambda _v: (model, version), settings)

    # Capacity: a backlog, one worker, as fast as it goes.
    log = MemoryLog()
    log.create_topics(TOPICS)
    backlog = rounds(messages, 200_000)
    with log.producer() as producer:
        for topic, key, value in backlog:
            producer.send(topic, key, value)
    engine = engine_with(log)
    stats = engine.run(idle_exit_s=0.5)
    results["capacity"] = stats.transactions / stats.busy_s
    results["capacity_events"] = stats.transactions
    print(f"in-process capacity: {results['capacity']:,.0f} events/s", flush=True)

    for rate in loads:
        latencies, events, wall = offered_load(engine_with, messages, rate)
        results["loads"][rate] = summarise(latencies, events, wall)
        results.setdefault("latencies", {})[f"in-process, {rate:,}/s offered"] = latencies
        print(f"in-process at {rate:,}/s: {results['loads'][rate]}", flush=True)
    return results


def offered_load(
    engine_with: Callable[[MemoryLog], StreamEngine], messages: list[Message], rate: int
) -> tuple[Latencies, int, float]:
    """Ten seconds of input from a producer thread at ``rate``; the engine stops once the
    producer is done and the engine has caught up."""
    log = MemoryLog()
    log.create_topics(TOPICS)
    offered = rounds(messages, rate * 10)
    engine = engine_with(log)
    done, stop = threading.Event(), threading.Event()

    def produce() -> None:
        with log.producer() as producer:
            # The first record alone, and the load once the engine has scored it: what is
            # measured is the running engine, not its start (first calls into NumPy and
            # XGBoost, a first batch of everything sent while it started).
            producer.send(*offered[0])
            while engine.stats.transactions == 0:
                time.sleep(0.001)
            began = time.perf_counter()
            for sent, (topic, key, value) in enumerate(offered[1:], 1):
                producer.send(topic, key, value)
                ahead = sent / rate - (time.perf_counter() - began)
                if ahead > 0.002:
                    time.sleep(ahead)
        done.set()

    def watch() -> None:
        done.wait()
        while engine.lag() != 0:
            time.sleep(0.01)
        stop.set()

    threading.Thread(target=produce, daemon=True).start()
    threading.Thread(target=watch, daemon=True).start()
    began = time.perf_counter()
    stats = engine.run(stop=stop)
    return stats.latencies, stats.transactions, time.perf_counter() - began


def summarise(latencies: Latencies, events: int, wall: float) -> dict[str, float]:
    return {
        "events": events,
        "throughput": events / wall,
        "p50_ms": latencies.percentile(50),
        "p99_ms": latencies.percentile(99),
        "p999_ms": latencies.percentile(99.9),
    }


# -- Kafka + Redis -----------------------------------------------------------------------


def paced_producer(bootstrap: str, path: str, rate: int) -> None:
    """Runs in its own process: sends the pickled messages at ``rate`` per second.

    A bare librdkafka producer, configured as the log's plain producer (idempotent,
    ``acks=all``, lz4, 5 ms linger) but without a Python callback per message: it shares
    the two cores with what is measured, and the callbacks were a third of its CPU. A
    message that is not delivered is not scored, and the count of scored events shows it.
    """
    import pickle

    from confluent_kafka import Producer

    from lakebed.stream.kafka_log import producer_config

    with open(path, "rb") as file:
        messages: list[Message] = pickle.load(file)
    producer = Producer(producer_config(bootstrap, None))
    # Connected before the clock starts, as a producer in service is: its first records
    # otherwise waited for the connection and the producer id (~0.5 s) and were charged
    # to the engine as latency.
    producer.produce(WARM_UP_TOPIC, b"connected")
    producer.list_topics(TRANSACTIONS, timeout=30)
    if producer.flush(30):
        raise RuntimeError("the load's producer cannot reach the broker")
    sending = time.time()
    cpu = time.process_time()
    began = time.perf_counter()
    for sent, (topic, key, value) in enumerate(messages, 1):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        ahead = sent / rate - (time.perf_counter() - began)
        if ahead > 0.002:
            producer.poll(0)
            time.sleep(ahead)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} messages not delivered")
    # CPU of the sending alone (start-up excluded), for the run's CPU budget, and when the
    # sending began (the run's throughput counts from there, not from the process's start)
    Path(path + ".sent").write_text(
        json.dumps({"cpu_s": time.process_time() - cpu, "began": sending})
    )


WARM_UP_TOPIC = "bench.warm-up"


def warm_broker(bootstrap: str, broker_pid: int, seconds: float) -> None:
    """Transactions like the engine's, until the broker's JVM has compiled its hot paths.

    A fresh broker spends most of its CPU in the JIT compiler for the first minute of
    transactional load: a consume → produce → commit loop of 100 records a transaction
    cost the broker 17, 7.0, 5.8, 3.9 and 2.5 ms of CPU a transaction in five 10 s rounds
    (measured, C2 compiler threads 43 % of its CPU in the second). A broker in service is
    warm; measuring through its warm-up charged the engine with the compiler. The loop
    reads and writes one topic, so it never runs out of input.
    """
    log = KafkaLog(bootstrap)
    log.create_topics([TopicSpec(WARM_UP_TOPIC)])
    with log.producer() as seed:
        for i in range(20_000):
            seed.send(WARM_UP_TOPIC, str(i % 997).encode(), b"x" * 300)
        seed.flush()
    consumer = log.consumer("bench-warm-up", [WARM_UP_TOPIC], instance="warm-up")
    producer = log.producer(transactional_id="bench-warm-up")
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            cpu, slice_began, transactions = process_cpu_s(broker_pid), time.monotonic(), 0
            while time.monotonic() - slice_began < 10:
                records = consumer.poll(100, 1.0)
                producer.begin()
                producer.send_all((WARM_UP_TOPIC, r.key, r.value) for r in records)
                producer.commit(consumer)
                transactions += 1
            used = process_cpu_s(broker_pid) - cpu
            print(
                f"  broker warm-up: {transactions / 10:.0f} transactions/s, "
                f"{1000 * used / max(transactions, 1):.1f} ms of broker CPU each",
                flush=True,
            )
    finally:
        consumer.close()
        producer.close()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_pid(marker: str) -> int:
    """The process whose command line contains ``marker`` (a service started by script,
    not our child)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in command and "bash" not in command.split(" ")[0]:
            return int(entry.name)
    raise LookupError(f"no process with {marker!r} in its command line")


class FloorEngine(StreamEngine):
    """The engine's Kafka loop with no work: each transaction record is copied to the
    scored topic as it is, in the same gathering, batches and transactions. Its latency
    is what Kafka's exactly-once path costs on this machine before a feature is read or
    a tree walked: the floor under the Kafka + Redis rows."""

    def process(self, records: list[Record]) -> list[Output]:
        copied = [Output(SCORED, r.key, r.value or b"") for r in records if r.topic == TRANSACTIONS]
        self.stats.transactions += len(copied)
        return copied


def floor_worker(worker: str, version: str, idle_exit_s: float, stats: Path) -> None:
    """A floor worker (its own process, started as ``lakebed stream`` workers are, with
    the cluster profile's settings from the environment): no store, no model."""
    from lakebed.cli import load_settings

    settings = load_settings()
    log = KafkaLog(settings.stream.kafka_bootstrap)
    # The champion pointer is left as it is (the real workers load it); the floor only
    # names a version so that the engine has one.
    engine = FloorEngine(
        log,
        MemoryStore(),
        lambda pointed: (cast(FraudModel, None), pointed or version),
        settings,
        worker=worker,
    )
    result = engine.run(idle_exit_s=idle_exit_s)
    log.close()
    stats.write_text(json.dumps(result.summary()))


def kafka_redis(
    settings: Settings,
    messages: list[Message],
    loads: list[int],
    workers: list[int],
    seconds: int,
    warm_up_s: float,
    kinds: str = "both",
) -> dict[str, Any]:
    import pickle

    from lakebed.fraud.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="bench-stream-services-"))
    kafka = KafkaCluster(work / "kafka", brokers=1, base_port=19592)
    redis_server = RedisServer(work / "redis", port=16579)
    kafka.up()
    redis_server.up()
    services = {
        "Kafka broker": find_pid(str(work / "kafka" / "config")),
        "Redis": find_pid(f"redis-server 127.0.0.1:{redis_server.port}"),
    }

    # What a floor worker names as its model (it loads none): the champion, so that the
    # pointer topic the engine's workers read stays right.
    version = Registry(settings).champion().version if kinds != "engine" else ""

    def one_run(count: int, rate: int, seconds: int, floor: bool = False) -> dict[str, Any]:
        group = f"bench-{uuid.uuid4().hex[:6]}"
        log = KafkaLog(kafka.bootstrap_servers)
        # fresh topics per run: a run must not see the previous one's backlog
        prefix_env = run_env(settings, kafka, redis_server, group)
        if not floor:
            store = RedisStore(redis_server.url)
            store.clear()
            warm_up(store, open_catalog(settings), start_of_replay(settings), days=8)
            store.close()
        log.create_topics(TOPICS)
        fresh_input_topic(log)
        offered = rounds(messages, rate * seconds)
        path = work / "messages.pickle"
        path.write_bytes(pickle.dumps(offered))
        procs = []
        for i in range(count):
            stats = work / f"stats-{group}-{i}.json"
            command = [LAKEBED, "stream"]
            if floor:
                command = [sys.executable, str(Path(__file__)), "--floor-version", version]
            procs.append(
                (
                    subprocess.Popen(
                        [
                            *command,
                            "--worker",
                            f"w{i}",
                            "--idle-exit",
                            str(IDLE_EXIT_S),
                            "--stats",
                            str(stats),
                        ],
                        env=prefix_env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    ),
                    stats,
                )
            )
        ready_s = wait_for_group(kafka.bootstrap_servers, group, count)
        print(f"{count} worker(s) ready in {ready_s:.1f} s", flush=True)
        producer = multiprocessing.get_context("spawn").Process(
            target=paced_producer, args=(kafka.bootstrap_servers, str(path), rate)
        )
        lag = LagSampler(kafka.bootstrap_servers, group)
        lag.start()
        # CPU from here on: the workers' start-up (imports, model) is not counted
        worker_cpu = -sum(process_cpu_s(proc.pid) for proc, _ in procs)
        service_cpu = {name: -process_cpu_s(pid) for name, pid in services.items()}
        producer.start()
        producer.join()
        lag.stop_at_end()
        for proc, _ in procs:
            _, status, usage = os.wait4(proc.pid, 0)  # its CPU, as it exits
            proc.returncode = os.waitstatus_to_exitcode(status)
            worker_cpu += usage.ru_utime + usage.ru_stime
        for name, pid in services.items():
            service_cpu[name] += process_cpu_s(pid)
        sent = json.loads(Path(str(path) + ".sent").read_text())
        merged = Latencies()
        events = 0
        last_batch_at = 0.0
        for _, stats in procs:
            data = json.loads(stats.read_text())
            merged.counts += np.asarray(data["latency_counts"], dtype=np.int64)
            events += data["transactions"]
            last_batch_at = max(last_batch_at, data["last_batch_at"])
        # from the first record sent to the last batch committed
        wall = last_batch_at - sent["began"]
        cpu = {
            "workers": worker_cpu,
            **service_cpu,
            "producer": sent["cpu_s"],
        }
        return {
            **summarise(merged, events, wall),
            "lag_samples": lag.samples,
            "cpu_us_per_event": {k: round(v / max(events, 1) * 1e6, 1) for k, v in cpu.items()},
            "latencies": merged,
        }

    results: dict[str, Any] = {}
    try:
        warm_broker(kafka.bootstrap_servers, services["Kafka broker"], warm_up_s)
        # One short round, not counted: the workers' and Redis's first batches.
        one_run(1, loads[0], 5, floor=kinds == "floor")
        chosen = {"engine": (False,), "floor": (True,), "both": (False, True)}[kinds]
        for floor in chosen:
            for count in workers:
                for rate in loads:
                    what = "Kafka floor (no work)" if floor else "Kafka+Redis"
                    key = f"{what}, {count} worker(s), {rate:,}/s offered"
                    results[key] = one_run(count, rate, seconds, floor)
                    shown = {k: v for k, v in results[key].items() if k != "latencies"}
                    print(f"{key}: {shown}", flush=True)
    finally:
        kafka.down()
        redis_server.down()
    return results


def run_env(
    settings: Settings, kafka: KafkaCluster, redis_server: RedisServer, group: str
) -> dict[str, str]:
    return {
        **os.environ,
        "LAKEBED_PROFILE": "cluster",
        "LAKEBED_DATA_HOME": str(settings.data_home),
        "LAKEBED_STREAM__KAFKA_BOOTSTRAP": kafka.bootstrap_servers,
        "LAKEBED_STREAM__REDIS_URL": redis_server.url,
        "LAKEBED_STREAM__GROUP": group,
    }


def wait_for_group(bootstrap: str, group: str, members: int) -> float:
    """Seconds until the group is stable with ``members`` workers holding partitions: the
    load starts then, not after a fixed sleep (a worker that started later than the sleep
    showed up as seconds of latency at the lowest load)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    began = time.monotonic()
    while time.monotonic() - began < WORKER_START_S:
        found = admin.describe_consumer_groups([group])[group]
        try:
            description = found.result(10)
        except Exception:  # the group does not exist yet
            description = None
        if (
            description is not None
            and description.state == ConsumerGroupState.STABLE
            and sum(1 for m in description.members if m.assignment.topic_partitions) == members
        ):
            return time.monotonic() - began
        time.sleep(0.25)
    raise TimeoutError(f"{members} worker(s) did not join {group} in {WORKER_START_S} s")


def fresh_input_topic(log: KafkaLog) -> None:
    """Delete and create the input topic: a new consumer group starts at the earliest
    record, and a run must not see the previous run's input."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": log.bootstrap_servers})
    for future in admin.delete_topics([TRANSACTIONS]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while TRANSACTIONS in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.5)
    while time.monotonic() < deadline:
        try:
            log.create_topics(TOPICS)
            return
        except Exception:  # the deletion may still be under way
            time.sleep(1)


class LagSampler:
    """The group's lag on the input topic, once a second, from outside the workers."""

    def __init__(self, bootstrap: str, group: str) -> None:
        from confluent_kafka import Consumer

        self.samples: list[int] = []
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group + ".lag"})
        self._group = group
        self._bootstrap = bootstrap
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop_at_end(self) -> None:
        self._done.set()
        self._thread.join()
        self._consumer.close()

    def _run(self) -> None:
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self._bootstrap})
        partitions = [TopicPartition(TRANSACTIONS, p) for p in range(4)]
        while not self._done.wait(1.0):
            future = admin.list_consumer_group_offsets([_group_request(self._group, partitions)])[
                self._group
            ]
            committed = {tp.partition: tp.offset for tp in future.result(10).topic_partitions}
            total = 0
            for tp in partitions:
                _, high = self._consumer.get_watermark_offsets(tp, timeout=10)
                total += high - max(committed.get(tp.partition, 0), 0)
            self.samples.append(total)


def _group_request(group: str, partitions: list[Any]) -> Any:
    from confluent_kafka import ConsumerGroupTopicPartitions

    return ConsumerGroupTopicPartitions(group, partitions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-home", type=Path, help="reuse a data home with gold + champion")
    parser.add_argument("--loads", default="5000,20000,50000", help="offered events/s")
    parser.add_argument("--seconds", type=int, default=15, help="seconds at each Kafka load")
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--workers", default="1,2", help="Kafka + Redis worker counts")
    parser.add_argument(
        "--warm-up", type=float, default=60, help="seconds of transactions to warm the broker"
    )
    parser.add_argument(
        "--kafka-rounds",
        choices=["engine", "floor", "both"],
        default="both",
        help="the engine's Kafka rounds, the floor's (the same loop with no work), or both",
    )
    # A floor worker (started by the benchmark itself, not by hand).
    parser.add_argument("--floor-version", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--idle-exit", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_version:
        floor_worker(args.worker, args.floor_version, args.idle_exit, args.stats)
        return
    loads = [int(x) for x in args.loads.split(",")]
    settings = prepare(args.data_home)
    messages = transactions(settings)
    print(f"{len(messages):,} feed lines per round ({settings.data_home})", flush=True)
    local = {"latencies": {}} if args.skip_in_process else in_process(settings, messages, loads)
    series: dict[str, Latencies] = local.pop("latencies")
    cluster: dict[str, Any] = {}
    if not args.skip_kafka:
        workers = [int(x) for x in args.workers.split(",")]
        cluster = kafka_redis(
            settings, messages, loads, workers, args.seconds, args.warm_up, args.kafka_rounds
        )
        series.update({k: v.pop("latencies") for k, v in cluster.items()})
    # The 1-worker Kafka rows are in the printed results; ten series are all that the
    # colours (and a reader) tell apart.
    shown = {k: v for k, v in series.items() if "1 worker(s)" not in k}
    title = "produce → score latency (Kafka rows: 2 workers)"
    out = plot_latencies(shown, HERE / "stream_latency.png", title)
    print(json.dumps({"in_process": local, "kafka_redis": cluster}, indent=1, default=str))
    print(f"histogram: {out}")


if __name__ == "__main__":
    main()
