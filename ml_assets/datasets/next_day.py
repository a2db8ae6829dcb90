"""Land "the next day" of simulated data: what ``ml-assets simulate --next`` and ``ml-assets up --replay`` do.

The next day is the day after the newest landed day, as long as that is not in the future; once today has landed,
each further call lands a later batch of today (a new file beside the others), since days after today are not
partitions yet. Rows are a fresh draw from the spec's demo data, the size of a typical landed day, and are numbered
with new ids (from the clock), so a replayed row is a new record: it never repeats an id an earlier day used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from ml_assets.dataset import DatasetSpec, demo_data_path, is_parquet, read_demo_data
from ml_assets.datasets.simulator import DriftConfig, replay
from ml_assets.partitions import parse_day, today


@dataclass(frozen=True)
class NextDay:
    """What one call landed."""

    day: date
    files: list[Path]
    rows: int
    late_batch: bool


def newest_landed_day(landing_root: Path) -> date | None:
    if not landing_root.is_dir():
        return None
    days = [d for p in landing_root.iterdir() if p.is_dir() and (d := parse_day(p.name)) and any(p.iterdir())]
    return max(days, default=None)


def typical_rows(spec: DatasetSpec) -> int:
    """Rows of a demo day: the demo data spread over the training window plus two days (what the demo lands)."""
    path = demo_data_path(spec)
    if path is None or not path.exists():
        return 1000
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows if is_parquet(path) else len(read_demo_data(spec))
    return max(1, rows // (spec.training.window_days + 2))


def land_next_day(
    spec: DatasetSpec,
    landing_root: Path,
    rows_per_day: int | None = None,
    drift: DriftConfig | None = None,
    seed: int | None = None,
) -> NextDay:
    """Land the next day (or a later batch of today) under ``landing_root``."""
    now = today(spec)
    newest = newest_landed_day(landing_root)
    day = now if newest is None else min(newest + timedelta(days=1), now)
    late = newest is not None and newest >= now
    stamp = time.time_ns() // 1_000  # microseconds: ids of batches landed seconds apart never overlap
    landed = replay(
        spec,
        landing_root,
        day,
        day,
        rows_per_day=rows_per_day or typical_rows(spec),
        seed=stamp % 2**32 if seed is None else seed,
        drift=drift,
        first_id=stamp,
        file_stem=f"{spec.name}-batch{stamp}" if late else None,
    )
    return NextDay(day, [f.path for f in landed], sum(f.rows for f in landed), late)
