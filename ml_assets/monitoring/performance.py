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
