"""The search's schedule without processes: successive halving's rungs and cuts, and the greedy ensemble, on
trials whose validation results are given (the DeepSpeed path that produces them is test_training.py's)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ml_assets.model.metrics import validation_scores
from ml_assets.model.network import NetworkConfig
from ml_assets.model.train import (
    ClassWeight,
    Halving,
    Job,
    Reporter,
    State,
    Trial,
    TrialRun,
    choose_ensemble,
    halve,
    rungs,
    trial_figures,
)

DEFAULT_HALVING = Halving(3, 2)


def job(trials: int, max_epochs: int = 20, halving: Halving | None = DEFAULT_HALVING, ensemble_size: int = 5) -> Job:
    return Job.model_construct(
        output_dir="",
        checkpoint_dir=Path("."),
        spec=None,  # type: ignore[arg-type]  # not read by the schedule
        trials=[Trial(f"trial-{i:02d}", NetworkConfig(), {}, {}) for i in range(trials)],
        select_by="roc_auc",
        higher_is_better=True,
        max_seconds=None,
        device="cpu",
        precision="fp32",
        max_epochs=max_epochs,
        epoch_rows=None,
        patience=3,
        seed=0,
        warmup_fraction=0.05,
        launched_at=0.0,
        halving=halving,
        ensemble_size=ensemble_size,
    )


def trained(trial: Trial, aucs: list[float], probs: np.ndarray | None = None) -> TrialRun:
    """A trial that ran ``len(aucs)`` epochs with these validation ROC AUCs."""
    state = State(epoch=len(aucs) - 1, best_epoch=int(np.argmax(aucs)), best_score=max(aucs))
    state.history = [
        {"epoch": e + 1, "train_loss": 0.5, "val_roc_auc": a, "val_log_loss": 0.5} for e, a in enumerate(aucs)
    ]
    if probs is not None:
        state.best_probs, state.best_state = torch.from_numpy(probs), {"w": torch.zeros(1)}
    return TrialRun(trial, trial.network, ClassWeight(), object(), {}, 1, 1, Path("."), state, 10, None)


def test_rungs_grow_by_eta_up_to_max_epochs() -> None:
    assert rungs(job(8)) == [3, 6, 12, 20]
    assert rungs(job(8, max_epochs=4)) == [3, 4]
    assert rungs(job(1)) == [20]  # nothing to compare
    assert rungs(job(8, halving=None)) == [20]


def test_halving_keeps_the_best_half_and_stops_the_rest_where_they_are() -> None:
    j = job(5)
    aucs = [0.70, 0.90, 0.80, 0.60, 0.85]
    runs = {i: trained(t, [a - 0.02, a, a - 0.01]) for i, (t, a) in enumerate(zip(j.trials, aucs, strict=True))}
    keep = halve(j, runs, list(runs), 3, Reporter(None))
    assert keep == [1, 2, 4]  # ceil(5 / 2) best on validation
    for i in (0, 3):
        assert runs[i].engine is None and runs[i].stopped_by == "halving"
        row = trial_figures(j.trials[i], runs[i], [])
        assert row["status"] == "stopped by halving" and row["stopped_at_epoch"] == 3
    assert all(runs[i].engine is not None for i in keep)
    never = trial_figures(j.trials[0], None, [])
    assert never["status"] == "skipped (budget)"


def test_the_ensemble_takes_trials_that_help_on_validation_and_only_while_they_do() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    signal = labels + rng.normal(0, 1.0, (3, 4000))  # three trials: same signal, independent errors
    probs = [1 / (1 + np.exp(-(s - 0.5))) for s in signal]
    j = job(4, ensemble_size=5)
    data = SimpleNamespace(val_labels=labels)
    runs = [trained(t, [validation_scores(labels, p)["roc_auc"]], p) for t, p in zip(j.trials, probs, strict=False)]
    useless = np.full(4000, 0.5)  # a trial with no signal never joins
    runs.append(trained(j.trials[3], [0.5], useless))
    ranked = sorted(runs, key=lambda r: -r.best_metrics()["roc_auc"])
    members = choose_ensemble(j, ranked, data)
    assert len(members) == 3 and runs[3] not in members and members[0] is ranked[0]
    mean = np.mean([m.state.best_probs.numpy() for m in members], axis=0)
    assert validation_scores(labels, mean)["roc_auc"] > ranked[0].best_metrics()["roc_auc"] + 0.01
    assert choose_ensemble(job(4, ensemble_size=1), ranked, data) == ranked[:1]  # ensembles off


@pytest.mark.parametrize(("rate", "weight"), [(0.2, 4.0), (0.5, 1.0)])
def test_balanced_class_weight_and_its_logit_correction(rate: float, weight: float) -> None:
    balanced = Trial("t", NetworkConfig(), {}, {"class_weight": "balanced"})
    w = ClassWeight.of(balanced, rate)
    assert w.weight == pytest.approx(weight) and w.offset == pytest.approx(-np.log(weight))
    assert ClassWeight.of(Trial("t", NetworkConfig(), {}, {}), rate) == ClassWeight()
