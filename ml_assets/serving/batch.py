"""``batch_predictions`` (daily, group ``serving``): the champion scores a day of features in-process.

The ETL-embedded way of using the model (beside the online ``/predict`` and the bulk ``/predict_file``): the
day's ``features`` partition, cut to the request fields, passes the service's own code path (the columnar rules
of ``ml_assets.serving.columnar`` and ``ml_assets.serving.scoring.Scorer.score_table``, exactly what ``/predict_file`` runs),
so an offline score equals the score the service would answer. The check ``online_offline_equality`` proves it
on a fixed sample of the day: it sends those rows to the deployment's stable URL and compares the answers with
the stored scores (and the served model with the one that scored the batch), through the deployment's one
skew comparison (``resources.bento_deployer.served_skew``). No Dagster ``from __future__ import annotations``:
Dagster reads resource annotations at definition time.
"""

import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    Failure,
    MetadataValue,
    Output,
    asset,
    multi_asset_check,
)

from ml_assets.automation import on_recent_update, with_its_asset
from ml_assets.dataset import DatasetSpec
from ml_assets.model.bundle import ModelRef
from ml_assets.model.refs import load_stored
from ml_assets.partitions import LANDING_DAY, daily_partitions
from ml_assets.serving import columnar, scoring
from ml_assets.serving.schema import RequestRefused, frame_records
from ml_assets.serving.scoring import Scorer
from ml_assets.versioning import code_version, frame_version
from resources.bento_deployer import SKEW_TOLERANCE, BentoDeployer, DeploymentError, served_skew
from resources.model_store import ModelStore
from resources.warehouse_tables import column_schema

CHECK_SAMPLE_ROWS = 64  # rows of the day the check scores online (lowest ids first, so reruns compare the same)
CHECK_REQUEST_ID = "online-offline-check"  # X-Request-ID of the check's requests: its log lines are told apart


def score_features(spec: DatasetSpec, features: pd.DataFrame, scorer: Scorer) -> pd.DataFrame:
    """Scores of a features frame through the service's path: id, landing day, probability, label, model tag."""
    out = {spec.id.name: features[spec.id.name].to_numpy()}
    if LANDING_DAY in features.columns:
        out[LANDING_DAY] = features[LANDING_DAY].to_numpy()
    if features.empty:  # a day without rows: nothing to score (the service refuses an empty file)
        empty = {"probability": np.array([], dtype=np.float64), "label": np.array([], dtype=np.int8)}
        return pd.DataFrame(out | empty | {"model_tag": pd.Series([], dtype="object")})
    served = [c.name for c in columnar.served_columns(spec) if c.name in features.columns]
    table = columnar.validate_table(spec, pa.Table.from_pandas(features[served], preserve_index=False))
    scored = scorer.score_table(table, log=False)  # the prediction log is for answered requests only
    out |= {"probability": scored.probabilities, "label": scored.labels.astype(np.int8), "model_tag": scorer.model_tag}
    return pd.DataFrame(out)


def batch_dtypes(spec: DatasetSpec) -> dict[str, str]:
    """The batch_predictions table's declared columns (``score_features`` of a features partition)."""
    return {
        spec.id.name: spec.pandas_dtypes[spec.id.name],
        LANDING_DAY: "datetime64[ns]",
        "probability": "float64",
        "label": "int8",
        "model_tag": "string[pyarrow]",
    }


def batch_metadata(out: pd.DataFrame, model_tag: str, seconds: float) -> dict[str, Any]:
    """What the UI shows of a scored day: rows, the model, mean probability, positive rate and throughput."""
    if out.empty:
        return {
            "dagster/row_count": 0,
            "model_tag": model_tag,
            "not_judged": "online_offline_equality: no row to score on this day, so nothing to compare (skipped)",
        }
    return {
        "dagster/row_count": len(out),
        "model_tag": model_tag,
        "mean_probability": float(out["probability"].mean()),
        "predicted_positive_rate": float(out["label"].mean()),
        "seconds": round(seconds, 3),
        "rows_per_s": round(len(out) / seconds, 1) if seconds > 0 else 0.0,
    }


def check_sample(
    spec: DatasetSpec, features: pd.DataFrame, batch_predictions: pd.DataFrame
) -> tuple[list[dict[str, Any]], list[float], str] | None:
    """The fixed sample the check sends online (lowest ids first, so reruns compare the same rows) as request
    records, their stored batch scores, and the model tag that scored the batch; None when the batch does not hold
    every row of the sample (not scored yet, or scored from other features)."""
    id_col = spec.id.name
    sample = features.sort_values(id_col, kind="stable").head(CHECK_SAMPLE_ROWS)
    scored = batch_predictions.drop_duplicates(id_col).set_index(id_col)["probability"]
    if sample.empty or not sample[id_col].isin(scored.index).all():
        return None
    offline = scored.loc[sample[id_col]].to_numpy()
    tag = str(batch_predictions["model_tag"].iloc[0])
    records = frame_records(sample[[c.name for c in spec.feature_columns]])
    return records, offline.tolist(), tag


def scored_rows(instance: DagsterInstance, day: str) -> int | None:
    """Rows the latest batch_predictions materialization of ``day`` scored; None when there is none."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("batch_predictions"), asset_partitions=[day]), limit=1
    ).records
    mat = records[0].asset_materialization if records else None
    if mat is None:
        return None
    rows = mat.metadata.get("dagster/row_count")
    return int(rows.value) if rows is not None else None


def judge_online_offline(
    spec: DatasetSpec, features: pd.DataFrame, batch_predictions: pd.DataFrame, url: str
) -> AssetCheckResult:
    """The served model's answers on the day's fixed sample against the stored batch scores, in one line."""
    picked = check_sample(spec, features, batch_predictions)
    if picked is None:
        return AssetCheckResult(
            asset_key="batch_predictions",
            check_name="online_offline_equality",
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description=f"batch_predictions ({len(batch_predictions)} rows) does not hold the day's features' "
            f"rows ({len(features)}): scored from other features; materialize batch_predictions again",
        )
    records, offline, tag = picked
    try:
        report = served_skew(url, records, offline, request_id=CHECK_REQUEST_ID)
    except DeploymentError as e:
        return AssetCheckResult(
            asset_key="batch_predictions",
            check_name="online_offline_equality",
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description=f"the served model at {url} did not answer the sample: {str(e).splitlines()[0][:200]}",
            metadata={"url": url, "error": str(e)[:1000]},
        )
    passed = report.passed(tag)
    return AssetCheckResult(
        asset_key="batch_predictions",
        check_name="online_offline_equality",
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{report.rows} rows: max |online - offline| {report.max_abs_diff:.2g} (limit {SKEW_TOLERANCE:g}), "
            f"served by {', '.join(report.served_model_tags) or 'none'}, scored by {tag}"
        ),
        metadata={
            "rows": report.rows,
            "max_abs_diff": report.max_abs_diff,
            "rows_over_tolerance": report.rows_over_tolerance,
            "served_model_tags": ", ".join(report.served_model_tags),
            "batch_model_tag": tag,
            "url": url,
        },
    )


def build_batch_predictions(spec: DatasetSpec) -> list:
    """``batch_predictions`` and its ``online_offline_equality`` check."""
    daily = daily_partitions(spec)

    @asset(
        name="batch_predictions",
        group_name="serving",
        partitions_def=daily,
        io_manager_key="warehouse_io_manager",
        metadata={"partition_expr": LANDING_DAY, **column_schema(batch_dtypes(spec))},
        ins={"features": AssetIn(), "champion_model": AssetIn()},
        automation_condition=on_recent_update(),
        code_version=code_version(spec, sys.modules[__name__], columnar, scoring),
        description="The day's features scored by the champion in-process, through the service's own code path.",
    )
    def batch_predictions(
        context: AssetExecutionContext, features: pd.DataFrame, champion_model: ModelRef, model_store: ModelStore
    ) -> Output[pd.DataFrame]:
        t0 = time.perf_counter()
        scorer = Scorer(spec, load_stored(model_store, champion_model.tag), champion_model.tag, log=None)
        try:
            out = score_features(spec, features, scorer)
        except RequestRefused as e:
            raise Failure(
                description=f"batch_predictions {context.partition_key}: the features break the serving rules "
                f"(the same a /predict_file request would get): {e.detail}",
                metadata={"problems": MetadataValue.json(e.detail)},
            ) from e
        seconds = time.perf_counter() - t0
        return Output(out, data_version=frame_version(out), metadata=batch_metadata(out, champion_model.tag, seconds))

    # A check op that may leave its result out (``can_subset``): a day with nothing to compare yields none, which
    # Dagster 1.13 records as a planned execution shown as skipped (a result must say passed or failed, and a
    # "passed" that compared nothing shows green). Its inputs are read here rather than as op inputs: an empty
    # day has no warehouse table to load (the DuckDB IO manager writes none for an empty frame).
    @multi_asset_check(
        name="online_offline_equality",
        specs=[
            AssetCheckSpec(
                "online_offline_equality",
                asset="batch_predictions",
                additional_deps=["features"],
                partitions_def=daily,
                automation_condition=with_its_asset(),
                description=f"The served model answers a fixed sample of the day ({CHECK_SAMPLE_ROWS} rows) with "
                f"the stored batch scores (|diff| <= {SKEW_TOLERANCE:g}), and it is the model that scored the batch.",
            )
        ],
        can_subset=True,
    )
    def online_offline_equality(context: AssetCheckExecutionContext, bento_deployer: BentoDeployer):
        day = context.partition_key
        scored = scored_rows(context.instance, day)
        if not scored:
            why = (
                f"not judged: batch_predictions[{day}] scored no row (no features that day)"
                if scored == 0
                else f"not judged: batch_predictions[{day}] was not materialized yet"
            )
            context.log.info(f"online_offline_equality skipped: {why}")
            return
        load = context.op_execution_context.load_asset_value
        features = load(AssetKey("features"), partition_key=day)
        batch = load(AssetKey("batch_predictions"), partition_key=day)
        yield judge_online_offline(spec, features, batch, bento_deployer.url)

    return [batch_predictions, online_offline_equality]
