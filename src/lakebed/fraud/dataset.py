"""Training data: gold features read from Iceberg, split by the handbook's protocol.

The features come from the published gold tables (``fct_transactions`` and the two feature
marts rendered from ``lakebed.fraud.features``), read at pinned snapshots whose ids are
recorded with the model, so a training run can be repeated against exactly what it read.

The split follows the handbook (Le Borgne et al., ch. 3.3, ``get_train_test_set``): a
training window of days, then a delay period in which labels are still arriving, then a
test window. In the test window a card already known to be compromised (a fraud in the
training window or on the delay-period day before) is left out, as investigators would
have blocked it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from lakebed.fraud.features import FEATURE_NAMES, MODEL_FOR, features_of, instant_features

FACT_TABLE = "gold.fct_transactions"
FEATURE_TABLES = tuple(f"gold.{model}" for model in MODEL_FOR.values())
HANDBOOK_TRAIN_START = date(2018, 7, 25)
FACT_COLUMNS = (
    "transaction_id",
    "event_time",
    "event_date",
    "customer_id",
    "card_id",
    "terminal_id",
    "amount",
    "is_fraud",
    "fraud_reported_at",
)


class NoTrainingDataError(RuntimeError):
    """The gold tables are missing or do not cover the training window."""


@dataclass(frozen=True)
class TrainingWindow:
    """Training days, then a delay while labels arrive, then the test days."""

    train_start: date
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    @property
    def train_end(self) -> date:
        """First day after the training window."""
        return self.train_start + timedelta(days=self.train_days)

    @property
    def test_start(self) -> date:
        return self.train_end + timedelta(days=self.delay_days)

    @property
    def test_end(self) -> date:
        """First day after the test window."""
        return self.test_start + timedelta(days=self.test_days)

    @property
    def span_days(self) -> int:
        return self.train_days + self.delay_days + self.test_days

    def describe(self) -> str:
        last = timedelta(days=1)
        return (
            f"train {self.train_start}..{self.train_end - last}, "
            f"delay to {self.test_start - last}, test {self.test_start}..{self.test_end - last}"
        )


def choose_window(
    first_day: date,
    last_day: date,
    train_start: date | None,
    train_days: int,
    delay_days: int,
    test_days: int,
    label_wait_days: int,
) -> TrainingWindow:
    """The window to train on: ``train_start`` when given; else the handbook's dates when the
    data covers them; else the latest window whose test labels had ``label_wait_days`` to
    arrive. Refuses a window outside the data with a message that says what to set."""
    shape = {"train_days": train_days, "delay_days": delay_days, "test_days": test_days}
    if train_start is None:
        handbook = TrainingWindow(HANDBOOK_TRAIN_START, **shape)
        if first_day <= handbook.train_start and handbook.test_end <= last_day + timedelta(days=1):
            return handbook
        span = train_days + delay_days + test_days
        train_start = last_day - timedelta(days=label_wait_days + span - 1)
    window = TrainingWindow(train_start, **shape)
    if window.train_start < first_day or window.test_end > last_day + timedelta(days=1):
        raise NoTrainingDataError(
            f"the training window ({window.describe()}) is outside the data "
            f"({first_day}..{last_day}); set fraud.train_start to a day in range"
        )
    return window


@dataclass(frozen=True)
class GoldFeatures:
    """Features and labels of the transactions in a date range, with the snapshots read."""

    frame: pl.DataFrame
    snapshots: dict[str, int]
    first_day: date
    last_day: date


def _load(catalog: Catalog, name: str) -> Table:
    try:
        return catalog.load_table(name)
    except Exception as error:  # pyiceberg raises NoSuchTableError / NoSuchNamespaceError
        raise NoTrainingDataError(
            f"{name} is not published yet: run `lakebed run` to build the lakehouse first"
        ) from error


def data_range(catalog: Catalog) -> tuple[date, date]:
    """The first and last event date in ``gold.fct_transactions``."""
    table = _load(catalog, FACT_TABLE)
    if table.current_snapshot() is None:
        raise NoTrainingDataError(f"{FACT_TABLE} is empty: run `lakebed run` first")
    days = pl.from_arrow(table.scan(selected_fields=("event_date",)).to_arrow())
    assert isinstance(days, pl.DataFrame)
    if days.is_empty():
        raise NoTrainingDataError(f"{FACT_TABLE} is empty: run `lakebed run` first")
    return days["event_date"].min(), days["event_date"].max()  # type: ignore[return-value]


def read_gold_features(catalog: Catalog, start: date, end: date) -> GoldFeatures:
    """Every transaction with ``start <= event_date < end``: its features and label.

    Each table is read at its current snapshot, and the snapshot ids are returned."""
    snapshots: dict[str, int] = {}
    frames: dict[str, pl.DataFrame] = {}
    low = datetime.combine(start, datetime.min.time()).isoformat()
    high = datetime.combine(end, datetime.min.time()).isoformat()
    for name, columns, row_filter in (
        (FACT_TABLE, FACT_COLUMNS, f"event_date >= '{start}' and event_date < '{end}'"),
        *(
            (
                table,
                ("transaction_id", *(f.name for f in features_of(entity))),
                f"event_time >= '{low}' and event_time < '{high}'",
            )
            for table, entity in zip(FEATURE_TABLES, MODEL_FOR, strict=True)
        ),
    ):
        table = _load(catalog, name)
        snapshot = table.current_snapshot()
        if snapshot is None:
            raise NoTrainingDataError(f"{name} is empty: run `lakebed run` first")
        snapshots[name] = snapshot.snapshot_id
        scan = table.scan(
            row_filter=row_filter, selected_fields=columns, snapshot_id=snapshot.snapshot_id
        )
        frame = pl.from_arrow(scan.to_arrow())
        assert isinstance(frame, pl.DataFrame)
        frames[name] = frame
    fact = frames[FACT_TABLE]
    frame = fact.with_columns(*instant_features(pl.col("event_time"), pl.col("amount")))
    for name in FEATURE_TABLES:
        frame = frame.join(frames[name], on="transaction_id", how="left")
    missing = frame.filter(pl.any_horizontal(pl.col(FEATURE_NAMES).is_null())).height
    if missing:
        raise NoTrainingDataError(
            f"{missing} transactions have no feature values: the feature marts are behind "
            f"{FACT_TABLE}; run `lakebed run` again"
        )
    frame = frame.with_columns(pl.col("is_fraud").cast(pl.Int8)).sort("transaction_id")
    return GoldFeatures(frame, snapshots, start, end - timedelta(days=1))


def split(frame: pl.DataFrame, window: TrainingWindow) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test) the handbook's way: known compromised cards leave the test days."""
    day = pl.col("event_date")
    train = frame.filter((day >= window.train_start) & (day < window.train_end))
    known = set(train.filter(pl.col("is_fraud") == 1)["card_id"].to_list())
    test_days = []
    for offset in range(window.test_days):
        delay_day = window.train_end + timedelta(days=offset - 1)
        known |= set(
            frame.filter((day == delay_day) & (pl.col("is_fraud") == 1))["card_id"].to_list()
        )
        test_day = window.test_start + timedelta(days=offset)
        test_days.append(frame.filter((day == test_day) & ~pl.col("card_id").is_in(list(known))))
    return train, pl.concat(test_days).sort("transaction_id")
