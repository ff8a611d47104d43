"""Publish silver and gold from the dbt database as Iceberg tables, for any Iceberg reader.

On the local profile dbt builds in its engine's own storage (a DuckDB file); publishing
copies each silver and gold table into the catalog's namespace of the same name, one
Iceberg commit per table. ``fct_transactions`` is published incrementally: only the event
dates that dbt rebuilt in its last run are replaced (one overwrite-by-filter commit), so a
day's late events or new chargebacks never rewrite the whole history.

On the cluster profile dbt-spark has written silver and gold into the catalog already
(the fact table merged in place), and publishing only reports them (``written_in_place``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

PUBLISHED_SCHEMAS = ("silver", "gold")
INCREMENTAL = {"gold.fct_transactions": ("event_date", "_built_at")}
PUBLISHED_RUN = "lakebed.published-dbt-run"
BATCH_ROWS = 1_000_000


@dataclass(frozen=True)
class PublishedTable:
    identifier: str
    rows: int
    mode: str  # "replaced", "partitions replaced", "unchanged"
    snapshot_id: int | None


def publish(catalog: Catalog, database: Path) -> list[PublishedTable]:
    connection = duckdb.connect(str(database), read_only=True)
    try:
        published = []
        for schema, name in _built_tables(connection):
            identifier = f"{schema}.{name}"
            if identifier in INCREMENTAL:
                key, built_at = INCREMENTAL[identifier]
                published.append(
                    _publish_incremental(catalog, connection, identifier, key, built_at)
                )
                continue
            query = f"SELECT * FROM {identifier}"
            rows = _count(connection, query)
            batches = _batches(connection, query)
            table = _table_for(catalog, identifier, batches.schema)
            if table.current_snapshot() is None:
                table.append(batches)
            else:
                table.overwrite(batches)
            published.append(PublishedTable(identifier, rows, "replaced", _snapshot(table)))
        return published
    finally:
        connection.close()


def written_in_place(catalog: Catalog) -> list[PublishedTable]:
    """The silver and gold tables that dbt wrote straight into the catalog (cluster profile),
    with their rows from the current snapshot's summary."""
    published = []
    for schema in PUBLISHED_SCHEMAS:
        for identifier in sorted(catalog.list_tables(schema)):
            table = catalog.load_table(identifier)
            snapshot = table.current_snapshot()
            summary = snapshot.summary if snapshot else None
            rows = int((summary.get("total-records") if summary else None) or 0)
            name = ".".join(identifier)
            published.append(PublishedTable(name, rows, "written by dbt", _snapshot(table)))
    return published


def _built_tables(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    schemas = ", ".join(f"'{schema}'" for schema in PUBLISHED_SCHEMAS)
    rows = connection.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE table_type = 'BASE TABLE' AND table_schema IN ({schemas}) "
        "ORDER BY table_schema, table_name"
    ).fetchall()
    return [(str(schema), str(name)) for schema, name in rows]


def _publish_incremental(
    catalog: Catalog,
    connection: duckdb.DuckDBPyConnection,
    identifier: str,
    key: str,
    built_at: str,
) -> PublishedTable:
    """Replace the key values (event dates) of dbt's latest run; the run's timestamp is kept
    as a table property in the same commit, so a repeated publish is a no-op."""
    latest_row = connection.execute(f"SELECT max({built_at}) FROM {identifier}").fetchall()
    latest = str(latest_row[0][0]) if latest_row and latest_row[0][0] is not None else ""
    latest_rows = (
        f"SELECT * FROM {identifier} WHERE {built_at} = (SELECT max({built_at}) FROM {identifier})"
    )
    rebuilt = _batches(connection, latest_rows)
    table = _table_for(catalog, identifier, rebuilt.schema)
    if table.properties.get(PUBLISHED_RUN) == latest:
        rebuilt.close()
        return PublishedTable(identifier, 0, "unchanged", _snapshot(table))
    first = table.current_snapshot() is None
    with table.transaction() as transaction:
        if first:
            rebuilt.close()
            rows = _count(connection, f"SELECT * FROM {identifier}")
            transaction.append(_batches(connection, f"SELECT * FROM {identifier}"))
        else:
            rows = _count(connection, latest_rows)
            keys = connection.execute(
                f"SELECT DISTINCT {key} FROM ({latest_rows}) ORDER BY 1"
            ).fetchall()
            values = ", ".join(f"'{value.isoformat()}'" for (value,) in keys)
            transaction.overwrite(rebuilt, overwrite_filter=f"{key} IN ({values or 'NULL'})")
        transaction.set_properties({PUBLISHED_RUN: latest})
    mode = "replaced" if first else "partitions replaced"
    return PublishedTable(identifier, rows, mode, _snapshot(table))


def _count(connection: duckdb.DuckDBPyConnection, query: str) -> int:
    return int(connection.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0])


def _batches(connection: duckdb.DuckDBPyConnection, query: str) -> pa.RecordBatchReader:
    """The query's rows as a stream of Arrow batches: a 20M-row table is written without
    ever being whole in memory."""
    relation = connection.cursor().sql(query)  # its own cursor: other queries may run meanwhile
    assert relation is not None
    reader: pa.RecordBatchReader = relation.to_arrow_reader(BATCH_ROWS)
    # Iceberg has no view types; DuckDB may hand strings over as string_view.
    schema = pa.schema(
        [pa.field(f.name, pa.string()) if f.type == pa.string_view() else f for f in reader.schema]
    )
    if schema == reader.schema:
        return reader
    return pa.RecordBatchReader.from_batches(schema, (b.cast(schema) for b in reader))


def _table_for(catalog: Catalog, identifier: str, schema: pa.Schema) -> Table:
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        return catalog.create_table(identifier, schema=schema)
    with table.update_schema() as update:
        update.union_by_name(schema)
    return table


def _snapshot(table: Table) -> int | None:
    table = table.refresh()
    snapshot = table.current_snapshot()
    return snapshot.snapshot_id if snapshot else None
