"""Gradient-boosted trees on the spec's features (LightGBM): the inputs they see, fitting, and the booster as text.

Shared by the evaluation's reference (``ml_assets.model.reference``, never served) and the ``gbdt`` candidate family
(``ml_assets.model.bundle``: a TabularModel of kind ``gbdt``, served by the same Bento path as a network). Light on
imports on purpose: the Bento packs this module, and LightGBM is imported only where a booster is built or used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.dataset import DatasetSpec

MAX_ROUNDS = 2000  # boosting rounds at most; early stopping on validation ends far sooner on the demo's windows
EARLY_STOPPING_ROUNDS = 50
LEARNING_RATE = 0.05  # LightGBM's default 0.1 with early stopping, halved: steadier on a few thousand rows


@dataclass(frozen=True)
class TreeInputs:
    """What the trees see: numeric columns as floats (missing stays missing), categories as pandas categoricals with
    the train rows' vocabulary (a value never seen in train scores as missing)."""

    numeric: list[str]
    categorical: dict[str, list[str]]

    @classmethod
    def from_train(cls, spec: DatasetSpec, train: pd.DataFrame) -> TreeInputs:
        vocab = {
            name: sorted(str(v) for v in train[name].dropna().astype("string").unique())
            for name in spec.categorical_features
        }
        return cls(numeric=list(spec.numeric_features), categorical=vocab)

    def design(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = {name: pd.to_numeric(frame[name], errors="coerce").astype("float64") for name in self.numeric}
        for name, vocab in self.categorical.items():
            out[name] = pd.Categorical(frame[name].astype("string").astype(object), categories=vocab)
        return pd.DataFrame(out, index=frame.index)


@dataclass
class Trees:
    """A fitted booster with its inputs; ``text`` is LightGBM's own model format (no pickle)."""

    inputs: TreeInputs
    text: str
    best_iteration: int
    params: dict[str, Any] = field(default_factory=dict)
    _booster: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def booster(self) -> Any:
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.text)
        return self._booster

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        design = self.inputs.design(frame)
        return np.asarray(self.booster.predict(design, num_iteration=self.best_iteration), dtype=np.float64)

    def importance(self) -> dict[str, float]:
        """Each feature's share of the total split gain."""
        gains = self.booster.feature_importance(importance_type="gain", iteration=self.best_iteration)
        total = float(gains.sum()) or 1.0
        return {n: float(g) / total for n, g in zip(self.booster.feature_name(), gains, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": self.inputs.numeric,
            "categorical": self.inputs.categorical,
            "best_iteration": self.best_iteration,
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], text: str) -> Trees:
        inputs = TreeInputs(numeric=list(data["numeric"]), categorical=dict(data["categorical"]))
        return cls(inputs=inputs, text=text, best_iteration=int(data["best_iteration"]), params=data.get("params", {}))


def fit_trees(spec: DatasetSpec, train: pd.DataFrame, validation: pd.DataFrame, seed: int = 0) -> Trees:
    """LightGBM on labeled train rows, early-stopped on labeled validation rows (log loss), defaults otherwise."""
    import lightgbm as lgb

    if train.empty or validation.empty:
        raise ValueError(f"trees need labeled train and validation rows ({len(train)} / {len(validation)})")
    inputs = TreeInputs.from_train(spec, train)
    label = spec.label_column
    params = {
        "objective": "binary",
        "learning_rate": LEARNING_RATE,
        "seed": seed,
        "deterministic": True,
        "num_threads": 2,
        "verbose": -1,
    }
    booster = lgb.train(
        params,
        lgb.Dataset(inputs.design(train), label=train[label].to_numpy(dtype=np.int64)),
        num_boost_round=MAX_ROUNDS,
        valid_sets=[lgb.Dataset(inputs.design(validation), label=validation[label].to_numpy(dtype=np.int64))],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best = int(booster.best_iteration or booster.current_iteration())
    trees = Trees(inputs=inputs, text=booster.model_to_string(num_iteration=best), best_iteration=best, params=params)
    trees._booster = booster
    return trees
