"""The online feature store: one interface, an in-process implementation and a Redis one.

The store keeps what the windows declared in ``lakebed.fraud.features`` need, updated
incrementally as events arrive, and answers each transaction's features as of its own
event time with the boundaries of the offline (dbt) models exactly: customer windows end
at the transaction, itself included; terminal windows end ``delay_days`` before it and
count a fraud only if its chargeback was reported before the transaction. A parity test
holds both implementations equal to the gold feature marts.

Effects are idempotent per transaction id: recording a transaction or a chargeback twice
(a replay after a crash, a duplicate in the feed) changes nothing, and a transaction's
features read again are the same, because every read is bounded by the event's own time.
Amounts are kept in integer cents, so sums are exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import numpy as np
import numpy.typing as npt

from lakebed.fraud.features import FEATURE_NAMES, WINDOW_FEATURES, WindowFeature
from lakebed.fraud.history import instant_arrays

if TYPE_CHECKING:
    from lakebed.config import Settings

DAY = 86_400
Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
# What a store must remember: the widest window plus its delay, and a day of slack.
RETENTION_DAYS = max(f.window_days + f.delay_days for f in WINDOW_FEATURES) + 1


@dataclass(frozen=True)
class Transactions:
    """A batch of transactions as arrays (times in epoch seconds, amounts in cents)."""

    transaction_ids: list[str]
    seconds: Int64s
    customers: Int64s
    terminals: Int64s
    cents: Int64s

    def __len__(self) -> int:
        return len(self.transaction_ids)

    @classmethod
    def of(
        cls,
        transaction_ids: list[str],
        seconds: list[int],
        customers: list[int],
        terminals: list[int],
        amounts: list[float],
    ) -> Transactions:
        return cls(
            transaction_ids,
            np.asarray(seconds, dtype=np.int64),
            np.asarray(customers, dtype=np.int64),
            np.asarray(terminals, dtype=np.int64),
            np.rint(np.asarray(amounts, dtype=np.float64) * 100).astype(np.int64),
        )

    def take(self, rows: npt.NDArray[np.intp]) -> Transactions:
        return Transactions(
            [self.transaction_ids[i] for i in rows],
            self.seconds[rows],
            self.customers[rows],
            self.terminals[rows],
            self.cents[rows],
        )


@dataclass(frozen=True)
class Chargebacks:
    transaction_ids: list[str]
    reported_seconds: Int64s

    def __len__(self) -> int:
        return len(self.transaction_ids)


class FeatureStore(ABC):
    @abstractmethod
    def update(self, batch: Transactions) -> Floats:
        """Record the batch's new transactions, then return every row's features (in
        ``FEATURE_NAMES`` order, what the model takes) as of its event time."""

    @abstractmethod
    def record_chargebacks(self, chargebacks: Chargebacks) -> None:
        """Mark transactions as fraud from the time their chargeback was reported (a
        chargeback may arrive before its transaction; it waits for it)."""

    @abstractmethod
    def clear(self) -> None:
        """Forget everything (tests, and a demo that replays from scratch)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def assemble(batch: Transactions, windows: dict[str, npt.NDArray[np.generic]]) -> Floats:
    """The feature matrix from a store's window answers: per window feature ``<name>``
    counts, and for mean amounts also ``<name>:cents`` (sums); for terminal risk
    ``<name>`` holds the known frauds and ``<count name>`` the transactions."""
    if not len(batch):
        return np.empty((0, len(FEATURE_NAMES)))
    columns: dict[str, npt.NDArray[np.generic]] = {
        "amount": batch.cents / 100.0,
        **instant_arrays(batch.seconds),
    }
    for feature in WINDOW_FEATURES:
        columns[feature.name] = _value(feature, windows)
    return np.column_stack([columns[name] for name in FEATURE_NAMES]).astype(np.float64)


def _value(feature: WindowFeature, windows: dict[str, npt.NDArray[np.generic]]) -> Floats:
    raw = np.asarray(windows[feature.name], dtype=np.float64)
    if feature.aggregation == "count":
        return raw
    if feature.aggregation == "mean_amount":
        return mean_amount(np.asarray(windows[f"{feature.name}:cents"], dtype=np.float64), raw)
    return risk_share(raw, np.asarray(windows[feature.counted().name], dtype=np.float64))


def mean_amount(cents: Floats, counts: Floats) -> Floats:
    """A window's mean amount in currency units (0 for an empty window)."""
    return cents / np.maximum(counts, 1) / 100.0


def risk_share(frauds: Floats, counts: Floats) -> Floats:
    """The share of a window's transactions known to be fraud (0 for an empty window)."""
    return np.where(counts > 0, frauds / np.maximum(counts, 1), 0.0)


def open_store(settings: Settings) -> FeatureStore:
    """The profile's store: in-process for ``local``, Redis for ``cluster``."""
    if settings.profile == "cluster":
        from lakebed.stream.redis_store import RedisStore

        return RedisStore(settings.stream.redis_url.get_secret_value())
    from lakebed.stream.memory_store import MemoryStore

    return MemoryStore()
