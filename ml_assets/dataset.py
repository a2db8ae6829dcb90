"""DatasetSpec: the single source of column names, types, roles and rules.

Checks (Great Expectations rules), feature transforms, the model's inputs and the HTTP schema are all derived
from one YAML file, so selecting another dataset is one spec plus landing files, with no code change.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from functools import cached_property
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
    min: float | None = None
    max: float | None = None


class Column(BaseModel):
    """One column of the landed data and its rules."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role
    dtype: DType
    description: str = ""
    nullable: bool = False
    categories: list[str] | None = None
    range: NumericRange | None = None
    mostly: float = Field(1.0, gt=0.0, le=1.0, description="fraction of rows that must satisfy domain rules")
    severity: Severity = "error"
    feature: bool | None = Field(
        None, description="feed this column to the model; default: yes for numeric/categorical, no otherwise"
    )
    unknown_category: Literal["reject", "map_to_unknown"] = "map_to_unknown"

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        if self.role in (Role.NUMERIC,) and self.dtype not in ("int64", "float64"):
            raise ValueError(f"column {self.name!r}: numeric role needs dtype int64 or float64, got {self.dtype}")
        if self.role in (Role.CATEGORICAL, Role.SENSITIVE, Role.TARGET) and self.dtype != "string":
            raise ValueError(f"column {self.name!r}: role {self.role} needs dtype string, got {self.dtype}")
        if self.role == Role.TIME and self.dtype != "datetime":
            raise ValueError(f"column {self.name!r}: time role needs dtype datetime")
        if self.role in (Role.CATEGORICAL, Role.SENSITIVE, Role.TARGET) and not self.categories:
            raise ValueError(f"column {self.name!r}: role {self.role} needs a list of categories")
        if self.range is not None and self.dtype not in ("int64", "float64"):
            raise ValueError(f"column {self.name!r}: a range needs a numeric dtype")
        if self.role in (Role.ID, Role.TIME, Role.TARGET) and self.nullable:
            raise ValueError(f"column {self.name!r}: {self.role} columns cannot be nullable")
        return self

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
    """A derived categorical band of a numeric column (for example age bands), used as a slice."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    edges: list[float] = Field(min_length=2)
    labels: list[str]

    @model_validator(mode="after")
    def _labels_match(self) -> Band:
        if len(self.labels) != len(self.edges) - 1:
            raise ValueError(f"band {self.name!r}: needs len(edges) - 1 labels")
        if sorted(self.edges) != self.edges:
            raise ValueError(f"band {self.name!r}: edges must increase")
        return self


class RowCount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int = 1
    max: int = 10_000_000
    severity: Severity = "error"


class TrainingWindow(BaseModel):
    """How a training set is cut from the latest feature partitions, split by time."""

    model_config = ConfigDict(extra="forbid")
    window_days: int = Field(10, ge=3)
    validation_days: int = Field(2, ge=1)
    test_days: int = Field(2, ge=1)
    class_balance: tuple[float, float] = (0.05, 0.95)
    leakage_auc: float = Field(0.98, description="a single feature scoring this ROC AUC alone is leakage")
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
    max_training_data_age_days: float = Field(
        30.0, gt=0, description="staleness: the serving model's newest training day older than this fails"
    )
    retrain_cooldown_hours: float = Field(6.0, ge=0, description="at most one retraining request per this many hours")


class DatasetSpec(BaseModel):
    """A tabular dataset: its columns with roles and rules, partitioning and training window."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = ""
    source: str = ""
    license: str = ""
    positive_label: str
    partitions_start: date | Literal["auto"] = Field(
        "auto",
        description="first daily partition: a date (where the data starts), or auto: the first landed day found "
        "when the code location loads (today if nothing has landed yet)",
    )
    timezone: str = "UTC"
    freshness_hours: float = 48.0
    row_count: RowCount = RowCount()
    training: TrainingWindow = TrainingWindow()
    retraining: Retraining = Retraining()
    monitoring: Monitoring = Monitoring()
    columns: list[Column]
    bands: list[Band] = []
    demo_data: str | None = Field(None, description="parquet file beside the spec with the real demo rows")
    gates: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the model gate thresholds (ml_assets.model.gates)"
    )
    _path: Path | None = PrivateAttr(None)

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
    def label_column(self) -> str:
        """The encoded target in features and training sets (1 = positive label)."""
        return "label"

    @cached_property
    def pandas_dtypes(self) -> dict[str, str]:
        return {c.name: PANDAS_DTYPES[c.dtype] for c in self.columns}

    # ---- transforms shared by every consumer ---------------------------------------------------------
    def coerce(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
        """Cast a landed frame to the spec's types; return it and, per column, values that failed to cast.

        Missing columns are added as all-null so storage keeps one schema; extra columns are dropped.
        Values that cannot be cast become null and are counted, never silently accepted.
        """
        out: dict[str, pd.Series] = {}
        failures: dict[str, int] = {}
        for col in self.columns:
            if col.name not in frame.columns:
                out[col.name] = pd.Series(pd.NA, index=frame.index, dtype=PANDAS_DTYPES[col.dtype])
                continue
            src = frame[col.name]
            cast = _cast(src, col.dtype)
            if col.dtype == "string":  # any value is text: nothing can fail to cast (blank text is missing)
                out[col.name] = cast
                continue
            bad = int((cast.isna() & _present(src)).sum())
            if bad:
                failures[col.name] = bad
            out[col.name] = cast
        return pd.DataFrame(out, index=frame.index), failures

    def band_values(self, band: Band, values: pd.Series) -> pd.Series:
        cut = pd.cut(values.astype("float64"), bins=band.edges, labels=band.labels, right=False)
        return cut.astype("string")

    def encode_label(self, target: pd.Series) -> pd.Series:
        return (target.astype("string") == self.positive_label).astype("int8")

    def empty_frame(self) -> pd.DataFrame:
        return pd.DataFrame({c.name: pd.Series(dtype=PANDAS_DTYPES[c.dtype]) for c in self.columns})


def _present(s: pd.Series) -> pd.Series:
    """Values that were really given (not null, not blank text)."""
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        return s.notna() & (s.astype(PANDAS_DTYPES["string"]).str.strip() != "")
    return s.notna()


def _cast(s: pd.Series, dtype: str) -> pd.Series:
    if dtype in ("int64", "float64"):
        num = pd.to_numeric(s, errors="coerce")
        if dtype == "int64":
            frac = num.notna() & (np.floor(num) != num)
            num = num.mask(frac)
            return num.astype("Int64")
        return num.astype("float64")
    if dtype == "string":
        text = s.astype(PANDAS_DTYPES["string"]).str.strip()
        return text.mask(text == "")
    if dtype == "datetime":
        ts = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
        return ts.dt.tz_convert(None).astype("datetime64[ns]")  # naive UTC, numpy-backed whatever the reader
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
    return (spec._path or Path("spec.yaml")).parent


def demo_data_path(spec: DatasetSpec) -> Path | None:
    return spec_dir(spec) / spec.demo_data if spec.demo_data else None


def load_default_spec() -> DatasetSpec:
    from ml_assets.settings import spec_path

    return load_spec(spec_path())
