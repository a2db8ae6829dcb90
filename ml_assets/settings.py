"""Which environment this is, where it runs, and where it keeps its state.

Two settings that used to be one: ``ML_ASSETS_ENV`` says WHICH environment (``dev``, ``qa`` or ``prod``: what the
process is for and whose state it touches) and ``ML_ASSETS_RUNS_ON`` says WHERE it runs (``local``: embedded, or
``kubernetes``: pods, PostgreSQL, blue/green Deployments). Any environment runs anywhere.

Everything the pipeline writes (Dagster instance, DuckDB warehouse, landing zone, quarantine, BentoML store,
prediction logs, deployments) lives under ``ML_ASSETS_HOME`` (default ``./.ml_assets``): ``dev``, the default, keeps
today's layout at its top, and ``qa`` and ``prod`` each have a folder of their own in it (``$ML_ASSETS_HOME/qa``,
``$ML_ASSETS_HOME/prod``), so the three run side by side on one machine and one ``rm -r`` still resets everything.
On Kubernetes each environment has its own namespace, with its own volume mounted at ``ML_ASSETS_HOME``: the
namespace separates them, and the state is at the volume's top.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SPEC_PATH = PACKAGE_DIR / "datasets" / "adult.yaml"


ENVIRONMENTS = ("dev", "qa", "prod")
DEFAULT_ENVIRONMENT = "dev"
RUNS_ON = ("local", "kubernetes")
# Before ML_ASSETS_ENV named the environment it named the resource set: ``local`` was today's dev on this machine.
DEPRECATED_ENVIRONMENTS = {"local": DEFAULT_ENVIRONMENT}
# Ports of an environment on one machine: dev keeps the historical ones, qa and prod sit beside it.
PORT_OFFSETS = {"dev": 0, "qa": 1, "prod": 2}


@dataclass(frozen=True)
class Paths:
    """The directory layout of one environment's state.

    ``overrides``: DAGSTER_HOME and BENTOML_HOME, when set, win (the process's own environment: how tests and pods
    have always placed them); never for another environment's state, which a promotion reads."""

    home: Path
    overrides: bool = True

    def _override(self, variable: str, default: Path) -> Path:
        value = os.environ.get(variable) if self.overrides else None
        return Path(value) if value else default

    @property
    def dagster_home(self) -> Path:
        return self._override("DAGSTER_HOME", self.home / "dagster")

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def tables(self) -> str:
        """The data plane's Parquet tables: a folder under home, or an fsspec URL (``ML_ASSETS_TABLES_URL``)."""
        url = os.environ.get("ML_ASSETS_TABLES_URL") if self.overrides else None
        return url or str(self.home / "tables")

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def bentoml_home(self) -> Path:
        return self._override("BENTOML_HOME", self.home / "bentoml")

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


def environment_home(env: str, root: Path | None = None) -> Path:
    """The folder of ``env``'s state: the top of ML_ASSETS_HOME for dev (the layout a newcomer always had) and on
    Kubernetes (the namespace's own volume); ``<ML_ASSETS_HOME>/<env>`` for qa and prod on one machine."""
    root = root or ml_assets_home()
    return root if env == DEFAULT_ENVIRONMENT or runs_on() == "kubernetes" else root / env


def paths(env: str | None = None) -> Paths:
    """The state of ``env`` (default: this process's environment). Only the process's own environment honours
    DAGSTER_HOME and BENTOML_HOME, and only where it lives at the top of ML_ASSETS_HOME: qa and prod on one machine
    always keep their instance and store in their own folder, so one shell's variables never make them share."""
    current = environment()
    env = check_environment(env or current, "environment")
    home = environment_home(env)
    return Paths(home, overrides=env == current and home == ml_assets_home())


def sample_rows(default: int) -> int:
    """The size of a bounded sample: ``default``, or ``ML_ASSETS_SAMPLE_ROWS`` where that is smaller. Every sample a
    step judges or fits on (GX, the training-set checks, the baseline, the trees, the evaluation) is at most this
    many rows, so the variable is the rows a step holds at once beyond its batches: its memory at any window size."""
    cap = int_env("ML_ASSETS_SAMPLE_ROWS", 0)
    return min(default, cap) if cap > 0 else default


def int_env(name: str, default: int) -> int:
    """An integer setting from the environment, with an error that names the variable."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise SettingError(f"{name} must be an integer, got {value!r}") from e


def serve_port(env: str | None = None) -> int:
    """The stable loopback port applications call the served model on (``ML_ASSETS_SERVE_PORT``; default 3000 for
    dev, 3001 for qa, 3002 for prod, so the three serve side by side)."""
    return int_env("ML_ASSETS_SERVE_PORT", 3000 + PORT_OFFSETS[env or environment()])


def ui_port(env: str | None = None) -> int:
    """The port of ``ml-assets up``'s Dagster UI: 3030 for dev, 3031 for qa, 3032 for prod."""
    return 3030 + PORT_OFFSETS[env or environment()]


def spec_path() -> Path:
    """The dataset spec in use: ML_ASSETS_DATASET_SPEC or the shipped UCI Adult spec."""
    return Path(os.environ.get("ML_ASSETS_DATASET_SPEC", DEFAULT_SPEC_PATH)).resolve()


def check_environment(env: str, where: str = "ML_ASSETS_ENV") -> str:
    """``env`` when it names an environment (``local``, the old name of dev's resource set, is read as dev)."""
    env = DEPRECATED_ENVIRONMENTS.get(env, env)
    if env not in ENVIRONMENTS:
        raise SettingError(f"{where} must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    return env


def environment() -> str:
    """Which environment this process is: ``ML_ASSETS_ENV`` (``dev``, the default, ``qa`` or ``prod``)."""
    value = os.environ.get("ML_ASSETS_ENV", "").strip() or DEFAULT_ENVIRONMENT
    if value in DEPRECATED_ENVIRONMENTS:
        warnings.warn(
            f"ML_ASSETS_ENV={value} is deprecated: it now names the environment (dev, qa or prod); {value!r} is read "
            f"as {DEPRECATED_ENVIRONMENTS[value]!r} on this machine (ML_ASSETS_RUNS_ON=local)",
            FutureWarning,
            stacklevel=2,
        )
    return check_environment(value)


def runs_on() -> str:
    """Where the environment runs: ``ML_ASSETS_RUNS_ON`` (``local``, the default, or ``kubernetes``)."""
    value = os.environ.get("ML_ASSETS_RUNS_ON", "").strip() or "local"
    if value not in RUNS_ON:
        raise SettingError(f"ML_ASSETS_RUNS_ON must be one of {', '.join(RUNS_ON)}, got {value!r}")
    return value


def kubernetes_namespace(env: str) -> str:
    """The namespace an environment runs in on Kubernetes (``ML_ASSETS_NAMESPACE`` wins): ``ml-assets`` for prod,
    ``ml-assets-dev`` and ``ml-assets-qa`` beside it."""
    return os.environ.get("ML_ASSETS_NAMESPACE") or ("ml-assets" if env == "prod" else f"ml-assets-{env}")
