"""A training window larger than a memory bound is built, checked and trained within it (issue 25, Tests).

The window's rows, held as one pandas frame the way the in-memory data plane holds them (text as Python strings),
take more memory than the bound allows the step process to grow: a step that holds the window cannot pass, one that
streams it in batches and judges it by queries and bounded samples can. Each step runs as the benchmark runs it
(``benchmarks.scale``): a fresh process materializing through the Definitions' jobs, its peak RSS summed over the
process and its children. The bound is on the growth over the footprint of a process that only loads the same
Definitions (measured here, so a library upgrade moves both), with an allowance for the libraries a step imports.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.process_memory import MB, run_measured
from benchmarks.scale import StepRun, Window, window_days

pytestmark = pytest.mark.integration

WINDOW_DAYS = 3
ROWS_PER_DAY = 100_000
GROWTH_BOUND_MB = 160  # what a step may add to the loaded Definitions: its libraries, batches and bounded samples
SAMPLE_ROWS = 20_000  # ML_ASSETS_SAMPLE_ROWS: every bounded sample a step holds, well below the window's rows
LOAD_DEFINITIONS = "from ml_assets.definitions import build_definitions; build_definitions()"


def window_frame_mb(landing: Path) -> float:
    """The landed window as one pandas frame with text as Python strings (what the warehouse's ``fetchdf`` gives)."""
    total = 0
    for day in sorted(landing.iterdir()):
        frame = pd.read_parquet(day)
        frame = frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})
        total += int(frame.memory_usage(deep=True).sum())
    return total / MB


def over_bound(run: StepRun, loaded_mb: float) -> str:
    return (
        f"{run.step}: peak {run.peak_mb:,.0f} MB = the loaded Definitions' {loaded_mb:,.0f} MB + "
        f"{run.peak_mb - loaded_mb:,.0f} MB (bound: + {GROWTH_BOUND_MB} MB) on {run.rows:,} rows"
    )


@pytest.mark.timeout(1800)  # 3 days ingested through GX, then 3 step processes: minutes; 20 on 2 overloaded cores
def test_a_window_larger_than_the_bound_is_built_checked_and_trained_within_it(tmp_path: Path, monkeypatch) -> None:
    """The steps' samples are capped (``ML_ASSETS_SAMPLE_ROWS``) below the window, as their defaults are below a
    window of millions of rows: what a step holds is then its batches and samples, whatever the window's size."""
    monkeypatch.setenv("ML_ASSETS_SAMPLE_ROWS", str(SAMPLE_ROWS))
    window = Window(tmp_path, WINDOW_DAYS, ROWS_PER_DAY, ROWS_PER_DAY)
    days, _ = window_days(WINDOW_DAYS)
    for i, day in enumerate(days):
        window.land(day, ROWS_PER_DAY, seed=i + 1)
    rows = WINDOW_DAYS * ROWS_PER_DAY
    frame_mb = window_frame_mb(window.home / "landing")
    assert frame_mb > GROWTH_BOUND_MB, f"the window ({frame_mb:,.0f} MB as a frame) must not fit the bound"

    with ThreadPoolExecutor(1) as pool:  # the reference process beside the setup: memory is per process tree
        reference = pool.submit(run_measured, [sys.executable, "-c", LOAD_DEFINITIONS], env=window.env)
        ingested = window.step("ingest", "ingest", rows, [d.isoformat() for d in days])  # setup: 3 days, 1 process
        loaded = reference.result()
    assert ingested.ok, ingested.detail
    assert loaded.returncode == 0, loaded.stderr[-2000:]

    built = window.step("training_set (+ checks)", "training_set", rows, days[-1].isoformat())
    trained = window.step("approved_training_set + baseline_model", ["approved_training_set", "baseline_model"], rows)
    assert built.ok, built.detail
    assert trained.ok, trained.detail
    over = [over_bound(r, loaded.peak_mb) for r in (built, trained) if r.peak_mb - loaded.peak_mb > GROWTH_BOUND_MB]
    assert not over, f"the window ({frame_mb:,.0f} MB as one frame) held in a step process: " + "; ".join(over)
