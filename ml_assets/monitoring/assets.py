"""Monitoring assets (group ``monitoring``): prediction_log, labels and model_monitoring, daily.

- ``prediction_log_files`` / ``label_files``: the day folders, observed by their sensors (data version = the day's
  fingerprint), like ``landing_files``.
- ``prediction_log[D]``: every logged prediction of UTC day D from every serving process, once per request id
  (re-running while servers still write replaces the partition with all complete lines so far).
- ``labels[D]``: delayed ground truth that landed on day D, keyed by record id (or request id), encoded 1/0.
- ``model_monitoring[D]``: for each model tag that served on D, against that model's own training set: input and
  prediction drift (PSI), CBPE-estimated quality, realized quality once labels of D's rows have landed (within
  ``monitoring.label_window_days``), per slice, live fairness gaps, volume, log errors, staleness, and the previous
  champion shadow-scored on the same labeled rows. Its checks warn; the retrain sensor acts on them.
"""

import math
import sys
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    AssetRecordsFilter,
    AssetsDefinition,
    Failure,
    MetadataValue,
    Output,
    PartitionsDefinition,
    SourceAsset,
    TimeWindowPartitionMapping,
    asset,
    multi_asset,
)

from ml_assets import inline, markdown
from ml_assets.automation import on_new_files, on_upstream_update
from ml_assets.data.landing import build_day_folder_asset
from ml_assets.data.tables import label_dtype
from ml_assets.dataset import PANDAS_DTYPES, DatasetSpec
from ml_assets.event_log import last_judgements, metadata_text
from ml_assets.model.gates import thresholds_for
from ml_assets.model.refs import load_stored
from ml_assets.model.registry import current_champion_tag, previous_champion
from ml_assets.model.window_reads import sampled_frame
from ml_assets.monitoring import performance, report, verdicts
from ml_assets.monitoring.report import LABEL, PROBABILITY, TagReport, as_keys, join_labels, tag_report
from ml_assets.monitoring.verdicts import CHECKS, DESCRIPTIONS, failed_first
from ml_assets.monitoring.verdicts import verdicts as judge
from ml_assets.serving.batch import CHECK_REQUEST_ID
from ml_assets.serving.prediction_log import recover_spools
from ml_assets.serving.schema import served_columns
from ml_assets.settings import sample_rows
from ml_assets.versioning import code_version, frame_version
from resources.alerts import Alerts
from resources.bento_deployer import SKEW_REQUEST_ID
from resources.label_files import LabelFileError, LabelFiles
from resources.model_store import ModelStore
from resources.prediction_logs import PredictionLogFiles
from resources.warehouse_tables import column_schema

LOG_DAY, LABEL_DAY = "log_day", "label_day"
REFERENCE_SAMPLE_ROWS = sample_rows(
    200_000
)  # rows per split of a model's own window that drift and reference figures read
PREDICTION_LOG_FILES, LABEL_FILES = "prediction_log_files", "label_files"
ARROW = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "datetime": pa.string(),
    "bool": pa.bool_(),
}


def logged_columns(spec: DatasetSpec) -> list[str]:
    """Request fields the service logs: the record's fields (the features, and the id and sensitive columns when
    sent), exactly what the request schema takes."""
    return [c.name for c in served_columns(spec)]


def log_inputs(spec: DatasetSpec) -> pa.StructType:
    """The logged request fields of a prediction-log line (``PredictionLine.inputs``) with the spec's types."""
    return pa.struct([pa.field(c.name, ARROW[c.dtype]) for c in spec.columns if c.name in logged_columns(spec)])


def prediction_log_dtypes(spec: DatasetSpec) -> dict[str, str]:
    """The prediction_log table's declared columns (``log_frame`` and the log day), the inputs in spec types."""
    logged = set(logged_columns(spec))
    return {
        "request_id": PANDAS_DTYPES["string"],
        "served_at": PANDAS_DTYPES["datetime"],
        "model_tag": PANDAS_DTYPES["string"],
        PROBABILITY: "float64",
        report.PREDICTED: "Int64",
        **{c: t for c, t in spec.pandas_dtypes.items() if c in logged},
        LOG_DAY: PANDAS_DTYPES["datetime"],
    }


def labels_dtypes(spec: DatasetSpec) -> dict[str, str]:
    """The labels table's declared columns (``label_frame`` and the day the labels landed)."""
    text = PANDAS_DTYPES["string"]
    return {"key": text, "key_kind": text, "label": label_dtype(spec), LABEL_DAY: PANDAS_DTYPES["datetime"]}


# X-Request-IDs of the platform's own validation traffic (deployment skew checks, the batch check): not real traffic
VALIDATION_REQUESTS = (SKEW_REQUEST_ID, CHECK_REQUEST_ID)


def log_frame(spec: DatasetSpec, table: pa.Table) -> tuple[pd.DataFrame, int]:
    """Logged lines as a typed frame (spec dtypes for the inputs), one row per request id; and duplicates dropped."""
    inputs = table.column("inputs").combine_chunks()
    raw = pd.DataFrame({f.name: a.to_pandas() for f, a in zip(inputs.type, inputs.flatten(), strict=True)})
    typed, _ = spec.coerce(raw)
    typed = typed[[c for c in spec.column_names if c in raw.columns]]
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "request_id": table.column("request_id").to_pandas().astype("string[pyarrow]"),
                    "served_at": pd.to_datetime(table.column("time").to_pandas(), utc=True, format="ISO8601")
                    .dt.tz_convert(None)
                    .astype("datetime64[ns]"),
                    "model_tag": table.column("model_tag").to_pandas().astype("string[pyarrow]"),
                    PROBABILITY: table.column("probability").to_pandas().astype("float64"),
                    report.PREDICTED: table.column("label").to_pandas().astype("Int64"),
                }
            ),
            typed.reset_index(drop=True),
        ],
        axis=1,
    )
    before = len(frame)
    frame = frame.drop_duplicates("request_id", keep="first").reset_index(drop=True)
    return frame, before - len(frame)


def label_frame(spec: DatasetSpec, landed: pd.DataFrame, files: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Landed labels as ``key`` (record id, else request id), ``key_kind`` and ``label`` (1 = positive label)."""
    target = spec.target.name
    key_col = (
        spec.id.name if spec.id.name in landed.columns else "request_id" if "request_id" in landed.columns else None
    )
    if landed.empty and not files:
        return pd.DataFrame(
            {"key": pd.Series(dtype="string"), "key_kind": pd.Series(dtype="string"), "label": pd.Series(dtype="int8")}
        ), {}
    if key_col is None or target not in landed.columns:
        raise Failure(
            description=f"label files {files} need a key column ({spec.id.name!r} or 'request_id') and the target "
            f"column {target!r}; they have {list(landed.columns)}"
        )
    text = spec.typed(target, landed[target])  # as raw_data types it: integer codes 1, 1.0 and "1" are one label
    known = text.isin(list(spec.target.categories or []))
    keys = as_keys(landed[key_col])
    out = pd.DataFrame(
        {
            "key": keys[known].reset_index(drop=True),
            "key_kind": "id" if key_col == spec.id.name else "request_id",
            "label": spec.encode_label(text[known]).reset_index(drop=True),
        }
    )
    given = landed[target].notna().to_numpy()  # a value that does not cast (e.g. "x" for a code) is unknown
    problems = {"unknown_label_values": int((~known & given).sum()), "missing_labels": int((~given).sum())}
    return out, problems


def real_traffic(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The logged predictions less the platform's own validation requests, and how many of those were left out."""
    ours = frame["request_id"].str.startswith(tuple(f"{p}-" for p in VALIDATION_REQUESTS)).fillna(False)
    return frame[~ours].reset_index(drop=True), int(ours.sum())


def build_monitoring_assets(
    spec: DatasetSpec, daily: PartitionsDefinition
) -> tuple[SourceAsset, SourceAsset, AssetsDefinition, AssetsDefinition, AssetsDefinition]:
    """prediction_log_files, label_files, prediction_log, labels and model_monitoring for one spec."""
    log_files = build_day_folder_asset(
        PREDICTION_LOG_FILES,
        "prediction_logs",
        daily,
        "monitoring",
        "JSON lines the serving processes append under prediction_log/<YYYY-MM-DD>/, observed by their sensor.",
    )
    label_files = build_day_folder_asset(
        LABEL_FILES,
        "label_files",
        daily,
        "monitoring",
        "Delayed ground truth landed under labels/<YYYY-MM-DD>/ (the day it landed), observed by its sensor.",
    )
    return (
        log_files,
        label_files,
        build_prediction_log(spec, daily),
        build_labels(spec, daily),
        build_model_monitoring(spec, daily),
    )


def build_prediction_log(spec: DatasetSpec, daily: PartitionsDefinition) -> AssetsDefinition:
    """The daily ``prediction_log``: every served prediction once, typed by the spec."""

    @asset(
        name="prediction_log",
        group_name="monitoring",
        partitions_def=daily,
        io_manager_key="warehouse_io_manager",
        metadata={"partition_expr": LOG_DAY, **column_schema(prediction_log_dtypes(spec))},
        deps=[PREDICTION_LOG_FILES],
        automation_condition=on_new_files(),
        code_version=code_version(spec, sys.modules[__name__], uses=("columns",)),
        description="Every prediction served on the day, once per request id, with the inputs as the spec types them.",
    )
    def prediction_log(context: AssetExecutionContext, prediction_logs: PredictionLogFiles) -> Output[pd.DataFrame]:
        day = context.partition_key
        recover_spools(prediction_logs.root)  # bulk answers a killed server left spooled become lines first
        table, read = prediction_logs.read_day(day, log_inputs(spec))
        frame, duplicates = log_frame(spec, table)
        frame, validation_requests = real_traffic(frame)
        frame[LOG_DAY] = pd.Timestamp(day)
        tags = frame["model_tag"].value_counts()
        return Output(
            frame,
            data_version=frame_version(frame),
            metadata={
                "dagster/row_count": len(frame),
                "files": MetadataValue.json(read.files),
                "log_lines": read.lines,
                "duplicate_request_ids": duplicates,
                "validation_requests_left_out": validation_requests,
                "errors": read.bad_lines,
                "unfinished_bytes": read.partial_bytes,
                "model_tags": MetadataValue.md(
                    markdown.table(
                        [{"model tag": t, "predictions": int(n)} for t, n in tags.items()], right=["predictions"]
                    )
                ),
                "model_tags_seen": len(tags),
            },
        )

    return prediction_log


def build_labels(spec: DatasetSpec, daily: PartitionsDefinition) -> AssetsDefinition:
    """The daily ``labels``: ground truth by the day it landed."""

    @asset(
        name="labels",
        group_name="monitoring",
        partitions_def=daily,
        io_manager_key="warehouse_io_manager",
        metadata={"partition_expr": LABEL_DAY, **column_schema(labels_dtypes(spec))},
        deps=[LABEL_FILES],
        automation_condition=on_new_files(),
        code_version=code_version(spec, sys.modules[__name__], uses=("columns", "positive_label")),
        description="Ground truth that landed on the day: record id (or request id) and the label (1 = positive).",
    )
    def labels(context: AssetExecutionContext, label_files: LabelFiles) -> Output[pd.DataFrame]:
        day = context.partition_key
        try:
            landed, files = label_files.read_day(day)
        except LabelFileError as e:
            raise Failure(description=f"labels partition {day}: {e}") from e
        frame, problems = label_frame(spec, landed, files)
        frame[LABEL_DAY] = pd.Timestamp(day)
        return Output(
            frame,
            data_version=frame_version(frame),
            metadata={
                "dagster/row_count": len(frame),
                "files": MetadataValue.json(files),
                "positive_rate": float(frame["label"].mean()) if len(frame) else math.nan,
                **problems,
            },
        )

    return labels


def build_model_monitoring(spec: DatasetSpec, daily: PartitionsDefinition) -> AssetsDefinition:
    """The daily ``model_monitoring`` and its warning checks."""
    gates = thresholds_for(spec)
    window = spec.monitoring.label_window_days

    # A multi_asset that may leave out check results (can_subset): a check that could not judge (too few served or
    # labeled rows, no previous champion) yields nothing, which Dagster 1.13 records as a planned execution that
    # resolves to "skipped" once the run succeeds; a result would have to say passed or failed, and a "passed"
    # that judged nothing shows green. The reason is on the materialization (``checks``, ``not_judged``) and in
    # the run's log.
    @multi_asset(
        name="model_monitoring",
        outs={
            "model_monitoring": AssetOut(
                group_name="monitoring",
                automation_condition=on_upstream_update(
                    ignore=("training_set", "champion_model"), must_exist=("prediction_log",)
                ),
                code_version=code_version(
                    spec,
                    sys.modules[__name__],
                    report,
                    verdicts,
                    performance,
                    uses=("columns", "bands", "monitoring", "gates"),
                ),
                description="Drift, estimated and realized quality, live fairness and staleness of each model tag "
                "that served on the day, against its own training set; warnings that drive retraining and rollback.",
            )
        },
        partitions_def=daily,
        deps=[
            AssetDep(
                "labels",
                partition_mapping=TimeWindowPartitionMapping(
                    start_offset=0, end_offset=window, allow_nonexistent_upstream_partitions=True
                ),
            ),
            # each tag's own training set is read by the partition its lineage names; this dep draws the lineage.
            # training_set starts a window after the first landed day: days before it have none, and without
            # allowing that, a backfill of several monitoring days (automation's request for replayed days) failed
            AssetDep(
                "training_set", partition_mapping=TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)
            ),
            AssetDep("champion_model"),
        ],
        check_specs=[
            AssetCheckSpec(name, asset="model_monitoring", description=DESCRIPTIONS[name], partitions_def=daily)
            for name in CHECKS
        ],
        can_subset=True,
    )
    def model_monitoring(
        context: AssetExecutionContext, prediction_log: pd.DataFrame, model_store: ModelStore, alerts: Alerts
    ):
        day = context.partition_key
        labels_frame = load_labels(context, day, window)
        served = prediction_log.copy()
        served[LABEL] = join_labels(spec, served, labels_frame)
        champion = current_champion_tag(context.instance)
        reports = {}
        for tag, rows in served.groupby("model_tag", sort=False):
            reports[str(tag)] = report_for(context, spec, str(tag), rows, model_store, gates.slice_min_size)
        main = main_tag(reports, champion)
        found = (
            failed_first(judge(spec, gates, reports[main]))
            if main is not None
            else [verdicts.Verdict(n, None, "not judged: no prediction was served on this day") for n in CHECKS]
        )
        selected = {k.name for k in context.selected_asset_check_keys}
        found = [v for v in found if v.name in selected]
        for v in found:
            if not v.judged:
                context.log.info(f"model_monitoring[{day}] check {v.name} skipped: {v.description}")
        meta = monitoring_metadata(context, reports, main, len(served), spec.monitoring.drift_psi)
        meta |= verdict_metadata(found)
        meta["latest_alerts"] = MetadataValue.md(inline.alerts_table(alerts.read(), prefix="monitoring.", day=day))
        yield Output(reports, output_name="model_monitoring", metadata=meta)
        before = last_judgements(context.instance, context.asset_key, CHECKS)  # any day
        for v in found:
            if not v.judged:
                continue  # no result: recorded as skipped, with its reason in ``not_judged`` above
            if not v.passed and main is not None and not already_failing(before.get(v.name), main):
                alerts.send(f"monitoring.{v.name}", f"{day} {main}: {v.description}", log=context.log, day=day)
            yield AssetCheckResult(
                asset_key="model_monitoring",
                check_name=v.name,
                passed=bool(v.passed),
                severity=AssetCheckSeverity.WARN,
                description=v.description,
                metadata={"model_tag": main or "none", **{k: val for k, val in v.metadata.items() if val is not None}},
            )

    return model_monitoring


def already_failing(previous: AssetCheckEvaluation | None, tag: str) -> bool:
    """Whether the check's latest evaluation already failed for the same model: it was alerted on then, and an alert
    on every re-judgement (each landed labels file, each day) would bury the ones that say something new."""
    if previous is None or previous.passed:
        return False
    return metadata_text(previous.metadata.get("model_tag")) == tag


def load_labels(context: AssetExecutionContext, day: str, window: int) -> pd.DataFrame:
    """Labels that landed from ``day`` through ``day + window`` days (the partitions materialized so far)."""
    start = pd.Timestamp(day)
    days = {(start + pd.Timedelta(days=i)).date().isoformat() for i in range(window + 1)}
    landed = sorted(days & set(context.instance.get_materialized_partitions(AssetKey("labels"))))
    # a day whose labels partition holds no row has no table to read (the warehouse writes none for an empty frame)
    landed = [d for d in landed if labeled_rows_landed(context, d)]
    frames = [context.load_asset_value(AssetKey("labels"), partition_key=d) for d in landed]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"key": [], "label": []})


def labeled_rows_landed(context: AssetExecutionContext, day: str) -> bool:
    """Whether the latest labels materialization of ``day`` holds rows."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("labels"), asset_partitions=[day]), limit=1
    ).records
    mat = records[0].asset_materialization if records else None
    rows = mat.metadata.get("dagster/row_count") if mat is not None else None
    return rows is None or int(rows.value or 0) > 0


def report_for(
    context: AssetExecutionContext, spec: DatasetSpec, tag: str, rows: pd.DataFrame, store: ModelStore, min_group: int
) -> TagReport:
    """One tag's report: its model and own training set from the store's lineage, the previous champion shadowed."""
    info = store.info(tag)
    partition = info.lineage.training_set_partition
    if not partition:
        raise Failure(description=f"model {tag} records no training_set_partition: cannot monitor it against its data")
    # its own window as a bounded, seeded sample of each split (the whole window when no larger): drift and the
    # reference figures are judged on it
    window = context.load_asset_value(AssetKey("training_set"), partition_key=str(partition))
    reference = sampled_frame(window, REFERENCE_SAMPLE_ROWS)
    previous = previous_champion(context.instance, tag)
    now = datetime.now(UTC)
    created = info.creation_time
    trained_on = datetime.fromisoformat(str(partition)).replace(tzinfo=UTC)
    return tag_report(
        spec,
        tag,
        rows,
        load_stored(store, tag),
        reference,
        previous=(previous, load_stored(store, previous)) if previous else None,
        min_group_size=min_group,
        model_age_hours=(now - created).total_seconds() / 3600,
        training_data_age_days=(now - trained_on).total_seconds() / 86400,
    )


def main_tag(reports: dict[str, TagReport], champion: str | None) -> str | None:
    """The tag the checks judge: the champion when it served that day, else the tag that served most."""
    if not reports:
        return None
    if champion in reports:
        return champion
    return max(reports, key=lambda t: reports[t].rows)


def monitoring_metadata(
    context: AssetExecutionContext, reports: dict[str, TagReport], main: str | None, rows: int, drift_limit: float
) -> dict:
    """Numbers for the UI's plots across partitions (the main tag's), and narrow tables and small charts that the
    UI shows in place (``ml_assets.inline``); the detailed quality picture stays behind a click."""
    meta: dict = {"dagster/row_count": rows, "model_tags_seen": len(reports), "main_model_tag": main or "none"}
    if main is None:
        return meta
    r = reports[main]
    meta |= report_figures(r)
    history = monitoring_history(context, r)
    days = sorted(history)[-30:]
    meta["quality_chart"] = MetadataValue.md(
        inline.line_chart(
            "ROC AUC by day",
            [d[5:] for d in days],
            {
                "estimated": [history[d].get("estimated_roc_auc") for d in days],
                "realized": [history[d].get("realized_roc_auc") for d in days],
            },
            limit=r.reference["roc_auc"],  # what the serving model's evaluation saw: the bar it is held to
            limit_name="evaluation",
        )
    )
    meta["drift_chart"] = MetadataValue.md(
        inline.line_chart(
            "PSI by day",
            [d[5:] for d in days],
            {
                "max input": [history[d].get("max_input_psi") for d in days],
                "prediction": [history[d].get("prediction_psi") for d in days],
            },
            limit=drift_limit,
            limit_name="limit",
        )
    )
    meta["input_drift"] = MetadataValue.md(input_drift_table(r))
    meta["served_by_model_tag"] = MetadataValue.md(served_by_tag_table(reports))
    meta["quality_by_model_tag"] = MetadataValue.md(quality_by_tag_table(reports))
    if r.previous_realized is not None and r.realized is not None:
        meta["champion_vs_previous"] = MetadataValue.md(champion_vs_previous_table(r))
    if r.slices:
        meta["realized_slices"] = MetadataValue.md(realized_slices_table(r))
    meta["quality_over_time"] = MetadataValue.md(quality_plot(days, history))
    return meta


def verdict_metadata(found: list[verdicts.Verdict]) -> dict:
    """The day's verdicts at a glance: counts (plotted across days), a narrow table, failed first, and why each
    check that could not judge was skipped (those have no check result)."""
    skipped = [v for v in found if not v.judged]
    return {
        "checks_failed": sum(v.passed is False for v in found),
        "checks_passed": sum(v.passed is True for v in found),
        "checks_not_judged": len(skipped),
        "checks": MetadataValue.md(
            inline.table(
                [
                    {"check": v.name, "verdict": {False: "FAILED", True: "passed", None: "not judged"}[v.passed]}
                    for v in found
                ],
                ["check", "verdict"],
            )
        ),
        "not_judged": "; ".join(f"{v.name}: {v.description}" for v in skipped) or "none",
    }


def report_figures(r: TagReport) -> dict[str, float | int | str]:
    """Every figure the monitoring checks judge, flat and numeric, so the UI plots each across partitions."""
    worst, worst_psi = r.max_input_psi
    figures: dict[str, float | int | str] = {
        "labeled_rows": r.labeled_rows,
        "max_input_psi": worst_psi,
        "max_input_psi_feature": worst,
        "prediction_psi": r.prediction_psi,
        "estimated_roc_auc": r.estimated["roc_auc"],
        "estimated_accuracy": r.estimated["accuracy"],
        # +/- 3 standard errors for the day's rows (reference chunks of that size): the band the checks judge
        **{f"estimated_{k}_sampling_error": v for k, v in r.estimated_sampling_error.items()},
        "evaluation_roc_auc": r.reference["roc_auc"],
        "evaluation_accuracy": r.reference["accuracy"],
        "model_age_hours": r.model_age_hours,
        "training_data_age_days": r.training_data_age_days,
    }
    figures |= {f"psi_{name}": value for name, value in r.input_psi.items()}
    if r.realized is not None:
        figures |= {f"realized_{k}": r.realized[k] for k in ("roc_auc", "accuracy", "ece") if k in r.realized}
        figures |= {f"realized_{k}_sampling_error": v for k, v in r.realized_sampling_error.items()}
        for g in r.fairness:
            if g.assessable:
                figures[f"{g.attribute}_demographic_parity_difference"] = g.demographic_parity_difference
                figures[f"{g.attribute}_equalized_odds_difference"] = g.equalized_odds_difference
    if r.previous_realized is not None:
        figures["previous_champion_realized_roc_auc"] = r.previous_realized["roc_auc"]
        figures["previous_champion_realized_accuracy"] = r.previous_realized["accuracy"]
    return figures


def input_drift_table(r: TagReport) -> str:
    """Every served feature's PSI, most drifted first."""
    return inline.table(
        [{"feature": k, "psi": v} for k, v in sorted(r.input_psi.items(), key=lambda kv: -kv[1])],
        ["feature", "psi"],
        right=["psi"],
    )


def served_by_tag_table(reports: dict[str, TagReport]) -> str:
    """One row per model tag that served on the day: how much it served and how far its traffic drifted."""
    return inline.table(
        [
            {
                "model tag": t,
                "rows": x.rows,
                "labeled": x.labeled_rows,
                "max input PSI": x.max_input_psi[1],
                "prediction PSI": x.prediction_psi,
            }
            for t, x in reports.items()
        ],
        ["model tag", "rows", "labeled", "max input PSI", "prediction PSI"],
        right=["rows", "labeled", "max input PSI", "prediction PSI"],
    )


def quality_by_tag_table(reports: dict[str, TagReport]) -> str:
    """One row per model tag: estimated and realized ROC AUC beside what its evaluation saw."""
    return inline.table(
        [
            {
                "model tag": t,
                "estimated": x.estimated["roc_auc"],
                "realized": (x.realized or {}).get("roc_auc"),
                "evaluation": x.reference["roc_auc"],
            }
            for t, x in reports.items()
        ],
        ["model tag", "estimated", "realized", "evaluation"],
        right=["estimated", "realized", "evaluation"],
    )


def champion_vs_previous_table(r: TagReport) -> str:
    """The champion and the previous champion on the same labeled rows, side by side."""
    assert r.realized is not None and r.previous_realized is not None
    return inline.table(
        [
            {"metric": k, "champion": r.realized.get(k), "previous champion": r.previous_realized.get(k)}
            for k in ("roc_auc", "accuracy", "ece")
            if k in r.realized
        ],
        ["metric", "champion", "previous champion"],
        right=["champion", "previous champion"],
    )


def realized_slices_table(r: TagReport) -> str:
    """Realized quality per slice of labeled traffic, worst ROC AUC first."""
    rows = sorted(r.slices, key=lambda s: (math.isnan(s.metrics["roc_auc"]), s.metrics["roc_auc"]))
    return inline.table(
        [{"slice": s.name, "rows": s.size, "roc_auc": s.metrics["roc_auc"]} for s in rows],
        ["slice", "rows", "roc_auc"],
        right=["rows", "roc_auc"],
    )


HISTORY_KEYS = ("estimated_roc_auc", "realized_roc_auc", "evaluation_roc_auc", "max_input_psi", "prediction_psi")


def monitoring_history(context: AssetExecutionContext, today: TagReport) -> dict[str, dict[str, float]]:
    """The plotted figures of every day's latest materialization (earlier runs) and of this one, by day."""
    records = context.instance.fetch_materializations(AssetKey("model_monitoring"), limit=500).records
    points: dict[str, dict[str, float]] = {}
    for rec in records:  # newest first: the first seen of a day is its latest
        mat = rec.asset_materialization
        if mat is None or not mat.partition or mat.partition in points:
            continue
        points[mat.partition] = {
            k: float(v.value) for k in HISTORY_KEYS if (v := mat.metadata.get(k)) is not None and v.value is not None
        }
    points[context.partition_key] = {
        "estimated_roc_auc": today.estimated["roc_auc"],
        "evaluation_roc_auc": today.reference["roc_auc"],
        "max_input_psi": today.max_input_psi[1],
        "prediction_psi": today.prediction_psi,
        **({"realized_roc_auc": today.realized["roc_auc"]} if today.realized else {}),
    }
    return points


def quality_plot(days: list[str], points: dict[str, dict[str, float]]) -> str:
    """Estimated, realized and evaluation ROC AUC of the recent days as a detailed picture (behind a click)."""
    fig, ax = markdown.new_figure(5.0, 2.8, 80, bottom=0.75)
    for key, label in (
        ("estimated_roc_auc", "estimated (CBPE)"),
        ("realized_roc_auc", "realized"),
        ("evaluation_roc_auc", "evaluation"),
    ):
        xs = [d for d in days if key in points[d]]
        ax.plot([d[5:] for d in xs], [points[d][key] for d in xs], marker="o", label=label)
    ax.set_ylabel("ROC AUC")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.legend(fontsize=7)
    return markdown.figure(fig, "quality over time")
