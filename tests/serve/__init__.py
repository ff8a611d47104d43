"""Serve tests share one helper: a tiny lake with published gold and silver tables."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from lakebed.config import Settings
from lakebed.lake.catalog import open_catalog

CUSTOMERS = pa.schema(
    [
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("signup_day", pa.date32()),
        pa.field("last_seen", pa.timestamp("us")),
        pa.field("balance", pa.decimal128(12, 2)),
    ]
)


def customers(first_id: int, count: int) -> pa.Table:
    ids = range(first_id, first_id + count)
    return pa.table(
        {
            "customer_id": list(ids),
            "name": [f"customer {i}" for i in ids],
            "signup_day": [date(2024, 1, 1 + i % 28) for i in ids],
            "last_seen": [datetime(2024, 2, 1, i % 24, 30) for i in ids],
            "balance": [Decimal(i) / 4 for i in ids],
        },
        schema=CUSTOMERS,
    )


def make_lake(home: Path) -> tuple[Settings, Catalog]:
    """Settings for ``home`` and its catalog with ``gold.dim_customer`` (5 rows) and an
    empty ``silver.stg_customers``; bronze holds a table that must never be served."""
    settings = Settings(data_home=home)
    catalog = open_catalog(settings)
    publish(catalog, "gold.dim_customer", customers(1, 5))
    catalog.create_table("silver.stg_customers", schema=CUSTOMERS)
    publish(catalog, "bronze.raw_customers", customers(100, 2))
    return settings, catalog


def publish(catalog: Catalog, name: str, rows: pa.Table) -> Table:
    """Append ``rows`` to ``name``, creating the table first if needed."""
    table = catalog.create_table_if_not_exists(name, schema=rows.schema)
    table.append(rows)
    return table
