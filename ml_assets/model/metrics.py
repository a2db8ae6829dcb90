"""Validation metrics of a binary classifier, computed the same way for every model (baseline and networks)."""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, float]:
    """Log loss, ROC AUC, PR AUC, accuracy and F1 of probabilities ``p`` for labels ``y`` (1 = positive)."""
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, log_loss, roc_auc_score

    y = np.asarray(y).astype(np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    both = len(np.unique(y)) == 2
    return {
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "accuracy": float(accuracy_score(y, p >= threshold)),
        "f1": float(f1_score(y, p >= threshold, zero_division=0.0)),
    }
