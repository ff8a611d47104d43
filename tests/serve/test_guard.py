"""The read-only guard: what it lets through, what it refuses and why."""

from __future__ import annotations

import pytest

from lakebed.serve.guard import MAX_SQL_CHARS, QueryRefused, UnknownTable, check_read_only

TABLES = {"gold.fct_transactions", "gold.dim_customer", "silver.stg_transactions"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select * from gold.fct_transactions",
        "FROM gold.dim_customer SELECT customer_id",
        'SELECT * FROM "GOLD"."Dim_Customer"',
        "SELECT * FROM gold . dim_customer AS c WHERE c.customer_id > 3",
        "WITH t AS (SELECT * FROM silver.stg_transactions) SELECT count(*) FROM t",
        "WITH a AS (WITH b AS (SELECT * FROM gold.fct_transactions) SELECT * FROM b), "
        "c AS (SELECT * FROM a) SELECT * FROM c",
        "WITH a AS (SELECT 1 AS x) SELECT * FROM (WITH b AS (SELECT * FROM a) SELECT * FROM b)",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
        "SELECT * FROM r",
        "SELECT customer_id FROM gold.dim_customer UNION ALL "
        "SELECT customer_id FROM gold.fct_transactions",
        "SELECT 1 INTERSECT SELECT 1 EXCEPT SELECT 2",
        "SELECT customer_id, row_number() OVER (PARTITION BY customer_id ORDER BY amount) "
        "FROM gold.fct_transactions QUALIFY row_number() OVER w = 1 WINDOW w AS (ORDER BY 1)",
        "SELECT * FROM gold.dim_customer c JOIN gold.fct_transactions t USING (customer_id)",
        "SELECT * FROM gold.dim_customer WHERE customer_id IN "
        "(SELECT customer_id FROM silver.stg_transactions)",
        "SELECT * FROM range(10) AS a, generate_series(1, 3) AS b, unnest([1, 2]) AS c",
        "SELECT * FROM gold.dim_customer c, LATERAL unnest([c.customer_id]), "
        "LATERAL range(c.customer_id), LATERAL (SELECT c.customer_id + 1)",
        "SELECT list_transform([1, 2], x -> x + 1), {'a': 1}.a, [1, 2][1]",
        "-- leading comment\nSELECT /* inline */ 1 -- trailing",
        "/* block */ SELECT 1;",
        "SELECT 1;;",
        "  \n\tSELECT\n1\n  ",
        "SELECT 'DROP TABLE x; read_csv(''/etc/passwd'')' AS text_is_fine",
    ],
)
def test_accepts_read_only_queries(sql: str) -> None:
    check_read_only(sql, TABLES)


def test_returns_one_normalised_statement_without_comments() -> None:
    assert check_read_only("select /* c */ 1 ; -- x", TABLES) == "SELECT 1"


def test_without_a_table_list_any_silver_or_gold_name_passes() -> None:
    assert check_read_only("SELECT * FROM gold.anything") == "SELECT * FROM gold.anything"


REFUSED = {
    # nothing, or several statements
    "empty": ("", "no SQL statement"),
    "blank": ("   \n ", "no SQL statement"),
    "comment only": ("-- nothing", "no SQL statement"),
    "two statements": ("SELECT 1; DROP TABLE x", "2 statements"),
    "comment between": ("SELECT 1;/* */DROP TABLE x", "2 statements"),
    "two selects": ("SELECT 1; SELECT 2", "2 statements"),
    # writes and DDL
    "insert": ("INSERT INTO gold.dim_customer VALUES (1)", "not INSERT"),
    "update": ("UPDATE gold.dim_customer SET name = 'x'", "not UPDATE"),
    "delete": ("DELETE FROM gold.dim_customer", "not DELETE"),
    "merge": (
        "MERGE INTO gold.dim_customer t USING gold.dim_customer s ON t.customer_id = "
        "s.customer_id WHEN MATCHED THEN DELETE",
        "not MERGE",
    ),
    "create": ("CREATE TABLE gold.x AS SELECT 1", "not CREATE"),
    "create macro": ("CREATE MACRO m() AS 1", "not CREATE"),
    "drop": ("DROP TABLE gold.dim_customer", "not DROP"),
    "odd casing drop": ("dRoP tAbLe gold.dim_customer", "not DROP"),
    "alter": ("ALTER TABLE gold.dim_customer ADD COLUMN x INT", "not ALTER"),
    "truncate": ("TRUNCATE gold.dim_customer", "not TRUNCATE"),
    "select into": ("SELECT 1 INTO gold.x", "SELECT ... INTO"),
    "nested delete": ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE"),
    # engine and session control
    "copy to": ("COPY gold.dim_customer TO '/tmp/out.csv'", "not COPY"),
    "copy from": ("COPY gold.dim_customer FROM '/etc/passwd'", "not COPY"),
    "attach": ("ATTACH '/tmp/other.db' AS other", "not ATTACH"),
    "detach": ("DETACH other", "not DETACH"),
    "install": ("INSTALL httpfs", "not INSTALL"),
    "load": ("LOAD httpfs", "not LOAD"),
    "pragma": ("PRAGMA database_list", "not PRAGMA"),
    "set": ("SET enable_external_access = true", "not SET"),
    "set variable": ("SET VARIABLE x = 1", "not SET"),
    "reset": ("RESET threads", "not RESET"),
    "call": ("CALL pragma_version()", "not CALL"),
    "use": ("USE bronze", "not USE"),
    "checkpoint": ("CHECKPOINT", "not CHECKPOINT"),
    "force checkpoint": ("FORCE CHECKPOINT", "not FORCE"),
    "vacuum": ("VACUUM", "not VACUUM"),
    "begin": ("BEGIN TRANSACTION", "not BEGIN"),
    "export": ("EXPORT DATABASE '/tmp/dump'", "could not parse"),
    "import": ("IMPORT DATABASE '/tmp/dump'", "could not parse"),
    "describe": ("DESCRIBE gold.dim_customer", "not DESCRIBE"),
    "nested describe": ("SELECT * FROM (DESCRIBE gold.dim_customer)", "DESCRIBE"),
    "show": ("SHOW TABLES", "not SHOW"),
    "summarize": ("SUMMARIZE gold.dim_customer", "not SUMMARIZE"),
    "explain": ("EXPLAIN SELECT 1", "not EXPLAIN"),
    "prepare": ("PREPARE p AS SELECT 1", "not PREPARE"),
    "values": ("VALUES (1)", "not VALUES"),
    # unparseable
    "garbage": ("SELEC 1 FROM", "could not parse"),
    "unterminated": ("SELECT 'abc", "could not parse"),
    # files, directly or through replacement scans
    "read_csv mixed case": ("sElEcT * FrOm read_csv('/etc/passwd')", "read_csv"),
    "read_csv_auto": ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto"),
    "read_csv quoted name": ("SELECT * FROM \"READ_CSV\"('/etc/passwd')", "read_csv"),
    "read_parquet": ("SELECT * FROM read_parquet('x.parquet')", "read_parquet"),
    "read_json": ("SELECT * FROM read_json('x.json')", "read_json"),
    "read_json_auto": ("SELECT * FROM read_json_auto('x.json')", "read_json_auto"),
    "read_ndjson": ("SELECT * FROM read_ndjson_objects('x.json')", "read_ndjson"),
    "read_text": ("SELECT * FROM read_text('/etc/passwd')", "read_text"),
    "read_blob": ("SELECT * FROM read_blob('/etc/passwd')", "read_blob"),
    "read_text as scalar": ("SELECT read_text('/etc/passwd')", "read_text"),
    "glob": ("SELECT * FROM glob('/etc/*')", "glob"),
    "parquet_scan": ("SELECT * FROM parquet_scan('x.parquet')", "parquet_scan"),
    "parquet_metadata": ("SELECT * FROM parquet_metadata('x.parquet')", "parquet_metadata"),
    "sniff_csv": ("SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv"),
    "iceberg_scan": ("SELECT * FROM iceberg_scan('s3://bucket/t')", "iceberg_scan"),
    "delta_scan": ("SELECT * FROM delta_scan('s3://bucket/t')", "delta_scan"),
    "sqlite_scan": ("SELECT * FROM sqlite_scan('x.db', 't')", "sqlite_scan"),
    "string as table": ("SELECT * FROM '/etc/passwd'", "unknown table"),
    "quoted path as table": ('SELECT * FROM "/etc/passwd"', "unknown table"),
    "url as table": ("SELECT * FROM 'https://example.com/x.csv'", "unknown table"),
    "path joined": ("SELECT * FROM gold.dim_customer, 'data.parquet'", "unknown table"),
    "read_parquet in nested cte": (
        "WITH a AS (WITH b AS (SELECT * FROM read_parquet('x')) SELECT * FROM b) SELECT * FROM a",
        "read_parquet",
    ),
    "read_csv in subquery": (
        "SELECT * FROM gold.dim_customer WHERE customer_id IN "
        "(SELECT column0 FROM read_csv('/etc/passwd'))",
        "read_csv",
    ),
    "read_csv in lateral": ("SELECT * FROM gold.dim_customer, LATERAL read_csv('x')", "read_csv"),
    "other table function in lateral": (
        "SELECT * FROM gold.dim_customer, LATERAL test_all_types()",
        "table function test_all_types()",
    ),
    "read_csv in join": (
        "SELECT * FROM gold.dim_customer JOIN read_csv('x') r ON true",
        "read_csv",
    ),
    "read_json in union": (
        "SELECT 1 UNION SELECT * FROM read_json_auto('/etc/x.json')",
        "read_json_auto",
    ),
    # settings, secrets, environment, dynamic SQL
    "getenv": ("SELECT getenv('HOME')", "getenv"),
    "getenv odd case": ("SELECT GetEnv('HOME')", "getenv"),
    "current_setting": ("SELECT current_setting('enable_external_access')", "current_setting"),
    "duckdb_settings()": ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
    "duckdb_settings bare": ("SELECT * FROM duckdb_settings", "unknown table"),
    "duckdb_secrets": ("SELECT * FROM duckdb_secrets()", "duckdb_secrets"),
    "duckdb_extensions": ("SELECT * FROM duckdb_extensions()", "duckdb_extensions"),
    "duckdb_ as scalar": ("SELECT (SELECT count(*) FROM duckdb_tables())", "duckdb_tables"),
    "which_secret": ("SELECT * FROM which_secret('s3://x', 's3')", "which_secret"),
    "pragma function": ("SELECT * FROM pragma_table_info('gold.dim_customer')", "pragma_"),
    "query()": ("SELECT * FROM query('SELECT * FROM bronze.raw')", "query"),
    "query_table()": ("SELECT * FROM query_table('bronze.raw')", "query_table"),
    "json_execute": ("SELECT * FROM json_execute_serialized_sql('{}')", "json_execute"),
    "schema-qualified function": ("SELECT * FROM main.range(3)", "is not allowed"),
    # other schemas and tables
    "bronze": ("SELECT * FROM bronze.raw_transactions", "schema 'bronze'"),
    "bronze in subquery": (
        "SELECT * FROM gold.dim_customer WHERE EXISTS (FROM bronze.raw_transactions)",
        "schema 'bronze'",
    ),
    "bronze quoted": ('SELECT * FROM "BRONZE"."raw_transactions"', "schema 'BRONZE'"),
    "information_schema": ("SELECT * FROM information_schema.tables", "information_schema"),
    "pg_catalog": ("SELECT * FROM pg_catalog.pg_tables", "pg_catalog"),
    "main schema": ("SELECT * FROM main.t", "schema 'main'"),
    "three-part name": ("SELECT * FROM memory.gold.dim_customer", "not allowed"),
    "four-part name": ("SELECT * FROM a.b.c.d", "not allowed"),
    "unknown gold table": ("SELECT * FROM gold.nope", "unknown table gold.nope"),
    "unknown bare table": ("SELECT * FROM dim_customer", "unknown table"),
    "sqlite_master": ("SELECT * FROM sqlite_master", "unknown table"),
    "cte used out of scope": (
        "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x), x",
        "unknown table 'x'",
    ),
    "cte forward reference": (
        "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
        "unknown table 'b'",
    ),
    # SQL that cannot be regenerated faithfully
    "for update": ("SELECT * FROM gold.dim_customer FOR UPDATE", "cannot run"),
    "too long": ("SELECT " + "1 + " * MAX_SQL_CHARS + "1", "characters"),
    "too deep": ("SELECT " + "(" * 5000 + "1" + ")" * 5000, "nested too deeply"),
}


@pytest.mark.parametrize(("sql", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_refuses_with_a_reason(sql: str, reason: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        check_read_only(sql, TABLES)
    assert reason.lower() in str(refused.value).lower()


def test_unknown_published_table_names_the_published_ones() -> None:
    with pytest.raises(UnknownTable, match=r"published tables: gold\.dim_customer"):
        check_read_only("SELECT * FROM gold.missing", TABLES)


def test_refusal_is_a_value_error() -> None:
    """Callers that only know ValueError (argument checking) still catch it."""
    with pytest.raises(ValueError, match="statements"):
        check_read_only("SELECT 1; SELECT 2")
