"""Scoring-time features equal the gold feature marts, and stay point in time."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from lakebed.config import Settings
from lakebed.fraud.dataset import read_gold_features
from lakebed.fraud.features import FEATURE_NAMES
from lakebed.fraud.history import FeatureHistory
from lakebed.lake.catalog import open_catalog

AMOUNTS = [f for f in FEATURE_NAMES if "amount" in f or "risk" in f]


def test_history_features_equal_the_gold_marts(default_lake: Settings) -> None:
    catalog = open_catalog(default_lake)
    history = FeatureHistory.from_catalog(catalog)
    gold = read_gold_features(catalog, date(2018, 4, 1), date(2018, 10, 1)).frame
    sample = gold.sample(50_000, seed=3)
    online = history.features(sample)
    for name in FEATURE_NAMES:
        expected = sample[name].cast(pl.Float64).to_numpy()
        got = online[name].cast(pl.Float64).to_numpy()
        if name in AMOUNTS:
            np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(got, expected, err_msg=name)


START = datetime(2018, 5, 1)


def _history(frauds_reported: dict[str, datetime]) -> FeatureHistory:
    rows = [
        {
            "transaction_id": f"old{i}",
            "event_time": START + i * timedelta(hours=6),
            "customer_id": 1,
            "terminal_id": 7,
            "amount": 10.0 * (i + 1),
            "is_fraud": f"old{i}" in frauds_reported,
            "fraud_reported_at": frauds_reported.get(f"old{i}"),
        }
        for i in range(8)
    ]
    return FeatureHistory(pl.DataFrame(rows))


def _new(at: datetime, amount: float = 5.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "transaction_id": ["new"],
            "event_time": [at],
            "customer_id": [1],
            "terminal_id": [7],
            "amount": [amount],
        }
    )


def test_a_new_transaction_counts_in_its_own_customer_windows() -> None:
    now = START + 8 * timedelta(hours=6)  # 2 days after the first, 6 h after the last
    features = _history({}).features(_new(now)).row(0, named=True)
    # 1 day back: old4..old7 (old4 is exactly 24 h before: range frames include the bound)
    assert features["customer_transactions_1d"] == 5
    assert features["customer_mean_amount_1d"] == pytest.approx((50 + 60 + 70 + 80 + 5) / 5)
    assert features["customer_transactions_30d"] == 9
    assert (features["amount"], features["is_night"]) == (5.0, 1)


def test_a_label_reported_later_changes_no_feature() -> None:
    now = START + timedelta(days=9)
    before = _history({}).features(_new(now)).row(0)
    late = _history({"old0": now + timedelta(hours=1)}).features(_new(now)).row(0)
    assert late == before
    early = _history({"old0": now - timedelta(hours=1)}).features(_new(now)).row(0, named=True)
    assert early["terminal_risk_7d"] == pytest.approx(1 / early["terminal_transactions_7d"])
