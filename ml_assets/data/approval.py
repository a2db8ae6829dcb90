"""``approved_training_set``: which training window the models train and are judged on next.

The training set is daily ("the N days ending at D"); models are not: they take the newest window whose blocking
checks passed for its latest materialization. This small unpartitioned asset is that choice, made in one place: it
refuses (naming the window and the failed checks) when the newest window did not pass, so the champion keeps
serving and the UI says why. Its data version is the window's, so models show as unsynced exactly when there is a
new approved window. Consumers load the window itself through the warehouse IO manager (``load_approved``), and
verify again that it is still the approved one and still passes.
"""

import sys
from dataclasses import dataclass

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    AssetsDefinition,
    DagsterInstance,
    DataVersion,
    Failure,
    Output,
    PartitionsDefinition,
    asset,
)

from ml_assets import event_log
from ml_assets.automation import on_training_set_approved
from ml_assets.data.window import WINDOW_RECORD, TrainingWindow
from ml_assets.event_log import DATA_VERSION_TAG, require_passed
from ml_assets.versioning import source_version

TRAINING_SET = AssetKey("training_set")
# Consumers of an approved window read training_set itself (one partition, chosen at run time): they declare it as
# a dependency (lineage, and its IO manager in their jobs) and leave it out of their automation conditions, which
# react to approved_training_set instead.
TRAINING_SET_DEP = AssetDep(TRAINING_SET)
READ_NOT_REACTED = ("training_set",)


@dataclass(frozen=True)
class TrainingSetRef:
    """A training_set partition approved for training: its window end, data version and size."""

    partition_key: str
    data_version: str
    rows: int
    window: str
    blocking_checks: tuple[str, ...]


def newest_window(instance: DagsterInstance, training_partitions: PartitionsDefinition) -> str | None:
    """The newest training_set partition cut so far (of ``training_partitions``), or None."""
    cut = [k for k in instance.get_materialized_partitions(TRAINING_SET) if training_partitions.has_partition_key(k)]
    return max(cut, default=None)


def latest_training_set_record(context: AssetExecutionContext, partition_key: str):
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=TRAINING_SET, asset_partitions=[partition_key]), limit=1
    ).records
    if not records:
        raise Failure(description=f"training_set[{partition_key}] has no materialization")
    return records[0]


def build_approved_training_set(
    training_partitions: PartitionsDefinition, blocking_checks: list[str]
) -> AssetsDefinition:
    @asset(
        name="approved_training_set",
        group_name="data",
        deps=[AssetDep(TRAINING_SET)],
        automation_condition=on_training_set_approved(),
        code_version=source_version(sys.modules[__name__], event_log),
        description="The newest training window whose blocking checks passed: what models train and are "
        "evaluated on next. Refuses, naming the window and its failed checks, when the newest one did not pass.",
    )
    def approved_training_set(context: AssetExecutionContext) -> Output[TrainingSetRef]:
        newest = newest_window(context.instance, training_partitions)
        if newest is None:
            raise Failure(description="no training set has been cut yet: materialize training_set for a day first")
        verdict = require_passed(context.instance, TRAINING_SET, blocking_checks, newest, "approved_training_set")
        record = latest_training_set_record(context, newest)
        mat = record.asset_materialization
        assert mat is not None
        version = mat.tags.get(DATA_VERSION_TAG, str(record.storage_id))
        rows = mat.metadata.get("dagster/row_count")
        window = mat.metadata.get("window")
        ref = TrainingSetRef(
            partition_key=newest,
            data_version=version,
            rows=int(rows.value) if rows is not None else 0,
            window=str(window.value) if window is not None else newest,
            blocking_checks=tuple(blocking_checks),
        )
        context.log.info(f"approved training_set[{newest}] ({ref.rows} rows, {ref.window}): {verdict.describe()}")
        return Output(
            ref,
            data_version=DataVersion(version),
            metadata={
                "partition": newest,
                "window": ref.window,
                "dagster/row_count": ref.rows,
                "training_set_version": version,
                "checks": verdict.describe(),
            },
        )

    return approved_training_set


def load_approved(context: AssetExecutionContext, ref: TrainingSetRef, consumer: str) -> TrainingWindow:
    """The approved window (its lazy record), after verifying it is still the latest cut of its day and still passes."""
    require_passed(context.instance, TRAINING_SET, ref.blocking_checks, ref.partition_key, consumer)
    mat = latest_training_set_record(context, ref.partition_key).asset_materialization
    current = mat.tags.get(DATA_VERSION_TAG) if mat is not None else None
    if current != ref.data_version:
        raise Failure(
            description=f"{consumer} refuses a stale approval: training_set[{ref.partition_key}] changed since it "
            f"was approved (version {ref.data_version} -> {current}); materialize approved_training_set again."
        )
    return window_of(context, ref.partition_key, mat)


def window_of(
    context: AssetExecutionContext, partition_key: str, mat: AssetMaterialization | None = None
) -> TrainingWindow:
    """The training window of a training_set partition (its latest materialization, or ``mat``). The window is a
    small record kept in the materialization itself: read there, no IO manager is called (Dagster builds the
    loader of ``load_asset_value`` a console logger at DEBUG that nothing configures: its lines cluttered the
    demo's output). A window cut before the record was kept loads through training_set's own IO manager
    (consumers declare TRAINING_SET_DEP so their jobs know it)."""
    if mat is None:
        mat = latest_training_set_record(context, partition_key).asset_materialization
    record = mat.metadata.get(WINDOW_RECORD) if mat is not None else None
    if record is not None:
        return TrainingWindow.model_validate_json(record.value)
    return context.load_asset_value(TRAINING_SET, partition_key=partition_key)
