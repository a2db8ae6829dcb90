"""``feature_importance``: is every feature beneficial? (The ML Test Score, data-2.)

Permutation importance of each feature for the serving champion on the validation rows of the newest approved
window: the drop of ROC AUC when one feature's values are shuffled, repeated with several shuffles. A feature
whose drop is within the noise of those repeats (or below a floor) adds nothing the model can use: the
``no_useless_features`` check warns and names it, so a person can drop it (cost, risk) or find why it is dead.
"""

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from sklearn.metrics import roc_auc_score

from ml_assets import markdown
from ml_assets.automation import after_new_champion
from ml_assets.data.approval import TRAINING_SET_DEP, TrainingSetRef, load_approved
from ml_assets.dataset import DatasetSpec
from ml_assets.model.bundle import ModelRef
from ml_assets.model.evaluation import predictions
from ml_assets.model.refs import load_stored
from ml_assets.model.window_reads import JUDGE_SAMPLE_ROWS, labeled_sample
from ml_assets.versioning import code_version
from resources.model_store import ModelStore

CHECK = "no_useless_features"
REPEATS = 5
MIN_IMPORTANCE = 0.001  # ROC AUC points: a drop smaller than this is no benefit worth a feature's cost
NOISE_SIGMAS = 2.0


@dataclass(frozen=True)
class FeatureImportance:
    feature: str
    importance: float  # mean drop of ROC AUC over the shuffles
    spread: float  # standard deviation of the drop over the shuffles

    @property
    def noise(self) -> float:
        """The band within which a drop is indistinguishable from no effect."""
        return max(MIN_IMPORTANCE, NOISE_SIGMAS * self.spread)

    @property
    def useless(self) -> bool:
        return self.importance <= self.noise


def permutation_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    y: np.ndarray,
    features: Sequence[str],
    repeats: int = REPEATS,
    seed: int = 0,
) -> tuple[float, list[FeatureImportance]]:
    """The ROC AUC on ``frame`` and each feature's importance: the mean and spread of its drop when shuffled."""
    if len(set(np.asarray(y).tolist())) != 2:
        raise ValueError(f"permutation importance needs both labels among the {len(y)} rows")
    rng = np.random.default_rng(seed)
    base = float(roc_auc_score(y, predict(frame)))
    found = []
    for feature in features:
        drops = []
        for _ in range(repeats):
            shuffled = frame.copy()
            shuffled[feature] = frame[feature].to_numpy()[rng.permutation(len(frame))]
            drops.append(base - float(roc_auc_score(y, predict(shuffled))))
        found.append(FeatureImportance(feature, float(np.mean(drops)), float(np.std(drops, ddof=1))))
    return base, sorted(found, key=lambda f: -f.importance)


def importance_table(importances: Sequence[FeatureImportance]) -> str:
    return markdown.table(
        [
            {
                "feature": f.feature,
                "importance": f.importance,
                "noise band": f.noise,
                "verdict": "USELESS" if f.useless else "ok",
            }
            for f in importances
        ],
        digits=4,
    )


def build_feature_importance(spec: DatasetSpec) -> AssetsDefinition:
    """``feature_importance`` of the champion on the newest approved window's validation rows, and its check."""
    features = [c.name for c in spec.feature_columns]

    @asset(
        name="feature_importance",
        group_name="model",
        deps=[TRAINING_SET_DEP],
        check_specs=[
            AssetCheckSpec(
                CHECK,
                asset="feature_importance",
                description="every feature's permutation importance is above the noise of its shuffles (warns)",
            )
        ],
        automation_condition=after_new_champion(),
        code_version=code_version(spec, sys.modules[__name__], uses=("columns",)),
        description="Permutation importance of each feature for the champion on validation rows: the drop of "
        "ROC AUC when the feature is shuffled (The ML Test Score: all features are beneficial).",
    )
    def feature_importance(
        context: AssetExecutionContext,
        champion_model: ModelRef,
        approved_training_set: TrainingSetRef,
        model_store: ModelStore,
    ) -> MaterializeResult:
        window = load_approved(context, approved_training_set, "feature_importance")
        # a bounded, seeded sample of the labeled validation rows (all of them on a window no larger): each
        # feature is shuffled and scored again several times, so whole rows are needed, and this many suffice
        rows = labeled_sample(window, "validation", JUDGE_SAMPLE_ROWS)
        model = load_stored(model_store, champion_model.tag)
        y = rows[spec.label_column].to_numpy(dtype=np.int64)
        base, found = permutation_importance(lambda f: predictions(model, f), rows, y, features)
        useless = [f.feature for f in found if f.useless]
        return MaterializeResult(
            metadata={
                "model_tag": champion_model.tag,
                "validation_rows": len(rows),
                "sample_rows": len(rows),
                "roc_auc": base,
                "importance": MetadataValue.md(importance_table(found)),
                **{f"importance_{f.feature}": f.importance for f in found},
            },
            check_results=[
                AssetCheckResult(
                    check_name=CHECK,
                    passed=not useless,
                    severity=AssetCheckSeverity.WARN,
                    description=(
                        f"features within the noise of their shuffles (no benefit): {', '.join(useless)}"
                        if useless
                        else f"all {len(found)} features beat the noise of their shuffles"
                    ),
                    metadata={"useless_features": ", ".join(useless) or "none", "model_tag": champion_model.tag},
                )
            ],
        )

    return feature_importance
