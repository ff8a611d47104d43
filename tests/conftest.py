"""Shared fixtures: small worlds generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakebed.world.generate import Generated, generate_world
from lakebed.world.spec import WorldSpec

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
