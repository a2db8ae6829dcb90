"""Fitted input transform shared by training and serving: fit on the train split only, pack it with the model.

Numeric columns: optional log1p for heavy-tailed non-negative columns, missing values filled with the train
mean, standardised with train statistics and clipped, plus a missing-value indicator per column; each also keeps
the train quantiles of its standardised values (``bins``), the edges the networks' piecewise-linear encoding
uses (Gorishniy et al. 2022), and a quantile-normal map of them (knots and normal scores) the networks can
scale with instead: robust to spikes and heavy tails, as the tabular deep learning papers preprocess. Categorical
columns: a vocabulary of the values seen in train; index 0 is "missing", 1 is "unknown" (a value never seen in
train, e.g. a new category in production), 2.. the vocabulary. Everything is plain JSON so the serving side
applies exactly the transform the model was trained with, without pickles.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.dataset import DatasetSpec

MISSING_INDEX = 0
UNKNOWN_INDEX = 1
CLIP = 5.0
SKEW_FOR_LOG = 2.0
N_QUANTILES = 128  # knots of the quantile-normal scaling per numeric column
N_BINS = 16  # quantile bins per numeric column for piecewise-linear encodings (fewer where values repeat)
VERSION = 2  # 2 added ``bins`` and the quantile map; version 1 files still load (networks without either)
DICT_LOOKUP_MAX_ROWS = 4096  # below this a dict lookup per value beats building a hash table per call
BIN_LEVELS = np.linspace(0.0, 1.0, N_BINS + 1)
QUANTILE_LEVELS = np.linspace(0.0, 1.0, N_QUANTILES)
_FAST_KEY = "\0fast"  # cache key next to the per-column vocabularies; never a column name


@dataclass(frozen=True)
class _FastTables:
    mean: np.ndarray  # (k, 1) float64, one row per numeric column
    std: np.ndarray
    fill: np.ndarray
    log_rows: np.ndarray  # indices of the log1p columns
    vocab_index: list[pd.Index]  # per categorical column, its vocabulary as an Index (positions = codes - 2)


@dataclass(frozen=True)
class NumericStats:
    name: str
    log1p: bool
    mean: float
    std: float
    fill: float  # value (after log1p) a missing entry takes: the train mean
    bins: list[float] = field(default_factory=list)  # quantile edges of the standardised train values, ascending
    # Quantile scaling: distinct standardised train values (ascending) and the normal score each maps to.
    quantile_points: list[float] = field(default_factory=list)
    quantile_scores: list[float] = field(default_factory=list)


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
    version: int = VERSION
    _index: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

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
        """Rows with the feature columns (extra columns ignored, nulls allowed) -> model inputs.

        Numpy only on the common dtypes (numeric, nullable numeric, string, object of strings): no per-column
        pandas ``map``/``astype`` and no frame copies, so one row costs tens of microseconds, not milliseconds.
        Other dtypes go through ``pd.to_numeric`` / ``astype("string")`` with the same result.
        """
        _require_columns(frame, self.feature_names, "input frame")
        n = len(frame)
        fast = self._fast()
        num = np.empty((n, self.n_numeric_inputs), dtype=np.float32)
        if self.numeric:
            values = np.empty((len(self.numeric), n), dtype=np.float64)  # one contiguous row per column
            for j, stats in enumerate(self.numeric):
                values[j] = _float_values(frame[stats.name])
            missing = np.isnan(values)
            if len(fast.log_rows):
                values[fast.log_rows] = np.log1p(np.clip(values[fast.log_rows], 0.0, None))
            values = np.where(missing, fast.fill, values)
            num[:, 0::2] = np.clip((values - fast.mean) / fast.std, -CLIP, CLIP).T
            num[:, 1::2] = missing.T
        cat = np.empty((n, len(self.categorical)), dtype=np.int64)
        for j, vocab in enumerate(self.categorical):
            cat[:, j] = _category_codes(frame[vocab.name], self._lookup(vocab), fast.vocab_index[j])
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

    def _fast(self) -> _FastTables:
        """Per-column constants as arrays, built once per Preprocessing (it is immutable)."""
        tables = self._index.get(_FAST_KEY)
        if tables is None:
            tables = _FastTables(
                mean=np.array([[s.mean] for s in self.numeric], dtype=np.float64),
                std=np.array([[s.std] for s in self.numeric], dtype=np.float64),
                fill=np.array([[s.fill] for s in self.numeric], dtype=np.float64),
                log_rows=np.array([j for j, s in enumerate(self.numeric) if s.log1p], dtype=np.intp),
                vocab_index=[pd.Index(v.values, dtype=object) for v in self.categorical],
            )
            self._index[_FAST_KEY] = tables  # type: ignore[assignment]
        return tables  # type: ignore[return-value]

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
        if data.get("version") not in (1, VERSION):
            raise ValueError(f"unsupported preprocessing version {data.get('version')!r} (this code reads 1, 2)")
        return cls(
            version=data["version"],
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
    std = std if std > 1e-12 else 1.0
    standardized = np.clip((values - mean) / std, -CLIP, CLIP)
    return _numeric_stats(
        name,
        log1p,
        mean,
        std,
        np.quantile(standardized, BIN_LEVELS),
        np.quantile(np.unique(standardized), BIN_LEVELS),
        np.quantile(standardized, QUANTILE_LEVELS),
    )


def _numeric_stats(
    name: str,
    log1p: bool,
    mean: float,
    std: float,
    row_quantiles: np.ndarray,
    distinct_quantiles: np.ndarray,
    knots: np.ndarray,
) -> NumericStats:
    """A numeric column's statistics from its moments and the quantiles of its standardised values."""
    # Quantiles of the rows and of the distinct values: a column that is mostly one value (capital gain: 0) still
    # gets bins where its other values lie, which is where it tells the rows apart.
    edges = np.unique(np.concatenate([row_quantiles, distinct_quantiles]))
    bins = [float(e) for e in edges] if len(edges) > 1 else []
    points, scores = _quantile_map(knots)
    return NumericStats(
        name=name,
        log1p=log1p,
        mean=mean,
        std=std,
        fill=mean,
        bins=bins,
        quantile_points=points,
        quantile_scores=scores,
    )


def _quantile_map(knots: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots of the quantile-normal scaling (the train quantiles at QUANTILE_LEVELS): a repeated value (a spike,
    such as a column that is mostly 0) maps to the normal score of the middle of its mass, so the map stays a
    function; networks interpolate linearly between knots (``network.QuantileScaling``)."""
    from scipy.stats import norm

    levels = QUANTILE_LEVELS
    points, at = np.unique(knots, return_inverse=True)
    middle = np.array([levels[at == i].mean() for i in range(len(points))])
    scores = norm.ppf(np.clip(middle, 1e-3, 1 - 1e-3))
    return [float(p) for p in points], [float(z) for z in scores]


def _float_values(column: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for missing, as ``pd.to_numeric(errors="coerce")`` would give it."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        return column.to_numpy(dtype=np.float64)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iuf":  # Int64, Float64, ...
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def _category_codes(column: pd.Series, index: dict[str, int], vocab: pd.Index) -> np.ndarray:
    """Codes of one categorical column: MISSING_INDEX for nulls, UNKNOWN_INDEX for unseen values, else 2.."""
    if isinstance(column.dtype, pd.StringDtype):
        values = column.to_numpy(dtype=object, na_value=None)
    elif column.dtype == object:
        values = column.to_numpy()
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            values = column.astype("string").to_numpy(dtype=object, na_value=None)  # e.g. numbers: str() them
    else:
        values = column.astype("string").to_numpy(dtype=object, na_value=None)
    missing = pd.isna(values)
    if len(values) <= DICT_LOOKUP_MAX_ROWS:
        codes = np.fromiter((index.get(v, UNKNOWN_INDEX) for v in values), dtype=np.int64, count=len(values))
    else:
        pos = vocab.get_indexer(values)
        codes = np.where(pos >= 0, pos + 2, UNKNOWN_INDEX).astype(np.int64)
    codes[missing] = MISSING_INDEX
    return codes


def _require_columns(frame: pd.DataFrame, names: list[str], what: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise KeyError(f"{what} lacks feature columns {missing} (has {list(frame.columns)})")
