"""Read-only SQL over the published silver and gold tables, behind one small interface.

``SqlEngine`` is the contract the CLI and the API use; ``DuckDBEngine`` is the local
profile's implementation. It copies every silver and gold Iceberg table into an in-memory
DuckDB database (through pyiceberg and Arrow: DuckDB's own Iceberg and httpfs extensions
cannot be installed offline) and then locks DuckDB down: no file or network access, no
extension loading, configuration frozen. Every query also passes the read-only guard, so
a file read needs two independent mistakes to succeed.

Tables are reloaded when their Iceberg metadata changes (a new snapshot or a schema
change), checked at most every ``refresh_interval`` seconds or on ``refresh()``.

``TrinoEngine`` is the cluster profile's: the same guard, then the query runs on Trino
(the Iceberg tables in place, no copies) as a user Trino itself lets only read silver and
gold.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import math
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any, Protocol, Self
from urllib.parse import urlsplit
from uuid import UUID

import duckdb
import sqlglot
import trino
from pyiceberg.catalog import Catalog
from sqlglot.errors import ErrorLevel, SqlglotError

from lakebed.config import Settings
from lakebed.lake.catalog import open_catalog
from lakebed.serve.guard import DIALECT, SERVED_SCHEMAS, UnknownTable, check_read_only

# Set when the connection opens, before anything can load an extension or scan a file.
_CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
}
# Set after the tables are loaded; lock_configuration must come last.
_LOCKDOWN = ("SET enable_external_access = false", "SET lock_configuration = true")
_STAGING = "__lakebed_staging"
log = logging.getLogger(__name__)


class QueryFailed(Exception):  # noqa: N818 - named for what happened, like QueryRefused
    """The engine could not run the query; the message is the engine's own."""


class QueryTimeout(QueryFailed):
    """The query ran past the time limit and was cancelled."""


class NothingPublished(QueryFailed):
    """No silver or gold table exists yet, so there is nothing to query."""


class EngineUnreachable(QueryFailed):
    """The engine's server did not answer (down, starting or restarting); try again."""


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str


@dataclass(frozen=True)
class TableInfo:
    """A served table as SQL sees it: ``schema.name`` and the engine's column types."""

    schema: str
    name: str
    columns: tuple[ColumnInfo, ...]
    snapshot_id: int | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class QueryResult:
    """Rows as JSON-ready values, at most ``max_rows`` of them.

    Dates and timestamps are ISO strings, decimals floats, blobs base64, intervals
    ``str(timedelta)``; NaN and infinities become null because JSON has no such numbers.
    ``truncated`` says more rows existed than were returned.
    """

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_seconds: float

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The shape ``POST /sql`` returns and ``--format json`` prints."""
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": self.rows,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_seconds * 1000, 3),
        }


@dataclass(frozen=True)
class _Version:
    metadata_location: str
    snapshot_id: int | None


class SqlEngine(Protocol):
    """Read-only SQL over silver and gold; one implementation per profile."""

    def query(self, sql: str, *, max_rows: int | None = None) -> QueryResult:
        """Run one guarded SELECT. Raises ``QueryRefused`` or ``QueryFailed``."""
        ...

    def tables(self) -> list[TableInfo]:
        """The served tables with their columns."""
        ...

    def close(self) -> None:
        """Release the engine's connections and memory."""
        ...


def open_engine(settings: Settings) -> SqlEngine:
    """The profile's SQL engine: DuckDB in-process (local) or Trino (cluster)."""
    if settings.profile == "cluster":
        return TrinoEngine.from_settings(settings)
    return DuckDBEngine.from_settings(settings)


class DuckDBEngine:
    """In-memory DuckDB holding copies of the silver and gold tables, locked read-only."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        max_rows: int = 10_000,
        timeout_seconds: float = 30.0,
        refresh_interval: float = 1.0,
    ) -> None:
        if max_rows <= 0 or timeout_seconds <= 0:
            raise ValueError("max_rows and timeout_seconds must be positive")
        self.catalog = catalog
        self.max_rows = max_rows
        self.timeout_seconds = timeout_seconds
        self.refresh_interval = refresh_interval
        self._connection = duckdb.connect(":memory:", config=_CONNECT_CONFIG)
        for schema in SERVED_SCHEMAS:
            self._connection.execute(f"CREATE SCHEMA {schema}")
        self._refresh_lock = threading.Lock()
        self._loaded: dict[str, _Version] = {}  # qualified name -> loaded Iceberg version
        self._tables: list[TableInfo] = []
        self._checked_at = 0.0
        self.refresh()
        for statement in _LOCKDOWN:
            self._connection.execute(statement)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            open_catalog(settings),
            max_rows=settings.serve.max_rows,
            timeout_seconds=settings.serve.timeout_seconds,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The locked connection itself, for tests that bypass the guard on purpose."""
        return self._connection

    def tables(self) -> list[TableInfo]:
        self._maybe_refresh()
        return list(self._tables)

    def query(self, sql: str, *, max_rows: int | None = None) -> QueryResult:
        limit = self.max_rows if max_rows is None else max_rows
        if limit <= 0:
            raise ValueError(f"max_rows must be positive (got {limit})")
        self._maybe_refresh()
        tables = self._tables
        try:
            statement = check_read_only(sql, [t.qualified_name for t in tables])
        except UnknownTable:
            if not tables:
                raise NothingPublished(
                    "no silver or gold table is published yet; run the pipeline first"
                ) from None
            raise
        return self._run(statement, limit)

    def refresh(self) -> bool:
        """Reload tables whose Iceberg metadata changed; True when anything changed."""
        with self._refresh_lock:
            self._checked_at = time.monotonic()
            current = self._catalog_state()
            changed = [
                name for name, version in current.items() if self._loaded.get(name) != version
            ]
            dropped = [name for name in self._loaded if name not in current]
            if not changed and not dropped:
                return False
            loader = self._connection.cursor()
            try:
                # One transaction, so concurrent queries see the old set or the new one.
                loader.execute("BEGIN TRANSACTION")
                try:
                    for name in dropped:
                        loader.execute(f"DROP TABLE IF EXISTS {_quoted(name)}")
                    for name in changed:
                        self._load(loader, name)
                except BaseException:
                    loader.execute("ROLLBACK")
                    raise
                loader.execute("COMMIT")
                self._tables = self._describe(loader, current)
            finally:
                loader.close()
            self._loaded = current
            return True

    def _maybe_refresh(self) -> None:
        """Refresh when due, unless another thread already is; a failure (catalog briefly
        unreachable) keeps the tables already loaded, so queries go on being answered."""
        due = time.monotonic() - self._checked_at >= self.refresh_interval
        if due and not self._refresh_lock.locked():
            try:
                self.refresh()
            except Exception:
                log.warning(
                    "refreshing the served tables failed; serving the loaded ones", exc_info=True
                )

    def _catalog_state(self) -> dict[str, _Version]:
        """Each served table's metadata file: any commit (data or schema) writes a new one."""
        state: dict[str, _Version] = {}
        for namespace in SERVED_SCHEMAS:
            for identifier in self.catalog.list_tables(namespace):
                table = self.catalog.load_table(identifier)
                snapshot = table.current_snapshot()
                state[".".join(identifier)] = _Version(
                    table.metadata_location, None if snapshot is None else snapshot.snapshot_id
                )
        return state

    def _load(self, loader: duckdb.DuckDBPyConnection, name: str) -> None:
        arrow = self.catalog.load_table(name).scan().to_arrow()
        loader.register(_STAGING, arrow)
        try:
            loader.execute(f"CREATE OR REPLACE TABLE {_quoted(name)} AS FROM {_STAGING}")
        finally:
            loader.unregister(_STAGING)

    @staticmethod
    def _describe(
        loader: duckdb.DuckDBPyConnection, versions: dict[str, _Version]
    ) -> list[TableInfo]:
        rows = loader.execute(
            "SELECT table_schema, table_name, column_name, data_type "
            "FROM information_schema.columns WHERE table_schema IN ('silver', 'gold') "
            "ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall()
        columns: dict[tuple[str, str], list[ColumnInfo]] = {}
        for schema, table, column, type_ in rows:
            columns.setdefault((schema, table), []).append(ColumnInfo(column, type_))
        return [
            TableInfo(schema, table, tuple(cols), versions[f"{schema}.{table}"].snapshot_id)
            for (schema, table), cols in columns.items()
        ]

    def _run(self, statement: str, limit: int) -> QueryResult:
        cursor = self._connection.cursor()
        timed_out = threading.Event()

        def cancel() -> None:
            timed_out.set()
            cursor.interrupt()

        timer = threading.Timer(self.timeout_seconds, cancel)
        started = time.perf_counter()
        timer.start()
        try:
            cursor.execute(statement)
            description = cursor.description or []
            fetched = cursor.fetchmany(limit + 1)
        except duckdb.Error as error:
            if timed_out.is_set():
                raise QueryTimeout(
                    f"the query ran longer than {self.timeout_seconds:g} s and was cancelled"
                ) from None
            raise QueryFailed(str(error)) from None
        finally:
            timer.cancel()
            timer.join()  # an interrupt already under way finishes before the cursor closes
            cursor.close()
        elapsed = time.perf_counter() - started
        return QueryResult(
            columns=[column[0] for column in description],
            types=[str(column[1]) for column in description],
            rows=[[_jsonable(value) for value in row] for row in fetched[:limit]],
            truncated=len(fetched) > limit,
            elapsed_seconds=elapsed,
        )


# Trino's answers to a query it could not run because of its own state, not the query's.
_TRINO_UNAVAILABLE = frozenset({"SERVER_STARTING_UP", "SERVER_SHUTTING_DOWN", "NO_NODES_AVAILABLE"})
# Passing states of a server that is starting: for a few seconds after it answers
# SELECT 1, a query on a catalog can fail with NO_NODES_AVAILABLE (the node has not
# announced the catalog yet; seen on a loaded 2-core box). A read is retried that long.
_TRINO_TRANSIENT = frozenset({"SERVER_STARTING_UP", "NO_NODES_AVAILABLE"})
TRINO_RETRY_SECONDS = 15.0
_TABLES_SQL = (
    "SELECT table_schema, table_name, column_name, data_type "
    "FROM information_schema.columns WHERE table_schema IN ('silver', 'gold') "
    "ORDER BY table_schema, table_name, ordinal_position"
)


class TrinoEngine:
    """Queries run on Trino, over the lakehouse's Iceberg tables where they lie.

    Every statement passes the read-only guard first, in the dialect both profiles accept
    (DuckDB's); the checked statement is then written as Trino SQL, with the Trino catalog
    as the session's so ``silver.x`` and ``gold.y`` name the same tables as locally.
    Trino's own access control is the second wall: ``user`` may only read silver and gold
    there (deploy/trino/trino.sh writes those rules). The time limit is Trino's session
    property ``query_max_run_time``, so an overlong query stops on the server too.

    Each query opens its own client connection (a plain HTTP session), so threads share
    the engine safely and a restarted Trino is simply reached again.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:18090",
        *,
        user: str = "lakebed_reader",
        catalog: str = "lakebed",
        max_rows: int = 10_000,
        timeout_seconds: float = 30.0,
        refresh_interval: float = 1.0,
    ) -> None:
        if max_rows <= 0 or timeout_seconds <= 0:
            raise ValueError("max_rows and timeout_seconds must be positive")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Trino's address must be http[s]://host:port, got {url!r}")
        self.url = url
        self.user = user
        self.catalog = catalog
        self.max_rows = max_rows
        self.timeout_seconds = timeout_seconds
        self.refresh_interval = refresh_interval
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._scheme = parts.scheme
        self._lock = threading.Lock()
        self._tables: list[TableInfo] = []
        self._checked_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        serve = settings.serve
        return cls(
            serve.trino_url,
            user=serve.trino_user,
            catalog=serve.trino_catalog,
            max_rows=serve.max_rows,
            timeout_seconds=serve.timeout_seconds,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held between queries; here for the ``SqlEngine`` contract."""

    def connect(self) -> trino.dbapi.Connection:
        """A client connection as the serving user, for tests that bypass the guard on purpose."""
        return trino.dbapi.Connection(
            host=self._host,
            port=self._port,
            http_scheme=self._scheme,
            user=self.user,
            catalog=self.catalog,
            source="lakebed",
            session_properties={
                "query_max_run_time": f"{max(1, round(self.timeout_seconds * 1000))}ms"
            },
            # A hung connection, not a slow query (Trino answers each poll within ~1 s).
            request_timeout=self.timeout_seconds + 10,
            # A server that is down fails at once; the caller answers "try again".
            max_attempts=1,
        )

    def tables(self) -> list[TableInfo]:
        return list(self._table_list(force=False))

    def query(self, sql: str, *, max_rows: int | None = None) -> QueryResult:
        limit = self.max_rows if max_rows is None else max_rows
        if limit <= 0:
            raise ValueError(f"max_rows must be positive (got {limit})")
        tables = self._table_list(force=False)
        try:
            statement = check_read_only(sql, [t.qualified_name for t in tables])
        except UnknownTable:
            # Published since the last look? Ask Trino again before refusing.
            tables = self._table_list(force=True)
            if not tables:
                raise NothingPublished(
                    "no silver or gold table is published yet; run the pipeline first"
                ) from None
            statement = check_read_only(sql, [t.qualified_name for t in tables])
        return self._run(_as_trino(statement), limit)

    def _table_list(self, *, force: bool) -> list[TableInfo]:
        now = time.monotonic()
        with self._lock:
            due = self._checked_at is None or now - self._checked_at >= self.refresh_interval
            if not (force or due):
                return self._tables
        columns: dict[tuple[str, str], list[ColumnInfo]] = {}
        for schema, table, column, type_ in self._run(_TABLES_SQL, 1_000_000).rows:
            columns.setdefault((schema, table), []).append(ColumnInfo(column, type_.upper()))
        tables = [
            TableInfo(schema, table, tuple(cols)) for (schema, table), cols in columns.items()
        ]
        with self._lock:
            self._tables, self._checked_at = tables, now
        return tables

    def _run(self, statement: str, limit: int) -> QueryResult:
        deadline = time.monotonic() + min(TRINO_RETRY_SECONDS, self.timeout_seconds)
        while True:
            try:
                return self._run_once(statement, limit)
            except _TransientError as transient:
                if time.monotonic() >= deadline:
                    raise transient.failure from None
                time.sleep(0.5)

    def _run_once(self, statement: str, limit: int) -> QueryResult:
        started = time.perf_counter()
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(statement)
            fetched = cursor.fetchmany(limit + 1)
            description = cursor.description or []
            if len(fetched) > limit:
                # Stop producing rows nobody will read; the query may have just ended.
                with suppress(trino.exceptions.Error, trino.exceptions.HttpError, OSError):
                    cursor.cancel()
        except trino.exceptions.TrinoQueryError as error:
            if error.error_name in _TRINO_TRANSIENT:
                raise _TransientError(self._failure(error)) from None
            raise self._failure(error) from None
        except (trino.exceptions.Error, trino.exceptions.HttpError, OSError) as error:
            # OSError: requests' connection errors (refused, reset, timed out).
            raise EngineUnreachable(
                f"Trino at {self.url} did not answer ({_first_line(error)}); "
                "is it running? `lakebed services up trino` starts it"
            ) from None
        finally:
            connection.close()  # type: ignore[no-untyped-call]
        return QueryResult(
            columns=[column.name for column in description],
            types=[str(column.type_code).upper() for column in description],
            rows=[[_jsonable(value) for value in row] for row in fetched[:limit]],
            truncated=len(fetched) > limit,
            elapsed_seconds=time.perf_counter() - started,
        )

    def _failure(self, error: trino.exceptions.TrinoQueryError) -> QueryFailed:
        if error.error_name == "EXCEEDED_TIME_LIMIT":
            return QueryTimeout(
                f"the query ran longer than {self.timeout_seconds:g} s and was cancelled"
            )
        if error.error_name in _TRINO_UNAVAILABLE:
            return EngineUnreachable(f"Trino at {self.url} cannot run queries now: {error.message}")
        return QueryFailed(_first_line(error.message))


class _TransientError(Exception):
    """A failure worth one more try shortly (Trino still starting)."""

    def __init__(self, failure: QueryFailed) -> None:
        super().__init__(str(failure))
        self.failure = failure


def _as_trino(statement: str) -> str:
    """The guard's checked statement (DuckDB SQL) written as Trino SQL."""
    try:
        tree = sqlglot.parse_one(statement, read=DIALECT)
        return tree.sql(dialect="trino", comments=False, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as error:
        raise QueryFailed(f"this query has no Trino equivalent: {_first_line(error)}") from None


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _quoted(qualified: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in qualified.split(".", 1))


def _jsonable(value: Any) -> Any:
    """A Python value from DuckDB as something ``json.dumps`` writes faithfully."""
    match value:
        case None | bool() | int() | str():
            return value
        case float():
            return value if math.isfinite(value) else None
        case Decimal():
            return float(value) if value.is_finite() else None
        case datetime() | date() | clock_time():
            return value.isoformat()
        case timedelta() | UUID():
            return str(value)
        case bytes() | bytearray() | memoryview():
            return base64.b64encode(bytes(value)).decode("ascii")
        case dict():
            return {str(key): _jsonable(item) for key, item in value.items()}
        case list() | tuple():
            return [_jsonable(item) for item in value]
        case _:
            return str(value)


def to_json(result: QueryResult) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False)


def to_csv(result: QueryResult) -> str:
    """A header line and one line per row; nested values are written as JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_csv_cell(value) for value in row] for row in result.rows)
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value
