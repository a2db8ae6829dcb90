"""``reproducibility``: training is reproducible (The ML Test Score, infrastructure-1).

On request (``reproducibility_job``, from the UI) or on its weekly schedule, never on every training: the serving
champion's network (its kept architecture and trial settings, or the configured network when the logistic regression
or trees won) is trained
twice through the ``trainer`` resource, the same DeepSpeed path ``candidate_model`` takes, with the same seed, on
the same rows (the champion's own training window) and the same code, each launch in a fresh checkpoint folder so
that nothing is resumed. The ``same_seed_same_metrics`` check fails when any validation figure of the two runs
differs by more than the tolerance. The candidate's own search is not replayed: its ``search.max_seconds`` budget
makes how many trials it trains depend on the machine's load, so its figures are not the reference; two launches
of the same trial are.

Config ``seed_offset`` trains the second run with another seed: the check must then fail (that is how the check
itself is tested, and how a person sees how much a seed moves the figures).
"""

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from pydantic import Field

from ml_assets import markdown
from ml_assets.data.approval import TRAINING_SET_DEP, window_of
from ml_assets.dataset import DatasetSpec
from ml_assets.model import shards, training_result
from ml_assets.model.assets import CandidateConfig
from ml_assets.model.bundle import ModelRef
from ml_assets.settings import paths
from ml_assets.versioning import code_version
from resources.deepspeed_trainer import TRAINING_POOL, TRIAL_SETTINGS, DeepSpeedTrainer
from resources.model_store import ModelLineage, ModelStore

ASSET = "reproducibility"
CHECK = "same_seed_same_metrics"
JOB = "reproducibility_job"
TOLERANCE = 0.002  # validation figures of two same-seed runs may differ this much (float reductions across ranks)
TRAINER_SETTINGS = ("learning_rate", "weight_decay", "lr_schedule")  # class weighting is a trial's, not the trainer's


class ReproducibilityConfig(Config):
    tolerance: float = Field(TOLERANCE, gt=0, description="largest difference allowed in any validation figure")
    seed_offset: int = Field(0, description="train the second run with seed + this (not 0: the check must fail)")


@dataclass(frozen=True)
class Difference:
    metric: str
    first: float
    second: float

    @property
    def gap(self) -> float:
        return abs(self.first - self.second)


def compare(first: Mapping[str, float], second: Mapping[str, float]) -> list[Difference]:
    """Every validation figure both runs report, side by side (a figure only one run reports is a difference)."""
    names = sorted(set(first) | set(second))
    return [Difference(m, float(first.get(m, float("nan"))), float(second.get(m, float("nan")))) for m in names]


def beyond(differences: list[Difference], tolerance: float) -> list[Difference]:
    """The figures that differ by more than ``tolerance`` (NaN on one side only counts as beyond)."""
    return [d for d in differences if not d.gap <= tolerance]


def champion_trial(lineage: ModelLineage) -> dict[str, Any]:
    """The trial to retrain: the champion's kept network and its trial settings from its lineage in the store; the
    configured network when the champion is not a network (the logistic regression or trees won)."""
    network = lineage.config.get("network")
    if not network:
        return {"network": CandidateConfig().network().model_dump()}
    search = lineage.search or {}
    kept = next((t for t in search.get("trials", []) if t.get("trial") == search.get("best_trial")), {})
    return {"network": dict(network), **{k: kept[k] for k in TRIAL_SETTINGS if k in kept}}


def build_reproducibility(spec: DatasetSpec) -> AssetsDefinition:
    """``reproducibility`` with its ``same_seed_same_metrics`` check (run on request or on schedule)."""

    @asset(
        name=ASSET,
        group_name="model",
        deps=[TRAINING_SET_DEP],
        pool=TRAINING_POOL,
        check_specs=[
            AssetCheckSpec(
                CHECK,
                asset=ASSET,
                description="two DeepSpeed trainings of the champion's network with the same seed, data and code "
                "agree on every validation figure within the tolerance (warns)",
            )
        ],
        code_version=code_version(spec, sys.modules[__name__], training_result, uses=("columns", "search")),
        description="The champion's network trained twice through the trainer resource with the same seed, data "
        "and code, each from scratch: are the validation figures the same? (The ML Test Score: training is "
        "reproducible.) Run on request (reproducibility_job) or on its weekly schedule.",
    )
    def reproducibility(
        context: AssetExecutionContext,
        config: ReproducibilityConfig,
        champion_model: ModelRef,
        trainer: DeepSpeedTrainer,
        model_store: ModelStore,
    ) -> MaterializeResult:
        lineage = model_store.info(champion_model.tag).lineage
        partition = lineage.training_set_partition
        if not partition:
            raise ValueError(f"champion {champion_model.tag} records no training_set_partition: nothing to retrain on")
        window = window_of(context, partition)
        version = window.version  # as candidate_model records it
        # scans, the ranks read their shards: the validation rows the champion's search selected on, as
        # candidate_model hands them (TrainingWindow.validation_rows)
        train, val = window.labeled("train"), window.validation_rows().selection
        trial = champion_trial(lineage)
        settings = {k: v for k, v in trial.items() if k in TRAINER_SETTINGS and v is not None}
        folder = Path(trainer.checkpoint_dir or paths().checkpoints) / ASSET / context.run_id
        figures = []
        for run, offset in (("first", 0), ("second", config.seed_offset)):
            # the trial's optimizer settings as the trainer's own (its first trial takes them); a fresh checkpoint
            # folder so that nothing is resumed
            fresh = trainer.model_copy(
                update={**settings, "seed": trainer.seed + offset, "checkpoint_dir": str(folder / run)}
            )
            launched = fresh.train(
                context,
                spec.model_dump(mode="json"),
                train,
                val,
                trial["network"],
                version,
                prepare=shards.preparer(spec),
            )
            figures.append(training_result.decode(launched).summary.metrics)
        differences = compare(*figures)
        off = beyond(differences, config.tolerance)
        seeds = f"seeds {trainer.seed} and {trainer.seed + config.seed_offset}"
        verdict = (
            f"{len(off)} validation figure(s) differ beyond {config.tolerance} ({seeds}): "
            + ", ".join(f"{d.metric} {d.first:.5f} vs {d.second:.5f}" for d in off)
            if off
            else f"every validation figure of two trainings ({seeds}) within {config.tolerance}: largest gap "
            f"{max((d.gap for d in differences), default=0.0):.2e}"
        )
        return MaterializeResult(
            metadata={
                "model_tag": champion_model.tag,
                "training_set_partition": partition,
                "training_set_version": version,
                "seeds": seeds,
                "trial": MetadataValue.json(
                    {k: v for k, v in trial.items() if k != "network"}
                    | {"network": trial["network"].get("architecture", "?")}
                ),
                "tolerance": config.tolerance,
                "largest_gap": max((d.gap for d in differences), default=0.0),
                "figures": MetadataValue.md(
                    markdown.table(
                        [{"metric": d.metric, "first": d.first, "second": d.second, "gap": d.gap} for d in differences],
                        digits=6,
                    )
                ),
            },
            check_results=[
                AssetCheckResult(
                    check_name=CHECK,
                    passed=not off,
                    severity=AssetCheckSeverity.WARN,
                    description=verdict,
                    metadata={
                        "model_tag": champion_model.tag,
                        "largest_gap": max((d.gap for d in differences), default=0.0),
                    },
                )
            ],
        )

    return reproducibility


def reproducibility_job() -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        JOB,
        selection=AssetSelection.assets(ASSET),
        description="Train the champion's network twice with the same seed, data and code and compare the "
        "validation figures (The ML Test Score: training is reproducible).",
    )


def reproducibility_schedule(job: UnresolvedAssetJobDefinition, timezone: str) -> ScheduleDefinition:
    """Weekly, Sunday 03:00; stopped until someone switches it on (it trains twice: hours of CPU on big data)."""
    return ScheduleDefinition(
        name="reproducibility_schedule",
        job=job,
        cron_schedule="0 3 * * 0",
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.STOPPED,
        description="Weekly same-seed retraining of the champion's network (The ML Test Score, infrastructure-1).",
    )
