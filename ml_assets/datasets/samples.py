"""Small real training sets cut from a spec's shipped demo data, for tests, benchmarks and examples.

One place builds them the way the pipeline would (coerce -> featurize -> split by time), so a test of the model,
the serving path or the trainer sees the same shape of data as production.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from ml_assets.data.features import featurize
from ml_assets.data.splits import split_by_time
from ml_assets.dataset import DatasetSpec, read_demo_data

DEMO_WINDOW_END = date(2026, 1, 10)


def demo_training_set(
    spec: DatasetSpec, rows: int | None = None, *, seed: int | None = None, window_end: date = DEMO_WINDOW_END
) -> pd.DataFrame:
    """``rows`` demo records (the first ones, or a sample when ``seed`` is given; all when None) as a training set.

    Rows are dealt round-robin over the spec's training window ending on ``window_end``; asking for more rows than
    the demo data has repeats them with fresh ids.
    """
    raw = read_demo_data(spec)
    n = len(raw) if rows is None else rows
    if n > len(raw):
        raw = pd.concat([raw] * (n // len(raw) + 1), ignore_index=True)
        raw[spec.id.name] = np.arange(1, len(raw) + 1)
    raw = raw.sample(n, random_state=seed) if seed is not None else raw.head(n)
    raw = raw.reset_index(drop=True)
    days = spec.training.window_days
    start = pd.Timestamp(window_end - timedelta(days=days - 1))
    raw[spec.time.name] = (
        start + pd.to_timedelta(np.arange(n) % days, unit="D") + pd.to_timedelta(np.arange(n) % 86_400, unit="s")
    )
    typed, _ = spec.coerce(raw)
    return split_by_time(spec, featurize(spec, typed), window_end)
