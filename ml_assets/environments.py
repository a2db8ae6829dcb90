"""Resources per place an environment runs, the way Dagster's example projects choose them: one dict per place.

Which environment (dev, qa, prod) decides whose state the resources point at (``ml_assets.settings.paths``); where
it runs (``ML_ASSETS_RUNS_ON``) decides the resource set. ``local`` is embedded (DuckDB file, BentoML store on disk,
torchrun subprocesses, ``bentoml serve`` on loopback) and needs no service; ``kubernetes`` reads its locations from
environment variables so the same code runs in pods (runs and steps as pods, training in GPU pods, tables in
PostgreSQL, blue/green serving) in the environment's namespace, and imports its Kubernetes and PostgreSQL clients
only when chosen (they come with the ``k8s`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import ExecutorDefinition, FilesystemIOManager, in_process_executor

from ml_assets.data.tables import DATA_IO_MANAGER
from ml_assets.dataset import DatasetSpec
from ml_assets.settings import (
    Paths,
    configured_home,
    environment,
    int_env,
    kubernetes_namespace,
    paths,
    runs_on,
    serve_port,
)
from resources.alerts import Alerts
from resources.bento_deployer import LocalBentoDeployer
from resources.deepspeed_trainer import SHARD_CACHE_MB, DeepSpeedTrainer
from resources.duckdb_warehouse import DeclaredTypesDuckDBIOManager
from resources.label_files import LabelFiles
from resources.landing import LandingZone
from resources.launchers import LocalTorchrunLauncher
from resources.model_store import ModelStore
from resources.parquet_tables import ParquetTables, ParquetTablesIOManager
from resources.prediction_logs import PredictionLogFiles
from resources.training_storage import TrainingStorage

WAREHOUSE_SCHEMA = "ml"
PROD_IMAGE = "registry.example.com/ml-assets:latest"  # deploy/helm/values.yaml sets ML_ASSETS_IMAGE to its image
SHARED_VOLUME_CLAIM = "ml-assets-data"  # the ReadWriteMany volume mounted at ML_ASSETS_HOME in every pod


def _shared(where: Paths) -> dict[str, Any]:
    tables = ParquetTables(root=where.tables)
    return {
        "warehouse_io_manager": DeclaredTypesDuckDBIOManager(database=str(where.warehouse), schema=WAREHOUSE_SCHEMA),
        "io_manager": FilesystemIOManager(base_dir=str(where.home / "storage")),
        DATA_IO_MANAGER: ParquetTablesIOManager(tables=tables),
        "tables": tables,
        "landing": LandingZone(root=str(where.landing), quarantine_root=str(where.quarantine)),
        "prediction_logs": PredictionLogFiles(root=str(where.prediction_log)),
        "label_files": LabelFiles(root=str(where.labels)),
        "model_store": ModelStore(home=str(where.bentoml_home)),
        "alerts": Alerts(
            log_path=str(where.home / "alerts.jsonl"), webhook_url=os.environ.get("ML_ASSETS_ALERT_WEBHOOK", "")
        ),
    }


def local_resources(spec: DatasetSpec, where: Paths | None = None, env: str | None = None) -> dict[str, Any]:
    """Embedded: everything on this machine under the environment's folder of ML_ASSETS_HOME; DeepSpeed ranks as
    local processes."""
    where = where or paths(env)
    return _shared(where) | {
        "trainer": DeepSpeedTrainer(
            launcher=LocalTorchrunLauncher(log_root=str(where.home / "logs" / "training")),
            storage=TrainingStorage(root=str(where.staging)),
            ranks=int_env("ML_ASSETS_TRAINER_RANKS", 2),
            zero_stage=int_env("ML_ASSETS_TRAINER_ZERO_STAGE", 0),
            shard_cache_mb=int_env("ML_ASSETS_SHARD_CACHE_MB", SHARD_CACHE_MB),
            checkpoint_dir=str(where.checkpoints),
        ),
        "bento_deployer": LocalBentoDeployer(
            home=str(where.home),
            bentoml_home=str(where.bentoml_home),
            port=serve_port(env),
        ),
    }


def kubernetes_resources(
    spec: DatasetSpec, home: str | None = None, namespace: str | None = None, env: str | None = None
) -> dict[str, Any]:
    """An environment on Kubernetes: the shared volume at ML_ASSETS_HOME in every pod, tables in PostgreSQL
    (``ML_ASSETS_WAREHOUSE_URL``), DeepSpeed ranks in GPU pods of the project image (``ML_ASSETS_IMAGE``), and
    blue/green serving of the Bento's image (``ML_ASSETS_IMAGE_REGISTRY``) in the environment's namespace
    (``ML_ASSETS_NAMESPACE``, default ``ml-assets`` for prod, ``ml-assets-<env>`` for dev and qa)."""
    from dagster import EnvVar

    from resources.image_builder import KanikoImageBuilder, RegistryClient
    from resources.k8s_deployer import KubernetesBentoDeployer
    from resources.k8s_training import KubernetesTrainingLauncher
    from resources.postgres_warehouse import PostgresPandasIOManager

    home = home or configured_home()
    if not home:
        raise RuntimeError("ML_ASSETS_RUNS_ON=kubernetes needs ML_ASSETS_HOME set to the shared volume path")
    where = Paths(Path(home))
    namespace = namespace or kubernetes_namespace(env or environment())
    gpus_per_node = int_env("ML_ASSETS_GPUS_PER_NODE", 8)
    registry = os.environ.get("ML_ASSETS_IMAGE_REGISTRY", "registry.example.com/ml-assets")
    registry_client = RegistryClient(scheme=os.environ.get("ML_ASSETS_IMAGE_REGISTRY_SCHEME", "https"))
    return _shared(where) | {
        "warehouse_io_manager": PostgresPandasIOManager(
            url=EnvVar("ML_ASSETS_WAREHOUSE_URL"), db_schema=WAREHOUSE_SCHEMA
        ),
        "trainer": DeepSpeedTrainer(
            launcher=KubernetesTrainingLauncher(
                image=os.environ.get("ML_ASSETS_IMAGE", PROD_IMAGE),
                namespace=namespace,
                gpus_per_node=gpus_per_node,
                max_nodes=int_env("ML_ASSETS_TRAINING_MAX_NODES", 2),
                volume_claim=SHARED_VOLUME_CLAIM,
                mount_path=str(where.home),  # the same paths in the training pods as in the step's pod
            ),
            storage=TrainingStorage(root=os.environ.get("ML_ASSETS_TRAINING_STORAGE", str(where.staging))),
            ranks=int_env("ML_ASSETS_TRAINER_RANKS", gpus_per_node),
            zero_stage=int_env("ML_ASSETS_TRAINER_ZERO_STAGE", 0),
            shard_cache_mb=int_env("ML_ASSETS_SHARD_CACHE_MB", 1024),  # a GPU rank keeps its shard in device memory
            checkpoint_dir=str(where.checkpoints),
        ),
        "bento_deployer": KubernetesBentoDeployer(
            output_dir=str(where.deployments / "k8s"),
            service_name=f"{spec.name}-service",
            namespace=namespace,
            registry=registry,
            volume_claim=SHARED_VOLUME_CLAIM,
            home=str(where.home),
            registry_client=registry_client,
            image_builder=KanikoImageBuilder(  # prod builds the image it deploys, in the cluster
                registry=registry,
                namespace=namespace,
                volume_claim=SHARED_VOLUME_CLAIM,
                home=str(where.home),
                bentoml_home=str(where.bentoml_home),
                push_secret=os.environ.get("ML_ASSETS_IMAGE_PUSH_SECRET", ""),
                registry_client=registry_client,
            ),
        ),
    }


def _resources(cpu: str, memory: str) -> dict[str, Any]:
    return {
        "container_config": {"resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}}
    }


# Step pods per asset (the k8s executor's per-step config, merged like a ``dagster-k8s/config`` op tag). The
# training step itself holds no GPU: it stages rows, launches the GPU pods and stores the model, and a GPU
# requested here would sit idle for the whole training while the training pods hold their own.
STEP_RESOURCES = {
    "raw_data": _resources("1", "4Gi"),
    "features": _resources("1", "4Gi"),
    "training_set": _resources("2", "16Gi"),
    "baseline_model": _resources("2", "8Gi"),
    "candidate_model": _resources("2", "16Gi"),
    "model_evaluation": _resources("4", "8Gi"),
    "bento": _resources("1", "2Gi"),
    "deployment": _resources("1", "2Gi"),
}


def executor_for(where: str | None = None) -> ExecutorDefinition:
    """The executor of every job. Locally every run executes its steps in one process: a process per step would
    start Python, Dagster and torch again for each of them (about 5 s a step on 2 cores), and the training ranks
    are processes anyway. In prod each step runs in its own pod (dagster-k8s), sized per asset; run pods come from
    the instance's K8sRunLauncher (deploy/)."""
    if (where or runs_on()) != "kubernetes":
        return in_process_executor
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(
        {
            "max_concurrent": 4,
            "step_k8s_config": _resources("1", "2Gi"),
            "per_step_k8s_config": STEP_RESOURCES,
        },
        name="k8s_steps",
    )


def resources_for(env: str, spec: DatasetSpec, where: str | None = None) -> dict[str, Any]:
    """The resources of environment ``env`` running ``where`` (default ``ML_ASSETS_RUNS_ON``)."""
    if (where or runs_on()) == "kubernetes":
        return kubernetes_resources(spec, env=env)
    return local_resources(spec, paths(env), env)
