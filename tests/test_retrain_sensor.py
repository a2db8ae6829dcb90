"""retrain_sensor on the real Definitions and a real instance: model_monitoring's checks (stand-in runs with the real
check names) fail, and the sensor requests retraining once per day and causes, waits out its cool-down, rolls back on
a champion regression, and says so in alerts; each judgement is acted on once, whichever day of the label window it
is about, and only while the model it judged still serves."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus, build_sensor_context

from ml_assets.dataset import DatasetSpec, Retraining
from ml_assets.definitions import MODEL_JOB, build_definitions
from ml_assets.model.champion import ROLLBACK_JOB, rollback_run_config
from ml_assets.partitions import today
from resources.alerts import Alerts
from tests.conftest import IN_PROCESS
from tests.standins import materialize_stand_in

pytestmark = IN_PROCESS  # the asset graph in process (conftest.py)


def test_retraining_and_rollback_requests(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    defs = build_definitions(adult_spec, env="local")
    sensor = defs.get_sensor_def("retrain_sensor")
    instance = DagsterInstance.ephemeral()
    alerts = Alerts(log_path=str(tmp_path / "alerts.jsonl"))
    day = today(adult_spec).isoformat()
    cursor = None

    def tick(cursor_change: dict | None = None):
        nonlocal cursor
        if cursor_change:
            cursor = json.dumps({**json.loads(cursor), **cursor_change})
        context = build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": alerts}, definitions=defs)
        result = sensor.evaluate_tick(context)
        cursor = result.cursor
        return result

    assert tick().run_requests == []
    materialize_stand_in(defs, instance, "champion_model", metadata={"model_tag": "adult-classifier:old"})
    materialize_stand_in(defs, instance, "champion_model", metadata={"model_tag": "adult-classifier:new"})
    old, new = {"model_tag": "adult-classifier:old"}, {"model_tag": "adult-classifier:new"}
    materialize_stand_in(defs, instance, "model_monitoring", day, failed=("input_drift",), check_metadata=old)
    assert tick().run_requests == [], "a judgement of a model that no longer serves calls for nothing"

    failed = ("input_drift", "estimated_performance")
    materialize_stand_in(defs, instance, "model_monitoring", day, failed=failed, check_metadata=new)
    [retrain] = tick().run_requests
    assert retrain.job_name == MODEL_JOB
    assert retrain.run_key == f"retrain:{day}:adult-classifier:new:estimated_performance+input_drift"
    assert retrain.tags["ml_assets/retrain_reason"].startswith(f"{day}: estimated_performance")
    assert tick().run_requests == [], "the same judgement: requested once"

    # labels land late: a day inside the label window is judged again, and fails; it waits out the cool-down
    late = (today(adult_spec) - timedelta(days=adult_spec.monitoring.label_window_days)).isoformat()
    materialize_stand_in(defs, instance, "model_monitoring", late, failed=("realized_performance",), check_metadata=new)
    assert tick().run_requests == [], "a new cause inside the cool-down waits"
    waited = tick(cursor_change={"last_retrain_at": 0.0})
    [late_retrain] = waited.run_requests
    assert late_retrain.run_key == f"retrain:{late}:adult-classifier:new:realized_performance"

    materialize_stand_in(
        defs, instance, "model_monitoring", day, failed=("champion_regression",),
        check_metadata={"model_tag": "adult-classifier:new", "previous_champion": "adult-classifier:old"},
    )  # fmt: skip
    rolled = tick()
    [rollback] = rolled.run_requests
    assert rollback.job_name == ROLLBACK_JOB and rollback.run_key == f"rollback:{day}:adult-classifier:new"
    [decided] = rolled.asset_events  # why it acted, on the asset it concerns, with the latest alerts
    assert decided.asset_key == AssetKey("model_monitoring") and decided.partition == day
    assert decided.metadata["retrain_sensor"].value.startswith("requested rollback_champion: ")
    assert "rollback: rolling back adult-classifier:new" in decided.metadata["latest_alerts"].value
    assert rollback.run_config == rollback_run_config("adult-classifier:old")
    again = tick()
    assert again.run_requests == [], "rolled back once"
    [quiet] = again.asset_events  # the reason changed: reported once, then not on every tick
    assert quiet.metadata["retrain_sensor"].value.startswith("no new failed monitoring check")
    assert tick().asset_events == []
    kinds = [a["kind"] for a in alerts.read()]
    assert kinds == ["retrain", "retrain", "rollback"], "one alert per request, none per tick"


def test_no_retraining_on_a_window_already_trained_on(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    """Training is deterministic: retraining on the window the latest candidate was trained on would rebuild it.
    The failure waits for the next window, and for a run already training a candidate, and is acted on then (under
    ``on_request``; under the default ``every_training_set`` automation trains the new window itself)."""
    on_request = adult_spec.model_copy(update={"retraining": Retraining(trigger="on_request")})
    defs = build_definitions(on_request, env="local")
    default_defs = build_definitions(adult_spec, env="local")
    instance = DagsterInstance.ephemeral()
    alerts = Alerts(log_path=str(tmp_path / "alerts.jsonl"))
    day = today(adult_spec)
    window = (day - timedelta(days=1)).isoformat()
    materialize_stand_in(defs, instance, "training_set", window)
    champion = {"model_tag": "adult-classifier:c"}
    materialize_stand_in(defs, instance, "candidate_model", metadata={**champion, "training_set_partition": window})
    materialize_stand_in(defs, instance, "champion_model", metadata=champion)
    materialize_stand_in(defs, instance, "model_monitoring", day.isoformat(), failed=("input_drift",),
                         check_metadata=champion)  # fmt: skip

    def tick(cursor=None, of=defs):
        context = build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": alerts}, definitions=of)
        return of.get_sensor_def("retrain_sensor").evaluate_tick(context)

    waiting = tick()
    assert waiting.run_requests == [] and f"newest training window ({window})" in waiting.skip_message
    materialize_stand_in(defs, instance, "training_set", day.isoformat())  # today's window is cut
    automation_run = DagsterRun(job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED,
                                asset_selection=frozenset({AssetKey("candidate_model")}))  # fmt: skip
    instance.add_run(automation_run)
    busy = tick(waiting.cursor)
    assert busy.run_requests == [] and f"run {automation_run.run_id[:8]}" in busy.skip_message
    instance.report_run_canceled(automation_run)
    by_automation = tick(waiting.cursor, of=default_defs)
    assert by_automation.run_requests == [] and "automation retrains on the new training window" in (
        by_automation.skip_message or ""
    ), "every_training_set: a request beside automation's own run would train the same window twice"
    [retrain] = tick(waiting.cursor).run_requests
    assert retrain.job_name == MODEL_JOB and alerts.read()[0]["kind"] == "retrain"


def test_in_prod_a_failure_that_calls_for_retraining_is_an_alert_and_no_run(tmp_path: Path, adult_spec) -> None:
    defs = build_definitions(adult_spec, env="prod")
    sensor = defs.get_sensor_def("retrain_sensor")
    instance = DagsterInstance.ephemeral()
    alerts = Alerts(log_path=str(tmp_path / "alerts.jsonl"))
    day = today(adult_spec).isoformat()
    champion = {"model_tag": "adult-classifier:promoted"}
    materialize_stand_in(defs, instance, "champion_model", metadata=champion)
    materialize_stand_in(defs, instance, "model_monitoring", day, failed=("input_drift",), check_metadata=champion)

    def tick(cursor=None):
        context = build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": alerts}, definitions=defs)
        return sensor.evaluate_tick(context)

    first = tick()
    assert first.run_requests == [], "prod's champion only ever comes from qa: it trains nothing"
    assert "retrain in qa" in first.skip_message
    [alert] = alerts.read()
    assert alert["kind"] == "retrain" and "train it in qa, then promote it" in alert["message"]
    assert tick(first.cursor).run_requests == [] and len(alerts.read()) == 1, "one alert per judgement"
