"""Export shadow days that passed the privacy gate into a landing-zone layout (``<to>/<YYYY-MM-DD>/shadow.parquet``).

The export refuses unless the latest ``shadow_data`` materialization passed every privacy check (read from the
instance, whoever materialized it): nothing that failed the gate leaves the environment. The newest ``days`` shadow
days are re-dated to end on ``end`` (default: the last complete day, where ``ml-assets demo`` lands its last day),
so a demo over the target landing folder finds its days there and lands nothing of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from dagster import AssetKey, DagsterInstance, Definitions

from ml_assets.dataset import DATA_SUFFIXES, DatasetSpec
from ml_assets.event_log import CheckVerdict, require_passed
from ml_assets.partitions import last_complete_day
from ml_assets.shadow.assets import PRIVACY_CHECKS

FILE_NAME = "shadow.parquet"


class ExportError(ValueError):
    """A shadow export that cannot be done, saying why."""


@dataclass(frozen=True)
class Exported:
    verdict: CheckVerdict
    files: list[Path]
    rows: int


def passed_shadow_days(defs: Definitions, instance: DagsterInstance) -> tuple[pd.DataFrame, CheckVerdict]:
    """The latest shadow_data, refused (dagster.Failure) unless its privacy checks passed."""
    verdict = require_passed(instance, AssetKey("shadow_data"), PRIVACY_CHECKS, None, "shadow export")
    return defs.load_asset_value("shadow_data", instance=instance), verdict


def day_frames(spec: DatasetSpec, landed: pd.DataFrame, days: int, end: date) -> dict[str, pd.DataFrame]:
    """The newest ``days`` shadow days, moved by whole days so the last is ``end``, by day (YYYY-MM-DD)."""
    time = spec.time.name
    if spec.time.numbered_time:
        raise ExportError(f"time column {time!r} lands as {spec.time.unit} numbers: re-dating those is not supported")
    stamps = pd.to_datetime(landed[time])
    have = sorted(stamps.dt.normalize().unique())
    if days < 1 or days > len(have):
        raise ExportError(f"--days {days}: the latest shadow_data holds {len(have)} days (ask for 1..{len(have)})")
    keep = have[-days:]
    shift = pd.Timestamp(end) - pd.Timestamp(keep[-1])
    out = {}
    for i, day in enumerate(keep):
        rows = landed[stamps.dt.normalize() == day].copy()
        rows[time] = pd.to_datetime(rows[time]) + shift
        out[(end - timedelta(days=days - 1 - i)).isoformat()] = rows.reset_index(drop=True)
    return out


def write_days(frames: dict[str, pd.DataFrame], to: Path) -> list[Path]:
    """Each day as ``<to>/<day>/shadow.parquet``, written under a hidden name and renamed (a landing sensor never
    sees half a file); a day folder that already holds other data files is refused."""
    files = []
    for day, frame in frames.items():
        folder = to / day
        others = [p.name for p in folder.glob("*") if p.name.lower().endswith(DATA_SUFFIXES) and p.name != FILE_NAME]
        if others:
            raise ExportError(f"landing folder {folder} already holds {others}: export into an empty landing zone")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{FILE_NAME}.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, folder / FILE_NAME)
        files.append(folder / FILE_NAME)
    return files


def export_shadow(
    defs: Definitions, instance: DagsterInstance, spec: DatasetSpec, days: int, to: Path, end: date | None = None
) -> Exported:
    landed, verdict = passed_shadow_days(defs, instance)
    frames = day_frames(spec, landed, days, end or last_complete_day(spec))
    files = write_days(frames, to)
    return Exported(verdict, files, sum(len(f) for f in frames.values()))
