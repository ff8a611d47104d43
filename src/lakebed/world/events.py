"""Raw feed records as a payment switch would send them, rendered to JSON lines by Polars.

A transaction event nests the card and the terminal, carries the amount with its currency,
and stamps the event time in the terminal's local time zone with its UTC offset (the
world's clock is UTC, like the handbook's naive timestamps). From the schema-change day on,
events are schema v2 and carry one more optional field, ``channel``. Rendering is one
Polars ``write_ndjson`` per frame, so a million events cost about a second.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import polars as pl

from lakebed.world.profiles import MERCHANT_CATEGORIES, TIME_ZONES, Terminals

CHANNELS = ("chip", "contactless", "online", "magstripe")
CHANNEL_WEIGHTS = (0.45, 0.35, 0.17, 0.03)
CHANNEL_MISSING_RATE = 0.05
CHARGEBACK_REASON = "10.4"  # card-absent fraud, the common scheme reason code
# The issuer's investigation classifies each fraud: the pattern behind it, by scenario.
FRAUD_PATTERNS = ("", "high_amount", "compromised_terminal", "compromised_card")
ID_DIGITS = 10


def transaction_key(column: str = "transaction_id") -> pl.Expr:
    return pl.format("tx_{}", pl.col(column).cast(pl.String).str.zfill(ID_DIGITS))


def card_key(column: str = "customer_id") -> pl.Expr:
    return pl.format("card_{}", pl.col(column).cast(pl.String).str.zfill(8))


def amount_value(cents: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Cents to the nearest double of the decimal amount (NumPy's true division is exact
    to the last bit here, where a multiply by 0.01 would print 57.160000000000004)."""
    return cents / 100


def _local_time(utc_naive: str, zone_index: str) -> pl.Expr:
    """ISO-8601 local time with offset, e.g. 2018-04-01T14:05:09+02:00."""
    utc = pl.col(utc_naive)
    local = utc
    for index, zone in enumerate(TIME_ZONES):
        converted = (
            utc.dt.replace_time_zone("UTC").dt.convert_time_zone(zone).dt.replace_time_zone(None)
        )
        local = pl.when(pl.col(zone_index) == index).then(converted).otherwise(local)
    minutes = (local - utc).dt.total_minutes()
    sign = pl.when(minutes < 0).then(pl.lit("-")).otherwise(pl.lit("+"))
    hours = (minutes.abs() // 60).cast(pl.String).str.zfill(2)
    rest = (minutes.abs() % 60).cast(pl.String).str.zfill(2)
    return pl.concat_str([local.dt.to_string("%Y-%m-%dT%H:%M:%S"), sign, hours, pl.lit(":"), rest])


def with_terminal_attributes(truth: pl.DataFrame, terminals: Terminals) -> pl.DataFrame:
    ids = truth["terminal_id"].to_numpy()
    mcc = np.array([code for code, _, _ in MERCHANT_CATEGORIES])
    return truth.with_columns(
        terminal_x=pl.Series(np.round(terminals.x[ids], 4)),
        terminal_y=pl.Series(np.round(terminals.y[ids], 4)),
        mcc=pl.Series(mcc[terminals.mcc_index[ids]]),
        zone_index=pl.Series(terminals.time_zone_index[ids]),
        currency_index=pl.Series(terminals.currency_index[ids]),
        amount_value=pl.Series(amount_value(truth["amount_cents"].to_numpy())),
    )


def render_transactions(
    frame: pl.DataFrame, currencies: tuple[str, ...], schema_version: int
) -> list[bytes]:
    """One JSON line per row of ``frame`` (a truth frame with terminal attributes, plus a
    ``channel`` column for schema v2)."""
    if frame.is_empty():
        return []
    currency = pl.Series(np.array(currencies)[frame["currency_index"].to_numpy()])
    columns: list[pl.Expr] = [
        pl.lit(schema_version).alias("schema_version"),
        transaction_key().alias("transaction_id"),
        _local_time("tx_datetime", "zone_index").alias("event_time"),
        pl.struct(card_id=card_key(), customer_id=pl.col("customer_id")).alias("card"),
        pl.struct(
            terminal_id=pl.col("terminal_id"),
            mcc=pl.col("mcc"),
            location=pl.struct(x=pl.col("terminal_x"), y=pl.col("terminal_y")),
        ).alias("terminal"),
        pl.struct(value=pl.col("amount_value"), currency=pl.lit(currency)).alias("amount"),
    ]
    if schema_version >= 2:
        columns.append(pl.col("channel"))
    return _ndjson_lines(frame.select(columns))


def render_chargebacks(frame: pl.DataFrame, currencies: tuple[str, ...]) -> list[bytes]:
    """One JSON line per fraudulent transaction of ``frame`` (with ``reported_at``)."""
    if frame.is_empty():
        return []
    currency = pl.Series(np.array(currencies)[frame["currency_index"].to_numpy()])
    return _ndjson_lines(
        frame.select(
            pl.format("cb_{}", pl.col("transaction_id").cast(pl.String).str.zfill(ID_DIGITS)).alias(
                "chargeback_id"
            ),
            transaction_key().alias("transaction_id"),
            card_key().alias("card_id"),
            pl.col("reported_at").dt.to_string("%Y-%m-%dT%H:%M:%SZ").alias("reported_at"),
            pl.lit(CHARGEBACK_REASON).alias("reason_code"),
            pl.col("fraud_scenario")
            .replace_strict(dict(enumerate(FRAUD_PATTERNS)), return_dtype=pl.String)
            .alias("fraud_pattern"),
            pl.struct(value=pl.col("amount_value"), currency=pl.lit(currency)).alias("amount"),
        )
    )


def _ndjson_lines(frame: pl.DataFrame) -> list[bytes]:
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    return buffer.getvalue().splitlines()
