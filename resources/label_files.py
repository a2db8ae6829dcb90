"""Delayed ground truth on disk: ``<root>/<YYYY-MM-DD>/*.csv|*.csv.gz|*.parquet|*.pq``, one folder per day labels
landed.

A label file names the record it labels (the dataset's id column, or ``request_id`` for a logged prediction) and
the label in the target column's landed form; an optional ``time`` says when the outcome was known.
"""

from __future__ import annotations

import pandas as pd

from ml_assets.dataset import read_table
from resources.day_folders import DayFolders


class LabelFileError(ValueError):
    """A label file that cannot be read, naming the file and why."""


class LabelFiles(DayFolders):
    def read_day(self, day: str) -> tuple[pd.DataFrame, list[str]]:
        """Every label file of the day as one frame (columns as they landed), and the file names."""
        frames, names = [], []
        for path in self.files(day):
            try:
                frame = read_table(path)
            except Exception as e:  # any reader error means the same: the file is not a label table
                raise LabelFileError(f"label file {path}: cannot be parsed: {type(e).__name__}: {e}") from e
            frames.append(frame)
            names.append(path.name)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return frame, names
