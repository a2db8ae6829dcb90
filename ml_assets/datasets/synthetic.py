"""Synthetic rows of any DatasetSpec's schema, at any size, for scale tests and specs without demo data.

Everything is vectorised numpy: categoricals are drawn as integer codes and returned as ``pd.Categorical`` over
the spec's category strings (values are strings, memory is one byte per row), so 1e7 rows fit in a few hundred
megabytes. The target depends on a few features through a logistic model, so a classifier can learn something.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Literal

import numpy as np
import pandas as pd

from ml_assets.dataset import Column, DatasetSpec, Role, SpecError, read_demo_data
from ml_assets.partitions import first_day

NULL_RATE = 0.02  # share of nulls in nullable columns
POSITIVE_RATE = 0.25  # average share of the positive label
MS_PER_DAY = 86_400_000

CategoricalMode = Literal["category", "string"]


def synthetic_rows(
    spec: DatasetSpec,
    n: int,
    seed: int = 0,
    start: datetime | None = None,
    days: int = 1,
    *,
    from_demo: bool = False,
    id_start: int = 1,
    categoricals: CategoricalMode = "category",
) -> pd.DataFrame:
    """``n`` rows with the spec's columns, in domain and range, unique ids and event times over ``days`` days.

    ``start`` defaults to midnight UTC of the spec's first partition day. ``from_demo`` samples the spec's demo
    rows with replacement instead of drawing values (realistic joint distribution, fresh ids and times).
    ``categoricals="string"`` returns string columns instead of ``pd.Categorical`` (costs memory at scale).
    """
    if n < 0:
        raise ValueError(f"synthetic_rows: n must be >= 0, got {n}")
    if days < 1:
        raise ValueError(f"synthetic_rows: days must be >= 1, got {days}")
    rng = np.random.default_rng(seed)
    t0 = _start(spec, start)
    cols = _from_demo(spec, n, rng) if from_demo else _draw(spec, n, rng)
    cols[spec.id.name] = _ids(spec.id, n, id_start)
    cols[spec.time.name] = _times(t0, n, days, rng)
    if categoricals == "string":
        cols = {k: v.astype("string") if isinstance(v.dtype, pd.CategoricalDtype) else v for k, v in cols.items()}
    for col in spec.columns:  # integer-coded categories land as their codes
        if col.integer_coded and not from_demo:
            cols[col.name] = spec.landed_form(col, cols[col.name])
    # side by side without consolidating the columns into one block: no copy, half the peak memory at 1e7
    for name, col in cols.items():
        col.name = name  # in place: Series.rename would copy every column
    return pd.concat([cols[name] for name in spec.column_names], axis=1, copy=False)


def _start(spec: DatasetSpec, start: datetime | None) -> np.datetime64:
    if start is None:
        start = datetime.combine(first_day(spec), time(), tzinfo=UTC)
    if start.tzinfo is not None:
        start = start.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(start, "ms")


def _times(t0: np.datetime64, n: int, days: int, rng: np.random.Generator) -> pd.Series:
    offsets = np.sort(rng.integers(0, days * MS_PER_DAY, size=n, dtype=np.int64))
    stamps = t0 + offsets.astype("timedelta64[ms]")
    return pd.Series(stamps, dtype="datetime64[ms]").dt.tz_localize("UTC")


def _ids(col: Column, n: int, id_start: int) -> pd.Series:
    seq = np.arange(id_start, id_start + n, dtype=np.int64)
    if col.dtype == "int64":
        return pd.Series(seq, dtype="int64")
    if col.dtype == "float64":
        return pd.Series(seq, dtype="float64")
    if col.dtype == "string":
        return pd.Series(seq.astype(str), dtype="string").radd("id-")
    raise ValueError(f"synthetic_rows: id column {col.name!r} has dtype {col.dtype}, cannot generate unique ids")


def _from_demo(spec: DatasetSpec, n: int, rng: np.random.Generator) -> dict[str, pd.Series]:
    try:
        demo = read_demo_data(spec)
    except SpecError as e:
        raise ValueError(f"synthetic_rows(from_demo=True): {e}") from None
    wanted = [c for c in spec.columns if c.role not in (Role.ID, Role.TIME)]
    missing = [c.name for c in wanted if c.name not in demo.columns]
    if missing:
        raise ValueError(f"demo data of {spec.name!r} ({spec.demo_data}) lacks spec columns {missing}")
    pick = rng.integers(0, len(demo), size=n)
    out: dict[str, pd.Series] = {}
    for c in wanted:
        src = demo[c.name]
        if c.dtype == "string":  # sample codes, not strings; every demo value is kept as it is
            cat = src.astype("category")
            out[c.name] = _categorical(cat.cat.codes.to_numpy()[pick], list(cat.cat.categories))
        else:
            out[c.name] = src.iloc[pick].reset_index(drop=True)
    return out


def _draw(spec: DatasetSpec, n: int, rng: np.random.Generator) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    codes: dict[str, np.ndarray] = {}
    for c in spec.columns:
        if c.role in (Role.ID, Role.TIME, Role.TARGET):
            continue
        if c.dtype in ("int64", "float64"):
            out[c.name] = _numeric(c, n, rng)
        elif c.dtype == "string":
            codes[c.name] = _codes(len(c.categories or ["value"]), n, c.nullable, rng)
            out[c.name] = _categorical(codes[c.name], c.categories or ["value"])
        elif c.dtype == "bool":
            values = pd.array(rng.random(n) < 0.5, dtype="boolean")
            if c.nullable:
                values[rng.random(n) < NULL_RATE] = pd.NA
            out[c.name] = pd.Series(values)
        elif c.dtype == "datetime":
            out[c.name] = _times(np.datetime64(first_day(spec), "ms"), n, 365, rng)
    target = spec.target
    positive = _positive(spec, out, codes, n, rng)
    cats = target.categories or []
    pos_code = cats.index(spec.positive_label)
    negatives = np.array([i for i in range(len(cats)) if i != pos_code], dtype=np.int8)
    neg_codes = negatives[rng.integers(0, len(negatives), size=n)] if len(negatives) else pos_code
    out[target.name] = _categorical(np.where(positive, pos_code, neg_codes).astype(np.int8), cats)
    return out


def _numeric(c: Column, n: int, rng: np.random.Generator) -> pd.Series:
    lo = c.range.min if c.range else None
    hi = c.range.max if c.range else None
    if lo is not None and hi is not None:
        values = lo + rng.triangular(0.0, 0.2, 1.0, size=n) * (hi - lo)  # skewed low, like ages or amounts
    elif lo is not None:
        values = lo + rng.exponential(10.0, size=n)
    elif hi is not None:
        values = hi - rng.exponential(10.0, size=n)
    else:
        values = rng.normal(0.0, 10.0, size=n)
    if c.dtype == "int64":
        ints = np.round(values).astype(np.int64)
        if lo is not None:
            ints = np.maximum(ints, int(np.ceil(lo)))
        if hi is not None:
            ints = np.minimum(ints, int(np.floor(hi)))
        if not c.nullable:
            return pd.Series(ints, dtype="int64")
        return pd.Series(pd.arrays.IntegerArray(ints, rng.random(n) < NULL_RATE))
    if c.nullable:
        values[rng.random(n) < NULL_RATE] = np.nan
    return pd.Series(values, dtype="float64")


def _codes(k: int, n: int, nullable: bool, rng: np.random.Generator) -> np.ndarray:
    """Category codes with a Zipf-like mix (a few common categories, a long tail), -1 for nulls.

    Drawn through a 65,536-entry lookup table indexed by random uint16: one byte-sized gather per row.
    """
    weights = 1.0 / np.arange(1, k + 1)
    weights = weights[rng.permutation(k)]
    cdf = np.cumsum(weights / weights.sum())
    dtype = np.int8 if k < 127 else np.int16 if k < 32_767 else np.int32
    table = np.minimum(np.searchsorted(cdf, (np.arange(65_536) + 0.5) / 65_536), k - 1).astype(dtype)
    codes = table[rng.integers(0, 65_536, size=n, dtype=np.uint16)]
    if nullable:
        codes[rng.random(n, dtype=np.float32) < NULL_RATE] = -1
    return codes


def _categorical(codes: np.ndarray, categories: list[str]) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object)))


def _positive(
    spec: DatasetSpec,
    cols: dict[str, pd.Series],
    codes: dict[str, np.ndarray],
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the label from a logistic model of up to three numeric and two categorical features."""
    if n == 0:
        return np.zeros(0, dtype=bool)
    score = np.zeros(n)
    numeric = [c for c in spec.numeric_features if c in cols][:3]
    for i, name in enumerate(numeric):
        x = cols[name].to_numpy(dtype="float64", na_value=np.nan)
        sample = x[: min(n, 100_000)]  # moments from a sample: the same signal, a fraction of the passes
        z = (x - np.nanmean(sample)) / (np.nanstd(sample) or 1.0)
        if cols[name].hasnans:
            z = np.nan_to_num(z, copy=False)
        score += (1.2 if i % 2 == 0 else -0.8) * z
    for name in [c for c in spec.categorical_features if c in codes][:2]:
        k = int(codes[name].max(initial=0)) + 1
        effect = np.append(rng.normal(0.0, 1.0, size=k), 0.0)  # last entry: the null code -1
        score += effect[codes[name]]
    intercept = _intercept(score[: min(n, 20_000)], POSITIVE_RATE)
    return rng.random(n) < 1.0 / (1.0 + np.exp(-(score + intercept)))


def _intercept(score: np.ndarray, rate: float) -> float:
    """The intercept giving the wanted mean probability, by bisection on a sample."""
    if score.size == 0:
        return 0.0
    lo, hi = -20.0, 20.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(score + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
