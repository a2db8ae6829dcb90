"""Time-based train/validation/test split of a training window: the newest days are the test set."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from ml_assets.dataset import DatasetSpec

SPLITS = ("train", "validation", "test")
WINDOW_END = "window_end"
SPLIT = "split"


def split_by_time(spec: DatasetSpec, features: pd.DataFrame, window_end: date) -> pd.DataFrame:
    """Tag each row of a window ending on ``window_end`` (inclusive) with its split by event day.

    The last ``test_days`` days are the test split, the ``validation_days`` before them validation, the rest
    train, as production would see them: trained on the past, judged on the newest data.
    """
    cfg = spec.training
    day = features[spec.time.name].dt.normalize()
    test_from = pd.Timestamp(window_end - timedelta(days=cfg.test_days - 1))
    val_from = test_from - pd.Timedelta(days=cfg.validation_days)
    split = pd.Series("train", index=features.index, dtype="string")
    split[day >= val_from] = "validation"
    split[day >= test_from] = "test"
    out = features.copy()
    out[SPLIT] = split
    out[WINDOW_END] = pd.Timestamp(window_end)
    return out
