"""``ml_test_score``: The ML Test Score of the serving champion, live; and the ``readiness`` gate on promotion.

The asset maps each of the 28 tests of Breck et al. (``ml_assets.readiness.rubric``) to the evidence that automates
it in this graph (``ml_assets.readiness.evidence``: checks and their latest results about the champion's lineage,
sensors running, jobs, the records written with the champion, recorded test-suite runs) and to the reviewed manual
attestations (``ml_assets/readiness/attestations.yaml``), and records the 28-row table, the four section scores and the final
score (their minimum) as numbers the UI plots, with what would earn every missing point.

The ``readiness`` check is a blocking check on ``model_evaluation``: it scores the *candidate* the evaluation judged
(its gates as this evaluation decides them, everything else as the instance holds it) and fails when the final
score is below the spec's ``readiness.min_score``, naming each test that fell short and why, so ``champion_model``
is skipped in that run and not requested by automation afterwards.
"""

import sys
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetsDefinition,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from ml_assets import markdown
from ml_assets.automation import on_champion_or_checks_change, with_its_asset
from ml_assets.dataset import DatasetSpec
from ml_assets.model.evaluation import Evaluation
from ml_assets.model.gates import READINESS_CHECK, evaluate_gates, thresholds_for
from ml_assets.model.registry import current_champion_tag
from ml_assets.readiness import attestations as attestations_module
from ml_assets.readiness import evidence as evidence_module
from ml_assets.readiness import rubric as rubric_module
from ml_assets.readiness.attestations import load_attestations
from ml_assets.readiness.dependencies import build_dependency_versions
from ml_assets.readiness.evidence import GraphFacts, GraphFactsSource, Lineage, find_evidence, resolve_lineage
from ml_assets.readiness.feature_importance import build_feature_importance
from ml_assets.readiness.offline_online import build_offline_online_agreement
from ml_assets.readiness.performance import build_performance_regression
from ml_assets.readiness.reproducibility import build_reproducibility
from ml_assets.readiness.rubric import Evidence, EvidenceKind, EvidenceStatus, Score, Section, all_refs, check, score
from ml_assets.readiness.staleness import build_staleness_impact
from ml_assets.versioning import source_version, spec_part

READINESS = READINESS_CHECK


def compute_score(instance: DagsterInstance, facts: GraphFacts, lineage: Lineage) -> Score:
    """The rubric scored on what the graph defines, the instance recorded and the attestations say."""
    found = find_evidence(instance, facts, all_refs(), lineage)
    return score(found, attested=[a.test for a in load_attestations()])


def tests_table(result: Score) -> str:
    """The 28 rows: test, section, status, points and each piece of evidence as found."""
    return markdown.table(
        [
            {
                "test": t.test.id,
                "title": t.test.title,
                "status": t.status.value,
                "points": t.points,
                "evidence": "; ".join(evidence_link(e) for e in t.evidence) or "none here",
            }
            for t in result.tests
        ],
        digits=1,
    )


def evidence_link(found: Evidence) -> str:
    """A piece of evidence as found, its name (in code style: check names hold * and _) a link to its asset's page
    in the UI: the checks tab for a check, the asset for a record."""
    text = found.describe()
    kind, name = found.ref.kind, found.ref.name
    if kind is EvidenceKind.CHECK:
        target = f"/assets/{name.rsplit('.', 1)[0]}?view=checks"
    elif kind is EvidenceKind.RECORD:
        target = f"/assets/{name.split(':', 1)[0]}"
    else:
        return text
    return text.replace(str(found.ref), f"[`{found.ref}`]({target})", 1)


def missing_table(result: Score) -> str:
    """For every test short of its point: the points missing and what would earn them."""
    rows = [
        {"test": t.test.id, "missing": 1.0 - t.points, "why and how to earn it": t.shortfall}
        for t in result.short_of_full()
    ]
    return markdown.table(rows, digits=1) if rows else "every test earns its point"


def score_metadata(result: Score) -> dict[str, Any]:
    """Section scores and the final score as numbers (plotted across materializations), and the two tables."""
    return {
        **{f"{s.value}_score": float(result.sections[s]) for s in Section},
        "final_score": float(result.final),
        "tests": MetadataValue.md(tests_table(result)),
        "missing_points": MetadataValue.md(missing_table(result)),
        "tests_automated": sum(1 for t in result.tests if t.points == 1.0),
        "tests_manual": sum(1 for t in result.tests if t.points == 0.5),
    }


def readiness_shortfall(result: Score, min_score: float) -> str:
    """The sections below ``min_score`` and, in them, each test short of its point and why ('' when ready)."""
    low = [s for s in Section if result.sections[s] < min_score]
    if not low:
        return ""
    sections = ", ".join(f"{s.value} {result.sections[s]:.1f}" for s in low)
    tests = "; ".join(
        f"{t.test.id} ({t.test.title}): {t.status.value}, {t.shortfall}"
        for t in result.short_of_full()
        if t.test.section in low
    )
    return (
        f"The ML Test Score {result.final:.1f} is below readiness.min_score {min_score:.1f} (sections {sections}). "
        f"Tests short of their point: {tests}"
    )


def build_ml_test_score(spec: DatasetSpec, graph: GraphFactsSource) -> AssetsDefinition:
    """The ``ml_test_score`` asset: the serving champion's readiness, refreshed when it or its checks change."""

    @asset(
        name="ml_test_score",
        group_name="monitoring",
        deps=["champion_model", "model_evaluation", "deployment"],
        automation_condition=on_champion_or_checks_change(timezone=spec.timezone),
        code_version=source_version(
            sys.modules[__name__],
            rubric_module,
            evidence_module,
            attestations_module,
            salt=spec_part(spec, ("readiness",)) + _attestations_text(),
        ),
        description="The ML Test Score (Breck et al. 2017) of the serving champion: the 28 tests with their "
        "evidence in this graph, points, the four section scores and the final score (their minimum).",
    )
    def ml_test_score(context: AssetExecutionContext) -> MaterializeResult:
        tag = current_champion_tag(context.instance)
        lineage = resolve_lineage(context.instance, tag, spec.training.window_days)
        result = compute_score(context.instance, graph.get(), lineage)
        context.log.info(
            f"ML Test Score of {tag or 'no champion'}: final {result.final:.1f} ("
            + ", ".join(f"{s.value} {v:.1f}" for s, v in result.sections.items())
            + ")"
        )
        return MaterializeResult(
            metadata={
                "champion_tag": tag or "none",
                "min_score": spec.readiness.min_score,
                **score_metadata(result),
            }
        )

    return ml_test_score


def _attestations_text() -> str:
    """The attestations file is part of the score's code: a reviewed change of it makes the score stale."""
    path = attestations_module.ATTESTATIONS
    return path.read_text() if path.exists() else ""


def build_readiness_assets(spec: DatasetSpec, graph: GraphFactsSource) -> list[AssetsDefinition]:
    """The score and the evidence assets it reads that nothing else produces."""
    return [
        build_ml_test_score(spec, graph),
        build_feature_importance(spec),
        build_dependency_versions(spec),
        build_performance_regression(spec),
        build_offline_online_agreement(spec),
        build_staleness_impact(spec),
        build_reproducibility(spec),
    ]


def build_readiness_check(spec: DatasetSpec, graph: GraphFactsSource) -> AssetChecksDefinition:
    """The blocking ``readiness`` check on ``model_evaluation``: the candidate's score against the spec's bar."""
    thresholds = thresholds_for(spec)
    min_score = spec.readiness.min_score

    @asset_check(
        asset="model_evaluation",
        name=READINESS,
        blocking=True,
        automation_condition=with_its_asset(),
        description=f"The ML Test Score of the candidate (its gates as judged here) is at least "
        f"readiness.min_score ({min_score:.1f}); short tests are named",
    )
    def readiness(context: AssetCheckExecutionContext, model_evaluation: Evaluation) -> AssetCheckResult:
        gates = {
            f"model_evaluation.{o.name}": Evidence(
                check(f"model_evaluation.{o.name}"),
                # a gate the spec let skip judged nothing: not run, as the live score counts it
                EvidenceStatus.NOT_RUN if o.skipped else EvidenceStatus.PASSED if o.passed else EvidenceStatus.FAILED,
                o.description if o.skipped else "judged by this evaluation",
            )
            for o in evaluate_gates(model_evaluation, thresholds)
        }
        candidate = model_evaluation.candidate_ref.tag
        lineage = resolve_lineage(context.instance, candidate, spec.training.window_days, gates)
        result = compute_score(context.instance, graph.get(), lineage)
        short = readiness_shortfall(result, min_score)
        return AssetCheckResult(
            passed=not short,
            severity=AssetCheckSeverity.ERROR,
            description=short or f"The ML Test Score {result.final:.1f} >= readiness.min_score {min_score:.1f}",
            metadata={"candidate_tag": candidate, "min_score": min_score, **score_metadata(result)},
        )

    return readiness
