"""The command line: every command listed, options validated with readable errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lakebed.cli import _future_world_warning, app
from lakebed.world.spec import WorldSpec

runner = CliRunner()


# Each test runs in an empty folder with no LAKEBED_* variables of the caller.
pytestmark = pytest.mark.usefixtures("isolated")


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("generate", "demo", "config"):
        assert command in result.output


def test_config_show_resolves_file_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("lakebed.toml").write_text('data_home = "elsewhere"\n[world]\nn_days = 12\nseed = 4\n')
    monkeypatch.setenv("LAKEBED_WORLD__SEED", "9")
    monkeypatch.setenv("LAKEBED_PROFILE", "cluster")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in _rows(result.output)}
    assert rows["profile"] == "cluster"
    assert rows["data_home"] == "elsewhere"
    assert rows["world.n_days"] == "12"
    assert rows["world.seed"] == "9"  # the environment beats the file


def _rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.count("│") == 3]


def test_bad_setting_is_a_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEBED_PROFILE", "laptop")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "profile" in result.output
    assert "laptop" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--customers", "-5"], "n_customers"),
        (["--days", "0"], "n_days"),
        (["--radius", "0"], "radius"),
        (["--currencies", "EUR,XYZ"], "unknown currency code(s) XYZ"),
        (["--start-date", "April"], "--start-date must be YYYY-MM-DD"),
        (["--chunk-days", "0"], "--chunk-days must be at least 1"),
    ],
)
def test_generate_rejects_bad_options(arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["generate", *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not Path("lakebed-data/world").exists()


def test_generate_prints_the_summary(tmp_path: Path) -> None:
    arguments = ["generate", "--customers", "80", "--terminals", "200", "--days", "6"]
    result = runner.invoke(app, [*arguments, "--data-home", str(tmp_path / "home")])
    assert result.exit_code == 0, result.output
    for label in ("transactions", "frauds", "dirty: duplicate", "transaction files"):
        assert label in result.output
    assert (tmp_path / "home" / "landing" / "transactions").is_dir()
    again = runner.invoke(app, [*arguments, "--data-home", str(tmp_path / "home")])
    assert "reused (same spec)" in again.output


@pytest.mark.parametrize(("start", "warned"), [("2026-03-01", False), ("2026-03-25", True)])
def test_a_world_that_runs_past_today_is_warned_about(start: str, warned: bool) -> None:
    spec = WorldSpec(start_date=date.fromisoformat(start), n_days=10)
    warning = _future_world_warning(spec, today=date(2026, 4, 1))
    assert (warning is not None) == warned
    if warning is not None:
        assert "2026-04-03" in warning
        assert "dead-letter" in warning


def test_generate_warns_of_a_world_in_the_future(tmp_path: Path) -> None:
    arguments = ["generate", "--customers", "50", "--terminals", "100", "--days", "3"]
    start = date.today().replace(year=date.today().year + 1, month=1, day=1).isoformat()
    result = runner.invoke(
        app, [*arguments, "--start-date", start, "--data-home", str(tmp_path / "home")]
    )
    assert result.exit_code == 0, result.output
    assert "after today" in result.output
