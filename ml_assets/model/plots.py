"""Small ROC and calibration plots as markdown-embedded PNGs, for asset metadata a person reads in the UI."""

from __future__ import annotations

import numpy as np

from ml_assets.markdown import figure, new_figure


def roc_plot(y: np.ndarray, curves: dict[str, np.ndarray]) -> str:
    """ROC curves of several models on the same labels, as a markdown image."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = new_figure()
    for name, p in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})", linewidth=1.2)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the test split")
    ax.legend(fontsize=7, loc="lower right")
    return figure(fig, "ROC curves")


def calibration_plot(y: np.ndarray, curves: dict[str, np.ndarray], n_bins: int = 10) -> str:
    """Reliability diagram (observed positive rate per predicted-probability bin), as a markdown image."""
    from sklearn.calibration import calibration_curve

    fig, ax = new_figure()
    for name, p in curves.items():
        observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
        ax.plot(predicted, observed, marker="o", markersize=3, label=name, linewidth=1.2)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration")
    ax.legend(fontsize=7, loc="upper left")
    return figure(fig, "calibration curves")
