"""Helpers for the serving tests: a real training set from UCI Adult, a real fitted model in a real store."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.data.features import featurize
from ml_assets.data.splits import split_by_time
from ml_assets.dataset import DatasetSpec, demo_data_path

WINDOW_END = date(2026, 1, 10)


def adult_training_set(spec: DatasetSpec, rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """``rows`` real Adult records spread over the spec's window, typed, featurized and split by time."""
    df = pd.read_parquet(demo_data_path(spec)).sample(rows, random_state=seed).reset_index(drop=True)
    days = spec.training.window_days
    start = pd.Timestamp(WINDOW_END - timedelta(days=days - 1))
    offsets = np.arange(rows) % days
    df[spec.time.name] = start + pd.to_timedelta(offsets, unit="D") + pd.to_timedelta(np.arange(rows), unit="s")
    typed, _ = spec.coerce(df)
    return split_by_time(spec, featurize(spec, typed), WINDOW_END)


def fit_logistic(spec: DatasetSpec, training_set: pd.DataFrame, c: float = 1.0):
    """The logistic-regression baseline as a TabularModel (packed preprocessing + coefficients)."""
    from sklearn.linear_model import LogisticRegression

    from ml_assets.model.bundle import LogisticWeights, TabularModel
    from ml_assets.model.preprocessing import Preprocessing

    train = training_set[training_set["split"] == "train"]
    pre = Preprocessing.fit(spec, train)
    clf = LogisticRegression(C=c, max_iter=500).fit(pre.one_hot(train), train[spec.label_column].to_numpy())
    weights = LogisticWeights(coef=clf.coef_[0].astype(float).tolist(), intercept=float(clf.intercept_[0]))
    return TabularModel(kind="logistic", spec_name=spec.name, preprocessing=pre, threshold=0.5, logistic=weights)


def save_model(model, bentoml_home: Path, name: str = "adult-baseline") -> str:
    """Save into the BentoML store at ``bentoml_home`` with the project's ModelStore; returns the tag."""
    os.environ["BENTOML_HOME"] = str(bentoml_home)
    from resources.model_store import ModelStore

    return ModelStore(home=str(bentoml_home)).save(model, name, "champion", {"source": "serving tests"})


def sample_records(spec: DatasetSpec, training_set: pd.DataFrame, n: int = 32) -> list[dict]:
    """JSON-ready feature dicts of ``n`` test rows (nulls as None), as a client would send them."""
    test = training_set[training_set["split"] == "test"].head(n)
    names = [c.name for c in spec.feature_columns]
    out = []
    for row in test[names].astype(object).to_dict("records"):
        out.append(
            {k: (None if pd.isna(v) else (int(v) if isinstance(v, (int, np.integer)) else v)) for k, v in row.items()}
        )
    return out
