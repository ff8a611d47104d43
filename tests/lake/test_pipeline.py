"""Silver and gold against the simulator's ground truth and its dirty-row manifest."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from tests.conftest import Lakehouse
from tests.world.helpers import feed_lines, manifest, truth

RULE_OF_KIND = {
    "truncated_json": "invalid_json",
    "invalid_utf8": "invalid_encoding",
    "wrong_type": "wrong_type",
    "missing_field": "missing_required_field",
    "negative_amount": "non_positive_amount",
    "unknown_currency": "unknown_currency",
}


def table(lakehouse: Lakehouse, identifier: str) -> pl.DataFrame:
    return pl.scan_iceberg(lakehouse.catalog.load_table(identifier)).collect()


def located(
    frame: pl.DataFrame, file: str = "source_file", line: str = "line_number"
) -> set[tuple[str, int]]:
    return {(f"landing/{f}", n) for f, n in frame.select(file, line).iter_rows()}


def test_dbt_build_passes_every_test(lakehouse: Lakehouse) -> None:
    assert lakehouse.build.success
    tests = lakehouse.build.counts("test")
    assert tests["pass"] >= 70
    assert set(tests) == {"pass"}
    assert lakehouse.build.counts("model")["success"] >= 15


def test_every_malformed_line_is_quarantined_under_its_rule(lakehouse: Lakehouse) -> None:
    quarantine = table(lakehouse, "silver.quarantine").filter(pl.col("feed") == "transactions")
    got = {
        (f"landing/{f}", n): rule
        for f, n, rule in quarantine.select("source_file", "line_number", "failed_rule").iter_rows()
    }
    dirty = manifest(lakehouse.home).filter(pl.col("kind").is_in(list(RULE_OF_KIND)))
    expected = {
        (f, n): RULE_OF_KIND[kind]
        for f, n, kind in dirty.select("file", "line_number", "kind").iter_rows()
    }
    assert set(RULE_OF_KIND.values()) <= set(expected.values())
    assert got == expected  # the right rule for each, and no clean line quarantined


def test_duplicates_are_removed_first_arrival_wins(lakehouse: Lakehouse) -> None:
    removed = table(lakehouse, "silver.removed_duplicates")
    copies = manifest(lakehouse.home).filter(pl.col("kind") == "duplicate")
    assert located(removed) == set(copies.select("file", "line_number").iter_rows())
    assert (removed["kept_line_number"] == removed["line_number"] - 1).all()


def test_landing_lines_reconcile_exactly(lakehouse: Lakehouse) -> None:
    lines = sum(len(rows) for rows in feed_lines(lakehouse.home).values())
    silver = table(lakehouse, "silver.transactions")
    quarantined = table(lakehouse, "silver.quarantine").filter(pl.col("feed") == "transactions")
    removed = table(lakehouse, "silver.removed_duplicates")
    assert lines == len(silver) + len(quarantined) + len(removed)


def test_silver_is_the_truth_in_utc(lakehouse: Lakehouse) -> None:
    silver = table(lakehouse, "silver.transactions")
    expected = truth(lakehouse.home).with_columns(
        transaction_id=pl.format("tx_{}", pl.col("transaction_id").cast(pl.String).str.zfill(10))
    )
    joined = silver.join(expected, on="transaction_id", how="inner")
    assert len(joined) == len(silver)
    assert (joined["event_time"] == joined["tx_datetime"]).all()
    assert (
        (joined["amount"].cast(pl.Float64) * 100)
        .round(0)
        .cast(pl.Int64)
        .equals(joined["amount_cents"], check_names=False)
    )
    assert (joined["customer_id"] == joined["customer_id_right"]).all()
    late = manifest(lakehouse.home).filter(pl.col("kind") == "late")["transaction_id"]
    assert late.is_in(silver["transaction_id"].implode()).all()  # late events are kept


def test_fact_labels_follow_chargebacks(lakehouse: Lakehouse) -> None:
    fct = table(lakehouse, "gold.fct_transactions")
    expected = truth(lakehouse.home).select(
        pl.format("tx_{}", pl.col("transaction_id").cast(pl.String).str.zfill(10)).alias(
            "transaction_id"
        ),
        pl.col("is_fraud").alias("true_fraud"),
        "fraud_scenario",
    )
    joined = fct.join(expected, on="transaction_id")
    assert len(joined) == len(fct)
    assert (joined["is_fraud"] == joined["true_fraud"]).all()  # every fraud is reported here
    patterns = {1: "high_amount", 2: "compromised_terminal", 3: "compromised_card"}
    frauds = joined.filter(pl.col("is_fraud"))
    assert (frauds["fraud_pattern"] == frauds["fraud_scenario"].replace_strict(patterns)).all()
    assert (frauds["fraud_reported_at"] > frauds["event_time"]).all()


def test_customer_windows_match_an_independent_computation(lakehouse: Lakehouse) -> None:
    windows = table(lakehouse, "gold.customer_spending_windows")
    fct = table(lakehouse, "gold.fct_transactions").select("customer_id", "event_time", "amount")
    for row in windows.sample(150, seed=3).iter_rows(named=True):
        for days in (1, 7, 30):
            start = row["event_time"] - timedelta(days=days)
            history = fct.filter(
                (pl.col("customer_id") == row["customer_id"])
                & pl.col("event_time").is_between(start, row["event_time"])
            )
            assert row[f"customer_transactions_{days}d"] == len(history)
            mean = history.select(pl.col("amount").cast(pl.Float64).mean()).item()
            assert abs(float(row[f"customer_mean_amount_{days}d"]) - mean) < 1e-6


def test_terminal_risk_uses_a_delayed_window_and_known_labels(lakehouse: Lakehouse) -> None:
    risk = table(lakehouse, "gold.terminal_risk_windows")
    fct = table(lakehouse, "gold.fct_transactions").select(
        "terminal_id", "event_time", "is_fraud", "fraud_reported_at"
    )
    risky = risk.filter(pl.col("terminal_risk_30d") > 0)
    assert len(risky) > 20
    for row in pl.concat([risky.sample(80, seed=4), risk.sample(80, seed=5)]).iter_rows(named=True):
        end = row["event_time"] - timedelta(days=7)
        for days in (1, 7, 30):
            history = fct.filter(
                (pl.col("terminal_id") == row["terminal_id"])
                & pl.col("event_time").is_between(end - timedelta(days=days), end)
            )
            assert row[f"terminal_transactions_{days}d"] == len(history)
            known = history.filter(
                pl.col("is_fraud") & (pl.col("fraud_reported_at") < row["event_time"])
            )
            share = len(known) / len(history) if len(history) else 0.0
            assert abs(row[f"terminal_risk_{days}d"] - share) < 1e-9


def test_another_iceberg_reader_sees_gold(lakehouse: Lakehouse) -> None:
    written = {
        item.identifier: item.rows for item in lakehouse.published if item.mode == "replaced"
    }
    for identifier in ("gold.fct_transactions", "gold.dim_date", "gold.fraud_kpis_daily"):
        iceberg = lakehouse.catalog.load_table(identifier)
        assert pl.scan_iceberg(iceberg).select(pl.len()).collect().item() == written[identifier]
        duck = iceberg.scan().to_duckdb("t").execute("SELECT count(*) FROM t").fetchall()
        assert duck[0][0] == written[identifier]
