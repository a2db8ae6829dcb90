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


@dg.asset
def upstream() -> int:
    return 1


@dg.asset_check(asset=upstream, blocking=True)
def upstream_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=OUTCOME.get("upstream", True))


@dg.asset(deps=[upstream])
def downstream() -> int:
    return 2


@dg.asset_check(asset=downstream, blocking=True)
def downstream_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_a_run_stopped_upstream_leaves_the_downstream_verdict_as_it_was() -> None:
    """The second run fails upstream's blocking check, so downstream is not materialized and its check is planned,
    never evaluated. That planned execution is the latest one, but downstream's latest materialization is still
    the first, whose check passed: the verdict stays passed (it named downstream's checks "with no result",
    hiding the upstream failure: Ecdat's Participation, a bad file re-landed for a day)."""
    instance = dg.DagsterInstance.ephemeral()
    pair = [upstream, upstream_ok, downstream, downstream_ok]
    resources = {"io_manager": dg.mem_io_manager}
    OUTCOME["upstream"] = True
    assert dg.materialize(pair, instance=instance, resources=resources).success
    OUTCOME["upstream"] = False
    stopped = dg.materialize(pair, instance=instance, resources=resources, raise_on_error=False)
    assert not stopped.success and not stopped.asset_materializations_for_node("downstream")
    kept = blocking_verdict(instance, dg.AssetKey("downstream"), ["downstream_ok"])
    assert kept.ok and kept.passed == ["downstream_ok"], kept.describe()
    assert blocking_verdict(instance, dg.AssetKey("upstream"), ["upstream_ok"]).failed == ["upstream_ok"]
