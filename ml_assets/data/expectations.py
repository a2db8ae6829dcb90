"""The data checks of raw_data and features: their Dagster check specs, and validating a day against them.

raw_data rules run inside the raw_data asset because only there is the day as it landed visible: the type rule
looks at the landed dtypes (numbers that landed as text must fail), every other rule at the typed rows. The
features rules run as a ``@multi_asset_check`` over a lazy scan of the stored partition.

A day can be larger than memory, so each rule is decided over every row, and Great Expectations judges a
bounded sample (``exact_counts.GX_SAMPLE_ROWS``; every row of a smaller day, so demo days are judged exactly as
before; ``sample_rows`` in each check's metadata):
- exact, counted while the day is read (``ingest``): the row count and its volume against earlier days, the
  type-cast failures, the landed columns (unexpected columns), the labeled rows;
- exact, by DuckDB queries over the stored Parquet day (``exact_counts``), replacing GX's counts on the sample and
  the verdict they give (with each rule's ``mostly``): nulls, categorical domains, numeric ranges (and the
  features' finiteness), id uniqueness, label presence and domain, the row-count bounds, the newest time
  (freshness); whole rows repeated (``duplicate_rows``) by a 64-bit hash of each row (odds of a false repeat
  about rows^2 / 2^65: 3e-6 at 1e7 rows);
- on the sample only: which dtype a column landed as (one per column for the whole day: the sample's frames keep
  the dtypes of the files they come from) and, for object columns (Parquet text, mixed values), the Python type
  of each value; the example values and offending rows quoted in a failing check's description.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from ml_assets.automation import with_its_asset
from ml_assets.data import volume
from ml_assets.data.check_results import check_result
from ml_assets.data.exact_counts import GX_SAMPLE_ROWS, Counts, Key, apply_exact, exact_counts
from ml_assets.data.gx_runner import GxOptions, run_gx
from ml_assets.data.ingest import LandedDay
from ml_assets.data.rules import LANDED, TYPED, duplicate_rows, features_rules, partition_end, raw_data_rules
from ml_assets.dataset import DatasetSpec
from resources.parquet_tables import TableScan, quoted


@dataclass(frozen=True)
class WholeDay:
    """What is known of every row of a day whose frames are a sample: counted while it was read, or queried."""

    rows: int
    labeled: int
    landed_columns: list[str]
    duplicate_rows: int
    counts: dict[Key, Counts]
    missing_from_files: dict[str, list[str]]  # file -> spec columns it lacks


def whole_day(spec: DatasetSpec, landed: LandedDay, day: str) -> WholeDay:
    """The exact counts of every raw_data rule over a stored day (``landed.scan``), besides what reading it
    counted."""
    rules = raw_data_rules(spec, partition_end(day, spec.timezone))
    return WholeDay(
        landed.rows,
        landed.rows - landed.unlabeled,
        landed.landed_columns,
        repeated_rows(spec, landed.scan),
        exact_counts(landed.scan, rules),
        landed.missing_from_files,
    )


def repeated_rows(spec: DatasetSpec, scan: TableScan) -> int:
    """Rows equal to another row on every spec column but the id, less one per group (as ``duplicate_rows``),
    by a 64-bit hash of each row."""
    columns = [quoted(c) for c in spec.column_names if c != spec.id.name and c in scan.dtypes]
    if not columns or spec.duplicate_rows == "off":
        return 0
    found = scan.query(f"SELECT count(*) - count(DISTINCT hash({', '.join(columns)})) AS n FROM scan")
    return int(found["n"].iloc[0])


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


def validate_raw_data(
    spec: DatasetSpec,
    landed: pd.DataFrame,
    typed: pd.DataFrame,
    cast_failures: Mapping[str, int],
    partition_key: str | None = None,
    gx_options: GxOptions | None = None,
    earlier_rows: Mapping[str, int] | None = None,
    whole: WholeDay | None = None,
) -> list[dg.AssetCheckResult]:
    """Run every raw_data rule; one AssetCheckResult per rule, failing (never raising) on an empty frame.

    ``landed`` is the frame as read from the landing files, ``typed`` the same rows after ``spec.coerce``
    (same index), ``cast_failures`` the per-column count of values coercion could not cast (over the whole day),
    ``earlier_rows`` the row counts of earlier days (``volume.earlier_row_counts``) for the volume rule. With
    ``whole``, the frames are a sample of the day and ``whole`` has the day's exact counts, which decide.
    """
    end = partition_end(partition_key, spec.timezone)
    rules = raw_data_rules(spec, end)
    frames = {LANDED: landed, TYPED: typed}
    found = run_gx(frames, rules, gx_options)
    rows = whole.rows if whole else len(typed)
    if whole:
        apply_exact(found, rules, whole.counts)
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
            lacking = [f for f, columns in (whole.missing_from_files if whole else {}).items() if col.name in columns]
            if lacking and col.name in landed.columns:  # in the day's other files: the union hid its absence
                problems.append(
                    f"{col.name!r} is missing from {len(lacking)} landing file(s) of the day, {lacking[:5]}: their "
                    "rows would land with it null"
                )
        if rule.kind == "label":
            if rows == 0:
                problems.append(f"label {rule.column!r}: no rows, so no labels")
            elif rule.column in typed.columns:
                labeled = whole.labeled if whole else int(typed[rule.column].notna().sum())
                extra |= {"labeled_rows": labeled, "unlabeled_rows": rows - labeled}
                extra["label_coverage"] = labeled / rows
        if rule.kind == "unexpected_columns":
            extra_cols = spec.unexpected(pd.DataFrame(columns=whole.landed_columns) if whole else landed)
            extra["unexpected"] = dg.MetadataValue.json(extra_cols)
            if extra_cols:
                problems.append(
                    f"{len(extra_cols)} landed column(s) the spec does not name: {extra_cols} (not stored; add them "
                    "to the spec or stop sending them)"
                )
        if rule.kind == "volume":
            verdict = volume.judge(spec.row_count, rows, earlier_rows or {})
            extra |= verdict.metadata()
            problems += verdict.problems
        if rule.kind == "duplicate_rows":
            repeated = duplicate_rows(spec, typed)
            count = whole.duplicate_rows if whole else int(repeated.sum())
            extra["duplicate_rows"] = count
            if count:
                ids = (
                    typed.loc[repeated, spec.id.name].head(5).astype("string").tolist() if spec.id.name in typed else []
                )
                problems.append(
                    f"{count} of {rows} rows repeat an earlier row on every column but the id "
                    f"{spec.id.name!r}, e.g. ids {ids}: sent twice?"
                )
        if rule.kind == "freshness" and end is None:
            extra["note"] = "no partition given: freshness not evaluated"
        if rule.expects:
            extra["sample_rows"] = len(frames[rule.frame])
        out.append(check_result(None, rule, found.get(rule.name, []), frames, spec.id.name, problems, extra))
    return out


def validate_features(
    spec: DatasetSpec, features: pd.DataFrame, asset: str | None = None, whole: TableScan | None = None
) -> Iterator[dg.AssetCheckResult]:
    """One AssetCheckResult per features rule; a missing column fails its rule. With ``whole``, ``features`` is
    a sample of that scan, whose exact counts decide."""
    rules = features_rules(spec)
    frames = {TYPED: features}
    found = run_gx(frames, rules)
    if whole is not None:
        apply_exact(found, rules, exact_counts(whole, rules))
    for rule in rules:
        problems = [] if rule.column in features.columns else [f"column {rule.column!r} is missing"]
        extra = {"sample_rows": len(features)}
        yield check_result(asset, rule, found.get(rule.name, []), frames, spec.id.name, problems, extra)


def validate_features_scan(
    spec: DatasetSpec, scan: TableScan, asset: str | None = None, sample_rows: int = GX_SAMPLE_ROWS
) -> Iterator[dg.AssetCheckResult]:
    """The features rules over a stored partition: GX on a sample of at most ``sample_rows`` (every row of a
    smaller one), every count and verdict exact."""
    yield from validate_features(spec, scan.sample(sample_rows), asset, whole=scan)


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
    def features_checks(features: TableScan) -> Iterator[dg.AssetCheckResult]:
        yield from validate_features_scan(spec, features, asset="features")

    return features_checks
