"""Serving assets (group ``serving``): the Bento of the champion and its deployment, with checks.

``bento`` is rebuilt when the champion, the service code or the spec changes (its code version is a hash of the
service sources and the whole spec: the Bento serves the schema of the spec its model carries). ``deployment`` hands the Bento to the deployer resource: locally a blue/green ``bentoml serve`` behind
a stable loopback URL, in production Kubernetes manifests. The checks call the stable URL like an application
would. (No ``from __future__ import annotations``: Dagster reads resource annotations at definition time.)
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetsDefinition,
    DataVersion,
    Failure,
    MetadataValue,
    Output,
    asset,
    asset_check,
)

from ml_assets import inline
from ml_assets.automation import on_upstream_update, with_its_asset
from ml_assets.data.approval import READ_NOT_REACTED, TRAINING_SET_DEP, TrainingSetRef, load_approved
from ml_assets.data.splits import SPLIT
from ml_assets.data.window import TrainingWindow
from ml_assets.dataset import DatasetSpec
from ml_assets.model.bundle import ModelRef
from ml_assets.model.champion import model_age_policy
from ml_assets.model.refs import load_stored
from ml_assets.model.window_reads import lowest_ids
from ml_assets.serving import schema
from ml_assets.serving.build import BentoRef, build_bento, service_code_version
from ml_assets.serving.schema import frame_records
from ml_assets.versioning import code_version
from resources.alerts import Alerts
from resources.bento_deployer import SKEW_TOLERANCE, BentoDeployer, DeploymentError, served_skew
from resources.deployment_record import DeploymentRecord
from resources.model_store import ModelStore

DEPLOYMENT_ALERTS = ("rollback", "retrain", "run_failed")  # the alert kinds that concern what serves
VALIDATION_ROWS = 64  # fixed sample of test rows every new deployment must reproduce offline predictions for
P99_BUDGET_MS = 100.0
LATENCY_REQUESTS = 200
LATENCY_CONCURRENCY = 4


@dataclass(frozen=True)
class DeploymentInfo:
    """What ``deployment`` hands on: where the model serves and the sample its checks replay."""

    url: str
    bento_tag: str
    model_tag: str
    records: list[dict[str, Any]] = field(repr=False)
    expected: list[float] = field(repr=False)
    record: DeploymentRecord = field(repr=False)


def validation_sample(
    spec: DatasetSpec, training_set: pd.DataFrame | TrainingWindow, n: int = VALIDATION_ROWS
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """A fixed sample of test rows (lowest ids first) as JSON-ready records, and the same rows as a frame; of a
    window, read batch by batch from its test split."""
    if isinstance(training_set, TrainingWindow):
        rows = lowest_ids(spec, training_set.split("test"), n)
    else:
        test = training_set[training_set[SPLIT] == "test"]
        rows = test.sort_values(spec.id.name, kind="stable").head(n).reset_index(drop=True)
    if rows.empty:
        raise Failure(description="deployment: the training set has no test rows to validate the new Bento on")
    return frame_records(rows[[c.name for c in spec.feature_columns]]), rows


def build_serving_assets(spec: DatasetSpec) -> list:
    """``bento``, ``deployment`` and the deployment checks (health, train_serve_skew, http_p99_latency)."""
    bento = build_bento_asset(spec)
    deployment = build_deployment(spec)
    return [bento, deployment, *build_deployment_checks(deployment)]


def build_bento_asset(spec: DatasetSpec) -> AssetsDefinition:
    """The ``bento`` asset: the champion packaged with the service code."""

    @asset(
        name="bento",
        group_name="serving",
        automation_condition=on_upstream_update(),
        code_version=service_code_version(spec),
        description="The champion packaged as a Bento (service code + model), built offline with bentoml.",
    )
    def bento(context: AssetExecutionContext, champion_model: ModelRef, model_store: ModelStore) -> Output[BentoRef]:
        t0 = time.perf_counter()
        ref = build_bento(
            champion_model.tag,
            model_store.home,
            labels={"dataset": spec.name, "model_kind": champion_model.kind},
            spec=spec,
        )
        context.log.info(f"built {ref.tag} for {ref.model_tag} ({ref.size_bytes / 1e6:.2f} MB)")
        return Output(
            ref,
            data_version=DataVersion(f"{ref.model_tag}|{ref.code_version}"),
            metadata={
                "bento_tag": ref.tag,
                "model_tag": ref.model_tag,
                "size_mb": round(ref.size_bytes / 1e6, 3),
                "service_code_version": ref.code_version,
                "path": MetadataValue.path(ref.path),
                "build_seconds": round(time.perf_counter() - t0, 2),
                "serve_locally": MetadataValue.md(f"`bentoml serve {ref.tag}`"),
            },
        )

    return bento


def build_deployment(spec: DatasetSpec) -> AssetsDefinition:
    """The ``deployment`` asset: the Bento serving on the stable URL once it validated."""

    @asset(
        name="deployment",
        group_name="serving",
        deps=[TRAINING_SET_DEP],
        automation_condition=on_upstream_update(ignore=(*READ_NOT_REACTED, "approved_training_set")),
        freshness_policy=model_age_policy(spec),
        code_version=code_version(spec, sys.modules[__name__], schema),
        description="The Bento serving on a stable URL; a new one takes traffic only after it validates.",
    )
    def deployment(
        context: AssetExecutionContext,
        bento: BentoRef,
        approved_training_set: TrainingSetRef,
        bento_deployer: BentoDeployer,
        model_store: ModelStore,
        alerts: Alerts,
    ) -> Output[DeploymentInfo]:
        records, rows = validation_sample(spec, load_approved(context, approved_training_set, "deployment"))
        expected = [float(p) for p in load_stored(model_store, bento.model_tag).predict_proba(rows)]
        t0 = time.perf_counter()
        try:
            record = bento_deployer.deploy(bento.tag, bento.model_tag, records, expected, log=context.log)
        except DeploymentError as e:
            raise Failure(
                description=f"deployment of {bento.tag} rejected, the previous deployment keeps serving: {e}",
                metadata={"bento_tag": bento.tag, "model_tag": bento.model_tag, "reason": str(e)[:2000]},
            ) from e
        info = DeploymentInfo(bento_deployer.url, bento.tag, bento.model_tag, records, expected, record)
        return Output(
            info,
            data_version=DataVersion(bento.tag),
            metadata={
                **deployment_metadata(info, time.perf_counter() - t0),
                # what the platform last said about serving, on the asset it concerns (resources/alerts.py)
                "latest_alerts": MetadataValue.md(inline.alerts_table(alerts.read(), prefix=DEPLOYMENT_ALERTS)),
            },
        )

    return deployment


def deployment_metadata(info: DeploymentInfo, seconds: float) -> dict[str, Any]:
    """What the UI shows of a deployment: where it serves, what it validated on, what it replaced."""
    current, previous = info.record.current, info.record.previous
    validated = current.validated if current else None
    figures = validated.model_dump(exclude_none=True) if validated else {}
    return {
        "url": MetadataValue.url(info.url),
        "bento_tag": info.bento_tag,
        "model_tag": info.model_tag,
        "pid": (current.pid if current else None) or 0,
        "validated_on_rows": len(info.records),
        "validation": MetadataValue.json(figures),
        **{f"validation_{k}": float(v) for k, v in figures.items() if isinstance(v, int | float)},
        "previous_bento_tag": previous.bento_tag if previous else "",
        "deploy_seconds": round(seconds, 2),
        **(
            {"kubernetes_manifests": MetadataValue.md(f"```yaml\n{info.record.manifests_yaml}```")}
            if info.record.manifests_yaml
            else {}
        ),
    }


def build_deployment_checks(deployment: AssetsDefinition) -> list[AssetChecksDefinition]:
    """The checks that call the deployment's stable URL like an application would: health, train/serve skew and
    p99 latency over HTTP."""

    @asset_check(
        asset=deployment,
        name="health",
        description="The stable URL answers /readyz and /livez.",
        automation_condition=with_its_asset(),
    )
    def health(deployment: DeploymentInfo) -> AssetCheckResult:
        seen = {}
        for path in ("/readyz", "/livez"):
            try:
                seen[path] = httpx.get(deployment.url + path, timeout=5).status_code
            except httpx.HTTPError as e:
                seen[path] = f"unreachable: {e!r}"
        ok = all(v == 200 for v in seen.values())
        return AssetCheckResult(
            passed=ok,
            description=f"{deployment.url}: " + ", ".join(f"{k} {v}" for k, v in seen.items())[:300],
            metadata={"url": deployment.url, **{k: str(v) for k, v in seen.items()}},
        )

    @asset_check(
        asset=deployment,
        name="train_serve_skew",
        automation_condition=with_its_asset(),
        description=f"Served predictions equal offline ones for the fixed sample (|diff| <= {SKEW_TOLERANCE:g}).",
    )
    def train_serve_skew(deployment: DeploymentInfo) -> AssetCheckResult:
        try:
            report = served_skew(deployment.url, deployment.records, deployment.expected)
        except DeploymentError as e:
            return AssetCheckResult(
                passed=False,
                description=f"{deployment.url} did not answer the sample: {str(e).splitlines()[0][:200]}",
                metadata={"url": deployment.url, "error": str(e)[:1000]},
            )
        return AssetCheckResult(
            passed=report.passed(deployment.model_tag),
            description=f"{report.rows} rows: max |served - offline| {report.max_abs_diff:.2g} (limit "
            f"{SKEW_TOLERANCE:g}); served by {', '.join(report.served_model_tags) or 'none'}, expected "
            f"{deployment.model_tag}",
            metadata={
                "rows": report.rows,
                "max_abs_diff": report.max_abs_diff,
                "rows_over_tolerance": report.rows_over_tolerance,
                "served_model_tags": ", ".join(report.served_model_tags),
                "expected_model_tag": deployment.model_tag,
                "tolerance": SKEW_TOLERANCE,
            },
        )

    @asset_check(
        asset=deployment,
        name="http_p99_latency",
        automation_condition=with_its_asset(),
        description=f"p99 of /predict over HTTP at concurrency {LATENCY_CONCURRENCY} within {P99_BUDGET_MS:g} ms.",
    )
    def http_p99_latency(deployment: DeploymentInfo) -> AssetCheckResult:
        stats = http_latency(deployment.url, deployment.records, LATENCY_REQUESTS, LATENCY_CONCURRENCY)
        return AssetCheckResult(
            passed=stats["errors"] == 0 and stats["p99_ms"] <= P99_BUDGET_MS,
            severity=AssetCheckSeverity.WARN,
            description=latency_message(stats),
            metadata={**stats, "budget_ms": P99_BUDGET_MS},
        )

    return [health, train_serve_skew, http_p99_latency]


def latency_message(stats: dict[str, float]) -> str:
    """The p99 check's verdict in one line: what was measured against the budget, and the errors."""
    over = stats["p99_ms"] > P99_BUDGET_MS
    return (
        f"p99 {stats['p99_ms']:.1f} ms {'>' if over else '<='} {P99_BUDGET_MS:g} ms budget over "
        f"{int(stats['requests'])} requests at concurrency {LATENCY_CONCURRENCY} (p50 {stats['p50_ms']:.1f} ms, "
        f"{int(stats['errors'])} errors)"
    )


def http_latency(url: str, records: list[dict[str, Any]], requests: int, concurrency: int) -> dict[str, float]:
    """Latency of the served model over HTTP (the in-process one is ``ml_assets.model.evaluation``'s): send
    ``requests`` single-record predictions to ``url`` from ``concurrency`` threads; percentiles in ms."""

    def worker(k: int) -> tuple[list[float], int]:
        lat, errors = [], 0
        with httpx.Client(timeout=30) as client:
            for i in range(k, requests, concurrency):
                t = time.perf_counter()
                try:
                    ok = client.post(url + "/predict", json={"record": records[i % len(records)]}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                lat.append((time.perf_counter() - t) * 1000)
                errors += not ok
        return lat, errors

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(worker, range(concurrency)))
    wall = time.perf_counter() - t0
    lat = np.array([x for r in results for x in r[0]])
    return {
        "requests": len(lat),
        "errors": int(sum(r[1] for r in results)),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "requests_per_s": round(len(lat) / wall, 1),
    }
