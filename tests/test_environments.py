"""dev, qa and prod on one machine: each environment's Definitions point at its own state (instance, warehouse, model
store, landing zone, deployment), say which environment they are, and a run in one leaves the others' state alone.
Which environment it is (``ML_ASSETS_ENV``) and where it runs (``ML_ASSETS_RUNS_ON``) are separate settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey

from ml_assets.cli import _fresh, main
from ml_assets.dataset import DatasetSpec
from ml_assets.definitions import ENV_TAG, build_definitions
from ml_assets.environments import resources_for
from ml_assets.settings import (
    SettingError,
    environment,
    kubernetes_namespace,
    paths,
    runs_on,
    serve_port,
    ui_port,
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ML_ASSETS_HOME with no environment chosen and no DAGSTER_HOME or BENTOML_HOME set: what a newcomer has."""
    home = tmp_path / "ml"
    for name in ("ML_ASSETS_ENV", "ML_ASSETS_RUNS_ON", "DAGSTER_HOME", "BENTOML_HOME", "ML_ASSETS_SERVE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ML_ASSETS_HOME", str(home))
    return home


def state_of(resources: dict) -> dict[str, str]:
    return {
        "warehouse": resources["warehouse_io_manager"].database,
        "store": resources["model_store"].home,
        "landing": resources["landing"].root,
        "storage": resources["io_manager"].base_dir,
        "deployment": resources["bento_deployer"].home,
        "staging": resources["trainer"].storage.root,
    }


def test_each_environment_points_at_its_own_state(root: Path, adult_spec: DatasetSpec) -> None:
    assert environment() == "dev" and runs_on() == "local"  # the default: what `ml-assets demo` always used
    homes = {"dev": root, "qa": root / "qa", "prod": root / "prod"}
    seen: set[str] = set()
    for env, home in homes.items():
        where = paths(env)
        assert where.home == home and where.dagster_home == home / "dagster" and where.landing == home / "landing"
        state = state_of(resources_for(env, adult_spec))
        assert state == {
            "warehouse": str(home / "warehouse.duckdb"),
            "store": str(home / "bentoml"),
            "landing": str(home / "landing"),
            "storage": str(home / "storage"),
            "deployment": str(home),
            "staging": str(home / "staging"),
        }
        assert not seen & set(state.values()), f"{env} shares state with another environment"
        seen |= set(state.values())
    # each serves and shows its UI on its own ports, dev on the historical ones
    assert [serve_port(e) for e in homes] == [3000, 3001, 3002] and [ui_port(e) for e in homes] == [3030, 3031, 3032]
    assert [resources_for(e, adult_spec)["bento_deployer"].port for e in homes] == [3000, 3001, 3002]


def test_only_the_process_own_environment_honours_dagster_home(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DAGSTER_HOME left in a shell never makes qa or prod share dev's instance."""
    monkeypatch.setenv("DAGSTER_HOME", str(root / "elsewhere"))
    monkeypatch.setenv("BENTOML_HOME", str(root / "store-elsewhere"))
    assert paths().dagster_home == root / "elsewhere" and paths().bentoml_home == root / "store-elsewhere"
    assert (
        paths("qa").dagster_home == root / "qa" / "dagster" and paths("prod").bentoml_home == root / "prod" / "bentoml"
    )
    monkeypatch.setenv("ML_ASSETS_ENV", "qa")
    assert paths().dagster_home == root / "qa" / "dagster"
    assert paths("dev").dagster_home == root / "dagster"  # another environment's state is never redirected


def test_which_environment_and_where_it_runs_are_separate_settings(root: Path, monkeypatch) -> None:
    monkeypatch.setenv("ML_ASSETS_ENV", "local")  # the old name of dev's resource set: still read, with a warning
    with pytest.warns(FutureWarning, match="ML_ASSETS_ENV=local is deprecated.*'dev'"):
        assert environment() == "dev"
    monkeypatch.setenv("ML_ASSETS_ENV", "staging")
    with pytest.raises(SettingError, match="ML_ASSETS_ENV must be one of dev, qa, prod, got 'staging'"):
        environment()
    monkeypatch.setenv("ML_ASSETS_ENV", "prod")
    monkeypatch.setenv("ML_ASSETS_RUNS_ON", "k8s")
    with pytest.raises(SettingError, match="ML_ASSETS_RUNS_ON must be one of local, kubernetes, got 'k8s'"):
        runs_on()
    monkeypatch.setenv("ML_ASSETS_RUNS_ON", "kubernetes")
    # on Kubernetes the namespace separates the environments: each has its own volume at ML_ASSETS_HOME
    assert paths().home == root and paths("qa").home == root
    assert [kubernetes_namespace(e) for e in ("dev", "qa", "prod")] == ["ml-assets-dev", "ml-assets-qa", "ml-assets"]


def test_the_cli_names_a_bad_environment_in_one_line(root: Path, capsys) -> None:
    assert main(["promote", "adult-classifier:x", "--from", "qa", "--to", "production"]) == 2
    assert capsys.readouterr().err.strip() == (
        "ml-assets promote: error: --to must be one of dev, qa, prod, got 'production'"
    )


def test_the_definitions_say_which_environment_they_are(root: Path, adult_spec: DatasetSpec) -> None:
    defs = build_definitions(adult_spec, env="qa")
    graph = defs.get_repository_def().asset_graph
    assert {graph.get(k).tags.get(ENV_TAG) for k in graph.materializable_asset_keys} == {"qa"}
    assert defs.resources["model_store"].home == str(root / "qa" / "bentoml")
    assert graph.get(AssetKey("champion_model")).tags[ENV_TAG] == "qa"
    assert "promote_model" in {j.name for j in defs.get_repository_def().get_all_jobs()}


def test_automation_trains_in_qa_and_never_in_prod(root: Path, adult_spec: DatasetSpec) -> None:
    def automated(env: str) -> set[str]:
        graph = build_definitions(adult_spec, env=env).get_repository_def().asset_graph
        return {k.to_user_string() for k in graph.materializable_asset_keys if graph.get(k).automation_condition}

    trained = {"baseline_model", "candidate_model"}
    assert trained <= automated("qa")
    assert not trained & automated("prod")  # prod's champion only ever comes from qa
    assert {"champion_model", "bento", "deployment"} <= automated("prod")  # a promotion still deploys itself


def test_a_run_in_qa_leaves_dev_and_prod_alone(root: Path, monkeypatch, capsys) -> None:
    """A real run in qa (a rollback with nothing to roll back to, on qa's own instance) writes under qa/ only."""
    monkeypatch.setenv("ML_ASSETS_ENV", "qa")
    assert main(["rollback"]) == 1
    assert "there is no champion yet" in capsys.readouterr().err
    assert sorted(p.name for p in root.iterdir()) == ["qa"]  # nothing of dev's, no prod folder
    assert (root / "qa" / "dagster" / "dagster.yaml").is_file() and any((root / "qa" / "dagster").iterdir())


def test_a_fresh_dev_keeps_qa_and_prod(root: Path) -> None:
    """dev's state is the top of ML_ASSETS_HOME; resetting it (``demo --fresh``) leaves the qa and prod folders."""
    for f in ("warehouse.duckdb", "qa/warehouse.duckdb", "prod/bentoml/x", "dagster/dagster.yaml"):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")
    _fresh(paths("dev").home)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "prod/bentoml/x",
        "qa/warehouse.duckdb",
    ]
