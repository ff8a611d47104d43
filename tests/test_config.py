"""Settings: precedence and masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from lakebed.config import MASK, Settings, flatten


class WithSecret(Settings):
    token: SecretStr = SecretStr("s3cr3t")


def test_secrets_are_masked() -> None:
    shown = WithSecret().masked()
    assert shown["token"] == MASK
    assert "s3cr3t" not in str(shown)


def test_code_beats_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "custom.toml"
    config.write_text('profile = "cluster"\ndata_home = "from-file"\n')
    monkeypatch.setenv("LAKEBED_CONFIG", str(config))
    monkeypatch.delenv("LAKEBED_DATA_HOME", raising=False)
    monkeypatch.delenv("LAKEBED_PROFILE", raising=False)
    assert Settings().data_home == Path("from-file")
    assert Settings().profile == "cluster"
    monkeypatch.setenv("LAKEBED_DATA_HOME", "from-env")
    assert Settings().data_home == Path("from-env")
    assert Settings(data_home=Path("from-code")).data_home == Path("from-code")


def test_flatten_names_nested_settings() -> None:
    flat = flatten(Settings().masked())
    assert flat["world.n_customers"] == 5000
    assert flat["world.feed.dirty.late"] == 0.003
