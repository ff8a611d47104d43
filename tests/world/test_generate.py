"""Determinism, chunk invariance and atomic, idempotent writes of a whole world."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakebed.world.generate import generate_world
from lakebed.world.spec import WorldSpec
from tests.world.helpers import tree_digest

TINY = WorldSpec(seed=11, n_customers=150, n_terminals=300, n_days=21, radius=10.0)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    again = generate_world(TINY, tmp_path / "a", chunk_days=7)
    twice = generate_world(TINY, tmp_path / "b", chunk_days=7)
    assert tree_digest(again.data_home) == tree_digest(twice.data_home)
    other = generate_world(TINY.model_copy(update={"seed": 12}), tmp_path / "c")
    assert tree_digest(other.data_home) != tree_digest(twice.data_home)


@pytest.mark.parametrize("chunk_days", [1, 9, 40])
def test_chunked_equals_single_shot(
    tmp_path: Path, small_spec: WorldSpec, small_home: Path, chunk_days: int
) -> None:
    # The session's small world was made in chunks of 7 days.
    generated = generate_world(small_spec, tmp_path, chunk_days=chunk_days)
    assert tree_digest(generated.data_home) == tree_digest(small_home)


def test_an_existing_world_is_reused(tmp_path: Path) -> None:
    first = generate_world(TINY, tmp_path)
    stamp = (tmp_path / "world" / "spec.json").stat().st_mtime_ns
    second = generate_world(TINY, tmp_path)
    assert second.reused
    assert not first.reused
    assert second.summary == first.summary
    assert (tmp_path / "world" / "spec.json").stat().st_mtime_ns == stamp
    forced = generate_world(TINY, tmp_path, force=True)
    assert not forced.reused


def test_a_failure_mid_write_keeps_the_previous_world(tmp_path: Path) -> None:
    generate_world(TINY, tmp_path)
    before = tree_digest(tmp_path)

    def crash(days: int, _: int) -> None:
        if days >= 10:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_world(
            TINY.model_copy(update={"seed": 99}), tmp_path, chunk_days=5, on_progress=crash
        )
    after = {k: v for k, v in tree_digest(tmp_path).items() if not k.startswith(".staging")}
    assert after == before


def test_killed_generation_leaves_nothing_partial_and_a_rerun_completes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    command = [
        sys.executable, "-m", "lakebed.cli", "generate", "--data-home", str(home),
        "--customers", "3000", "--terminals", "6000", "--days", "120", "--chunk-days", "2",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = home / ".staging"
    deadline = time.monotonic() + 60
    while not any(staging.rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert process.poll() is None, "generation finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    assert not (home / "world").exists()
    assert not (home / "landing").exists()
    rerun = subprocess.run(command, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert not staging.exists()
    assert (home / "world" / "summary.json").exists()
    expected = WorldSpec(n_customers=3000, n_terminals=6000, n_days=120)
    clean = generate_world(expected, tmp_path / "clean", chunk_days=30)
    assert tree_digest(home) == tree_digest(clean.data_home)
