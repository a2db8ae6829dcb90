"""The one engine of binary-classifier metrics: training ranks, evaluation, slices and monitoring all use it.

Plain numpy with scikit-learn's definitions (tests compare them): every training rank computes these each
epoch, where importing scikit-learn or torchmetrics would add seconds to each rank's start-up, and evaluation
scores every slice group with them, where the libraries' argument checks dominate on a few thousand rows.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5
EPS = 1e-7


def validation_scores(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, float]:
    """Log loss, ROC AUC, PR AUC (average precision), accuracy and F1 of probabilities ``p`` for labels ``y``."""
    y = np.asarray(y).astype(np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must be equal-length vectors")
    if len(y) == 0:
        raise ValueError("no rows to score")
    pred = p >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    return {
        "log_loss": log_loss(y, p),
        "roc_auc": roc_auc(y, p),
        "pr_auc": average_precision(y, p),
        "accuracy": float((pred == (y == 1)).mean()),
        "f1": float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0,
    }


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities ``p`` (clipped ``EPS`` from 0 and 1) for labels ``y``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney U with average ranks for ties (equals the area under the ROC curve); nan for one class."""
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    sorted_p = p[order]
    ranks = np.empty(len(p), dtype=np.float64)
    # average rank within each run of tied scores
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_p)) + 1]
    ends = np.r_[starts[1:], len(p)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """sum_n (R_n - R_{n-1}) P_n over distinct score thresholds, highest first (scikit-learn's definition)."""
    pos = int(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    sorted_p, sorted_y = p[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_p)), len(p) - 1]
    tps = np.cumsum(sorted_y)[last_of_tie]
    precision = tps / (last_of_tie + 1)
    recall = tps / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between the probability and the label."""
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """L1 expected calibration error over ``n_bins`` equal-width bins of ``p``: the row-weighted mean of
    |positive rate - mean probability| per bin (torchmetrics' BinaryCalibrationError, which a test compares)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    bins = np.clip(np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1), p, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins))
    return float(gap.sum() / count.sum())
