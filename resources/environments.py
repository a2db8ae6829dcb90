"""Resources per environment, the way Dagster's example projects choose them: one dict per environment.

``local`` is embedded (DuckDB file, BentoML store on disk, torchrun subprocesses, ``bentoml serve`` on loopback)
and needs no service; ``prod`` reads its locations from environment variables so the same code runs in pods.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import FilesystemIOManager
from dagster_duckdb_pandas import DuckDBPandasIOManager

from ml_assets.dataset import DatasetSpec
from ml_assets.settings import Paths, int_env, paths, serve_port
from resources.bento_deployer import LocalBentoDeployer
from resources.deepspeed_trainer import DeepSpeedTrainer
from resources.k8s_deployer import KubernetesManifestDeployer
from resources.landing import LandingZone
from resources.launchers import LocalTorchrunLauncher
from resources.model_store import ModelStore
from resources.training_storage import TrainingStorage

WAREHOUSE_SCHEMA = "ml"


def _shared(where: Paths) -> dict[str, Any]:
    return {
        "warehouse_io_manager": DuckDBPandasIOManager(database=str(where.warehouse), schema=WAREHOUSE_SCHEMA),
        "io_manager": FilesystemIOManager(base_dir=str(where.home / "storage")),
        "landing": LandingZone(root=str(where.landing), quarantine_root=str(where.quarantine)),
        "model_store": ModelStore(home=str(where.bentoml_home)),
    }


def local_resources(spec: DatasetSpec, where: Paths | None = None) -> dict[str, Any]:
    """Embedded: everything on this machine under ML_ASSETS_HOME; DeepSpeed ranks as local processes."""
    where = where or paths()
    return _shared(where) | {
        "trainer": DeepSpeedTrainer(
            launcher=LocalTorchrunLauncher(log_root=str(where.home / "logs" / "training")),
            storage=TrainingStorage(root=str(where.staging)),
            ranks=int_env("ML_ASSETS_TRAINER_RANKS", 2),
            zero_stage=int_env("ML_ASSETS_TRAINER_ZERO_STAGE", 0),  # measured: ZeRO-2 on CPU is gloo-latency bound
            checkpoint_dir=str(where.checkpoints),
        ),
        "bento_deployer": LocalBentoDeployer(
            home=str(where.home),
            bentoml_home=str(where.bentoml_home),
            port=serve_port(),
        ),
    }


def prod_resources(spec: DatasetSpec) -> dict[str, Any]:
    """Production: a shared volume mounted into run pods; serving rendered as Kubernetes manifests."""
    home = os.environ.get("ML_ASSETS_HOME")
    if not home:
        raise RuntimeError("ML_ASSETS_ENV=prod needs ML_ASSETS_HOME set to the shared volume path")
    where = Paths(Path(home))
    return local_resources(spec, where) | {
        "bento_deployer": KubernetesManifestDeployer(
            output_dir=str(where.deployments / "k8s"),
            service_name=f"{spec.name}-service",
            registry=os.environ.get("ML_ASSETS_IMAGE_REGISTRY", "registry.example.com/ml-assets"),
        ),
    }


def resources_for(env: str, spec: DatasetSpec) -> dict[str, Any]:
    return {"local": local_resources, "prod": prod_resources}[env](spec)
