"""The gradient-boosted trees reference: how good a simple strong model is on the same splits.

Every evaluation also fits LightGBM on the window's train rows, early-stopped on its validation rows (bounded,
seeded samples of both: every row of a demo-sized window) and otherwise at its defaults (no tuning), and scores it on the same test rows as the candidate. It is a yardstick, never served:
on tabular data boosted trees are the strongest simple reference, so the gap between it and the candidate tells a
user honestly how far the network is from what a data scientist would get in a few lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_assets.dataset import DatasetSpec
from ml_assets.model.decision import choose_threshold
from ml_assets.model.evaluation import LOWER_IS_BETTER, ModelScores
from ml_assets.model.trees import MAX_ROUNDS, Trees, fit_trees

__all__ = ["MAX_ROUNDS", "REFERENCE_KIND", "ReferenceModel", "fit_reference", "fitted_reference", "metric_gaps"]

REFERENCE_KIND = "gbdt_reference"


@dataclass
class ReferenceModel:
    """The fitted trees (``ml_assets.model.trees``) as evaluation scores them."""

    trees: Trees
    threshold: float = 0.5
    kind: str = REFERENCE_KIND

    @property
    def best_iteration(self) -> int:
        return self.trees.best_iteration

    @property
    def importance(self) -> dict[str, float]:
        return self.trees.importance()

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.trees.predict_proba(frame)


def fit_reference(spec: DatasetSpec, train: pd.DataFrame, validation: pd.DataFrame, seed: int = 0) -> ReferenceModel:
    """Fit the reference on labeled train rows, early-stopped on labeled validation rows (log loss); a ValueError
    when either holds no row."""
    return ReferenceModel(trees=fit_trees(spec, train, validation, seed))


def fitted_reference(spec: DatasetSpec, train: pd.DataFrame, validation: pd.DataFrame) -> ReferenceModel:
    """The reference fitted on labeled train rows, its decision threshold chosen on the labeled validation rows by
    the spec's policy (as the served models' are). The evaluation passes bounded samples of the window's splits
    (``ml_assets.model.window_reads``): every row of a window no larger."""
    model = fit_reference(spec, train, validation)
    y_val = validation[spec.label_column].to_numpy(dtype=np.int64)
    model.threshold = choose_threshold(spec.decision, y_val, model.predict_proba(validation)).threshold
    return model


def gap_table(candidate: ModelScores, reference: ModelScores) -> str:
    """Candidate and reference side by side, one metric a row, with the candidate's gap (positive: behind)."""
    from ml_assets import markdown

    gaps = metric_gaps(candidate, reference)
    rows = [
        {"metric": name, "candidate": candidate.metrics[name], "reference": reference.metrics[name], "gap": gap}
        for name, gap in gaps.items()
    ]
    return markdown.table(rows, ["metric", "candidate", "reference", "gap"], right=["candidate", "reference", "gap"])


def metric_gaps(candidate: ModelScores, reference: ModelScores) -> dict[str, float]:
    """Per metric, how far the candidate is behind the reference: positive means the candidate is worse, in the
    metric's own units, whichever direction is better for it."""
    gaps = {}
    for name, ref_value in reference.metrics.items():
        if name in ("rows", "positive_rate") or name not in candidate.metrics:
            continue
        diff = ref_value - candidate.metrics[name]
        gaps[name] = -diff if name in LOWER_IS_BETTER else diff
    return gaps


def slice_gaps(candidate: ModelScores, reference: ModelScores, metric: str) -> dict[str, float]:
    """Per slice group judged in both, the candidate's gap to the reference on ``metric`` (positive: worse)."""
    theirs = {s.name: s.metrics[metric] for s in reference.slices}
    out = {}
    for s in candidate.slices:
        ref_value, value = theirs.get(s.name, math.nan), s.metrics[metric]
        if math.isnan(ref_value) or math.isnan(value):
            continue
        out[s.name] = (value - ref_value) if metric in LOWER_IS_BETTER else (ref_value - value)
    return out
