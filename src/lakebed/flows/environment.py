"""Prefect reads its settings from the environment when it is imported; this sets them
from Lakebed's settings first: state in the data home, no telemetry, quiet logs."""

from __future__ import annotations

import os

from lakebed.config import Settings


def prepare_prefect(settings: Settings) -> None:
    """Call before the first ``import prefect`` in the process."""
    home = settings.data_home.resolve() / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
