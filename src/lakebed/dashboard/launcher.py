"""Starting and stopping the dashboard: Streamlit serving ``app.py``, and the API it
talks to, started too when nothing answers at its address.

In the foreground (``lakebed dashboard``) both are children that stop with Ctrl+C. In the
background (``--background``, which ``make demo`` uses) they run in their own session with
their logs and process ids under ``<data home>/dashboard``, until ``lakebed dashboard
--stop``. Streamlit runs headless with usage statistics off and always with an explicit
address: without one it looks up the machine's public IP to print an "External URL".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lakebed.config import Settings
from lakebed.dashboard.client import API_URL_VARIABLE

APP = Path(__file__).with_name("app.py")
START_TIMEOUT_S = 120.0


class DashboardError(RuntimeError):
    """The dashboard or its API did not come up; the message says why."""


@dataclass
class Dashboard:
    url: str
    api_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_started: bool = False
    startup_s: dict[str, float] = field(default_factory=dict)  # "api", "app": until healthy

    def api_answering(self) -> bool:
        return _answers(f"{self.api_url}/health")

    def stop(self) -> None:
        for process in reversed(self.processes):
            _terminate(process.pid)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def home(settings: Settings) -> Path:
    return settings.data_home.resolve() / "dashboard"


def api_url(settings: Settings) -> str:
    return settings.dashboard.api_url or f"http://{settings.serve.host}:{settings.serve.port}"


def streamlit_command(settings: Settings) -> list[str]:
    board = settings.dashboard
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", board.host,
        "--server.port", str(board.port),
        "--server.headless", "true",
        "--server.showEmailPrompt", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(url: str, process: subprocess.Popen[bytes], what: str, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers(url):
            return
        if process.poll() is not None:
            break
        time.sleep(0.3)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    state = f"exited with {process.returncode}" if process.poll() is not None else "timed out"
    raise DashboardError(f"{what} did not start ({state}; {url}){tail}")


def start(settings: Settings, background: bool = False) -> Dashboard:
    """The dashboard, answering; the API is started first unless it already answers."""
    folder = home(settings)
    folder.mkdir(parents=True, exist_ok=True)
    board = settings.dashboard
    dashboard = Dashboard(url=f"http://{board.host}:{board.port}", api_url=api_url(settings))
    if _answers(f"{dashboard.url}/_stcore/health"):
        raise DashboardError(
            f"something already answers at {dashboard.url}: stop it (`lakebed dashboard "
            "--stop` for a background dashboard) or set dashboard.port"
        )
    environment = {
        **os.environ,
        API_URL_VARIABLE: dashboard.api_url,
        # The API it may start serves this data home on this address and profile.
        "LAKEBED_DATA_HOME": str(settings.data_home.resolve()),
        "LAKEBED_PROFILE": settings.profile,
        "LAKEBED_SERVE__HOST": settings.serve.host,
        "LAKEBED_SERVE__PORT": str(settings.serve.port),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    try:
        # An API of one's own choosing (dashboard.api_url) is never started here: if it is
        # down, the pages say so until it answers.
        if not settings.dashboard.api_url and not _answers(f"{dashboard.api_url}/health"):
            log = folder / "api.log"
            command = [sys.executable, "-c", "from lakebed.cli import app; app()", "serve"]
            api = _spawn(command, environment, log)
            dashboard.processes.append(api)
            dashboard.api_started = True
            began = time.perf_counter()
            _wait(f"{dashboard.api_url}/health", api, "the API", log)
            dashboard.startup_s["api"] = time.perf_counter() - began
        log = folder / "streamlit.log"
        began = time.perf_counter()
        app = _spawn(streamlit_command(settings), environment, log)
        dashboard.processes.append(app)
        _wait(f"{dashboard.url}/_stcore/health", app, "the dashboard", log)
        dashboard.startup_s["app"] = time.perf_counter() - began
    except BaseException:
        dashboard.stop()
        raise
    if background:
        pids = [process.pid for process in dashboard.processes]
        (folder / "pids.json").write_text(json.dumps({"url": dashboard.url, "pids": pids}))
    return dashboard


def _spawn(command: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    output = log.open("wb")
    try:
        return subprocess.Popen(
            command,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: stopped whole, not by the terminal's ^C
        )
    finally:
        output.close()


def stop_background(settings: Settings) -> bool:
    """Stop the dashboard ``--background`` started; False if none was running."""
    record = home(settings) / "pids.json"
    if not record.exists():
        return False
    try:
        pids = [int(pid) for pid in json.loads(record.read_text())["pids"]]
    except (ValueError, KeyError, TypeError):
        pids = []
    pids = [pid for pid in pids if _ours(pid)]  # a pid from before a reboot may be reused
    stopped = False
    for pid in reversed(pids):
        stopped |= _terminate(pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    record.unlink(missing_ok=True)
    return stopped


def _ours(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"streamlit" in command or b"lakebed" in command


def _terminate(pid: int) -> bool:
    return _signal_group(pid, signal.SIGTERM)


def _signal_group(pid: int, signum: int) -> bool:
    try:
        os.killpg(pid, signum)  # the process leads its own session's group
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) still answers kill(0).
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")
