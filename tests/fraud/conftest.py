"""The default world (the handbook's parameters, ~1.75M transactions) built into a
lakehouse once per session, and the fraud models trained on it once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lakebed.config import Settings
from lakebed.fraud.registry import Registry
from lakebed.fraud.train import TrainingReport, train
from lakebed.lake.catalog import open_catalog
from lakebed.lake.pipeline import build_stage, ingest_stage, publish_stage
from lakebed.world.generate import generate_world


@dataclass(frozen=True)
class Trained:
    settings: Settings
    report: TrainingReport
    champion: str

    @property
    def home(self) -> Path:
        return self.settings.data_home


@pytest.fixture(scope="session")
def default_lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A data home with the default world's gold tables published."""
    settings = Settings(data_home=tmp_path_factory.mktemp("default-lake"))
    generate_world(settings.world, settings.data_home)
    catalog = open_catalog(settings)
    ingest_stage(settings, catalog)
    build_stage(settings, catalog)
    publish_stage(settings, catalog)
    return settings


@pytest.fixture(scope="session")
def trained(default_lake: Settings) -> Trained:
    """Every candidate trained on the handbook's window and registered; the best promoted."""
    report = train(default_lake)
    assert report.best.version is not None
    Registry(default_lake).promote(report.best.version)
    return Trained(default_lake, report, report.best.version)
