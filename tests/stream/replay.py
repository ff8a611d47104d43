"""Feeding gold transactions and their chargebacks through a feature store in time order."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from pyiceberg.catalog import Catalog

from lakebed.fraud.dataset import read_gold_features
from lakebed.fraud.features import FEATURE_NAMES
from lakebed.stream.store import Chargebacks, FeatureStore, Floats, Transactions


def gold_features(catalog: Catalog) -> pl.DataFrame:
    """Every gold transaction with its offline features, in event-time order."""
    frame = read_gold_features(catalog, date(2000, 1, 1), date(2100, 1, 1)).frame
    return frame.sort("event_time", "transaction_id")


def seconds(column: pl.Series) -> list[int]:
    return column.dt.epoch("s").to_list()


def batch_of(frame: pl.DataFrame) -> Transactions:
    return Transactions.of(
        frame["transaction_id"].to_list(),
        seconds(frame["event_time"]),
        frame["customer_id"].to_list(),
        frame["terminal_id"].to_list(),
        frame["amount"].cast(pl.Float64).to_list(),
    )


def replay(store: FeatureStore, frame: pl.DataFrame, batch_size: int = 500) -> Floats:
    """Online features of every row of ``frame`` (sorted by event time), chargebacks
    recorded as soon as they were reported, as a live engine would see them."""
    frauds = frame.filter(pl.col("is_fraud") == 1).sort("fraud_reported_at")
    reported = np.asarray(seconds(frauds["fraud_reported_at"]), dtype=np.int64)
    fraud_ids = frauds["transaction_id"].to_list()
    done = 0
    out = []
    for start in range(0, frame.height, batch_size):
        chunk = frame.slice(start, batch_size)
        last = seconds(chunk["event_time"])[-1]
        due = int(np.searchsorted(reported, last, side="right"))
        if due > done:
            store.record_chargebacks(Chargebacks(fraud_ids[done:due], reported[done:due]))
            done = due
        out.append(store.update(batch_of(chunk)))
    return np.vstack(out)


def assert_equal_to_gold(online: Floats, frame: pl.DataFrame) -> None:
    for column, name in enumerate(FEATURE_NAMES):
        expected = frame[name].cast(pl.Float64).to_numpy()
        got = online[:, column]
        if "amount" in name or "risk" in name:
            # amounts to the cent; risks are ratios of exact counts
            np.testing.assert_allclose(got, expected, atol=0.005, rtol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(got, expected, err_msg=name)
