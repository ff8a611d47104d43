"""Features declared once: the dbt models are their rendering, and they are point in time."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from lakebed.fraud.features import (
    FEATURE_NAMES,
    MODEL_FOR,
    WINDOW_FEATURES,
    render_model,
)
from lakebed.lake.transform import DBT_PROJECT


@pytest.mark.parametrize("entity", ["customer", "terminal"])
def test_dbt_models_are_the_rendered_declarations(entity: str) -> None:
    path = DBT_PROJECT / "models" / "gold" / f"{MODEL_FOR[entity]}.sql"  # type: ignore[index]
    assert path.read_text() == render_model(entity), (  # type: ignore[arg-type]
        "regenerate the models: python -m lakebed.fraud.features"
    )


def test_the_handbooks_features_are_declared() -> None:
    assert set(FEATURE_NAMES) == {
        "amount",
        "is_weekend",
        "is_night",
        *(f"customer_transactions_{d}d" for d in (1, 7, 30)),
        *(f"customer_mean_amount_{d}d" for d in (1, 7, 30)),
        *(f"terminal_transactions_{d}d" for d in (1, 7, 30)),
        *(f"terminal_risk_{d}d" for d in (1, 7, 30)),
    }
    assert {f.delay_days for f in WINDOW_FEATURES if f.entity == "terminal"} == {7}


START = datetime(2018, 5, 1)


def _terminal_features(
    rows: list[tuple[str, int, datetime, bool, datetime | None]],
) -> dict[str, tuple[float, ...]]:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE fct (transaction_id VARCHAR, terminal_id BIGINT, event_time TIMESTAMP, "
        "is_fraud BOOLEAN, fraud_reported_at TIMESTAMP, customer_id BIGINT, amount DOUBLE)"
    )
    connection.executemany(
        "INSERT INTO fct VALUES (?, ?, ?, ?, ?, 1, 10.0)", [list(row) for row in rows]
    )
    result = connection.execute(render_model("terminal", source="fct")).fetchall()
    connection.close()
    return {row[0]: tuple(row[3:]) for row in result}


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
    transactions_7d, risk_7d = seen["now"][1], seen["now"][4]
    assert risk_7d == pytest.approx(1 / transactions_7d)


def test_terminal_windows_end_at_the_delay() -> None:
    day = timedelta(days=1)
    rows = [
        ("a", 1, START, True, START + day),  # 10 days before "now": inside 7d..37d windows
        ("b", 1, START + 5 * day, True, START + 6 * day),  # 5 days before "now": in the delay
        ("now", 1, START + 10 * day, False, None),
    ]
    features = _terminal_features(rows)
    transactions_1d, transactions_7d, transactions_30d, risk_1d, risk_7d, risk_30d = features["now"]
    assert (transactions_1d, transactions_7d, transactions_30d) == (0, 1, 1)
    assert (risk_1d, risk_7d, risk_30d) == (0.0, 1.0, 1.0)
