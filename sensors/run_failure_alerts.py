"""run_failure_alerts: every failed run of the code location becomes an alert (log, alerts.jsonl, webhook)."""

from __future__ import annotations

from typing import Any

from dagster import DefaultSensorStatus, RunFailureSensorContext, SensorDefinition, run_failure_sensor

from resources.alerts import Alerts


def build_run_failure_sensor(default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING) -> SensorDefinition:
    @run_failure_sensor(
        name="run_failure_alerts",
        default_status=default_status,
        description="Sends an alert for every failed run, naming the job, the run and the first error.",
    )
    def run_failure_alerts(context: RunFailureSensorContext, alerts: Alerts) -> None:
        run = context.dagster_run
        error = context.failure_event.message or ""
        failures = [e for e in context.get_step_failure_events()]
        if failures:
            first = failures[0]
            error = f"step {first.step_key}: {root_cause(getattr(first.event_specific_data, 'error', None))}"
        alerts.send(
            "run_failed",
            f"run {run.run_id[:8]} of {run.job_name} failed: {error}"[:1000],
            log=context.log,
            run_id=run.run_id,
            job=run.job_name,
            partition=run.tags.get("dagster/partition", ""),
        )

    return run_failure_alerts


def root_cause(error: Any) -> str:
    """The first line of the innermost cause of a step's error: Dagster wraps the user's exception in "Error
    occurred while executing op ...", which says nothing of what went wrong. A blocking check's failure says what
    failed on the lines after its first ("1 blocking asset check failed with ERROR severity:" then "<asset>:
    <checks>"): a first line ending in a colon takes those lines with it, so the alert names the checks."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    lines = [line.strip() for line in (getattr(error, "message", "") or "").strip().splitlines() if line.strip()]
    if not lines:
        return "no error message"
    if lines[0].endswith(":") and len(lines) > 1:
        return " ".join([lines[0], "; ".join(lines[1:4])])
    return lines[0]
