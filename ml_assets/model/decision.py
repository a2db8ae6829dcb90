"""The decision threshold: the probability at or above which a row is predicted positive, chosen on validation.

A fixed 0.5 suits balanced, calibrated classes only: with 3 % positives a fine model may score no row above 0.5 and
so never predict the positive class. The threshold is chosen instead by the spec's ``decision`` policy on the
validation split (never the test split the gates judge on), stored in the model (``TabularModel.threshold``), and
so used alike by evaluation, the served model, batch scoring and monitoring.

Candidate thresholds are the validation scores themselves (a row is positive when its probability is >= the
threshold), so every distinct decision on the validation rows is considered once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ml_assets.dataset import DecisionPolicy


@dataclass(frozen=True)
class DecisionThreshold:
    """The chosen threshold, the policy that chose it, and what it gives on the validation rows."""

    threshold: float
    policy: str
    target: float | None
    met: bool  # the policy's target was reached on validation (always true for max_f1, balanced and cost)
    precision: float
    recall: float
    f1: float
    predicted_positive_rate: float
    cost: float | None
    rows: int
    positives: int

    def describe(self) -> str:
        """One line: the threshold, how it was chosen, and what it gives on validation."""
        goal = {
            "max_f1": "the highest F1",
            "balanced": "the highest balanced accuracy",
            "precision": f"the most recall at precision >= {self.target}",
            "recall": f"the most precision at recall >= {self.target}",
            "cost": "the least cost of errors",
        }[self.policy]
        missed = "" if self.met else f" (target {self.target} not reached on validation: fell back to the highest F1)"
        return (
            f"decision threshold {self.threshold:.4g} ({goal}{missed}): on {self.rows:,} validation rows precision "
            f"{self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f}, predicted positive "
            f"{self.predicted_positive_rate:.2%} (actual {self.positives / self.rows:.2%})"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_threshold(policy: DecisionPolicy, y: np.ndarray, p: np.ndarray) -> DecisionThreshold:
    """The threshold ``policy`` picks from labels ``y`` and positive-class probabilities ``p`` (validation rows).

    Ties between thresholds go to the highest one (fewer positive predictions for the same figure). Raises
    ValueError when the rows hold no positive or no negative (no decision can be judged on them).
    """
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels but {len(p)} probabilities")
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise ValueError(
            f"cannot choose a decision threshold on {len(y)} validation rows with {positives} positives: "
            "it needs both labels"
        )
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{int((~np.isfinite(p)).sum())} validation probabilities are not finite")
    # every distinct score, highest first; at threshold t_i the rows scoring >= t_i are predicted positive
    order = np.argsort(-p, kind="mergesort")
    scores, labels = p[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    thresholds = scores[last_of_tie]
    tp = np.cumsum(labels)[last_of_tie].astype(np.float64)
    predicted = (last_of_tie + 1).astype(np.float64)
    fp = predicted - tp
    fn = positives - tp
    precision = tp / predicted
    recall = tp / positives
    f1 = 2 * tp / (2 * tp + fp + fn)
    cost = None
    met = True
    if policy.policy == "precision":
        ok = precision >= policy.target  # type: ignore[operator]
        met = bool(ok.any())
        pick = _best(np.where(ok, recall, -1.0)) if met else _best(f1)
    elif policy.policy == "recall":
        ok = recall >= policy.target  # type: ignore[operator]
        met = bool(ok.any())  # always: the lowest threshold predicts every row positive
        pick = _best(np.where(ok, precision, -1.0))
    elif policy.policy == "cost":
        assert policy.costs is not None
        costs = fp * policy.costs.fp + fn * policy.costs.fn
        pick = _best(-costs)
        cost = float(costs[pick])
    elif policy.policy == "balanced":  # Youden's J: recall + specificity, blind to which class is the majority
        pick = _best(recall - fp / (len(y) - positives))
    else:
        pick = _best(f1)
    return DecisionThreshold(
        threshold=float(thresholds[pick]),
        policy=policy.policy,
        target=policy.target,
        met=met,
        precision=float(precision[pick]),
        recall=float(recall[pick]),
        f1=float(f1[pick]),
        predicted_positive_rate=float(predicted[pick] / len(y)),
        cost=cost,
        rows=len(y),
        positives=positives,
    )


def _best(values: np.ndarray) -> int:
    """Index of the largest value; the first (highest threshold) among ties."""
    return int(np.argmax(values))
