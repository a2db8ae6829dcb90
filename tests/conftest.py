"""Shared fixtures: every test gets its own ML_ASSETS_HOME, DAGSTER_HOME and BENTOML_HOME."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from ml_assets.dataset import DatasetSpec, load_default_spec


def _fast_tier(config: pytest.Config) -> bool:
    return "not integration" in " ".join((config.getoption("markexpr") or "").split())


INTEGRATION_MODULE = "\npytestmark = pytest.mark.integration\n"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast tier does not import a module whose every test is integration (its module-level mark says so):
    every one would be deselected anyway, and importing BentoML, Kubernetes or the servers' clients in each worker
    costs seconds."""
    test_module = collection_path.suffix == ".py" and collection_path.name.startswith("test_")
    if _fast_tier(config) and test_module and INTEGRATION_MODULE in collection_path.read_text():
        return True
    return None


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: the fast tier (``-m "not integration"``) runs on every core (at most 4 workers); a run that
    includes integration tests runs in this one process, since those start ranks and servers that need the cores
    and time their own health."""
    if _fast_tier(config):
        return min(os.cpu_count() or 1, 4)
    return 0


@pytest.fixture(autouse=True)
def processes_only_in_integration_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast tier starts no process: a test without the ``integration`` marker that tries fails, naming it."""
    if request.node.get_closest_marker("integration"):
        return

    def refuse(*args, **kwargs):
        raise AssertionError(
            f"{request.node.nodeid} starts a process but is not marked integration (pytest.mark.integration)"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(os, "fork", refuse)


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


def three_day_window(spec: DatasetSpec, first_day: date) -> DatasetSpec:
    """``spec`` with partitions from ``first_day`` and a three-day training window (train, validation, test)."""
    window = spec.training.model_copy(update={"window_days": 3, "validation_days": 1, "test_days": 1})
    return pinned(spec, partitions_start=first_day, training=window)


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL (127.0.0.1:5432, trust auth), dropped afterwards; its name."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(PG_ADMIN, connect_timeout=3)
    except psycopg2.OperationalError as e:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({e})")
    admin.autocommit = True
    name = f"ml_assets_test_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
