"""What the stream engine did lately, for people watching: its alerts and, per committed
batch, the transactions it scored and their produce-to-commit latencies.

A small SQLite file in the data home (WAL, so the API reads while workers write). It is an
observer's record, written after each batch's transaction commits, not part of the
exactly-once path: an alert is stored once per transaction id whatever the retries, while
a batch redone after a crash may count twice in the throughput chart. Latencies are kept
as sparse histograms on the bins of ``Latencies``, so percentiles over any window merge
exactly and a batch costs a few hundred bytes. Old rows are pruned as new ones arrive.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from lakebed.config import Settings
from lakebed.stream.latency import BINS, Latencies

log = logging.getLogger(__name__)
KEEP_SECONDS = 24 * 3600
KEEP_ALERTS = 10_000
PRUNE_EVERY_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    worker TEXT NOT NULL,
    transactions INTEGER NOT NULL,
    alerts INTEGER NOT NULL,
    dead_letters INTEGER NOT NULL,
    latency TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_at ON batches (at);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL UNIQUE,
    at REAL NOT NULL,
    payload TEXT NOT NULL
);
"""


def activity_file(settings: Settings) -> Path:
    return settings.data_home.resolve() / "stream" / "activity.db"


@dataclass(frozen=True)
class Bucket:
    start: float  # epoch seconds
    transactions: int
    alerts: int
    dead_letters: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class ActivityWindow:
    since: float
    until: float
    bucket_seconds: float
    buckets: list[Bucket]
    transactions: int
    alerts: int
    dead_letters: int
    latencies: Latencies
    last_batch_at: float | None  # the newest batch ever recorded, inside the window or not

    @property
    def throughput(self) -> float:
        """Transactions per second over the window."""
        return self.transactions / max(self.until - self.since, 1e-9)


class Activity:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pruned = 0.0
        if readonly:  # a reader (the API) takes no write lock, not even for the schema
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=10)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    @classmethod
    def open(cls, settings: Settings, readonly: bool = False) -> Activity:
        return cls(activity_file(settings), readonly)

    def record(
        self,
        worker: str,
        transactions: int,
        alerts: Sequence[bytes],
        dead_letters: int,
        latencies_ms: npt.ArrayLike,
        at: float | None = None,
    ) -> None:
        """One committed batch; ``alerts`` are the alert payloads it published."""
        at = time.time() if at is None else at
        histogram = Latencies()
        histogram.add(latencies_ms)
        used = np.flatnonzero(histogram.counts)
        sparse = json.dumps(dict(zip(used.tolist(), histogram.counts[used].tolist(), strict=True)))
        rows = []
        for payload in alerts:
            transaction_id = str(orjson.loads(payload)["transaction_id"])
            rows.append((transaction_id, at, payload.decode()))
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO batches (at, worker, transactions, alerts, dead_letters, latency) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (at, worker, transactions, len(alerts), dead_letters, sparse),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO alerts (transaction_id, at, payload) VALUES (?, ?, ?)",
                rows,
            )
            if at - self._pruned >= PRUNE_EVERY_S:
                self._prune(at)

    def _prune(self, now: float) -> None:
        self._db.execute("DELETE FROM batches WHERE at < ?", (now - KEEP_SECONDS,))
        self._db.execute(
            "DELETE FROM alerts WHERE id <= (SELECT max(id) FROM alerts) - ?", (KEEP_ALERTS,)
        )
        self._pruned = now

    def alerts(self, after: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """The newest alerts (after the alert id ``after``), newest first, each with its
        ``id`` and the time it was published (``published_at``, epoch seconds)."""
        with self._lock:
            found = self._db.execute(
                "SELECT id, at, payload FROM alerts WHERE id > ? ORDER BY id DESC LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            {"id": int(id_), "published_at": float(at), **orjson.loads(payload)}
            for id_, at, payload in found
        ]

    def window(
        self, seconds: float, bucket_seconds: float = 10.0, until: float | None = None
    ) -> ActivityWindow:
        """The batches of the ``seconds`` before ``until`` (now), in buckets."""
        until = time.time() if until is None else until
        since = until - seconds
        with self._lock:
            found = self._db.execute(
                "SELECT at, transactions, alerts, dead_letters, latency FROM batches "
                "WHERE at > ? AND at <= ? ORDER BY at",
                (since, until),
            ).fetchall()
            [(last,)] = self._db.execute("SELECT max(at) FROM batches").fetchall()
        total = Latencies()
        per_bucket: dict[int, tuple[list[int], Latencies]] = {}
        for at, transactions, alerts, dead_letters, latency in found:
            index = int((at - since) // bucket_seconds)
            counts, histogram = per_bucket.setdefault(index, ([0, 0, 0], Latencies()))
            counts[0] += transactions
            counts[1] += alerts
            counts[2] += dead_letters
            for bin_, count in json.loads(latency).items():
                if 0 <= int(bin_) < BINS:
                    histogram.counts[int(bin_)] += count
        buckets = []
        for index in sorted(per_bucket):
            counts, histogram = per_bucket[index]
            total.merge(histogram)
            buckets.append(
                Bucket(
                    start=since + index * bucket_seconds,
                    transactions=counts[0],
                    alerts=counts[1],
                    dead_letters=counts[2],
                    p50_ms=histogram.percentile(50) if len(histogram) else None,
                    p99_ms=histogram.percentile(99) if len(histogram) else None,
                )
            )
        return ActivityWindow(
            since=since,
            until=until,
            bucket_seconds=bucket_seconds,
            buckets=buckets,
            transactions=sum(b.transactions for b in buckets),
            alerts=sum(b.alerts for b in buckets),
            dead_letters=sum(b.dead_letters for b in buckets),
            latencies=total,
            last_batch_at=float(last) if last is not None else None,
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
