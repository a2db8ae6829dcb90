"""Promotion between environments: what QA decided about a model, read from QA's own Dagster instance.

A model moves dev -> qa -> prod only when the environment it leaves accepted it: its ``model_evaluation`` there
(the one that judged this model as candidate) passed every blocking gate, and its ``readiness`` (the ML Test
Score) was not below the spec's level. Nothing is re-decided in the target: the verdicts are read from the source
instance's check evaluations of that very materialization (``ml_assets.event_log.check_evaluations_of``), so a
later evaluation of another model in QA changes nothing about this one. The evidence (the gates, the readiness,
the QA metrics and the run that judged them) travels into the target's record of the promotion: the metadata of
its ``champion_model`` materialization (``ml_assets.model.champion``), beside the model's own lineage, which BentoML's
export/import carries with the model.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass

from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, Failure

from ml_assets import markdown
from ml_assets.event_log import check_evaluations_of, metadata_text
from ml_assets.model.gates import GATE_NAMES, READINESS_CHECK
from ml_assets.settings import Paths

MODEL_EVALUATION = AssetKey("model_evaluation")
# promotions go one way, one step at a time: what each environment may receive from
NEXT = {"qa": ("dev",), "prod": ("qa",)}
# how far back in the source instance a model's evaluation is looked for
EVALUATIONS_SEARCHED = 200


class PromotionRefused(Failure):
    """A promotion that cannot be done: the description is one line saying why."""


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict on the evaluation that judged the model in the source environment."""

    name: str
    passed: bool | None  # None: no result (not executed, or skipped as the spec allows)
    blocking: bool
    description: str

    @property
    def verdict(self) -> str:
        return "no result" if self.passed is None else "passed" if self.passed else "FAILED"


@dataclass(frozen=True)
class QaEvidence:
    """What the source environment recorded about a model: the evaluation's run and time, every gate, readiness."""

    source_env: str
    model_tag: str
    run_id: str
    evaluated_at: float
    gates: tuple[CheckResult, ...]
    readiness: CheckResult
    metrics: dict[str, float]

    def refusal(self, may_skip: Sequence[str]) -> str | None:
        """Why the model may not leave its environment, in one line, or None when it may."""
        failed = [g for g in self.gates if g.passed is False and g.blocking]
        missing = [g.name for g in self.gates if g.passed is None and g.name not in may_skip]
        reasons = []
        if failed:
            reasons.append("blocking gates failed: " + "; ".join(f"{g.name} ({g.description})" for g in failed))
        if missing:
            reasons.append(f"gates with no result: {', '.join(missing)}")
        if self.readiness.passed is False:
            reasons.append(f"readiness below the level ({self.readiness.description})")
        if not reasons:
            return None
        return f"{self.model_tag} did not pass {self.source_env}: " + "; ".join(reasons)

    def table(self) -> str:
        """The gates and readiness as the source environment judged them (markdown, small enough for the UI to show
        in place: why only where a check did not pass)."""
        rows = [
            {"check": c.name, "verdict": c.verdict, "why": "" if c.passed else c.description[:60]}
            for c in (*self.gates, self.readiness)
        ]
        return markdown.table(rows, ["check", "verdict", "why"])


def check_route(source: str, target: str) -> None:
    """Refuse a promotion that skips an environment or goes backwards (prod is rolled back by promoting the
    previous QA-passed model again, never by pulling from prod)."""
    allowed = NEXT.get(target, ())
    if source not in allowed:
        route = " or ".join(f"--from {s} --to {t}" for t, sources in NEXT.items() for s in sources)
        raise PromotionRefused(description=f"promotion from {source} to {target} refused: promotions go {route}")


def open_source_instance(source: Paths, env: str) -> DagsterInstance:
    """The source environment's Dagster instance (read only by the caller); refused when it was never started."""
    if not source.dagster_home.is_dir():
        raise PromotionRefused(
            description=f"promotion refused: environment {env} has no Dagster instance at {source.dagster_home} "
            f"(run it first: ML_ASSETS_ENV={env} ml-assets demo)"
        )
    return DagsterInstance.from_config(str(source.dagster_home))


def qa_evidence(instance: DagsterInstance, model_tag: str, env: str) -> QaEvidence:
    """What ``env``'s instance recorded about ``model_tag``: its newest ``model_evaluation`` as candidate and the
    checks of that materialization. Refused when no evaluation in ``env`` ever judged the model."""
    records = instance.fetch_materializations(MODEL_EVALUATION, limit=EVALUATIONS_SEARCHED).records
    record = next(
        (
            r
            for r in records
            if r.asset_materialization is not None
            and metadata_text(r.asset_materialization.metadata.get("candidate_tag")) == model_tag
        ),
        None,
    )
    if record is None:
        raise PromotionRefused(
            description=f"promotion of {model_tag} refused: no model_evaluation in {env} judged it (evaluate it there "
            f"first: ML_ASSETS_ENV={env} ml-assets demo, or launch model_job in {env}'s UI)"
        )
    found = check_evaluations_of(instance, MODEL_EVALUATION, record.storage_id, [*GATE_NAMES, READINESS_CHECK])
    results = {
        name: CheckResult(
            name=name,
            passed=None if ev is None else ev.passed,
            blocking=ev is None or ev.severity == AssetCheckSeverity.ERROR,
            description=" ".join((ev.description or "").split()) if ev is not None else "not evaluated",
        )
        for name, ev in found.items()
    }
    meta = record.asset_materialization.metadata if record.asset_materialization is not None else {}
    metrics = {
        k: float(v.value)
        for k, v in meta.items()
        if k.startswith("candidate_") and isinstance(getattr(v, "value", None), int | float)
    }
    return QaEvidence(
        source_env=env,
        model_tag=model_tag,
        run_id=record.run_id,
        evaluated_at=record.timestamp,
        gates=tuple(results[n] for n in GATE_NAMES),
        readiness=results[READINESS_CHECK],
        metrics=metrics,
    )


def promoter(by: str = "") -> str:
    """Who promotes: ``by`` when given (``--by``, the job's config), else the user running the process."""
    if by:
        return by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
