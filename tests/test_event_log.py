"""The event-log adapter against a real instance: the verdict of an asset's blocking checks for its latest
materialization, per partition. It reads Dagster internals (``PartitionKeyFilter``): a library change fails here."""

# (no `from __future__ import annotations`: Dagster reads the check context annotation at definition time)

import dagster as dg
import pytest

from ml_assets.event_log import blocking_verdict, require_passed

DAILY = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_offset=1)
OUTCOME: dict[str, bool] = {}


@dg.asset(partitions_def=DAILY)
def table() -> int:
    return 1


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec("rows", asset="table", blocking=True, partitions_def=DAILY),
        dg.AssetCheckSpec("drift", asset="table", blocking=True, partitions_def=DAILY),
    ]
)
def table_checks(context: dg.AssetCheckExecutionContext):
    day = context.op_execution_context.partition_key
    yield dg.AssetCheckResult(asset_key="table", check_name="rows", passed=OUTCOME.get(day, True))
    yield dg.AssetCheckResult(asset_key="table", check_name="drift", passed=False, severity=dg.AssetCheckSeverity.WARN)


def run(instance: dg.DagsterInstance, day: str, with_checks: bool = True) -> None:
    selection = dg.AssetSelection.assets(table)
    dg.materialize(
        [table, table_checks],
        selection=selection if with_checks else selection.without_checks(),
        partition_key=day,
        instance=instance,
        resources={"io_manager": dg.mem_io_manager},
        raise_on_error=False,
    )


def test_verdicts_per_partition_for_the_latest_materialization() -> None:
    instance = dg.DagsterInstance.ephemeral()
    key = dg.AssetKey("table")
    OUTCOME.update({"2026-03-01": True, "2026-03-02": False})
    run(instance, "2026-03-01")
    run(instance, "2026-03-02")

    good = blocking_verdict(instance, key, ["rows", "drift"], "2026-03-01")
    assert good.ok and good.passed == ["rows"] and good.warned == ["drift"], "a WARN failure never blocks"
    bad = blocking_verdict(instance, key, ["rows", "drift"], "2026-03-02")
    assert not bad.ok and bad.failed == ["rows"]
    never = blocking_verdict(instance, key, ["rows"], "2026-03-03")
    assert not never.ok and not never.materialized and "never materialized" in never.describe()

    run(instance, "2026-03-01", with_checks=False)  # a newer materialization nobody checked yet
    unchecked = blocking_verdict(instance, key, ["rows"], "2026-03-01")
    assert not unchecked.ok and unchecked.not_run == ["rows"]

    with pytest.raises(dg.Failure, match=r"consumer refuses to use table\[2026-03-02\]: failed blocking checks: rows"):
        require_passed(instance, key, ["rows"], "2026-03-02", "consumer")
