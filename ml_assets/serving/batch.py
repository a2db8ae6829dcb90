"""``batch_predictions`` (daily, group ``serving``): the champion scores a day of features in-process.

The ETL-embedded way of using the model (beside the online ``/predict`` and the bulk ``/predict_file``): the
day's ``features`` partition, cut to the request fields, passes the service's own code path (the columnar rules
of ``ml_assets.serving.columnar`` and ``bento.scoring.Scorer.score_table``, exactly what ``/predict_file`` runs),
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
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    Failure,
    MetadataValue,
    Output,
    asset,
    asset_check,
)

import bento.scoring
from bento.scoring import Scorer
from ml_assets.automation import on_recent_update, with_its_asset
from ml_assets.dataset import DatasetSpec
from ml_assets.model.bundle import ModelRef
from ml_assets.model.refs import load_stored
from ml_assets.partitions import LANDING_DAY, daily_partitions
from ml_assets.serving import columnar
from ml_assets.serving.schema import RequestRefused, frame_records
from ml_assets.versioning import code_version, frame_version
from resources.bento_deployer import SKEW_TOLERANCE, BentoDeployer, DeploymentError, served_skew
from resources.model_store import ModelStore
from resources.warehouse_tables import column_schema

CHECK_SAMPLE_ROWS = 64  # rows of the day the check scores online (lowest ids first, so reruns compare the same)
CHECK_REQUEST_ID = "online-offline-check"  # X-Request-ID of the check's requests: its log lines are told apart


def score_features(spec: DatasetSpec, features: pd.DataFrame, scorer: Scorer) -> pd.DataFrame:
    """Scores of a features frame through the service's path: id, landing day, probability, label, model tag."""
    served = [c.name for c in columnar.served_columns(spec) if c.name in features.columns]
    table = columnar.validate_table(spec, pa.Table.from_pandas(features[served], preserve_index=False))
    scored = scorer.score_table(table, log=False)  # the prediction log is for answered requests only
    out = {spec.id.name: features[spec.id.name].to_numpy()}
    if LANDING_DAY in features.columns:
        out[LANDING_DAY] = features[LANDING_DAY].to_numpy()
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
        code_version=code_version(spec, sys.modules[__name__], columnar, bento.scoring),
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

    @asset_check(
        asset=batch_predictions,
        name="online_offline_equality",
        partitions_def=daily,
        automation_condition=with_its_asset(),
        additional_ins={"features": AssetIn()},
        description=f"The served model answers a fixed sample of the day ({CHECK_SAMPLE_ROWS} rows) with the "
        f"stored batch scores (|diff| <= {SKEW_TOLERANCE:g}), and it is the model that scored the batch.",
    )
    def online_offline_equality(
        batch_predictions: pd.DataFrame, features: pd.DataFrame, bento_deployer: BentoDeployer
    ) -> AssetCheckResult:
        picked = check_sample(spec, features, batch_predictions)
        if picked is None:
            return AssetCheckResult(
                passed=False,
                severity=AssetCheckSeverity.WARN,
                description=f"batch_predictions ({len(batch_predictions)} rows) does not hold the day's features' "
                f"rows ({len(features)}): it was not scored yet, or from other features; nothing to compare",
            )
        records, offline, tag = picked
        try:
            report = served_skew(bento_deployer.url, records, offline, request_id=CHECK_REQUEST_ID)
        except DeploymentError as e:
            return AssetCheckResult(
                passed=False,
                severity=AssetCheckSeverity.WARN,
                metadata={"url": bento_deployer.url, "error": str(e)[:1000]},
            )
        return AssetCheckResult(
            passed=report.passed(tag),
            severity=AssetCheckSeverity.WARN,
            metadata={
                "rows": report.rows,
                "max_abs_diff": report.max_abs_diff,
                "rows_over_tolerance": report.rows_over_tolerance,
                "served_model_tags": ", ".join(report.served_model_tags),
                "batch_model_tag": tag,
                "url": bento_deployer.url,
            },
        )

    return [batch_predictions, online_offline_equality]
