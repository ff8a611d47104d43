"""The read-only guard: one SELECT over silver and gold tables, nothing else.

SQL arrives from users (``lakebed sql``, ``POST /sql``), so it is parsed with sqlglot and
checked node by node before DuckDB sees it. The checks are allow-lists where an allow-list
is practical:

* the statement must be a query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT);
* every table reference must be ``silver.<name>`` or ``gold.<name>`` (and one that exists,
  when the caller says which exist) or a CTE visible at that point;
* the only table functions are the row generators ``range``, ``generate_series`` and
  ``unnest``, which touch neither files nor settings.

Functions in expressions cannot be allow-listed without copying DuckDB's several hundred
names, so those are block-listed: file readers, ``duckdb_*`` introspection, settings and
environment lookups.

The caller runs the *returned* SQL, regenerated from the checked syntax tree, never the
text it received: what DuckDB executes is exactly what was inspected, so a difference
between sqlglot's parser and DuckDB's cannot smuggle anything past the guard. The guard is
one of two locks; the engine also runs DuckDB with external access disabled.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

DIALECT = "duckdb"
SERVED_SCHEMAS = ("silver", "gold")
MAX_SQL_CHARS = 100_000

# Row generators: they read nothing outside the query.
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

# Functions that read files, reveal settings, secrets or the environment, or run SQL
# given as a string (which would bypass this guard).
BLOCKED_FUNCTIONS = frozenset(
    {
        "getenv",
        "current_setting",
        "glob",
        "query",
        "query_table",
        "which_secret",
        "checkpoint",
        "force_checkpoint",
        "enable_logging",
        "disable_logging",
        "truncate_duckdb_logs",
        "enable_profiling",
        "disable_profiling",
        "summary",
        "seq_scan",
        "arrow_scan",
        "arrow_scan_dumb",
        "python_arrow_scan",
        "pandas_scan",
        "python_map_function",
        "test_all_types",
        "test_vector_types",
    }
)
BLOCKED_PREFIXES = (
    "read_",
    "parquet_",
    "sniff_",
    "duckdb_",
    "pragma_",
    "iceberg_",
    "delta_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "http",
    "s3",
    "json_execute",
    "register_",
    "deregister_",
    "create_external",
    "destroy_external",
    "load_",
    "install_",
)

# Statement kinds that may not appear anywhere in the tree, even nested (DuckDB does not
# accept most of them nested, but the tree is what gets executed, so refuse them outright).
_STATEMENTS: tuple[type[exp.Expr], ...] = (
    exp.DML,
    exp.DDL,
    exp.Command,
    exp.Set,
    exp.Pragma,
    exp.Use,
    exp.Attach,
    exp.Detach,
    exp.Install,
    exp.Export,
    exp.Copy,
    exp.Describe,
    exp.Show,
    exp.Summarize,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Drop,
    exp.Alter,
    exp.LoadData,
    exp.Cache,
    exp.Uncache,
    exp.Refresh,
    exp.Analyze,
    exp.Grant,
    exp.Revoke,
    exp.TruncateTable,
    exp.Kill,
    exp.Declare,
    exp.Execute,
    exp.Comment,
    exp.Secret,
    exp.Into,
)


class QueryRefused(ValueError):  # noqa: N818 - reads better than QueryRefusedError
    """The SQL is not one read-only query over silver and gold; the message says why."""


class UnknownTable(QueryRefused):
    """A silver or gold table that is not published (yet)."""


def check_read_only(sql: str, tables: Collection[str] | None = None) -> str:
    """The single read-only statement in ``sql``, normalised to DuckDB SQL; run that.

    ``tables`` names the tables that exist (``"gold.fct_transactions"``); when given, a
    reference to any other silver or gold table is refused too. Raises ``QueryRefused``.
    """
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused(f"the statement is {len(sql):,} characters; at most {MAX_SQL_CHARS:,}")
    statement = _parse_one(sql)
    known = None if tables is None else {name.lower() for name in tables}
    for node in statement.walk():
        _check_node(node, known)
    try:
        return statement.sql(dialect=DIALECT, comments=False, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as error:
        raise QueryRefused(f"cannot run this statement read-only: {error}") from None
    except RecursionError:
        raise QueryRefused("the statement is nested too deeply to check") from None


def _parse_one(sql: str) -> exp.Expr:
    try:
        parsed = sqlglot.parse(sql, read=DIALECT)
    except SqlglotError as error:
        raise QueryRefused(f"could not parse the SQL: {_first_line(error)}") from None
    except RecursionError:
        raise QueryRefused("the statement is nested too deeply to check") from None
    statements = [s for s in parsed if s is not None and not _is_empty(s)]
    if not statements:
        raise QueryRefused("no SQL statement given; send one SELECT")
    if len(statements) > 1:
        raise QueryRefused(
            f"{len(statements)} statements given; send exactly one SELECT (no ';'-separated batch)"
        )
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise QueryRefused(f"only SELECT queries are served, not {_kind(statement)}")
    return statement


def _is_empty(statement: exp.Expr) -> bool:
    """sqlglot keeps a comment between two ';' as a statement of its own."""
    return isinstance(statement, exp.Semicolon)


def _check_node(node: exp.Expr, known: set[str] | None) -> None:
    if isinstance(node, _STATEMENTS):
        raise QueryRefused(f"only SELECT queries are served, not {_kind(node)} (nested)")
    if isinstance(node, exp.Select) and node.args.get("into") is not None:
        raise QueryRefused("SELECT ... INTO creates a table; only reading is allowed")
    if isinstance(node, exp.Table):
        _check_table(node, known)
    elif isinstance(node, exp.Func):
        if isinstance(node.parent, exp.From | exp.Join | exp.Lateral) and node.arg_key == "this":
            _check_table_function(node)  # a function used as a relation (LATERAL f(...))
        _check_function(node)


def _check_table(table: exp.Table, known: set[str] | None) -> None:
    target = table.this
    if isinstance(target, exp.Func):
        if table.args.get("db") is not None:
            raise QueryRefused(
                f"table function {table.sql(dialect=DIALECT)} is not allowed; "
                "query silver.<table> or gold.<table>"
            )
        _check_table_function(target)
        return
    if not isinstance(target, exp.Identifier) or table.args.get("catalog") is not None:
        raise QueryRefused(
            f"table reference {table.sql(dialect=DIALECT)} is not allowed; "
            "name tables as silver.<table> or gold.<table>"
        )
    schema, name = table.db.lower(), table.name.lower()
    if not schema:
        if name in _visible_ctes(table):
            return
        raise QueryRefused(
            f"unknown table {table.name!r}: name tables as silver.<table> or gold.<table> "
            "(files and other schemas cannot be read)"
        )
    if schema not in SERVED_SCHEMAS:
        raise QueryRefused(
            f"schema {table.db!r} is not served; only {' and '.join(SERVED_SCHEMAS)} tables "
            "can be queried"
        )
    if known is not None and f"{schema}.{name}" not in known:
        raise UnknownTable(f"unknown table {schema}.{name}; {_published(known)}")


def _published(known: set[str], shown: int = 20) -> str:
    if not known:
        return "no silver or gold table is published"
    names = sorted(known)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"published tables: {', '.join(names[:shown])}{more}"


def _check_table_function(function: exp.Func) -> None:
    name = _function_name(function)
    if name not in TABLE_FUNCTIONS:
        raise QueryRefused(
            f"table function {name}() is not allowed; query silver.<table> or gold.<table> "
            f"(row generators allowed: {', '.join(sorted(TABLE_FUNCTIONS))})"
        )


def _visible_ctes(table: exp.Table) -> set[str]:
    """Names of the CTEs in scope where ``table`` is referenced.

    A CTE sees the CTEs defined before it (and itself under WITH RECURSIVE); the query
    body sees all of them; nested queries also see their enclosing queries' CTEs. A name
    outside that scope would reach DuckDB's catalog or its file replacement scan instead.
    """
    visible: set[str] = set()
    child: exp.Expr = table
    for node in _ancestors(table):
        with_ = node.args.get("with_")
        if isinstance(node, exp.With):
            position = next(i for i, cte in enumerate(node.expressions) if cte is child)
            in_scope = position + 1 if node.args.get("recursive") else position
            visible.update(cte.alias.lower() for cte in node.expressions[:in_scope])
        elif isinstance(with_, exp.With) and with_ is not child:
            visible.update(cte.alias.lower() for cte in with_.expressions)
        child = node
    return visible


def _ancestors(node: exp.Expr) -> Iterator[exp.Expr]:
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _check_function(function: exp.Func) -> None:
    name = _function_name(function)
    if isinstance(function, exp.ReadCSV | exp.ReadParquet) or _blocked(name):
        raise QueryRefused(
            f"function {name}() reads files or system state; "
            "only silver and gold tables can be queried"
        )


def _blocked(name: str) -> bool:
    return name in BLOCKED_FUNCTIONS or name.startswith(BLOCKED_PREFIXES)


def _function_name(function: exp.Func) -> str:
    if isinstance(function, exp.Anonymous):
        return function.name.lower()
    return function.sql_name().lower()


def _kind(node: exp.Expr) -> str:
    """A readable statement kind: its leading keyword, else the node type."""
    words = node.sql(dialect=DIALECT).split(maxsplit=1)
    return words[0].upper() if words else type(node).__name__.upper()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
