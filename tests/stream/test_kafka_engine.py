"""The engine for real: Kafka and Redis, worker processes killed and restarted.

A worker (``lakebed stream``, cluster profile) is SIGKILLed at random moments twenty times
while input keeps arriving, and restarted each time. The committed outputs must equal
those of one clean in-process run over the same input: no event lost, none scored twice,
the very same features and scores.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from lakebed.config import Settings
from lakebed.lake.catalog import open_catalog
from lakebed.services import KafkaCluster, RedisServer
from lakebed.stream.engine import StreamEngine, registry_loader
from lakebed.stream.kafka_log import KafkaLog
from lakebed.stream.log import EventLog, Record
from lakebed.stream.memory_log import MemoryLog
from lakebed.stream.memory_store import MemoryStore
from lakebed.stream.redis_store import RedisStore
from lakebed.stream.replay import Message, feed_messages, warm_up
from lakebed.stream.topics import ALERTS, DEAD_LETTER, SCORED, TOPICS, TRANSACTIONS
from tests.conftest import Trained

KILLS = 20
WARM_DAYS = 8
LAKEBED = str(Path(sys.executable).with_name("lakebed"))


@dataclass(frozen=True)
class Cluster:
    settings: Settings
    env: dict[str, str]
    start: datetime

    @property
    def local(self) -> Settings:
        """The same, on the local profile: the lakehouse (gold) stays local here."""
        return self.settings.model_copy(update={"profile": "local"})


def in_time_order(messages: list[Message]) -> list[Message]:
    """Transactions sorted by event time (bad lines last). Late events are left out of
    this test on purpose: a late event's features depend on what else had arrived, so
    only in-order input has one right answer to compare a crashed run with."""

    def when(message: Message) -> float:
        try:
            return datetime.fromisoformat(orjson.loads(message[2])["event_time"]).timestamp()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return float("inf")

    return sorted((m for m in messages if m[0] == TRANSACTIONS), key=when)


@pytest.fixture(scope="module")
def cluster(trained: Trained, kafka: KafkaCluster, redis_server: RedisServer) -> Cluster:
    group = f"kill-test-{uuid.uuid4().hex[:8]}"
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/1"
    stream = trained.settings.stream.model_copy(
        update={
            "kafka_bootstrap": kafka.bootstrap_servers,
            "redis_url": SecretStr(redis_url),
            "group": group,
            "batch_size": 50,
        }
    )
    settings = trained.settings.model_copy(update={"profile": "cluster", "stream": stream})
    env = {
        **os.environ,
        "LAKEBED_PROFILE": "cluster",
        "LAKEBED_DATA_HOME": str(settings.data_home),
        "LAKEBED_STREAM__KAFKA_BOOTSTRAP": kafka.bootstrap_servers,
        "LAKEBED_STREAM__REDIS_URL": redis_url,
        "LAKEBED_STREAM__GROUP": group,
        "LAKEBED_STREAM__BATCH_SIZE": "50",
    }
    world = settings.world
    start = datetime.combine(
        world.start_date + timedelta(days=world.n_days - 3), datetime.min.time(), UTC
    )
    return Cluster(settings, env, start)


def read_committed(log: EventLog, topic: str) -> list[Record]:
    records: list[Record] = []
    with log.consumer(f"check.{uuid.uuid4().hex}", [topic]) as consumer:
        idle = 0
        while idle < 3:
            batch = consumer.poll(10_000, 1.0)
            records += batch
            idle = 0 if batch else idle + 1
    return records


def outputs(log: EventLog) -> dict[str, list[bytes]]:
    """Every committed output; dead letters without the input's partition and offset,
    which differ between two logs."""
    found = {
        topic: sorted(r.value or b"" for r in read_committed(log, topic))
        for topic in (SCORED, ALERTS)
    }
    letters = [orjson.loads(r.value or b"") for r in read_committed(log, DEAD_LETTER)]
    found[DEAD_LETTER] = sorted(orjson.dumps([d["error"], d["value"]]) for d in letters)
    return found


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [LAKEBED, "stream", "--worker", "w0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None
    for line in worker.stdout:  # wait until it loaded the model and is about to consume
        if "scoring with model version" in line:
            return worker
    worker.wait()
    raise AssertionError(f"the worker exited with {worker.returncode} before scoring")


@pytest.fixture(scope="module")
def messages(cluster: Cluster) -> list[Message]:
    first = cluster.start.date()
    bad: list[Message] = [(TRANSACTIONS, b"x", b"{broken json"), (TRANSACTIONS, None, b"[]")]
    days = list(feed_messages(cluster.settings.data_home, first, first + timedelta(days=1)))
    return in_time_order(days) + bad


@pytest.fixture(scope="module")
def clean_outputs(cluster: Cluster, messages: list[Message]) -> dict[str, list[bytes]]:
    """One uninterrupted in-process run over the same input and warm-up."""
    log, store = MemoryLog(), MemoryStore()
    warm_up(store, open_catalog(cluster.local), cluster.start, days=WARM_DAYS)
    log.create_topics(TOPICS)
    with log.producer() as producer:
        for topic, key, value in messages:
            producer.send(topic, key, value)
    settings = cluster.local
    StreamEngine(log, store, registry_loader(settings), settings).run(idle_exit_s=0.5)
    return outputs(log)


@pytest.fixture(scope="module")
def kafka_log(cluster: Cluster) -> Iterator[KafkaLog]:
    log = KafkaLog(cluster.settings.stream.kafka_bootstrap)
    log.create_topics(TOPICS)
    yield log
    log.close()


def test_killed_workers_lose_nothing_and_count_nothing_twice(
    cluster: Cluster,
    messages: list[Message],
    clean_outputs: dict[str, list[bytes]],
    kafka_log: KafkaLog,
) -> None:
    store = RedisStore(cluster.settings.stream.redis_url.get_secret_value())
    store.clear()
    warm_up(store, open_catalog(cluster.local), cluster.start, days=WARM_DAYS)
    store.close()
    size = -(-len(messages) // KILLS)
    chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
    rng = random.Random(11)
    with kafka_log.producer() as producer:
        for chunk in chunks:
            for topic, key, value in chunk:
                producer.send(topic, key, value)
            producer.flush()
            worker = start_worker(cluster.env)
            time.sleep(rng.uniform(0.0, 2.5))
            worker.send_signal(signal.SIGKILL)
            assert worker.wait() == -signal.SIGKILL
    final = start_worker(cluster.env, "--idle-exit", "8")
    assert final.wait(timeout=300) == 0
    assert outputs(kafka_log) == clean_outputs
    scored = [orjson.loads(v) for v in clean_outputs[SCORED]]
    assert len(scored) + len(clean_outputs[DEAD_LETTER]) == len(messages)
    assert len(scored) > 15_000
    assert sum(s["features"]["terminal_risk_30d"] > 0 for s in scored) > 100


def test_a_message_from_an_outside_client_goes_to_the_dead_letters(
    cluster: Cluster, kafka_log: KafkaLog
) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: `make test` installs it (deploy/packages.sh)"
    marker = uuid.uuid4().hex
    subprocess.run(
        [
            kcat,
            "-P",
            "-b",
            cluster.settings.stream.kafka_bootstrap,
            "-t",
            TRANSACTIONS,
            "-k",
            "kcat",
        ],
        input=f'{{"transaction_id": "{marker}", "amount": "lots"}}\n',
        text=True,
        check=True,
        timeout=30,
    )
    worker = start_worker(cluster.env, "--idle-exit", "4")
    assert worker.wait(timeout=120) == 0
    letters = [orjson.loads(r.value or b"") for r in read_committed(kafka_log, DEAD_LETTER)]
    mine = [letter for letter in letters if marker in letter["value"]]
    assert len(mine) == 1
    assert mine[0]["error"].startswith("event_time")  # the first field at fault, named


def test_sigterm_finishes_the_batch_commits_and_exits(
    cluster: Cluster, kafka_log: KafkaLog, messages: list[Message]
) -> None:
    with kafka_log.producer() as producer:
        for topic, key, value in messages[:3000]:  # replays: scored again, features unchanged
            producer.send(topic, key, value)
        producer.flush()
    before = len(read_committed(kafka_log, SCORED))
    worker = start_worker(cluster.env)
    time.sleep(3)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert worker.stdout is not None
    summary = worker.stdout.read()
    done = int(summary.split(" transactions")[0].rsplit(" ", 1)[-1].replace(",", ""))
    assert done > 0
    assert len(read_committed(kafka_log, SCORED)) == before + done
