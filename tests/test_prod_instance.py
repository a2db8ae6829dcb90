"""The production instance config (deploy/dagster.yaml) against a real Postgres, and the prod Definitions.

Runs and events land in Postgres; the "training" pool lets one training step run at a time, enforced by
Dagster's executor through the instance for real; the K8sRunLauncher accepts its config. No cluster runs here:
the run launcher is constructed from a kubeconfig naming an unreachable API server (only its credential source
differs from the in-cluster default), and nothing is launched through it.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    asset,
    define_asset_job,
    execute_job,
    materialize,
    reconstructable,
)

from resources.deepspeed_trainer import TRAINING_POOL

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "none", "user": {"token": "unused"}}],
    "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none", "namespace": "ml-assets"}}],
    "current-context": "none",
}


@pytest.fixture
def postgres_db(postgres_database: str) -> str:
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{postgres_database}"  # SQLAlchemy 2.1 defaults to psycopg 3


@pytest.fixture
def prod_home(tmp_path: Path, monkeypatch, postgres_db: str) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_db)
    return home


@asset
def probe() -> int:
    return 1


@pytest.mark.integration
def test_prod_instance_stores_runs_in_postgres(prod_home: Path) -> None:
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = materialize([probe], instance=instance, resources={})
        assert result.success

    # a second instance (as the webserver or daemon would be) sees the run and its materialization
    with DagsterInstance.get() as other:
        runs = other.get_runs()
        assert [r.run_id for r in runs] == [result.run_id]
        assert other.get_latest_materialization_event(probe.key) is not None


def _training_step(name: str):
    @asset(name=name, pool=TRAINING_POOL)
    def training_step() -> None:
        started = time.time()
        time.sleep(2.0)
        with open(os.environ["ML_ASSETS_POOL_LOG"], "a") as log:
            log.write(f"{name} {started} {time.time()}\n")

    return training_step


def pool_job():
    """Two steps in the training pool, free to run side by side on the default multiprocess executor."""
    defs = Definitions(
        assets=[_training_step("first_training"), _training_step("second_training")],
        jobs=[define_asset_job("pool_job")],
    )
    return defs.resolve_job_def("pool_job")


@pytest.mark.integration
def test_the_training_pool_runs_one_step_at_a_time(prod_home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ML_ASSETS_POOL_LOG", str(tmp_path / "pool.log"))
    with DagsterInstance.get() as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1 and config.run_queue_config.max_concurrent_runs == 4
        with execute_job(reconstructable(pool_job), instance=instance) as result:
            assert result.success
        assert instance.event_log_storage.get_concurrency_info(TRAINING_POOL).slot_count == 1
    spans = sorted(tuple(map(float, line.split()[1:])) for line in (tmp_path / "pool.log").read_text().splitlines())
    assert len(spans) == 2 and spans[0][1] <= spans[1][0], spans  # the second started after the first ended


@pytest.mark.integration
def test_the_k8s_run_launcher_accepts_its_config(prod_home: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(KUBECONFIG))
    config = yaml.safe_load((prod_home / "dagster.yaml").read_text())
    assert config["run_launcher"]["config"]["load_incluster_config"] is True
    config["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    (prod_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "K8sRunLauncher" and launcher.job_namespace == "ml-assets"
        assert [m["mountPath"] for m in launcher.volume_mounts] == ["/data/ml-assets"]


def test_the_helm_values_and_the_instance_config_agree() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "ml_assets.definitions", "-a", "defs"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["additionalInstanceConfig"]["concurrency"] == instance["concurrency"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    launcher_env = dict(v.split("=", 1) for v in instance["run_launcher"]["config"]["env_vars"])
    assert env == launcher_env and (env["ML_ASSETS_ENV"], env["ML_ASSETS_RUNS_ON"]) == ("prod", "kubernetes")
    assert instance["run_launcher"]["config"]["service_account_name"] == values["serviceAccount"]["name"]
    assert deployment["image"]["repository"] + ":" + deployment["image"]["tag"] == env["ML_ASSETS_IMAGE"]


def test_prod_definitions_load_with_the_kubernetes_resources(monkeypatch, tmp_path: Path) -> None:
    from ml_assets.definitions import build_definitions
    from ml_assets.environments import STEP_RESOURCES
    from resources.k8s_deployer import KubernetesBentoDeployer
    from resources.k8s_training import KubernetesTrainingLauncher
    from resources.postgres_warehouse import PostgresPandasIOManager

    monkeypatch.setenv("ML_ASSETS_ENV", "prod")
    monkeypatch.setenv("ML_ASSETS_RUNS_ON", "kubernetes")  # which environment and where it runs: two settings
    monkeypatch.setenv("ML_ASSETS_HOME", str(tmp_path / "shared"))
    monkeypatch.setenv("ML_ASSETS_IMAGE", "registry.local/ml-assets:7")
    monkeypatch.setenv("ML_ASSETS_NAMESPACE", "ml")
    defs = build_definitions()
    resources = defs.resources
    trainer = resources["trainer"]
    assert isinstance(trainer.launcher, KubernetesTrainingLauncher)
    assert (trainer.launcher.image, trainer.launcher.namespace) == ("registry.local/ml-assets:7", "ml")
    assert trainer.launcher.mount_path == str(tmp_path / "shared") and trainer.ranks == 8
    assert trainer.storage.root == str(tmp_path / "shared" / "staging")
    assert isinstance(resources["warehouse_io_manager"], PostgresPandasIOManager)
    assert isinstance(resources["bento_deployer"], KubernetesBentoDeployer)
    repo = defs.get_repository_def()
    for job in ("model_job", "serving_job", "ingest_job"):
        assert repo.get_job(job).executor_def.name == "k8s_steps"
    assets = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert set(STEP_RESOURCES) <= assets  # every per-step size names a real asset
    assert "nvidia.com/gpu" not in str(STEP_RESOURCES)  # GPUs are the training pods', not the step's
    assert repo.asset_graph.get(AssetKey("candidate_model")).pools == {TRAINING_POOL}
