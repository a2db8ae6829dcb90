"""prediction_log, labels and model_monitoring materialized in process by the real Definitions, on log files in the
serving format and label files: a calm day passes every check; a day whose served ages drifted fails input_drift
and raises an alert (once, not on every re-judgement), without blocking anything."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import bentoml.models  # noqa: F401  imported at collection, as the serving tests do: the import probes the C library once
import pytest
from dagster import AssetKey, DagsterInstance

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.replay_log import install_champion, served_rows, write_labels, write_log
from ml_assets.definitions import MONITORING_JOB, build_definitions
from ml_assets.partitions import today
from resources.alerts import Alerts
from tests.conftest import IN_PROCESS

pytestmark = IN_PROCESS  # the asset graph in process (conftest.py)

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture
def world(ml_home: Path, adult_spec: DatasetSpec):
    instance = DagsterInstance.ephemeral()
    yesterday = today(adult_spec) - timedelta(days=1)
    return install_champion(adult_spec, ml_home, yesterday, instance, rows=6000), instance


def run_day(defs, instance, day: str):
    labels = defs.get_implicit_global_asset_job_def().get_subset(asset_selection={AssetKey("labels")})
    assert labels.execute_in_process(partition_key=day, instance=instance, run_config=QUIET).success
    return defs.resolve_job_def(MONITORING_JOB).execute_in_process(
        partition_key=day, instance=instance, run_config=QUIET
    )


def test_a_calm_day_then_a_drifted_one(ml_home: Path, adult_spec: DatasetSpec, world) -> None:
    world, instance = world
    defs = build_definitions(adult_spec, env="local")
    day = today(adult_spec)
    calm = served_rows(world, 1500, seed=3, first_id=10**9)
    write_log(world, ml_home / "prediction_log", day, calm)
    write_labels(world, ml_home / "labels", day, calm.iloc[:1000])

    result = run_day(defs, instance, day.isoformat())
    assert result.success
    verdicts = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert verdicts == dict.fromkeys(verdicts, True) and len(verdicts) == 6
    assert all(e.description for e in result.get_asset_check_evaluations())
    meta = result.asset_materializations_for_node("model_monitoring")[0].metadata
    assert "champion_regression" not in verdicts, "no previous champion: nothing to compare, so no result (skipped)"
    assert "champion_regression: not judged: no previous champion" in meta["not_judged"].value
    assert meta["checks_passed"].value == 6 and meta["checks_not_judged"].value == 1
    for entry in ("quality_chart", "drift_chart", "checks", "input_drift", "served_by_model_tag"):
        assert len(meta[entry].value) < 1000, f"{entry} must render in place in the UI"
    assert meta["quality_chart"].value.startswith("![ROC AUC by day](data:image/svg+xml;base64,")
    assert meta["labeled_rows"].value == 1000 and meta["main_model_tag"].value == world.tag
    assert abs(meta["estimated_roc_auc"].value - meta["realized_roc_auc"].value) < 0.05
    assert "data:image/png;base64," in meta["quality_over_time"].value
    log_meta = result.asset_materializations_for_node("prediction_log")[0].metadata
    assert log_meta["dagster/row_count"].value == 1500 and log_meta["errors"].value == 0

    drifted = served_rows(world, 1500, seed=4, first_id=2 * 10**9)
    drifted["age"] = (drifted["age"] + 30).clip(upper=100)
    write_log(world, ml_home / "prediction_log", day, drifted)  # more lines of the same day
    again = run_day(defs, instance, day.isoformat())
    assert again.success, "monitoring warns, it never fails a run"
    failed = {e.check_name for e in again.get_asset_check_evaluations() if not e.passed}
    assert "input_drift" in failed
    alerts = Alerts(log_path=str(ml_home / "alerts.jsonl")).read()
    assert any(a["kind"] == "monitoring.input_drift" and "age" in a["message"] for a in alerts)

    still = run_day(defs, instance, day.isoformat())  # judged again (as when more labels land): still drifted
    assert "input_drift" in {e.check_name for e in still.get_asset_check_evaluations() if not e.passed}
    assert Alerts(log_path=str(ml_home / "alerts.jsonl")).read() == alerts, "alerted when it began failing, once"


def test_a_day_under_the_row_floor_records_no_passed_check(ml_home: Path, adult_spec: DatasetSpec, world) -> None:
    """206 served rows and no labels: drift, the estimate, realized quality, fairness and the regression cannot be
    judged. They get no result (Dagster shows them as skipped), never a green pass; the reasons are on the
    materialization; only staleness, which needs no rows, is judged, and every result has a one-line message."""
    from dagster import AssetCheckKey

    from ml_assets.event_log import latest_check_evaluations
    from ml_assets.monitoring.verdicts import CHECKS

    world, instance = world
    defs = build_definitions(adult_spec, env="local")
    day = today(adult_spec)
    write_log(world, ml_home / "prediction_log", day, served_rows(world, 206, seed=5, first_id=10**9))

    result = run_day(defs, instance, day.isoformat())
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {"staleness"}
    assert all(e.description and "\n" not in e.description for e in evaluations)
    meta = result.asset_materializations_for_node("model_monitoring")[0].metadata
    assert "input_drift: not judged: 206 served rows < 1000" in meta["not_judged"].value
    assert meta["checks_not_judged"].value == 6 and meta["checks_passed"].value <= 1
    recorded = latest_check_evaluations(instance, AssetKey("model_monitoring"), CHECKS, day.isoformat())
    assert all(recorded[n] is None for n in CHECKS if n != "staleness"), "planned, never evaluated: skipped"
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [AssetCheckKey(AssetKey("model_monitoring"), "input_drift")]
    )
    assert next(iter(records.values())).status.value == "PLANNED"  # the UI resolves it to SKIPPED once the run ended


def test_monitoring_days_before_the_first_training_set_require_none(ml_home: Path, adult_spec: DatasetSpec) -> None:
    """training_set starts a window after the first landed day, model_monitoring on it. A backfill of several
    monitoring days (automation's request for replayed traffic days) was refused whole by Dagster for its days
    with no training_set partition ("depends on non-existent partitions"), so those days were never monitored."""
    defs = build_definitions(adult_spec, env="local")
    graph = defs.get_repository_def().asset_graph
    monitoring, training_set = AssetKey("model_monitoring"), AssetKey("training_set")
    down, up = graph.get(monitoring).partitions_def, graph.get(training_set).partitions_def
    first = down.get_partition_keys()[:3]
    assert first and all(day < up.start.strftime("%Y-%m-%d") for day in first)  # before any training_set
    mapping = defs.get_assets_def(monitoring).get_partition_mapping(training_set)
    mapped = mapping.get_upstream_mapped_partitions_result_for_partitions(
        down.empty_subset().with_partition_keys(first), down, up
    )
    assert mapped.required_but_nonexistent_subset.is_empty
