"""One day of a served model, judged: the figures of ``model_monitoring`` for each model tag that served that day.

Pure functions of frames and models (no Dagster), so every figure is unit-tested on constructed data with a known
answer and the asset only loads, calls and reports. Drift uses the same PSI as the training-set drift check
(``ml_assets.data.training_checks.psi``); quality, slices and fairness the same functions as the model gates
(``ml_assets.model.evaluation``); estimation is CBPE (``ml_assets.monitoring.performance``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.data.splits import SPLIT
from ml_assets.data.training_checks import psi
from ml_assets.dataset import DatasetSpec
from ml_assets.model.evaluation import FairnessGap, SliceMetrics, classification_metrics, fairness_gaps, slice_metrics
from ml_assets.monitoring.performance import estimate, fit_calibration, sampling_errors

PROBABILITY, PREDICTED = "probability", "label"
# Fairness gaps on at most this many labeled rows (a seeded sample): fairlearn's MetricFrame costs ~13 us a row, and
# a gap estimated from 50,000 rows is within ~0.007 of the whole day's.
FAIRNESS_ROWS = 50_000
LABEL = "true_label"  # the realized outcome joined from the labels (1 = positive)


@dataclass(frozen=True)
class TagReport:
    """Everything measured for one model tag on one day of traffic."""

    model_tag: str
    rows: int
    labeled_rows: int
    input_psi: dict[str, float]
    prediction_psi: float
    estimated: dict[str, float]
    reference: dict[str, float]  # the model on its own test split: what its evaluation saw
    realized: dict[str, float] | None
    slices: list[SliceMetrics] = field(default_factory=list)
    fairness: list[FairnessGap] = field(default_factory=list)
    previous_tag: str | None = None
    previous_realized: dict[str, float] | None = None
    model_age_hours: float = math.nan
    training_data_age_days: float = math.nan
    # +/- 3 standard errors of each metric on a chunk of the day's size (served rows; labeled rows), from the
    # spread across reference chunks of that size (``performance.sampling_error``): how far sampling alone moves it
    estimated_sampling_error: dict[str, float] = field(default_factory=dict)
    realized_sampling_error: dict[str, float] = field(default_factory=dict)

    @property
    def max_input_psi(self) -> tuple[str, float]:
        if not self.input_psi:
            return ("-", 0.0)
        name = max(self.input_psi, key=self.input_psi.__getitem__)
        return name, self.input_psi[name]


def feature_frame(spec: DatasetSpec, rows: pd.DataFrame) -> pd.DataFrame:
    """The spec's feature columns (and sensitive columns, bands) of served rows, as the model expects them."""
    out = rows.copy()
    for band in spec.bands:
        if band.source in out.columns:
            out[band.name] = spec.band_values(band, out[band.source])
    return out


def as_keys(values: pd.Series) -> pd.Series:
    """Ids as text that match however they were typed: 7, 7.0 and "7" are the same key."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        whole = values.dropna()
        if (whole == whole.round()).all():
            return values.astype("Float64").astype("Int64").astype("string")
    return values.astype("string").str.strip()


def join_labels(spec: DatasetSpec, served: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """The realized label of each served row (NaN where none landed), matched on the spec's id, else request_id.

    ``labels`` has a ``key`` column (the record id or the request id) and ``label`` (1 = positive); a record
    labelled twice keeps its newest label.
    """
    out = pd.Series(np.nan, index=served.index, dtype="float64")
    if labels.empty:
        return out
    latest = labels.drop_duplicates("key", keep="last").set_index("key")["label"]
    latest.index = as_keys(latest.index.to_series()).to_numpy()
    for column in (spec.id.name, "request_id"):
        if column in served.columns:
            found = as_keys(served[column]).map(latest).astype("float64")
            out = out.fillna(found)
    return out


def tag_report(
    spec: DatasetSpec,
    tag: str,
    served: pd.DataFrame,
    model: Any,
    reference: pd.DataFrame,
    *,
    previous: tuple[str, Any] | None = None,
    min_group_size: int = 200,
    model_age_hours: float = math.nan,
    training_data_age_days: float = math.nan,
) -> TagReport:
    """The figures of one tag: ``served`` are its logged rows (features, probability, ``true_label`` where known),
    ``model`` the model that served them, ``reference`` its own training set (train and test splits)."""
    features = [c.name for c in spec.feature_columns if c.name in served.columns]
    train = reference[reference[SPLIT].astype("string") == "train"]
    test = spec.labeled(reference[reference[SPLIT].astype("string") == "test"])  # a nullable target has gaps
    p_served = served[PROBABILITY].to_numpy(dtype=np.float64)
    threshold = float(model.threshold)
    p_ref = np.asarray(model.predict_proba(test), dtype=np.float64)
    y_ref = test[spec.label_column].to_numpy(dtype=np.int64)
    calibration = fit_calibration(p_ref, y_ref)
    labeled = served[served[LABEL].notna()] if LABEL in served.columns else served.iloc[:0]
    realized = slices = fairness = None
    previous_realized = None
    if len(labeled):
        y = labeled[LABEL].to_numpy(dtype=np.int64)
        p = labeled[PROBABILITY].to_numpy(dtype=np.float64)
        realized = classification_metrics(y, p, threshold)
        frame = feature_frame(spec, labeled)
        slice_columns = [c for c in spec.slice_columns if c in frame.columns]
        slices = slice_metrics(frame, y, p, threshold, slice_columns)
        sensitive = [c for c in spec.fairness_columns if c in frame.columns]
        pick = np.arange(len(frame))
        if len(pick) > FAIRNESS_ROWS:
            pick = np.sort(np.random.default_rng(0).choice(len(pick), FAIRNESS_ROWS, replace=False))
        yhat = (p[pick] >= threshold).astype(np.int64)
        fairness = fairness_gaps(frame.iloc[pick], y[pick], yhat, sensitive, min_group_size)
        if previous is not None:
            p_prev = np.asarray(previous[1].predict_proba(labeled), dtype=np.float64)
            previous_realized = classification_metrics(y, p_prev, float(previous[1].threshold))
    return TagReport(
        model_tag=tag,
        rows=len(served),
        labeled_rows=len(labeled),
        input_psi={name: psi(train[name], served[name]) for name in features if len(train)},
        prediction_psi=psi(p_ref, p_served) if len(p_ref) and len(p_served) else math.nan,
        estimated=estimate(p_served, calibration, threshold),
        reference=classification_metrics(y_ref, p_ref, threshold),
        realized=realized,
        slices=slices or [],
        fairness=fairness or [],
        previous_tag=previous[0] if previous is not None else None,
        previous_realized=previous_realized,
        model_age_hours=model_age_hours,
        training_data_age_days=training_data_age_days,
        estimated_sampling_error=sampling_errors(y_ref, p_ref, threshold, len(served)),
        realized_sampling_error=sampling_errors(y_ref, p_ref, threshold, len(labeled)) if len(labeled) else {},
    )
