"""run_failure_alerts: what a failed run's alert says."""

from __future__ import annotations

from types import SimpleNamespace

from sensors.run_failure_alerts import root_cause  # at collection: a first dagster import runs `file` (platform)


def test_a_run_failure_alert_names_the_root_cause() -> None:
    """Dagster wraps a step's exception ("Error occurred while executing op ..."): the alert names what went wrong."""
    inner = SimpleNamespace(message="KeyError: 'record_id'\n  more", cause=None)
    wrapped = SimpleNamespace(
        message='DagsterExecutionStepExecutionError: Error occurred while executing op "x":', cause=inner
    )
    assert root_cause(wrapped) == "KeyError: 'record_id'"
    assert root_cause(None) == "no error message"
    # a blocking check's failure names the checks on its second line: the alert keeps them (Ecdat's Participation:
    # every gate alert ended at "severity:")
    checks = SimpleNamespace(
        message="dagster._core.errors.DagsterAssetCheckFailedError: 1 blocking asset check failed with ERROR "
        "severity:\nmodel_evaluation: blessed_against_champion\n",
        cause=None,
    )
    assert root_cause(checks).endswith("failed with ERROR severity: model_evaluation: blessed_against_champion")
