"""Shared fixtures, each built once per test session: a small world and its lakehouse,
the default world (the handbook's parameters, ~1.75M transactions) built into a lakehouse,
and the fraud models trained on it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

from lakebed.config import Settings
from lakebed.fraud.registry import Registry
from lakebed.fraud.train import TrainingReport, train
from lakebed.lake.bronze import IngestReport
from lakebed.lake.catalog import open_catalog
from lakebed.lake.pipeline import LakehouseReport, build_stage, ingest_stage, publish_stage
from lakebed.lake.publish import PublishedTable
from lakebed.lake.runs import RunRecord, record_run
from lakebed.lake.transform import BuildResult
from lakebed.world.generate import Generated, generate_world
from lakebed.world.spec import WorldSpec
from tests.cluster import postgres, seaweedfs, trino  # noqa: F401 (fixtures: one set per module)

SMALL = WorldSpec(seed=7, n_customers=400, n_terminals=800, n_days=40, radius=8.0)


@pytest.fixture(scope="session")
def small_spec() -> WorldSpec:
    return SMALL


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """A small world with every feature on (dirty rows, late events, schema change)."""
    home = tmp_path_factory.mktemp("small-world")
    return generate_world(SMALL, home, chunk_days=7)


@pytest.fixture(scope="session")
def small_home(small_world: Generated) -> Path:
    return small_world.data_home


@dataclass(frozen=True)
class Lakehouse:
    settings: Settings
    catalog: Catalog
    ingest: IngestReport
    build: BuildResult
    published: list[PublishedTable]

    @property
    def home(self) -> Path:
        return self.settings.data_home


def copy_world(world: Generated, home: Path) -> Settings:
    """A data home with the world's files (the session world itself stays untouched)."""
    for folder in ("landing", "world"):
        shutil.copytree(world.data_home / folder, home / folder)
    return Settings(data_home=home)


@pytest.fixture(scope="session")
def lakehouse(small_world: Generated, tmp_path_factory: pytest.TempPathFactory) -> Lakehouse:
    settings = copy_world(small_world, tmp_path_factory.mktemp("lakehouse"))
    catalog = open_catalog(settings)
    report = ingest_stage(settings, catalog)
    build = build_stage(settings, catalog)
    published = publish_stage(settings, catalog)
    return Lakehouse(settings, catalog, report, build, published)


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
    started = datetime.now(UTC)
    catalog = open_catalog(settings)
    ingested = ingest_stage(settings, catalog)
    build = build_stage(settings, catalog)
    published = publish_stage(settings, catalog)
    report = LakehouseReport(ingested, build, published)
    record_run(settings, RunRecord.of(report, started, datetime.now(UTC)))  # as the flow does
    return settings


@pytest.fixture(scope="session")
def trained(default_lake: Settings) -> Trained:
    """Every candidate trained on the handbook's window and registered; the best promoted."""
    report = train(default_lake)
    assert report.best.version is not None
    Registry(default_lake).promote(report.best.version)
    return Trained(default_lake, report, report.best.version)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test runs in an empty folder with no LAKEBED_* variables of the caller."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("LAKEBED_")]:
        monkeypatch.delenv(name)
