"""Point-in-time features of a transaction being scored, from the transaction history.

The scoring API sees one raw transaction at a time; its window features need the card's
and the terminal's history. ``FeatureHistory`` holds that history (read from
``gold.fct_transactions``) as sorted NumPy arrays and answers each window declared in
``lakebed.fraud.features`` with two binary searches, so scoring costs microseconds and
never rescans the history. The boundaries are the dbt models' exactly: a ``RANGE`` frame
includes both ends, customer windows end at the transaction (itself included), terminal
windows end ``delay_days`` before it and count only frauds reported before it. A test holds
these values equal to the gold feature marts.

Times are kept in whole seconds (the feed's resolution).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import polars as pl
from pyiceberg.catalog import Catalog

from lakebed.fraud.features import (
    FEATURE_NAMES,
    NIGHT_LAST_HOUR,
    WINDOW_FEATURES,
    WindowFeature,
    features_of,
)

DAY = 86_400
HISTORY_COLUMNS = (
    "transaction_id",
    "event_time",
    "customer_id",
    "terminal_id",
    "amount",
    "is_fraud",
    "fraud_reported_at",
)
# The time axis of the composite keys: far enough on either side of any history.
MARGIN_SECONDS = 3_650 * DAY
Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def _seconds(column: pl.Series) -> Int64s:
    return column.dt.epoch("s").to_numpy().astype(np.int64)


@dataclass(frozen=True)
class _Index:
    """Rows of one entity sorted by (entity id, time) as single int64 keys."""

    keys: Int64s
    origin: int
    span: int

    @classmethod
    def build(cls, entity: Int64s, seconds: Int64s, origin: int, span: int) -> _Index:
        return cls(entity * span + (seconds - origin), origin, span)

    def key(self, entity: Int64s, seconds: Int64s) -> Int64s:
        offset = np.clip(seconds - self.origin, 0, self.span - 1)
        return entity * self.span + offset

    def bounds(self, entity: Int64s, low: Int64s, high: Int64s) -> tuple[Int64s, Int64s]:
        """Index range [start, stop) of the rows with ``low <= time <= high``."""
        start = np.searchsorted(self.keys, self.key(entity, low), side="left")
        stop = np.searchsorted(self.keys, self.key(entity, high), side="right")
        return start.astype(np.int64), stop.astype(np.int64)


class FeatureHistory:
    """Window features of new transactions as of their own event time."""

    def __init__(self, history: pl.DataFrame) -> None:
        history = history.select(HISTORY_COLUMNS).sort("transaction_id")
        seconds = _seconds(history["event_time"])
        first = int(seconds.min()) if len(seconds) else 0
        last = int(seconds.max()) if len(seconds) else 0
        self._origin = first - MARGIN_SECONDS
        self._span = last - self._origin + MARGIN_SECONDS
        self._ids = history["transaction_id"].to_numpy()
        customers = history["customer_id"].to_numpy().astype(np.int64)
        terminals = history["terminal_id"].to_numpy().astype(np.int64)
        amounts = history["amount"].cast(pl.Float64).to_numpy()

        order = np.lexsort((seconds, customers))
        self._customer = _Index.build(customers[order], seconds[order], self._origin, self._span)
        self._customer_amounts = np.r_[0.0, np.cumsum(amounts[order])]
        self._own_customer = dict(zip(self._ids, customers, strict=True))

        order = np.lexsort((seconds, terminals))
        self._terminal = _Index.build(terminals[order], seconds[order], self._origin, self._span)

        fraud = history["is_fraud"].fill_null(False).to_numpy().astype(bool)
        reported = history["fraud_reported_at"].filter(pl.Series(fraud))
        fraud_seconds = seconds[fraud]
        fraud_terminals = terminals[fraud]
        order = np.lexsort((fraud_seconds, fraud_terminals))
        self._frauds = _Index.build(
            fraud_terminals[order], fraud_seconds[order], self._origin, self._span
        )
        self._fraud_reported = _seconds(reported)[order]

    @classmethod
    def from_catalog(cls, catalog: Catalog, since: date | None = None) -> FeatureHistory:
        """The history in ``gold.fct_transactions`` (from ``since`` on, when given)."""
        table = catalog.load_table("gold.fct_transactions")
        row_filter = f"event_date >= '{since}'" if since else "true"
        frame = pl.from_arrow(
            table.scan(row_filter=row_filter, selected_fields=HISTORY_COLUMNS).to_arrow()
        )
        assert isinstance(frame, pl.DataFrame)
        return cls(frame)

    def __len__(self) -> int:
        return len(self._ids)

    def features(self, batch: pl.DataFrame) -> pl.DataFrame:
        """``FEATURE_NAMES`` columns for each row of ``batch`` (``transaction_id``,
        ``event_time`` naive UTC, ``customer_id``, ``terminal_id``, ``amount``).

        A row whose transaction id is in the history is counted once, not twice (a replay);
        a new one is added to its customer's windows, as the dbt model includes it."""
        matrix = self.matrix(
            batch["transaction_id"].to_list(),
            _seconds(batch["event_time"]),
            batch["customer_id"].to_numpy().astype(np.int64),
            batch["terminal_id"].to_numpy().astype(np.int64),
            batch["amount"].cast(pl.Float64).to_numpy(),
        )
        frame = pl.DataFrame(matrix, schema=list(FEATURE_NAMES), orient="row")
        counts = [f.name for f in WINDOW_FEATURES if f.aggregation == "count"]
        return frame.with_columns(
            pl.col(*counts).cast(pl.Int64), pl.col("is_weekend", "is_night").cast(pl.Int8)
        )

    def matrix(
        self,
        transaction_ids: list[str],
        seconds: Int64s,
        customers: Int64s,
        terminals: Int64s,
        amounts: Floats,
    ) -> Floats:
        """The features as a float matrix in ``FEATURE_NAMES`` order: what a model takes.
        Plain arrays in and out, so scoring one transaction costs microseconds."""
        replay = np.array(
            [
                self._own_customer.get(tx) == customer
                for tx, customer in zip(transaction_ids, customers, strict=True)
            ],
            dtype=bool,
        )
        columns: dict[str, npt.NDArray[np.generic]] = {
            "amount": amounts,
            **instant_arrays(seconds),
        }
        for feature in features_of("customer"):
            columns.update(self._customer_window(feature, customers, seconds, amounts, replay))
        for feature in features_of("terminal"):
            columns.update(self._terminal_window(feature, terminals, seconds, replay))
        return np.column_stack([columns[name] for name in FEATURE_NAMES]).astype(np.float64)

    def _customer_window(
        self,
        feature: WindowFeature,
        customers: Int64s,
        seconds: Int64s,
        amounts: Floats,
        replay: npt.NDArray[np.bool_],
    ) -> dict[str, npt.NDArray[np.generic]]:
        low = seconds - (feature.window_days + feature.delay_days) * DAY
        high = seconds - feature.delay_days * DAY
        start, stop = self._customer.bounds(customers, low, high)
        count = stop - start
        total = self._customer_amounts[stop] - self._customer_amounts[start]
        # A new transaction is part of its own window; a replayed one already is.
        count = count + (~replay)
        total = total + np.where(replay, 0.0, amounts)
        if feature.aggregation == "count":
            return {feature.name: count}
        return {feature.name: total / np.maximum(count, 1)}

    def _terminal_window(
        self,
        feature: WindowFeature,
        terminals: Int64s,
        seconds: Int64s,
        replay: npt.NDArray[np.bool_],
    ) -> dict[str, npt.NDArray[np.generic]]:
        low = seconds - (feature.window_days + feature.delay_days) * DAY
        high = seconds - feature.delay_days * DAY
        start, stop = self._terminal.bounds(terminals, low, high)
        count = stop - start
        if feature.delay_days == 0:
            # A window that ends at the transaction holds it: a new one is added, a
            # replayed one is already there. (It is never a known fraud of its own window:
            # no chargeback is reported before the payment.)
            count = count + (~replay)
        if feature.aggregation == "count":
            return {feature.name: count}
        fraud_start, fraud_stop = self._frauds.bounds(terminals, low, high)
        lengths = fraud_stop - fraud_start
        frauds = np.zeros(len(terminals), dtype=np.int64)
        if lengths.sum():
            rows = np.repeat(np.arange(len(terminals)), lengths)
            positions = np.concatenate(
                [np.arange(a, b) for a, b in zip(fraud_start, fraud_stop, strict=True) if b > a]
            )
            known = self._fraud_reported[positions] < seconds[rows]
            frauds = np.bincount(rows[known], minlength=len(terminals)).astype(np.int64)
        return {feature.name: np.where(count > 0, frauds / np.maximum(count, 1), 0.0)}


def instant_arrays(seconds: Int64s) -> dict[str, npt.NDArray[np.generic]]:
    """``is_weekend`` and ``is_night`` from epoch seconds (UTC), as
    ``features.instant_features`` computes them in Polars (the parity test holds both)."""
    days = seconds // DAY
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    hour = (seconds % DAY) // 3600
    return {
        "is_weekend": (weekday >= 5).astype(np.int8),
        "is_night": (hour <= NIGHT_LAST_HOUR).astype(np.int8),
    }
