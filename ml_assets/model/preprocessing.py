"""Fitted input transform shared by training and serving: fit on the train split only, pack it with the model.

Numeric columns: optional log1p for heavy-tailed non-negative columns, missing values filled with the train
mean, standardised with train statistics and clipped, plus a missing-value indicator per column. Categorical
columns: a vocabulary of the values seen in train; index 0 is "missing", 1 is "unknown" (a value never seen in
train, e.g. a new category in production), 2.. the vocabulary. Everything is plain JSON so the serving side
applies exactly the transform the model was trained with, without pickles.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.dataset import DatasetSpec

MISSING_INDEX = 0
UNKNOWN_INDEX = 1
CLIP = 5.0
SKEW_FOR_LOG = 2.0


@dataclass(frozen=True)
class NumericStats:
    name: str
    log1p: bool
    mean: float
    std: float
    fill: float  # value (after log1p) a missing entry takes: the train mean


@dataclass(frozen=True)
class Vocabulary:
    name: str
    values: list[str]

    @property
    def cardinality(self) -> int:
        """Embedding rows needed: missing + unknown + the vocabulary."""
        return len(self.values) + 2


@dataclass(frozen=True)
class Preprocessing:
    """The fitted transform: raw typed rows -> (numeric float32 matrix, categorical int64 codes)."""

    spec_name: str
    numeric: list[NumericStats]
    categorical: list[Vocabulary]
    version: int = 1
    _index: dict[str, dict[str, int]] = field(default_factory=dict, init=False, compare=False, repr=False)

    # ---- fitting -------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, spec: DatasetSpec, train: pd.DataFrame) -> Preprocessing:
        """Fit on the train split only, so validation and test stay unseen."""
        if len(train) == 0:
            raise ValueError(f"cannot fit preprocessing for {spec.name!r}: the train split has no rows")
        _require_columns(train, [*spec.numeric_features, *spec.categorical_features], "train split")
        numeric = [_fit_numeric(name, train[name]) for name in spec.numeric_features]
        categorical = [
            Vocabulary(name, sorted(train[name].dropna().astype(str).unique().tolist()))
            for name in spec.categorical_features
        ]
        return cls(spec_name=spec.name, numeric=numeric, categorical=categorical)

    # ---- applying -------------------------------------------------------------------------------------------
    @property
    def numeric_names(self) -> list[str]:
        return [n.name for n in self.numeric]

    @property
    def categorical_names(self) -> list[str]:
        return [c.name for c in self.categorical]

    @property
    def feature_names(self) -> list[str]:
        return [*self.numeric_names, *self.categorical_names]

    @property
    def n_numeric_inputs(self) -> int:
        """Width of the numeric matrix: one standardised value and one missing flag per numeric column."""
        return 2 * len(self.numeric)

    @property
    def cardinalities(self) -> list[int]:
        return [v.cardinality for v in self.categorical]

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Rows with the feature columns (extra columns ignored, nulls allowed) -> model inputs."""
        _require_columns(frame, self.feature_names, "input frame")
        n = len(frame)
        num = np.empty((n, self.n_numeric_inputs), dtype=np.float32)
        for j, stats in enumerate(self.numeric):
            values = pd.to_numeric(frame[stats.name], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
            missing = np.isnan(values)
            if stats.log1p:
                values = np.log1p(np.clip(values, 0.0, None))
            values = np.where(missing, stats.fill, values)
            num[:, 2 * j] = np.clip((values - stats.mean) / stats.std, -CLIP, CLIP)
            num[:, 2 * j + 1] = missing
        cat = np.empty((n, len(self.categorical)), dtype=np.int64)
        for j, vocab in enumerate(self.categorical):
            index = self._lookup(vocab)
            col = frame[vocab.name].astype("string")
            codes = col.map(index).astype("float64").fillna(UNKNOWN_INDEX).to_numpy()
            codes[col.isna().to_numpy()] = MISSING_INDEX
            cat[:, j] = codes.astype(np.int64)
        return num, cat

    def one_hot(self, frame: pd.DataFrame) -> np.ndarray:
        """Dense design matrix for linear models: numeric inputs then one indicator per category index."""
        num, cat = self.transform(frame)
        blocks = [num]
        for j, card in enumerate(self.cardinalities):
            block = np.zeros((len(frame), card), dtype=np.float32)
            block[np.arange(len(frame)), cat[:, j]] = 1.0
            blocks.append(block)
        return np.concatenate(blocks, axis=1)

    def _lookup(self, vocab: Vocabulary) -> dict[str, int]:
        if vocab.name not in self._index:
            self._index[vocab.name] = {v: i + 2 for i, v in enumerate(vocab.values)}
        return self._index[vocab.name]

    # ---- serialisation --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "spec_name": self.spec_name,
            "numeric": [asdict(n) for n in self.numeric],
            "categorical": [asdict(c) for c in self.categorical],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        if data.get("version") != 1:
            raise ValueError(f"unsupported preprocessing version {data.get('version')!r} (this code reads 1)")
        return cls(
            spec_name=data["spec_name"],
            numeric=[NumericStats(**n) for n in data["numeric"]],
            categorical=[Vocabulary(**c) for c in data["categorical"]],
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Preprocessing:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _fit_numeric(name: str, column: pd.Series) -> NumericStats:
    values = pd.to_numeric(column, errors="coerce").astype("float64").dropna().to_numpy()
    if len(values) == 0:
        return NumericStats(name=name, log1p=False, mean=0.0, std=1.0, fill=0.0)
    skew = float(pd.Series(values).skew()) if len(values) > 2 else 0.0
    log1p = bool(values.min() >= 0 and np.isfinite(skew) and skew > SKEW_FOR_LOG)
    if log1p:
        values = np.log1p(values)
    mean = float(values.mean())
    std = float(values.std())
    return NumericStats(name=name, log1p=log1p, mean=mean, std=std if std > 1e-12 else 1.0, fill=mean)


def _require_columns(frame: pd.DataFrame, names: list[str], what: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise KeyError(f"{what} lacks feature columns {missing} (has {list(frame.columns)})")
