"""The lakehouse from the command line: the Prefect flow, its skip, and read-only SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def lakebed(*arguments: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAKEBED_DATA_HOME": str(home), "COLUMNS": "200"}
    env.update({"LAKEBED_WORLD__N_CUSTOMERS": "300", "LAKEBED_WORLD__N_TERMINALS": "600"})
    env["LAKEBED_WORLD__N_DAYS"] = "20"
    command = [sys.executable, "-m", "lakebed.cli", *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    home = tmp_path_factory.mktemp("cli-lakehouse")
    return home, lakebed("run", home=home)


def test_the_flow_builds_every_layer(built: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = built
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ("Bronze ingestion", "dbt build", "Rows per layer", "gold.fct_transactions"):
        assert expected in result.stdout
    assert "Quarantined rows by rule" in result.stdout


def test_a_second_run_reprocesses_nothing(
    built: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    home, _ = built
    again = lakebed("run", home=home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "dbt build skipped" in again.stdout
    assert "up to date" in again.stdout


def test_sql_answers_from_gold(built: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    home, _ = built
    query = "SELECT count(*), count(*) FILTER (WHERE is_fraud) FROM gold.fct_transactions"
    result = lakebed("sql", query, "--format", "json", home=home)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    summary = json.loads((home / "world" / "summary.json").read_text())
    assert 0 < answer["rows"][0][0] <= summary["transactions"]
    csv = lakebed(
        "sql", "SELECT date_day FROM gold.dim_date ORDER BY 1 LIMIT 2", "-f", "csv", home=home
    )
    assert csv.stdout.splitlines() == ["date_day", "2018-04-01", "2018-04-02"]


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE gold.fct_transactions",
        "SELECT 1; DELETE FROM gold.dim_date",
        "SELECT * FROM read_csv('/etc/passwd')",
        "select * from bronze.transactions",
    ],
)
def test_sql_refuses_anything_but_reads(
    built: tuple[Path, subprocess.CompletedProcess[str]], statement: str
) -> None:
    home, _ = built
    result = lakebed("sql", statement, home=home)
    assert result.returncode == 2
    assert "refused" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
