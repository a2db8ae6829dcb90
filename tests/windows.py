"""Training windows for tests: stand-in ``training_set`` assets return what the real one returns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml_assets.data.window import TrainingWindow, store_window
from ml_assets.dataset import DatasetSpec
from resources.parquet_tables import ParquetTables


def window_of(spec: DatasetSpec, frame: pd.DataFrame, root: Path | str) -> TrainingWindow:
    """``frame`` (a training_set frame) as a window whose features files live under ``root``."""
    return store_window(spec, frame, ParquetTables(root=str(root)))
