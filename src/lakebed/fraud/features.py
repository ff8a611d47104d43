"""The fraud model's features, declared once.

Each window feature is data: an entity (customer or terminal), an aggregation, a window
and a delay. The offline computation (the dbt gold models ``customer_spending_windows`` and
``terminal_risk_windows``) is rendered from these declarations by ``render_model``, and a
test holds the committed dbt files equal to the rendering; the online computation of the
stream engine follows from the same declarations.

Point in time: a terminal's risk counts only frauds whose chargeback was reported before
the transaction being scored, because that is all a scorer could have known. Adding a
label reported later never changes an earlier feature value.

Two sets of terminal windows: the handbook's, which end ``DELAY_DAYS`` before the
transaction (its stand-in for labels that arrive late), and ``recent`` ones that end
``RECENT_DELAY_DAYS`` before it. The reported-before rule already keeps unknown labels
out, so the recent windows are as honest, and they see more of a terminal compromised in
the last week. They cannot end at the transaction: the stream is partitioned by card, so
a terminal's events reach a worker in an order that depends on how partitions interleave,
and the feed delivers events up to 3 days late (``feed.late_max_days``); a window that
ends 4 days back holds only events that have all arrived, so its online value is the
offline one whatever the arrival order, and a worker redoing a batch after a crash gets
the same answer. (Windows ending at the transaction scored a little better on the test
week, AP 0.703 against 0.687 for 4 days back, both at 256 bins, and broke exactly that.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

import polars as pl

Entity = Literal["customer", "terminal"]
Aggregation = Literal["count", "mean_amount", "fraud_share"]

CUSTOMER_WINDOWS_DAYS = (1, 7, 30)
TERMINAL_WINDOWS_DAYS = (1, 7, 30)
DELAY_DAYS = 7  # labels arrive late: terminal windows end a week before the transaction
# The recent terminal windows end this long before the transaction: more than the feed's
# largest lateness, so every event in them has arrived (see the module's docstring).
RECENT_DELAY_DAYS = 4
NIGHT_LAST_HOUR = 6  # is_night: hour <= 6


@dataclass(frozen=True)
class WindowFeature:
    entity: Entity
    aggregation: Aggregation
    window_days: int
    delay_days: int = 0
    tag: str = ""  # tells apart windows of the same length that end at different times

    @cached_property  # the stream engine asks for names on every batch
    def name(self) -> str:
        measure = {"count": "transactions", "mean_amount": "mean_amount", "fraud_share": "risk"}
        tag = f"{self.tag}_" if self.tag else ""
        return f"{self.entity}_{tag}{measure[self.aggregation]}_{self.window_days}d"

    def counted(self) -> WindowFeature:
        """The count over the same window (a risk's denominator)."""
        return _counted(self)


@cache
def _counted(feature: WindowFeature) -> WindowFeature:
    return replace(feature, aggregation="count")


CUSTOMER_AGGREGATIONS: tuple[Aggregation, ...] = ("count", "mean_amount")
TERMINAL_AGGREGATIONS: tuple[Aggregation, ...] = ("count", "fraud_share")
WINDOW_FEATURES: tuple[WindowFeature, ...] = (
    *(
        WindowFeature("customer", aggregation, days)
        for days in CUSTOMER_WINDOWS_DAYS
        for aggregation in CUSTOMER_AGGREGATIONS
    ),
    *(
        WindowFeature("terminal", aggregation, days, DELAY_DAYS)
        for days in TERMINAL_WINDOWS_DAYS
        for aggregation in TERMINAL_AGGREGATIONS
    ),
    *(
        WindowFeature("terminal", aggregation, days, RECENT_DELAY_DAYS, "recent")
        for days in TERMINAL_WINDOWS_DAYS
        for aggregation in TERMINAL_AGGREGATIONS
    ),
)
INSTANT_FEATURES = ("amount", "is_weekend", "is_night")
FEATURE_NAMES = (*INSTANT_FEATURES, *(feature.name for feature in WINDOW_FEATURES))
FEATURE_SET_VERSION = hashlib.sha256(
    repr((WINDOW_FEATURES, INSTANT_FEATURES, NIGHT_LAST_HOUR)).encode()
).hexdigest()[:12]

MODEL_FOR: dict[Entity, str] = {
    "customer": "customer_spending_windows",
    "terminal": "terminal_risk_windows",
}
HEADER = (
    "-- Generated from lakebed.fraud.features (feature set {version}); do not edit.\n"
    "-- Regenerate with: python -m lakebed.fraud.features\n"
)


def instant_features(event_time: pl.Expr, amount: pl.Expr) -> list[pl.Expr]:
    """``amount``, ``is_weekend`` and ``is_night``, as the handbook has them: on the world's
    clock (UTC), from the transaction alone."""
    return [
        amount.cast(pl.Float64).alias("amount"),
        (event_time.dt.weekday() >= 6).cast(pl.Int8).alias("is_weekend"),
        (event_time.dt.hour() <= NIGHT_LAST_HOUR).cast(pl.Int8).alias("is_night"),
    ]


def features_of(entity: Entity) -> tuple[WindowFeature, ...]:
    return tuple(feature for feature in WINDOW_FEATURES if feature.entity == entity)


DBT_SOURCE = "{{ ref('fct_transactions') }}"


def render_model(entity: Entity, source: str = DBT_SOURCE) -> str:
    """The SQL of the entity's feature model over ``source`` (a relation with the columns
    of ``fct_transactions``). The default source makes it a dbt model, portable across
    the profiles' engines through the project's macros; any other is plain DuckDB SQL."""
    header = HEADER.format(version=FEATURE_SET_VERSION)
    if entity == "customer":
        return header + _customer_sql(source)
    return header + _terminal_sql(source)


def _range(days: int, delay: int) -> str:
    end = "current row" if delay == 0 else f"interval {delay} days preceding"
    return f"range between interval {days + delay} days preceding and {end}"


def _customer_sql(source: str) -> str:
    columns = []
    for feature in features_of("customer"):
        mean = "{{ mean('amount') }}" if source == DBT_SOURCE else "avg(amount)"
        aggregate = "count(*)" if feature.aggregation == "count" else mean
        window = _range(feature.window_days, feature.delay_days)
        columns.append(
            f"    {aggregate} over (\n"
            f"        partition by customer_id order by event_time\n"
            f"        {window}\n"
            f"    ) as {feature.name}"
        )
    body = ",\n".join(columns)
    return (
        "-- Customer spending: the current transaction included (time ranges, not rows).\n"
        "select\n"
        "    transaction_id,\n"
        "    customer_id,\n"
        "    event_time,\n"
        f"{body}\n"
        f"from {source}\n"
    )


def _terminal_sql(source: str) -> str:
    features = features_of("terminal")
    counts = [f for f in features if f.aggregation == "count"]
    shares = [f for f in features if f.aggregation == "fraud_share"]
    widest = max(f.window_days + f.delay_days for f in features)
    delay = min(f.delay_days for f in features)
    count_columns = ",\n".join(
        f"        count(*) over (\n"
        f"            partition by terminal_id order by event_time\n"
        f"            {_range(f.window_days, f.delay_days)}\n"
        f"        ) as {f.name}"
        for f in counts
    )
    fraud_columns = ",\n".join(
        f"        count(*) filter (\n"
        f"            where frauds.event_time >= scored.event_time"
        f" - interval {f.window_days + f.delay_days} days\n"
        f"            and frauds.event_time <= scored.event_time - interval {f.delay_days} days\n"
        f"        ) as frauds_{f.name}"
        for f in shares
    )
    risk_columns = ",\n".join(
        f"    coalesce(\n"
        f"        coalesce(known.frauds_{f.name}, 0)"
        f" / nullif(counted.{f.counted().name}, 0),\n"
        f"        0\n"
        f"    ) as {f.name}"
        for f in shares
    )
    count_outputs = ",\n".join(f"    counted.{f.name}" for f in counts)
    return (
        "-- Terminal risk: windows that end a week before the transaction (the handbook's\n"
        "-- delay for late labels) and recent ones that end"
        f" {RECENT_DELAY_DAYS} days before it (once every\n"
        "-- late event has arrived), counting only frauds reported before the transaction:\n"
        "-- point in time.\n"
        "with scored as (\n"
        f"    select transaction_id, terminal_id, event_time from {source}\n"
        "),\n\n"
        "frauds as (\n"
        f"    select terminal_id, event_time, fraud_reported_at from {source}\n"
        "    where is_fraud\n"
        "),\n\n"
        "counted as (\n"
        "    select\n"
        "        transaction_id,\n"
        f"{count_columns}\n"
        f"    from {source}\n"
        "),\n\n"
        "known as (\n"
        "    select\n"
        "        scored.transaction_id,\n"
        f"{fraud_columns}\n"
        "    from scored\n"
        "    inner join frauds\n"
        "        on frauds.terminal_id = scored.terminal_id\n"
        f"        and frauds.event_time >= scored.event_time - interval {widest} days\n"
        f"        and frauds.event_time <= scored.event_time - interval {delay} days\n"
        "        and frauds.fraud_reported_at < scored.event_time\n"
        "    group by scored.transaction_id\n"
        ")\n\n"
        "select\n"
        "    scored.transaction_id,\n"
        "    scored.terminal_id,\n"
        "    scored.event_time,\n"
        f"{count_outputs},\n"
        f"{risk_columns}\n"
        "from scored\n"
        "inner join counted on counted.transaction_id = scored.transaction_id\n"
        "left join known on known.transaction_id = scored.transaction_id\n"
    )


def write_models(models_dir: Path) -> list[Path]:
    """Render both models into ``models_dir``; returns the paths written."""
    written = []
    for entity, model in MODEL_FOR.items():
        path = models_dir / f"{model}.sql"
        path.write_text(render_model(entity))
        written.append(path)
    return written


if __name__ == "__main__":
    from lakebed.lake.transform import DBT_PROJECT

    for written in write_models(DBT_PROJECT / "models" / "gold"):
        print(f"wrote {written}")
