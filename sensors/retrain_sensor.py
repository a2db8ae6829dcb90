"""retrain_sensor: acts on model_monitoring's failed checks, and only through the graph's own gates.

- A failed drift, quality, fairness or staleness check of a recent day requests retraining: a run of ``model_job``
  (approve the newest window, train, evaluate, gate, promote), once per day and set of causes (run key), and at most
  once per ``monitoring.retrain_cooldown_hours``, with the reasons in the run's tags. It never deploys anything: the
  new candidate passes every gate like any other, and automation rebuilds and redeploys only a new champion.
- A failed ``champion_regression`` (the champion realizes worse than the previous champion on the same labeled
  rows) requests the ``rollback_champion`` job to the previous champion; automation then redeploys it.
Both say so in an alert.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    TimeWindowPartitionsDefinition,
    sensor,
)

from ml_assets.dataset import DatasetSpec
from ml_assets.event_log import latest_check_evaluations
from ml_assets.model.champion import rollback_run_config
from ml_assets.model.registry import current_champion_tag
from ml_assets.monitoring.verdicts import CHAMPION_REGRESSION, CHECKS, RETRAIN_CAUSES
from ml_assets.partitions import today
from resources.alerts import Alerts

INTERVAL_SECONDS = 60
RECENT_DAYS = 2  # today and yesterday: the days whose monitoring can still call for action
MODEL_MONITORING = AssetKey("model_monitoring")
REASON_TAG = "ml_assets/retrain_reason"


def build_retrain_sensor(
    spec: DatasetSpec,
    partitions_def: TimeWindowPartitionsDefinition,
    model_job: Any,  # the asset jobs as define_asset_job returns them
    rollback_job: Any,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    cooldown_s = spec.monitoring.retrain_cooldown_hours * 3600

    @sensor(
        name="retrain_sensor",
        jobs=[model_job, rollback_job],
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status,
        description="Requests retraining when a monitoring check fails (once per day and cause, with a cool-down), "
        "and a rollback when the champion realizes worse than the previous champion.",
    )
    def retrain_sensor(context: SensorEvaluationContext, alerts: Alerts) -> SensorResult:
        state = json.loads(context.cursor) if context.cursor else {}
        last_retrain = float(state.get("last_retrain_at", 0.0))
        now = time.time()
        newest = today(spec)
        days = [(newest - timedelta(days=i)).isoformat() for i in range(RECENT_DAYS)]
        days = [d for d in days if partitions_def.has_partition_key(d)]
        requests: list[RunRequest] = []
        champion = current_champion_tag(context.instance)
        for day in days:
            evaluations = latest_check_evaluations(context.instance, MODEL_MONITORING, CHECKS, day)
            failed = {n: e for n, e in evaluations.items() if e is not None and not e.passed}
            regression = failed.get(CHAMPION_REGRESSION)
            if regression is not None:
                previous = _value(regression.metadata.get("previous_champion"))
                judged = _value(regression.metadata.get("model_tag"))
                if previous and judged == champion:
                    why = f"{day}: {regression.description}"
                    alerts.send("rollback", f"rolling back {champion} to {previous}: {why}", log=context.log,
                                day=day, champion=champion, previous=previous)  # fmt: skip
                    requests.append(
                        RunRequest(
                            run_key=f"rollback:{day}:{champion}",
                            job_name=rollback_job.name,
                            run_config=rollback_run_config(previous),
                            tags={REASON_TAG: why[:250], "ml_assets/trigger": "monitoring"},
                        )
                    )
            causes = sorted(set(failed) & set(RETRAIN_CAUSES))
            if not causes or any(r.job_name == rollback_job.name for r in requests):
                continue
            if now - last_retrain < cooldown_s:
                context.log.info(
                    f"{day}: {', '.join(causes)} failed; in cool-down until {last_retrain + cooldown_s:.0f}"
                )
                continue
            why = f"{day}: " + "; ".join(f"{c}: {failed[c].description}" for c in causes)
            alerts.send("retrain", f"retraining requested: {why}", log=context.log, day=day, causes=causes)
            requests.append(
                RunRequest(
                    run_key=f"retrain:{day}:{'+'.join(causes)}",
                    job_name=model_job.name,
                    tags={REASON_TAG: why[:250], "ml_assets/trigger": "monitoring"},
                )
            )
            last_retrain = now
        cursor = json.dumps({"last_retrain_at": last_retrain})
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        return SensorResult(skip_reason=f"no failed monitoring check to act on for {', '.join(days)}", cursor=cursor)

    return retrain_sensor


def _value(entry) -> str | None:
    return None if entry is None else str(getattr(entry, "value", entry))
