"""The volume rule of raw_data: a day's row count against the trailing median of the days before it.

An absolute minimum cannot tell a half day from a whole one; the days before can. Their row counts come from
the Dagster instance (the ``dagster/row_count`` of each earlier day's latest raw_data materialization), never
from the warehouse, so the rule costs a few event-log reads and judges a re-ingested day (say after one of its
files was quarantined) against the other days, not against its own earlier count.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, MetadataValue

from ml_assets import markdown
from ml_assets.dataset import RowCount

RAW_DATA = AssetKey("raw_data")
ROW_COUNT = "dagster/row_count"


def rule_text(rc: RowCount) -> str:
    bounds = f">= {rc.min_ratio:g}x" + (f" and <= {rc.max_ratio:g}x" if rc.max_ratio is not None else "")
    return (
        f"row count {bounds} the median of the {rc.trailing_days} days before (judged once {rc.min_history} of "
        "them have landed)"
    )


def earlier_row_counts(instance: DagsterInstance, day: str, trailing_days: int) -> dict[str, int]:
    """Row counts of raw_data's latest materialization on each of the ``trailing_days`` days before ``day``."""
    first = date.fromisoformat(day)
    counts: dict[str, int] = {}
    for back in range(1, trailing_days + 1):
        key = (first - timedelta(days=back)).isoformat()
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=RAW_DATA, asset_partitions=[key]), limit=1
        ).records
        mat = records[0].asset_materialization if records else None
        count = mat.metadata.get(ROW_COUNT) if mat is not None else None
        if count is not None:
            counts[key] = int(count.value)  # type: ignore[arg-type]
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class VolumeVerdict:
    """The day's rows against the trailing median, with the figures it was judged on."""

    rows: int
    earlier: dict[str, int]
    median: float | None
    ratio: float | None
    problems: list[str] = field(default_factory=list)
    note: str = ""

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, "earlier_days": len(self.earlier)}
        if self.median is not None:
            out |= {"trailing_median": self.median, "ratio_to_median": self.ratio}
        if self.earlier:
            table = markdown.table([{"day": d, "rows": n} for d, n in self.earlier.items()], right=["rows"])
            out["earlier_row_counts"] = MetadataValue.md(table)
        if self.note:
            out["note"] = self.note
        return out


def judge(rc: RowCount, rows: int, earlier: Mapping[str, int]) -> VolumeVerdict:
    """Compare ``rows`` with the median of ``earlier`` (day -> rows); not judged with too little history."""
    earlier = dict(earlier)
    if len(earlier) < rc.min_history:
        return VolumeVerdict(
            rows,
            earlier,
            None,
            None,
            note=f"not judged: {len(earlier)} earlier day(s) with a row count, needs {rc.min_history}",
        )
    median = float(statistics.median(earlier.values()))
    ratio = rows / median if median > 0 else float("inf")
    problems = []
    low, high = rc.min_ratio * median, (rc.max_ratio * median if rc.max_ratio is not None else None)
    span = f"{min(earlier)} .. {max(earlier)}"
    if rows < low:
        problems.append(
            f"{rows:,} rows is {ratio:.2f}x the median {median:,.0f} of the {len(earlier)} days {span} "
            f"(needs >= {rc.min_ratio:g}x = {low:,.0f}): a partial day? check for missing or quarantined files"
        )
    if high is not None and rows > high:
        problems.append(
            f"{rows:,} rows is {ratio:.2f}x the median {median:,.0f} of the {len(earlier)} days {span} "
            f"(needs <= {rc.max_ratio:g}x = {high:,.0f}): files sent twice?"
        )
    return VolumeVerdict(rows, earlier, median, ratio, problems)
