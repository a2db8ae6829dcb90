"""The gradient-boosted trees reference: how good a simple strong model is on the same splits.

Every evaluation also fits LightGBM on the window's train rows, early-stopped on its validation rows and otherwise
at its defaults (no tuning), and scores it on the same test rows as the candidate. It is a yardstick, never served:
on tabular data boosted trees are the strongest simple reference, so the gap between it and the candidate tells a
user honestly how far the network is from what a data scientist would get in a few lines.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml_assets.data.splits import SPLIT
from ml_assets.dataset import DatasetSpec
from ml_assets.model.decision import choose_threshold
from ml_assets.model.evaluation import LOWER_IS_BETTER, ModelScores, score_model

REFERENCE_KIND = "gbdt_reference"
MAX_ROUNDS = 2000  # boosting rounds at most; early stopping on validation ends far sooner on the demo's windows
EARLY_STOPPING_ROUNDS = 50
LEARNING_RATE = 0.05  # LightGBM's default 0.1 with early stopping, halved: steadier on a few thousand rows


@dataclass
class ReferenceModel:
    """LightGBM on the spec's features: numeric columns as floats (missing stays missing), categories as pandas
    categoricals with the train rows' vocabulary (an unseen value scores as missing)."""

    booster: object
    numeric: list[str]
    categorical: dict[str, list[str]]
    best_iteration: int
    fit_seconds: float
    threshold: float = 0.5
    kind: str = REFERENCE_KIND
    importance: dict[str, float] = field(default_factory=dict)

    def design(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame LightGBM sees: one column per feature, categories fixed to the train vocabulary."""
        out = {name: pd.to_numeric(frame[name], errors="coerce").astype("float64") for name in self.numeric}
        for name, vocab in self.categorical.items():
            out[name] = pd.Categorical(frame[name].astype("string").astype(object), categories=vocab)
        return pd.DataFrame(out, index=frame.index)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self.design(frame), num_iteration=self.best_iteration), dtype=float)


def fit_reference(spec: DatasetSpec, train: pd.DataFrame, validation: pd.DataFrame, seed: int = 0) -> ReferenceModel:
    """Fit the reference on labeled train rows, early-stopped on labeled validation rows (log loss)."""
    import lightgbm as lgb

    if train.empty or validation.empty:
        raise ValueError(f"the reference needs labeled train and validation rows ({len(train)} / {len(validation)})")
    numeric = list(spec.numeric_features)
    categorical = {
        name: sorted(str(v) for v in train[name].dropna().astype("string").unique())
        for name in spec.categorical_features
    }
    model = ReferenceModel(booster=None, numeric=numeric, categorical=categorical, best_iteration=0, fit_seconds=0.0)
    label = spec.label_column
    started = time.perf_counter()
    params = {
        "objective": "binary",
        "learning_rate": LEARNING_RATE,
        "seed": seed,
        "deterministic": True,
        "num_threads": 2,
        "verbose": -1,
    }
    train_set = lgb.Dataset(model.design(train), label=train[label].to_numpy(dtype=np.int64))
    valid_set = lgb.Dataset(model.design(validation), label=validation[label].to_numpy(dtype=np.int64))
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    model.booster = booster
    model.best_iteration = int(booster.best_iteration or booster.current_iteration())
    model.fit_seconds = time.perf_counter() - started
    gains = booster.feature_importance(importance_type="gain", iteration=model.best_iteration)
    total = float(gains.sum()) or 1.0
    model.importance = {n: float(g) / total for n, g in zip(booster.feature_name(), gains, strict=True)}
    return model


def reference_scores(
    spec: DatasetSpec, window: pd.DataFrame, test: pd.DataFrame, min_group_size: int
) -> tuple[ReferenceModel, ModelScores]:
    """The reference fitted on the window's labeled train rows, its decision threshold chosen on the labeled
    validation rows by the spec's policy (as the served models' are), and scored on ``test`` like them."""
    split = window[SPLIT].astype("string")
    train, validation = (spec.labeled(window[split == name]) for name in ("train", "validation"))
    model = fit_reference(spec, train, validation)
    y_val = validation[spec.label_column].to_numpy(dtype=np.int64)
    model.threshold = choose_threshold(spec.decision, y_val, model.predict_proba(validation)).threshold
    return model, score_model(model, "gbdt reference", spec, test, min_group_size=min_group_size, operational=False)


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
