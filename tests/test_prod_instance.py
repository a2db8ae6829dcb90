"""The production instance config (deploy/dagster.yaml) against a real Postgres: runs and events land there."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, asset, materialize

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_db():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(PG_ADMIN, connect_timeout=3)
    except psycopg2.OperationalError as e:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({e})")
    admin.autocommit = True
    name = f"ml_assets_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"  # SQLAlchemy 2.1 defaults to psycopg 3
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@asset
def probe() -> int:
    return 1


def test_prod_instance_stores_runs_in_postgres(tmp_path: Path, monkeypatch, postgres_db: str) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_db)

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


def test_helm_values_name_the_code_location() -> None:
    import yaml

    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "ml_assets.definitions", "-a", "defs"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["ML_ASSETS_ENV"] == "prod"
