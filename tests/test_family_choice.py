"""The candidate's family: the simplest within one standard error of the best on validation (family_choice)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.model.family_choice import choose_family


def scored(n: int, positives: float, noise: dict[str, float], seed: int = 0) -> tuple[np.ndarray, dict]:
    """Labels drawn from true probabilities, and each family's probabilities: the true log-odds plus noise of its
    own scale (a smaller scale ranks better and has the lower log loss)."""
    rng = np.random.default_rng(seed)
    logit = 2.0 * rng.normal(0, 1, n) + np.log(positives / (1 - positives)) - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    families = {f: 1 / (1 + np.exp(-(logit + rng.normal(0, s, n)))) for f, s in noise.items()}
    return y, families


def test_a_family_better_by_far_more_than_noise_is_chosen() -> None:
    y, p = scored(20_000, 0.3, {"logistic": 2.0, "network": 0.1})
    choice = choose_family(y, p, "roc_auc", higher_is_better=True)
    assert choice.pick == choice.best == "network"
    assert choice.scores["network"] - choice.scores["logistic"] > 5 * choice.gap_se["logistic"]
    assert choice.scores["network"] == pytest.approx(roc_auc_score(y, p["network"]))
    assert choice.describe().startswith("the network family, the best on validation roc_auc")


def test_a_lead_within_noise_keeps_the_simpler_family() -> None:
    """Few positives (Default: 53 of 1,666): two nearly equal models, the complex one ahead by noise."""
    y, p = scored(1_666, 0.05, {"logistic": 0.3, "network": 0.3}, seed=0)
    choice = choose_family(y, p, "roc_auc", higher_is_better=True)
    lead = choice.scores["network"] - choice.scores["logistic"]
    assert choice.best == "network" and 0 < lead <= choice.gap_se["logistic"], (choice, lead)
    assert choice.pick == "logistic"
    assert "within one standard error" in choice.describe() and "one-standard-error rule" in choice.describe()


def test_a_tie_keeps_the_first_and_a_lower_is_better_metric_points_the_other_way() -> None:
    y, p = scored(2_000, 0.4, {"logistic": 1.0})
    same = {"logistic": p["logistic"], "network": p["logistic"].copy()}
    assert choose_family(y, same, "roc_auc", higher_is_better=True).pick == "logistic"
    y, p = scored(20_000, 0.3, {"logistic": 2.0, "network": 0.1})
    assert choose_family(y, p, "log_loss", higher_is_better=False).pick == "network"


def test_the_bootstrap_is_seeded_and_bounded_in_rows() -> None:
    y, p = scored(50_000, 0.2, {"logistic": 1.0, "network": 0.9})
    first = choose_family(y, p, "roc_auc", higher_is_better=True, max_rows=5_000)
    assert first == choose_family(y, p, "roc_auc", higher_is_better=True, max_rows=5_000)
    whole = choose_family(y, p, "roc_auc", higher_is_better=True, max_rows=50_000, resamples=100)
    # scaled from a tenth of the rows, the standard error is that of the whole split, within bootstrap noise
    assert first.gap_se["logistic"] == pytest.approx(whole.gap_se["logistic"], rel=0.35)


def test_one_family_or_one_label_has_no_gap_to_judge() -> None:
    y, p = scored(500, 0.3, {"logistic": 1.0})
    assert choose_family(y, p, "roc_auc", higher_is_better=True).gap_se == {"logistic": 0.0}
    two = {"logistic": p["logistic"], "network": p["logistic"] ** 2}
    assert choose_family(np.zeros(500, dtype=np.int64), two, "log_loss", higher_is_better=False).pick in two


def test_a_family_that_scored_nothing_finite_is_never_chosen() -> None:
    """A diverged network (NaN probabilities give a NaN log loss) listed beside the logistic regression: the choice
    is among the finite scores, never a bare StopIteration."""
    y, p = scored(2_000, 0.3, {"logistic": 0.5})
    diverged = {"network": np.full(len(y), np.nan), "logistic": p["logistic"]}
    choice = choose_family(y, diverged, "log_loss", higher_is_better=False)
    assert choice.pick == choice.best == "logistic" and np.isnan(choice.gap_se["network"])
    alone = choose_family(y, {"network": np.full(len(y), np.nan)}, "log_loss", higher_is_better=False)
    assert alone.pick == "network"
