"""Bounded reads of a training window for the model-side steps: seeded samples of a split, and a split scored batch
by batch.

A window can hold tens of millions of rows, so no model step reads it as one frame (``TrainingWindow.frame()``).
What needs whole rows (fitting the baseline or trees, latency, permutation importance) takes a uniform, seeded
sample of at most a stated number of rows, recorded as ``sample_rows``; ``TableScan.sample`` returns every row when
the split holds no more, so demo-sized windows are fitted and judged exactly as before. What needs every row
(metrics, decision thresholds, slices) scores the split batch by batch and keeps only arrays: the labels, each
model's probabilities and the few columns the slices group by (a few bytes a row, never the features).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_assets.data.splits import SPLIT, SPLITS, WINDOW_END
from ml_assets.data.window import TrainingWindow
from ml_assets.dataset import DatasetSpec, with_columns
from ml_assets.model.evaluation import ProbabilityModel, predictions
from ml_assets.partitions import LANDING_DAY
from ml_assets.settings import sample_rows
from resources.parquet_tables import BATCH_ROWS, TableScan

FIT_SAMPLE_ROWS = sample_rows(
    500_000
)  # rows a model fits on at most (baseline, trees, reference): ~0.5 GB in memory at most
JUDGE_SAMPLE_ROWS = sample_rows(100_000)  # rows of whole features for latency, stability, importance and serving checks
SAMPLE_SEED = 0


def labeled_sample(
    window: TrainingWindow, split: str, rows: int, seed: int = SAMPLE_SEED, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Up to ``rows`` labeled rows of one split, uniform and seeded, in the files' order (every labeled row of the
    split when it holds no more)."""
    return scan_sample(window.labeled(split), rows, seed, columns)


def scan_sample(
    scan: TableScan, rows: int, seed: int = SAMPLE_SEED, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Up to ``rows`` rows of ``scan``, uniform and seeded, in the files' order, without the landing day."""
    return scan.sample(rows, seed, columns).drop(columns=[LANDING_DAY], errors="ignore")


def by_id(spec: DatasetSpec, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by id: storage promises no order, and fits and versions must be reproducible."""
    return rows.sort_values(spec.id.name, kind="stable").reset_index(drop=True)


def sampled_frame(window: TrainingWindow, rows_per_split: int, seed: int = SAMPLE_SEED) -> pd.DataFrame:
    """The window as the old training_set frame (``TrainingWindow.frame()``: its split and window end as columns),
    with at most ``rows_per_split`` rows of each split, labeled or not (all of them on a small window)."""
    parts = []
    for name in SPLITS:
        part = window.split(name).sample(rows_per_split, seed).drop(columns=[LANDING_DAY])
        part[SPLIT] = pd.Series(name, index=part.index, dtype="string[pyarrow]")
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame[WINDOW_END] = pd.Timestamp(window.window_end)
    return frame


@dataclass(frozen=True)
class ScoredSplit:
    """A split scored batch by batch: its labels, each model's probabilities, and the kept columns (as read, for
    slices and fairness groups), row for row in the files' order."""

    y: np.ndarray
    probabilities: dict[str, np.ndarray]
    kept: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.y)

    def frame(self, label: str) -> pd.DataFrame:
        """The kept columns with the label: what ``score_model`` reads besides the probabilities."""
        return with_columns(self.kept, {label: self.y})

    def where(self, mask: np.ndarray) -> ScoredSplit:
        """The rows where ``mask`` holds, already scored: no second read or scoring of them."""
        return ScoredSplit(
            self.y[mask],
            {name: p[mask] for name, p in self.probabilities.items()},
            self.kept[mask].reset_index(drop=True),
        )


def score_split(
    spec: DatasetSpec,
    scan: TableScan,
    models: Mapping[str, ProbabilityModel],
    keep: Sequence[str] = (),
    batch_rows: int = BATCH_ROWS,
) -> ScoredSplit:
    """Every labeled row of ``scan`` scored by each of ``models``, ``batch_rows`` at a time: memory holds one batch
    of features plus 8 bytes a row per model and the ``keep`` columns."""
    label = spec.label_column
    keep = [c for c in dict.fromkeys(keep) if c != label]
    features = [c.name for c in spec.feature_columns]
    columns = list(dict.fromkeys([*features, *keep, label]))
    ys: list[np.ndarray] = []
    ps: dict[str, list[np.ndarray]] = {name: [] for name in models}
    kept: list[pd.DataFrame] = []
    for batch in scan.where(not_null=(label,)).batches(columns, batch_rows):
        ys.append(batch[label].to_numpy(dtype=np.int64))
        for name, model in models.items():
            ps[name].append(predictions(model, batch))
        kept.append(batch[keep].reset_index(drop=True))
    empty = np.empty(0, dtype=np.float64)
    return ScoredSplit(
        y=np.concatenate(ys) if ys else np.empty(0, dtype=np.int64),
        probabilities={name: np.concatenate(p) if p else empty for name, p in ps.items()},
        kept=pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=keep),
    )


def lowest_ids(spec: DatasetSpec, scan: TableScan, rows: int, batch_rows: int = BATCH_ROWS) -> pd.DataFrame:
    """The ``rows`` rows of ``scan`` with the lowest ids, in id order: a fixed sample, kept batch by batch (memory
    holds ``rows`` plus one batch)."""
    found = pd.DataFrame({c: pd.Series(dtype=d) for c, d in scan.dtypes.items()})
    for batch in scan.batches(batch_rows=batch_rows):
        found = by_id(spec, pd.concat([found, batch], ignore_index=True)).head(rows)
    return found.drop(columns=[LANDING_DAY], errors="ignore")
