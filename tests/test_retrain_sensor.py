"""retrain_sensor on the real Definitions and a real instance: model_monitoring's checks (stand-in runs with the real
check names) fail, and the sensor requests retraining once per day and causes, waits out its cool-down, rolls back on
a champion regression, and says so in alerts."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from ml_assets.dataset import DatasetSpec
from ml_assets.definitions import MODEL_JOB, build_definitions
from ml_assets.model.champion import ROLLBACK_JOB, rollback_run_config
from ml_assets.partitions import today
from resources.alerts import Alerts
from tests.standins import materialize_stand_in


def test_retraining_and_rollback_requests(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    defs = build_definitions(adult_spec, env="local")
    sensor = defs.get_sensor_def("retrain_sensor")
    instance = DagsterInstance.ephemeral()
    alerts = Alerts(log_path=str(tmp_path / "alerts.jsonl"))
    day = today(adult_spec).isoformat()
    cursor = None

    def tick():
        nonlocal cursor
        context = build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": alerts}, definitions=defs)
        result = sensor.evaluate_tick(context)
        cursor = result.cursor
        return result

    assert tick().run_requests == []
    materialize_stand_in(defs, instance, "champion_model", metadata={"model_tag": "adult-classifier:old"})
    materialize_stand_in(defs, instance, "champion_model", metadata={"model_tag": "adult-classifier:new"})
    materialize_stand_in(defs, instance, "model_monitoring", day, failed=("input_drift", "estimated_performance"))

    [retrain] = tick().run_requests
    assert retrain.job_name == MODEL_JOB
    assert retrain.run_key == f"retrain:{day}:estimated_performance+input_drift"
    assert retrain.tags["ml_assets/retrain_reason"].startswith(f"{day}: estimated_performance")
    assert tick().run_requests == [], "the same causes on the same day: requested once"

    materialize_stand_in(defs, instance, "model_monitoring", day, failed=("staleness",))
    again = tick()
    assert again.run_requests == [], "a new cause inside the cool-down waits"

    materialize_stand_in(
        defs, instance, "model_monitoring", day, failed=("champion_regression",),
        check_metadata={"model_tag": "adult-classifier:new", "previous_champion": "adult-classifier:old"},
    )  # fmt: skip
    [rollback] = tick().run_requests
    assert rollback.job_name == ROLLBACK_JOB and rollback.run_key == f"rollback:{day}:adult-classifier:new"
    assert rollback.run_config == rollback_run_config("adult-classifier:old")
    kinds = [a["kind"] for a in alerts.read()]
    assert kinds == ["retrain", "rollback"]
