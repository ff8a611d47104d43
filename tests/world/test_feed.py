"""The raw feed: every truth transaction is delivered, dirt is where the manifest says."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from lakebed.world.dirt import DIRTY_KINDS
from lakebed.world.events import FRAUD_PATTERNS
from lakebed.world.generate import generate_world
from lakebed.world.spec import ISO_4217, DirtyRates, FeedSpec, WorldSpec
from tests.world.helpers import feed_lines, manifest, truth

START = date(2018, 4, 1)


def file_day(path: str) -> int:
    return (date.fromisoformat(Path(path).stem.split("_")[-1]) - START).days


def utc_naive(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def dirty(small_home: Path) -> dict[tuple[str, int], dict[str, Any]]:
    return {(row["file"], row["line_number"]): row for row in manifest(small_home).to_dicts()}


@pytest.fixture(scope="module")
def clean_events(
    small_home: Path, dirty: dict[tuple[str, int], dict[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for path, lines in feed_lines(small_home).items():
        for number, line in enumerate(lines, start=1):
            if (path, number) not in dirty:
                events.append((path, json.loads(line)))
    return events


def test_every_day_has_a_file(small_home: Path, small_spec: WorldSpec) -> None:
    for folder in ("transactions", "chargebacks"):
        days = {file_day(path) for path in feed_lines(small_home, folder)}
        assert set(range(small_spec.n_days)) <= days


def test_clean_lines_are_the_truth(
    small_home: Path, small_spec: WorldSpec, clean_events: list[tuple[str, dict[str, Any]]]
) -> None:
    expected = {row["transaction_id"]: row for row in truth(small_home).to_dicts()}
    seen = set()
    for path, event in clean_events:
        number = int(event["transaction_id"].removeprefix("tx_"))
        row = expected[number]
        assert number not in seen
        seen.add(number)
        assert utc_naive(event["event_time"]) == row["tx_datetime"]
        assert event["amount"] == {"value": row["amount_cents"] / 100, "currency": "EUR"}
        assert event["card"]["customer_id"] == row["customer_id"]
        assert event["card"]["card_id"] == f"card_{row['customer_id']:08d}"
        assert event["terminal"]["terminal_id"] == row["terminal_id"]
        day = (row["tx_datetime"].date() - START).days
        assert file_day(path) == day  # on time: clean lines are in their own day's file
        version = 2 if day >= small_spec.schema_change_day else 1
        assert event["schema_version"] == version
        assert ("channel" in event) == (version == 2)
    malformed = manifest(small_home).filter(~pl.col("kind").is_in(["duplicate", "late"]))[
        "transaction_id"
    ]
    late = manifest(small_home).filter(pl.col("kind") == "late")["transaction_id"]
    delivered = seen | {int(t.removeprefix("tx_")) for t in [*malformed, *late]}
    assert delivered == set(expected)


def test_event_times_carry_local_offsets(
    clean_events: list[tuple[str, dict[str, Any]]],
) -> None:
    offsets = {event["event_time"][-6:] for _, event in clean_events}
    assert {"+01:00", "+02:00", "+03:00"} <= offsets  # three zones, with summer time


def test_lines_reconcile(small_home: Path) -> None:
    lines = sum(len(lines) for lines in feed_lines(small_home).values())
    duplicates = manifest(small_home).filter(pl.col("kind") == "duplicate")
    assert lines == len(truth(small_home)) + len(duplicates)


def test_each_dirty_line_is_what_the_manifest_says(
    small_home: Path, small_spec: WorldSpec, dirty: dict[tuple[str, int], dict[str, Any]]
) -> None:
    files = feed_lines(small_home)
    kinds = {row["kind"] for row in dirty.values()}
    assert kinds == set(DIRTY_KINDS)
    for (path, number), row in dirty.items():
        line = files[path][number - 1]
        kind = row["kind"]
        if kind == "duplicate":
            assert line == files[path][number - 2]
            continue
        if kind == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
            continue
        if kind == "truncated_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        event = json.loads(line)
        if kind == "late":
            event_day = (utc_naive(event["event_time"]).date() - START).days
            assert 1 <= file_day(path) - event_day <= small_spec.feed.late_max_days
        elif kind == "negative_amount":
            assert event["amount"]["value"] < 0
        elif kind == "unknown_currency":
            assert event["amount"]["currency"] not in ISO_4217
        elif kind == "missing_field":
            field = row["detail"].removeprefix("missing ").split(".")
            parent = event if len(field) == 1 else event[field[0]]
            assert field[-1] not in parent
        elif kind == "wrong_type":
            assert not _well_typed(event)


def _well_typed(event: dict[str, Any]) -> bool:
    return (
        isinstance(event["amount"]["value"], float | int)
        and isinstance(event["card"]["customer_id"], int)
        and isinstance(event["terminal"]["terminal_id"], int)
        and isinstance(event["event_time"], str)
    )


def test_chargebacks_report_every_fraud_late(small_home: Path, small_spec: WorldSpec) -> None:
    frauds = truth(small_home).filter(pl.col("is_fraud"))
    times = dict(zip(frauds["transaction_id"], frauds["tx_datetime"], strict=True))
    scenarios = dict(zip(frauds["transaction_id"], frauds["fraud_scenario"], strict=True))
    reported = set()
    for path, lines in feed_lines(small_home, "chargebacks").items():
        previous = None
        for line in lines:
            chargeback = json.loads(line)
            number = int(chargeback["transaction_id"].removeprefix("tx_"))
            at = utc_naive(chargeback["reported_at"])
            delay = at - times[number]
            feed = small_spec.feed
            assert timedelta(days=feed.chargeback_delay_min_days) <= delay
            assert delay < timedelta(days=feed.chargeback_delay_max_days + 1)
            assert (at.date() - START).days == file_day(path)
            assert previous is None or previous <= at
            previous = at
            assert chargeback["fraud_pattern"] == FRAUD_PATTERNS[scenarios[number]]
            reported.add(number)
    assert reported == set(times)


def test_reference_exports_cover_every_entity(small_home: Path, small_spec: WorldSpec) -> None:
    customers = pl.read_csv(small_home / "landing" / "reference" / "customers.csv")
    terminals = pl.read_csv(small_home / "landing" / "reference" / "terminals.csv")
    assert customers["customer_id"].to_list() == list(range(small_spec.n_customers))
    assert terminals["terminal_id"].to_list() == list(range(small_spec.n_terminals))
    assert terminals["mcc"].cast(pl.String).str.len_chars().eq(4).all()
    assert terminals["merchant_category"].null_count() == 0


def test_dirty_kinds_appear_at_their_rates(tmp_path: Path) -> None:
    rates = {kind: 0.01 for kind in DIRTY_KINDS}
    spec = WorldSpec(
        seed=3,
        n_customers=600,
        n_terminals=1000,
        n_days=30,
        radius=8.0,
        feed=FeedSpec(dirty=DirtyRates(**rates)),
    )
    generated = generate_world(spec, tmp_path, chunk_days=10)
    counts = manifest(generated.data_home).group_by("kind").len()
    n = generated.summary.transactions
    assert n > 20_000
    sigma = (n * 0.01 * 0.99) ** 0.5
    for kind, count in counts.iter_rows():
        assert abs(count - n * 0.01) < 5 * sigma, kind
    assert generated.summary.dirty_by_kind == dict(counts.iter_rows())


def test_dirt_can_be_switched_off(tmp_path: Path) -> None:
    rates = {kind: 0.0 for kind in DIRTY_KINDS}
    spec = WorldSpec(n_customers=50, n_terminals=100, n_days=5, radius=10.0)
    spec = spec.model_copy(update={"feed": FeedSpec(dirty=DirtyRates(**rates))})
    generated = generate_world(spec, tmp_path)
    assert manifest(generated.data_home).is_empty()
    assert generated.summary.transaction_lines == generated.summary.transactions
