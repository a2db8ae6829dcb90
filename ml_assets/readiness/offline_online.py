"""``offline_online_agreement``: do offline proxy metrics track the online ones? (The ML Test Score, model-2.)

The champion's offline figure (ROC AUC on its evaluation's test split, which ``model_monitoring`` records beside
each day as ``evaluation_roc_auc``) against its realized figure on served rows whose labels landed (the same
days' ``realized_roc_auc``, pooled by labeled rows). The ``metrics_agree`` check warns when they diverge by more
than the spec's ``monitoring.performance_drop``; with three or more champions judged both ways, the rank
correlation between offline and online figures across them is reported too. Until labels land for at least
``monitoring.min_labeled_rows`` of the champion's served rows, the check fails as a warning that says why and
records ``judged: false`` (the score counts that as not run, neither passed nor failed), and the asset records the
reason as ``not_judged``.
"""

import sys
from collections.abc import Sequence
from dataclasses import dataclass

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
from scipy.stats import spearmanr

from ml_assets import markdown
from ml_assets.automation import on_champion_or_checks_change
from ml_assets.dataset import DatasetSpec
from ml_assets.event_log import metadata_text
from ml_assets.model.registry import current_champion_tag
from ml_assets.readiness.evidence import JUDGED, NOT_JUDGED
from ml_assets.versioning import code_version

ASSET = "offline_online_agreement"
CHECK = "metrics_agree"
MONITORING = AssetKey("model_monitoring")


@dataclass(frozen=True)
class ServedDay:
    """One day of ``model_monitoring`` for one model: its offline figure and what it realized."""

    day: str
    model_tag: str
    offline: float
    realized: float
    labeled_rows: int


@dataclass(frozen=True)
class Agreement:
    model_tag: str
    offline: float
    online: float  # realized, pooled over the days by labeled rows
    days: int
    labeled_rows: int
    tolerance: float

    @property
    def gap(self) -> float:
        return self.online - self.offline

    @property
    def agree(self) -> bool:
        return abs(self.gap) <= self.tolerance


def agreement(days: Sequence[ServedDay], tag: str, tolerance: float) -> Agreement | None:
    """``tag``'s offline figure against its pooled realized one; None when no day of it has realized figures."""
    mine = [d for d in days if d.model_tag == tag and d.labeled_rows > 0]
    if not mine:
        return None
    rows = sum(d.labeled_rows for d in mine)
    online = sum(d.realized * d.labeled_rows for d in mine) / rows
    return Agreement(tag, mine[-1].offline, online, len(mine), rows, tolerance)


def rank_correlation(days: Sequence[ServedDay]) -> float | None:
    """Spearman correlation of offline and pooled online figures across models (three or more), else None."""
    tags = sorted({d.model_tag for d in days})
    pairs = [(a.offline, a.online) for t in tags if (a := agreement(days, t, 0.0)) is not None]
    if len(pairs) < 3:
        return None
    return float(spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic)


def served_days(instance: DagsterInstance, limit: int = 400) -> list[ServedDay]:
    """Every recorded model_monitoring day with realized figures (oldest first, the latest record per day)."""
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=MONITORING), limit=limit).records
    latest: dict[str, ServedDay] = {}
    for rec in records:  # newest first
        mat = rec.asset_materialization
        if mat is None or mat.partition is None or mat.partition in latest:
            continue
        meta = mat.metadata
        if "realized_roc_auc" not in meta or "evaluation_roc_auc" not in meta:
            continue
        latest[mat.partition] = ServedDay(
            day=mat.partition,
            model_tag=metadata_text(meta.get("main_model_tag")) or "",
            offline=float(meta["evaluation_roc_auc"].value),
            realized=float(meta["realized_roc_auc"].value),
            labeled_rows=int(meta["labeled_rows"].value) if "labeled_rows" in meta else 0,
        )
    return [latest[d] for d in sorted(latest)]


def build_offline_online_agreement(spec: DatasetSpec) -> AssetsDefinition:
    tolerance = spec.monitoring.performance_drop
    min_rows = spec.monitoring.min_labeled_rows

    @asset(
        name=ASSET,
        group_name="monitoring",
        deps=["champion_model"],
        check_specs=[
            AssetCheckSpec(
                CHECK,
                asset=ASSET,
                description=f"the champion's realized ROC AUC is within {tolerance} of its offline test figure (warns)",
            )
        ],
        automation_condition=on_champion_or_checks_change(timezone=spec.timezone),
        code_version=code_version(spec, sys.modules[__name__], uses=("monitoring",)),
        description="The champion's offline (test split) ROC AUC against its realized ROC AUC on served, labeled "
        "rows, and across champions their rank correlation (The ML Test Score: offline proxies track online).",
    )
    def offline_online_agreement(context: AssetExecutionContext) -> MaterializeResult:
        tag = current_champion_tag(context.instance) or "none"
        days = served_days(context.instance)
        found = agreement(days, tag, tolerance)
        correlation = rank_correlation(days)
        meta: dict = {"model_tag": tag, "days_with_labels": len(days)}
        if correlation is not None:
            meta["offline_online_rank_correlation"] = correlation
        if found is None or found.labeled_rows < min_rows:
            why = (
                f"not judged: no served day of {tag} has realized figures yet (labels land later)"
                if found is None
                else f"not judged: {found.labeled_rows} labeled rows of {tag} over {found.days} day(s) < "
                f"monitoring.min_labeled_rows {min_rows}: too few to compare"
            )
            return MaterializeResult(
                metadata=meta | {NOT_JUDGED: why},
                check_results=[
                    AssetCheckResult(
                        check_name=CHECK,
                        passed=False,
                        severity=AssetCheckSeverity.WARN,
                        description=why,
                        metadata={JUDGED: False},
                    )
                ],
            )
        meta |= {
            "offline_roc_auc": found.offline,
            "online_roc_auc": found.online,
            "gap": found.gap,
            "labeled_rows": found.labeled_rows,
            "days": MetadataValue.md(
                markdown.table(
                    [
                        {"day": d.day, "offline": d.offline, "realized": d.realized, "labeled": d.labeled_rows}
                        for d in days
                        if d.model_tag == tag
                    ]
                )
            ),
        }
        verdict = (
            f"{tag}: realized ROC AUC {found.online:.4f} over {found.labeled_rows} labeled rows ({found.days} days) "
            f"vs offline {found.offline:.4f}: gap {found.gap:+.4f} "
            + ("within" if found.agree else "beyond")
            + f" {tolerance}"
        )
        return MaterializeResult(
            metadata=meta,
            check_results=[
                AssetCheckResult(
                    check_name=CHECK,
                    passed=found.agree,
                    severity=AssetCheckSeverity.WARN,
                    description=verdict,
                    metadata={JUDGED: True, "gap": found.gap},
                )
            ],
        )

    return offline_online_agreement
