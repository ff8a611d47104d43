"""The Iceberg catalog and warehouse, chosen by the profile and nothing else.

The local profile keeps pyiceberg's SQL catalog in SQLite and the warehouse in a folder of
the data home. The cluster profile uses the same SQL catalog schema in PostgreSQL (which is
Iceberg's JDBC catalog, so Spark and Trino share it) and an S3 warehouse. Pipeline code
asks for ``open_catalog(settings)`` and never sees the difference.

pyiceberg keys its catalog rows by catalog *name*: always open it as ``CATALOG_NAME``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from lakebed.config import LakeSettings, Settings

CATALOG_NAME = "lakebed"
NAMESPACES = ("bronze", "silver", "gold")
# Warehouse schemes that pyiceberg's PyArrow FileIO serves through S3.
S3_SCHEMES = ("s3", "s3a", "s3n")


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
    elif not (lake.catalog_uri and lake.warehouse):
        raise ValueError(
            "the cluster profile needs lake.catalog_uri (PostgreSQL) and lake.warehouse (s3://...)"
        )
    else:
        uri, warehouse = lake.catalog_uri, lake.warehouse
    properties = {"uri": uri, "warehouse": warehouse}
    if urlsplit(warehouse).scheme in S3_SCHEMES:
        properties.update(s3_properties(lake))
    return properties


def s3_properties(lake: LakeSettings) -> dict[str, str]:
    """The S3 settings as pyiceberg's PyArrow FileIO reads them (``s3.*``).

    The region is always given: without one, pyiceberg asks AWS where the bucket lives,
    which a self-hosted server cannot answer. Path-style addressing is the FileIO's
    ``s3.force-virtual-addressing=false``; Iceberg's Java FileIO calls it
    ``s3.path-style-access``.
    """
    properties = {
        "s3.region": lake.s3_region,
        "s3.force-virtual-addressing": str(not lake.s3_path_style).lower(),
    }
    if lake.s3_endpoint:
        properties["s3.endpoint"] = lake.s3_endpoint
    if lake.s3_access_key:
        properties["s3.access-key-id"] = lake.s3_access_key
    if lake.s3_secret_key:
        properties["s3.secret-access-key"] = lake.s3_secret_key.get_secret_value()
    return properties


def open_catalog(settings: Settings) -> Catalog:
    """The profile's catalog, with the bronze, silver and gold namespaces in place."""
    catalog = SqlCatalog(CATALOG_NAME, **catalog_properties(settings))
    for namespace in NAMESPACES:
        catalog.create_namespace_if_not_exists(namespace)
    return catalog
