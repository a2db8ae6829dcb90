"""Resources per environment, the way Dagster's example projects choose them: one dict per environment.

``local`` is embedded (DuckDB file, BentoML store on disk, torchrun subprocesses, ``bentoml serve`` on loopback)
and needs no service; ``prod`` reads its locations from environment variables so the same code runs in pods.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import FilesystemIOManager
from dagster_duckdb_pandas import DuckDBPandasIOManager

from ml_assets.dataset import DatasetSpec
from ml_assets.settings import Paths, paths
from resources.landing import LandingZone

WAREHOUSE_SCHEMA = "ml"


def local_resources(spec: DatasetSpec, where: Paths | None = None) -> dict[str, Any]:
    where = where or paths()
    return {
        "warehouse_io_manager": DuckDBPandasIOManager(database=str(where.warehouse), schema=WAREHOUSE_SCHEMA),
        "io_manager": FilesystemIOManager(base_dir=str(where.home / "storage")),
        "landing": LandingZone(root=str(where.landing), quarantine_root=str(where.quarantine)),
    }


def prod_resources(spec: DatasetSpec) -> dict[str, Any]:
    """Production: shared volumes mounted into run pods; locations come from the pod's environment."""
    where = Paths(_required_path("ML_ASSETS_HOME"))
    return local_resources(spec, where) | {
        "warehouse_io_manager": DuckDBPandasIOManager(
            database=os.environ.get("ML_ASSETS_WAREHOUSE", str(where.warehouse)), schema=WAREHOUSE_SCHEMA
        ),
    }


def _required_path(var: str):
    from pathlib import Path

    value = os.environ.get(var)
    if not value:
        raise RuntimeError(f"ML_ASSETS_ENV=prod needs {var} set to the shared volume path")
    return Path(value)


def resources_for(env: str, spec: DatasetSpec) -> dict[str, Any]:
    return {"local": local_resources, "prod": prod_resources}[env](spec)
