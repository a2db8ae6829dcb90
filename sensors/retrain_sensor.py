"""retrain_sensor: acts on model_monitoring's failed checks, and only through the graph's own gates.

- A failed drift, quality, fairness or staleness check of the champion requests retraining: a run of ``model_job``
  (approve the newest window, train, evaluate, gate, promote), once per judgement (the cursor keeps the judged
  materialization of each day) and at most once per ``monitoring.retrain_cooldown_hours``, with the reasons in the
  run's tags. The days watched are the last ``monitoring.label_window_days + 1``: a day is judged again as its
  delayed labels land, and realized quality often fails only then. It never deploys anything: the
  new candidate passes every gate like any other, and automation rebuilds and redeploys only a new champion.
  It waits (the tick's skip reason says why) while a run is already training a candidate, and while the latest
  candidate was trained on the newest window: training is deterministic, so a retrain needs new data. Under the
  default policy (``every_training_set``) automation retrains on each new window itself, so the sensor's own
  requests matter under ``on_request`` and ``cron``; its rollbacks under every policy.
- A failed ``champion_regression`` (the champion realizes worse than the previous champion on the same labeled
  rows) requests the ``rollback_champion`` job to the previous champion; automation then redeploys it.
Both say so in an alert.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetObservation,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    TimeWindowPartitionsDefinition,
    sensor,
)

from ml_assets.data.approval import TRAINING_SET, newest_window
from ml_assets.dataset import DatasetSpec
from ml_assets.event_log import latest_check_evaluations, latest_materialization_id, metadata_text
from ml_assets.inline import alerts_table
from ml_assets.model.champion import rollback_run_config
from ml_assets.model.registry import current_champion_tag
from ml_assets.monitoring.verdicts import CHAMPION_REGRESSION, CHECKS, RETRAIN_CAUSES
from ml_assets.partitions import today
from resources.alerts import Alerts

INTERVAL_SECONDS = 60
MODEL_MONITORING = AssetKey("model_monitoring")
CANDIDATE_MODEL = AssetKey("candidate_model")
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
REASON_TAG = "ml_assets/retrain_reason"


@dataclass(frozen=True)
class Evidence:
    """The failed checks of one day's latest model_monitoring materialization, about the current champion."""

    day: str
    materialization: int  # storage id of the model_monitoring materialization the checks judged
    failed: dict[str, AssetCheckEvaluation]


def build_retrain_sensor(
    spec: DatasetSpec,
    partitions_def: TimeWindowPartitionsDefinition,
    model_job: Any,  # the asset jobs as define_asset_job returns them
    rollback_job: Any,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    trains_here: bool = True,
) -> SensorDefinition:
    """``trains_here`` False (prod, whose champion only ever comes from qa): a failure that calls for retraining is
    an alert saying so, once per judgement, and no model_job run; rollbacks are requested as everywhere."""
    cooldown_s = spec.monitoring.retrain_cooldown_hours * 3600
    # a day's monitoring is re-judged each time its delayed labels land, up to label_window_days later
    recent_days = spec.monitoring.label_window_days + 1
    # every new window is retrained by automation itself: a request beside it would train the same window twice
    automatic = spec.retraining.trigger == "every_training_set"

    @sensor(
        name="retrain_sensor",
        jobs=[model_job, rollback_job],
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status,
        description="Requests retraining when a monitoring check of the champion fails (once per judgement, with a "
        "cool-down), and a rollback when the champion realizes worse than the previous champion.",
    )
    def retrain_sensor(context: SensorEvaluationContext, alerts: Alerts) -> SensorResult:
        state = json.loads(context.cursor) if context.cursor else {}
        last_retrain = float(state.get("last_retrain_at", 0.0))
        newest = today(spec)
        days = [(newest - timedelta(days=i)).isoformat() for i in range(recent_days)]
        days = [d for d in days if partitions_def.has_partition_key(d)]
        acted = {d: int(sid) for d, sid in state.get("acted", {}).items() if d in days}
        champion = current_champion_tag(context.instance)
        requests: list[RunRequest] = []
        waiting: list[str] = []
        pointless_now = functools.cache(lambda: why_not_retrain(context.instance, partitions_def, automatic))
        for day in days:
            evidence = new_evidence(context.instance, day, champion, acted.get(day))
            if evidence is None:
                continue
            previous = rollback_target(evidence, champion)
            if previous is not None:
                why = f"{day}: {evidence.failed[CHAMPION_REGRESSION].description}"
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
                acted[day] = evidence.materialization
                continue
            causes = sorted(set(evidence.failed) & set(RETRAIN_CAUSES))
            if not causes or any(r.job_name == rollback_job.name for r in requests):
                acted[day] = evidence.materialization
                continue
            pointless = pointless_now()
            if pointless is not None:  # acted on later (a new window is cut), if the judged model still serves
                waiting.append(f"{day}: {', '.join(causes)} failed, but {pointless}")
                continue
            if time.time() - last_retrain < cooldown_s:  # acted on once the cool-down is over, if still current
                context.log.info(
                    f"{day}: {', '.join(causes)} failed; in cool-down until {last_retrain + cooldown_s:.0f}"
                )
                continue
            why = f"{day}: " + "; ".join(f"{c}: {evidence.failed[c].description}" for c in causes)
            if not trains_here:
                alerts.send("retrain", f"retraining needed (train it in qa, then promote it): {why}",
                            log=context.log, day=day, causes=causes)  # fmt: skip
                waiting.append(f"{day}: {', '.join(causes)} failed; this environment trains nothing: retrain in qa")
                acted[day] = evidence.materialization
                continue
            alerts.send("retrain", f"retraining requested: {why}", log=context.log, day=day, causes=causes)
            requests.append(
                RunRequest(
                    run_key=f"retrain:{day}:{champion}:{'+'.join(causes)}",
                    job_name=model_job.name,
                    tags={REASON_TAG: why[:250], "ml_assets/trigger": "monitoring"},
                )
            )
            acted[day] = evidence.materialization
            last_retrain = time.time()
        for line in waiting:
            context.log.info(line)
        quiet = f"no new failed monitoring check of the champion for {days[-1]}..{days[0]}" if days else "no days yet"
        reason = (
            "requested " + "; ".join(f"{r.job_name}: {r.tags.get(REASON_TAG, '')}" for r in requests)
            if requests
            else "; ".join(waiting) or quiet
        )
        cursor = {"last_retrain_at": last_retrain, "acted": acted, "reason": reason}
        events = [] if reason == state.get("reason") or not days else [decision(days[0], reason, alerts)]
        if requests:
            return SensorResult(run_requests=requests, cursor=json.dumps(cursor), asset_events=events)
        return SensorResult(skip_reason=reason, cursor=json.dumps(cursor), asset_events=events)

    return retrain_sensor


def decision(day: str, reason: str, alerts: Alerts) -> AssetObservation:
    """What the sensor decided and why, with the latest alerts, as an observation of ``model_monitoring``: the
    reason is on the asset it concerns (its events and latest observation), not only in the sensor's ticks. Only
    reported when the reason changes."""
    return AssetObservation(
        asset_key=MODEL_MONITORING,
        partition=day,
        metadata={
            "retrain_sensor": reason[:2000],
            "latest_alerts": MetadataValue.md(
                alerts_table(alerts.read(), prefix=("monitoring.", "retrain", "rollback", "run_failed"))
            ),
        },
    )


def new_evidence(instance: DagsterInstance, day: str, champion: str | None, acted: int | None) -> Evidence | None:
    """The day's failed checks if they judge a materialization not acted on yet and were about the champion
    (evidence about a model that no longer serves calls for nothing)."""
    evaluations = latest_check_evaluations(instance, MODEL_MONITORING, CHECKS, day)
    failed = {n: e for n, e in evaluations.items() if e is not None and not e.passed}
    if not failed:
        return None
    judged = [e.target_materialization_data.storage_id for e in failed.values() if e.target_materialization_data]
    materialization = max(judged, default=0)
    if acted is not None and materialization <= acted:
        return None
    about = {metadata_text(e.metadata.get("model_tag")) for e in failed.values()} - {None}
    if champion is not None and about and about != {champion}:
        return None
    return Evidence(day, materialization, failed)


def why_not_retrain(
    instance: DagsterInstance, partitions_def: TimeWindowPartitionsDefinition, automatic: bool
) -> str | None:
    """Why a retraining request now would add nothing, or None: a run training a candidate is already queued or
    running; the latest candidate was trained on the newest window already (training is deterministic: it would
    rebuild the same model, which either serves or failed its gates); or the newest window is new and the retraining
    policy is ``every_training_set`` (``automatic``), so automation trains on it by itself, maybe in this very tick,
    before any run of it is visible here."""
    for run in instance.get_runs(filters=RunsFilter(statuses=UNFINISHED), limit=50):
        if CANDIDATE_MODEL in (run.asset_selection or ()):
            return f"run {run.run_id[:8]} ({run.job_name}) is already training a candidate"
    newest = newest_window(instance, partitions_def)
    records = instance.fetch_materializations(CANDIDATE_MODEL, limit=1).records
    if newest is None or not records or records[0].asset_materialization is None:
        return None
    candidate = records[0]
    trained_on = metadata_text(candidate.asset_materialization.metadata.get("training_set_partition"))
    window_cut = latest_materialization_id(instance, TRAINING_SET, newest)
    if trained_on != newest or window_cut is None or window_cut > candidate.storage_id:
        if automatic:  # a newer window, or the newest one cut again since the candidate trained on it
            return f"automation retrains on the new training window ({newest}) by itself (every_training_set)"
        return None
    return (
        f"the latest candidate was trained on the newest training window ({newest}): retraining would rebuild it; "
        "waiting for new data"
    )


def rollback_target(evidence: Evidence, champion: str | None) -> str | None:
    """The previous champion to roll back to, when the champion realized worse than it on the same labeled rows."""
    regression = evidence.failed.get(CHAMPION_REGRESSION)
    if regression is None or champion is None or metadata_text(regression.metadata.get("model_tag")) != champion:
        return None
    return metadata_text(regression.metadata.get("previous_champion")) or None
