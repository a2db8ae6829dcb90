"""Data assets: landing_files (observed), raw_data (validated landing files), features, the time-split
training_set, and approved_training_set (the window models use next).

raw_data and features are daily partitioned Parquet files (``resources.parquet_tables``: one immutable file per
materialization of a day, read lazily); training_set is a ``TrainingWindow`` record over the features days' files
with the time bounds of its splits, so a window of any size is cut without copying a row. raw_data and features
are read, typed and written batch by batch (``ml_assets.data.ingest``), so a day's memory is bounded by its
batches. raw_data runs its rules inside the asset because only there is the day as it landed (before type
coercion) visible: a column of numbers that landed as text must fail its type rule, and coercion would hide that;
the rules' counts are exact over the day, Great Expectations judges a bounded sample (``expectations``). Each asset refuses an upstream partition whose latest blocking checks failed
(``event_log.require_passed``), so the gates hold in every run, not only in the run that executed them.
"""

import sys
from datetime import date
from typing import NamedTuple

import pandas as pd
from dagster import (
    AssetChecksDefinition,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    DataVersion,
    Failure,
    MetadataValue,
    Output,
    PartitionsDefinition,
    SourceAsset,
    TimeWindowPartitionMapping,
    asset,
)

from ml_assets import markdown
from ml_assets.automation import on_new_files, on_upstream_update
from ml_assets.data import exact_counts, expectations, ingest, splits, training_checks, volume
from ml_assets.data import features as features_module
from ml_assets.data import tables as tables_module
from ml_assets.data import window as window_module
from ml_assets.data.approval import build_approved_training_set
from ml_assets.data.features import featurize
from ml_assets.data.landing import LANDING_FILES, build_landing_files
from ml_assets.data.tables import DATA_IO_MANAGER
from ml_assets.data.window import WINDOW_RECORD, SplitCount, TrainingWindow, split_counts
from ml_assets.dataset import DatasetSpec
from ml_assets.event_log import require_passed
from ml_assets.partitions import LANDING_DAY, daily_partitions, training_set_partitions
from ml_assets.versioning import code_version
from resources.landing import LandingZone
from resources.parquet_tables import ParquetTables, TableScan
from resources.warehouse_tables import column_schema


class DataAssets(NamedTuple):
    """The data group's definitions for one dataset spec."""

    landing_files: SourceAsset
    raw_data: AssetsDefinition
    features: AssetsDefinition
    training_set: AssetsDefinition
    approved_training_set: AssetsDefinition
    features_checks: AssetChecksDefinition
    training_set_checks: AssetChecksDefinition


def blocking_check_names(specs) -> list[str]:
    return [s.name for s in specs if s.blocking]


def build_data_assets(spec: DatasetSpec) -> DataAssets:
    """landing_files, raw_data, features, training_set, approved_training_set and their checks for one spec."""
    daily = daily_partitions(spec)
    windows = training_set_partitions(spec)
    raw_specs = expectations.raw_data_check_specs(spec, daily)
    features_checks = expectations.build_features_checks(spec, daily)
    training_set_checks = training_checks.build_training_set_checks(spec, windows)
    return DataAssets(
        build_landing_files(daily),
        build_raw_data(spec, daily, raw_specs),
        build_features(spec, daily, blocking_check_names(raw_specs)),
        build_training_set(spec, windows, blocking_check_names(features_checks.check_specs)),
        build_approved_training_set(windows, blocking_check_names(training_set_checks.check_specs)),
        features_checks,
        training_set_checks,
    )


def build_raw_data(
    spec: DatasetSpec, daily: PartitionsDefinition, check_specs: list[AssetCheckSpec]
) -> AssetsDefinition:
    """The daily ``raw_data``: the landed files cast to the spec's types, validated as they landed."""

    @asset(
        name="raw_data",
        group_name="data",
        partitions_def=daily,
        io_manager_key=DATA_IO_MANAGER,
        metadata=column_schema(tables_module.raw_data_dtypes(spec)),
        deps=[LANDING_FILES],
        check_specs=check_specs,
        automation_condition=on_new_files(),
        code_version=code_version(
            spec,
            sys.modules[__name__],
            expectations,
            volume,
            ingest,
            exact_counts,
            uses=("columns", "row_count", "freshness_hours", "timezone", "unexpected_columns"),
        ),
        description=f"{spec.name} rows as landed each day, cast to the spec's types and validated.",
    )
    def raw_data(context: AssetExecutionContext, landing: LandingZone, tables: ParquetTables):
        day = context.partition_key
        fingerprint = landing.fingerprint(day)
        landed = ingest.ingest_day(spec, landing, tables, day)
        earlier = volume.earlier_row_counts(context.instance, day, spec.row_count.trailing_days)
        yield Output(
            landed.scan,
            data_version=DataVersion(landed.scan.version),
            metadata={
                "dagster/row_count": landed.rows,
                "unlabeled_rows": landed.unlabeled,
                "files": MetadataValue.json(landed.files),
                "bytes": landed.bytes,
                "null_counts": MetadataValue.md(
                    markdown.table([{"column": c, "nulls": n} for c, n in landed.nulls.items()], ["column", "nulls"])
                ),
                "cast_failures": MetadataValue.json(landed.cast_failures),
                "landing_dir": str(landing.day_dir(day)),
                "landing_fingerprint": fingerprint,
            },
        )
        whole = expectations.whole_day(spec, landed, day)
        yield from expectations.validate_raw_data(
            spec,
            landed.landed,
            landed.typed[spec.column_names],
            landed.cast_failures,
            partition_key=day,
            earlier_rows=earlier,
            whole=whole,
        )

    return raw_data


def build_features(spec: DatasetSpec, daily: PartitionsDefinition, raw_gates: list[str]) -> AssetsDefinition:
    """The daily ``features`` of a raw_data day whose blocking checks (``raw_gates``) passed."""

    @asset(
        name="features",
        group_name="data",
        partitions_def=daily,
        io_manager_key=DATA_IO_MANAGER,
        metadata=column_schema(tables_module.features_dtypes(spec)),
        automation_condition=on_upstream_update(),
        code_version=code_version(
            spec, sys.modules[__name__], features_module, uses=("columns", "bands", "positive_label")
        ),
        description="Stateless per-row features: spec casts, derived bands, encoded label.",
    )
    def features(context: AssetExecutionContext, raw_data: TableScan, tables: ParquetTables) -> Output[TableScan]:
        require_passed(context.instance, AssetKey("raw_data"), raw_gates, context.partition_key, "features")
        rows = labeled = positives = 0
        with tables.writer("features", context.partition_key, tables_module.features_dtypes(spec)) as writer:
            for batch in raw_data.batches():
                out = featurize(spec, batch)
                out[LANDING_DAY] = batch[LANDING_DAY]
                label = out[spec.label_column]
                rows, labeled, positives = (
                    rows + len(out),
                    labeled + int(label.notna().sum()),
                    positives + int(label.sum()),
                )
                writer.write(out)
            scan = writer.close()
        return Output(
            scan,
            data_version=DataVersion(scan.version),
            metadata={
                "dagster/row_count": rows,
                "labeled_rows": labeled,
                "unlabeled_rows": rows - labeled,
                "positive_rate": positives / labeled if labeled else float("nan"),
            },
        )

    return features


def build_training_set(spec: DatasetSpec, windows: PartitionsDefinition, features_gates: list[str]) -> AssetsDefinition:
    """The ``training_set`` window ending on each day, from features days whose blocking checks passed."""
    window = spec.training.window_days

    @asset(
        name="training_set",
        group_name="data",
        partitions_def=windows,
        ins={"features": AssetIn(partition_mapping=TimeWindowPartitionMapping(start_offset=-(window - 1)))},
        automation_condition=on_upstream_update(),
        code_version=code_version(spec, sys.modules[__name__], splits, window_module, uses=("columns", "training")),
        description=f"The {window} days of features ending on the partition day, split by time "
        f"(newest {spec.training.test_days} days = test): a record of the days' files and the split bounds, "
        "read lazily, never copied.",
    )
    def training_set(context: AssetExecutionContext, features: TableScan) -> Output[TrainingWindow]:
        end = date.fromisoformat(context.partition_key)
        expected = complete_window(features, end, window)
        for day in sorted(expected):
            require_passed(context.instance, AssetKey("features"), features_gates, day, "training_set")
        out = TrainingWindow.cut(spec, features, end, sorted(expected))
        counts = split_counts(out)
        # stored all the same: the blocking class_balance check fails such a window, naming the split and why
        unlabeled = [s for s in splits.SPLITS if not counts[s].labeled]
        rows = sum(c.rows for c in counts.values())
        labeled = sum(c.labeled for c in counts.values())
        return Output(
            out,
            data_version=DataVersion(out.version),
            metadata={
                "dagster/row_count": rows,
                "labeled_rows": labeled,
                "unlabeled_rows": rows - labeled,
                "splits_without_labels": MetadataValue.json(unlabeled),
                "window": f"{min(expected)} .. {max(expected)}",
                "splits": MetadataValue.md(splits_table(counts)),
                "files": len(out.rows.files),
                WINDOW_RECORD: MetadataValue.text(out.model_dump_json()),  # text: JSON metadata gets its keys sorted
            },
        )

    return training_set


def complete_window(features: TableScan, end: date, window: int) -> set[str]:
    """The ``window`` days ending on ``end``, all present in ``features``; else a Failure naming the missing days."""
    expected = {d.isoformat() for d in pd.date_range(end=end, periods=window).date}
    landed = (
        features.query(f"SELECT DISTINCT strftime({LANDING_DAY}, '%Y-%m-%d') AS day FROM scan")
        if features.files
        else None
    )
    present = set(landed["day"]) if landed is not None else set()
    missing = sorted(expected - present)
    if missing:
        raise Failure(
            description=f"training_set partition {end}: feature partitions missing for {missing}; a "
            f"training window needs all {window} days (materialize features for them first).",
            metadata={"missing_days": MetadataValue.json(missing)},
        )
    return expected


def splits_table(counts: dict[str, SplitCount]) -> str:
    """Rows, labeled rows and positive rate of each split."""
    return markdown.table(
        [
            {"split": s, "rows": c.rows, "labeled": c.labeled, "positive rate": c.positive_rate}
            for s, c in counts.items()
        ],
        digits=3,
        right=["rows", "labeled", "positive rate"],
    )
