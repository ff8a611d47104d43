"""The in-process feature store (local profile): sorted NumPy arrays, vectorised per batch.

Each entity's events sit in one sorted int64 array of keys ``entity << 32 | second``, so a
window of any entity is two binary searches, and amounts in a prefix sum beside it, so its
total is one subtraction. A batch is merged in with one insert; events older than the
longest window (plus its delay) are dropped from time to time. Exact at the second, like
the offline SQL's ``RANGE`` frames, and no history is rescanned per event.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lakebed.fraud.features import features_of
from lakebed.stream.store import (
    DAY,
    RETENTION_DAYS,
    Chargebacks,
    FeatureStore,
    Int64s,
    Transactions,
    window_bounds,
)

SHIFT = np.int64(32)
TRIM_EVERY = 100_000  # events recorded between two expiry passes
MERGE_AT = 20_000  # events in the small run before it is merged into the large one


def _keys(entities: Int64s, seconds: Int64s) -> Int64s:
    return (entities << SHIFT) | seconds


class _Sorted:
    """Sorted keys with a prefix sum of cents beside them."""

    def __init__(self, keys: Int64s, cents: Int64s) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.cents = cents[order]
        self.prefix = np.r_[np.int64(0), np.cumsum(self.cents)]

    def window(self, low: Int64s, high: Int64s) -> tuple[Int64s, Int64s]:
        start = np.searchsorted(self.keys, low, side="left")
        stop = np.searchsorted(self.keys, high, side="right")
        return (stop - start).astype(np.int64), self.prefix[stop] - self.prefix[start]


EMPTY = np.empty(0, dtype=np.int64)


class _Events:
    """(entity, second) keys with amounts in cents: a large sorted run and a small one
    that takes the new events, merged into the large one when it grows (as an LSM tree
    does), so a batch costs a sort of the small run, not a copy of everything."""

    def __init__(self) -> None:
        self.base = _Sorted(EMPTY, EMPTY)
        self.recent = _Sorted(EMPTY, EMPTY)

    def add(self, keys: Int64s, cents: Int64s) -> None:
        keys = np.concatenate([self.recent.keys, keys])
        cents = np.concatenate([self.recent.cents, cents])
        if len(keys) > MERGE_AT:
            self.base = _Sorted(
                np.concatenate([self.base.keys, keys]), np.concatenate([self.base.cents, cents])
            )
            self.recent = _Sorted(EMPTY, EMPTY)
        else:
            self.recent = _Sorted(keys, cents)

    def window(self, low: Int64s, high: Int64s) -> tuple[Int64s, Int64s]:
        """Count and cent total of the events with ``low <= key <= high``."""
        count, cents = self.base.window(low, high)
        if len(self.recent.keys):
            more, extra = self.recent.window(low, high)
            count, cents = count + more, cents + extra
        return count, cents

    def trim(self, oldest: int) -> None:
        """Drop events before second ``oldest`` (every entity's)."""
        keys = np.concatenate([self.base.keys, self.recent.keys])
        cents = np.concatenate([self.base.cents, self.recent.cents])
        keep = (keys & np.int64(0xFFFFFFFF)) >= oldest
        self.base = _Sorted(keys[keep], cents[keep])
        self.recent = _Sorted(EMPTY, EMPTY)


class MemoryStore(FeatureStore):
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._customers = _Events()
        self._terminals = _Events()
        self._seen: dict[str, tuple[int, int]] = {}  # transaction -> (terminal, second)
        self._waiting: dict[str, int] = {}  # chargebacks ahead of their transaction
        self._frauds: dict[str, tuple[int, int, int]] = {}  # -> (terminal, second, reported)
        self._fraud_keys: Int64s = np.empty(0, dtype=np.int64)
        self._fraud_reported: Int64s = np.empty(0, dtype=np.int64)
        self._fraud_index_stale = False
        self._since_trim = 0
        self._latest = 0

    def close(self) -> None:
        """Nothing to release."""

    def _record_and_read(self, batch: Transactions) -> dict[str, npt.NDArray[np.generic]]:
        self._record(batch)
        windows: dict[str, npt.NDArray[np.generic]] = {}
        for feature in features_of("customer"):
            low, high = window_bounds(feature, batch.seconds)
            count, cents = self._customers.window(
                _keys(batch.customers, low), _keys(batch.customers, high)
            )
            windows[feature.name] = count
            windows[f"{feature.name}:cents"] = cents
        for feature in features_of("terminal"):
            low, high = window_bounds(feature, batch.seconds)
            if feature.aggregation == "count":
                windows[feature.name], _ = self._terminals.window(
                    _keys(batch.terminals, low), _keys(batch.terminals, high)
                )
            else:
                windows[feature.name] = self._known_frauds(batch, low, high)
        return windows

    def _record(self, batch: Transactions) -> None:
        new: list[int] = []
        for row, transaction in enumerate(batch.transaction_ids):
            if transaction not in self._seen:
                terminal, second = int(batch.terminals[row]), int(batch.seconds[row])
                self._seen[transaction] = (terminal, second)
                new.append(row)
                reported = self._waiting.pop(transaction, None)
                if reported is not None:
                    self._frauds[transaction] = (terminal, second, reported)
                    self._fraud_index_stale = True
        if not new:
            return
        rows = np.asarray(new, dtype=np.intp)
        seconds = batch.seconds[rows]
        self._customers.add(_keys(batch.customers[rows], seconds), batch.cents[rows])
        self._terminals.add(_keys(batch.terminals[rows], seconds), np.zeros(len(rows), np.int64))
        self._latest = max(self._latest, int(seconds.max()))
        self._since_trim += len(rows)
        if self._since_trim >= TRIM_EVERY:
            self._trim()
        self._index_frauds()

    def record_chargebacks(self, chargebacks: Chargebacks) -> None:
        for transaction, reported in zip(
            chargebacks.transaction_ids, chargebacks.reported_seconds.tolist(), strict=True
        ):
            known = self._frauds.get(transaction)
            if known is not None:
                if reported < known[2]:  # the first report is when the label became known
                    self._frauds[transaction] = (known[0], known[1], reported)
                    self._fraud_index_stale = True
                continue
            seen = self._seen.get(transaction)
            if seen is None:
                self._waiting[transaction] = min(reported, self._waiting.get(transaction, reported))
            else:
                self._frauds[transaction] = (*seen, reported)
            self._fraud_index_stale = True
        self._index_frauds()

    def _index_frauds(self) -> None:
        if not self._fraud_index_stale:
            return
        self._fraud_index_stale = False
        entries = np.array(list(self._frauds.values()), dtype=np.int64).reshape(-1, 3)
        keys = _keys(entries[:, 0], entries[:, 1])
        order = np.argsort(keys, kind="stable")
        self._fraud_keys = keys[order]
        self._fraud_reported = entries[order, 2]

    def _known_frauds(self, batch: Transactions, low: Int64s, high: Int64s) -> Int64s:
        """Frauds in each row's window whose chargeback was reported before the row."""
        start = np.searchsorted(self._fraud_keys, _keys(batch.terminals, low), side="left")
        stop = np.searchsorted(self._fraud_keys, _keys(batch.terminals, high), side="right")
        lengths = stop - start
        if not lengths.sum():
            return np.zeros(len(batch), dtype=np.int64)
        rows = np.repeat(np.arange(len(batch)), lengths)
        positions = np.concatenate(
            [np.arange(a, b) for a, b in zip(start, stop, strict=True) if b > a]
        )
        known = self._fraud_reported[positions] < batch.seconds[rows]
        return np.bincount(rows[known], minlength=len(batch)).astype(np.int64)

    def _trim(self) -> None:
        oldest = self._latest - RETENTION_DAYS * DAY
        self._customers.trim(oldest)
        self._terminals.trim(oldest)
        self._seen = {t: v for t, v in self._seen.items() if v[1] >= oldest}
        self._frauds = {t: v for t, v in self._frauds.items() if v[1] >= oldest}
        self._fraud_index_stale = True
        self._since_trim = 0
