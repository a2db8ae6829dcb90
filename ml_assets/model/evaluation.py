"""Pure model-evaluation code: overall and per-slice metrics, fairness gaps, latency, size, numerical stability.

Everything here takes a model that honours the TabularModel contract (``predict_proba(frame)``, ``threshold``,
``kind``) and plain frames, and returns plain dataclasses, so the gates can be unit-tested without Dagster and the
same numbers appear in the UI, the checks and the demo's comparison table. Metrics come from the one engine the
training ranks use too (``ml_assets.model.metrics``, tested against scikit-learn's definitions) and fairness gaps
from fairlearn.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ml_assets import markdown
from ml_assets.data.leakage import FeatureImportance, auc_drops, carrying
from ml_assets.dataset import LOWER_IS_BETTER, DatasetSpec
from ml_assets.model.metrics import brier_score, expected_calibration_error, validation_scores

MISSING_GROUP = "(missing)"
METRIC_NAMES = ("roc_auc", "pr_auc", "log_loss", "accuracy", "f1", "brier", "ece")
ECE_BINS = 15


class ProbabilityModel(Protocol):
    """The part of the TabularModel contract that evaluation needs."""

    threshold: float
    kind: str

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...


# ---- overall metrics -------------------------------------------------------------------------------------
def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """The evaluation metrics of one model on one set of rows: the training ranks' metrics at ``threshold``, and
    the Brier score, calibration error, row count and positive rate.

    Ranking metrics (ROC AUC, PR AUC) are NaN when the rows hold a single class: they are undefined there, and a
    NaN is never mistaken for a pass by the gates. This runs once per slice group and model, in evaluation and
    monitoring.
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels but {len(p)} predictions")
    if len(y) == 0:
        return {name: math.nan for name in METRIC_NAMES} | {"rows": 0.0, "positive_rate": math.nan}
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{int((~np.isfinite(p)).sum())} of {len(p)} predicted probabilities are not finite")
    scores = validation_scores(y, p, threshold)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": scores["roc_auc"] if both else math.nan,
        "pr_auc": scores["pr_auc"] if both else math.nan,
        "log_loss": scores["log_loss"],
        "accuracy": scores["accuracy"],
        "f1": scores["f1"],
        "brier": brier_score(y, p),
        "ece": expected_calibration_error(y, p, ECE_BINS),
        "rows": float(len(y)),
        "positive_rate": float((p >= threshold).mean()),
    }


# ---- slices ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceMetrics:
    """Metrics of one group of one slice column (for example ``sex == Female``)."""

    column: str
    value: str
    size: int
    positives: int
    metrics: dict[str, float]

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


GroupNames = Mapping[str, Mapping[str, str]]  # column -> category -> display name (the spec's ``labels``)


def group_labels(values: pd.Series, names: Mapping[str, str] | None = None) -> pd.Series:
    """Slice values as plain strings, with nulls as their own visible group and codes shown with their names."""
    text = values.astype("string").fillna(MISSING_GROUP).astype(object)
    if names:
        text = text.map(lambda v: f"{v} ({names[v]})" if v in names else v)
    return text


def group_names(spec: DatasetSpec) -> dict[str, dict[str, str]]:
    """Display names of the spec's slice columns that have ``labels``."""
    return {c.name: dict(c.labels) for c in spec.columns if c.labels and c.name in spec.slice_columns}


def slice_metrics(
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    columns: list[str],
    names: GroupNames | None = None,
) -> list[SliceMetrics]:
    """Metrics for every group of every slice column, with its size and number of positives."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    out: list[SliceMetrics] = []
    for column in columns:
        if column not in frame.columns:
            raise KeyError(f"slice column {column!r} is not in the evaluation frame ({list(frame.columns)})")
        groups = group_labels(frame[column], (names or {}).get(column)).to_numpy()
        for value in sorted(set(groups)):
            mask = groups == value
            out.append(
                SliceMetrics(
                    column=column,
                    value=str(value),
                    size=int(mask.sum()),
                    positives=int(y[mask].sum()),
                    metrics=classification_metrics(y[mask], p[mask], threshold),
                )
            )
    return out


# ---- fairness --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FairnessGap:
    """Fairlearn's group gaps for one sensitive attribute, over the groups large enough to judge."""

    attribute: str
    demographic_parity_difference: float
    equalized_odds_difference: float
    groups: dict[str, int]
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def assessable(self) -> bool:
        return len(self.groups) >= 2

    def excluded_text(self) -> str:
        """The groups left out, by name, with their size and why (``65+ (120 rows < 200)``)."""
        return ", ".join(f"{group} ({why})" for group, why in self.excluded.items()) or "none"

    def not_judged_reason(self) -> str:
        """Why this attribute has no gaps (fewer than two groups to compare), naming every group."""
        kept = ", ".join(f"{g} ({n} rows)" for g, n in self.groups.items()) or "none"
        return f"fewer than two groups to compare: judged {kept}; left out {self.excluded_text()}"


@dataclass(frozen=True)
class ConfusionCells:
    """Rows collapsed to their distinct (group, label, prediction) cells, each weighted by its row count.

    fairlearn's rates are weighted means over these cells, so handing it the cells with ``sample_weight`` gives the
    figures of the rows themselves; its ``MetricFrame`` costs about 15 s per million rows, the cells milliseconds
    (a test split of a long window holds millions of rows, scored for every model)."""

    y: np.ndarray
    yhat: np.ndarray
    group: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, yhat: np.ndarray, groups: np.ndarray) -> ConfusionCells:
        codes, names = pd.factorize(groups, sort=True)
        cell, rows = np.unique((codes * 2 + y) * 2 + yhat, return_counts=True)
        return cls(y=cell // 2 % 2, yhat=cell % 2, group=np.asarray(names, dtype=object)[cell // 4], rows=rows)


def fairness_gaps(
    frame: pd.DataFrame,
    y: np.ndarray,
    yhat: np.ndarray,
    attributes: list[str],
    min_group_size: int,
    names: GroupNames | None = None,
) -> list[FairnessGap]:
    """Demographic parity and equalized odds differences per sensitive attribute or sensitive band (fairlearn).

    Groups smaller than ``min_group_size`` or holding a single class are left out (and listed by name with their
    size and the reason): their rates are too noisy to hold a model to, and equalized odds is undefined without
    both classes.
    """
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    y = np.asarray(y, dtype=np.int64)
    yhat = np.asarray(yhat, dtype=np.int64)
    out: list[FairnessGap] = []
    for attribute in attributes:
        groups = group_labels(frame[attribute], (names or {}).get(attribute)).to_numpy()
        kept: dict[str, int] = {}
        excluded: dict[str, str] = {}
        for value in sorted(set(groups)):
            mask = groups == value
            size = int(mask.sum())
            if size < min_group_size:
                excluded[str(value)] = f"{size} rows < {min_group_size}"
            elif len(np.unique(y[mask])) < 2:
                excluded[str(value)] = f"{size} rows, a single class"
            else:
                kept[str(value)] = size
        if len(kept) < 2:
            out.append(FairnessGap(attribute, math.nan, math.nan, kept, excluded))
            continue
        mask = np.isin(groups, list(kept))
        cells = ConfusionCells.of(y[mask], yhat[mask], groups[mask])
        out.append(
            FairnessGap(
                attribute=attribute,
                demographic_parity_difference=float(
                    demographic_parity_difference(
                        cells.y, cells.yhat, sensitive_features=cells.group, sample_weight=cells.rows
                    )
                ),
                equalized_odds_difference=float(
                    equalized_odds_difference(
                        cells.y, cells.yhat, sensitive_features=cells.group, sample_weight=cells.rows
                    )
                ),
                groups=kept,
                excluded=excluded,
            )
        )
    return out


# ---- latency and size ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Latency:
    """In-process CPU latency of ``predict_proba`` after warm-up: the CPU time a single-row call costs its thread
    (``time.thread_time``: a one-row call runs on it alone, and no other thread of the process is counted) and the
    rows per CPU second of a batch (``time.process_time``: a batch may use every thread), what the model costs
    wherever it serves. Wall time on the machine that evaluates
    adds whatever else runs there: on 2 shared cores the same model measured p99 75 ms in one run and 200 ms in the
    next, while another run trained, and the blocking latency gate failed an unattended retrain on that. The wall
    p99 is kept beside it, reported, never judged."""

    p50_ms: float
    p99_ms: float
    single_calls: int
    rows_per_s: float  # rows per CPU second of a batch
    batch_rows: int
    p99_wall_ms: float = float("nan")


def measure_latency(
    model: ProbabilityModel,
    frame: pd.DataFrame,
    single_calls: int = 200,
    batch_rows: int = 1000,
    warmup: int = 20,
    batch_repeats: int = 5,
    seed: int = 0,
) -> Latency:
    """p50/p99 CPU time of single-row calls and rows per CPU second of a ``batch_rows`` batch (median of repeats),
    after warm-up; the wall p99 of the single calls beside them (``Latency``).

    Single rows are cycled from ``frame`` so the model sees realistic values; the batch samples rows with
    replacement when the frame is smaller than the batch.
    """
    if frame.empty:
        raise ValueError("latency needs at least one row to score")
    rng = np.random.default_rng(seed)
    # one-row slices are views: a fancy-indexed copy per row (``iloc[[i]]``) cost more than scoring it
    rows = [frame.iloc[i % len(frame) : i % len(frame) + 1] for i in range(max(single_calls, warmup))]
    for row in rows[:warmup]:
        model.predict_proba(row)
    timings, wall = np.empty(single_calls), np.empty(single_calls)
    for i in range(single_calls):
        start, started = time.thread_time(), time.perf_counter()
        model.predict_proba(rows[i])
        timings[i], wall[i] = time.thread_time() - start, time.perf_counter() - started
    batch = frame.iloc[rng.integers(0, len(frame), batch_rows)]
    model.predict_proba(batch)
    batch_times = []
    for _ in range(batch_repeats):
        start = time.process_time()
        model.predict_proba(batch)
        batch_times.append(time.process_time() - start)
    return Latency(
        p50_ms=float(np.percentile(timings, 50) * 1e3),
        p99_ms=float(np.percentile(timings, 99) * 1e3),
        single_calls=single_calls,
        rows_per_s=float(batch_rows / max(float(np.median(batch_times)), 1e-9)),
        batch_rows=batch_rows,
        p99_wall_ms=float(np.percentile(wall, 99) * 1e3),
    )


@dataclass(frozen=True)
class ModelSize:
    """Bytes of the model's saved files when known, else its parameter count."""

    bytes: int | None
    parameters: int | None

    def describe(self) -> str:
        parts = [f"{self.bytes / 1024:,.1f} KiB"] if self.bytes is not None else []
        parts += [f"{self.parameters:,} parameters"] if self.parameters is not None else []
        return ", ".join(parts) or "unknown"


def directory_bytes(path: str | Path) -> int:
    """Total size of the files under ``path`` (a file counts as itself)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        raise FileNotFoundError(f"model files not found at {path}")
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def parameter_count(model: Any) -> int | None:
    """Trainable numbers of a TabularModel: its network's parameters, or the baseline's coefficients and intercept."""
    state = getattr(model, "state_dict", None)
    if state:
        return int(sum(t.numel() for t in state.values()))
    logistic = getattr(model, "logistic", None)
    return len(logistic.coef) + 1 if logistic is not None else None


def model_size(model: Any, saved_path: str | Path | None = None) -> ModelSize:
    """Bytes of the model's saved files: at ``saved_path`` when given, else what its own ``save(directory)``
    writes to a scratch folder; the parameter count when the model cannot be saved."""
    if saved_path is not None:
        return ModelSize(bytes=directory_bytes(saved_path), parameters=parameter_count(model))
    if callable(getattr(model, "save", None)):
        with tempfile.TemporaryDirectory(prefix="model-size-") as scratch:
            model.save(scratch)
            return ModelSize(bytes=directory_bytes(scratch), parameters=parameter_count(model))
    return ModelSize(bytes=None, parameters=parameter_count(model))


# ---- numerical stability ---------------------------------------------------------------------------------
EXTREME_FACTOR = 1e6
UNSEEN_CATEGORY = "__unseen_category__"


def edge_case_frame(spec: DatasetSpec, base: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Edge inputs built from the spec around one real row: each numeric feature at +/- (range x 1e6), each
    categorical feature unseen and missing, and rows that are entirely extreme, unseen or null.

    Returns the frame (spec dtypes kept, so it is what serving would pass on) and a name per row.
    """
    if base.empty:
        raise ValueError("edge cases need one real row to start from")
    features = spec.numeric_features + spec.categorical_features
    # Spec dtypes (nullable Int64, string) so nulls fit even when storage handed back plain int64 columns.
    row = base.iloc[[0]].reset_index(drop=True).astype({c: spec.pandas_dtypes[c] for c in features})
    cases: list[tuple[str, dict[str, Any]]] = []
    extremes: dict[str, float] = {}
    for name in spec.numeric_features:
        col = spec.column(name)
        top = max(abs(col.range.max or 0.0), abs(col.range.min or 0.0), 1.0) if col.range else 1.0
        extremes[name] = top * EXTREME_FACTOR
        cases.append((f"{name}=+{extremes[name]:.0e}", {name: extremes[name]}))
        cases.append((f"{name}=-{extremes[name]:.0e}", {name: -extremes[name]}))
        cases.append((f"{name}=null", {name: None}))
    for name in spec.categorical_features:
        cases.append((f"{name}=unseen", {name: UNSEEN_CATEGORY}))
        cases.append((f"{name}=null", {name: None}))
    cases.append(("all numerics extreme", dict(extremes)))
    cases.append(("all numerics extreme negative", {k: -v for k, v in extremes.items()}))
    cases.append(("all categoricals unseen", dict.fromkeys(spec.categorical_features, UNSEEN_CATEGORY)))
    cases.append(("all features null", dict.fromkeys(features)))
    frames = []
    for _, changes in cases:
        edge = row.copy()
        for name, value in changes.items():
            edge[name] = pd.Series([value], dtype="object").astype(edge[name].dtype)
        frames.append(edge)
    return pd.concat(frames, ignore_index=True), [name for name, _ in cases]


@dataclass(frozen=True)
class Stability:
    """Outcome of scoring the edge inputs: how many rows gave a non-finite or out-of-[0, 1] probability."""

    rows: int
    nonfinite: int
    out_of_range: int
    failing_cases: list[str]
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.nonfinite == 0 and self.out_of_range == 0


def check_stability(model: ProbabilityModel, spec: DatasetSpec, base: pd.DataFrame) -> Stability:
    """Score the edge inputs; an exception counts as a failure and is kept with its message."""
    frame, names = edge_case_frame(spec, base)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = np.asarray(model.predict_proba(frame), dtype=np.float64).reshape(-1)
    except Exception as e:  # the check reports any failure to score an edge input, never crashes on it
        return Stability(len(frame), 0, 0, ["(scoring raised)"], f"{type(e).__name__}: {e}")
    if len(p) != len(frame):
        return Stability(len(frame), 0, 0, [], f"{len(frame)} edge rows gave {len(p)} probabilities")
    nonfinite = ~np.isfinite(p)
    outside = np.isfinite(p) & ((p < 0) | (p > 1))
    failing = [names[i] for i in np.flatnonzero(nonfinite | outside)]
    return Stability(len(frame), int(nonfinite.sum()), int(outside.sum()), failing)


# ---- one model, everything -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelScores:
    """All evaluation results for one model on the test split."""

    tag: str
    kind: str
    threshold: float
    metrics: dict[str, float]
    slices: list[SliceMetrics]
    fairness: list[FairnessGap]
    latency: Latency | None = None
    size: ModelSize | None = None
    stability: Stability | None = None
    # the features carrying a score above the too-good limit (permutation importance on the test rows); None when
    # the score was not that high, so nothing was measured
    carriers: tuple[FeatureImportance, ...] | None = None


def score_carriers(
    model: ProbabilityModel, spec: DatasetSpec, test: pd.DataFrame, y: np.ndarray
) -> tuple[FeatureImportance, ...]:
    """The features a model's test ROC AUC relies on: each feature's values shuffled across the test rows, the
    ROC AUC lost, and those that carry the score (``ml_assets.data.leakage.carrying``)."""
    features = [*spec.numeric_features, *spec.categorical_features]
    return tuple(carrying(auc_drops(lambda frame: predictions(model, frame), test, y, features)))


def score_model(
    model: ProbabilityModel,
    tag: str,
    spec: DatasetSpec,
    test: pd.DataFrame,
    min_group_size: int,
    operational: bool = True,
    saved_path: str | Path | None = None,
    probabilities: np.ndarray | None = None,
    explain_above: float | None = None,
    sample: pd.DataFrame | None = None,
) -> ModelScores:
    """Score a model on the test rows at its own decision threshold; ``operational`` adds latency, size and
    edge-input stability; a ROC AUC above ``explain_above`` adds the features that carry it.

    Pass ``probabilities`` when the caller already scored ``test`` (for plots, or batch by batch: ``test`` then
    needs only the label and the slice columns), and ``sample``, whole rows of the test split, for what needs the
    features (latency, stability, the features that carry the score; default ``test``).
    """
    y = test[spec.label_column].to_numpy(dtype=np.int64)
    p = predictions(model, test) if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    threshold = float(model.threshold)
    yhat = (p >= threshold).astype(np.int64)
    names = group_names(spec)
    metrics = classification_metrics(y, p, threshold)
    too_good = explain_above is not None and metrics["roc_auc"] > explain_above
    rows = test if sample is None else sample
    return ModelScores(
        tag=tag,
        kind=str(model.kind),
        threshold=threshold,
        metrics=metrics,
        slices=slice_metrics(test, y, p, threshold, spec.slice_columns, names),
        fairness=fairness_gaps(test, y, yhat, spec.fairness_columns, min_group_size, names),
        latency=measure_latency(model, rows) if operational else None,
        size=model_size(model, saved_path) if operational else None,
        stability=check_stability(model, spec, rows) if operational else None,
        carriers=score_carriers(model, spec, rows, rows[spec.label_column].to_numpy(dtype=np.int64))
        if too_good
        else None,
    )


def predictions(model: ProbabilityModel, frame: pd.DataFrame) -> np.ndarray:
    """Positive-class probabilities as a flat float array (for plots and ad-hoc comparisons)."""
    return np.asarray(model.predict_proba(frame), dtype=np.float64).reshape(-1)


# ---- the evaluation as a whole ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluation:
    """What ``model_evaluation`` produces: candidate, baseline and (if any) champion scored on the same test
    rows, plus the references and thresholds the gates judged them by."""

    spec_name: str
    primary_metric: str
    test_rows: int
    test_positives: int
    window_end: str | None
    candidate: ModelScores
    baseline: ModelScores
    champion: ModelScores | None
    candidate_ref: Any
    baseline_ref: Any
    champion_ref: Any | None
    thresholds: dict[str, Any] = field(default_factory=dict)
    # the gradient-boosted trees reference on the same splits (ml_assets.model.reference): reported, never served
    reference: ModelScores | None = None
    # standard error of the candidate's primary-metric gap to the baseline on these test rows (paired bootstrap);
    # None where the metric has no bootstrap (threshold-dependent ones) or for evaluations stored before it
    baseline_gap_se: float | None = None

    def scored(self) -> dict[str, ModelScores]:
        """Scores by role, in table order: candidate, baseline, champion."""
        out = {"candidate": self.candidate, "baseline": self.baseline}
        if self.champion is not None:
            out["champion"] = self.champion
        return out


def comparison_table(evaluation: Evaluation) -> str:
    """Markdown table of candidate vs baseline vs champion on the test split (printed by the demo), and the trees
    reference beside them when the evaluation fitted one."""
    scored = evaluation.scored()
    if evaluation.reference is not None:
        scored = {**scored, "reference": evaluation.reference}
    # short headers (the tags are their own metadata entries): the table stays narrow enough to read in place
    columns = ["metric", *scored]
    rows: list[dict[str, Any]] = []
    for name in METRIC_NAMES:
        arrow = "↓" if name in LOWER_IS_BETTER else "↑"
        star = " (primary)" if name == evaluation.primary_metric else ""
        rows.append(
            dict(zip(columns, [f"{name} {arrow}{star}", *(s.metrics[name] for s in scored.values())], strict=True))
        )
    rows.append(dict(zip(columns, ["threshold", *(round(s.threshold, 3) for s in scored.values())], strict=True)))
    cand = evaluation.candidate
    if cand.latency is not None:
        rows.append(
            {
                columns[0]: "p50 / p99 one row (CPU)",
                columns[1]: f"{cand.latency.p50_ms:.2f} / {cand.latency.p99_ms:.2f} ms",
            }
        )
        rows.append(
            {
                columns[0]: f"rows per CPU s ({cand.latency.batch_rows} rows)",
                columns[1]: f"{cand.latency.rows_per_s:,.0f}",
            }
        )
    if cand.size is not None:
        rows.append({columns[0]: "size", columns[1]: cand.size.describe()})
    table = markdown.table(rows, columns, right=columns[1:])
    reference = (
        " The reference (gradient-boosted trees on the same splits) is never served." if evaluation.reference else ""
    )
    return f"{table}\n\n{evaluation.test_rows:,} test rows, {evaluation.test_positives:,} positive.{reference}"


def slice_table(scores: ModelScores, primary_metric: str, min_size: int) -> str:
    """Markdown table of every slice: size, positives and the main metrics; small slices are marked."""
    rows = [
        {
            "slice": s.name,
            "rows": f"{s.size:,}",
            "positives": f"{s.positives:,}",
            primary_metric: s.metrics[primary_metric],
            "accuracy": s.metrics["accuracy"],
            "f1": s.metrics["f1"],
            "positive rate": s.metrics["positive_rate"],
            "judged": "yes" if s.size >= min_size and not math.isnan(s.metrics[primary_metric]) else "no",
        }
        for s in scores.slices
    ]
    numbers = ["rows", "positives", primary_metric, "accuracy", "f1", "positive rate"]
    return markdown.table(rows, ["slice", *numbers, "judged"], right=numbers)
