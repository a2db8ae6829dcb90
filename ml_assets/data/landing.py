"""``landing_files``: the landing zone as an observable source asset, one partition per landing day.

Its data version per day is the fingerprint of the day's files (names, sizes, modification times). The landing
sensor reports a new observation whenever a day's fingerprint changes; ``raw_data`` recomputes a day when its
observed version changes (``ml_assets.automation.on_new_landing``). "Observe" in the UI fingerprints every day.
"""

from dagster import (
    AssetObservation,
    DataVersion,
    DataVersionsByPartition,
    MetadataValue,
    PartitionsDefinition,
    SourceAsset,
    observable_source_asset,
)

from ml_assets.event_log import DATA_VERSION_TAG
from resources.landing import LandingZone

LANDING_FILES = "landing_files"


def landing_observation(landing: LandingZone, day: str, fingerprint: str) -> AssetObservation:
    files = landing.files(day)
    return AssetObservation(
        asset_key=LANDING_FILES,
        partition=day,
        tags={DATA_VERSION_TAG: fingerprint},
        metadata={
            "files": MetadataValue.json([p.name for p in files]),
            "bytes": sum(p.lstat().st_size for p in files),
            "folder": MetadataValue.path(str(landing.day_dir(day))),
        },
    )


def build_landing_files(daily: PartitionsDefinition) -> SourceAsset:
    @observable_source_asset(
        name=LANDING_FILES,
        group_name="data",
        partitions_def=daily,
        required_resource_keys={"landing"},
        description="Files landed under landing/<YYYY-MM-DD>/, observed by the landing sensor: one data version "
        "(a fingerprint of the day's files) per day.",
    )
    def landing_files(context) -> DataVersionsByPartition:
        landing = context.resources.landing
        valid = set(daily.get_partition_keys())
        return DataVersionsByPartition(
            {day: DataVersion(landing.fingerprint(day)) for day in landing.days() if day in valid}
        )

    return landing_files
