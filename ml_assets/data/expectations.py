"""Great Expectations 1.x rules for raw_data and features, derived from the DatasetSpec.

dagster-ge does not support GX 1.x, so GX is called directly: an ephemeral context, a pandas datasource, and
``batch.validate(suite)`` per batch (one batch per frame, or per column for large frames: see GxOptions). Each rule
(one Dagster asset check) is one or more expectations tagged with ``meta={"check": <name>}``; results are matched
back by that tag, never by order. GX costs seconds to import, so it is imported only inside the functions that
validate.

raw_data rules run inside the raw_data asset because only there is the frame as it landed visible: the type
rule looks at the landed dtypes (numbers that landed as text must fail), every other rule at the typed frame.
"""

import json
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import dagster as dg
import numpy as np
import pandas as pd

from ml_assets import markdown
from ml_assets.automation import with_its_asset
from ml_assets.data import volume
from ml_assets.dataset import Column, DatasetSpec, Severity

SAMPLE_ROWS = 5
PER_COLUMN_ROWS = 20_000
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
LANDED_KINDS = {"int64": "numbers", "float64": "numbers", "string": "text", "datetime": "timestamps or text"}
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
    return f"{kind} (integer codes)" if col.integer_coded else kind


def raw_data_rules(spec: DatasetSpec, partition_end: pd.Timestamp | None = None) -> list[Rule]:
    """Every raw_data rule of a spec, in a stable order. Freshness needs the partition's end to be checkable.

    ``unexpected_columns`` and ``row_volume`` have no GX expectation: ``validate_raw_data`` judges them (the
    landed column names; the day's rows against earlier days' counts).
    """
    rules: list[Rule] = []
    target, ident = spec.target.name, spec.id.name
    for col in spec.columns:
        types = LANDED_TYPES[col.landed_dtype]
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
    coverage = spec.labeled_fraction_required
    present = (
        "present on every row"
        if coverage >= 1
        else f"present on at least {coverage:.0%} of rows (label coverage; unlabeled rows are kept, not trained on)"
    )
    not_null: dict[str, Any] = {"column": target} | ({"mostly": coverage} if coverage < 1 else {})
    rules.append(
        Rule(
            "label_valid",
            "label",
            target,
            spec.target.severity,
            f"label {target!r} {present} and one of {spec.target.categories}",
            expects=(
                Expect("ExpectColumnToExist", {"column": target}),
                Expect("ExpectColumnValuesToNotBeNull", not_null),
                Expect("ExpectColumnValuesToBeInSet", {"column": target, "value_set": list(spec.target.categories)}),
            ),
        )
    )
    fresh = f"newest {spec.time.name!r} within {spec.freshness_hours:g} h of the partition end"
    expects: tuple[Expect, ...] = ()
    if partition_end is not None:
        oldest_ok = partition_end - timedelta(hours=spec.freshness_hours)
        fresh += f" (>= {oldest_ok.isoformat()})"
        expects = (Expect("ExpectColumnMaxToBeBetween", {"column": spec.time.name, "min_value": oldest_ok}),)
    rules.append(Rule("freshness", "freshness", spec.time.name, "warn", fresh, expects=expects))
    return rules


def _severity(severity: Severity) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.WARN if severity == "warn" else dg.AssetCheckSeverity.ERROR


def raw_data_check_specs(
    spec: DatasetSpec, partitions_def: dg.PartitionsDefinition | None = None
) -> list[dg.AssetCheckSpec]:
    """One blocking, partitioned check spec per raw_data rule (pass to ``@asset(check_specs=...)``)."""
    return [
        dg.AssetCheckSpec(
            r.name,
            asset="raw_data",
            description=r.rule,
            blocking=True,
            partitions_def=partitions_def,
            metadata={"severity": r.severity, "rule": r.kind, **({"column": r.column} if r.column else {})},
        )
        for r in raw_data_rules(spec)
    ]


# ---- running GX ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GxOptions:
    """How GX is driven. The defaults are the fast settings found by benchmarks/checks.py.

    per_column: one batch per column instead of one per frame. GX's pandas map metrics filter the whole batch
    frame by the column's non-null mask for every expectation (copying every column), so one wide batch costs
    columns x expectations full copies; a one-column batch copies only that column. Each batch has a fixed cost
    (about 20 ms), so None (auto) uses per-column batches only from PER_COLUMN_ROWS rows up.
    fingerprint: let GX hash every batch (it does so twice per validate, only to label the batch); at 1e6 rows
    that hashing alone costs more than every rule together.
    result_format: SUMMARY gives counts, a few unexpected values and their row index (for the sample).
    """

    per_column: bool | None = None
    fingerprint: bool = False
    result_format: str = "SUMMARY"


def run_gx(
    frames: Mapping[str, pd.DataFrame], rules: Sequence[Rule], options: GxOptions | None = None
) -> dict[str, list[Any]]:
    """Validate frames against their rules' expectations with GX; results grouped by check name."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    options = options or GxOptions()
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,  # no usage statistics from pipeline runs
        progress_bars=ProgressBarsConfig(globally=False),
    )
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    # one asset and batch definition for every batch: the frame is a batch parameter, and each added asset
    # re-serialises the datasource config (cost grows with the number of assets)
    frames_def = (
        ctx.data_sources.add_pandas("ml_assets")
        .add_dataframe_asset("frames")
        .add_batch_definition_whole_dataframe("all")
    )
    found: dict[str, list[Any]] = defaultdict(list)
    result_format = {"result_format": options.result_format, "partial_unexpected_count": 20}
    with _batch_fingerprint(options.fingerprint):
        for i, (data, batch_rules) in enumerate(_batches(frames, rules, options.per_column)):
            expectations = [
                getattr(gx.expectations, e.type)(**e.kwargs, meta={"check": r.name}) for r, e in batch_rules
            ]
            batch = frames_def.get_batch(batch_parameters={"dataframe": data})
            suite = gx.ExpectationSuite(name=f"batch_{i}", expectations=expectations)
            for r in batch.validate(suite, result_format=result_format).results:
                found[r.expectation_config.meta["check"]].append(r)
    return found


def _batches(
    frames: Mapping[str, pd.DataFrame], rules: Sequence[Rule], per_column: bool | None
) -> Iterator[tuple[pd.DataFrame, list[tuple[Rule, Expect]]]]:
    """Group expectations into batches: table-level ones on the whole frame, column ones per column."""
    for frame_name, frame in frames.items():
        split = per_column if per_column is not None else len(frame) >= PER_COLUMN_ROWS
        groups: dict[str | None, list[tuple[Rule, Expect]]] = defaultdict(list)
        for r in rules:
            if r.frame != frame_name:
                continue
            for e in r.expects:
                column = e.kwargs.get("column")
                if column is None or not split or _schema_level(e, frame):
                    groups[None].append((r, e))
                elif column in frame.columns:  # a missing column fails its ExpectColumnToExist instead
                    groups[column].append((r, e))
        for column, group in groups.items():
            if column is None:
                group = [(r, e) for r, e in group if not _skip(e, frame)]
                # expectations that read only the schema get the schema: no rows to convert or scan
                schema_only = split and all(_schema_level(e, frame) for _, e in group)
                if split and frame_name != LANDED and not schema_only:
                    # table-level rules (row count) need rows but not every column: convert only those named
                    named = [c for c in dict.fromkeys(e.kwargs.get("column") for _, e in group) if c in frame.columns]
                    data = _fast_dtypes(frame[named or list(frame.columns[:1])])
                else:
                    data = _gx_comparable(frame.iloc[:0] if schema_only else frame)
            elif frame_name == LANDED:
                data = _gx_comparable(frame[[column]])
            else:  # the typed frame has spec dtypes only: straight to GX-fast ones, no detour via Python strings
                data = _fast_dtypes(frame[[column]])
            if group:
                yield data, group


@contextmanager
def _batch_fingerprint(enabled: bool) -> Iterator[None]:
    """Switch GX's per-batch pandas fingerprint (a full-frame hash used only as a batch label) on or off."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    if enabled:
        yield
        return
    saved = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0  # the engine hashes only frames smaller than this many bytes
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


def _fast_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Value-preserving dtypes on which GX's pandas metrics are vectorised.

    Nullable integers become numpy numbers (GX's range metric maps a Python function over every value of an
    extension dtype; ints stay exact below 2**53). Text becomes categorical: GX calls isna/notnull several times
    per expectation, a Python-level scan on object and python-string arrays but a code comparison on categories.
    """
    fixes: dict[str, pd.Series] = {}
    for name, s in frame.items():
        if isinstance(s.dtype, pd.api.extensions.ExtensionDtype) and s.dtype.kind in "iuf":
            fixes[name] = s.astype("float64" if s.hasnans else s.dtype.numpy_dtype)
        elif isinstance(s.dtype, pd.StringDtype) or s.dtype == object:
            codes, uniques = pd.factorize(s)  # Arrow strings factorize natively; categories as plain Python str
            fixes[name] = pd.Series(
                pd.Categorical.from_codes(codes, categories=uniques.astype(object)), index=s.index, name=name
            )
    return frame.assign(**fixes) if fixes else frame


def _schema_level(e: Expect, frame: pd.DataFrame) -> bool:
    """An expectation GX answers from column names and dtypes alone (not per value, as on object columns)."""
    if e.type == "ExpectColumnToExist":
        return True
    column = e.kwargs.get("column")
    return e.type == "ExpectColumnValuesToBeInTypeList" and column in frame.columns and frame[column].dtype != object


def _skip(e: Expect, frame: pd.DataFrame) -> bool:
    """A value rule on a column that is not there: ExpectColumnToExist already says so; GX would raise."""
    column = e.kwargs.get("column")
    return e.type != "ExpectColumnToExist" and column is not None and column not in frame.columns


def _gx_comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Dtypes GX cannot match by name (pyarrow, categorical, tz-aware) mapped to their numpy kin.

    The kind is kept (text stays text, numbers stay numbers, times stay times), so type rules still judge how a
    column landed; untouched frames pass through without a copy.
    """
    fixes: dict[str, pd.Series] = {}
    for name, s in frame.items():
        dt = s.dtype
        if isinstance(dt, pd.CategoricalDtype):
            fixes[name] = s.astype(dt.categories.dtype)
        elif isinstance(dt, pd.DatetimeTZDtype):
            fixes[name] = s.dt.tz_convert("UTC").dt.tz_localize(None)
        elif isinstance(dt, pd.StringDtype) and dt.storage != "python":
            fixes[name] = s.astype("string[python]")
        elif isinstance(dt, pd.ArrowDtype):
            kind = dt.kind
            if kind in "OSU":
                fixes[name] = s.astype("string[python]")
            elif kind == "M":  # Arrow timestamps, with or without a zone: naive UTC like the typed frame
                if getattr(dt.pyarrow_dtype, "tz", None):
                    s = s.dt.tz_convert(None)
                fixes[name] = s.astype("datetime64[ns]")
            else:
                fixes[name] = s.astype(dt.numpy_dtype if s.notna().all() else "float64")
    return frame.assign(**fixes) if fixes else frame


# ---- turning results into AssetCheckResults -------------------------------------------------------------


def _exception(r: Any) -> str | None:
    info = r.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for v in info.values():  # keyed by metric when several metrics raised
        if isinstance(v, dict) and v.get("raised_exception"):
            return str(v.get("exception_message"))
    return None


def _sample(frames: Mapping[str, pd.DataFrame], rule: Rule, index: list[Any], id_col: str) -> str | None:
    if not index:
        return None
    frame = frames[rule.frame]
    idx = [i for i in index if i in frame.index][:SAMPLE_ROWS]
    cols = [c for c in dict.fromkeys([id_col, rule.column]) if c is not None and c in frame.columns]
    sample = frame.loc[idx, cols].copy()
    landed = frames.get(LANDED)
    if rule.frame == TYPED and landed is not None and rule.column in landed.columns:
        sample[f"{rule.column} (as landed)"] = landed.loc[[i for i in idx if i in landed.index], rule.column]
    return markdown.table(sample, index="row")


def _describe(rule: Rule, r: Any) -> tuple[str, dict[str, Any]]:
    """What GX observed for one expectation, in words and as numbers."""
    res, etype = r.result or {}, r.expectation_config.type
    observed: dict[str, Any] = {}
    for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent", "missing_count"):
        if res.get(key) is not None:
            v = res[key]
            observed[key] = v.isoformat() if isinstance(v, pd.Timestamp) else v
    unexpected = res.get("unexpected_count")
    pct = res.get("unexpected_percent")
    values = list(dict.fromkeys(map(str, res.get("partial_unexpected_list") or [])))[:SAMPLE_ROWS]
    col = rule.column
    if etype == "expect_column_to_exist":
        return f"column {col!r} is missing", observed
    if etype == "expect_column_values_to_be_in_type_list":
        if res.get("observed_value"):
            return f"{col!r} landed as type {res['observed_value']}", observed
        return (
            f"{col!r}: {unexpected} of {res.get('element_count')} values landed as another type, e.g. {values}",
            observed,
        )
    if etype == "expect_table_row_count_to_be_between":
        return f"row count is {res.get('observed_value')}", observed
    if etype == "expect_column_max_to_be_between":
        return f"newest {col!r} is {observed.get('observed_value', 'absent')}", observed
    what = {
        "expect_column_values_to_not_be_null": "null",
        "expect_column_values_to_be_in_set": "outside the allowed categories",
        "expect_column_values_to_be_between": "out of range",
        "expect_column_values_to_be_unique": "duplicated",
    }.get(etype, "unexpected")
    if unexpected is None:
        return f"{col!r}: {etype} failed", observed
    text = f"{col!r}: {unexpected} of {res.get('element_count')} values ({(pct or 0):.2f}%) {what}"
    return (text + (f", e.g. {values}" if values and what != "null" else "")), observed


def _result(
    asset: str | None,
    rule: Rule,
    results: list[Any],
    frames: Mapping[str, pd.DataFrame],
    id_col: str,
    extra_problems: Sequence[str] = (),
    extra_metadata: Mapping[str, Any] | None = None,
) -> dg.AssetCheckResult:
    problems = list(extra_problems)
    observed: dict[str, Any] = {}
    sample_index: list[Any] = []
    for r in results:
        text, obs = _describe(rule, r)
        observed[r.expectation_config.type.removeprefix("expect_")] = obs
        error = _exception(r)
        if error:
            problems.append(f"{text}; GX raised: {error}")
        elif not bool(r.success):
            problems.append(text)
            sample_index = sample_index or list((r.result or {}).get("partial_unexpected_index_list") or [])
    passed = not problems
    where = f"column {rule.column!r}" if rule.column else "table"
    description = (
        f"PASSED {rule.name}: {rule.rule}"
        if passed
        else f"FAILED {rule.name} on {where}: {'; '.join(problems)}. Rule: {rule.rule}"
    )
    metadata: dict[str, Any] = {
        "rule": rule.rule,
        "observed": dg.MetadataValue.json(_jsonable(observed)),
        **(extra_metadata or {}),
    }
    if not passed:
        sample = _sample(frames, rule, sample_index, id_col)
        if sample:
            metadata["offending_rows"] = dg.MetadataValue.md(sample)
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=rule.name,
        passed=passed,
        severity=_severity(rule.severity),
        description=description,
        metadata=metadata,
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, allow_nan=True).replace("NaN", "null"))


def partition_end(partition_key: str | None) -> pd.Timestamp | None:
    """The end of a daily partition (its key's day + 1), naive UTC like the typed time column."""
    return None if partition_key is None else pd.Timestamp(partition_key) + pd.Timedelta(days=1)


def validate_raw_data(
    spec: DatasetSpec,
    landed: pd.DataFrame,
    typed: pd.DataFrame,
    cast_failures: Mapping[str, int],
    partition_key: str | None = None,
    gx_options: GxOptions | None = None,
    earlier_rows: Mapping[str, int] | None = None,
) -> list[dg.AssetCheckResult]:
    """Run every raw_data rule; one AssetCheckResult per rule, failing (never raising) on an empty frame.

    ``landed`` is the frame as read from the landing files, ``typed`` the same rows after ``spec.coerce``
    (same index), ``cast_failures`` the per-column count of values coercion could not cast, ``earlier_rows``
    the row counts of earlier days (``volume.earlier_row_counts``) for the volume rule.
    """
    end = partition_end(partition_key)
    rules = raw_data_rules(spec, end)
    frames = {LANDED: landed, TYPED: typed}
    found = run_gx(frames, rules, gx_options)
    out = []
    for rule in rules:
        problems: list[str] = []
        extra: dict[str, Any] = {}
        if rule.kind == "type":
            col = spec.column(rule.column or "")
            bad = int(cast_failures.get(col.name, 0))
            extra["cast_failures"] = bad
            extra["allowed_types"] = dg.MetadataValue.json(rule.expects[1].kwargs["type_list"])
            if col.name in landed.columns:
                extra["landed_dtype"] = str(landed[col.name].dtype)
            if bad:
                problems.append(f"{col.name!r}: {bad} values could not be cast to {col.landed_dtype}")
        if rule.kind == "label":
            if len(typed) == 0:
                problems.append(f"label {rule.column!r}: no rows, so no labels")
            elif rule.column in typed.columns:
                labeled = int(typed[rule.column].notna().sum())
                extra |= {"labeled_rows": labeled, "unlabeled_rows": len(typed) - labeled}
                extra["label_coverage"] = labeled / len(typed)
        if rule.kind == "unexpected_columns":
            extra_cols = spec.unexpected(landed)
            extra["unexpected"] = dg.MetadataValue.json(extra_cols)
            if extra_cols:
                problems.append(
                    f"{len(extra_cols)} landed column(s) the spec does not name: {extra_cols} (not stored; add them "
                    "to the spec or stop sending them)"
                )
        if rule.kind == "volume":
            verdict = volume.judge(spec.row_count, len(typed), earlier_rows or {})
            extra |= verdict.metadata()
            problems += verdict.problems
        if rule.kind == "freshness" and end is None:
            extra["note"] = "no partition given: freshness not evaluated"
        out.append(_result(None, rule, found.get(rule.name, []), frames, spec.id.name, problems, extra))
    return out


# ---- features -------------------------------------------------------------------------------------------


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


def validate_features(
    spec: DatasetSpec, features: pd.DataFrame, asset: str | None = None
) -> Iterator[dg.AssetCheckResult]:
    """One AssetCheckResult per features rule; a missing column fails its rule."""
    rules = features_rules(spec)
    frames = {TYPED: features}
    found = run_gx(frames, rules)
    for rule in rules:
        problems = [] if rule.column in features.columns else [f"column {rule.column!r} is missing"]
        yield _result(asset, rule, found.get(rule.name, []), frames, spec.id.name, problems)


def build_features_checks(
    spec: DatasetSpec, partitions_def: dg.PartitionsDefinition | None = None
) -> dg.AssetChecksDefinition:
    """The features checks as one ``@multi_asset_check`` that loads the features partition via its IO manager."""
    rules = features_rules(spec)
    specs = [
        dg.AssetCheckSpec(
            r.name,
            asset="features",
            description=r.rule,
            blocking=True,
            partitions_def=partitions_def,
            automation_condition=with_its_asset(),
            metadata={"severity": r.severity, "rule": r.kind, "column": r.column},
        )
        for r in rules
    ]

    @dg.multi_asset_check(specs=specs, name="features_checks", ins={"features": dg.AssetIn("features")})
    def features_checks(features: pd.DataFrame) -> Iterator[dg.AssetCheckResult]:
        yield from validate_features(spec, features, asset="features")

    return features_checks


__all__ = [
    "Expect",
    "GxOptions",
    "Rule",
    "build_features_checks",
    "features_rules",
    "raw_data_check_specs",
    "raw_data_rules",
    "run_gx",
    "validate_features",
    "validate_raw_data",
]
