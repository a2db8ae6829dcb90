"""DatasetSpec: the single source of column names, types, roles and rules.

Checks (Great Expectations rules), feature transforms, the model's inputs and the HTTP schema are all derived
from one YAML file, so selecting another dataset is one spec plus landing files, with no code change.

A column says how it lands (``landed``, default its ``dtype``) and how it is meant (``role``, ``dtype``): a
categorical, sensitive or target column may land integer-coded (``landed: int64``, categories given as the codes,
optional display ``labels``) or as booleans (``landed: bool``, categories "False" and "True"); after landing it is
text like any category ("1", "True"), so every consumer (features, the model's vocabulary, slices, the HTTP schema)
sees one kind of category whatever the source wrote.

Text lands stripped of surrounding spaces, blank text as missing. Times are held as naive UTC: a value with an
offset or zone is converted, a naive value is read in the spec's ``timezone``. A time column may land as year
numbers (``landed: int64, unit: year``: 2014 is 2014-01-01) or day numbers (``unit: day`` from ``origin``), at
midnight in ``timezone``; a replayed file that carries timestamps in that column is read as timestamps. Text
times that are not ISO 8601 (``17-08-1984``) need the column's ``format`` (``'%d-%m-%Y'``): day-first and
month-first dates cannot be told apart from the text alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator


class Role(StrEnum):
    ID = "id"
    TIME = "time"
    TARGET = "target"
    SENSITIVE = "sensitive"
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


DType = Literal["int64", "float64", "string", "datetime", "bool"]
Severity = Literal["error", "warn"]

PANDAS_DTYPES: dict[str, str] = {
    "int64": "Int64",
    "float64": "float64",
    "string": "string[pyarrow]",  # Arrow strings: vectorised strip/compare, near zero-copy into DuckDB
    "datetime": "datetime64[ns]",
    "bool": "boolean",
}


class NumericRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = Field(None, description="smallest allowed value (none: open below)")
    max: float | None = Field(None, description="largest allowed value (none: open above)")


CODED_ROLES = (Role.CATEGORICAL, Role.SENSITIVE, Role.TARGET)
BOOL_CATEGORIES = {"False": False, "True": True}  # a flag column's categories (landed: bool), text -> landed


def category_text(value: Any, where: str) -> str:
    """A category as the pipeline holds it: text; integer codes (1, 2.0) as their digits ("1", "2")."""
    if isinstance(value, bool):
        raise ValueError(
            f"{where}: {value!r} is a YAML boolean; quote it ('{str(value).lower()}', 'YES') to mean the text"
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"{where}: {value!r} is not a category (text or an integer code)")


class Column(BaseModel):
    """One column of the landed data and its rules."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the column's name in the landing files")
    role: Role = Field(description="id, time, target, sensitive, numeric or categorical (exactly one id, time, target)")
    dtype: DType = Field(description="the type the pipeline holds the column in after landing")
    landed: DType | None = Field(
        None,
        description="the type the column lands as in the files (default: dtype); categorical, sensitive and "
        "target columns may land integer-coded (int64), their categories then given as the codes, or as flags "
        "(bool), their categories then 'False' and 'True'",
    )
    description: str = Field("", description="what the column means (shown in the HTTP schema)")
    nullable: bool = Field(
        False, description="nulls allowed; on the target: rows may land unlabeled (label coverage: mostly)"
    )
    categories: list[str] | None = Field(
        None, description="the allowed values, in landed form (required for categorical, sensitive and target)"
    )
    labels: dict[str, str] | None = Field(
        None, description="display names of categories (code -> name), for tables and reports"
    )
    range: NumericRange | None = Field(None, description="allowed numeric range, {min, max}")
    mostly: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="fraction of rows that must satisfy domain rules; on a nullable target, the fraction of a "
        "day's rows that must carry a label (0: no per-day coverage rule, labels arrive later)",
    )
    severity: Severity = Field("error", description="a failed rule of this column blocks the day (error) or warns")
    feature: bool | None = Field(
        None, description="feed this column to the model; default: yes for numeric/categorical, no otherwise"
    )
    unknown_category: Literal["reject", "map_to_unknown"] = Field(
        "map_to_unknown", description="serving: a category never seen is scored as unknown, or refused with a 400"
    )
    unit: Literal["year", "day"] | None = Field(
        None,
        description="a time column that lands as integers (landed: int64): year numbers (2014 is 2014-01-01) or "
        "day numbers counted from `origin`",
    )
    origin: date | None = Field(None, description="the date that day number 0 of a `unit: day` time column is")
    format: str | None = Field(
        None,
        min_length=2,
        description="a time column whose text is not ISO 8601: its strftime pattern, e.g. '%d-%m-%Y' for "
        "17-08-1984 (ISO 8601 text and timestamps are read as well, as the demo lands them)",
    )
    generated: bool = Field(
        False,
        description="the id or time column of a source that has none: landing fills it in a file that lacks it (an "
        "id from a hash of the day, the file and the row; a time spread over the partition's day by the same hash), "
        "so files of the source as it is land; a file that carries it (the simulator's) keeps its values",
    )

    @model_validator(mode="before")
    @classmethod
    def _categories_as_text(cls, data: Any) -> Any:
        """Integer codes in YAML (``categories: [1, 2]``, ``labels: {1: male}``) become their text form."""
        if not isinstance(data, dict):
            return data
        where = f"column {data.get('name')!r}"
        data = dict(data)
        if isinstance(data.get("categories"), list):
            data["categories"] = [category_text(v, f"{where} categories") for v in data["categories"]]
        if isinstance(data.get("labels"), dict):
            data["labels"] = {category_text(k, f"{where} labels"): str(v) for k, v in data["labels"].items()}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        if self.role in (Role.NUMERIC,) and self.dtype not in ("int64", "float64"):
            raise ValueError(f"column {self.name!r}: numeric role needs dtype int64 or float64, got {self.dtype}")
        if self.role in CODED_ROLES and self.dtype != "string":
            raise ValueError(
                f"column {self.name!r}: role {self.role} needs dtype string, got {self.dtype} (a column that lands "
                "integer-coded is dtype string with landed: int64)"
            )
        if self.unit is not None or self.origin is not None:
            self._numbered_time()
        if self.format is not None:
            self._formatted_time()
        if self.landed is not None and self.landed != self.dtype and self.role != Role.TIME:
            if not (self.role in CODED_ROLES and self.landed in ("int64", "bool")):
                raise ValueError(
                    f"column {self.name!r}: landed {self.landed} differs from dtype {self.dtype}; only categorical, "
                    "sensitive and target columns may land as something else (integer codes: landed: int64; "
                    "flags: landed: bool), and a time column as year or day numbers (landed: int64 with unit)"
                )
            if self.landed == "bool":
                bad = [c for c in self.categories or [] if c not in BOOL_CATEGORIES]
                kind = f"categories {list(BOOL_CATEGORIES)}"
            else:
                bad = [c for c in self.categories or [] if not c.lstrip("-").isdigit()]
                kind = "integers"
            if bad:
                raise ValueError(
                    f"column {self.name!r}: lands as {self.landed} codes, but categories {bad} are not {kind}"
                )
        if self.role == Role.TIME and self.dtype != "datetime":
            raise ValueError(f"column {self.name!r}: time role needs dtype datetime")
        if self.role == Role.TIME and self.landed not in (None, "datetime") and self.unit is None:
            raise ValueError(
                f"column {self.name!r}: a time column landing as {self.landed} needs landed: int64 and a unit "
                "(year, or day with an origin)"
            )
        if self.role in CODED_ROLES and not self.categories:
            raise ValueError(f"column {self.name!r}: role {self.role} needs a list of categories")
        if self.labels is not None:
            unknown = [k for k in self.labels if k not in (self.categories or [])]
            if unknown:
                raise ValueError(f"column {self.name!r}: labels name {unknown}, which are not among its categories")
        if self.range is not None and self.dtype not in ("int64", "float64"):
            raise ValueError(f"column {self.name!r}: a range needs a numeric dtype")
        if self.generated and (self.role, self.dtype, self.landed) not in (
            (Role.ID, "int64", None),
            (Role.TIME, "datetime", None),
        ):
            raise ValueError(f"column {self.name!r}: only an int64 id or a datetime time column can be generated")
        if self.role in (Role.ID, Role.TIME) and self.nullable:
            raise ValueError(f"column {self.name!r}: {self.role} columns cannot be nullable")
        if self.role == Role.TARGET and self.mostly < 1 and not self.nullable:
            raise ValueError(
                f"column {self.name!r}: a label coverage (mostly {self.mostly}) below 1 needs nullable: true"
            )
        if self.mostly == 0 and self.role != Role.TARGET:
            raise ValueError(
                f"column {self.name!r}: mostly 0 would switch its domain rules off; only a nullable target takes "
                "0 (no per-day label coverage rule: labels arrive later)"
            )
        return self

    def _numbered_time(self) -> None:
        """A time column that lands as year or day numbers: landed int64, a unit, an origin for day numbers."""
        where = f"column {self.name!r}"
        if self.role != Role.TIME or self.landed != "int64" or self.unit is None:
            raise ValueError(f"{where}: unit and origin belong to a time column with landed: int64 and a unit")
        if (self.unit == "day") != (self.origin is not None):
            raise ValueError(f"{where}: unit day needs an origin (the date of day 0); unit year takes none")

    def _formatted_time(self) -> None:
        """A time column landing as text in ``format``: a pattern that reads back the day it writes."""
        where = f"column {self.name!r}: format {self.format!r}"
        if self.role != Role.TIME or self.unit is not None:
            raise ValueError(f"{where} belongs to a time column that lands as text (not year or day numbers)")
        day = datetime(2001, 2, 13, 14, 15, 16, tzinfo=UTC)  # aware: a %z pattern writes what it reads
        try:
            read = datetime.strptime(day.strftime(self.format), self.format)
        except ValueError as e:
            raise ValueError(f"{where} cannot read back what it writes ({e})") from e
        if read.date() != day.date():
            raise ValueError(f"{where} does not hold a whole date: it needs a year, a month and a day (%Y %m %d)")

    @property
    def landed_dtype(self) -> DType:
        """The type the column lands as in the files."""
        return self.landed or self.dtype

    @property
    def integer_coded(self) -> bool:
        """A category column that lands as integer codes."""
        return self.dtype == "string" and self.landed_dtype == "int64"

    @property
    def bool_coded(self) -> bool:
        """A category column that lands as booleans (a True / False flag), held as the text "True" / "False"."""
        return self.dtype == "string" and self.landed_dtype == "bool"

    @property
    def numbered_time(self) -> bool:
        """A time column that lands as year or day numbers (``unit``)."""
        return self.role == Role.TIME and self.unit is not None

    def display(self, value: str) -> str:
        """A category with its display name when the spec gives one (``1 (male)``)."""
        name = (self.labels or {}).get(value)
        return f"{value} ({name})" if name else value

    @property
    def is_feature(self) -> bool:
        if self.feature is not None:
            return self.feature and self.role in (Role.NUMERIC, Role.CATEGORICAL, Role.SENSITIVE)
        return self.role in (Role.NUMERIC, Role.CATEGORICAL)

    @property
    def is_numeric_feature(self) -> bool:
        return self.is_feature and self.role == Role.NUMERIC

    @property
    def is_categorical_feature(self) -> bool:
        return self.is_feature and self.role in (Role.CATEGORICAL, Role.SENSITIVE)


class Band(BaseModel):
    """A derived categorical band of a numeric column (for example age bands), used as a slice.

    ``sensitive: true`` makes a numeric sensitive attribute (age) judgeable: the fairness gate then treats the
    band like a sensitive column.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the band column's name (must not clash with a column)")
    source: str = Field(description="the numeric column it bands")
    edges: list[float] = Field(min_length=2, description="increasing edges; a band is [edge, next edge)")
    labels: list[str] = Field(description="one label per band (len(edges) - 1)")
    sensitive: bool = Field(False, description="judge fairness across the bands (a numeric sensitive attribute)")

    @model_validator(mode="after")
    def _labels_match(self) -> Band:
        if len(self.labels) != len(self.edges) - 1:
            raise ValueError(f"band {self.name!r}: needs len(edges) - 1 labels")
        if sorted(self.edges) != self.edges:
            raise ValueError(f"band {self.name!r}: edges must increase")
        return self


class RowCount(BaseModel):
    """Rows a day may land: absolute bounds, and its volume against the trailing median of earlier days."""

    model_config = ConfigDict(extra="forbid")
    min: int = Field(1, description="fewest rows a day may land")
    max: int = Field(10_000_000, description="most rows a day may land")
    severity: Severity = Field("error", description="the row count and volume rules block (error) or warn")
    trailing_days: int = Field(7, ge=1, description="earlier days whose median row count a day is compared with")
    min_history: int = Field(3, ge=1, description="earlier days needed before the volume rule judges a day")
    min_ratio: float = Field(0.6, ge=0.0, description="a day below this share of the trailing median fails")
    max_ratio: float | None = Field(
        None,
        gt=0.0,
        description="a day above this multiple of the trailing median fails (off by default: later "
        "batches of a day add rows)",
    )


class TrainingWindow(BaseModel):
    """How a training set is cut from the latest feature partitions, split by time."""

    model_config = ConfigDict(extra="forbid")
    window_days: int = Field(10, ge=3, description="days in a training window (the N days ending at D)")
    validation_days: int = Field(2, ge=1, description="days before the test days that validate")
    test_days: int = Field(2, ge=1, description="newest days of the window: the test split the gates judge on")
    class_balance: tuple[float, float] = Field(
        (0.05, 0.95), description="each split's positive rate (labeled rows) must be within [low, high]"
    )
    leakage_auc: float = Field(0.95, description="a single feature scoring this ROC AUC alone is leakage")
    joint_leakage_auc: float = Field(
        0.99,
        gt=0.5,
        le=1.0,
        description="small models fitted on all features of the train rows (a logistic regression and shallow "
        "boosted trees) scoring this ROC AUC on later rows is leakage that no single column shows (honest data "
        "stays far below: about 0.92 on Adult, 0.75 on COMPAS, 0.67 on Minneapolis stops)",
    )
    leakage_purity: float = Field(
        0.99, gt=0.5, le=1.0, description="a feature value whose rows carry one label this often fixes the label"
    )
    leakage_share: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="a feature whose label-fixing values cover this share of the train rows is leakage",
    )
    drift_psi: float = Field(0.2, description="PSI above this against the previous training set is drift")

    @model_validator(mode="after")
    def _fits(self) -> TrainingWindow:
        if self.validation_days + self.test_days >= self.window_days:
            raise ValueError("training window: validation_days + test_days must leave days to train on")
        return self


class Retraining(BaseModel):
    """When models retrain by themselves (declarative automation), and how old a serving model may get."""

    model_config = ConfigDict(extra="forbid")

    trigger: Literal["every_training_set", "cron", "on_request"] = Field(
        "every_training_set",
        description="every_training_set: retrain whenever a new training set passes its checks; cron: at most once "
        "per tick of `cron`, when a new training set passed since the last tick; on_request: only when the "
        "retrain sensor (monitoring) or a person asks",
    )
    cron: str | None = Field(None, description="cron schedule for trigger `cron`, e.g. '0 */6 * * *'")
    max_model_age_hours: float = Field(
        168.0, gt=0, description="freshness policy of champion_model and deployment: older than this fails"
    )

    @model_validator(mode="after")
    def _cron_given(self) -> Retraining:
        # the schedule itself is validated by Dagster when the automation condition is built
        if self.trigger == "cron" and len((self.cron or "").split()) != 5:
            raise ValueError(f"retraining: trigger 'cron' needs a 5-field cron schedule, got {self.cron!r}")
        return self


class Monitoring(BaseModel):
    """Thresholds of the served model's monitoring (``model_monitoring`` checks, retraining and rollback)."""

    model_config = ConfigDict(extra="forbid")

    drift_psi: float = Field(0.2, gt=0, description="PSI of a served input or of the predictions beyond this is drift")
    performance_drop: float = Field(
        0.05, ge=0, description="estimated or realized primary metric this far below the evaluation's fails"
    )
    rollback_drop: float = Field(
        0.02,
        ge=0,
        description="the champion realizing this far below the previous champion on the same labeled "
        "rows rolls back to the previous champion",
    )
    label_window_days: int = Field(7, ge=0, description="labels of a day's predictions land within this many days")
    min_labeled_rows: int = Field(200, ge=1, description="realized figures need at least this many labeled rows")
    min_served_rows: int = Field(
        1000,
        ge=1,
        description="drift and estimated performance need at least this many rows served by the model on the day "
        "(PSI over a few hundred rows of many categories is noise)",
    )
    max_training_data_age_days: float = Field(
        30.0, gt=0, description="staleness: the serving model's newest training day older than this fails"
    )
    retrain_cooldown_hours: float = Field(6.0, ge=0, description="at most one retraining request per this many hours")


# The final ML Test Score a fresh `ml-assets demo` reaches at its first promotion (README, "The ML Test Score"):
# the monitoring section holds only numerically_stable then; the gate's default guards against falling below it.
MIN_SCORE_DEFAULT = 1.0


class Readiness(BaseModel):
    """The readiness gate: promotion needs The ML Test Score (``ml_test_score``) at least ``min_score``."""

    model_config = ConfigDict(extra="forbid")

    min_score: float = Field(
        MIN_SCORE_DEFAULT,
        ge=0,
        le=7,
        description="the final ML Test Score (the minimum of the four section scores, 0 to 7) a candidate's "
        "promotion needs; the default is the level a fresh demo reaches, so the gate guards against regressions",
    )


class SearchSpace(BaseModel):
    """The values a candidate search draws from: architectures, numeric embeddings and the training settings."""

    model_config = ConfigDict(extra="forbid")

    architecture: list[Literal["mlp", "transformer"]] = Field(
        default_factory=lambda: ["mlp"], min_length=1, description="networks to draw (transformer: slow on CPU)"
    )
    numeric_embedding: list[Literal["none", "ple", "periodic"]] = Field(
        default_factory=lambda: ["ple", "periodic"],
        min_length=1,
        description="how numeric columns enter: ple (piecewise linear over quantile bins), periodic, none",
    )
    numeric_scaling: list[Literal["standard", "quantile"]] = Field(
        default_factory=lambda: ["quantile", "standard"],
        min_length=1,
        description="numeric values standardised, or mapped to the normal scores of their train quantiles",
    )
    frequency_scale: list[float] = Field(
        default_factory=lambda: [0.5, 2.0, 8.0, 24.0],
        min_length=1,
        description="periodic embedding: std of the initial frequencies (high: sharp effects, low: smooth ones)",
    )
    hidden: list[list[int]] = Field(
        default_factory=lambda: [[128, 64], [256, 128], [64, 32], [256, 128, 64]],
        min_length=1,
        description="MLP hidden layer widths",
    )
    dropout: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2], min_length=1, description="dropout rates")
    learning_rate: list[float] = Field(
        default_factory=lambda: [1e-3, 2e-3, 5e-3], min_length=1, description="AdamW learning rates"
    )
    weight_decay: list[float] = Field(
        default_factory=lambda: [1e-5, 1e-4, 1e-3], min_length=1, description="AdamW weight decays"
    )
    lr_schedule: list[Literal["constant", "warmup", "warmup_decay", "warmup_cosine"]] = Field(
        default_factory=lambda: ["warmup_decay", "warmup_cosine"], min_length=1, description="learning-rate schedules"
    )
    class_weight: list[Literal["none", "balanced"]] = Field(
        default_factory=lambda: ["none", "balanced"],
        min_length=1,
        description="class imbalance: none, or balanced (positives weigh negatives/positives; probabilities "
        "corrected back)",
    )


class SuccessiveHalving(BaseModel):
    """Successive halving across the trials of one launch: all train ``min_epochs``, the best 1/eta on validation
    go on to ``min_epochs * eta`` epochs, and so on up to the trainer's max_epochs."""

    model_config = ConfigDict(extra="forbid")

    min_epochs: int = Field(4, ge=1, description="epochs every trial trains before the first comparison")
    eta: int = Field(3, ge=2, description="a rung keeps the best 1/eta of the trials")


class CandidateSearch(BaseModel):
    """The candidate's budgeted search: the configured network, then ``trials - 1`` seeded draws from ``space``,
    all trained in one DeepSpeed launch by successive halving; the best on validation, or the ensemble of the best
    when it scores better there, becomes the candidate."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(8, ge=1, description="networks trained per candidate (1: only the configured one)")
    max_seconds: float | None = Field(
        120.0,
        gt=0,
        description="no trial trains further once training has run this long (the first always starts); the "
        "default fits the demo on 2 CPU cores",
    )
    seed: int = Field(0, description="seed of the draws from the space")
    space: SearchSpace = Field(SearchSpace(), description="the values trials are drawn from")
    halving: SuccessiveHalving | None = Field(
        SuccessiveHalving(), description="successive halving across the trials (null: every trial trains to the end)"
    )
    ensemble_size: int = Field(
        5, ge=1, description="most trials averaged into the candidate when that scores better on validation (1: off)"
    )
    families: list[Literal["logistic", "mlp", "transformer", "gbdt"]] = Field(
        default_factory=lambda: ["logistic", "mlp", "transformer"],
        min_length=1,
        description="the model families that compete for the candidate: logistic, the logistic regression with the "
        "baseline's default settings (so a network that does not beat it on validation is not the candidate: the simple model is), "
        "the networks of the search (mlp, transformer: the architectures it may draw) and gbdt, gradient-boosted "
        "trees (LightGBM, early-stopped on validation); the candidate is the simplest (logistic, then the networks, "
        "then trees, whatever the order here) within one standard error of the best on validation, served and "
        "judged the same way",
    )

    @property
    def networks(self) -> list[str]:
        """The network families listed (an empty list: no DeepSpeed launch, only logistic or trees)."""
        return [f for f in self.families if f in ("mlp", "transformer")]


PrimaryMetric = Literal["roc_auc", "pr_auc", "accuracy", "f1", "log_loss", "brier", "ece"]
# Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
# Gates that can find nothing to judge (no sensitive column, no slice or group large enough); by default such a gate
# fails, and the spec may allow it to be skipped instead (never recorded as passed).
SkippableGate = Literal["slice_quality", "fairness"]


class AcknowledgedScore(BaseModel):
    """A person's word that a test score above ``gates.too_good`` is real, naming the features that carry it.

    The acknowledgment holds only while the score is carried by these features: a new leak elsewhere blocks again.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, description="why the score is real (who checked what, and when)")
    features: list[str] = Field(
        min_length=1, description="the feature columns acknowledged to carry the score (as the gate names them)"
    )


class GateThresholds(BaseModel):
    """Every bar a candidate must clear to become champion. Defaults fit a binary tabular classifier judged by ROC AUC.

    The fairness limits are deliberately not tighter than the data allows: in UCI Adult the base rate of the
    positive label differs by about 0.2 between sexes, so a calibrated model shows a demographic parity gap of
    that size; a model that learned to ignore one group's positives shows equalized-odds gaps above 0.5.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_metric: PrimaryMetric = Field("roc_auc", description="the metric the gates compare models by")
    baseline_margin: float = Field(0.0, ge=0.0, description="candidate must beat the baseline by this much")
    baseline_noise: float = Field(
        1.0,
        ge=0.0,
        description="beats_baseline with no baseline_margin: the candidate may trail the baseline by this many "
        "standard errors of the gap between them on the test rows (a stratified paired bootstrap), a difference the "
        "test split cannot tell from noise; 0: not at all. A margin above 0 asks for a real gain and tolerates no "
        "deficit; metrics without a bootstrap (accuracy, f1, brier, ece) tolerate none either",
    )
    absolute_floor: float = Field(
        0.70, description="TFX GenericValueThreshold: the primary metric's bound (a ceiling if lower is better)"
    )
    champion_tolerance: float = Field(
        0.01, ge=0.0, description="TFX GenericChangeThreshold: how much worse than the champion is tolerated"
    )
    slice_min_size: int = Field(200, ge=1, description="slices and fairness groups smaller than this are not judged")
    slice_floor: float = Field(0.65, description="primary metric every judged slice must reach")
    max_demographic_parity_difference: float = Field(
        0.25, ge=0.0, le=1.0, description="fairness: largest gap in predicted positive rate between groups"
    )
    max_equalized_odds_difference: float = Field(
        0.30, ge=0.0, le=1.0, description="fairness: largest gap in true or false positive rate between groups"
    )
    max_p99_ms: float = Field(
        100.0,
        gt=0.0,
        description="p99 CPU time of a one-row predict_proba on its thread, in-process (leaves room for HTTP; the "
        "wall time of the machine that evaluates is reported, not judged)",
    )
    min_rows_per_s: float = Field(
        1000.0, gt=0.0, description="rows per CPU second (every thread of the process) of a 1,000-row batch"
    )
    too_good: float = Field(
        0.99,
        gt=0.5,
        le=1.0,
        description="a candidate test ROC AUC above this is too good to be true: promotion waits for "
        "acknowledged_too_good",
    )
    acknowledged_too_good: AcknowledgedScore | None = Field(
        None, description="a person's acknowledgment of a score above too_good: {reason, features}"
    )
    min_prediction_ratio: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="degenerate model: the candidate must predict each class for at least this fraction of the "
        "test rows that truly hold it (predicted positive rate >= ratio x actual positive rate; the same for "
        "negatives)",
    )
    reference_gap: float = Field(
        0.01,
        ge=0.0,
        description="gap_to_reference (a warning, never blocking): the candidate's primary metric this far behind the "
        "gradient-boosted trees reference fitted on the same splits warns",
    )
    may_skip: list[SkippableGate] = Field(
        default_factory=list,
        description="gates that may be skipped (shown as not executed) when they find nothing to judge; any other "
        "gate that cannot judge fails",
    )

    @property
    def higher_is_better(self) -> bool:
        return self.primary_metric not in LOWER_IS_BETTER


class DecisionCosts(BaseModel):
    """What each kind of wrong decision costs, in any one unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fp: float = Field(ge=0.0, description="cost of a false positive")
    fn: float = Field(ge=0.0, description="cost of a false negative")

    @model_validator(mode="after")
    def _some_cost(self) -> DecisionCosts:
        if self.fp == 0 and self.fn == 0:
            raise ValueError("decision costs: fp and fn cannot both be 0")
        return self


class DecisionPolicy(BaseModel):
    """How the decision threshold (probability at or above which a row is predicted positive) is chosen: on the
    validation split only, then stored with the model, so evaluation, serving, batch scoring and monitoring all
    decide alike."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["max_f1", "balanced", "precision", "recall", "cost"] = Field(
        "max_f1",
        description="max_f1: the threshold of the highest F1 (of the positive class: suits rare positives); "
        "balanced: the highest balanced accuracy, recall + specificity (suits positives that are the majority, "
        "where F1 favours predicting every row positive); precision: the most recall whose precision reaches "
        "target; recall: the most precision whose recall reaches target; cost: the least fp x costs.fp + "
        "fn x costs.fn",
    )
    target: float | None = Field(None, gt=0.0, le=1.0, description="the precision or recall to reach")
    costs: DecisionCosts | None = Field(None, description="costs of errors, for policy cost: {fp, fn}")

    @model_validator(mode="after")
    def _complete(self) -> DecisionPolicy:
        needs_target = self.policy in ("precision", "recall")
        if needs_target != (self.target is not None):
            raise ValueError(
                f"decision: policy {self.policy!r} "
                + ("needs a target (e.g. target: 0.8)" if needs_target else "takes no target")
            )
        if (self.policy == "cost") != (self.costs is not None):
            raise ValueError(
                "decision: policy 'cost' needs costs: {fp: ..., fn: ...}"
                if self.policy == "cost"
                else f"decision: policy {self.policy!r} takes no costs"
            )
        return self


class DatasetSpec(BaseModel):
    """A tabular dataset: its columns with roles and rules, partitioning and training window."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="dataset name: model names derive from it")
    description: str = Field("", description="what the data is")
    source: str = Field("", description="where the data comes from (citation)")
    license: str = Field("", description="the data's licence")
    positive_label: str = Field(description="the target category that is the positive class (an integer code too)")
    partitions_start: date | Literal["auto"] = Field(
        "auto",
        description="first daily partition: a date (where the data starts), or auto: the first landed day found "
        "when the code location loads (today if nothing has landed yet)",
    )
    timezone: str = Field("UTC", description="the timezone of the daily partitions")
    freshness_hours: float = Field(48.0, description="a day's newest event older than this warns (freshness)")
    row_count: RowCount = Field(RowCount(), description="how many rows a day may land, and its volume rule")
    training: TrainingWindow = Field(TrainingWindow(), description="the training window and its checks")
    retraining: Retraining = Retraining()
    monitoring: Monitoring = Monitoring()
    readiness: Readiness = Field(Readiness(), description="the readiness gate on promotion (The ML Test Score)")
    columns: list[Column] = Field(description="every landed column with its role, type and rules")
    bands: list[Band] = Field([], description="bands of numeric columns: slices, and sensitive attributes")
    left_out: dict[str, str] = Field(
        {},
        description="columns of the source the spec leaves out, each with why (spec infer writes them): landing "
        "expects them (no unexpected_columns warning, not stored) and the HTTP API refuses them saying why",
    )
    unexpected_columns: Severity = Field(
        "warn", description="a landed column the spec does not name: warn (default) or error (blocks the day)"
    )
    duplicate_rows: Severity | Literal["off"] = Field(
        "warn",
        description="rows of a day equal on every column but the id (a record sent twice under new ids): warn "
        "(default), error (blocks the day) or off",
    )
    demo_data: str | None = Field(
        None, description="the real demo rows: a CSV (gzip allowed) or Parquet file, path relative to the spec"
    )
    search: CandidateSearch = Field(CandidateSearch(), description="the candidate's budgeted search")
    gates: GateThresholds = Field(
        GateThresholds(), description="the model gates' thresholds (ml_assets.model.gates): what may be promoted"
    )
    decision: DecisionPolicy = Field(
        DecisionPolicy(), description="how the decision threshold is chosen on the validation split"
    )
    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> Path | None:
        """The YAML file the spec was loaded from (None when built in memory); copies keep it."""
        return self._path

    @model_validator(mode="before")
    @classmethod
    def _positive_label_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and "positive_label" in data:
            data = {**data, "positive_label": category_text(data["positive_label"], "positive_label")}
        return data

    @model_validator(mode="after")
    def _roles(self) -> DatasetSpec:
        names = [c.name for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate column names: {sorted(dupes)}")
        for role in (Role.ID, Role.TIME, Role.TARGET):
            found = [c.name for c in self.columns if c.role == role]
            if len(found) != 1:
                raise ValueError(f"exactly one column must have role {role.value!r}, found {found}")
        if self.positive_label not in (self.target.categories or []):
            raise ValueError(
                f"positive_label {self.positive_label!r} is not one of the target's categories {self.target.categories}"
            )
        for band in self.bands:
            src = self.column(band.source)
            if src.dtype not in ("int64", "float64"):
                raise ValueError(f"band {band.name!r}: source {band.source!r} is not numeric")
            if band.name in names:
                raise ValueError(f"band {band.name!r} clashes with a column name")
        if not self.feature_columns:
            raise ValueError("the spec has no feature columns")
        if both := sorted(set(self.left_out) & {*names, *(b.name for b in self.bands)}):
            raise ValueError(f"left_out names {both}, which the spec also uses as columns or bands")
        return self

    @model_validator(mode="after")
    def _acknowledged_features_exist(self) -> DatasetSpec:
        ack = self.gates.acknowledged_too_good
        unknown = [f for f in ack.features if f not in {c.name for c in self.feature_columns}] if ack else []
        if unknown:
            raise ValueError(f"gates.acknowledged_too_good names {unknown}, which are not feature columns")
        return self

    # ---- lookups -------------------------------------------------------------------------------------
    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"dataset {self.name!r} has no column {name!r}")

    def _one(self, role: Role) -> Column:
        return next(c for c in self.columns if c.role == role)

    @property
    def id(self) -> Column:
        return self._one(Role.ID)

    @property
    def time(self) -> Column:
        return self._one(Role.TIME)

    @property
    def target(self) -> Column:
        return self._one(Role.TARGET)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def feature_columns(self) -> list[Column]:
        return [c for c in self.columns if c.is_feature]

    @property
    def numeric_features(self) -> list[str]:
        return [c.name for c in self.columns if c.is_numeric_feature]

    @property
    def categorical_features(self) -> list[str]:
        return [c.name for c in self.columns if c.is_categorical_feature]

    @property
    def sensitive_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.role == Role.SENSITIVE]

    @property
    def slice_columns(self) -> list[str]:
        """Columns to evaluate quality and fairness on: sensitive attributes and derived bands."""
        return self.sensitive_columns + [b.name for b in self.bands]

    @property
    def fairness_columns(self) -> list[str]:
        """What the fairness gate judges: sensitive columns and the bands marked sensitive."""
        return self.sensitive_columns + [b.name for b in self.bands if b.sensitive]

    def display(self, column: str, value: str) -> str:
        """A slice value with its display name, when ``column`` is a spec column with ``labels``."""
        return self.column(column).display(value) if column in self.column_names else value

    @property
    def label_column(self) -> str:
        """The encoded target in features and training sets (1 = positive label)."""
        return "label"

    @property
    def pandas_dtypes(self) -> dict[str, str]:
        # not cached: model_copy copies an instance's cached values, so a copy with other columns (a narrowed or
        # pinned spec) would keep the original's types
        return {c.name: PANDAS_DTYPES[c.dtype] for c in self.columns}

    @property
    def labeled_fraction_required(self) -> float:
        """Share of rows that must carry a label: 1 unless the target is nullable (then its ``mostly``)."""
        return self.target.mostly if self.target.nullable else 1.0

    def unexpected(self, frame: pd.DataFrame) -> list[str]:
        """Landed columns the spec neither names nor leaves out on purpose (``left_out``), in landed order."""
        known = {*self.column_names, *self.left_out}
        return [str(c) for c in frame.columns if c not in known]

    # ---- transforms shared by every consumer ---------------------------------------------------------
    def coerce(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
        """Cast a landed frame to the spec's types; return it and, per column, values that failed to cast.

        Missing columns are added as all-null so storage keeps one schema; extra columns are not stored (the
        ``unexpected_columns`` check names them). Values that cannot be cast become null and are counted, never
        silently accepted. Integer-coded categories are cast as integers first (so 1, "1" and 1.0 are one code).
        """
        out: dict[str, pd.Series] = {}
        failures: dict[str, int] = {}
        for col in self.columns:
            if col.name not in frame.columns:
                out[col.name] = pd.Series(index=frame.index, dtype=PANDAS_DTYPES[col.dtype])  # all missing
                continue
            src = frame[col.name]
            cast = self.typed(col.name, src)
            if col.landed_dtype != "string":  # any value is text: nothing can fail to cast (blank text is missing)
                bad = int((cast.isna() & _present(src)).sum())
                if bad:
                    failures[col.name] = bad
            out[col.name] = cast
        return pd.DataFrame(out, index=frame.index), failures

    def typed(self, name: str, values: pd.Series) -> pd.Series:
        """One column's values cast to its type as ``coerce`` would (failed casts become null).

        Times are held as naive UTC: values with an offset or zone are converted, naive ones are read in the
        spec's ``timezone``; year or day numbers (``unit``) are that year's first day, or ``origin`` plus that
        many days, at midnight in ``timezone`` (values that landed as timestamps are read as timestamps).
        """
        col = self.column(name)
        if col.numbered_time and not _is_timestamps(values):
            return _numbers_as_times(_cast(values, "int64"), col, self.timezone)
        if col.role == Role.TIME:
            return _cast_times(values, self.timezone, col.format)
        cast = _cast(values, col.landed_dtype)
        return cast.astype(PANDAS_DTYPES["string"]) if col.integer_coded or col.bool_coded else cast

    def landed_form(self, col: Column, values: pd.Series) -> pd.Series:
        """Typed values back in the form the column lands in (integer codes for an integer-coded column)."""
        if col.integer_coded:
            return pd.to_numeric(values.astype(PANDAS_DTYPES["string"]), errors="coerce").astype("Int64")
        if col.bool_coded:
            return values.astype(PANDAS_DTYPES["string"]).map(BOOL_CATEGORIES, na_action="ignore").astype("boolean")
        return values

    def band_values(self, band: Band, values: pd.Series) -> pd.Series:
        cut = pd.cut(values.astype("float64"), bins=band.edges, labels=band.labels, right=False)
        return cut.astype("string")

    def encode_label(self, target: pd.Series) -> pd.Series:
        """1 for the positive label, 0 for any other. With a nullable target a missing label stays missing
        (an unlabeled row, nullable Int8); otherwise the label is plain int8, as every consumer can take it."""
        text = target.astype("string")
        positive = text == self.positive_label
        if self.target.nullable:
            return positive.astype("Int8").mask(text.isna())
        return positive.astype("int8")

    def labeled(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows that carry a label (every row unless the target is nullable)."""
        if not self.target.nullable:
            return frame
        return frame[frame[self.label_column].notna()]

    def empty_frame(self) -> pd.DataFrame:
        return pd.DataFrame({c.name: pd.Series(dtype=PANDAS_DTYPES[c.dtype]) for c in self.columns})


def _present(s: pd.Series) -> pd.Series:
    """Values that were really given (not null, not blank text)."""
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        return s.notna() & (s.astype(PANDAS_DTYPES["string"]).str.strip() != "")
    return s.notna()


def landed_text(s: pd.Series) -> pd.Series:
    """Text as landing holds it: surrounding spaces stripped, blank text missing (``"Other   "`` is ``"Other"``)."""
    text = s.astype(PANDAS_DTYPES["string"]).str.strip()
    return text.mask(text == "")


def with_columns(frame: pd.DataFrame, columns: dict[str, pd.Series]) -> pd.DataFrame:
    """``frame`` with ``columns`` set (a shallow copy; ``frame`` itself when there are none). Not ``assign(**)``:
    a column may be named ``self`` (a self-employed flag) and keyword arguments cannot carry that name."""
    if not columns:
        return frame
    out = frame.copy(deep=False)
    for name, values in columns.items():
        out[name] = values
    return out


def _is_timestamps(s: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(s.dtype) or (isinstance(s.dtype, pd.ArrowDtype) and s.dtype.kind == "M")


def _numbers_as_times(numbers: pd.Series, col: Column, timezone: str) -> pd.Series:
    """Year numbers (Jan 1 of that year) or day numbers (``origin`` + n days) as naive UTC; out of range is null."""
    values = numbers.astype("float64")
    if col.unit == "year":
        ok = values.between(1678, 2261)  # the years a nanosecond timestamp holds
        local = pd.to_datetime(values.where(ok).astype("Int64").astype("string"), format="%Y", errors="coerce")
    else:
        ok = values.abs() <= 100_000  # about 270 years either side of the origin
        local = pd.Timestamp(col.origin) + pd.to_timedelta(values.where(ok), unit="D")
    return _local_to_utc(pd.Series(local, index=numbers.index), timezone)


def _local_to_utc(naive: pd.Series, timezone: str) -> pd.Series:
    """Naive wall-clock times in ``timezone`` as naive UTC (a time that does not exist there, or exists twice,
    is null)."""
    if timezone == "UTC":
        return naive.astype("datetime64[ns]")
    aware = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    return aware.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")


# an ISO 8601 time that says its offset: Z or +hh[:mm] after a clock time, hh[:mm[:ss[.f]]] after T or a space
# (2024-01-05T10Z, 20240105T100000+0200); a date alone, 1984-08-17, ends in "-17" but has no offset: it is
# midnight in the spec's timezone
TIME_OFFSET = r"[T\s]\d\d(?::?\d\d(?::?\d\d(?:[.,]\d+)?)?)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"


def _cast_times(s: pd.Series, timezone: str, format: str | None = None) -> pd.Series:
    """Times as naive UTC: values with an offset or zone converted, naive values read in ``timezone``; text in
    ``format`` read by it, any other text as ISO 8601."""
    if format is not None and not _is_timestamps(s):
        text = s.astype(PANDAS_DTYPES["string"]).str.strip()
        zoned = "%z" in format or "%Z" in format
        read = pd.to_datetime(text, format=format, errors="coerce", utc=zoned)
        if zoned:
            formatted = read.dt.tz_convert(None).astype("datetime64[ns]")
        else:
            formatted = _local_to_utc(pd.Series(read, index=s.index), timezone)
        if read.notna().all():
            return formatted
        return formatted.where(read.notna(), _cast_times(text.where(read.isna()), timezone))
    if _is_timestamps(s):
        zone = getattr(s.dtype, "tz", None) or getattr(getattr(s.dtype, "pyarrow_dtype", None), "tz", None)
        if zone is not None:
            return pd.to_datetime(s, utc=True).dt.tz_convert(None).astype("datetime64[ns]")
        return _local_to_utc(pd.to_datetime(s).astype("datetime64[ns]"), timezone)
    if timezone == "UTC":  # naive and offset times alike: one parse
        ts = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
        return ts.dt.tz_convert(None).astype("datetime64[ns]")
    text = s.astype(PANDAS_DTYPES["string"]).str.strip()
    has_offset = text.str.contains(TIME_OFFSET, regex=True).fillna(False).astype(bool)
    aware = pd.to_datetime(text.where(has_offset), errors="coerce", utc=True, format="ISO8601")
    out = aware.dt.tz_convert(None).astype("datetime64[ns]")
    naive = pd.to_datetime(text.where(~has_offset), errors="coerce", format="ISO8601")
    return out.where(has_offset, _local_to_utc(pd.Series(naive, index=s.index), timezone))


def _cast(s: pd.Series, dtype: str, timezone: str = "UTC") -> pd.Series:
    if dtype in ("int64", "float64"):
        num = pd.to_numeric(s, errors="coerce")
        if dtype == "int64":
            frac = num.notna() & (np.floor(num) != num)
            num = num.mask(frac)
            return num.astype("Int64")
        return num.astype("float64")
    if dtype == "string":
        return landed_text(s)
    if dtype == "datetime":
        return _cast_times(s, timezone)  # naive UTC, numpy-backed whatever the reader
    if dtype == "bool":
        mapping = {"true": True, "false": False, "1": True, "0": False}
        return s.astype("string").str.lower().map(mapping).astype("boolean")
    raise ValueError(f"unknown dtype {dtype}")


class SpecError(ValueError):
    """A dataset spec file that cannot be used, with the file and the reason."""


def load_spec(path: str | Path) -> DatasetSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise SpecError(f"dataset spec {path} does not exist (set ML_ASSETS_DATASET_SPEC to a YAML file)") from e
    except yaml.YAMLError as e:
        raise SpecError(f"dataset spec {path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise SpecError(f"dataset spec {path} must be a YAML mapping")
    try:
        spec = DatasetSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(f"dataset spec {path} is invalid:\n{e}") from e
    spec._path = path
    return spec


def spec_dir(spec: DatasetSpec) -> Path:
    return (spec.path or Path("spec.yaml")).parent


def demo_data_path(spec: DatasetSpec) -> Path | None:
    return spec_dir(spec) / spec.demo_data if spec.demo_data else None


CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")  # NannyML ships its datasets as .pq
DATA_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
OTHER_SEPARATORS = {"\t": "tabs", ";": "semicolons", "|": "vertical bars"}


def is_parquet(path: str | Path) -> bool:
    """Whether a data file is Parquet, by its suffix (anything else of DATA_SUFFIXES is CSV)."""
    return Path(path).name.lower().endswith(PARQUET_SUFFIXES)


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (gzip allowed) or Parquet file as its columns' own types (Arrow-backed for CSV, like a landing).

    Raises SpecError naming the file when the suffix is not one of ``DATA_SUFFIXES``, or when a CSV reads as one
    column whose name holds another separator (a tab-separated file named .csv, as statsmodels' anes96.csv).
    """
    path = Path(path)
    if is_parquet(path):
        return pd.read_parquet(path)
    if not path.name.lower().endswith(CSV_SUFFIXES):
        raise SpecError(f"data file {path}: not a CSV, gzipped CSV or Parquet file (suffix one of {DATA_SUFFIXES})")
    try:
        frame = pd.read_csv(path, engine="pyarrow", dtype_backend="pyarrow")
    except ValueError as e:  # pandas' ParserError: rows of another width than the header's (sklearn's
        # breast_cancer.csv heads 31-field rows with "569,30,malignant,benign"), bad quoting, ...
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise SpecError(f"data file {path}: cannot be read as CSV: {first[:300]}") from e
    header = str(frame.columns[0]) if len(frame.columns) == 1 else ""
    found = [name for sep, name in OTHER_SEPARATORS.items() if sep in header]
    if found:
        raise SpecError(
            f"data file {path}: read as one column, {header[:60]!r}..., whose name holds {found[0]}: a CSV here is "
            f"separated by commas; write it with commas (pandas: pd.read_csv(path, sep=None).to_csv(new_path))"
        )
    return frame


def read_demo_data(spec: DatasetSpec) -> pd.DataFrame:
    """The spec's demo rows from its ``demo_data`` file (CSV or Parquet), as they are in the file.

    Each call returns its own copy of a frame decoded once per file version: simulate, replay and the samples all
    start from the demo rows (the demo reads them several times), and decoding Adult's 48,842 rows costs ten
    times the copy.
    """
    path = demo_data_path(spec)
    if path is None:
        raise SpecError(f"dataset {spec.name!r} ships no demo data (the spec names no demo_data file)")
    if not path.exists():
        raise SpecError(f"dataset {spec.name!r} ships no demo data ({path} does not exist)")
    stat = path.stat()
    return _decoded(str(path.resolve()), stat.st_mtime_ns, stat.st_size).copy()


@lru_cache(maxsize=4)
def _decoded(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """``read_table(path)``, kept per file version (the modification time and size are part of the key)."""
    return read_table(path)


def load_default_spec() -> DatasetSpec:
    from ml_assets.settings import spec_path

    return load_spec(spec_path())
