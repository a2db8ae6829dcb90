"""Platt scaling of a candidate's scores: fitted on validation, kept only when it helps, stored and served with it.

An overconfident scorer (the true logit times 3, as an ensemble of overfit networks scores) gets a slope near 1/3,
a lower log loss and expected calibration error, and the same ranking; a calibrated one is left nearly alone; a
split without enough of each class, or a scorer ranking backwards, is not calibrated, saying why. The map travels
with the stored model, the service applies it, and the ONNX file computes the same probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.bundle import META_FILE, TabularModel
from ml_assets.model.calibration import Calibration, fit_calibration
from ml_assets.model.metrics import expected_calibration_error, log_loss, roc_auc
from tests.serving_support import fit_logistic


def scored(n: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a true logit, and the scores of a model whose logit is ``scale`` times it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n) - 0.8
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return y, 1 / (1 + np.exp(-scale * z))


def test_an_overconfident_scorer_is_pulled_back_and_keeps_its_ranking() -> None:
    y, p = scored(800, 3.0)
    fit = fit_calibration(y, p)
    assert fit.calibration is not None, fit.reason
    assert fit.calibration.slope == pytest.approx(1 / 3, rel=0.25)
    assert fit.log_loss_after < fit.log_loss_before == pytest.approx(log_loss(y, p))
    # judged on fresh rows of the same kind: the map generalizes, it did not only fit its own rows
    y_new, p_new = scored(5000, 3.0, seed=1)
    calibrated = fit.calibration.apply(p_new)
    assert expected_calibration_error(y_new, calibrated) < expected_calibration_error(y_new, p_new) / 2
    assert log_loss(y_new, calibrated) < log_loss(y_new, p_new)
    assert roc_auc(y_new, calibrated) == pytest.approx(roc_auc(y_new, p_new), abs=1e-12)
    assert "log loss" in fit.reason and "slope" in fit.reason


def test_a_calibrated_scorer_is_left_about_as_it_is() -> None:
    y, p = scored(800, 1.0)
    fit = fit_calibration(y, p)
    if fit.calibration is not None:  # kept only for a sliver of log loss: a map near the identity
        assert fit.calibration.slope == pytest.approx(1.0, abs=0.2)
        assert fit.log_loss_before - fit.log_loss_after < 0.01
        assert np.abs(fit.calibration.apply(p) - p).max() < 0.08


def test_too_few_rows_of_a_class_or_a_backward_ranking_are_not_calibrated() -> None:
    y = np.array([1, 1, 1, 0] + [0] * 100)
    few = fit_calibration(y, np.linspace(0.9, 0.1, len(y)))
    assert few.calibration is None and "3 positive" in few.reason
    y, p = scored(600, 2.0)
    backward = fit_calibration(y, 1 - p)
    assert backward.calibration is None and "reverse" in backward.reason


def test_scores_that_are_not_finite_are_left_to_the_thresholds_clear_refusal() -> None:
    y, p = scored(200, 2.0)
    p[3] = np.nan
    fit = fit_calibration(y, p)
    assert fit.calibration is None and "not finite" in fit.reason


def test_a_map_that_would_reverse_the_ranking_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="slope > 0"):
        Calibration(slope=-1.0, intercept=0.0)
    with pytest.raises(ValueError, match="finite"):
        Calibration(slope=float("nan"), intercept=0.0)


@pytest.fixture(scope="module")
def rows(adult_spec: DatasetSpec) -> pd.DataFrame:
    return demo_training_set(adult_spec, 600)


def test_the_stored_model_carries_its_calibration_and_applies_it(
    tmp_path: Path, adult_spec: DatasetSpec, rows: pd.DataFrame
) -> None:
    model = fit_logistic(adult_spec, rows)
    raw = model.predict_proba(rows)
    model.calibration = Calibration(slope=0.5, intercept=0.3)
    model.save(tmp_path / "m")
    loaded = TabularModel.load(tmp_path / "m")
    assert loaded.calibration == model.calibration
    np.testing.assert_allclose(loaded.raw_scores(rows), raw)
    np.testing.assert_allclose(loaded.predict_proba(rows), model.calibration.apply(raw))
    # a model stored before calibration existed (no key) loads with none: its scores are its probabilities
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    del meta["calibration"]
    (tmp_path / "m" / META_FILE).write_text(json.dumps(meta))
    np.testing.assert_allclose(TabularModel.load(tmp_path / "m").predict_proba(rows), raw)
