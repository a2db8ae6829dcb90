"""Preprocessing fitted over a TableScan of any size, by DuckDB queries that stream its files.

Beside ``preprocessing`` (which the Bento packs and serves) because only the pipeline fits over Parquet scans: the
served code never imports the data plane's storage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml_assets.dataset import DatasetSpec
from ml_assets.model.preprocessing import (
    BIN_LEVELS,
    CLIP,
    QUANTILE_LEVELS,
    SKEW_FOR_LOG,
    NumericStats,
    Preprocessing,
    Vocabulary,
    _numeric_stats,
    _require_columns,
)
from resources.parquet_tables import TableScan, quoted, scan_connection


def fit_scan(spec: DatasetSpec, train: TableScan) -> Preprocessing:
    """``fit`` over the rows of a scan of any size, by DuckDB queries that stream its files (moments, then the
    order statistics the quantiles need, per numeric column; the distinct values per categorical one), spilling
    past the query memory limit: the statistics ``fit`` gives on the same rows (exact quantiles; means and
    standard deviations summed in another order, so equal to the last few bits)."""
    _require_columns(
        pd.DataFrame(columns=list(train.dtypes)), [*spec.numeric_features, *spec.categorical_features], "train scan"
    )
    with scan_connection(train) as connection:
        (rows,) = connection.execute("SELECT count(*) FROM scan").fetchone()
        if rows == 0:
            raise ValueError(f"cannot fit preprocessing for {spec.name!r}: the train split has no rows")
        numeric = [_fit_numeric_sql(connection, name) for name in spec.numeric_features]
        categorical = [_vocabulary_sql(connection, name, train.dtypes[name]) for name in spec.categorical_features]
    return Preprocessing(spec_name=spec.name, numeric=numeric, categorical=categorical)


def _fit_numeric_sql(connection: Any, name: str) -> NumericStats:
    """``_fit_numeric`` as DuckDB queries over the view ``scan``: moments in one pass, quantiles in another."""
    values = f"SELECT TRY_CAST({quoted(name)} AS DOUBLE) AS x FROM scan"
    kept = f"FROM ({values}) WHERE x IS NOT NULL AND NOT isnan(x)"
    count, low, skew = connection.execute(f"SELECT count(x), min(x), skewness(x) {kept}").fetchone()
    if count == 0:
        return NumericStats(name=name, log1p=False, mean=0.0, std=1.0, fill=0.0)
    skew = skew if count > 2 and skew is not None else 0.0  # pandas: 0 for two values or fewer
    log1p = bool(low >= 0 and np.isfinite(skew) and skew > SKEW_FOR_LOG)
    value = "ln(1 + x)" if log1p else "x"
    mean, std = connection.execute(f"SELECT avg({value}), stddev_pop({value}) {kept}").fetchone()
    std = std if std > 1e-12 else 1.0
    z = f"SELECT greatest(-{CLIP}, least({CLIP}, ({value} - {float(mean)!r}) / {float(std)!r})) AS z {kept}"
    distinct = f"SELECT DISTINCT z FROM ({z})"
    (m,) = connection.execute(f"SELECT count(*) FROM ({distinct})").fetchone()
    rows = _quantiles_sql(connection, z, count, [BIN_LEVELS, QUANTILE_LEVELS])
    (distinct_rows,) = _quantiles_sql(connection, distinct, m, [BIN_LEVELS])
    return _numeric_stats(name, log1p, float(mean), float(std), rows[0], distinct_rows, rows[1])


def _quantiles_sql(connection: Any, values: str, n: int, levels: list[np.ndarray]) -> list[np.ndarray]:
    """numpy's linear quantiles of the ``n`` rows of ``z`` in the query ``values`` at each array of ``levels``,
    exactly: the order statistics they fall between come from DuckDB (a sort that spills), the interpolation is
    numpy's (DuckDB's ``quantile_cont`` rounds differently between equal neighbours)."""
    bounds = [_order_bounds(n, q) for q in levels]
    wanted = sorted({int(i) for lo, hi, _ in bounds for i in (*lo, *hi)})
    found = dict(
        connection.execute(
            f"SELECT i, z FROM (SELECT z, row_number() OVER (ORDER BY z) - 1 AS i FROM ({values})) "
            f"WHERE i IN ({', '.join(map(str, wanted))})"
        ).fetchall()
    )
    out = []
    for lo, hi, gamma in bounds:
        a = np.array([found[i] for i in lo], dtype=np.float64)
        b = np.array([found[i] for i in hi], dtype=np.float64)
        diff = b - a
        out.append(np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma))  # numpy's _lerp
    return out


def _order_bounds(n: int, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For numpy's linear quantiles of ``n`` sorted values: the indices below and above each level and the weight."""
    virtual = (n - 1) * levels
    lo = np.floor(virtual).astype(np.int64)
    return lo, np.minimum(lo + 1, n - 1), virtual - lo


def _vocabulary_sql(connection: Any, name: str, dtype: str) -> Vocabulary:
    """The distinct values of a categorical column as ``fit`` spells them (``str()`` of each value)."""
    column = quoted(name)
    text = f"CASE WHEN {column} THEN 'True' ELSE 'False' END" if dtype == "boolean" else f"CAST({column} AS VARCHAR)"
    found = connection.execute(f"SELECT DISTINCT {text} FROM scan WHERE {column} IS NOT NULL").fetchall()
    return Vocabulary(name, sorted(v for (v,) in found))
