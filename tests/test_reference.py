"""The gradient-boosted trees reference: fitted on the window's train rows, early-stopped on its validation rows,
scored on the same test rows as the candidate, with the candidate's gap per metric and per slice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.model.evaluation import classification_metrics, score_model
from ml_assets.model.reference import MAX_ROUNDS, REFERENCE_KIND, fit_reference, metric_gaps, slice_gaps
from tests.test_evaluation import adult_training_set, fit


def _split(ts: pd.DataFrame, name: str) -> pd.DataFrame:
    return ts[ts["split"] == name].reset_index(drop=True)


@pytest.fixture(scope="module")
def adult(adult_spec: DatasetSpec) -> tuple[DatasetSpec, pd.DataFrame]:
    return adult_spec, adult_training_set(adult_spec)


def test_reference_beats_the_logistic_baseline_on_adult_and_early_stops(adult) -> None:
    spec, ts = adult
    train, validation, test = (_split(ts, s) for s in ("train", "validation", "test"))
    ref = fit_reference(spec, train, validation)
    assert ref.kind == REFERENCE_KIND and 0 < ref.best_iteration < MAX_ROUNDS  # early stopping ended it
    y = test[spec.label_column].to_numpy(dtype=np.int64)
    ref_auc = classification_metrics(y, ref.predict_proba(test), 0.5)["roc_auc"]
    baseline = fit(spec, ts, _split(ts, "train")[spec.label_column].to_numpy())
    base_auc = classification_metrics(y, baseline.predict_proba(test), 0.5)["roc_auc"]
    assert ref_auc > base_auc  # trees find Adult's interactions that a linear model cannot
    assert set(ref.importance) == set(spec.numeric_features) | set(spec.categorical_features)
    assert abs(sum(ref.importance.values()) - 1.0) < 1e-9


def test_reference_fits_an_interaction_the_baseline_cannot(adult) -> None:
    """On rows whose label is the XOR of two features' signs, trees score near 1 and the logistic model near 0.5."""
    spec, ts = adult
    rng = np.random.default_rng(1)
    ts = ts.copy()
    ts["age"] = rng.integers(17, 90, len(ts))
    ts["hours_per_week"] = rng.integers(1, 99, len(ts))
    xor = (ts["age"] >= 50) ^ (ts["hours_per_week"] >= 50)
    ts[spec.label_column] = xor.astype("int8")
    train, validation, test = (_split(ts, s) for s in ("train", "validation", "test"))
    ref = fit_reference(spec, train, validation)
    y = test[spec.label_column].to_numpy(dtype=np.int64)
    assert classification_metrics(y, ref.predict_proba(test), 0.5)["roc_auc"] > 0.97
    baseline = fit(spec, ts, train[spec.label_column].to_numpy())
    assert classification_metrics(y, baseline.predict_proba(test), 0.5)["roc_auc"] < 0.75
    assert max(ref.importance, key=ref.importance.get) in ("age", "hours_per_week")


def test_unseen_categories_and_missing_values_score(adult) -> None:
    spec, ts = adult
    ref = fit_reference(spec, _split(ts, "train"), _split(ts, "validation"))
    rows = _split(ts, "test").head(5).copy()
    rows["workclass"] = "never-seen"
    rows["age"] = pd.NA
    p = ref.predict_proba(rows)
    assert p.shape == (5,) and np.all((p >= 0) & (p <= 1))


def test_gaps_are_positive_when_the_candidate_is_worse_whichever_direction_is_better(adult) -> None:
    spec, ts = adult
    train, validation, test = (_split(ts, s) for s in ("train", "validation", "test"))
    ref = fit_reference(spec, train, validation)
    baseline = fit(spec, ts, train[spec.label_column].to_numpy())
    ref_scores = score_model(ref, "reference", spec, test, min_group_size=30, operational=False)
    cand_scores = score_model(baseline, "candidate", spec, test, min_group_size=30, operational=False)
    gaps = metric_gaps(cand_scores, ref_scores)
    assert gaps["roc_auc"] == pytest.approx(ref_scores.metrics["roc_auc"] - cand_scores.metrics["roc_auc"])
    assert gaps["log_loss"] == pytest.approx(cand_scores.metrics["log_loss"] - ref_scores.metrics["log_loss"])
    assert gaps["roc_auc"] > 0 and gaps["log_loss"] > 0  # the baseline is behind on both
    assert "rows" not in gaps and "positive_rate" not in gaps
    per_slice = slice_gaps(cand_scores, ref_scores, "roc_auc")
    assert per_slice and all(name.split("=")[0] in spec.slice_columns for name in per_slice)
    assert metric_gaps(ref_scores, ref_scores) == {k: 0.0 for k in gaps}


def test_reference_refuses_empty_splits(adult) -> None:
    spec, ts = adult
    with pytest.raises(ValueError, match="labeled train and validation rows"):
        fit_reference(spec, _split(ts, "train"), _split(ts, "validation").iloc[0:0])
