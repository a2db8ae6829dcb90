"""The sensor that evaluates every asset's automation condition (``ml_assets.automation``) and launches what is due.

Runs go through the instance's run queue, so a burst of landings never starts more runs than the queue allows
(two at a time on the local instance; training takes one slot of the ``training`` pool).
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
        run_tags={"trigger": "automation"},
        description="Requests every asset whose automation condition is true: new landing files flow through "
        "ingestion, the training window, training, the gates, the Bento and the deployment.",
    )
