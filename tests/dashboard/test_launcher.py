"""``lakebed dashboard --background`` and ``--stop``: both servers up, then both gone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lakebed.cli import app
from lakebed.services import free_ports

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_background_dashboard_starts_its_api_and_stops_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api_port, board_port = free_ports(17400, 1), free_ports(17500, 1)
    monkeypatch.setenv("LAKEBED_SERVE__PORT", str(api_port))
    monkeypatch.setenv("LAKEBED_DASHBOARD__PORT", str(board_port))
    started = runner.invoke(app, ["dashboard", "--background", "--data-home", "home"])
    try:
        assert started.exit_code == 0, started.output
        assert f"http://127.0.0.1:{board_port}" in started.output
        assert "started" in started.output
        record = json.loads(Path("home/dashboard/pids.json").read_text())
        assert len(record["pids"]) == 2
        assert httpx.get(f"http://127.0.0.1:{api_port}/health").json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{board_port}/_stcore/health").text == "ok"
        # The API it started serves this data home: an empty one says what to run.
        lake = httpx.get(f"http://127.0.0.1:{api_port}/lakehouse/status").json()
        assert "lakebed run" in lake["message"]
        # A second dashboard on the same port is refused with the reason.
        again = runner.invoke(app, ["dashboard", "--data-home", "elsewhere"])
        assert again.exit_code != 0
        assert "already answers" in again.output
    finally:
        stopped = runner.invoke(app, ["dashboard", "--stop", "--data-home", "home"])
    assert stopped.exit_code == 0
    assert "dashboard stopped" in stopped.output
    assert not any(_alive(pid) for pid in record["pids"])
    assert not Path("home/dashboard/pids.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{board_port}/_stcore/health")


def test_stop_without_a_background_dashboard_says_so() -> None:
    result = runner.invoke(app, ["dashboard", "--stop"])
    assert result.exit_code == 0
    assert "no background dashboard was running" in result.output
