"""The decision threshold: chosen on validation by the spec's policy, stored with the model, used wherever it decides.

The policies are checked against a brute force over every threshold with scikit-learn's own precision, recall and
F1; the rare-positive defect on real UCI Adult rows kept at 3 % positives: at 0.5 the production baseline predicts
(almost) no positive, the degenerate-model gate blocks it, and the max-F1 threshold chosen on validation does not.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score, recall_score

from ml_assets.dataset import DatasetSpec, DecisionPolicy
from ml_assets.model import gates
from ml_assets.model.assets import BaselineConfig, decide, fit_baseline
from ml_assets.model.bundle import TabularModel
from ml_assets.model.decision import choose_threshold
from ml_assets.model.evaluation import Evaluation, score_model
from ml_assets.serving.scoring import Scorer
from tests.test_evaluation import adult_training_set


def scored_rows(n: int = 2000, rate: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and noisy probabilities that rank positives higher, with ties (scores rounded to 2 decimals)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    p = np.clip(0.25 * y + 0.6 * rng.random(n), 0, 1).round(2)
    return y, p


def brute_force(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1 and error counts at every distinct score (scikit-learn's definitions)."""
    rows = []
    for t in np.unique(p):
        yhat = (p >= t).astype(int)
        rows.append(
            {
                "t": t,
                "precision": precision_score(y, yhat, zero_division=0),
                "recall": recall_score(y, yhat),
                "f1": f1_score(y, yhat),
                "balanced": balanced_accuracy_score(y, yhat),
                "fp": int(((yhat == 1) & (y == 0)).sum()),
                "fn": int(((yhat == 0) & (y == 1)).sum()),
            }
        )
    return pd.DataFrame(rows)


def test_balanced_is_the_best_balanced_accuracy_and_predicts_both_classes_where_positives_are_most() -> None:
    """70 % positives and a weak model (ROC AUC 0.64): the F1 of the positive class is highest near predicting
    every row positive (a degenerate model to predicts_both_classes, as on Ecdat's Benefits); the balanced policy
    takes scikit-learn's best balanced accuracy over every threshold, and predicts both classes."""
    rng, n = np.random.default_rng(0), 4000
    y = (rng.random(n) < 0.7).astype(int)
    p = np.clip(0.3 + 0.1 * y + 0.2 * rng.normal(size=n), 0, 1).round(2)  # ROC AUC 0.64
    table = brute_force(y, p)
    f1 = choose_threshold(DecisionPolicy(), y, p)
    balanced = choose_threshold(DecisionPolicy(policy="balanced"), y, p)
    best = table.loc[table["balanced"].idxmax()]
    assert balanced.threshold == best["t"] and "balanced accuracy" in balanced.describe()
    assert f1.predicted_positive_rate > 0.95 and 0.3 < balanced.predicted_positive_rate < 0.8


def test_max_f1_is_the_best_f1_over_every_threshold() -> None:
    y, p = scored_rows()
    table = brute_force(y, p)
    chosen = choose_threshold(DecisionPolicy(), y, p)
    best = table.loc[table["f1"].idxmax()]
    assert chosen.f1 == pytest.approx(best["f1"]) and chosen.threshold == best["t"]
    yhat = (p >= chosen.threshold).astype(int)
    assert chosen.precision == pytest.approx(precision_score(y, yhat))
    assert chosen.recall == pytest.approx(recall_score(y, yhat))
    assert chosen.predicted_positive_rate == pytest.approx(yhat.mean()) and chosen.met
    assert "\n" not in chosen.describe() and "the highest F1" in chosen.describe()


def test_precision_recall_and_cost_policies_match_the_brute_force() -> None:
    y, p = scored_rows(seed=1)
    table = brute_force(y, p)
    precise = choose_threshold(DecisionPolicy(policy="precision", target=0.6), y, p)
    ok = table[table["precision"] >= 0.6]
    assert precise.met and precise.precision >= 0.6 and precise.recall == pytest.approx(ok["recall"].max())
    recall = choose_threshold(DecisionPolicy(policy="recall", target=0.9), y, p)
    ok = table[table["recall"] >= 0.9]
    assert recall.recall >= 0.9 and recall.precision == pytest.approx(ok["precision"].max())
    costly = choose_threshold(DecisionPolicy(policy="cost", costs={"fp": 1, "fn": 5}), y, p)
    costs = table["fp"] + 5 * table["fn"]
    assert costly.cost == pytest.approx(costs.min()) and costly.threshold == table.loc[costs.idxmin(), "t"]
    cheap_fn = choose_threshold(DecisionPolicy(policy="cost", costs={"fp": 5, "fn": 1}), y, p)
    assert cheap_fn.threshold > costly.threshold  # false positives dearer: fewer positives predicted
    y, p = scored_rows(rate=0.5, seed=2)
    p[np.flatnonzero(y == 0)[0]] = 1.0  # a negative scored highest: no threshold reaches precision 1
    unreachable = choose_threshold(DecisionPolicy(policy="precision", target=1.0), y, p)
    assert not unreachable.met and "target 1.0 not reached on validation" in unreachable.describe()
    assert unreachable.f1 == pytest.approx(brute_force(y, p)["f1"].max())  # it fell back to the highest F1


def test_a_policy_must_be_complete_and_validation_must_hold_both_labels() -> None:
    with pytest.raises(ValidationError, match="policy 'precision' needs a target"):
        DecisionPolicy(policy="precision")
    with pytest.raises(ValidationError, match="policy 'cost' needs costs"):
        DecisionPolicy(policy="cost")
    with pytest.raises(ValidationError, match="policy 'max_f1' takes no target"):
        DecisionPolicy(target=0.5)
    with pytest.raises(ValidationError, match="fp and fn cannot both be 0"):
        DecisionPolicy(policy="cost", costs={"fp": 0, "fn": 0})
    with pytest.raises(ValueError, match="on 4 validation rows with 0 positives: it needs both labels"):
        choose_threshold(DecisionPolicy(), np.zeros(4), np.full(4, 0.3))


# ---- rare positives on real data ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rare(adult_spec: DatasetSpec) -> pd.DataFrame:
    """Real Adult rows over the spec's window, every positive but 1 in 10 dropped: about 3 % positives."""
    ts = adult_training_set(adult_spec, rows=16_000, seed=3)
    y = ts[adult_spec.label_column].astype(int).to_numpy()
    keep = (y == 0) | (np.arange(len(ts)) % 10 == 0)
    return ts[keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(adult_spec: DatasetSpec, rare: pd.DataFrame) -> TabularModel:
    """The production baseline fitted on the rare rows, still at the default 0.5 (tests decide on copies)."""
    return fit_baseline(adult_spec, rare, BaselineConfig(max_iter=500))


def evaluation(scores, test: pd.DataFrame, label: str) -> Evaluation:
    return Evaluation(
        spec_name="adult",
        primary_metric="roc_auc",
        test_rows=len(test),
        test_positives=int(test[label].sum()),
        window_end=None,
        candidate=scores,
        baseline=scores,
        champion=None,
        candidate_ref=None,
        baseline_ref=None,
        champion_ref=None,
    )


def test_on_rare_positives_the_threshold_is_chosen_on_validation_and_a_one_class_model_is_blocked(
    adult_spec: DatasetSpec, rare: pd.DataFrame, fitted: TabularModel
) -> None:
    label = adult_spec.label_column
    test = rare[rare["split"] == "test"].reset_index(drop=True)
    assert 0.02 < rare[label].mean() < 0.04
    model = copy.copy(fitted)
    th = adult_spec.gates

    # the old fixed 0.5: a good ranking (ROC AUC ~0.9) that finds few of the rare positives
    at_half = score_model(model, "adult:rare", adult_spec, test, min_group_size=200, operational=False)
    actual = test[label].mean()
    assert at_half.metrics["roc_auc"] > 0.8 and at_half.metrics["positive_rate"] < actual / 3

    # max F1 on the validation rows (never the test rows): the model predicts the rare class about as often as it is
    chosen = decide(adult_spec, model, rare[rare["split"] == "validation"], "test")
    assert model.threshold == chosen.threshold < 0.3 and chosen.policy == "max_f1"
    decided = score_model(model, "adult:rare", adult_spec, test, min_group_size=200, operational=False)
    assert decided.threshold == chosen.threshold and decided.metrics["f1"] > at_half.metrics["f1"] + 0.1
    assert actual / 3 < decided.metrics["positive_rate"] < actual * 3
    assert gates.predicts_both_classes(evaluation(decided, test, label), th).passed

    # a model whose probabilities never reach 0.5 (a real one, scaled down) predicts one class for every row: the
    # degenerate-model gate blocks it, where beating the baseline and the floor would have let it through
    timid = score_model(Halved(model), "adult:timid", adult_spec, test, min_group_size=200, operational=False)
    assert timid.metrics["positive_rate"] == 0.0 and timid.metrics["roc_auc"] == pytest.approx(
        decided.metrics["roc_auc"], abs=1e-6
    )
    blocked = gates.predicts_both_classes(evaluation(timid, test, label), th)
    assert not blocked.passed and blocked.blocks
    assert blocked.description.startswith("degenerate model: the candidate predicts negative for 100.00% of test")
    assert "at its threshold 0.5" in blocked.description and f"holds {actual:.2%} positives" in blocked.description
    assert "negative is the majority class: unless the policy is already balanced" in blocked.description
    everyone = score_model(Halved(model, 0.0), "adult:eager", adult_spec, test, 200, operational=False)
    eager = gates.predicts_both_classes(evaluation(everyone, test, label), th)
    assert not eager.passed and "majority class" not in eager.description  # all positive: the minority


class Halved:
    """A real model's probabilities halved, deciding at ``threshold``: a ranking as good, never reaching 0.5."""

    kind = "logistic"

    def __init__(self, model: TabularModel, threshold: float = 0.5) -> None:
        self.model, self.threshold = model, threshold

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(frame) / 2


def test_the_chosen_threshold_travels_with_the_model_into_serving(
    adult_spec: DatasetSpec, rare: pd.DataFrame, fitted: TabularModel, tmp_path
) -> None:
    """Saved and loaded (what the store, the Bento and batch scoring load), the model decides at the threshold
    chosen on validation, and the service's scorer answers with it."""
    model = copy.copy(fitted)
    chosen = decide(adult_spec, model, rare[rare["split"] == "validation"], "test")
    model.save(tmp_path)
    loaded = TabularModel.load(tmp_path)
    assert loaded.threshold == chosen.threshold != 0.5
    test = rare[rare["split"] == "test"].reset_index(drop=True)
    scorer = Scorer(adult_spec, loaded, "adult-baseline:test", log=None)
    assert scorer.threshold == chosen.threshold
    records = test[[c.name for c in adult_spec.feature_columns]].head(300)
    records = records.astype(object).where(records.notna(), None).to_dict("records")
    answers = scorer.score(records, log=False)
    p = np.array([a["probability"] for a in answers])
    assert [a["label"] for a in answers] == (p >= chosen.threshold).astype(int).tolist()
    assert {a["threshold"] for a in answers} == {chosen.threshold}
    assert np.array_equal(loaded.predict(test.head(300)), (p >= chosen.threshold).astype(int))
