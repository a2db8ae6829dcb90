"""Which model family becomes the candidate: the simplest one within one standard error of the best on validation.

A network costs a DeepSpeed launch, serves slower and explains less than a logistic regression, so it should be the
candidate only when it scores better by more than the noise of the validation rows. Taking the best figure as it
comes lets a lead of a few rows decide: on sources with few positives a ROC AUC moves by about 0.01 between samples.
The one-standard-error rule (Hastie, Tibshirani and Friedman, *The Elements of Statistical Learning*, 7.10; glmnet's
``lambda.1se``) takes the simplest model whose figure is within one standard error of the best: the families are
judged in order of complexity (logistic first), and each one's standard error is that of its gap to the best, from a
stratified paired bootstrap of the validation rows (``paired_bootstrap``: the same resampled rows score every
family, so what the models share cancels out and a real lead shows as many errors: on Adult the network leads by
0.027, 14 errors). The rows are those no family was selected on (``TrainingWindow.validation_half``): a network
search picks its best trial on its validation rows, and on those rows its figure is optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ml_assets.model.paired_bootstrap import BOOTSTRAP_ROWS, METRICS, RESAMPLES, SEED, gap_standard_errors


@dataclass(frozen=True)
class FamilyChoice:
    """The candidate's family, the best one on validation, every family's figure and the standard error of its
    gap to the best."""

    pick: str
    best: str
    metric: str
    scores: dict[str, float]
    gap_se: dict[str, float]

    def describe(self) -> str:
        """One line for the UI and the log."""
        if self.pick == self.best:
            return f"the {self.pick} family, the best on validation {self.metric} ({self.scores[self.pick]:.4f})"
        return (
            f"the {self.pick} family, within one standard error of the best on validation {self.metric} "
            f"({self.scores[self.pick]:.4f} against {self.best}'s {self.scores[self.best]:.4f}, standard error of "
            f"the gap {self.gap_se[self.pick]:.4f}), and simpler (one-standard-error rule)"
        )


def choose_family(
    y: np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    metric: str,
    higher_is_better: bool,
    resamples: int = RESAMPLES,
    max_rows: int = BOOTSTRAP_ROWS,
    seed: int = SEED,
) -> FamilyChoice:
    """The first family of ``probabilities`` (listed simplest first) whose validation ``metric`` is within one
    standard error of the best family's; a tie keeps the first."""
    score = METRICS[metric]
    y = np.asarray(y).astype(np.int64)
    scores = {family: score(y, np.asarray(p, dtype=np.float64)) for family, p in probabilities.items()}
    sign = 1.0 if higher_is_better else -1.0
    finite = [f for f in scores if np.isfinite(scores[f])]
    if not finite:  # nothing scored (a diverged network alone): the first family, as listed
        first = next(iter(scores))
        return FamilyChoice(pick=first, best=first, metric=metric, scores=scores, gap_se=dict.fromkeys(scores, 0.0))
    best = max(finite, key=lambda f: sign * scores[f])  # the first of equals
    gap_se = gap_standard_errors(y, {f: probabilities[f] for f in finite}, best, metric, resamples, max_rows, seed)
    gap_se |= {f: float("nan") for f in scores if f not in gap_se}
    pick = next(f for f in finite if sign * (scores[best] - scores[f]) <= gap_se[f])  # best itself always qualifies
    return FamilyChoice(pick=pick, best=best, metric=metric, scores=scores, gap_se=gap_se)
