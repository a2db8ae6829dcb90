"""``champion_model``: promote a blessed candidate, or roll back to a previous champion.

Promotion happens only when every blocking gate on ``model_evaluation`` passed: the gates are blocking asset
checks, so a failed gate skips this asset in the same run; in any other run (UI, automation, CLI) the asset reads
the gates' latest results for the latest evaluation from the instance and refuses a failed, missing or stale
evaluation (one that judged another candidate or another champion than today's), and it re-derives the same
verdict from the stored evaluation before promoting. A promotion is this asset's materialization with the new
champion's ``model_tag``: the instance keeps the champions' history (``ml_assets.model.registry``); models in the
BentoML store are never rewritten, and every former champion stays there for a rollback.

Rollback: launch the ``rollback_champion`` job (it materializes ``champion_model`` alone), or run
``ml-assets rollback [TAG]``. As it comes (an empty ``model_tag``) it rolls back to the champion before the current
one, from the instance's history (``ml_assets.model.registry.previous_champion``), and refuses in one line when
there is none; it never promotes a candidate. To name another former champion::

    ops:
      champion_model:
        config:
          model_tag: adult-classifier:<version>

(``rollback_run_config(tag)`` builds that dict). The tag must be a former champion (it passed the gates once);
``champion_model`` records it as champion again, so ``bento`` and everything downstream see the change as usual.

Promotion from another environment (``ml-assets promote TAG --from qa --to prod``, or the ``promote_model`` job
with ``model_tag`` and ``promote_from`` in the same config): the same asset takes the model that passed the source
environment (``ml_assets.promotion`` reads the verdicts from its instance and refuses in one line otherwise),
imports it with its lineage into this environment's store and records it as champion, with who promoted it, from
where, and the source's evidence in the materialization's metadata, so ``bento`` and ``deployment`` (with its
validation before traffic) follow as for any new champion. In prod this is the only way a model becomes champion:
prod receives only what QA passed. Rolling prod back is promoting the previous QA-passed model again.
"""

import sys
from datetime import timedelta
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetSelection,
    Config,
    DagsterInstance,
    Failure,
    FreshnessPolicy,
    MetadataValue,
    Output,
    asset,
    define_asset_job,
    input_manager,
)
from pydantic import Field

from ml_assets import inline
from ml_assets.automation import on_upstream_update
from ml_assets.dataset import DatasetSpec
from ml_assets.event_log import blocking_verdict, require_passed
from ml_assets.model import gates as gates_module
from ml_assets.model.bundle import ModelRef
from ml_assets.model.evaluation import LOWER_IS_BETTER, METRIC_NAMES, Evaluation, comparison_table
from ml_assets.model.gates import (
    GATE_NAMES,
    READINESS_CHECK,
    evaluate_gates,
    failed_gates,
    gate_table,
    skipped_gates,
    thresholds_for,
)
from ml_assets.model.refs import stored_ref
from ml_assets.model.registry import champion_history, current_champion_tag, previous_champion
from ml_assets.promotion import PromotionRefused, check_route, open_source_instance, promoter, qa_evidence
from ml_assets.settings import paths
from ml_assets.versioning import code_version
from resources.model_store import ModelStore

ROLLBACK_JOB = "rollback_champion"
PROMOTE_JOB = "promote_model"
SOURCE_CHAMPION = "champion"  # as a promotion's model_tag: the source environment's current champion


class ChampionConfig(Config):
    model_tag: str = Field(
        "",
        description="Rollback: the tag of a former champion to make current again. Empty: in the rollback_champion "
        "job, the champion before the current one (refused when there is none); in any other job, promote the "
        "candidate that model_evaluation blessed. With promote_from: the model to promote from that environment.",
    )
    promote_from: str = Field(
        "",
        description="Promotion: the environment model_tag comes from (qa into prod, dev into qa); it must have passed "
        "every blocking gate and readiness there. Empty: no promotion.",
    )
    promoted_by: str = Field("", description="Promotion: who promotes (default: the user running the run)")


def model_age_policy(spec: DatasetSpec) -> FreshnessPolicy:
    """Freshness of the serving model: warn at 3/4 of the spec's max_model_age_hours, fail beyond it."""
    limit = timedelta(hours=spec.retraining.max_model_age_hours)
    return FreshnessPolicy.time_window(fail_window=limit, warn_window=limit * 0.75)


def latest_candidate_tag(context: AssetExecutionContext) -> str | None:
    """The model tag of the latest candidate_model materialization, whichever run made it."""
    event = context.instance.get_latest_materialization_event(AssetKey("candidate_model"))
    mat = event.asset_materialization if event is not None else None
    tag = mat.metadata.get("model_tag") if mat is not None else None
    return str(tag.value) if tag is not None else None


def stale_because(context: AssetExecutionContext, evaluation: Evaluation) -> str | None:
    """Why an evaluation no longer describes the decision at hand, or None when it still does."""
    candidate = evaluation.candidate_ref
    newest = latest_candidate_tag(context)
    if newest is not None and newest != candidate.tag:
        return f"it judged candidate {candidate.tag}, but the latest candidate_model is {newest}"
    judged_against = evaluation.champion_ref.tag if evaluation.champion_ref is not None else None
    serving = current_champion_tag(context.instance)
    if serving != judged_against and serving != candidate.tag:
        return f"it compared against champion {judged_against or 'none'}, but the champion is now {serving or 'none'}"
    return None


def promotion_reason(evaluation: Evaluation, gates_passed: int, previous: str | None) -> str:
    """Why the candidate becomes champion: its primary metric beside the baseline's and the previous champion's."""
    candidate = evaluation.candidate_ref
    m = evaluation.primary_metric
    return (
        f"{candidate.tag} passed all {gates_passed} gates: {m} {evaluation.candidate.metrics[m]:.4f} vs "
        f"baseline {evaluation.baseline.metrics[m]:.4f}"
        + (
            f" and previous champion {evaluation.champion.metrics[m]:.4f} ({evaluation.champion.tag})"
            if evaluation.champion is not None and evaluation.champion.tag != candidate.tag
            else " (first champion)"
            if previous is None
            else ""
        )
    )


def refuse_if_not_ready(instance: DagsterInstance) -> None:
    """The readiness gate holds across runs too: a promotion launched on its own after ``readiness`` failed for
    the latest evaluation is refused. (A graph without the ML Test Score has no result for it: nothing to hold.)"""
    verdict = blocking_verdict(instance, AssetKey("model_evaluation"), [READINESS_CHECK])
    if verdict.failed:
        raise Failure(
            description=f"champion_model refuses to promote: {READINESS_CHECK} failed for the latest "
            "model_evaluation (the ML Test Score is below readiness.min_score; see the check's message)",
            metadata={"failed_checks": READINESS_CHECK},
        )


@input_manager(required_resource_keys={"io_manager"})
def evaluation_if_any(context) -> Evaluation | None:
    """``model_evaluation`` as the IO manager stored it, or None when this environment never evaluated a model: a
    rollback and a promotion need none (prod may only ever receive models from QA)."""
    try:
        return context.resources.io_manager.load_input(context)
    except FileNotFoundError:
        return None


def build_champion_model(spec: DatasetSpec, env: str = "dev"):
    """The ``champion_model`` asset for one dataset spec in environment ``env``."""
    thresholds = thresholds_for(spec)

    @asset(
        name="champion_model",
        group_name="model",
        ins={"model_evaluation": AssetIn(input_manager_key="evaluation_if_any")},
        resource_defs={"evaluation_if_any": evaluation_if_any},
        required_resource_keys={"model_store"},  # a typed resource argument cannot sit beside resource_defs
        automation_condition=on_upstream_update(),
        freshness_policy=model_age_policy(spec),
        code_version=code_version(spec, sys.modules[__name__], gates_module, uses=("gates",)),
        description="The model serving as champion: the evaluated candidate when every blocking gate passed "
        "(the previous one stays in the store), or a former champion named by rollback config.",
    )
    def champion_model(
        context: AssetExecutionContext,
        config: ChampionConfig,
        model_evaluation: Evaluation | None,
    ) -> Output[ModelRef]:
        model_store: ModelStore = context.resources.model_store
        if config.promote_from or context.run.job_name == PROMOTE_JOB:
            return _promote(context, model_store, config, env, spec)
        if config.model_tag or context.run.job_name == ROLLBACK_JOB:  # the rollback job never promotes
            return _rollback(context, model_store, config.model_tag or None)
        if env == "prod":
            raise Failure(
                description="champion_model refuses to crown prod's own candidate: prod's champion comes from QA "
                "(ml-assets promote MODEL_TAG --from qa --to prod, or the promote_model job)"
            )
        if model_evaluation is None:
            raise Failure(
                description="champion_model has no model_evaluation to decide on: materialize it first (model_job)"
            )
        outcomes = evaluate_gates(model_evaluation, thresholds)
        # a gate the spec let skip (it could not judge) has no result to pass: every other one must have passed
        skipped = skipped_gates(outcomes)
        required = [name for name in GATE_NAMES if name not in skipped]
        require_passed(context.instance, AssetKey("model_evaluation"), required, None, "champion_model")
        refuse_if_not_ready(context.instance)
        stale = stale_because(context, model_evaluation)
        if stale:
            raise Failure(
                description=f"champion_model refuses a stale model_evaluation: {stale}. Materialize "
                "model_evaluation again (the champion keeps serving meanwhile)."
            )
        failed = failed_gates(outcomes)
        candidate = model_evaluation.candidate_ref
        if failed:
            raise Failure(
                description=f"candidate {candidate.tag} is not promoted: gates failed: {', '.join(failed)}; "
                f"the champion stays {current_champion_tag(context.instance) or 'unset'}.",
                metadata={"gates": MetadataValue.md(gate_table(outcomes))},
            )
        previous = current_champion_tag(context.instance)
        why = promotion_reason(model_evaluation, len(outcomes) - len(skipped), previous) + (
            f"; skipped as the spec allows: {', '.join(skipped)}" if skipped else ""
        )
        context.log.info(why)
        return Output(
            stored_ref(model_store, candidate.tag),
            metadata={
                "model_tag": candidate.tag,
                "previous_champion": previous or "none",
                "why": why,
                "candidate_vs_champion": MetadataValue.md(champion_comparison(model_evaluation)),
                **champion_figures(model_evaluation),
                "gates": MetadataValue.md(gate_table(outcomes)),
                "comparison": MetadataValue.md(comparison_table(model_evaluation)),
                "action": "promote",
            },
        )

    return champion_model


def champion_comparison(evaluation: Evaluation) -> str:
    """The new champion beside the previous champion (then the baseline) on the same test rows, one metric a row:
    narrow enough to render in place, so the column that shows a worse promotion is never the one cut off."""
    scored = {"new champion": evaluation.candidate}
    if evaluation.champion is not None and evaluation.champion.tag != evaluation.candidate.tag:
        scored["previous champion"] = evaluation.champion
    scored["baseline"] = evaluation.baseline
    rows = [
        {
            "metric": m + (" (lower better)" if m in LOWER_IS_BETTER else ""),
            **{k: v.metrics.get(m) for k, v in scored.items()},
        }
        for m in METRIC_NAMES
    ]
    return inline.table(rows, ["metric", *scored], right=list(scored))


def champion_figures(evaluation: Evaluation) -> dict[str, float]:
    """The new champion's test metrics (and the previous champion's), as numbers: the UI plots them across
    promotions."""
    figures = {m: float(evaluation.candidate.metrics[m]) for m in METRIC_NAMES if m in evaluation.candidate.metrics}
    if evaluation.champion is not None:
        figures |= {
            f"previous_champion_{m}": float(evaluation.champion.metrics[m])
            for m in METRIC_NAMES
            if m in evaluation.champion.metrics
        }
    return figures


class RollbackRefused(Failure):
    """A rollback that cannot be done: the description is one line saying why."""


def rollback_target(instance: DagsterInstance, tag: str | None) -> tuple[str, str]:
    """(the current champion, the champion to roll back to): ``tag``, or the one before the current champion.

    Raises ``RollbackRefused`` naming why, when there is no champion, no previous one, or ``tag`` was never one.
    """
    former = [t for t, _ in champion_history(instance)]
    current = former[0] if former else None
    if current is None:
        raise RollbackRefused(description="rollback refused: there is no champion yet, so nothing to roll back")
    if tag is None:
        previous = previous_champion(instance, current)
        if previous is None:
            raise RollbackRefused(
                description=f"rollback refused: champion {current} has no previous champion to roll back to "
                f"(champions so far: {', '.join(former)})"
            )
        return current, previous
    if tag == current:
        raise RollbackRefused(description=f"rollback refused: {tag} is already the champion")
    if tag not in former:
        raise RollbackRefused(
            description=f"rollback to {tag} refused: it was never champion (champions so far: "
            f"{', '.join(former)}); only a former champion can serve again without passing the gates"
        )
    return current, tag


def _rollback(context: AssetExecutionContext, store: ModelStore, tag: str | None) -> Output[ModelRef]:
    current, target = rollback_target(context.instance, tag)
    ref = stored_ref(store, target)  # raises naming the store when the tag does not exist
    why = f"rollback requested from {current} to {target}" + ("" if tag else " (the previous champion)")
    context.log.info(f"rolled back the champion: {current} -> {target}")
    return Output(
        ref,
        metadata={
            "model_tag": target,
            "previous_champion": current,
            "why": why,
            "action": "rollback",
        },
    )


def _promote(
    context: AssetExecutionContext, store: ModelStore, config: ChampionConfig, env: str, spec: DatasetSpec
) -> Output[ModelRef]:
    """Make the model that passed ``config.promote_from`` this environment's champion, with the evidence."""
    tag, source_env = config.model_tag, config.promote_from
    if not tag or not source_env:
        raise PromotionRefused(
            description="promotion refused: the promote_model job needs both model_tag and promote_from in "
            "ops.champion_model.config"
        )
    check_route(source_env, env)
    source = paths(source_env)
    with open_source_instance(source, source_env) as instance:
        if tag == SOURCE_CHAMPION:  # the model the source environment crowned: what a newcomer promotes
            tag = current_champion_tag(instance) or ""
            if not tag:
                raise PromotionRefused(description=f"promotion refused: {source_env} has no champion to promote")
        evidence = qa_evidence(instance, tag, source_env)
    refusal = evidence.refusal(spec.gates.may_skip)
    if refusal:
        raise PromotionRefused(description=f"promotion to {env} refused: {refusal}")
    tag = store.import_from(ModelStore(home=str(source.bentoml_home)), tag)
    lineage = store.info(tag).lineage
    previous = current_champion_tag(context.instance)
    by = promoter(config.promoted_by)
    why = f"{tag} promoted from {source_env} to {env} by {by}: it passed every blocking gate in {source_env}"
    context.log.info(why)
    return Output(
        stored_ref(store, tag),
        metadata={
            "model_tag": tag,
            "previous_champion": previous or "none",
            "why": why,
            "action": "promote",
            "environment": env,
            "promoted_from": source_env,
            "promoted_by": by,
            "training_window_end": lineage.training_set_partition,
            "data_version": lineage.training_set_version,
            "code_version": lineage.code_version,
            "source_evaluation_run": evidence.run_id,
            "source_gates": MetadataValue.md(evidence.table()),
            **{f"{source_env}_{k}": v for k, v in evidence.metrics.items()},
        },
    )


def promote_run_config(model_tag: str, source_env: str, by: str = "") -> dict[str, Any]:
    """Run config for the ``promote_model`` job that promotes ``model_tag`` from ``source_env``."""
    config = {"model_tag": model_tag, "promote_from": source_env, "promoted_by": by}
    return {"ops": {"champion_model": {"config": config}}}


def rollback_run_config(model_tag: str) -> dict[str, Any]:
    """Run config for the ``rollback_champion`` job that makes ``model_tag`` the champion again."""
    return {"ops": {"champion_model": {"config": {"model_tag": model_tag}}}}


rollback_champion_job = define_asset_job(
    ROLLBACK_JOB,
    selection=AssetSelection.assets("champion_model"),
    description="Roll back to the champion before the current one (refused when there is none), or to the former "
    "champion named in ops.champion_model.config.model_tag. Never promotes a candidate.",
)

promote_model_job = define_asset_job(
    PROMOTE_JOB,
    selection=AssetSelection.assets("champion_model"),
    description="Promote a model from the previous environment (qa into prod, dev into qa): set "
    "ops.champion_model.config.model_tag and promote_from. It is refused, naming why, unless the model passed every "
    "blocking gate and readiness there; it arrives with its lineage and evidence and becomes the champion here.",
)
