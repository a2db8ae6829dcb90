"""Shared fixtures: every test gets its own ML_ASSETS_HOME, DAGSTER_HOME and BENTOML_HOME."""

from __future__ import annotations

from datetime import date
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


FIRST_DAY = date(2026, 1, 1)


@pytest.fixture(scope="session")
def adult_spec() -> DatasetSpec:
    """The shipped Adult spec with its partitions starting on a fixed day (``auto`` would follow the landing zone)."""
    return pinned(load_default_spec())


def pinned(spec: DatasetSpec, **changes) -> DatasetSpec:
    """A copy of ``spec`` with partitions from FIRST_DAY (and any other field changes), keeping its file path."""
    return spec.model_copy(update={"partitions_start": FIRST_DAY, **changes})
