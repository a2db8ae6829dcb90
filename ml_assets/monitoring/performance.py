"""Quality of a model on live traffic: estimated before labels land, realized once they have.

Estimated performance is confidence-based performance estimation (CBPE, the method NannyML popularised): if the
model's probabilities are calibrated, a row scored p is positive with probability p, so the expected confusion
matrix at every threshold follows from the scores alone. Expected accuracy at threshold t is the mean of p over rows
predicted positive and of 1 - p over the others; expected ROC AUC is the area under the curve of expected TPR
(sum of p above t / sum of p) against expected FPR (sum of 1 - p above t / sum of 1 - p). Probabilities are first
calibrated on the model's own reference data (its test split, where labels are known) with isotonic regression, so
a miscalibrated model is corrected before it is trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scikit-learn costs about a second to import: every process that loads the Definitions
    from sklearn.isotonic import IsotonicRegression  # would pay it, while only monitoring runs calibrate


def fit_calibration(reference_p: np.ndarray, reference_y: np.ndarray) -> IsotonicRegression:
    """Isotonic map from the model's scores to observed positive rates on reference rows with labels."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(np.asarray(reference_p, dtype=np.float64), np.asarray(reference_y, dtype=np.float64))
    return iso


def expected_roc_auc(p: np.ndarray) -> float:
    """ROC AUC expected under calibrated probabilities ``p`` (NaN when every row is certain of one class)."""
    p = np.sort(np.asarray(p, dtype=np.float64))[::-1]
    tp, fp = np.cumsum(p), np.cumsum(1.0 - p)
    if len(p) == 0 or tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    # ties: rows with equal scores enter together, as a threshold cannot separate them
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]
    tpr = np.r_[0.0, tp[last] / tp[-1]]
    fpr = np.r_[0.0, fp[last] / fp[-1]]
    return float(np.trapezoid(tpr, fpr))


def estimate(p_raw: np.ndarray, calibration: IsotonicRegression, threshold: float) -> dict[str, float]:
    """Estimated ROC AUC and accuracy of scores ``p_raw`` (decisions at ``threshold`` on the raw scores)."""
    p = calibration.predict(np.asarray(p_raw, dtype=np.float64))
    decided = np.asarray(p_raw) >= threshold
    accuracy = float(np.mean(np.where(decided, p, 1.0 - p))) if len(p) else float("nan")
    return {
        "roc_auc": expected_roc_auc(p),
        "accuracy": accuracy,
        "positive_rate": float(np.mean(p)) if len(p) else float("nan"),
    }


# Sampling error, as NannyML reports it: +/- 3 standard errors of the metric on a chunk of the monitored size, the
# standard error taken from the spread of the metric across reference chunks of that size (the reference being the
# model's own labeled test split). Its only information from the monitored day is the chunk size, so it is honest
# under the i.i.d. assumption and says how far a day's figure moves by sampling alone.
SAMPLING_SIGMAS = 3.0
MIN_CHUNKS = 6  # fewer reference chunks than this are too few to trust their spread (NannyML warns below 6)
MAX_CHUNKS = 200


def rank_roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic (ties count half); NaN on a single class."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=np.int64)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def chunk_metric(metric: str, y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    if metric == "roc_auc":
        return rank_roc_auc(y, p)
    if metric == "accuracy":
        return float(np.mean((p >= threshold) == (y == 1))) if len(y) else float("nan")
    raise ValueError(f"no sampling error for metric {metric!r} (roc_auc or accuracy)")


def sampling_error(
    metric: str, reference_y: np.ndarray, reference_p: np.ndarray, threshold: float, rows: int, seed: int = 0
) -> float:
    """3 standard errors of ``metric`` on ``rows`` rows: the standard deviation of the metric across disjoint
    reference chunks of ``rows`` rows (or, when the reference holds fewer than ``MIN_CHUNKS`` such chunks, across
    ``MIN_CHUNKS`` smaller ones, scaled by the square root of the sizes' ratio as the standard error of a mean is).
    NaN when the reference cannot give it (too few rows, or chunks of a single class)."""
    y = np.asarray(reference_y, dtype=np.int64)
    p = np.asarray(reference_p, dtype=np.float64)
    if rows < 1 or len(y) < 2 * MIN_CHUNKS:
        return float("nan")
    size = min(rows, len(y) // MIN_CHUNKS)
    chunks = min(len(y) // size, MAX_CHUNKS)
    order = np.random.default_rng(seed).permutation(len(y))[: chunks * size].reshape(chunks, size)
    values = np.array([chunk_metric(metric, y[i], p[i], threshold) for i in order])
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan")
    return float(SAMPLING_SIGMAS * np.std(values, ddof=1) * np.sqrt(size / rows))


def sampling_errors(reference_y: np.ndarray, reference_p: np.ndarray, threshold: float, rows: int) -> dict[str, float]:
    """The sampling error of ROC AUC and accuracy for a chunk of ``rows`` rows."""
    return {m: sampling_error(m, reference_y, reference_p, threshold, rows) for m in ("roc_auc", "accuracy")}
