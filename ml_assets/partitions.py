"""The daily partitioning every time-partitioned asset shares, derived from the dataset spec."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import DailyPartitionsDefinition

from ml_assets.dataset import DatasetSpec

LANDING_DAY = "landing_day"  # partition column of raw_data and features: the landing folder a row came from


def daily_partitions(spec: DatasetSpec) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=spec.partitions_start.isoformat(), timezone=spec.timezone)


def last_complete_day(spec: DatasetSpec, now: datetime | None = None) -> date:
    """The newest daily partition (yesterday in the spec's timezone): where the demo lands its last day."""
    now = now or datetime.now(ZoneInfo(spec.timezone))
    return (now.astimezone(ZoneInfo(spec.timezone)) - timedelta(days=1)).date()


def day_range(end: date, days: int) -> list[date]:
    return [end - timedelta(days=days - 1 - i) for i in range(days)]
