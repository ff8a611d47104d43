"""``lakebed index`` / ``ask`` / ``rag eval`` through the command line, on the local profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lakebed.cli import app

runner = CliRunner()


# Each test runs in an empty folder with no LAKEBED_* variables of the caller.
pytestmark = pytest.mark.usefixtures("isolated")


def test_ask_before_index_says_what_to_run() -> None:
    result = runner.invoke(app, ["ask", "What is the fraud policy?", "--as", "alice"])
    assert result.exit_code == 1
    assert "lakebed index" in " ".join(result.output.split())


def test_index_then_ask_then_reindex(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    (corpus / "team").mkdir(parents=True)
    (corpus / "team" / "pager.md").write_text(
        "# Pager Duty\n\n## Rotation\n\nThe pager rotates every Tuesday at 10:00 CET.\n"
    )
    (corpus / "secret.md").write_text(
        "# Salaries\n\n## Bands\n\nThe staff engineer band tops out at 140k.\n"
    )
    (corpus / "access.toml").write_text(
        'default = ["engineering"]\n[[rule]]\npattern = "secret.md"\ngroups = ["executives"]\n'
    )
    result = runner.invoke(app, ["index", "--corpus", str(corpus)])
    assert result.exit_code == 0, result.output
    assert "RAG index" in result.output

    env = {"LAKEBED_RAG__CORPUS": str(corpus)}
    asked = runner.invoke(
        app, ["ask", "When does the pager rotate?", "--as", "bob", "--output", "json"], env=env
    )
    assert asked.exit_code == 0, asked.output
    body = json.loads(asked.output)
    assert body["found"] is True
    assert "Tuesday" in body["answer"]
    assert {c["document"] for c in body["citations"]} == {"team/pager.md"}
    assert body["citations"][0]["link"] == "team/pager.md#rotation"

    hidden = runner.invoke(
        app, ["ask", "What is the staff engineer salary band?", "--as", "bob", "--output",
              "json", "--passages"], env=env,
    )  # fmt: skip
    assert hidden.exit_code == 0, hidden.output
    assert "140k" not in hidden.output
    assert all(p["document"] != "secret.md" for p in json.loads(hidden.output)["passages"])

    (corpus / "secret.md").unlink()
    again = runner.invoke(app, ["index"], env=env)
    assert again.exit_code == 0, again.output
    removed = next(line for line in again.output.splitlines() if "removed" in line)
    assert removed.split("│")[2].strip() == "1"
    rebuilt = runner.invoke(app, ["index", "--rebuild"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ask", "x", "--as", "mallory"], "unknown user 'mallory'; known users: alice"),
        (["ask", "x", "--as", "alice", "--mode", "psychic"], "unknown mode"),
    ],
)
def test_bad_asks_are_refused_with_a_reason(args: list[str], says: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert says in " ".join(result.output.split())  # Rich wraps long lines


def test_index_of_a_missing_folder_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["index", "--corpus", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert "no such folder" in " ".join(result.output.split())
