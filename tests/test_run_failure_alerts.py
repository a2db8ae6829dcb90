"""run_failure_alerts: what a failed run's alert says."""

from __future__ import annotations


def test_a_run_failure_alert_names_the_root_cause() -> None:
    """Dagster wraps a step's exception ("Error occurred while executing op ..."): the alert names what went wrong."""
    from types import SimpleNamespace

    from sensors.run_failure_alerts import root_cause

    inner = SimpleNamespace(message="KeyError: 'record_id'\n  more", cause=None)
    wrapped = SimpleNamespace(
        message='DagsterExecutionStepExecutionError: Error occurred while executing op "x":', cause=inner
    )
    assert root_cause(wrapped) == "KeyError: 'record_id'"
    assert root_cause(None) == "no error message"
