"""A training window larger than a memory bound is built, checked and trained within it (issue 25, Tests).

The same steps run twice, on a small window and on one ten times its rows, each step in a fresh process as the
benchmark runs it (``benchmarks.scale``: materializing through the Definitions' jobs, the peak RSS summed over the
process and its children). A step that held the window would grow by at least the difference of the two windows
as frames (text as Python strings, the way the in-memory data plane held them); a step that streams the window in
batches and judges it by queries and bounded samples grows by its batches only. The bound sits well below that
difference. Comparing a step with itself on a small window cancels what its libraries cost.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.process_memory import MB
from benchmarks.scale import StepRun, Window, window_days

pytestmark = pytest.mark.integration

WINDOW_DAYS = 3
SMALL_ROWS_PER_DAY, LARGE_ROWS_PER_DAY = 10_000, 100_000
GROWTH_BOUND_MB = 120  # what a step may add from the small window to the large one: batches, row groups, queries
SAMPLE_ROWS = 20_000  # ML_ASSETS_SAMPLE_ROWS: every bounded sample a step holds, below the large window's rows


def window_frame_mb(landing: Path) -> float:
    """The landed window as one pandas frame with text as Python strings (what the warehouse's ``fetchdf`` gave)."""
    total = 0
    for day in sorted(landing.iterdir()):
        frame = pd.read_parquet(day)
        frame = frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})
        total += int(frame.memory_usage(deep=True).sum())
    return total / MB


def measured(root: Path, rows_per_day: int) -> tuple[float, list[StepRun]]:
    """The window as one frame (MB), and its training_set (+ checks) and approved_training_set + baseline_model
    steps, after its days were ingested."""
    window = Window(root, WINDOW_DAYS, rows_per_day, rows_per_day)
    days, _ = window_days(WINDOW_DAYS)
    for i, day in enumerate(days):
        window.land(day, rows_per_day, seed=i + 1)
    rows = WINDOW_DAYS * rows_per_day
    ingested = window.step("ingest", "ingest", rows, [d.isoformat() for d in days])  # setup: 3 days, 1 process
    assert ingested.ok, ingested.detail
    built = window.step("training_set (+ checks)", "training_set", rows, days[-1].isoformat())
    trained = window.step("approved_training_set + baseline_model", ["approved_training_set", "baseline_model"], rows)
    for run in (built, trained):
        assert run.ok, run.detail
    return window_frame_mb(window.home / "landing"), [built, trained]


@pytest.mark.timeout(1800)  # 6 days ingested through GX, then 4 step processes: a few minutes
def test_a_window_larger_than_the_bound_is_built_checked_and_trained_within_it(tmp_path: Path, monkeypatch) -> None:
    """The steps' samples are capped (``ML_ASSETS_SAMPLE_ROWS``) below the large window, as their defaults are
    below a window of millions of rows: what a step holds is then its batches and samples."""
    monkeypatch.setenv("ML_ASSETS_SAMPLE_ROWS", str(SAMPLE_ROWS))
    small_mb, small = measured(tmp_path / "small", SMALL_ROWS_PER_DAY)
    large_mb, large = measured(tmp_path / "large", LARGE_ROWS_PER_DAY)
    held = large_mb - small_mb
    assert held > 1.3 * GROWTH_BOUND_MB, f"the windows differ by {held:,.0f} MB as frames: too close to the bound"
    over = [
        f"{big.step}: {few.peak_mb:,.0f} MB on {few.rows:,} rows, {big.peak_mb:,.0f} MB on {big.rows:,} rows "
        f"(+{big.peak_mb - few.peak_mb:,.0f} MB; bound +{GROWTH_BOUND_MB} MB)"
        for few, big in zip(small, large, strict=True)
        if big.peak_mb - few.peak_mb > GROWTH_BOUND_MB
    ]
    assert not over, f"a step grew with the window ({held:,.0f} MB more as one frame): " + "; ".join(over)
