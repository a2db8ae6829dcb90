"""landing_sensor: when files land (or change) in a day's landing folder, ingest that day's partition.

The cursor remembers a fingerprint (names, sizes, mtimes) of every day folder it has acted on, so a day is
requested again only when its files change, and each request has a run key that makes repeats idempotent.
"""

from __future__ import annotations

import hashlib
import json

from dagster import (
    DefaultSensorStatus,
    PartitionsDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from resources.landing import LandingZone


def day_fingerprint(landing: LandingZone, day: str) -> str:
    digest = hashlib.sha256()
    for path in landing.files(day):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def build_landing_sensor(job_name: str, partitions_def: PartitionsDefinition) -> SensorDefinition:
    @sensor(
        name="landing_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.STOPPED,
        description="Ingest a day's partition when files land in landing/<YYYY-MM-DD>/.",
    )
    def landing_sensor(context: SensorEvaluationContext, landing: LandingZone):
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        valid = set(partitions_def.get_partition_keys())
        requests, ignored = [], []
        for day in landing.days():
            if day not in valid:
                ignored.append(day)
                continue
            fingerprint = day_fingerprint(landing, day)
            if seen.get(day) == fingerprint:
                continue
            seen[day] = fingerprint
            requests.append(RunRequest(run_key=f"{day}:{fingerprint}", partition_key=day, tags={"trigger": "landing"}))
        if ignored:
            context.log.warning(f"landing folders that are not daily partitions were ignored: {ignored}")
        if not requests:
            return SkipReason("no new or changed landing files")
        return SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return landing_sensor
