"""The sensor that evaluates every asset's automation condition (``ml_assets.automation``) and launches what is due.

Runs go through the instance's run queue, so a burst of landings never starts more runs than the queue allows
(two at a time on the local instance; training takes one slot of the ``training`` pool).

Why no backfills (``emit_backfills=False``; Dagster's default is True): when a tick requests more than one
partition of an asset (two days landed between ticks), Dagster turns the asset into one backfill, but a check with
an automation condition of its own (a ``@multi_asset_check``: ``ml_assets.automation.with_its_asset``) is not part
of the asset's execution set, so each of its partitions became a check-only run, launched beside the backfill and
ahead of the asset it checks: it failed on a partition not materialized yet and raised a false run-failure alert.
Without backfills every partition is one run holding the asset and its checks, queued like any other run.
"""

from __future__ import annotations

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

INTERVAL_SECONDS = 15


def build_automation_sensor(
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        "automation_sensor",
        target=AssetSelection.all(),
        default_status=default_status,
        minimum_interval_seconds=INTERVAL_SECONDS,
        emit_backfills=False,
        run_tags={"trigger": "automation"},
        description="Requests every asset whose automation condition is true: new landing files flow through "
        "ingestion, the training window, training, the gates, the Bento and the deployment.",
    )
