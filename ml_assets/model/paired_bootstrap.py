"""Standard errors of the gap between models scored on the same rows, by a stratified paired bootstrap.

Two models scored on the same rows share most of their errors; the noise in the difference of their figures is
what decides whether one is better, and it is much smaller than either figure's own noise. Resampling the rows and
scoring every model on the same resample measures exactly that. Positives and negatives are drawn each in their own
numbers, so every resample holds both labels (a ROC AUC of a resample without positives is undefined). Used by the
candidate's family choice (on validation) and by ``beats_baseline`` (on test).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ml_assets.model.metrics import average_precision, log_loss, roc_auc

METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": roc_auc,
    "pr_auc": average_precision,
    "log_loss": log_loss,
}
RESAMPLES = 200
BOOTSTRAP_ROWS = 20_000  # rows a resample draws at most; a larger split's standard error is scaled down from it
SEED = 0


def gap_standard_errors(
    y: np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    reference: str,
    metric: str,
    resamples: int = RESAMPLES,
    max_rows: int = BOOTSTRAP_ROWS,
    seed: int = SEED,
) -> dict[str, float]:
    """Standard error of each model's ``metric`` gap to ``reference``'s (0 for ``reference`` itself) over
    stratified paired resamples of at most ``max_rows`` rows, the same rows for every model; from a resample
    smaller than the split the error is scaled by sqrt(resample / split), as a standard error falls with the
    square root of the rows. All 0 when the rows hold one label or there is one model."""
    score = METRICS[metric]
    y = np.asarray(y).astype(np.int64)
    arrays = {name: np.asarray(p, dtype=np.float64) for name, p in probabilities.items()}
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n = len(y)
    if len(positives) == 0 or len(negatives) == 0 or len(arrays) == 1:
        return dict.fromkeys(arrays, 0.0)
    rng = np.random.default_rng(seed)
    size = min(n, max_rows)
    n_pos = max(1, round(size * len(positives) / n))
    n_neg = max(1, size - n_pos)
    gaps: dict[str, list[float]] = {name: [] for name in arrays}
    for _ in range(resamples):
        rows = np.concatenate([rng.choice(positives, n_pos), rng.choice(negatives, n_neg)])
        drawn = y[rows]
        base = score(drawn, arrays[reference][rows])
        for name, p in arrays.items():
            gaps[name].append(base - score(drawn, p[rows]))
    scale = np.sqrt((n_pos + n_neg) / n)
    return {name: float(np.std(g, ddof=1) * scale) if name != reference else 0.0 for name, g in gaps.items()}
