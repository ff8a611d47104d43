"""The handbook's protocol: which window is trained on, and which test rows are kept."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from lakebed.fraud.dataset import (
    HANDBOOK_TRAIN_START,
    NoTrainingDataError,
    TrainingWindow,
    choose_window,
    split,
)


def test_the_handbook_window_when_the_data_covers_it() -> None:
    window = choose_window(date(2018, 4, 1), date(2018, 9, 30), None, 7, 7, 7, 14)
    assert window == TrainingWindow(HANDBOOK_TRAIN_START)
    assert (window.train_end, window.test_start, window.test_end) == (
        date(2018, 8, 1),
        date(2018, 8, 8),
        date(2018, 8, 15),
    )


def test_otherwise_the_latest_window_whose_labels_arrived() -> None:
    window = choose_window(date(2018, 4, 1), date(2018, 5, 10), None, 7, 7, 7, 14)
    assert window.test_end == date(2018, 5, 10) - timedelta(days=14) + timedelta(days=1)
    assert window.train_start == date(2018, 4, 6)


def test_a_window_outside_the_data_is_refused_with_what_to_set() -> None:
    with pytest.raises(NoTrainingDataError, match=r"fraud\.train_start"):
        choose_window(date(2018, 4, 1), date(2018, 5, 10), date(2018, 5, 1), 7, 7, 7, 14)


def _row(card: str, day: date, fraud: bool) -> dict[str, object]:
    return {
        "transaction_id": f"tx_{card}_{day}",
        "card_id": card,
        "event_date": day,
        "event_time": datetime.combine(day, datetime.min.time()),
        "is_fraud": int(fraud),
    }


def test_known_compromised_cards_leave_the_test_days() -> None:
    window = TrainingWindow(date(2018, 7, 1), train_days=2, delay_days=2, test_days=3)
    # train 07-01..02, delay 07-03..04, test 07-05..07
    rows = [
        _row("a", date(2018, 7, 1), True),  # known from training: never tested
        _row("a", date(2018, 7, 5), True),
        _row("b", date(2018, 7, 3), True),  # fraud on the first delay day
        _row("b", date(2018, 7, 5), False),  # ... not known yet on the first test day
        _row("b", date(2018, 7, 6), True),  # ... known on the second (delay day before)
        _row("c", date(2018, 7, 7), True),
        _row("d", date(2018, 7, 2), False),
        _row("d", date(2018, 7, 8), True),  # after the test window
    ]
    train, test = split(pl.DataFrame(rows), window)
    assert sorted(train["transaction_id"]) == ["tx_a_2018-07-01", "tx_d_2018-07-02"]
    assert sorted(test["transaction_id"]) == ["tx_b_2018-07-05", "tx_c_2018-07-07"]
