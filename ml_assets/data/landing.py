"""``landing_files``: the landing zone as an observable source asset, one partition per landing day.

Its data version per day is the fingerprint of the day's files (names, sizes, modification times). The landing
sensor reports a new observation whenever a day's fingerprint changes; ``raw_data`` recomputes a day when its
observed version changes (``ml_assets.automation.on_new_files``). "Observe" in the UI fingerprints every day.
"""

from pathlib import Path

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
from resources.day_folders import DayFolders
from resources.landing import LandingZone

LANDING_FILES = "landing_files"


def landing_observation(
    landing: LandingZone | DayFolders, day: str, fingerprint: str, asset: str = LANDING_FILES
) -> AssetObservation:
    """The observation of one day folder's files (of ``asset``) with its fingerprint as data version."""
    files = landing.files(day)
    return AssetObservation(
        asset_key=asset,
        partition=day,
        tags={DATA_VERSION_TAG: fingerprint},
        metadata={
            "files": MetadataValue.json([p.name for p in files]),
            "bytes": sum(_size(p) for p in files),
            "folder": MetadataValue.path(str(landing.day_dir(day))),
        },
    )


def build_day_folder_asset(
    name: str, resource_key: str, daily: PartitionsDefinition, group: str, description: str
) -> SourceAsset:
    """An observable source asset over day folders (the resource ``resource_key``): one data version per day."""

    @observable_source_asset(
        name=name,
        group_name=group,
        partitions_def=daily,
        required_resource_keys={resource_key},
        description=description + " Data version per day: a fingerprint of its files.",
    )
    def observe(context) -> DataVersionsByPartition:
        folders = getattr(context.resources, resource_key)
        valid = set(daily.get_partition_keys())
        return DataVersionsByPartition({d: DataVersion(folders.fingerprint(d)) for d in folders.days() if d in valid})

    return observe


def build_landing_files(daily: PartitionsDefinition) -> SourceAsset:
    return build_day_folder_asset(
        LANDING_FILES,
        "landing",
        daily,
        "data",
        "Files landed under landing/<YYYY-MM-DD>/, observed by the landing sensor.",
    )


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:  # removed since listed; the next observation will not list it
        return 0
