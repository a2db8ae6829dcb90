"""``staleness_impact``: how fast does a model go stale? (The ML Test Score, model-4.)

Every former champion still in the store is scored on the labeled test rows of the newest approved window; its age
is the days from the end of the window it was trained on to the newest of those days. The least-squares slope of
ROC AUC against age is the curve's summary: the age at which a model loses ``monitoring.performance_drop`` of ROC
AUC is set against the spec's ``retraining.max_model_age_hours``, and the ``curve_known`` check warns when that
policy lets a model serve past the age at which it has lost that much. With fewer than two ages there is no curve:
the check says so with ``judged: false``.
"""

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
)
from sklearn.metrics import roc_auc_score

from ml_assets import markdown
from ml_assets.automation import after_new_champion
from ml_assets.data.approval import TRAINING_SET_DEP, TrainingSetRef, load_approved
from ml_assets.dataset import DatasetSpec
from ml_assets.event_log import metadata_text
from ml_assets.model.evaluation_asset import judgeable
from ml_assets.model.refs import load_stored
from ml_assets.model.registry import champion_history
from ml_assets.model.window_reads import score_split
from ml_assets.readiness.evidence import JUDGED, NOT_JUDGED
from ml_assets.versioning import code_version
from resources.model_store import ModelStore

CHECK = "curve_known"
MAX_MODELS = 8


@dataclass(frozen=True)
class AgedScore:
    model_tag: str
    trained_until: date
    age_days: float
    roc_auc: float


@dataclass(frozen=True)
class StalenessCurve:
    points: tuple[AgedScore, ...]
    slope_per_day: float  # ROC AUC change per day of age (negative: staleness costs quality)

    def days_to_lose(self, drop: float) -> float | None:
        """Age at which a model has lost ``drop`` of ROC AUC by the slope; None when it does not decay."""
        return drop / -self.slope_per_day if self.slope_per_day < -1e-9 else None  # below float noise: flat


def staleness_curve(points: Sequence[AgedScore]) -> StalenessCurve | None:
    """The least-squares slope of ROC AUC on age; None with fewer than two distinct ages."""
    ages = np.array([p.age_days for p in points], dtype=float)
    if len(set(ages.tolist())) < 2:
        return None
    slope = float(np.polyfit(ages, [p.roc_auc for p in points], 1)[0])
    return StalenessCurve(tuple(sorted(points, key=lambda p: p.age_days)), slope)


def trained_until(instance: DagsterInstance, tags: Sequence[str]) -> dict[str, date]:
    """The end of the training window each tag was trained on (candidate_model's ``training_set_partition``)."""
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("candidate_model")), limit=200)
    found: dict[str, date] = {}
    for rec in records.records:
        mat = rec.asset_materialization
        tag = metadata_text(mat.metadata.get("model_tag")) if mat is not None else None
        window = metadata_text(mat.metadata.get("training_set_partition")) if mat is not None else None
        if tag in tags and tag not in found and window:
            found[tag] = date.fromisoformat(window)
    return found


def build_staleness_impact(spec: DatasetSpec) -> AssetsDefinition:
    drop = spec.monitoring.performance_drop
    max_age_days = spec.retraining.max_model_age_hours / 24

    @asset(
        name="staleness_impact",
        group_name="monitoring",
        deps=[TRAINING_SET_DEP, "champion_model"],
        check_specs=[
            AssetCheckSpec(
                CHECK,
                asset="staleness_impact",
                description=f"the quality-against-age curve is known and a model does not lose {drop} ROC AUC "
                f"before retraining.max_model_age_hours ({spec.retraining.max_model_age_hours:g} h) (warns)",
            )
        ],
        automation_condition=after_new_champion(),
        code_version=code_version(spec, sys.modules[__name__], uses=("monitoring", "retraining")),
        description="Former champions scored on the newest labeled test days: ROC AUC against model age, and the "
        "age at which a model loses monitoring.performance_drop (The ML Test Score: staleness impact known).",
    )
    def staleness_impact(
        context: AssetExecutionContext, approved_training_set: TrainingSetRef, model_store: ModelStore
    ) -> MaterializeResult:
        window = load_approved(context, approved_training_set, "staleness_impact")
        newest = window.window_end
        tags = [t for t, _ in champion_history(context.instance)][:MAX_MODELS]
        until = trained_until(context.instance, tags)
        kept = [tag for tag in tags if tag in until]  # every former champion stays in the store (rollback)
        # every labeled test row scored by each former champion, batch by batch: labels and probabilities only
        test = score_split(spec, window.split("test"), {tag: load_stored(model_store, tag) for tag in kept})
        judgeable(test.y)
        points = [
            AgedScore(
                tag,
                until[tag],
                float((newest - until[tag]).days),
                float(roc_auc_score(test.y, test.probabilities[tag])),
            )
            for tag in kept
        ]
        curve = staleness_curve(points)
        meta: dict = {
            "models_scored": len(points),
            "max_model_age_days": max_age_days,
            "curve": MetadataValue.md(
                markdown.table(
                    [{"model": p.model_tag, "trained until": str(p.trained_until), "age (days)": p.age_days,
                      "roc_auc": p.roc_auc} for p in sorted(points, key=lambda p: p.age_days)]
                )
                if points
                else "no former champion with a known training window"
            ),
        }  # fmt: skip
        if curve is None:
            why = (
                f"not judged: {len(points)} model(s) of distinct age in the champion history, no curve yet (it needs "
                "two champions trained on windows ending on different days)"
            )
            return MaterializeResult(
                metadata=meta | {NOT_JUDGED: why},
                check_results=[
                    AssetCheckResult(check_name=CHECK, passed=False, severity=AssetCheckSeverity.WARN,
                                     description=why, metadata={JUDGED: False})
                ],
            )  # fmt: skip
        days = curve.days_to_lose(drop)
        meta |= {"roc_auc_per_day": curve.slope_per_day, **({"days_to_lose_drop": days} if days else {})}
        too_loose = days is not None and days < max_age_days
        verdict = (
            f"ROC AUC changes {curve.slope_per_day:+.5f} per day of age over {len(points)} models: "
            + (f"a model loses {drop} after {days:.1f} days" if days is not None else "no decay measured")
            + f"; max_model_age_hours allows {max_age_days:.1f} days"
            + (": retrain sooner (lower retraining.max_model_age_hours)" if too_loose else "")
        )
        return MaterializeResult(
            metadata=meta,
            check_results=[
                AssetCheckResult(check_name=CHECK, passed=not too_loose, severity=AssetCheckSeverity.WARN,
                                 description=verdict, metadata={JUDGED: True})
            ],
        )  # fmt: skip

    return staleness_impact
