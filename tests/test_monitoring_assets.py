"""prediction_log, labels and model_monitoring materialized in process by the real Definitions, on log files in the
serving format and label files: a calm day passes every check; a day whose served ages drifted fails input_drift
and raises an alert (once, not on every re-judgement), without blocking anything."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from ml_assets.dataset import DatasetSpec
from ml_assets.definitions import MONITORING_JOB, build_definitions
from ml_assets.monitoring.replay_log import install_champion, served_rows, write_labels, write_log
from ml_assets.partitions import today
from resources.alerts import Alerts

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
    assert verdicts == dict.fromkeys(verdicts, True) and len(verdicts) == 7
    meta = result.asset_materializations_for_node("model_monitoring")[0].metadata
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
