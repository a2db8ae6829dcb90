"""The daily partitions of the graph, derived from the dataset spec and the landing zone.

Partitions start where the data starts: the spec's ``partitions_start`` date, or (``auto``) the first landed day
found when the code location loads. The current day is a partition (``end_offset=1``), so files landed today are
ingested today. A training set is "the N days ending at D", so its partitions start N - 1 days after the data:
every one of them has a whole window behind it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dagster import DailyPartitionsDefinition

from ml_assets.dataset import DatasetSpec
from ml_assets.settings import paths

LANDING_DAY = "landing_day"  # partition column of raw_data and features: the landing folder a row came from


def today(spec: DatasetSpec, now: datetime | None = None) -> date:
    """The current day in the spec's timezone: the newest daily partition."""
    now = now or datetime.now(ZoneInfo(spec.timezone))
    return now.astimezone(ZoneInfo(spec.timezone)).date()


def last_complete_day(spec: DatasetSpec, now: datetime | None = None) -> date:
    """Yesterday in the spec's timezone: the newest whole day, where the demo lands its last day."""
    return today(spec, now) - timedelta(days=1)


def parse_day(name: str) -> date | None:
    """A landing folder name as a day (``YYYY-MM-DD``), or None when it is not one."""
    try:
        day = date.fromisoformat(name)
    except ValueError:
        return None
    return day if day.isoformat() == name else None


def first_landed_day(landing_root: Path) -> date | None:
    """The oldest day folder under the landing zone that holds any file, or None."""
    if not landing_root.is_dir():
        return None
    days = [d for p in landing_root.iterdir() if p.is_dir() and (d := parse_day(p.name)) and any(p.iterdir())]
    return min(days, default=None)


def resolve_start(spec: DatasetSpec, landing_root: Path | None = None, now: datetime | None = None) -> DatasetSpec:
    """The spec with ``partitions_start`` as a date: ``auto`` becomes the first landed day (else today).

    Resolve once per code location load and build every definition from the result, so all assets share one
    partitioning even if files land while it loads.
    """
    if spec.partitions_start != "auto":
        return spec
    first = first_landed_day(landing_root or paths().landing)
    start = min(first, today(spec, now)) if first else today(spec, now)
    return spec.model_copy(update={"partitions_start": start})


def first_day(spec: DatasetSpec) -> date:
    """The first daily partition of ``spec`` (``auto`` resolved against the landing zone now)."""
    resolved = resolve_start(spec).partitions_start
    assert isinstance(resolved, date)
    return resolved


def daily_partitions(spec: DatasetSpec) -> DailyPartitionsDefinition:
    """One partition per day from where the data starts through today (raw_data, features, landing files)."""
    return DailyPartitionsDefinition(start_date=first_day(spec).isoformat(), timezone=spec.timezone, end_offset=1)


def training_set_partitions(spec: DatasetSpec) -> DailyPartitionsDefinition:
    """Training windows "the N days ending at D": from the first day with N days of data behind it."""
    start = first_day(spec) + timedelta(days=spec.training.window_days - 1)
    return DailyPartitionsDefinition(start_date=start.isoformat(), timezone=spec.timezone, end_offset=1)


def day_range(end: date, days: int) -> list[date]:
    return [end - timedelta(days=days - 1 - i) for i in range(days)]
