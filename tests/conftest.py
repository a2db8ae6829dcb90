"""Shared fixtures: every test gets its own ML_ASSETS_HOME, DAGSTER_HOME and BENTOML_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_assets.dataset import DatasetSpec, load_default_spec


@pytest.fixture
def ml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ml_home"
    (home / "dagster").mkdir(parents=True)
    monkeypatch.setenv("ML_ASSETS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "true")
    return home


@pytest.fixture(scope="session")
def adult_spec() -> DatasetSpec:
    return load_default_spec()
