"""Sensors over day folders: the landing zone, the prediction log and the delayed labels.

Each reports one observation of its source asset (``landing_files``, ``prediction_log_files``, ``label_files``) per
day whose files changed, with the day's fingerprint as data version. They launch nothing themselves: declarative
automation recomputes ``raw_data``, ``prediction_log`` or ``labels`` (and what follows) for each day whose observed
data version changed. A day is observed again only when its fingerprint changes; a day already observed with the
same fingerprint (by the demo, another sensor or an earlier cursor) is not observed twice, so switching a sensor on
after a demo does not re-ingest anything. Folders a sensor cannot use are named, with the reason, in its tick.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    DagsterInstance,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    TimeWindowPartitionsDefinition,
    sensor,
)

from ml_assets.data.landing import LANDING_FILES, landing_observation
from ml_assets.event_log import observed_versions
from ml_assets.partitions import parse_day
from resources.day_folders import DayFolders
from resources.landing import LandingZone

LANDING_INTERVAL_S = 15
# Logs grow with every request: reloading a day of them (and monitoring it) on every change would never rest.
PREDICTION_LOG_INTERVAL_S = 120
LABELS_INTERVAL_S = 60


def day_events(
    folders: LandingZone | DayFolders, day: str, fingerprint: str, asset: str = LANDING_FILES
) -> list[AssetObservation | AssetMaterialization]:
    """What one changed day folder is reported as: the observation (its fingerprint as data version, which
    automation and the cursor read) and a runless materialization with the same version and metadata.

    Why both: Dagster 1.13 counts a partition as present only from materializations; the partitions of an
    observable source asset are shown as "0% filled" however often they are observed (dagster-io/dagster#15764,
    #19614). A day folder whose files landed is that day's data, so it is recorded as materialized too: the UI then
    shows exactly the landed days as filled, and nothing else reads these materializations.
    """
    observed = landing_observation(folders, day, fingerprint, asset)
    landed = AssetMaterialization(
        asset_key=observed.asset_key,
        partition=day,
        tags=dict(observed.tags),
        metadata=dict(observed.metadata),
        description="the day's files, as the sensor observed them",
    )
    return [observed, landed]


def why_unusable(name: str, has_data: bool, partitions_def: TimeWindowPartitionsDefinition) -> str | None:
    """Why a landing folder cannot be a partition now, or None when it can."""
    day = parse_day(name)
    if day is None:
        return "its name is not a day (YYYY-MM-DD)"
    if not has_data:
        return "it holds no .csv or .parquet file (hidden and temporary files are not data)"
    first = partitions_def.start.date()
    if day < first:
        return (
            f"it is before the first partition {first} (partitions start where the data started when the code "
            "location loaded: reload it to include earlier days)"
        )
    if not partitions_def.has_partition_key(name):
        return f"it is after today ({partitions_def.get_last_partition_key()}) in {partitions_def.timezone}"
    return None


def scan(
    landing: LandingZone | DayFolders,
    partitions_def: TimeWindowPartitionsDefinition,
    seen: Mapping[str, str],
    instance: DagsterInstance,
    asset: str = LANDING_FILES,
) -> tuple[list[AssetObservation | AssetMaterialization], dict[str, str], dict[str, str]]:
    """(events to report: an observation and a materialization per changed day, the new cursor, unusable folders
    with reasons) for one tick."""
    cursor = dict(seen)
    unusable: dict[str, str] = {}
    changed: dict[str, str] = {}
    for name in landing.folders():
        reason = why_unusable(name, bool(landing.files(name)), partitions_def)
        if reason:
            unusable[name] = reason
            continue
        fingerprint = landing.fingerprint(name)
        if cursor.get(name) != fingerprint:
            changed[name] = fingerprint
    known = observed_versions(instance, AssetKey(asset), [d for d in changed if d not in cursor])
    events: list[AssetObservation | AssetMaterialization] = []
    for day, fingerprint in changed.items():
        cursor[day] = fingerprint
        if known.get(day) != fingerprint:
            events += day_events(landing, day, fingerprint, asset)
    return events, cursor, unusable


def build_day_folder_sensor(
    name: str,
    asset: str,
    resource_key: str,
    partitions_def: TimeWindowPartitionsDefinition,
    interval_s: int,
    default_status: DefaultSensorStatus,
    description: str,
    what: str,
) -> SensorDefinition:
    """A sensor that observes the day folders of resource ``resource_key`` (holding ``what``) as partitions of
    ``asset``."""

    @sensor(
        name=name,
        minimum_interval_seconds=interval_s,
        default_status=default_status,
        required_resource_keys={resource_key},
        description=description,
    )
    def observe_days(context: SensorEvaluationContext) -> SensorResult:
        folders = getattr(context.resources, resource_key)
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        events, cursor, unusable = scan(folders, partitions_def, seen, context.instance, asset)
        for folder, reason in unusable.items():
            context.log.warning(f"folder {folders.day_dir(folder)} cannot be used: {reason}")
        new_cursor = json.dumps(cursor, sort_keys=True)
        if events:
            days = sorted({e.partition or "" for e in events})
            context.log.info(f"new or changed {what} for {', '.join(days)}")
            return SensorResult(asset_events=events, cursor=new_cursor)
        skip = f"no new or changed {what}"
        if unusable:
            skip += "; folders that cannot be used: " + "; ".join(
                f"{folders.day_dir(n)}: {r}" for n, r in unusable.items()
            )
        return SensorResult(skip_reason=skip, cursor=new_cursor)

    return observe_days


def build_landing_sensor(
    partitions_def: TimeWindowPartitionsDefinition, default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING
) -> SensorDefinition:
    return build_day_folder_sensor(
        "landing_sensor",
        LANDING_FILES,
        "landing",
        partitions_def,
        LANDING_INTERVAL_S,
        default_status,
        "Observes landing/<YYYY-MM-DD>/: reports a landing_files observation for every day whose files changed; "
        "automation then ingests that day.",
        "landing files",
    )


def build_prediction_log_sensor(
    partitions_def: TimeWindowPartitionsDefinition, default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING
) -> SensorDefinition:
    return build_day_folder_sensor(
        "prediction_log_sensor",
        "prediction_log_files",
        "prediction_logs",
        partitions_def,
        PREDICTION_LOG_INTERVAL_S,
        default_status,
        "Observes prediction_log/<YYYY-MM-DD>/ every 2 minutes; automation then reloads the day's "
        "prediction_log and its model_monitoring.",
        "prediction log files",
    )


def build_label_sensor(
    partitions_def: TimeWindowPartitionsDefinition, default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING
) -> SensorDefinition:
    return build_day_folder_sensor(
        "label_sensor",
        "label_files",
        "label_files",
        partitions_def,
        LABELS_INTERVAL_S,
        default_status,
        "Observes labels/<YYYY-MM-DD>/ (delayed ground truth); automation then loads the labels and re-judges the "
        "days they label.",
        "label files",
    )
