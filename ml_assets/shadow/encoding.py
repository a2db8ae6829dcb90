"""Rows of the spec as a float matrix and back: what the generator learns, and the space privacy distances use.

Categories become one-hot blocks (a missing value is a category of its own on a nullable column); numbers are
quantile-normalised (rank -> standard normal), so skewed, spiky columns (capital gain: 92% zeros) are as easy to
learn as bell curves, and decoding through the same quantiles puts values back on the real support (integers
rounded, clipped to the spec's range). Categories seen fewer than ``rare_k`` times are never learned (mapped to the
column's most common category): the generator cannot reproduce a rare person's rare value. The time column
becomes the condition: a row's position in the training span, 0 at its first moment and 1 at its last.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from ml_assets.dataset import PANDAS_DTYPES, Column, DatasetSpec, Role

QUANTILES = 201  # points of each numeric column's quantile function (the 0.25%..99.75% range, ends excluded)
EDGE = 0.0025  # the quantile function is stored from EDGE to 1 - EDGE: no real extreme value is kept verbatim
Z_CLIP = 4.0


@dataclass(frozen=True)
class NumericBlock:
    """One numeric column: its quantile function, whether it is integer, its bounds, and a null indicator."""

    name: str
    quantiles: list[float]
    integer: bool
    low: float | None
    high: float | None
    nullable: bool


@dataclass(frozen=True)
class CategoricalBlock:
    """One category column: the values the generator may emit (None: missing), the first the most common."""

    name: str
    values: list[str | None]
    rare: list[str] = field(default_factory=list)  # seen fewer than rare_k times: never generated


@dataclass(frozen=True)
class TabularEncoding:
    """How a spec's generated columns map to a float matrix; fitted on real rows, serialisable as JSON."""

    numeric: list[NumericBlock]
    categorical: list[CategoricalBlock]
    time_start: str  # ISO timestamps of the training span the condition runs over
    time_end: str

    # ---- fitting ---------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, spec: DatasetSpec, rows: pd.DataFrame, rare_k: int = 5) -> TabularEncoding:
        numeric, categorical = [], []
        for col in generated_columns(spec):
            if col.dtype in ("int64", "float64"):
                numeric.append(_fit_numeric(col, rows[col.name]))
            else:
                categorical.append(_fit_categorical(col, rows[col.name], rare_k))
        times = pd.to_datetime(rows[spec.time.name])
        return cls(numeric, categorical, times.min().isoformat(), times.max().isoformat())

    @property
    def width(self) -> int:
        return sum(1 + b.nullable for b in self.numeric) + sum(len(b.values) for b in self.categorical)

    def layout(self) -> list[tuple[str, int]]:
        """The matrix's blocks in order: ("numeric", 1), ("null", 1) or ("categorical", k)."""
        out: list[tuple[str, int]] = []
        for b in self.numeric:
            out.append(("numeric", 1))
            if b.nullable:
                out.append(("null", 1))
        out += [("categorical", len(b.values)) for b in self.categorical]
        return out

    # ---- rows <-> matrix ------------------------------------------------------------------------------
    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        """Typed rows (as raw_data holds them) as the float matrix of ``layout``."""
        parts: list[np.ndarray] = []
        for b in self.numeric:
            values = pd.to_numeric(rows[b.name], errors="coerce").astype("float64").to_numpy()
            missing = np.isnan(values)
            parts.append(np.where(missing, 0.0, _to_normal(values, b.quantiles))[:, None])
            if b.nullable:
                parts.append(missing.astype("float64")[:, None])
        for b in self.categorical:
            parts.append(_one_hot(rows[b.name], b))
        return np.hstack(parts) if parts else np.zeros((len(rows), 0))

    def condition(self, times: pd.Series) -> np.ndarray:
        """Each row's position in the training span (0..1; beyond it for later rows)."""
        start, end = pd.Timestamp(self.time_start), pd.Timestamp(self.time_end)
        span = max((end - start).total_seconds(), 1.0)
        return ((pd.to_datetime(times) - start).dt.total_seconds() / span).to_numpy(dtype="float64")

    def decode(self, matrix: np.ndarray, rng: np.random.Generator, sample: bool = True) -> pd.DataFrame:
        """A generated matrix as typed columns: numbers through the quantile function, categories drawn from
        their softmax (or the most likely when ``sample`` is off), nulls from their indicator."""
        out: dict[str, pd.Series] = {}
        i = 0
        for b in self.numeric:
            values = _from_normal(matrix[:, i], b.quantiles)
            i += 1
            if b.integer:
                values = np.round(values)
            values = np.clip(values, b.low if b.low is not None else -np.inf, b.high if b.high is not None else np.inf)
            if b.nullable:
                p_null = 1.0 / (1.0 + np.exp(-matrix[:, i]))
                values = np.where(rng.random(len(values)) < p_null if sample else p_null > 0.5, np.nan, values)
                i += 1
            series = pd.Series(values)
            out[b.name] = series.astype("Int64") if b.integer else series.astype("float64")
        for b in self.categorical:
            logits = np.ascontiguousarray(matrix[:, i : i + len(b.values)])
            i += len(b.values)
            picks = _draw(logits, rng) if sample else logits.argmax(axis=1)
            out[b.name] = pd.Series(np.asarray(b.values, dtype=object)[picks]).astype(PANDAS_DTYPES["string"])
        return pd.DataFrame(out)

    # ---- storage ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularEncoding:
        return cls(
            numeric=[NumericBlock(**b) for b in data["numeric"]],
            categorical=[CategoricalBlock(**b) for b in data["categorical"]],
            time_start=data["time_start"],
            time_end=data["time_end"],
        )


def generated_columns(spec: DatasetSpec) -> list[Column]:
    """What the generator learns: every column but the id (fresh ids are numbered) and the time (the condition)."""
    return [c for c in spec.columns if c.role not in (Role.ID, Role.TIME)]


def _fit_numeric(col: Column, values: pd.Series) -> NumericBlock:
    x = pd.to_numeric(values, errors="coerce").astype("float64").dropna().to_numpy()
    if len(x) == 0:
        x = np.zeros(1)
    probs = np.linspace(EDGE, 1 - EDGE, QUANTILES)
    quantiles = np.quantile(x, probs, method="linear")
    low = col.range.min if col.range else None
    high = col.range.max if col.range else None
    return NumericBlock(col.name, quantiles.tolist(), col.dtype == "int64", low, high, col.nullable)


def _fit_categorical(col: Column, values: pd.Series, rare_k: int) -> CategoricalBlock:
    counts = values.astype(PANDAS_DTYPES["string"]).value_counts(dropna=True)
    allowed = set(col.categories or counts.index)
    kept = [str(v) for v, n in counts.items() if n >= rare_k and v in allowed]
    rare = sorted(str(v) for v, n in counts.items() if n < rare_k)
    if not kept:  # nothing common enough: keep the most common value rather than learn nothing
        kept = [str(counts.index[0])] if len(counts) else [(col.categories or [""])[0]]
    with_null: list[str | None] = [*kept, None] if col.nullable and values.isna().any() else list(kept)
    return CategoricalBlock(col.name, with_null, rare)


def _to_normal(x: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Values as standard-normal scores through the empirical quantile function (ties: their middle rank)."""
    q = np.asarray(quantiles)
    probs = np.linspace(EDGE, 1 - EDGE, len(q))
    uniq, inverse = np.unique(q, return_inverse=True)
    mid = np.bincount(inverse, weights=probs) / np.bincount(inverse)
    u = np.interp(x, uniq, mid, left=EDGE / 2, right=1 - EDGE / 2)
    return np.clip(ndtri(u), -Z_CLIP, Z_CLIP)


def _from_normal(z: np.ndarray, quantiles: list[float]) -> np.ndarray:
    q = np.asarray(quantiles)
    probs = np.linspace(EDGE, 1 - EDGE, len(q))
    return np.interp(ndtr(z), probs, q)


def _one_hot(values: pd.Series, block: CategoricalBlock) -> np.ndarray:
    text = values.astype(PANDAS_DTYPES["string"])
    known = [v for v in block.values if v is not None]
    codes = pd.Categorical(text, categories=known).codes.astype(np.int64)
    if None in block.values:
        codes[text.isna().to_numpy()] = block.values.index(None)
    codes[codes < 0] = 0  # rare or unknown (or missing where training rows had none): the most common value
    out = np.zeros((len(values), len(block.values)))
    out[np.arange(len(values)), codes] = 1.0
    return out


def _draw(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row from softmax(logits), vectorised (inverse CDF on a uniform draw)."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random(len(logits))[:, None] * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=1), logits.shape[1] - 1)
