"""The data checks of raw_data and features: their Dagster check specs, and validating a frame against them.

raw_data rules run inside the raw_data asset because only there is the frame as it landed visible: the type rule
looks at the landed dtypes (numbers that landed as text must fail), every other rule at the typed frame. The
features rules run as a ``@multi_asset_check`` that loads the partition through its IO manager.
"""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
import pandas as pd

from ml_assets.automation import with_its_asset
from ml_assets.data import volume
from ml_assets.data.check_results import check_result
from ml_assets.data.gx_runner import GxOptions, run_gx
from ml_assets.data.rules import LANDED, TYPED, duplicate_rows, features_rules, partition_end, raw_data_rules
from ml_assets.dataset import DatasetSpec


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
) -> list[dg.AssetCheckResult]:
    """Run every raw_data rule; one AssetCheckResult per rule, failing (never raising) on an empty frame.

    ``landed`` is the frame as read from the landing files, ``typed`` the same rows after ``spec.coerce``
    (same index), ``cast_failures`` the per-column count of values coercion could not cast, ``earlier_rows``
    the row counts of earlier days (``volume.earlier_row_counts``) for the volume rule.
    """
    end = partition_end(partition_key, spec.timezone)
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
        if rule.kind == "duplicate_rows":
            repeated = duplicate_rows(spec, typed)
            count = int(repeated.sum())
            extra["duplicate_rows"] = count
            if count:
                ids = (
                    typed.loc[repeated, spec.id.name].head(5).astype("string").tolist() if spec.id.name in typed else []
                )
                problems.append(
                    f"{count} of {len(typed)} rows repeat an earlier row on every column but the id "
                    f"{spec.id.name!r}, e.g. ids {ids}: sent twice?"
                )
        if rule.kind == "freshness" and end is None:
            extra["note"] = "no partition given: freshness not evaluated"
        out.append(check_result(None, rule, found.get(rule.name, []), frames, spec.id.name, problems, extra))
    return out


def validate_features(
    spec: DatasetSpec, features: pd.DataFrame, asset: str | None = None
) -> Iterator[dg.AssetCheckResult]:
    """One AssetCheckResult per features rule; a missing column fails its rule."""
    rules = features_rules(spec)
    frames = {TYPED: features}
    found = run_gx(frames, rules)
    for rule in rules:
        problems = [] if rule.column in features.columns else [f"column {rule.column!r} is missing"]
        yield check_result(asset, rule, found.get(rule.name, []), frames, spec.id.name, problems)


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
