"""Where ml-assets keeps its state: one home directory, overridable by environment variables.

Everything the pipeline writes (Dagster instance, DuckDB warehouse, landing zone, quarantine, BentoML store,
prediction logs) lives under ``ML_ASSETS_HOME`` (default ``./.ml_assets``), so one ``rm -r`` resets a demo and
tests isolate themselves by pointing the variable at a temporary directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SPEC_PATH = PACKAGE_DIR / "datasets" / "adult.yaml"


@dataclass(frozen=True)
class Paths:
    """The directory layout under ML_ASSETS_HOME."""

    home: Path

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME", self.home / "dagster"))

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def bentoml_home(self) -> Path:
        return Path(os.environ.get("BENTOML_HOME", self.home / "bentoml"))

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def checkpoints(self) -> Path:
        return self.home / "checkpoints"

    @property
    def prediction_log(self) -> Path:
        return self.home / "prediction_log"

    @property
    def labels(self) -> Path:
        return self.home / "labels"

    @property
    def deployments(self) -> Path:
        return self.home / "deployments"


class SettingError(ValueError):
    """An environment setting that cannot be used, naming the variable."""


def configured_home() -> Path | None:
    """ML_ASSETS_HOME when it is set (production requires it: the shared volume), else None."""
    value = os.environ.get("ML_ASSETS_HOME")
    return Path(value).resolve() if value else None


def ml_assets_home() -> Path:
    return configured_home() or Path(".ml_assets").resolve()


def paths() -> Paths:
    return Paths(ml_assets_home())


def int_env(name: str, default: int) -> int:
    """An integer setting from the environment, with an error that names the variable."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise SettingError(f"{name} must be an integer, got {value!r}") from e


def serve_port() -> int:
    """The stable loopback port applications call the served model on (``ML_ASSETS_SERVE_PORT``, default 3000)."""
    return int_env("ML_ASSETS_SERVE_PORT", 3000)


def spec_path() -> Path:
    """The dataset spec in use: ML_ASSETS_DATASET_SPEC or the shipped UCI Adult spec."""
    return Path(os.environ.get("ML_ASSETS_DATASET_SPEC", DEFAULT_SPEC_PATH)).resolve()


def environment() -> str:
    """The resource set to use: ``local`` (embedded, default) or ``prod``."""
    env = os.environ.get("ML_ASSETS_ENV", "local")
    if env not in ("local", "prod"):
        raise SettingError(f"ML_ASSETS_ENV must be 'local' or 'prod', got {env!r}")
    return env
