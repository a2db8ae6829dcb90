"""deployment_health_sensor: the served URL answers, observed every 30 s, as the ``deployment.health`` check.

The ``health`` check runs right after a deployment; this sensor keeps it true to what serves *now*: when the URL
stops answering /readyz (a killed server, a stopped proxy) the check turns red in the UI within a minute, and green
again once it answers. It reports when the state changes and at least every ``REPORT_EVERY_S`` seconds.
"""

from __future__ import annotations

import json
import time

import httpx
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from resources.bento_deployer import BentoDeployer

INTERVAL_SECONDS = 30
REPORT_EVERY_S = 600
PROBE_TIMEOUT_S = 3.0
DEPLOYMENT = AssetKey("deployment")


def probe(url: str) -> tuple[bool, str]:
    """Whether ``url``/readyz answers 200, and what was seen."""
    try:
        status = httpx.get(url + "/readyz", timeout=PROBE_TIMEOUT_S).status_code
    except httpx.HTTPError as e:
        return False, f"{url}/readyz unreachable: {type(e).__name__}: {e}"
    return status == 200, f"{url}/readyz answered {status}"


def health_evaluation(url: str, ok: bool, seen: str) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=DEPLOYMENT,
        check_name="health",
        passed=ok,
        severity=AssetCheckSeverity.ERROR,
        description=f"observed by deployment_health_sensor: {seen}",
        metadata={"url": url, "observed": seen, "observed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )


def build_health_sensor(default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING) -> SensorDefinition:
    @sensor(
        name="deployment_health_sensor",
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status,
        description="Probes the served URL's /readyz and reports the deployment's health check when it changes.",
    )
    def deployment_health_sensor(context: SensorEvaluationContext, bento_deployer: BentoDeployer) -> SensorResult:
        if context.instance.get_latest_materialization_event(DEPLOYMENT) is None:
            return SensorResult(skip_reason="nothing has been deployed yet")
        url = bento_deployer.url
        ok, seen = probe(url)
        last = json.loads(context.cursor) if context.cursor else {}
        now = time.time()
        if last.get("ok") == ok and now - float(last.get("at", 0)) < REPORT_EVERY_S:
            return SensorResult(skip_reason=f"unchanged: {seen}")
        return SensorResult(asset_events=[health_evaluation(url, ok, seen)], cursor=json.dumps({"ok": ok, "at": now}))

    return deployment_health_sensor
