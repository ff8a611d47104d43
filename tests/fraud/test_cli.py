"""``lakebed train``, ``lakebed models`` and ``lakebed models promote`` as a person runs them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lakebed.cli import app
from lakebed.fraud.registry import Registry
from tests.conftest import Trained

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_train_prints_the_metrics_table_and_registers(trained: Trained) -> None:
    home = str(trained.home)
    before = {v.version for v in Registry(trained.settings).versions()}
    output = invoke("train", "--data-home", home, "--model", "logistic_regression")
    assert "Fraud models · train 2018-07-25..2018-07-31" in output
    assert "Logistic regression" in output
    assert "handbook:" in output  # the published results beside ours
    assert "roc.png" in output
    after = Registry(trained.settings).versions()
    [new] = [v for v in after if v.version not in before]
    assert new.model == "logistic_regression"
    assert not new.champion

    listing = invoke("models", "--data-home", home)
    assert "champion" in listing
    rows = [line.split("│") for line in listing.splitlines() if line.startswith("│")]
    listed = {cells[1].strip(): cells for cells in rows if cells[1].strip()}
    assert new.version in listed
    assert "champion" in listed[trained.champion][-2]


def test_promote_by_version_and_best(trained: Trained) -> None:
    home = str(trained.home)
    other = next(r for r in trained.report.results if r.version != trained.champion)
    assert other.version is not None
    try:
        output = invoke("models", "promote", other.version, "--data-home", home)
        assert f"champion: version {other.version} ({other.name})" in output
        assert Registry(trained.settings).champion().version == other.version
    finally:
        output = invoke("models", "promote", "--best", "--data-home", home)
    best = max(Registry(trained.settings).versions(), key=lambda v: v.metrics["average_precision"])
    assert Registry(trained.settings).champion().version == best.version
    assert f"champion: version {best.version}" in output


def test_bad_requests_fail_with_a_message(trained: Trained, tmp_path: Path) -> None:
    home = str(trained.home)
    for args, message in (
        (["models", "promote", "999", "--data-home", home], "no version 999"),
        (["models", "promote", "--data-home", home], "give a VERSION or --best"),
        (["train", "--data-home", home, "--model", "svm"], "unknown model(s) svm"),
        (["train", "--data-home", home, "--train-start", "July"], "--train-start must be"),
        (["train", "--data-home", str(tmp_path)], "lakebed run"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert message in result.output, result.output
