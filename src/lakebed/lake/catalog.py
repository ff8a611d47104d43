"""The Iceberg catalog and warehouse, chosen by the profile and nothing else.

The local profile keeps pyiceberg's SQL catalog in SQLite and the warehouse in a folder of
the data home. The cluster profile uses the same SQL catalog schema in PostgreSQL (which is
Iceberg's JDBC catalog, so Spark and Trino share it) and an S3 warehouse. Pipeline code
asks for ``open_catalog(settings)`` and never sees the difference.

pyiceberg keys its catalog rows by catalog *name*: always open it as ``CATALOG_NAME``.
"""

from __future__ import annotations

from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from lakebed.config import Settings

CATALOG_NAME = "lakebed"
NAMESPACES = ("bronze", "silver", "gold")


def lakehouse_dir(settings: Settings) -> Path:
    return settings.data_home.resolve() / "lakehouse"


def catalog_properties(settings: Settings) -> dict[str, str]:
    """The pyiceberg properties of the profile's catalog (explicit settings win)."""
    lake = settings.lake
    if settings.profile == "local":
        home = lakehouse_dir(settings)
        home.mkdir(parents=True, exist_ok=True)
        (home / "warehouse").mkdir(exist_ok=True)
        uri = lake.catalog_uri or f"sqlite:///{home / 'catalog.db'}"
        warehouse = lake.warehouse or (home / "warehouse").as_uri()
        return {"uri": uri, "warehouse": warehouse}
    if not (lake.catalog_uri and lake.warehouse):
        raise ValueError(
            "the cluster profile needs lake.catalog_uri (PostgreSQL) and lake.warehouse (s3://...)"
        )
    return {"uri": lake.catalog_uri, "warehouse": lake.warehouse}


def open_catalog(settings: Settings) -> Catalog:
    """The profile's catalog, with the bronze, silver and gold namespaces in place."""
    catalog = SqlCatalog(CATALOG_NAME, **catalog_properties(settings))
    for namespace in NAMESPACES:
        catalog.create_namespace_if_not_exists(namespace)
    return catalog
