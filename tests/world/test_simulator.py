"""The ground truth follows the handbook's rules exactly, and its distributions statistically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import truncnorm

from lakebed.world.generate import Generated
from lakebed.world.spec import WorldSpec
from lakebed.world.transactions import TransactionSimulator
from tests.world.helpers import truth


@pytest.fixture(scope="module")
def default_truth() -> tuple[TransactionSimulator, pl.DataFrame]:
    """The handbook's default world (truth only, no feed): about 1.75M rows in ~2 s."""
    simulator = TransactionSimulator(WorldSpec())
    return simulator, pl.concat(list(simulator.days(0, 183)))


@pytest.fixture(scope="module")
def small_truth(small_home: Path) -> pl.DataFrame:
    start = pl.datetime(2018, 4, 1)
    return truth(small_home).with_columns(day=(pl.col("tx_datetime") - start).dt.total_days())


def test_every_amount_above_220_is_fraud(default_truth: tuple[object, pl.DataFrame]) -> None:
    _, frame = default_truth
    above = frame.filter(pl.col("amount_cents") > 22_000)
    assert len(above) > 1000
    assert above["is_fraud"].all()
    scenario_1 = frame.filter(pl.col("fraud_scenario") == 1)
    assert (scenario_1["amount_cents"] > 22_000).all()


def test_fraud_flag_matches_scenario(default_truth: tuple[object, pl.DataFrame]) -> None:
    _, frame = default_truth
    assert frame["amount_cents"].min() == 1  # the rounding floor: never a 0.00 payment
    assert (frame["is_fraud"] == (frame["fraud_scenario"] > 0)).all()


def test_terminal_windows_are_exact(small_home: Path, small_truth: pl.DataFrame) -> None:
    compromised = pl.read_csv(small_home / "world" / "compromised_terminals.csv")
    assert len(compromised) == 2 * 40
    in_window = (
        small_truth.join(compromised, on="terminal_id", suffix="_compromised")
        .filter(
            (pl.col("day") >= pl.col("day_compromised"))
            & (pl.col("day") < pl.col("day_compromised") + 28)
        )["transaction_id"]
        .unique()
    )
    assert len(in_window) > 50
    marked = small_truth.filter(pl.col("transaction_id").is_in(in_window.implode()))
    # Inside a window: fraud, scenario 2 unless scenario 3 took it over afterwards.
    assert marked["fraud_scenario"].is_in([2, 3]).all()
    outside = small_truth.filter(~pl.col("transaction_id").is_in(in_window.implode()))
    assert (outside["fraud_scenario"] != 2).all()


def test_customer_windows_take_exactly_a_third(small_home: Path, small_truth: pl.DataFrame) -> None:
    compromised = pl.read_csv(small_home / "world" / "compromised_customers.csv")
    windows = compromised.with_columns(end=pl.col("day") + 14)
    checked = 0
    for start, customer, end in windows.iter_rows():
        same_customer = windows.filter(pl.col("customer_id") == customer)
        overlapping = same_customer.filter((pl.col("day") < end) & (pl.col("end") > start))
        rows = small_truth.filter(
            (pl.col("customer_id") == customer) & pl.col("day").is_between(start, end - 1)
        )
        if len(overlapping) > 1:
            continue  # two windows of one customer share rows, as in the handbook
        assert (rows["fraud_scenario"] == 3).sum() == len(rows) // 3
        checked += 1
    assert checked > 100
    customers = windows["customer_id"].unique().implode()
    scenario_3 = small_truth.filter(pl.col("fraud_scenario") == 3)
    assert scenario_3["customer_id"].is_in(customers).all()


def test_customer_fraud_multiplies_the_amount(
    default_truth: tuple[TransactionSimulator, pl.DataFrame],
) -> None:
    simulator, frame = default_truth
    scenario_3 = frame.filter(pl.col("fraud_scenario") == 3)
    assert (scenario_3["amount_cents"] % 5 == 0).all()
    profile_mean = simulator.customers.mean_amount[scenario_3["customer_id"].to_numpy()]
    ratio = float(np.mean(scenario_3["amount_cents"].to_numpy() / 100 / profile_mean))
    assert 4.5 < ratio < 5.6  # x5 on amounts whose mean is the profile's mean


def test_volume_and_fraud_rate_match_the_handbook(
    default_truth: tuple[TransactionSimulator, pl.DataFrame],
) -> None:
    _, frame = default_truth
    # The handbook's world has 1,754,155 transactions and a 0.84% fraud rate; another seed
    # of the same process lands within a few percent of it.
    assert 1_700_000 < len(frame) < 1_810_000
    assert 0.0075 < frame["is_fraud"].mean() < 0.0095  # type: ignore[operator]
    by_scenario = dict(frame.group_by("fraud_scenario").len().iter_rows())
    assert 800 < by_scenario[1] < 1300
    assert 7000 < by_scenario[2] < 11000
    assert 3800 < by_scenario[3] < 5500


def test_times_and_amounts_follow_the_profiles(
    default_truth: tuple[TransactionSimulator, pl.DataFrame],
) -> None:
    simulator, frame = default_truth
    seconds = (
        (frame["tx_datetime"].dt.hour().cast(pl.Int64) * 3600)
        + frame["tx_datetime"].dt.minute().cast(pl.Int64) * 60
        + frame["tx_datetime"].dt.second().cast(pl.Int64)
    ).to_numpy()
    assert abs(seconds.mean() - 43_200) < 100
    # A normal of std 20,000 s cut to one day: the truncated normal's std.
    bound = 43_200 / 20_000
    expected_std = truncnorm.std(-bound, bound, loc=43_200, scale=20_000)
    assert abs(seconds.std() / expected_std - 1) < 0.01

    genuine = frame.filter(pl.col("fraud_scenario") == 0)
    per_customer = genuine.group_by("customer_id").agg(
        mean=pl.col("amount_cents").mean() / 100, n=pl.len()
    )
    busy = per_customer.filter(pl.col("n") >= 200)
    expected = simulator.customers.mean_amount[busy["customer_id"].to_numpy()]
    relative = np.abs(busy["mean"].to_numpy() - expected) / expected
    assert np.median(relative) < 0.05

    days = frame["tx_datetime"].dt.date().n_unique()
    per_day = frame.group_by("customer_id").len()
    rate = per_day["len"].to_numpy() / days
    wanted = simulator.customers.mean_tx_per_day[per_day["customer_id"].to_numpy()]
    assert np.corrcoef(rate, wanted)[0, 1] > 0.98


def test_terminals_are_within_reach(
    default_truth: tuple[TransactionSimulator, pl.DataFrame],
) -> None:
    simulator, frame = default_truth
    customers = frame["customer_id"].to_numpy()
    terminals = frame["terminal_id"].to_numpy()
    dx = simulator.customers.x[customers] - simulator.terminals.x[terminals]
    dy = simulator.customers.y[customers] - simulator.terminals.y[terminals]
    assert np.sqrt(dx**2 + dy**2).max() < 5.0
    # Customers with no terminal in reach never pay, as in the handbook.
    lonely = np.flatnonzero(simulator.reach.counts == 0)
    assert not np.isin(customers, lonely).any()


def test_transaction_ids_follow_time(small_truth: pl.DataFrame) -> None:
    assert small_truth["transaction_id"].to_list() == list(range(len(small_truth)))
    assert small_truth["tx_datetime"].is_sorted()


def test_days_must_come_in_order(small_spec: WorldSpec) -> None:
    simulator = TransactionSimulator(small_spec)
    with pytest.raises(ValueError, match="expected day 0"):
        simulator.day(3)


def test_generated_summary_counts_the_truth(
    small_world: Generated, small_truth: pl.DataFrame
) -> None:
    summary = small_world.summary
    assert summary.transactions == len(small_truth)
    assert summary.frauds == small_truth["is_fraud"].sum()
    assert summary.frauds_by_scenario["scenario_2"] == (small_truth["fraud_scenario"] == 2).sum()
