"""The numpy metrics every training rank computes agree with scikit-learn's definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, log_loss, roc_auc_score

from ml_assets.model.metrics import brier_score, expected_calibration_error, validation_scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    p[:50] = np.round(p[:50], 1)  # ties
    got = validation_scores(y, p)
    assert got["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), rel=1e-9)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p), rel=1e-12)
    assert got["pr_auc"] == pytest.approx(average_precision_score(y, p), rel=1e-12)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5))
    assert got["f1"] == pytest.approx(f1_score(y, p >= 0.5))


def test_single_class_and_bad_shapes() -> None:
    got = validation_scores(np.zeros(4), np.full(4, 0.2))
    assert np.isnan(got["roc_auc"]) and np.isnan(got["pr_auc"]) and got["accuracy"] == 1.0 and got["f1"] == 0.0
    with pytest.raises(ValueError, match="equal-length"):
        validation_scores(np.zeros(3), np.zeros(4))


def test_calibration_error_is_the_row_weighted_gap_per_equal_width_bin() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    p = rng.random(2000)
    p[:30] = [k / 15 for k in range(15)] * 2  # a score on an edge belongs to the bin it closes: (lo, hi]
    edges = np.linspace(0, 1, 16)
    gap = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (p > lo) & (p <= hi) if lo > 0 else (p >= lo) & (p <= hi)
        gap += abs(y[inside].sum() - p[inside].sum())
    assert expected_calibration_error(y, p, 15) == pytest.approx(gap / len(p), rel=1e-12)
    assert brier_score(y, p) == pytest.approx(np.mean((p - y) ** 2))
