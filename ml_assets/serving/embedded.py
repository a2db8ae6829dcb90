"""``embedded_model`` (group serving): the champion as one ONNX file an application embeds, checked against the
service.

The third way a model is used in production, beside the Bento (an API) and ``batch_predictions`` (ETL): the
model with its preprocessing as one ONNX graph (``ml_assets.export.onnx_model``) that onnxruntime runs without
Dagster, BentoML or this package. The blocking check ``onnx_matches_service`` scores the deployment's fixed test
rows, plus a row of unseen categories and a row of missing values, with onnxruntime and with the service's own
scorer (``ml_assets.serving.scoring.Scorer``, the code the Bento runs) and requires the probabilities to agree within
``PARITY_TOLERANCE``. The file is written beside the store's models by the model store resource. (No ``from
__future__ import annotations``: Dagster reads resource annotations at definition time.)
"""

import hashlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DataVersion,
    MetadataValue,
    Output,
    asset,
)

from ml_assets.automation import on_upstream_update
from ml_assets.data.approval import READ_NOT_REACTED, TRAINING_SET_DEP, TrainingSetRef, load_approved
from ml_assets.dataset import DatasetSpec
from ml_assets.export import onnx_model
from ml_assets.export.onnx_model import (
    LABEL,
    OUTPUTS,
    PROBABILITY,
    ExportError,
    embedded_inputs,
    export_onnx,
    onnx_feeds,
)
from ml_assets.model.bundle import ModelRef, TabularModel
from ml_assets.model.refs import load_stored
from ml_assets.serving.assets import validation_sample
from ml_assets.serving.scoring import Scorer
from ml_assets.versioning import code_version
from resources.model_store import ModelStore

EMBEDDED_MODEL = "embedded_model"
ONNX_MATCHES_SERVICE = "onnx_matches_service"
ONNX_FILE = "model.onnx"
PARITY_TOLERANCE = 1e-5
UNSEEN_CATEGORY = "\x00never seen in training"  # a value no vocabulary holds: scored as unknown by both


@dataclass(frozen=True)
class EmbeddedModelRef:
    """What ``embedded_model`` hands on: which model the file holds, where it is and what it takes."""

    model_tag: str
    path: str
    size_bytes: int
    sha256: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Parity:
    """onnxruntime against the service's scorer on the same records."""

    rows: int
    max_abs_diff: float
    labels_differ: int  # rows farther than PARITY_TOLERANCE from the threshold whose labels differ
    labels_at_threshold: int = 0  # rows within PARITY_TOLERANCE of the threshold whose labels differ: not judged

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= PARITY_TOLERANCE and self.labels_differ == 0


def parity_records(spec: DatasetSpec, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fixed rows, plus the first one with every category unseen and one with every feature missing: the
    two paths (unknown, missing) a sample of real rows may never take."""
    if not records:
        return []
    first = dict(records[0])
    unseen = {**first, **{c.name: UNSEEN_CATEGORY for c in spec.feature_columns if c.is_categorical_feature}}
    missing = {**first, **{c.name: None for c in spec.feature_columns}}
    return [*records, unseen, missing]


def service_parity(
    data: bytes, model: TabularModel, spec: DatasetSpec, model_tag: str, records: Sequence[dict[str, Any]]
) -> Parity:
    """Score ``records`` with the exported graph (onnxruntime) and with the service's scorer; compare."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a few rows: more threads only spin
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    probability, label, _ = session.run(list(OUTPUTS), onnx_feeds(embedded_inputs(model, spec), list(records)))
    served = Scorer(spec, model, model_tag, log=None).score(list(records), log=False)
    expected = np.array([r[PROBABILITY] for r in served], dtype=np.float64)
    labels = np.array([r[LABEL] for r in served], dtype=np.int64)
    return compare(probability, label, expected, labels, float(model.threshold))


def compare(
    probability: np.ndarray, label: np.ndarray, expected: np.ndarray, labels: np.ndarray, threshold: float
) -> Parity:
    """The exported graph's probabilities and labels against the service's. A row whose probability is within the
    tolerance of the threshold may fall either side of it in float arithmetic: the threshold is chosen among
    validation scores, so a fixed row can sit exactly on it (Caravan: 1.7e-07 apart, one label flipped, and the
    demo failed). Such rows are counted apart, not as a difference."""
    probability, expected = np.asarray(probability, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    diff = float(np.max(np.abs(probability - expected))) if len(expected) else 0.0
    differ = np.asarray(label) != np.asarray(labels)
    on_edge = np.abs(expected - threshold) <= PARITY_TOLERANCE
    return Parity(len(expected), diff, int(np.sum(differ & ~on_edge)), int(np.sum(differ & on_edge)))


def build_embedded_model(spec: DatasetSpec) -> AssetsDefinition:
    """The ``embedded_model`` asset with its blocking check ``onnx_matches_service``."""

    @asset(
        name=EMBEDDED_MODEL,
        group_name="serving",
        deps=[TRAINING_SET_DEP],
        automation_condition=on_upstream_update(ignore=(*READ_NOT_REACTED, "approved_training_set")),
        code_version=code_version(spec, sys.modules[__name__], onnx_model),
        check_specs=[
            AssetCheckSpec(
                ONNX_MATCHES_SERVICE,
                asset=EMBEDDED_MODEL,
                blocking=True,
                description=f"The ONNX file's probabilities equal the service's on the deployment's fixed test rows, "
                f"an unseen-category row and a missing-values row (|diff| <= {PARITY_TOLERANCE:g}), labels equal.",
            )
        ],
        description="The champion with its preprocessing as one ONNX file (onnxruntime, no ml-assets needed), "
        "beside the store's models: the model an application embeds.",
    )
    def embedded_model(
        context: AssetExecutionContext,
        champion_model: ModelRef,
        approved_training_set: TrainingSetRef,
        model_store: ModelStore,
    ) -> Iterator[Output[EmbeddedModelRef] | AssetCheckResult]:
        tag = champion_model.tag
        model = load_stored(model_store, tag)
        try:
            proto = export_onnx(model, spec, tag)
        except ExportError as e:  # e.g. a booster trained with zero_as_missing: the Bento serves it (a warning)
            yield Output(EmbeddedModelRef(tag, "", 0, "", ()), metadata={"model_tag": tag, "not_exported": str(e)})
            yield AssetCheckResult(
                check_name=ONNX_MATCHES_SERVICE,
                passed=False,
                severity=AssetCheckSeverity.WARN,
                description=str(e)[:500],
            )
            return
        data = proto.SerializeToString()
        records, _ = validation_sample(spec, load_approved(context, approved_training_set, EMBEDDED_MODEL))
        parity = service_parity(data, model, spec, tag, parity_records(spec, records))
        path = model_store.write_export(tag, ONNX_FILE, data)
        digest = hashlib.sha256(data).hexdigest()
        inputs = tuple(i.name for i in embedded_inputs(model, spec))
        context.log.info(f"exported {tag} to {path} ({len(data) / 1e3:.1f} kB); max |diff| {parity.max_abs_diff:.2e}")
        yield Output(
            EmbeddedModelRef(tag, str(path), len(data), digest, inputs),
            data_version=DataVersion(f"{tag}|{digest[:16]}"),
            metadata={
                "model_tag": tag,
                "path": MetadataValue.path(str(path)),
                "size_kb": round(len(data) / 1e3, 1),
                "sha256": digest,
                "inputs": len(inputs),
                "outputs": ", ".join(OUTPUTS),
                "export_again": MetadataValue.md(f"`ml-assets export {tag} --format onnx -o model.onnx`"),
            },
        )
        yield AssetCheckResult(
            check_name=ONNX_MATCHES_SERVICE,
            passed=parity.passed,
            description=f"{parity.rows} rows: max |onnxruntime - service| = {parity.max_abs_diff:.2e} "
            f"(tolerance {PARITY_TOLERANCE:g}), {parity.labels_differ} labels differ"
            + (
                f" ({parity.labels_at_threshold} more on rows within the tolerance of the threshold, not counted)"
                if parity.labels_at_threshold
                else ""
            ),
            metadata={
                "max_abs_diff": parity.max_abs_diff,
                "rows": parity.rows,
                "labels_differ": parity.labels_differ,
                "labels_at_threshold": parity.labels_at_threshold,
                "tolerance": PARITY_TOLERANCE,
            },
        )

    return embedded_model
