"""The raw feed's delivery: daily files of transaction events and chargebacks.

A file is named after the day it was delivered, not the day its events happened: late
events and chargebacks land in later files. Chunks of days are rendered at once, and lines
due on a day after the chunk wait in a pending buffer; a day's file is written as soon as
no later chunk can add to it. File contents therefore never depend on the chunk size.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from lakebed.world.dirt import CLEAN, DIRTY_KINDS, DUPLICATE, LATE, corrupt, plan_dirt
from lakebed.world.events import (
    CHANNEL_MISSING_RATE,
    CHANNEL_WEIGHTS,
    CHANNELS,
    render_chargebacks,
    render_transactions,
    transaction_key,
    with_terminal_attributes,
)
from lakebed.world.profiles import Terminals
from lakebed.world.spec import WorldSpec
from lakebed.world.streams import Purpose, stream

TRANSACTIONS_DIR = Path("landing/transactions")
CHARGEBACKS_DIR = Path("landing/chargebacks")
MANIFEST_PATH = Path("world/dirty_rows.csv")
MANIFEST_COLUMNS = ("file", "line_number", "kind", "transaction_id", "detail")

LATE_SEQUENCE = 1 << 62  # late arrivals go after the day's own events, in id order
MICROS_PER_DAY = 86_400 * 1_000_000

DELIVERY_SCHEMA = pl.Schema(
    {
        "delivery_day": pl.Int64,
        "sequence": pl.Int64,
        "transaction_id": pl.Int64,
        "line": pl.Binary,
        "kind": pl.String,
        "detail": pl.String,
    }
)


def transactions_file(day: date) -> Path:
    return TRANSACTIONS_DIR / f"transactions_{day.isoformat()}.jsonl"


def chargebacks_file(day: date) -> Path:
    return CHARGEBACKS_DIR / f"chargebacks_{day.isoformat()}.jsonl"


@dataclass
class FeedStats:
    transaction_lines: int = 0
    chargebacks: int = 0
    transaction_files: int = 0
    chargeback_files: int = 0
    bytes_written: int = 0
    dirty: Counter[str] = field(default_factory=Counter)


class FeedWriter:
    """Renders truth chunks, in day order, into the landing area under ``root``."""

    def __init__(self, spec: WorldSpec, terminals: Terminals, root: Path) -> None:
        self._spec = spec
        self._terminals = terminals
        self._root = root
        self._start = datetime.combine(spec.start_date, time())
        self._pending_transactions: list[pl.DataFrame] = []
        self._pending_chargebacks: list[pl.DataFrame] = []
        self._next_file_day = 0
        self.stats = FeedStats()
        for folder in (TRANSACTIONS_DIR, CHARGEBACKS_DIR, MANIFEST_PATH.parent):
            (root / folder).mkdir(parents=True, exist_ok=True)
        with (root / MANIFEST_PATH).open("w", newline="") as manifest:
            csv.writer(manifest).writerow(MANIFEST_COLUMNS)

    def add(self, truth: pl.DataFrame, last_day: int) -> None:
        """Add the truth of days up to ``last_day`` (inclusive, in order) and write every
        file that is now complete."""
        if not truth.is_empty():
            frame = self._prepare(truth)
            self._pending_transactions.append(self._transaction_deliveries(frame))
            self._pending_chargebacks.append(self._chargeback_deliveries(frame))
        self._flush(last_day)

    def finish(self) -> FeedStats:
        pending = self._pending_transactions + self._pending_chargebacks
        last = max((int(p["delivery_day"].to_numpy().max()) for p in pending if len(p)), default=0)
        self._flush(max(last, self._spec.n_days - 1))
        return self.stats

    def _prepare(self, truth: pl.DataFrame) -> pl.DataFrame:
        """Truth plus the day, terminal attributes, dirt plan, channel and chargeback time."""
        frame = with_terminal_attributes(truth, self._terminals).with_columns(
            day=((pl.col("tx_datetime") - pl.lit(self._start)).dt.total_days())
        )
        days, sizes = np.unique(frame["day"].to_numpy(), return_counts=True)
        kind, late_days, variant, channel, delay = [], [], [], [], []
        for day, size in zip(days.tolist(), sizes.tolist(), strict=True):
            plan = plan_dirt(self._spec, day, size)
            kind.append(plan.kind)
            late_days.append(plan.late_days)
            variant.append(plan.variant)
            rng = stream(self._spec.seed, Purpose.FEED_CHANNEL, day)
            picked = rng.choice(len(CHANNELS), size=size, p=CHANNEL_WEIGHTS)
            picked[rng.random(size) < CHANNEL_MISSING_RATE] = -1
            channel.append(picked)
            rng = stream(self._spec.seed, Purpose.CHARGEBACK_DELAY, day)
            feed = self._spec.feed
            delay_days = rng.integers(
                feed.chargeback_delay_min_days, feed.chargeback_delay_max_days + 1, size
            )
            delay.append(delay_days * MICROS_PER_DAY + rng.integers(0, MICROS_PER_DAY, size))
        channel_index = np.concatenate(channel)
        names = np.array([*CHANNELS, ""])
        return frame.with_columns(
            dirt=pl.Series(np.concatenate(kind)),
            late_days=pl.Series(np.concatenate(late_days)),
            variant=pl.Series(np.concatenate(variant)),
            channel=pl.Series(names[channel_index]).replace("", None),
            reported_at=pl.col("tx_datetime")
            + pl.Series(np.concatenate(delay).astype("timedelta64[us]")),
        )

    def _transaction_deliveries(self, frame: pl.DataFrame) -> pl.DataFrame:
        change = self._spec.schema_change_day
        currencies = self._spec.feed.currencies
        lines = render_transactions(
            frame.filter(pl.col("day") < change), currencies, 1
        ) + render_transactions(frame.filter(pl.col("day") >= change), currencies, 2)

        dirt = frame["dirt"].to_numpy()
        variant = frame["variant"].to_numpy()
        details: list[str | None] = [None] * len(lines)
        for row in np.flatnonzero(dirt > LATE).tolist():
            lines[row], details[row] = corrupt(
                DIRTY_KINDS[dirt[row]], lines[row], int(variant[row])
            )

        ids = frame["transaction_id"].to_numpy()
        day = frame["day"].to_numpy()
        late = dirt == LATE
        delay = np.where(late, frame["late_days"].to_numpy(), 0)
        for row in np.flatnonzero(late).tolist():
            details[row] = f"event of day {day[row]} delivered {delay[row]} day(s) late"
        names = np.array(["", *DIRTY_KINDS])[np.where(dirt == DUPLICATE, CLEAN, dirt) + 1]
        deliveries = pl.DataFrame(
            {
                "delivery_day": day + delay,
                "sequence": np.where(late, LATE_SEQUENCE + ids, 2 * ids),
                "transaction_id": ids,
                "line": pl.Series(lines, dtype=pl.Binary),
                "kind": pl.Series(names).replace("", None),
                "detail": pl.Series(details, dtype=pl.String),
            },
            schema=DELIVERY_SCHEMA,
        )
        copies = deliveries.filter(pl.Series(dirt == DUPLICATE)).with_columns(
            sequence=pl.col("sequence") + 1,
            kind=pl.lit("duplicate"),
            detail=pl.lit("exact copy of the previous line"),
        )
        return pl.concat([deliveries, copies])

    def _chargeback_deliveries(self, frame: pl.DataFrame) -> pl.DataFrame:
        frauds = frame.filter(pl.col("is_fraud"))
        since_start = frauds.select(
            (pl.col("reported_at") - pl.lit(self._start)).dt.total_microseconds()
        ).to_series()
        lines = render_chargebacks(frauds, self._spec.feed.currencies)
        return pl.DataFrame(
            {
                "delivery_day": since_start // MICROS_PER_DAY,
                "sequence": since_start,
                "transaction_id": frauds["transaction_id"],
                "line": pl.Series(lines, dtype=pl.Binary),
                "kind": pl.Series([None] * len(lines), dtype=pl.String),
                "detail": pl.Series([None] * len(lines), dtype=pl.String),
            },
            schema=DELIVERY_SCHEMA,
        )

    def _flush(self, last_day: int) -> None:
        """Write the files of days ``_next_file_day`` .. ``last_day``."""
        transactions = self._due(self._pending_transactions, last_day)
        chargebacks = self._due(self._pending_chargebacks, last_day)
        for day in range(self._next_file_day, last_day + 1):
            on_day = self._spec.start_date + timedelta(days=day)
            self._write(transactions.get(day), transactions_file(on_day), day, manifest=True)
            self._write(chargebacks.get(day), chargebacks_file(on_day), day, manifest=False)
        self._next_file_day = max(self._next_file_day, last_day + 1)

    @staticmethod
    def _due(pending: list[pl.DataFrame], last_day: int) -> dict[int, pl.DataFrame]:
        if not pending:
            return {}
        frame = pl.concat(pending)
        due = pl.col("delivery_day") <= last_day
        pending[:] = [frame.filter(~due)]
        parts = frame.filter(due).sort("delivery_day", "sequence", "transaction_id")
        return {
            int(key[0]): part
            for key, part in parts.partition_by("delivery_day", as_dict=True).items()
        }

    def _write(
        self, part: pl.DataFrame | None, relative: Path, day: int, *, manifest: bool
    ) -> None:
        # Every day of the world has its file, possibly empty: a missing day is an outage.
        if part is None and day >= self._spec.n_days:
            return
        lines = [] if part is None else part["line"].to_list()
        payload = b"".join(line + b"\n" for line in lines)
        (self._root / relative).write_bytes(payload)
        self.stats.bytes_written += len(payload)
        if manifest:
            self.stats.transaction_files += 1
            self.stats.transaction_lines += len(lines)
        else:
            self.stats.chargeback_files += 1
            self.stats.chargebacks += len(lines)
        if not manifest or part is None:
            return
        dirty = (
            part.with_row_index("line_number", offset=1)
            .filter(pl.col("kind").is_not_null())
            .with_columns(transaction_key().alias("transaction_key"))
        )
        if dirty.is_empty():
            return
        self.stats.dirty.update(dirty["kind"].to_list())
        with (self._root / MANIFEST_PATH).open("a", newline="") as handle:
            writer = csv.writer(handle)
            for row in dirty.iter_rows(named=True):
                writer.writerow(
                    (
                        relative.as_posix(),
                        row["line_number"],
                        row["kind"],
                        row["transaction_key"],
                        row["detail"],
                    )
                )
