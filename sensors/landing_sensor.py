"""landing_sensor: observes the landing zone, one ``landing_files`` observation per day whose files changed.

It launches nothing itself: declarative automation recomputes ``raw_data`` (and what follows) for each day whose
observed data version changed. A day is observed again only when its fingerprint changes; a day already observed
with the same fingerprint (by the demo, another sensor or an earlier cursor) is not observed twice, so switching the
sensor on after a demo does not re-ingest anything. Folders it cannot use are named, with the reason, in the tick.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from dagster import (
    AssetKey,
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
from resources.landing import LandingZone

INTERVAL_SECONDS = 15


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
    landing: LandingZone,
    partitions_def: TimeWindowPartitionsDefinition,
    seen: Mapping[str, str],
    instance: DagsterInstance,
) -> tuple[list[AssetObservation], dict[str, str], dict[str, str]]:
    """(observations to report, the new cursor, unusable folders with reasons) for one tick."""
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
    known = observed_versions(instance, AssetKey(LANDING_FILES), [d for d in changed if d not in cursor])
    observations = []
    for day, fingerprint in changed.items():
        cursor[day] = fingerprint
        if known.get(day) != fingerprint:
            observations.append(landing_observation(landing, day, fingerprint))
    return observations, cursor, unusable


def build_landing_sensor(
    partitions_def: TimeWindowPartitionsDefinition, default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING
) -> SensorDefinition:
    @sensor(
        name="landing_sensor",
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status,
        description="Observes landing/<YYYY-MM-DD>/: reports a landing_files observation for every day whose "
        "files changed; automation then ingests that day.",
    )
    def landing_sensor(context: SensorEvaluationContext, landing: LandingZone) -> SensorResult:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        observations, cursor, unusable = scan(landing, partitions_def, seen, context.instance)
        for name, reason in unusable.items():
            context.log.warning(f"landing folder {landing.day_dir(name)} cannot be used: {reason}")
        new_cursor = json.dumps(cursor, sort_keys=True)
        if observations:
            days = ", ".join(o.partition or "" for o in observations)
            context.log.info(f"new or changed landing files for {days}")
            return SensorResult(asset_events=observations, cursor=new_cursor)
        skip = "no new or changed landing files"
        if unusable:
            skip += "; folders that cannot be used: " + "; ".join(
                f"{landing.day_dir(n)}: {r}" for n, r in unusable.items()
            )
        return SensorResult(skip_reason=skip, cursor=new_cursor)

    return landing_sensor
