"""A lakehouse built once per test session from a small world: ingest, dbt build, publish."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

from lakebed.config import Settings
from lakebed.lake.bronze import IngestReport
from lakebed.lake.catalog import open_catalog
from lakebed.lake.pipeline import build_stage, ingest_stage, publish_stage
from lakebed.lake.publish import PublishedTable
from lakebed.lake.transform import BuildResult
from lakebed.world.generate import Generated


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
