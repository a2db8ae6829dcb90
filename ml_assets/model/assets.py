"""Model assets (group ``model``): the logistic-regression baseline and the candidate, chosen on validation among the
spec's model families (the logistic regression, a network search trained with DeepSpeed, gradient-boosted trees
when ``search.families`` lists ``gbdt``) by the one-standard-error rule (``ml_assets.model.family_choice``).

Both read the approved training window (``approved_training_set``: the newest one whose blocking checks passed,
verified again here), fit on its train split, score its validation split and choose their decision threshold there
by the spec's ``decision`` policy (``ml_assets.model.decision``: stored in the model, so evaluation, serving and
batch scoring decide alike), store the model in the BentoML store (``<dataset>-baseline`` / ``<dataset>-classifier``) with
full lineage in its metadata, and hand a ``ModelRef`` downstream. (No ``from __future__ import annotations``:
Dagster reads the Config and resource annotations of asset functions at definition time.)
"""

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AutomationCondition,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from ml_assets import markdown
from ml_assets.automation import retraining
from ml_assets.data.approval import READ_NOT_REACTED, TRAINING_SET_DEP, TrainingSetRef, load_approved
from ml_assets.data.splits import SPLIT
from ml_assets.data.window import TrainingWindow, split_counts
from ml_assets.dataset import DatasetSpec
from ml_assets.model import (
    bundle,
    decision,
    network,
    preprocessing,
    search,
    shards,
    train,
    training_result,
    window_reads,
)
from ml_assets.model import metrics as metrics_module
from ml_assets.model.bundle import LogisticWeights, ModelRef, TabularModel
from ml_assets.model.calibration import fit_calibration
from ml_assets.model.decision import DecisionThreshold, choose_threshold
from ml_assets.model.family_choice import FamilyChoice, choose_family
from ml_assets.model.gates import thresholds_for
from ml_assets.model.metrics import validation_scores
from ml_assets.model.network import NetworkConfig
from ml_assets.model.preprocessing import Preprocessing
from ml_assets.model.trees import fit_trees
from ml_assets.model.window_reads import (
    FIT_SAMPLE_ROWS,
    by_id,
    labeled_sample,
    scan_sample,
    score_split,
)
from ml_assets.versioning import code_version
from resources.deepspeed_trainer import TRAINING_POOL, DeepSpeedTrainer
from resources.model_store import ModelLineage, ModelStore
from resources.parquet_tables import TableScan
from resources.training_records import TrainingSummary

# the spec fields a model's code version follows (not left_out: a reworded reason retrains nothing; the model
# carries the whole spec, so its HTTP API refuses a left-out column with the reason it was trained with)
MODEL_SPEC_FIELDS = ("columns", "bands", "positive_label", "decision")
CANDIDATE_SPEC_FIELDS = (*MODEL_SPEC_FIELDS, "search", "gates")


def classifier_name(spec: DatasetSpec) -> str:
    return f"{spec.name}-classifier"


def baseline_name(spec: DatasetSpec) -> str:
    return f"{spec.name}-baseline"


class BaselineConfig(Config):
    regularization_c: float = Field(1.0, description="inverse L2 strength of the logistic regression")
    max_iter: int = 2000


class CandidateConfig(Config):
    """Architecture of the candidate network (launchpad config), so teams compare architectures per run, and the
    budget of the search around it (default: the spec's ``search``)."""

    trials: int | None = Field(None, ge=1, description="networks to train (default: the spec's search.trials)")
    max_seconds: float | None = Field(
        None, gt=0, description="start no further trial after this long (default: the spec's search.max_seconds)"
    )
    architecture: Literal["mlp", "transformer"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [128, 64])
    max_embedding_dim: int = 16
    d_token: int = 32
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.1
    numeric_scaling: Literal["standard", "quantile"] = "quantile"
    numeric_embedding: Literal["none", "ple", "periodic"] = "periodic"
    d_embedding: int = 16
    n_frequencies: int = 16
    frequency_scale: float = 8.0

    def network(self) -> NetworkConfig:
        return NetworkConfig(**self.model_dump(exclude={"trials", "max_seconds"}))


def split_rows(training_set: pd.DataFrame, split: str) -> pd.DataFrame:
    return training_set[training_set[SPLIT] == split]


def labeled_split(spec: DatasetSpec, training_set: pd.DataFrame, split: str) -> pd.DataFrame:
    """A split's labeled rows: models fit and are scored only where the label is known."""
    return spec.labeled(split_rows(training_set, split))


def metrics_table(rows: dict[str, dict[str, float]]) -> str:
    """One row per model, one column per metric."""
    names = list(next(iter(rows.values())))
    return markdown.table([{"model": m, **v} for m, v in rows.items()], ["model", *names], right=names)


def loss_curve_markdown(history: list[dict[str, float]]) -> str:
    """A small train/validation loss plot, embedded as a base64 PNG so the UI shows it inline."""
    epochs = [h["epoch"] for h in history]
    fig, ax = markdown.new_figure(4.5, 2.8, 90)
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_log_loss"] for h in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("log loss")
    ax.legend()
    return markdown.figure(fig, "loss curve")


def fit_baseline(spec: DatasetSpec, training_set: pd.DataFrame, cfg: BaselineConfig) -> TabularModel:
    """Logistic regression on the labeled train rows of a training_set frame (see ``fit_logistic``)."""
    return fit_logistic(spec, labeled_split(spec, training_set, "train"), cfg)


def fit_logistic(spec: DatasetSpec, train_rows: pd.DataFrame, cfg: BaselineConfig) -> TabularModel:
    """Logistic regression on labeled train rows, with the same preprocessing as the networks (one-hot categories,
    scaled numerics)."""
    from sklearn.linear_model import LogisticRegression

    pre = Preprocessing.fit(spec, train_rows)
    y = train_rows[spec.label_column].to_numpy().astype(np.int64)
    lr = LogisticRegression(C=cfg.regularization_c, max_iter=cfg.max_iter)
    lr.fit(pre.one_hot(train_rows), y)
    weights = LogisticWeights(coef=[float(c) for c in lr.coef_[0]], intercept=float(lr.intercept_[0]))
    return TabularModel(kind="logistic", spec=spec, preprocessing=pre, logistic=weights)


def decide(spec: DatasetSpec, model: TabularModel, val: pd.DataFrame, consumer: str) -> DecisionThreshold:
    """Choose ``model``'s decision threshold on the labeled validation rows by the spec's policy, and set it."""
    return decide_on(model, spec, val[spec.label_column].to_numpy(dtype=np.int64), model.predict_proba(val), consumer)


def decide_on(model: TabularModel, spec: DatasetSpec, y: np.ndarray, p: np.ndarray, consumer: str) -> DecisionThreshold:
    """Choose ``model``'s decision threshold from validation labels ``y`` and its probabilities ``p``, and set it."""
    try:
        chosen = choose_threshold(spec.decision, y, p)
    except ValueError as e:
        raise Failure(description=f"{consumer}: {e}") from e
    model.threshold = chosen.threshold
    return chosen


@dataclass(frozen=True)
class BaselineFit:
    """The baseline fitted on a window: the model (its threshold set), how it was chosen, its validation figures,
    and the rows behind them."""

    model: TabularModel
    decision: DecisionThreshold
    scores: dict[str, float]
    sample_rows: int  # labeled train rows it was fitted on (a bounded sample)
    train_rows: int
    validation_rows: int


def baseline_on_window(
    spec: DatasetSpec, window: TrainingWindow, cfg: BaselineConfig, sample_rows: int = FIT_SAMPLE_ROWS
) -> BaselineFit:
    """The logistic baseline fitted on a seeded sample of at most ``sample_rows`` labeled train rows (every one on a
    window no larger, so the demo fits as before): lbfgs on the full-rank design of a few dozen coefficients gains
    nothing measurable from more rows, and a sample keeps memory bounded at any window size (a streaming solver
    would read the window once per iteration). Its threshold is chosen, and it is scored, on every labeled
    validation row, scored batch by batch."""
    model, fitted_rows = fit_logistic_model(spec, window, cfg, sample_rows)
    val = score_split(spec, window.labeled("validation"), {"baseline": model})
    p = val.probabilities["baseline"]
    chosen = decide_on(model, spec, val.y, p, "baseline_model")
    return BaselineFit(
        model=model,
        decision=chosen,
        scores=validation_scores(val.y, p, model.threshold),
        sample_rows=fitted_rows,
        train_rows=window.labeled("train").count_rows(),
        validation_rows=val.rows,
    )


def unlabeled_in(window: TrainingWindow) -> dict[str, int]:
    """Rows per split left out of fitting and scoring because they carry no label yet (one query)."""
    return {split: c.rows - c.labeled for split, c in split_counts(window).items()}


def decision_metadata(chosen: DecisionThreshold) -> dict[str, Any]:
    """The threshold as a number the UI plots, and how it was chosen, in words."""
    return {"decision_threshold": chosen.threshold, "decision": chosen.describe()}


@dataclass(frozen=True)
class Contender:
    """One family's candidate before the choice: its model and how it came to be (a fitted family's seconds, train
    sample and settings for the lineage; the network search's result and figures)."""

    model: TabularModel
    seconds: float = 0.0
    sample_rows: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    result: training_result.TrainedNetwork | None = None
    scores: dict[str, float] | None = None


def build_model_assets(spec: DatasetSpec) -> list[AssetsDefinition]:
    """baseline_model and candidate_model for one dataset spec; both retrain on the same condition."""
    when = retraining(spec, ignore=READ_NOT_REACTED)
    return [build_baseline_model(spec, when), build_candidate_model(spec, when)]


def build_baseline_model(spec: DatasetSpec, when: AutomationCondition) -> AssetsDefinition:
    """The ``baseline_model`` asset: the logistic regression every candidate must beat."""

    @asset(
        name="baseline_model",
        group_name="model",
        deps=[TRAINING_SET_DEP],
        automation_condition=when,
        code_version=code_version(
            spec,
            sys.modules[__name__],
            preprocessing,
            bundle,
            metrics_module,
            decision,
            window_reads,
            uses=MODEL_SPEC_FIELDS,
        ),
        description="Logistic regression on the same splits and preprocessing: the reference every model must beat.",
    )
    def baseline_model(
        context: AssetExecutionContext,
        config: BaselineConfig,
        approved_training_set: TrainingSetRef,
        model_store: ModelStore,
    ) -> Output[ModelRef]:
        window = load_approved(context, approved_training_set, "baseline_model")
        version = window.version
        fit = baseline_on_window(spec, window, config)
        model, chosen, scores = fit.model, fit.decision, fit.scores
        unlabeled = unlabeled_in(window)
        lineage = ModelLineage(
            training_set_version=version,
            training_set_partition=approved_training_set.partition_key,
            code_version=context.assets_def.code_versions_by_key[context.asset_key],
            config=config.model_dump() | {"sample_rows": fit.sample_rows},
            validation_metrics=scores,
            decision=chosen.as_dict(),
            train_rows=fit.train_rows,
            unlabeled_rows_left_out=unlabeled,
        )
        tag = model_store.save(model, baseline_name(spec), lineage)
        context.log.info(f"baseline {tag}: validation {scores}; {chosen.describe()}")
        ref = ModelRef(tag=tag, name=baseline_name(spec), kind=model.kind, metrics=scores, training_set_version=version)
        metadata = baseline_metadata(tag, scores, unlabeled, version, approved_training_set.partition_key)
        metadata |= {
            "sample_rows": fit.sample_rows,
            "train_rows": fit.train_rows,
            "validation_rows": fit.validation_rows,
        }
        return Output(ref, metadata=metadata | decision_metadata(chosen))

    return baseline_model


def baseline_metadata(
    tag: str, scores: dict[str, float], unlabeled: dict[str, int], version: str, partition: str
) -> dict[str, Any]:
    """What the UI shows of a baseline: its tag, validation figures as a table and as numbers, and its data."""
    return {
        "model_tag": tag,
        "validation_metrics": MetadataValue.md(metrics_table({"baseline": scores})),
        **{f"val_{k}": v for k, v in scores.items()},
        "unlabeled_rows_left_out": sum(unlabeled.values()),
        "training_set_version": version,
        "training_set_partition": partition,
    }


def build_candidate_model(spec: DatasetSpec, when: AutomationCondition) -> AssetsDefinition:
    """The ``candidate_model`` asset: the spec's families (the logistic regression, a search of tabular networks
    trained by the DeepSpeedTrainer resource, gradient-boosted trees), the simplest within noise of the best."""
    model_code = code_version(
        spec,
        sys.modules[__name__],
        preprocessing,
        network,
        bundle,
        metrics_module,
        train,
        training_result,
        search,
        decision,
        window_reads,
        uses=CANDIDATE_SPEC_FIELDS,
    )
    select_by, higher_is_better = search.selection_metric(thresholds_for(spec).primary_metric)

    @asset(
        name="candidate_model",
        group_name="model",
        deps=[TRAINING_SET_DEP],
        automation_condition=when,
        pool=TRAINING_POOL,
        code_version=model_code,
        description="The candidate: the simplest of the spec's model families within one standard error of the best "
        "on validation (the logistic regression; a tabular network search trained with DeepSpeed through the "
        "DeepSpeedTrainer resource; gradient-boosted trees when listed).",
    )
    def candidate_model(
        context: AssetExecutionContext,
        config: CandidateConfig,
        approved_training_set: TrainingSetRef,
        trainer: DeepSpeedTrainer,
        model_store: ModelStore,
    ) -> Output[ModelRef]:
        window = load_approved(context, approved_training_set, "candidate_model")
        version = window.version
        partition = approved_training_set.partition_key
        budget = spec.search
        halves = window.validation_rows()  # the search selects on one half, the families are compared on the other
        # by family, the simplest first (the order family_choice judges them in)
        contenders: dict[str, Contender] = {}
        if "logistic" in budget.families:
            started = time.perf_counter()
            logistic_model, sample_rows = fit_logistic_model(spec, window)
            seconds = time.perf_counter() - started
            contenders["logistic"] = Contender(logistic_model, seconds, sample_rows, BaselineConfig().model_dump())
        if budget.networks:
            trials = search.plan_trials(config.network(), budget, config.trials or budget.trials)
            run = trainer.train(  # the scans: the ranks read their own shards
                context,
                spec.model_dump(mode="json"),
                window.labeled("train"),
                halves.selection,  # trials, ensemble and epochs are selected on it
                trials[0]["network"],
                version,
                search=trials[1:],
                max_seconds=config.max_seconds or budget.max_seconds,
                select_by=select_by,
                higher_is_better=higher_is_better,
                halving=budget.halving.model_dump() if budget.halving else None,
                ensemble_size=budget.ensemble_size,
                prepare=shards.preparer(spec),
            )
            result = training_result.decode(run)
            network_model = packed_model(spec, result)
            scores: dict[str, float] = {k: float(v) for k, v in result.summary.metrics.items()}
            contenders["network"] = Contender(network_model, result=result, scores=scores)
        if "gbdt" in budget.families:
            started = time.perf_counter()
            trees_model, sample_rows = fit_trees_model(spec, window, halves.selection)
            seconds = time.perf_counter() - started
            settings = {"lightgbm": trees_model.trees.params, "best_iteration": trees_model.trees.best_iteration}
            contenders["gbdt"] = Contender(trees_model, seconds, sample_rows, settings)
        # every family judged by the same figure on the labeled validation rows no family was selected on, scored
        # batch by batch in this process (the stored form): only the labels and each family's probabilities are held
        models = {f: c.model for f, c in contenders.items()}
        time_column = spec.time.name
        val = score_split(spec, window.labeled("validation"), models, keep=[time_column])
        # the second half is a part of the rows just scored: taken from them, not read and scored again
        late = None if halves.middle is None else (val.kept[time_column] >= halves.middle).to_numpy()
        compared, compared_on = (val if late is None else val.where(late)), halves.how
        choice = choose_family(compared.y, compared.probabilities, select_by, higher_is_better)
        judged, pick = choice.scores, choice.pick
        found = contenders[pick]
        model = found.model
        calibrated = fit_calibration(val.y, val.probabilities[pick])
        model.calibration = calibrated.calibration
        p_val = model.calibration.apply(val.probabilities[pick]) if model.calibration else val.probabilities[pick]
        chosen = decide_on(model, spec, val.y, p_val, "candidate_model")
        served = validation_scores(val.y, p_val, model.threshold)
        families = family_table(choice)
        if found.result is not None:  # the network search's kept network
            scores, result = found.scores or {}, found.result
            lineage = candidate_lineage(result, scores, trainer, model_code, version, partition)
        else:
            scores = served
            lineage = fitted_lineage(pick, found, scores, model_code, version, partition)
        lineage = lineage.model_copy(update={"decision": chosen.as_dict(), "families": judged})
        context.log.info(
            f"candidate: {choice.describe()}, compared on {compared_on}; {calibrated.reason}; {chosen.describe()}"
        )
        tag = model_store.save(model, classifier_name(spec), lineage)
        ref = ModelRef(
            tag=tag, name=classifier_name(spec), kind=model.kind, metrics=scores, training_set_version=version
        )
        unlabeled = sum(unlabeled_in(window).values())
        if found.result is not None:
            metadata = candidate_metadata(tag, found.result.summary, scores, served, unlabeled, version, partition)
        else:
            metadata = fitted_metadata(tag, found, served, unlabeled, version, partition)
            if model.trees is not None:
                metadata["boosting_rounds"] = model.trees.best_iteration
        metadata["validation_rows"] = val.rows
        metadata["families"] = MetadataValue.md(families)
        metadata["family"] = pick
        metadata["family_choice"] = f"{choice.describe()}, compared on {compared_on}"
        metadata["calibration"] = calibrated.reason
        return Output(ref, metadata=metadata | decision_metadata(chosen))

    return candidate_model


def fit_trees_model(spec: DatasetSpec, window: TrainingWindow, selection: TableScan) -> tuple[TabularModel, int]:
    """The gbdt family on bounded, seeded samples of the labeled train rows and of the validation rows its early
    stopping may select on (``selection``; every row of a window no larger), in id order; with the number of train
    rows it fitted on."""
    train_rows = by_id(spec, labeled_sample(window, "train", FIT_SAMPLE_ROWS))
    val_rows = by_id(spec, scan_sample(selection, FIT_SAMPLE_ROWS))
    trees = fit_trees(spec, train_rows, val_rows)
    model = TabularModel(kind="gbdt", spec=spec, preprocessing=Preprocessing.fit(spec, train_rows), trees=trees)
    return model, len(train_rows)


def fit_logistic_model(
    spec: DatasetSpec, window: TrainingWindow, cfg: BaselineConfig | None = None, sample_rows: int = FIT_SAMPLE_ROWS
) -> tuple[TabularModel, int]:
    """A logistic regression on a seeded sample of at most ``sample_rows`` labeled train rows, in id order, with the
    number of rows it fitted on: the baseline (``baseline_on_window``), and with the default settings the logistic
    family of the candidate, which is then the model the baseline is (unless a run configured the baseline
    otherwise), judged and served like any other candidate."""
    train_rows = by_id(spec, labeled_sample(window, "train", sample_rows))
    return fit_logistic(spec, train_rows, cfg or BaselineConfig()), len(train_rows)


def family_table(choice: FamilyChoice) -> str:
    """Each family's validation figure and the standard error of its gap to the best, the candidate marked."""
    metric = f"validation {choice.metric}"
    rows = [
        {
            "family": f,
            metric: v,
            "gap to the best": abs(choice.scores[choice.best] - v),
            "standard error of the gap": choice.gap_se[f],
            "candidate": "yes" if f == choice.pick else "",
        }
        for f, v in choice.scores.items()
    ]
    numbers = [metric, "gap to the best", "standard error of the gap"]
    return markdown.table(rows, ["family", *numbers, "candidate"], right=numbers)


def fitted_lineage(
    family: str, found: Contender, scores: dict[str, float], model_code: str, version: str, partition: str
) -> ModelLineage:
    """What the store keeps with a candidate fitted in this process (logistic, gbdt): its data and code, its family
    and settings, and how long it took."""
    return ModelLineage(
        training_set_version=version,
        training_set_partition=partition,
        code_version=model_code,
        config={"family": family, "sample_rows": found.sample_rows, **found.settings},
        validation_metrics=scores,
        wall_seconds=found.seconds,
    )


def fitted_metadata(
    tag: str, found: Contender, served: dict[str, float], unlabeled_rows: int, version: str, partition: str
) -> dict[str, Any]:
    """What the UI shows of a candidate fitted in this process (logistic, gbdt)."""
    return {
        "model_tag": tag,
        "validation_metrics": MetadataValue.md(metrics_table({"stored model (this process)": served})),
        **{f"val_{k}": v for k, v in served.items()},
        "sample_rows": found.sample_rows,
        "wall_seconds": found.seconds,
        "unlabeled_rows_left_out": unlabeled_rows,
        "training_set_version": version,
        "training_set_partition": partition,
    }


def packed_model(spec: DatasetSpec, result: training_result.TrainedNetwork) -> TabularModel:
    """The search's kept network packed with its preprocessing: the form the store, evaluation and serving load."""
    return TabularModel(
        kind=result.network.architecture,
        spec=spec,
        preprocessing=result.preprocessing,
        network_config=result.network,
        state_dict=result.state_dict,
    )


def candidate_lineage(
    result: training_result.TrainedNetwork,
    scores: dict[str, float],
    trainer: DeepSpeedTrainer,
    model_code: str,
    version: str,
    partition: str,
) -> ModelLineage:
    """What the store keeps with a candidate: the data and code it came from, every setting, how it trained."""
    s = result.summary
    return ModelLineage(
        training_set_version=version,
        training_set_partition=partition,
        code_version=model_code,
        config={"network": result.network.model_dump(), "deepspeed": s.deepspeed_config, "trainer": _fields(trainer)},
        validation_metrics=scores,
        samples_per_s=s.samples_per_s,
        wall_seconds=s.wall_seconds,
        ranks=s.ranks,
        device=s.device,
        precision=s.precision,
        best_epoch=s.best_epoch,
        search={"best_trial": s.best_trial, "ensemble": s.ensemble, "select_by": s.select_by, "trials": s.trials},
    )


def candidate_metadata(
    tag: str,
    s: TrainingSummary,
    scores: dict[str, float],
    served: dict[str, float],
    unlabeled_rows: int,
    version: str,
    partition: str,
) -> dict[str, Any]:
    """What the UI shows of a candidate (``s``: the training summary): validation by the ranks (accuracy and F1 at
    0.5, as each epoch measures them) and by the stored model (at its chosen decision threshold), the search, the loss curve, throughput and timings as numbers the UI plots, and its data."""
    return {
        "model_tag": tag,
        "validation_metrics": MetadataValue.md(
            metrics_table({"training (ranks)": scores, "stored model (this process)": served})
        ),
        "search": MetadataValue.md(search_table(s.trials, s.best_trial)),
        "trials_run": sum(1 for t in s.trials if "epochs_run" in t),  # trained, however far
        "ensemble": ", ".join(s.ensemble) or "none (the best trial alone)",
        "best_trial": s.best_trial,
        "selected_by": f"validation {s.select_by}",
        "unlabeled_rows_left_out": unlabeled_rows,
        **{f"val_{k}": v for k, v in scores.items()},
        "loss_curve": MetadataValue.md(loss_curve_markdown(s.history)),
        "samples_per_s": float(s.samples_per_s),
        "launch_to_first_step_s": float(s.launch_to_first_step_s or 0.0),
        "wall_seconds": float(s.wall_seconds),
        "ranks": int(s.ranks),
        "device": str(s.device),
        "precision": s.precision,
        "zero_stage": int(s.zero_stage),
        "epochs_run": int(s.epochs_run),
        "best_epoch": int(s.best_epoch),
        "resumed_from_epoch": int(s.resumed_from_epoch or 0),
        "parameters": int(s.parameters),
        "training_set_version": version,
        "training_set_partition": partition,
        "checkpoint_dir": MetadataValue.path(s.checkpoint_dir),
    }


def search_table(trials: list[dict[str, Any]], best: str) -> str:
    """Every trial of the search with its settings and validation figures; the kept one marked."""
    rows = [{"kept": "yes" if t["trial"] == best else "", **t} for t in trials]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    numbers = [c for c in columns if c.startswith("val_") or c in ("parameters", "seconds", "best_epoch", "epochs_run")]
    return markdown.table(rows, columns, right=numbers)


def _fields(trainer: DeepSpeedTrainer) -> dict[str, Any]:
    return {k: v for k, v in trainer.model_dump().items() if k != "launcher"}
