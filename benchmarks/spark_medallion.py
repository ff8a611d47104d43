"""The Lakebed medallion build (``lakebed.lake`` + ``dbt/models``) written for PySpark.

It exists to be the baseline of ``bench_lakehouse.py``: the engine most teams would reach
for, doing the same work on the same landing files, so that "N times faster" means
something. It follows the dbt models rule for rule:

* **bronze**: every landing line verbatim, with its file, 1-based line number, batch and
  ingestion time, and a parse error for lines that are not UTF-8 or not a JSON object;
  the reference CSVs as string columns.
* **silver**: flattened events, the contracts in the same order as
  ``int_transactions_checked`` (the first failed rule quarantines the line), first arrival
  per transaction id by (source file, line number), removed duplicates, chargebacks,
  customers and terminals (latest export wins).
* **gold**: ``fct_transactions`` labelled from chargebacks, the three dimensions, daily
  fraud KPIs per merchant category, customer windows (1/7/30 days, current row included)
  and terminal risk windows (ending 7 days before the transaction, counting only frauds
  reported before it).

Differences, on purpose or forced, none of which changes the row counts on a generated
world:

* Outputs are plain Parquet folders under a scratch directory, not Iceberg tables: Spark's
  Iceberg runtime is a jar fetched at run time (``spark.jars.packages``), and the benchmark
  runs without network. Spark writes each layer in place, so it has no publish stage.
* No ingestion ledger (sha256 per file, skip what is already in bronze), no incremental
  ``fct_transactions`` and no dbt tests: the row counts are reconciled instead
  (landing lines = silver + quarantine + removed duplicates), outside the timed stages.
* JSON leaves are read as strings (one ``from_json`` per line) and then cast, so the JSON
  *type* of a value is not seen: a numeric string such as ``"amount": {"value": "12.50"}``
  passes here but is ``wrong_type`` in dbt. The generator never writes such a value (its
  wrong types are a decimal comma, a non-numeric id, an epoch number for the time, a list).
* Parse errors say only ``invalid UTF-8`` / ``invalid JSON``, without the position.
* Line numbers come from ``monotonically_increasing_id`` minus the first id of each file,
  which is exact only while no file is split across partitions; that is checked, and
  ``spark.sql.files.maxPartitionBytes`` is set above the largest landing file.

Run alone: ``python benchmarks/spark_medallion.py <landing folder> <scratch folder>``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)

DAY_SECONDS = 86_400
WINDOW_DAYS = (1, 7, 30)
TERMINAL_DELAY_DAYS = 7
SEEDS = Path(__file__).resolve().parents[1] / "dbt" / "seeds"
CORRUPT = "_corrupt_record"
JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
# Every leaf is a string: Spark then never fails a line on a type, and the casts below
# decide, as the staging models do.
TRANSACTION_JSON = (
    "struct<schema_version:string, transaction_id:string, event_time:string, "
    "card:struct<card_id:string, customer_id:string>, "
    "terminal:struct<terminal_id:string, mcc:string>, "
    f"amount:struct<value:string, currency:string>, channel:string, {CORRUPT}:string>"
)
CHARGEBACK_JSON = (
    "struct<chargeback_id:string, transaction_id:string, card_id:string, "
    "reported_at:string, reason_code:string, fraud_pattern:string, "
    f"amount:struct<value:string, currency:string>, {CORRUPT}:string>"
)
REFERENCE = {
    "customers": ("customer_id", "card_id", "home_x", "home_y"),
    "terminals": ("terminal_id", "x", "y", "mcc", "merchant_category", "time_zone", "currency"),
}


LINEAGE = {
    "_source_file": "source_file",
    "_line_number": "line_number",
    "_batch_id": "batch_id",
    "_ingested_at": "ingested_at",
}
WRITE_SECONDS: dict[str, float] = {}
"""Seconds of each Parquet write (its Spark job, so all the work behind that table)."""


def _write(frame: DataFrame, path: Path) -> None:
    began = time.perf_counter()
    frame.write.parquet(str(path))
    WRITE_SECONDS[f"{path.parent.name}.{path.name}"] = round(time.perf_counter() - began, 2)


def _read(spark: SparkSession, path: Path) -> DataFrame:
    return spark.read.parquet(str(path))


def _names(text: str) -> list[str]:
    """Column names from one string, to keep long selections on a line or two."""
    return text.split()


def _lineage(*names: str) -> list[Column]:
    """Bronze's metadata columns under their silver names."""
    return [F.col(name).alias(LINEAGE[name]) for name in names]


def start_session(scratch: Path, largest_file_bytes: int, memory: str = "8g") -> SparkSession:
    """``local[2]`` with settings a careful engineer would pick for 2 cores and a few GB."""
    partition_bytes = max(128 * 1024 * 1024, 2 * largest_file_bytes)
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("lakebed-medallion-baseline")
        .config("spark.driver.memory", memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.files.maxPartitionBytes", str(partition_bytes))
        .config("spark.local.dir", str(scratch / "spark-local"))
        .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={scratch}")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _numbered(frame: DataFrame, folder: str, first_line: int) -> DataFrame:
    """Adds ``source_file`` (relative to the landing folder) and ``line_number``.

    Row ids grow by one within a partition and a partition reads its files in order, so a
    file's lines are its first id plus 0, 1, 2 ... as long as the file is not split."""
    rows = frame.select(
        "*",
        # The name relative to the landing folder, as bronze writes it (a regular expression
        # over the full path costs more than the whole scan).
        F.concat(F.lit(f"{folder}/"), F.col("_metadata.file_name")).alias("_source_file"),
        F.monotonically_increasing_id().alias("_row_id"),
    )
    files = (
        rows.groupBy("_source_file")
        .agg(
            F.min("_row_id").alias("first_id"),
            F.max("_row_id").alias("last_id"),
            F.count(F.lit(1)).alias("lines"),
        )
        .collect()
    )
    split = [f["_source_file"] for f in files if f["last_id"] - f["first_id"] + 1 != f["lines"]]
    if split:
        raise RuntimeError(
            f"{split[0]} was split across partitions, so its line numbers would be wrong; "
            "raise spark.sql.files.maxPartitionBytes above the largest landing file"
        )
    starts = frame.sparkSession.createDataFrame(
        [(f["_source_file"], f["first_id"]) for f in files], "_source_file string, first_id long"
    )
    return (
        rows.join(F.broadcast(starts), "_source_file")
        .withColumn("_line_number", F.col("_row_id") - F.col("first_id") + first_line)
        .drop("_row_id", "first_id")
    )


def bronze(spark: SparkSession, landing: Path, out: Path) -> None:
    """Landing files -> ``bronze/<feed>`` Parquet, one row per line, nothing dropped."""
    batch_id = uuid.uuid4().hex
    for feed in ("transactions", "chargebacks"):
        text = spark.read.option("lineSep", "\n").text(str(landing / feed / "*.jsonl"))
        lines = _numbered(text, feed, first_line=1)
        utf8 = F.is_valid_utf8("value")
        # Null for anything but a well-formed JSON object; half the cost of from_json.
        not_object = F.json_object_keys("value").isNull()
        parse_error = F.when(~utf8, F.lit("invalid UTF-8")).when(not_object, F.lit("invalid JSON"))
        _write(
            lines.select(
                F.when(utf8, F.col("value")).otherwise(F.make_valid_utf8("value")).alias("payload"),
                parse_error.alias("_parse_error"),
                "_source_file",
                "_line_number",
                F.lit(batch_id).alias("_batch_id"),
                F.current_timestamp().alias("_ingested_at"),
            ),
            out / "bronze" / feed,
        )
    for name, columns in REFERENCE.items():
        table = (
            spark.read.option("header", True)
            .schema(", ".join(f"{column} string" for column in columns))
            .csv(str(landing / "reference" / f"{name}*.csv"))
        )
        _write(
            _numbered(table, "reference", first_line=2).withColumn(
                "_ingested_at", F.current_timestamp()
            ),
            out / "bronze" / name,
        )


def _latest(frame: DataFrame, key: str) -> DataFrame:
    """One row per key: the latest export (last file, last line) wins."""
    recency = Window.partitionBy(key).orderBy(F.desc("source_file"), F.desc("line_number"))
    return frame.withColumn("_recency", F.row_number().over(recency)).filter("_recency = 1")


def _reference(spark: SparkSession, out: Path) -> tuple[DataFrame, DataFrame]:
    customers = _read(spark, out / "bronze" / "customers").select(
        F.col("customer_id").try_cast("bigint").alias("customer_id"),
        "card_id",
        F.col("home_x").try_cast("double").alias("home_x"),
        F.col("home_y").try_cast("double").alias("home_y"),
        *_lineage("_source_file", "_line_number", "_ingested_at"),
    )
    terminals = _read(spark, out / "bronze" / "terminals").select(
        F.col("terminal_id").try_cast("bigint").alias("terminal_id"),
        F.col("x").try_cast("double").alias("location_x"),
        F.col("y").try_cast("double").alias("location_y"),
        *_names("mcc merchant_category time_zone currency"),
        *_lineage("_source_file", "_line_number", "_ingested_at"),
    )
    customers = _latest(customers.filter("customer_id is not null"), "customer_id")
    terminals = _latest(terminals.filter("terminal_id is not null"), "terminal_id")
    return customers.drop("_recency", "line_number"), terminals.drop("_recency", "line_number")


def _known(frame: DataFrame, lookup: DataFrame, key: str, column: str, flag: str) -> DataFrame:
    """Left join the keys of a small reference table (broadcast): ``flag`` is true where
    ``column`` is one of them and null where it is not (the ``NOT IN`` of the contracts)."""
    keys = lookup.select(F.col(key).alias(f"{flag}_key")).distinct().withColumn(flag, F.lit(True))
    joined = frame.join(F.broadcast(keys), frame[column] == keys[f"{flag}_key"], "left")
    return joined.drop(f"{flag}_key")


def _checked_transactions(spark: SparkSession, out: Path) -> DataFrame:
    """``stg_bronze__transactions`` + ``int_transactions_checked``: flattened, cast, and
    the first contract rule each line fails (null when it passes)."""
    source = _read(spark, out / "bronze" / "transactions")
    usable = F.when(F.col("_parse_error").isNull(), F.col("payload"))
    event = F.from_json(usable, TRANSACTION_JSON, JSON_OPTIONS)
    staged = source.select(
        event["transaction_id"].alias("transaction_id"),
        event["event_time"].alias("event_time_text"),
        event["card"]["card_id"].alias("card_id"),
        event["card"]["customer_id"].alias("customer_id_text"),
        event["terminal"]["terminal_id"].alias("terminal_id_text"),
        event["terminal"]["mcc"].alias("mcc"),
        event["amount"]["value"].alias("amount_text"),
        event["amount"]["currency"].alias("currency"),
        event["channel"].alias("channel"),
        event["schema_version"].alias("schema_version_text"),
        F.col("payload").alias("raw_line"),
        F.col("_parse_error").alias("parse_error"),
        *_lineage(*LINEAGE),
    ).select(
        "*",
        F.col("event_time_text").try_cast("timestamp").alias("event_time"),
        F.col("customer_id_text").try_cast("bigint").alias("customer_id"),
        F.col("terminal_id_text").try_cast("bigint").alias("terminal_id"),
        F.col("amount_text").try_cast("decimal(18, 2)").alias("amount"),
        F.coalesce(F.col("schema_version_text").try_cast("int"), F.lit(1)).alias("schema_version"),
    )
    currencies = spark.read.option("header", True).csv(str(SEEDS / "iso_currencies.csv"))
    customers = _read(spark, out / "silver" / "customers")
    terminals = _read(spark, out / "silver" / "terminals")
    staged = _known(staged, currencies, "currency_code", "currency", "_currency_known")
    staged = _known(staged, customers, "customer_id", "customer_id", "_customer_known")
    staged = _known(staged, terminals, "terminal_id", "terminal_id", "_terminal_known")

    missing = F.lit(False)
    for text in ("transaction_id", "event_time_text", "customer_id_text", "terminal_id_text"):
        missing = missing | F.col(text).isNull()
    missing = missing | F.col("amount_text").isNull() | F.col("currency").isNull()
    wrong_type = F.lit(False)
    for typed in ("event_time", "customer_id", "terminal_id", "amount"):
        wrong_type = wrong_type | F.col(typed).isNull()
    rule = (
        F.when(F.col("parse_error").startswith("invalid UTF-8"), "invalid_encoding")
        .when(F.col("parse_error").isNotNull(), "invalid_json")
        .when(missing, "missing_required_field")
        .when(wrong_type, "wrong_type")
        .when(F.col("amount") <= 0, "non_positive_amount")
        .when(F.col("_currency_known").isNull(), "unknown_currency")
        .when(F.col("_customer_known").isNull(), "unknown_customer")
        .when(F.col("_terminal_known").isNull(), "unknown_terminal")
    )
    return staged.withColumn("failed_rule", rule).drop(
        "_currency_known", "_customer_known", "_terminal_known"
    )


def _checked_chargebacks(spark: SparkSession, out: Path) -> DataFrame:
    """``stg_bronze__chargebacks`` + ``int_chargebacks_checked``."""
    source = _read(spark, out / "bronze" / "chargebacks")
    usable = F.when(F.col("_parse_error").isNull(), F.col("payload"))
    report = F.from_json(usable, CHARGEBACK_JSON, JSON_OPTIONS)
    staged = source.select(
        *(report[name].alias(name) for name in ("chargeback_id", "transaction_id", "card_id")),
        report["reported_at"].try_cast("timestamp").alias("reported_at"),
        report["reason_code"].alias("reason_code"),
        report["fraud_pattern"].alias("fraud_pattern"),
        report["amount"]["value"].try_cast("decimal(18, 2)").alias("amount"),
        report["amount"]["currency"].alias("currency"),
        report["reported_at"].alias("reported_at_text"),
        F.col("payload").alias("raw_line"),
        F.col("_parse_error").alias("parse_error"),
        *_lineage(*LINEAGE),
    )
    missing = (
        F.col("chargeback_id").isNull()
        | F.col("transaction_id").isNull()
        | F.col("reported_at_text").isNull()
    )
    rule = (
        F.when(F.col("parse_error").startswith("invalid UTF-8"), "invalid_encoding")
        .when(F.col("parse_error").isNotNull(), "invalid_json")
        .when(missing, "missing_required_field")
        .when(F.col("reported_at").isNull(), "wrong_type")
    )
    return staged.withColumn("failed_rule", rule)


def _quarantined(checked: DataFrame, feed: str, record_id: str) -> DataFrame:
    return checked.filter(F.col("failed_rule").isNotNull()).select(
        F.lit(feed).alias("feed"),
        *_names("source_file line_number failed_rule parse_error"),
        F.col(record_id).alias("record_id"),
        *_names("raw_line batch_id ingested_at"),
    )


def silver(spark: SparkSession, out: Path) -> None:
    """Bronze -> silver: contracts and quarantine, first arrival per id, reference data."""
    customers, terminals = _reference(spark, out)
    _write(customers, out / "silver" / "customers")
    _write(terminals, out / "silver" / "terminals")

    # The checked lines are written once (the dbt project keeps them as views, which DuckDB
    # recomputes for each model that reads them); every silver table reads them back.
    _write(_checked_transactions(spark, out), out / "staging" / "transactions")
    _write(_checked_chargebacks(spark, out), out / "staging" / "chargebacks")
    checked = _read(spark, out / "staging" / "transactions")
    reports = _read(spark, out / "staging" / "chargebacks")

    _write(
        _quarantined(checked, "transactions", "transaction_id").unionByName(
            _quarantined(reports, "chargebacks", "chargeback_id")
        ),
        out / "silver" / "quarantine",
    )

    # First arrival wins. Only ids seen more than once need ranking: an aggregate over the
    # id column finds them, so the window never shuffles the millions of single arrivals.
    valid = checked.filter(F.col("failed_rule").isNull())
    repeated = (
        valid.groupBy("transaction_id")
        .count()
        .filter("count > 1")
        .select("transaction_id", F.lit(True).alias("_repeated"))
    ).cache()
    repeated.count()
    arrival = Window.partitionBy("transaction_id").orderBy("source_file", "line_number")
    marked = valid.join(F.broadcast(repeated), "transaction_id", "left")
    ranked = marked.filter(F.col("_repeated")).select(
        "*",
        F.row_number().over(arrival).alias("_arrival"),
        F.first("source_file").over(arrival).alias("kept_source_file"),
        F.first("line_number").over(arrival).alias("kept_line_number"),
    )
    columns: list[Column | str] = [
        "transaction_id", "event_time", F.to_date("event_time").alias("event_date"),
        "customer_id", "card_id", "terminal_id", "mcc", "amount", "currency", "channel",
        "schema_version", "source_file", "line_number", "batch_id", "ingested_at",
    ]  # fmt: skip
    _write(
        marked.filter(F.col("_repeated").isNull())
        .select(*columns)
        .unionByName(ranked.filter("_arrival = 1").select(*columns)),
        out / "silver" / "transactions",
    )
    _write(
        ranked.filter("_arrival > 1").select(
            *_names("transaction_id source_file line_number kept_source_file kept_line_number"),
            *_names("raw_line ingested_at"),
        ),
        out / "silver" / "removed_duplicates",
    )
    repeated.unpersist()

    by_id = Window.partitionBy("chargeback_id").orderBy("source_file", "line_number")
    _write(
        reports.filter(F.col("failed_rule").isNull())
        .withColumn("_arrival", F.row_number().over(by_id))
        .filter("_arrival = 1")
        .select(
            *_names("chargeback_id transaction_id card_id reported_at reason_code fraud_pattern"),
            *_names("amount currency source_file line_number ingested_at"),
        ),
        out / "silver" / "chargebacks",
    )


def _fct_transactions(spark: SparkSession, out: Path) -> DataFrame:
    transactions = _read(spark, out / "silver" / "transactions")
    labels = (
        _read(spark, out / "silver" / "chargebacks")
        .groupBy("transaction_id")
        .agg(
            F.min("reported_at").alias("fraud_reported_at"),
            F.min("fraud_pattern").alias("fraud_pattern"),
            F.max("ingested_at").alias("label_ingested_at"),
            F.lit(True).alias("_labelled"),
        )
    )
    terminals = _read(spark, out / "silver" / "terminals").select(
        "terminal_id", "merchant_category"
    )
    joined = transactions.join(F.broadcast(labels), "transaction_id", "left").join(
        F.broadcast(terminals), "terminal_id", "left"
    )
    return joined.select(
        "transaction_id", "event_time", "event_date", "customer_id", "card_id",
        "terminal_id", "mcc", "merchant_category", "amount", "currency", "channel",
        F.col("_labelled").isNotNull().alias("is_fraud"),
        "fraud_pattern",
        "fraud_reported_at",
        F.to_date("fraud_reported_at").alias("fraud_known_date"),
        "schema_version",
        F.greatest(
            "ingested_at", F.coalesce("label_ingested_at", "ingested_at")
        ).alias("_loaded_at"),
        F.current_timestamp().alias("_built_at"),
    )  # fmt: skip


def _dim_date(fct: DataFrame) -> DataFrame:
    bounds = fct.agg(
        F.min("event_date").alias("first_day"),
        F.greatest(F.max("event_date"), F.max(F.coalesce("fraud_known_date", "event_date"))).alias(
            "last_day"
        ),
    )
    day = F.col("date_day")
    return bounds.select(
        F.explode(F.sequence("first_day", "last_day", F.expr("interval 1 day"))).alias("date_day")
    ).select(
        day,
        F.year(day).alias("year"),
        F.month(day).alias("month"),
        F.dayofmonth(day).alias("day_of_month"),
        F.extract(F.lit("DAYOFWEEK_ISO"), day).alias("day_of_week"),
        F.date_format(day, "EEEE").alias("day_name"),
        F.weekofyear(day).alias("iso_week"),
        (F.extract(F.lit("DAYOFWEEK_ISO"), day) >= 6).alias("is_weekend"),
    )


def _fraud_kpis_daily(fct: DataFrame) -> DataFrame:
    fraud = F.col("is_fraud")

    def fraud_amount(condition: Column) -> Column:
        return F.coalesce(F.sum(F.when(condition, F.col("amount"))), F.lit(0))

    return fct.groupBy("event_date", "merchant_category").agg(
        F.count(F.lit(1)).alias("transactions"),
        F.sum("amount").alias("amount"),
        F.count_if(fraud).alias("frauds"),
        (F.count_if(fraud) / F.count(F.lit(1))).alias("fraud_rate"),
        fraud_amount(fraud).alias("fraud_amount"),
        *(
            fraud_amount(F.col("fraud_pattern") == pattern).alias(f"fraud_amount_{pattern}")
            for pattern in ("high_amount", "compromised_terminal", "compromised_card")
        ),
    )


def _customer_spending_windows(fct: DataFrame) -> DataFrame:
    """Count and mean amount over the last 1/7/30 days, current transaction included."""
    by_time = Window.partitionBy("customer_id").orderBy(F.unix_seconds("event_time"))
    columns: list[Column] = []
    for days in WINDOW_DAYS:
        frame = by_time.rangeBetween(-days * DAY_SECONDS, Window.currentRow)
        columns.append(F.count(F.lit(1)).over(frame).alias(f"customer_transactions_{days}d"))
        columns.append(F.avg("amount").over(frame).alias(f"customer_mean_amount_{days}d"))
    return fct.select("transaction_id", "customer_id", "event_time", *columns)


def _terminal_risk_windows(fct: DataFrame) -> DataFrame:
    """Transactions and share of frauds over 1/7/30 days ending 7 days before, counting only
    frauds reported before the scored transaction (point in time, like the dbt model)."""
    by_time = Window.partitionBy("terminal_id").orderBy(F.unix_seconds("event_time"))
    end = -TERMINAL_DELAY_DAYS * DAY_SECONDS
    counts = fct.select(
        "transaction_id",
        "terminal_id",
        "event_time",
        *(
            F.count(F.lit(1))
            .over(by_time.rangeBetween(end - days * DAY_SECONDS, end))
            .alias(f"terminal_transactions_{days}d")
            for days in WINDOW_DAYS
        ),
    )
    scored = fct.select("transaction_id", "terminal_id", F.unix_seconds("event_time").alias("t"))
    frauds = fct.where("is_fraud").select(
        F.col("terminal_id").alias("fraud_terminal"),
        F.unix_seconds("event_time").alias("f"),
        F.unix_seconds("fraud_reported_at").alias("reported"),
    )
    widest = max(WINDOW_DAYS) * DAY_SECONDS - end
    known = (
        scored.join(
            frauds,
            (frauds.fraud_terminal == scored.terminal_id)
            & (frauds.f >= scored.t - widest)
            & (frauds.f <= scored.t + end)
            & (frauds.reported < scored.t),
        )
        .groupBy("transaction_id")
        .agg(
            *(
                F.count_if(F.col("f") >= F.col("t") + end - days * DAY_SECONDS).alias(
                    f"frauds_{days}d"
                )
                for days in WINDOW_DAYS
            )
        )
    )
    risks = [
        F.coalesce(
            F.coalesce(F.col(f"frauds_{days}d"), F.lit(0))
            / F.nullif(F.col(f"terminal_transactions_{days}d"), F.lit(0)),
            F.lit(0.0),
        ).alias(f"terminal_risk_{days}d")
        for days in WINDOW_DAYS
    ]
    return counts.join(known, "transaction_id", "left").select(
        "transaction_id",
        "terminal_id",
        "event_time",
        *(f"terminal_transactions_{days}d" for days in WINDOW_DAYS),
        *risks,
    )


def gold(spark: SparkSession, out: Path) -> None:
    """Silver -> gold: the fact table first, then everything that reads it."""
    _write(_fct_transactions(spark, out), out / "gold" / "fct_transactions")
    fct = _read(spark, out / "gold" / "fct_transactions")
    _write(
        _read(spark, out / "silver" / "customers").select(
            "customer_id", "card_id", "home_x", "home_y"
        ),
        out / "gold" / "dim_customer",
    )
    _write(
        _read(spark, out / "silver" / "terminals").select(
            *_names("terminal_id location_x location_y mcc merchant_category time_zone currency")
        ),
        out / "gold" / "dim_terminal",
    )
    _write(_dim_date(fct), out / "gold" / "dim_date")
    _write(_fraud_kpis_daily(fct), out / "gold" / "fraud_kpis_daily")
    _write(_customer_spending_windows(fct), out / "gold" / "customer_spending_windows")
    _write(_terminal_risk_windows(fct), out / "gold" / "terminal_risk_windows")


def check(spark: SparkSession, out: Path) -> dict[str, Any]:
    """Row counts and a few sums of every layer, read back from Parquet (not timed), and
    the reconciliation that nothing was dropped silently."""

    def table(layer: str, name: str) -> DataFrame:
        return _read(spark, out / layer / name)

    quarantine = {
        f"{feed}/{rule}": rows
        for feed, rule, rows in table("silver", "quarantine")
        .groupBy("feed", "failed_rule")
        .count()
        .collect()
    }
    fct = table("gold", "fct_transactions").agg(
        F.count(F.lit(1)), F.count_if("is_fraud"), F.sum("amount")
    )
    fct_rows, fct_frauds, fct_amount = fct.first() or (0, 0, 0)
    customer = table("gold", "customer_spending_windows").agg(
        F.sum("customer_transactions_30d"), F.sum("customer_mean_amount_30d")
    )
    terminal = table("gold", "terminal_risk_windows").agg(
        F.sum("terminal_transactions_30d"), F.sum("terminal_risk_30d")
    )
    customer_row = customer.first() or (0, 0)
    terminal_row = terminal.first() or (0, 0)
    figures: dict[str, Any] = {
        "bronze.transactions": table("bronze", "transactions").count(),
        "bronze.chargebacks": table("bronze", "chargebacks").count(),
        **{
            f"silver.{name}": table("silver", name).count()
            for name in _names("transactions chargebacks removed_duplicates quarantine")
            + _names("customers terminals")
        },
        "silver.quarantine_by_rule": dict(sorted(quarantine.items())),
        "gold.fct_transactions": fct_rows,
        "gold.fct_transactions.frauds": fct_frauds,
        "gold.fct_transactions.amount": float(fct_amount or 0),
        "gold.dim_date": table("gold", "dim_date").count(),
        "gold.fraud_kpis_daily": table("gold", "fraud_kpis_daily").count(),
        "gold.customer_spending_windows.sum_transactions_30d": int(customer_row[0] or 0),
        "gold.customer_spending_windows.sum_mean_amount_30d": round(float(customer_row[1]), 2),
        "gold.terminal_risk_windows.sum_transactions_30d": int(terminal_row[0] or 0),
        "gold.terminal_risk_windows.sum_risk_30d": round(float(terminal_row[1]), 4),
    }
    quarantined = sum(v for k, v in quarantine.items() if k.startswith("transactions/"))
    accounted = figures["silver.transactions"] + quarantined + figures["silver.removed_duplicates"]
    if accounted != figures["bronze.transactions"]:
        raise AssertionError(
            f"transaction lines do not reconcile: {figures['bronze.transactions']:,} in bronze, "
            f"{accounted:,} in silver + quarantine + removed duplicates"
        )
    return figures


def jvm_peak_rss_mb() -> int | None:
    """Peak resident memory of the JVM child (``VmHWM``); the driver's Python process is
    measured by the caller. None where /proc is not available."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(os.getpid()) and "java" in fields.get("Name", ""):
            return int(fields.get("VmHWM", "0 kB").split()[0]) // 1024
    return None


def run(landing: Path, scratch: Path) -> dict[str, Any]:
    """Session start, bronze, silver, gold (each timed), then the untimed checks."""
    largest = max(path.stat().st_size for path in landing.rglob("*") if path.is_file())
    out = scratch / "lake"
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    spark = start_session(scratch, largest)
    seconds["startup"] = time.perf_counter() - began
    try:
        stages: dict[str, Callable[[], None]] = {
            "bronze": lambda: bronze(spark, landing, out),
            "silver": lambda: silver(spark, out),
            "gold": lambda: gold(spark, out),
        }
        for name, stage in stages.items():
            began = time.perf_counter()
            stage()
            seconds[name] = time.perf_counter() - began
            print(f"spark {name}: {seconds[name]:.1f} s", file=sys.stderr, flush=True)
        figures = check(spark, out)
        jvm_peak = jvm_peak_rss_mb()
    finally:
        spark.stop()
    return {
        "seconds": seconds,
        "write_seconds": WRITE_SECONDS,
        "figures": figures,
        "jvm_peak_rss_mb": jvm_peak,
    }


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: spark_medallion.py <landing folder> <scratch folder>")
    print(json.dumps(run(Path(sys.argv[1]), Path(sys.argv[2]))))


if __name__ == "__main__":
    main()
