"""The code location loads, and its asset graph, checks and jobs are the ones the design names."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from dagster import AssetKey, DefaultScheduleStatus, Definitions

from ml_assets.definitions import build_definitions

ROOT = Path(__file__).resolve().parents[1]


def test_workspace_points_at_the_one_definitions(ml_home: Path) -> None:
    """What `dagster dev` loads from workspace.yaml is a Definitions object, and the module holds no other."""
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    target = entry["python_module"]
    module = importlib.import_module(target["module_name"])
    assert isinstance(getattr(module, target["attribute"]), Definitions)
    assert [n for n, v in vars(module).items() if isinstance(v, Definitions)] == [target["attribute"]]


def test_definitions_load_with_the_data_graph(ml_home: Path) -> None:
    defs = build_definitions()
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_data", "features", "training_set"} <= keys
    assert graph.get(AssetKey("features")).parent_keys == {AssetKey("raw_data")}
    assert graph.get(AssetKey("training_set")).parent_keys == {AssetKey("features")}
    for key in ("raw_data", "features", "training_set"):
        node = graph.get(AssetKey(key))
        assert node.group_name == "data"
        assert node.partitions_def is not None
        assert node.code_version
    materialized = [graph.get(k) for k in graph.materializable_asset_keys]
    versions = {n.key.to_user_string(): n.code_version for n in materialized}
    assert all(v and len(v) == 12 for v in versions.values()), f"every asset hashes its code: {versions}"
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert sum(1 for asset, _ in checks if asset == "raw_data") >= 8
    assert any(asset == "features" for asset, _ in checks)
    assert any(asset == "training_set" for asset, _ in checks)
    assert {"ingest_job", "training_set_job", "reproducibility_job"} <= {j.name for j in repo.get_all_jobs()}
    # the same-seed retraining runs on request or weekly once switched on, never on every training
    [schedule] = repo.schedule_defs
    assert schedule.name == "reproducibility_schedule" and schedule.job_name == "reproducibility_job"
    assert schedule.default_status == DefaultScheduleStatus.STOPPED


def test_kubernetes_needs_its_home(monkeypatch) -> None:
    import pytest

    monkeypatch.delenv("ML_ASSETS_HOME", raising=False)
    with pytest.raises(RuntimeError, match="ML_ASSETS_HOME"):
        build_definitions(env="prod", where="kubernetes")


def test_embedded_model_follows_the_champion_with_a_blocking_parity_check(ml_home: Path) -> None:
    """The ONNX export an application embeds: in the serving group and job, behind a blocking check."""
    defs = build_definitions()
    graph = defs.get_repository_def().asset_graph
    node = graph.get(AssetKey("embedded_model"))
    assert node.group_name == "serving"
    assert AssetKey("champion_model") in node.parent_keys
    [check] = [k for k in graph.asset_check_keys if k.asset_key == AssetKey("embedded_model")]
    assert check.name == "onnx_matches_service" and graph.get_check_spec(check).blocking
    assert AssetKey("embedded_model") in defs.resolve_job_def("serving_job").asset_layer.selected_asset_keys


def test_shadow_group_trains_on_raw_data_and_blocks_on_privacy_only(ml_home: Path) -> None:
    """shadow_model learns from raw_data; shadow_data's privacy checks block, its fidelity checks warn."""
    graph = build_definitions().get_repository_def().asset_graph
    assert graph.get(AssetKey("shadow_model")).parent_keys == {AssetKey("raw_data")}
    assert graph.get(AssetKey("shadow_data")).parent_keys == {AssetKey("raw_data"), AssetKey("shadow_model")}
    assert {graph.get(AssetKey(k)).group_name for k in ("shadow_model", "shadow_data")} == {"shadow"}
    checks = {
        c.name: graph.get_check_spec(c).blocking
        for c in graph.asset_check_keys
        if c.asset_key == AssetKey("shadow_data")
    }
    assert {n for n, blocking in checks.items() if blocking} == {
        "privacy_exact_copies",
        "privacy_closest_record",
        "privacy_membership",
        "privacy_rare_categories",
    }
    assert {n for n, blocking in checks.items() if not blocking} == {
        "fidelity_columns",
        "fidelity_associations",
        "fidelity_utility",
    }
