"""What the Dagster instance recorded, read back: gate verdicts, data versions and observations.

Gates that hold across runs: Dagster's blocking checks stop downstream steps only inside the run that executed
them. A consumer launched in a later run (from the UI, a sensor, the CLI or automation) asks here whether the
upstream asset (partition) it is about to use passed its blocking checks *for its latest materialization*, and
refuses otherwise.

This is the one adapter to Dagster internals that have no public export in Dagster 1.13: the per-partition filter
of check executions (``PartitionKeyFilter``), their status (``AssetCheckExecutionRecordStatus``) and the data version
tag (``DATA_VERSION_TAG``), and the sensors switched on or off in the instance (``InstigatorStatus``).
``tests/test_event_log.py`` runs it against a real instance, so a library change fails loudly there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    Failure,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

__all__ = [
    "DATA_VERSION_TAG",
    "CheckExecution",
    "CheckVerdict",
    "blocking_verdict",
    "check_evaluations_of",
    "check_executions",
    "last_judgements",
    "latest_check_evaluations",
    "metadata_text",
    "observed_versions",
    "require_passed",
    "sensor_states",
]


@dataclass(frozen=True)
class CheckVerdict:
    """Blocking checks of one asset (partition) against its latest materialization."""

    asset: str
    partition: str | None
    materialized: bool
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # failed with ERROR severity: these block
    warned: list[str] = field(default_factory=list)  # failed with WARN severity: reported, never blocking
    not_run: list[str] = field(default_factory=list)  # no result for the latest materialization (yet)

    @property
    def where(self) -> str:
        return f"{self.asset}[{self.partition}]" if self.partition else self.asset

    @property
    def ok(self) -> bool:
        return self.materialized and not self.failed and not self.not_run

    def describe(self) -> str:
        """What the verdict is, in words (without the asset's name)."""
        if not self.materialized:
            return "never materialized"
        parts = []
        if self.failed:
            parts.append(f"failed blocking checks: {', '.join(self.failed)}")
        if self.not_run:
            parts.append(f"blocking checks with no result for its latest materialization: {', '.join(self.not_run)}")
        if not parts:
            return f"all {len(self.passed) + len(self.warned)} blocking checks passed" + (
                f" (warnings: {', '.join(self.warned)})" if self.warned else ""
            )
        return "; ".join(parts)


def latest_materialization_id(instance: DagsterInstance, asset: AssetKey, partition: str | None) -> int | None:
    """Storage id of the latest materialization of ``asset`` (partition), or None."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset, asset_partitions=[partition] if partition else None), limit=1
    ).records
    return records[0].storage_id if records else None


def metadata_text(entry: object) -> str | None:
    """A recorded metadata entry (a MetadataValue, or a raw value) as text; None when absent."""
    return None if entry is None else str(getattr(entry, "value", entry))


def latest_check_evaluations(
    instance: DagsterInstance, asset: AssetKey, check_names: Sequence[str], partition: str | None = None
) -> dict[str, AssetCheckEvaluation | None]:
    """The latest evaluation of each named check of ``asset`` (for ``partition``), None where it never ran."""
    keys = [AssetCheckKey(asset, n) for n in check_names]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        keys, partition_filter=PartitionKeyFilter(key=partition) if partition else None
    )
    found: dict[str, AssetCheckEvaluation | None] = {}
    for key in keys:
        record = records.get(key)
        evaluation = record.evaluation if record is not None else None
        # a planned execution (its run has not evaluated it yet) carries the planned event, not an evaluation
        found[key.name] = evaluation if isinstance(evaluation, AssetCheckEvaluation) else None
    return found


def latest_completed_evaluations(
    instance: DagsterInstance, asset: AssetKey, check_names: Sequence[str], partition: str | None = None
) -> dict[str, AssetCheckEvaluation | None]:
    """The latest *completed* evaluation of each named check of ``asset`` (for ``partition``), None where none
    completed. A run that planned a check and ended before evaluating it (its upstream failed a blocking check)
    leaves that planned execution as the latest one, though it judged nothing and materialized nothing: the
    completed evaluation before it still judges the asset's latest materialization."""
    found = latest_check_evaluations(instance, asset, check_names, partition)
    for name in [n for n, evaluation in found.items() if evaluation is None]:  # only planned ones: rare, one query each
        found[name] = _latest_completed(instance, AssetCheckKey(asset, name), partition)
    return found


def _latest_completed(
    instance: DagsterInstance, key: AssetCheckKey, partition: str | None
) -> AssetCheckEvaluation | None:
    """The check's latest completed evaluation (for ``partition``, or on any), None where none completed."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        key,
        limit=1,
        status={AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED},
        partition_filter=PartitionKeyFilter(key=partition) if partition else None,
    )
    evaluation = records[0].evaluation if records else None
    return evaluation if isinstance(evaluation, AssetCheckEvaluation) else None


def last_judgements(
    instance: DagsterInstance, asset: AssetKey, check_names: Sequence[str]
) -> dict[str, AssetCheckEvaluation | None]:
    """The latest *completed* evaluation of each named check of ``asset`` on any partition (a run in progress has
    only planned its own, so inside a run this is the judgement before it), None where none completed."""
    return {name: _latest_completed(instance, AssetCheckKey(asset, name), None) for name in check_names}


@dataclass(frozen=True)
class CheckExecution:
    """One execution of a check, newest first in ``check_executions``: the run and partition it belonged to, and its
    evaluation (None while only planned: in progress, or skipped once its run ended without a result)."""

    run_id: str
    partition: str | None
    evaluation: AssetCheckEvaluation | None


def check_executions(
    instance: DagsterInstance, asset: AssetKey, check_name: str, limit: int = 200
) -> list[CheckExecution]:
    """Every recorded execution of a check, planned ones included (newest first)."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(asset, check_name), limit=limit
    )
    found = []
    for record in records:
        evaluation = record.evaluation if record.status is not AssetCheckExecutionRecordStatus.PLANNED else None
        found.append(
            CheckExecution(
                record.run_id, record.partition, evaluation if isinstance(evaluation, AssetCheckEvaluation) else None
            )
        )
    return found


def check_evaluations_of(
    instance: DagsterInstance, asset: AssetKey, storage_id: int, check_names: Sequence[str], history: int = 50
) -> dict[str, AssetCheckEvaluation | None]:
    """The evaluation of each named check of ``asset`` that judged the materialization ``storage_id`` (the latest one
    when it was judged twice), None where none did: what a later decision about that very materialization (a
    promotion out of its environment) reads, whatever was materialized since."""
    found: dict[str, AssetCheckEvaluation | None] = {}
    for name in check_names:
        found[name] = next(
            (
                e.evaluation
                for e in check_executions(instance, asset, name, history)  # newest first
                if e.evaluation is not None
                and e.evaluation.target_materialization_data is not None
                and e.evaluation.target_materialization_data.storage_id == storage_id
            ),
            None,
        )
    return found


def blocking_verdict(
    instance: DagsterInstance, asset: AssetKey, check_names: Sequence[str], partition: str | None = None
) -> CheckVerdict:
    """The verdict of ``check_names`` (the asset's blocking checks) for the latest materialization."""
    name = asset.to_user_string()
    latest = latest_materialization_id(instance, asset, partition)
    if latest is None:
        return CheckVerdict(name, partition, materialized=False, not_run=list(check_names))
    verdict = CheckVerdict(name, partition, materialized=True)
    for check, evaluation in latest_completed_evaluations(instance, asset, check_names, partition).items():
        target = evaluation.target_materialization_data if evaluation is not None else None
        if evaluation is None or (target is not None and target.storage_id != latest):
            verdict.not_run.append(check)
        elif evaluation.passed:
            verdict.passed.append(check)
        elif evaluation.severity == AssetCheckSeverity.WARN:
            verdict.warned.append(check)
        else:
            verdict.failed.append(check)
    return verdict


def require_passed(
    instance: DagsterInstance,
    asset: AssetKey,
    check_names: Sequence[str],
    partition: str | None,
    consumer: str,
) -> CheckVerdict:
    """The verdict, or a ``Failure`` naming the partition and the checks when it does not let ``consumer`` on."""
    verdict = blocking_verdict(instance, asset, check_names, partition)
    if not verdict.ok:
        raise Failure(
            description=f"{consumer} refuses to use {verdict.where}: {verdict.describe()}. A blocking check "
            "holds in every run, whoever launches it: fix the data upstream (or the check) and materialize "
            f"{verdict.where} again.",
            metadata={
                "asset": verdict.asset,
                "partition": verdict.partition or "",
                "failed_checks": ", ".join(verdict.failed) or "none",
                "checks_without_result": ", ".join(verdict.not_run) or "none",
            },
        )
    return verdict


def observed_versions(instance: DagsterInstance, asset: AssetKey, partitions: list[str]) -> dict[str, str]:
    """The latest observed data version of each of ``partitions`` of an observable asset that has one."""
    if not partitions:
        return {}
    records = instance.fetch_observations(
        AssetRecordsFilter(asset_key=asset, asset_partitions=partitions), limit=len(partitions) * 4
    ).records
    found: dict[str, str] = {}
    for record in records:  # newest first
        obs = record.asset_observation
        if obs is not None and obs.partition and obs.partition not in found and DATA_VERSION_TAG in obs.tags:
            found[obs.partition] = obs.tags[DATA_VERSION_TAG]
    return found


def sensor_states(instance: DagsterInstance) -> dict[str, bool]:
    """Sensors switched on or off in the instance (UI, CLI): name -> running; the others run as declared in code."""
    states: dict[str, bool] = {}
    if instance.schedule_storage is None:  # an ephemeral instance keeps no sensor state: all run as declared
        return states
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.status in (InstigatorStatus.RUNNING, InstigatorStatus.STOPPED):
            states[state.name] = state.status == InstigatorStatus.RUNNING
    return states
