"""Features declared once: the dbt models are their rendering, and they are point in time."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from lakebed.fraud.features import (
    FEATURE_NAMES,
    MODEL_FOR,
    RECENT_DELAY_DAYS,
    WINDOW_FEATURES,
    render_model,
)
from lakebed.lake.transform import DBT_PROJECT
from lakebed.world.spec import FeedSpec


@pytest.mark.parametrize("entity", ["customer", "terminal"])
def test_dbt_models_are_the_rendered_declarations(entity: str) -> None:
    path = DBT_PROJECT / "models" / "gold" / f"{MODEL_FOR[entity]}.sql"  # type: ignore[index]
    assert path.read_text() == render_model(entity), (  # type: ignore[arg-type]
        "regenerate the models: python -m lakebed.fraud.features"
    )


def test_the_handbooks_features_and_recent_terminal_windows_are_declared() -> None:
    assert set(FEATURE_NAMES) == {
        "amount",
        "is_weekend",
        "is_night",
        *(f"customer_transactions_{d}d" for d in (1, 7, 30)),
        *(f"customer_mean_amount_{d}d" for d in (1, 7, 30)),
        *(f"terminal_transactions_{d}d" for d in (1, 7, 30)),
        *(f"terminal_risk_{d}d" for d in (1, 7, 30)),
        *(f"terminal_recent_transactions_{d}d" for d in (1, 7, 30)),
        *(f"terminal_recent_risk_{d}d" for d in (1, 7, 30)),
    }
    delays = {f.name: f.delay_days for f in WINDOW_FEATURES if f.entity == "terminal"}
    assert {d for name, d in delays.items() if "recent" not in name} == {7}
    assert {d for name, d in delays.items() if "recent" in name} == {RECENT_DELAY_DAYS}


def test_recent_windows_end_after_every_late_event_has_arrived() -> None:
    """Online values equal offline ones whatever the arrival order only if no event in
    the window can still be on its way (the stream is partitioned by card, not terminal)."""
    assert FeedSpec().late_max_days < RECENT_DELAY_DAYS


START = datetime(2018, 5, 1)


def _terminal_features(
    rows: list[tuple[str, int, datetime, bool, datetime | None]],
) -> dict[str, dict[str, float]]:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE fct (transaction_id VARCHAR, terminal_id BIGINT, event_time TIMESTAMP, "
        "is_fraud BOOLEAN, fraud_reported_at TIMESTAMP, customer_id BIGINT, amount DOUBLE)"
    )
    connection.executemany(
        "INSERT INTO fct VALUES (?, ?, ?, ?, ?, 1, 10.0)", [list(row) for row in rows]
    )
    cursor = connection.execute(render_model("terminal", source="fct"))
    names = [column[0] for column in cursor.description]
    result = cursor.fetchall()
    connection.close()
    return {row[0]: dict(zip(names[3:], row[3:], strict=True)) for row in result}


def test_a_label_reported_later_changes_no_feature() -> None:
    day = timedelta(days=1)
    history = [(f"old{i}", 7, START + i * timedelta(hours=6), False, None) for i in range(8)]
    scored = ("now", 7, START + 9 * day, False, None)
    before = _terminal_features([*history, scored])

    # The fraud at old0 is only reported after "now" happened: "now" must not see it.
    late = [("old0", 7, START, True, START + 9 * day + timedelta(hours=1)), *history[1:]]
    after = _terminal_features([*late, scored])
    assert after["now"] == before["now"]

    # Reported before "now": the risk of "now" sees it.
    early = [("old0", 7, START, True, START + 9 * day - timedelta(hours=1)), *history[1:]]
    seen = _terminal_features([*early, scored])
    assert seen["now"] != before["now"]
    now = seen["now"]
    assert now["terminal_risk_7d"] == pytest.approx(1 / now["terminal_transactions_7d"])


def test_terminal_windows_end_at_the_delay() -> None:
    day = timedelta(days=1)
    rows = [
        ("a", 1, START, True, START + day),  # 10 days before "now": inside 7d..37d windows
        ("b", 1, START + 5 * day, True, START + 6 * day),  # 5 days before "now": in the delay
        ("now", 1, START + 10 * day, False, None),
    ]
    now = _terminal_features(rows)["now"]
    assert [now[f"terminal_transactions_{d}d"] for d in (1, 7, 30)] == [0, 1, 1]
    assert [now[f"terminal_risk_{d}d"] for d in (1, 7, 30)] == [0.0, 1.0, 1.0]
    # Recent windows end 4 days before "now": "b" sits on the 1-day window's far edge (both
    # ends count), "a" is only in the longer ones, "now" in none.
    assert [now[f"terminal_recent_transactions_{d}d"] for d in (1, 7, 30)] == [1, 2, 2]
    assert [now[f"terminal_recent_risk_{d}d"] for d in (1, 7, 30)] == [1.0, 1.0, 1.0]


def test_a_recent_window_never_sees_an_unreported_fraud() -> None:
    day = timedelta(days=1)
    rows = [
        ("fraud", 3, START, True, START + 6 * day),  # reported after "now"
        ("other", 3, START + day / 2, False, None),
        ("now", 3, START + 5 * day, False, None),
        ("later", 3, START + 7 * day, False, None),  # after the report
    ]
    features = _terminal_features(rows)
    assert features["now"]["terminal_recent_transactions_7d"] == 2
    assert features["now"]["terminal_recent_risk_7d"] == 0.0
    assert features["later"]["terminal_recent_risk_7d"] == pytest.approx(1 / 2)
