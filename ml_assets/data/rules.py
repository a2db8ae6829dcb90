"""The data rules of a spec, as data: each rule is one Dagster asset check, checked by one or more GX expectations.

``raw_data_rules`` and ``features_rules`` derive every rule from the DatasetSpec (types as landed, nulls, domains,
ranges, row count and volume, id uniqueness, duplicated rows, label coverage, freshness, unexpected columns);
building them needs no Great Expectations import. ``ml_assets.data.gx_runner`` runs them, ``ml_assets.data.check_results`` reports them.
"""

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from ml_assets.data import volume
from ml_assets.dataset import Column, DatasetSpec, Severity

LANDED, TYPED = "landed", "typed"
Frame = Literal["landed", "typed"]

_INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
_NUMERIC_TYPES = [
    *_INTS,
    "float32",
    "float64",
    *(f"{t.capitalize()}Dtype" for t in _INTS if not t.startswith("u")),
    *(f"UInt{t[4:]}Dtype" for t in _INTS if t.startswith("u")),
    "Float32Dtype",
    "Float64Dtype",
    "int",
    "float",
]
_TEXT_TYPES = ["object", "str", "StringDtype"]
_DATETIME_TYPES = ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]", "Timestamp", "datetime"]
# What a column may have landed as (its ``landed_dtype``): numbers as numbers, text as text; times and flags may
# land as text (CSV); integer-coded categories as numbers.
# Names as GX matches them: numpy dtype names, pandas extension dtype class names, and Python types for the
# per-value check GX runs on object columns.
LANDED_KINDS = {
    "int64": "numbers", "float64": "numbers", "string": "text", "datetime": "timestamps or text", "bool": "flags",
}  # fmt: skip
LANDED_TYPES: dict[str, list[str]] = {
    "int64": _NUMERIC_TYPES,
    "float64": _NUMERIC_TYPES,
    "string": _TEXT_TYPES,
    "datetime": [*_DATETIME_TYPES, *_TEXT_TYPES],
    "bool": ["bool", "BooleanDtype", *_TEXT_TYPES],
}


@dataclass(frozen=True)
class Expect:
    """One GX expectation as data (class name + kwargs), so rules can be built without importing GX."""

    type: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """One data rule = one Dagster asset check, checked by one or more expectations on one frame."""

    name: str
    kind: str
    column: str | None
    severity: Severity
    rule: str  # the rule and its threshold, in words
    frame: Frame = TYPED
    expects: tuple[Expect, ...] = field(default_factory=tuple)


def check_name(*parts: str) -> str:
    """A Dagster-safe check name from column and rule names."""
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))


def _bound(value: float | None, none: str) -> str:
    return none if value is None else f"{value:g}"


def _mostly(col: Column) -> str:
    return f" (mostly {col.mostly:g})" if col.mostly < 1 else ""


def _landed_kind(col: Column) -> str:
    kind = LANDED_KINDS.get(col.landed_dtype, col.landed_dtype)
    if col.numbered_time:
        return f"{col.unit} numbers or timestamps"
    if col.format is not None:
        return f"text in {col.format!r} (digits may land as numbers) or timestamps"
    return f"{kind} (integer codes)" if col.integer_coded else f"{kind} (True / False)" if col.bool_coded else kind


def raw_data_rules(spec: DatasetSpec, partition_end: pd.Timestamp | None = None) -> list[Rule]:
    """Every raw_data rule of a spec, in a stable order. Freshness needs the partition's end to be checkable.

    ``unexpected_columns``, ``row_volume`` and ``duplicate_rows`` have no GX expectation: ``validate_raw_data``
    judges them (the landed column names; the day's rows against earlier days' counts; whole rows against each
    other).
    """
    rules: list[Rule] = []
    target, ident = spec.target.name, spec.id.name
    for col in spec.columns:
        types = LANDED_TYPES[col.landed_dtype]
        if col.numbered_time:  # year or day numbers as landed; replayed days carry the timestamps themselves
            types = [*types, *LANDED_TYPES["datetime"]]
        elif col.format is not None:  # a format of digits only (%Y%m%d): a CSV reader takes 20240105 for a number
            types = [*types, *_NUMERIC_TYPES]
        rules.append(
            Rule(
                check_name(col.name, "type"),
                "type",
                col.name,
                col.severity,
                f"column {col.name!r} exists, landed as {_landed_kind(col)} and every value casts to "
                f"{col.landed_dtype}",
                LANDED,
                (
                    Expect("ExpectColumnToExist", {"column": col.name}),
                    Expect("ExpectColumnValuesToBeInTypeList", {"column": col.name, "type_list": types}),
                ),
            )
        )
    for col in spec.columns:
        if col.name == target:
            continue
        if not col.nullable:
            rules.append(
                Rule(
                    check_name(col.name, "not_null"),
                    "not_null",
                    col.name,
                    col.severity,
                    f"{col.name!r} is not nullable: no nulls",
                    expects=(Expect("ExpectColumnValuesToNotBeNull", {"column": col.name}),),
                )
            )
        if col.categories:
            rules.append(
                Rule(
                    check_name(col.name, "in_domain"),
                    "in_domain",
                    col.name,
                    col.severity,
                    f"{col.name!r} values are among its {len(col.categories)} categories{_mostly(col)}",
                    expects=(
                        Expect(
                            "ExpectColumnValuesToBeInSet",
                            {"column": col.name, "value_set": list(col.categories), "mostly": col.mostly},
                        ),
                    ),
                )
            )
        if col.range is not None:
            lo, hi = col.range.min, col.range.max
            rules.append(
                Rule(
                    check_name(col.name, "in_range"),
                    "in_range",
                    col.name,
                    col.severity,
                    f"{col.name!r} values within [{_bound(lo, '-inf')}, {_bound(hi, 'inf')}]{_mostly(col)}",
                    expects=(
                        Expect(
                            "ExpectColumnValuesToBeBetween",
                            {"column": col.name, "min_value": lo, "max_value": hi, "mostly": col.mostly},
                        ),
                    ),
                )
            )
    rc = spec.row_count
    rules.append(
        Rule(
            "row_count",
            "row_count",
            None,
            rc.severity,
            f"row count within [{rc.min}, {rc.max}]",
            expects=(Expect("ExpectTableRowCountToBeBetween", {"min_value": rc.min, "max_value": rc.max}),),
        )
    )
    rules.append(Rule("row_volume", "volume", None, rc.severity, volume.rule_text(rc)))
    rules.append(
        Rule(
            "unexpected_columns",
            "unexpected_columns",
            None,
            spec.unexpected_columns,
            "every landed column is named by the spec (others are not stored)",
            LANDED,
        )
    )
    rules.append(
        Rule(
            check_name(ident, "unique"),
            "unique",
            ident,
            spec.id.severity,
            f"{ident!r} (the id) is unique",
            expects=(Expect("ExpectColumnValuesToBeUnique", {"column": ident}),),
        )
    )
    if spec.duplicate_rows != "off":
        rules.append(
            Rule(
                "duplicate_rows",
                "duplicate_rows",
                None,
                spec.duplicate_rows,
                f"no two rows are equal on every column but the id {ident!r} (a record sent twice)",
            )
        )
    rules.append(_label_rule(spec))
    fresh = f"newest {spec.time.name!r} within {spec.freshness_hours:g} h of the partition end"
    expects: tuple[Expect, ...] = ()
    if partition_end is not None:
        oldest_ok = partition_end - timedelta(hours=spec.freshness_hours)
        fresh += f" (>= {oldest_ok.isoformat()})"
        expects = (Expect("ExpectColumnMaxToBeBetween", {"column": spec.time.name, "min_value": oldest_ok}),)
    rules.append(Rule("freshness", "freshness", spec.time.name, "warn", fresh, expects=expects))
    return rules


def _label_rule(spec: DatasetSpec) -> Rule:
    """Labels are valid categories, and present on the share of rows the target's ``mostly`` asks (none asked
    when it is 0: labels arrive later)."""
    target = spec.target.name
    coverage = spec.labeled_fraction_required
    if coverage >= 1:
        present = "present on every row"
    elif coverage > 0:
        present = (
            f"present on at least {coverage:.0%} of rows (label coverage; unlabeled rows are kept, not trained on)"
        )
    else:
        present = "present on any share of rows (labels arrive later: no per-day coverage rule)"
    expects = [Expect("ExpectColumnToExist", {"column": target})]
    if coverage > 0:
        not_null: dict[str, Any] = {"column": target} | ({"mostly": coverage} if coverage < 1 else {})
        expects.append(Expect("ExpectColumnValuesToNotBeNull", not_null))
    expects.append(
        Expect("ExpectColumnValuesToBeInSet", {"column": target, "value_set": list(spec.target.categories or [])})
    )
    return Rule(
        "label_valid",
        "label",
        target,
        spec.target.severity,
        f"label {target!r} {present} and one of {spec.target.categories}",
        expects=tuple(expects),
    )


def partition_end(partition_key: str | None, timezone: str = "UTC") -> pd.Timestamp | None:
    """The end of a daily partition (the next midnight in the partitions' ``timezone``), as naive UTC like the
    typed time column."""
    if partition_key is None:
        return None
    end = (pd.Timestamp(partition_key) + pd.Timedelta(days=1)).tz_localize(timezone)
    return end.tz_convert("UTC").tz_localize(None)


def duplicate_rows(spec: DatasetSpec, typed: pd.DataFrame) -> pd.Series:
    """Rows equal to an earlier row of the frame on every spec column but the id (nulls equal to nulls)."""
    columns = [c for c in spec.column_names if c != spec.id.name and c in typed.columns]
    if not columns or typed.empty:
        return pd.Series(False, index=typed.index)
    return typed.duplicated(subset=columns, keep="first")


def features_rules(spec: DatasetSpec) -> list[Rule]:
    """No nulls where the model cannot take them (id, time, non-nullable features, and the label unless the target
    may be missing: unlabeled rows are kept and left out of training); finite numerics."""
    rules: list[Rule] = []
    must = [spec.id.name, spec.time.name] + ([] if spec.target.nullable else [spec.label_column])
    must += [c.name for c in spec.feature_columns if not c.nullable]
    for name in dict.fromkeys(must):
        rules.append(
            Rule(
                check_name(name, "not_null"),
                "not_null",
                name,
                "error",
                f"{name!r} has no nulls (the model cannot take them)",
                expects=(Expect("ExpectColumnValuesToNotBeNull", {"column": name}),),
            )
        )
    big = float(np.finfo(np.float64).max)
    for name in spec.numeric_features:
        rules.append(
            Rule(
                check_name(name, "finite"),
                "finite",
                name,
                "error",
                f"{name!r} values are finite (no +-inf)",
                expects=(
                    Expect("ExpectColumnValuesToBeBetween", {"column": name, "min_value": -big, "max_value": big}),
                ),
            )
        )
    return rules
