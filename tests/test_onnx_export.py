"""The ONNX export: onnxruntime gives the service's predictions (``ml_assets.serving.scoring.Scorer``) on fixed rows.

Small networks trained a few steps in-process (no DeepSpeed), exported with their preprocessing, and scored on
the same JSON-like records by onnxruntime and by the service's scorer: MLP, transformer (each with quantile
scaling and a numeric embedding, the transforms the export has to rewrite or reproduce), the logistic baseline,
an ensemble, COMPAS (an integer-coded target) and Minneapolis stops (an integer-coded categorical feature). The
embedded_model asset materializes in-process; a plain Python process with onnxruntime and numpy only runs the
file (integration).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from dagster import AssetKey, DagsterInstance, DataVersion, FilesystemIOManager, Output, asset, materialize
from torch.nn import functional as F

from ml_assets.cli import main
from ml_assets.data.approval import TrainingSetRef
from ml_assets.data.window import TrainingWindow
from ml_assets.dataset import DatasetSpec, load_spec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.export.onnx_model import ExportError, embedded_inputs, export_onnx, onnx_feeds
from ml_assets.model.bundle import ModelRef, TabularModel
from ml_assets.model.calibration import Calibration
from ml_assets.model.network import NetworkConfig, build_network
from ml_assets.model.preprocessing import Preprocessing
from ml_assets.partitions import training_set_partitions
from ml_assets.serving.embedded import (
    EMBEDDED_MODEL,
    ONNX_MATCHES_SERVICE,
    UNSEEN_CATEGORY,
    build_embedded_model,
    compare,
    parity_records,
    service_parity,
)
from ml_assets.serving.schema import frame_records
from ml_assets.serving.scoring import Scorer
from resources.model_store import ModelLineage, ModelStore
from tests.serving_support import fit_logistic, save_model
from tests.test_network import one_thread  # noqa: F401  (autouse: one torch thread for tiny tensors)
from tests.windows import window_of

DATASETS = Path(__file__).resolve().parents[1] / "ml_assets" / "datasets"
TOLERANCE = 1e-5


def trained(spec: DatasetSpec, rows: pd.DataFrame, cfg: NetworkConfig) -> TabularModel:
    """A network fitted a few steps on the train split, so its probabilities spread away from 0.5."""
    torch.manual_seed(0)
    train = rows[(rows["split"] == "train") & rows["label"].notna()]  # Minneapolis stops: most rows unlabeled
    pre = Preprocessing.fit(spec, train)
    net = build_network(cfg, pre)
    num, cat = (torch.from_numpy(a) for a in pre.transform(train))
    y = torch.from_numpy(train["label"].to_numpy(dtype=np.float32))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(15):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(net(num, cat), y).backward()
        opt.step()
    return TabularModel(cfg.architecture, spec, pre, network_config=cfg, state_dict=net.state_dict())


def records_of(spec: DatasetSpec, rows: pd.DataFrame, n: int = 48) -> list[dict]:
    """Fixed test rows as the service receives them, a few values made missing."""
    test = rows[rows["split"] == "test"].head(n)
    records = frame_records(test[[c.name for c in spec.feature_columns]])
    for i, column in enumerate(spec.feature_columns):
        records[i % len(records)][column.name] = None
    return parity_records(spec, records)


def onnx_scores(model: TabularModel, spec: DatasetSpec, records: list[dict]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(export_onnx(model, spec, "test:1").SerializeToString())
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, onnx_feeds(embedded_inputs(model, spec), records)), strict=True))


def assert_matches_service(model: TabularModel, spec: DatasetSpec, records: list[dict]) -> None:
    got = onnx_scores(model, spec, records)
    served = Scorer(spec, model, "test:1", log=None).score(records, log=False)
    expected = np.array([r["probability"] for r in served])
    assert np.abs(got["probability"] - expected).max() <= TOLERANCE
    assert np.ptp(expected) > 100 * TOLERANCE, "a model that answers one value everywhere would prove nothing"
    assert got["label"].tolist() == [r["label"] for r in served]
    assert got["label_name"].tolist() == [r["label_name"] for r in served]


@pytest.fixture(scope="module")
def adult_rows(adult_spec: DatasetSpec) -> pd.DataFrame:
    return demo_training_set(adult_spec, 600)


NETWORKS = {
    "mlp": NetworkConfig(architecture="mlp", hidden=[16], dropout=0.0),
    "mlp-quantile-ple": NetworkConfig(
        architecture="mlp", hidden=[16], dropout=0.0, numeric_scaling="quantile", numeric_embedding="ple"
    ),
    "transformer": NetworkConfig(architecture="transformer", d_token=8, n_heads=2, n_layers=1, dropout=0.0),
    "transformer-quantile-periodic": NetworkConfig(
        architecture="transformer",
        d_token=8,
        n_heads=2,
        n_layers=1,
        dropout=0.0,
        numeric_scaling="quantile",
        numeric_embedding="periodic",
    ),
}


@pytest.mark.parametrize("name", ["mlp", "mlp-quantile-ple", "transformer-quantile-periodic"])  # plain: below
def test_onnxruntime_gives_the_service_predictions(name: str, adult_spec: DatasetSpec, adult_rows) -> None:
    model = trained(adult_spec, adult_rows, NETWORKS[name])
    assert_matches_service(model, adult_spec, records_of(adult_spec, adult_rows))


def test_logistic_and_ensemble_export_too(adult_spec: DatasetSpec, adult_rows) -> None:
    assert_matches_service(fit_logistic(adult_spec, adult_rows), adult_spec, records_of(adult_spec, adult_rows))
    members = [NETWORKS["mlp"], NETWORKS["transformer"]]
    ensemble = trained(adult_spec, adult_rows, NetworkConfig(architecture="ensemble", members=members))
    assert_matches_service(ensemble, adult_spec, records_of(adult_spec, adult_rows, 16))


def test_a_calibrated_model_exports_its_calibration(adult_spec: DatasetSpec, adult_rows) -> None:
    """The candidate's Platt scaling is part of the file: probability and label as the service gives them."""
    model = trained(adult_spec, adult_rows, NETWORKS["mlp"])
    records = records_of(adult_spec, adult_rows)
    raw = onnx_scores(model, adult_spec, records)["probability"]
    model.calibration = Calibration(slope=0.4, intercept=-0.7)
    model.threshold = float(np.median(model.calibration.apply(raw)))  # a threshold that splits these rows
    assert_matches_service(model, adult_spec, records)
    assert np.abs(onnx_scores(model, adult_spec, records)["probability"] - raw).max() > 0.05


def test_an_unknown_category_gets_the_service_answer(adult_spec: DatasetSpec, adult_rows) -> None:
    """An unseen value is scored as 'unknown', not as missing nor as a known category: as the service does."""
    model = trained(adult_spec, adult_rows, NETWORKS["mlp"])
    test = adult_rows[adult_rows["split"] == "test"]
    [base] = frame_records(test.head(1)[[c.name for c in adult_spec.feature_columns]])
    assert base["workclass"] == "Private"
    unknown = {**base, "workclass": "Astronaut"}
    missing = {**base, "workclass": None}
    got = onnx_scores(model, adult_spec, [base, unknown, missing])["probability"]
    served = [r["probability"] for r in Scorer(adult_spec, model, "t:1", None).score([base, unknown, missing])]
    assert np.abs(got - served).max() <= TOLERANCE
    assert len({round(float(p), 6) for p in got}) == 3, "known, unknown and missing are three different inputs"


@pytest.mark.parametrize("dataset", ["compas", "mpls_stops"])
def test_integer_coded_categories(dataset: str) -> None:
    """COMPAS: the target's categories are integer codes (labels '0'/'1'); Minneapolis stops: policePrecinct, a
    feature whose categories land as integers, enters as the code's digits, as the spec and the service hold it."""
    spec = load_spec(DATASETS / f"{dataset}.yaml")
    rows = demo_training_set(spec, 600, seed=0, window_end=date(2026, 1, 10))
    model = trained(spec, rows, NETWORKS["transformer"])
    records = records_of(spec, rows)
    assert_matches_service(model, spec, records)
    coded = [c.name for c in spec.feature_columns if c.integer_coded]
    assert coded == (["policePrecinct"] if dataset == "mpls_stops" else [])
    inputs = {i.name: i for i in embedded_inputs(model, spec)}
    assert all(inputs[name].categorical for name in coded)
    labels = set(onnx_scores(model, spec, records)["label_name"].tolist())
    assert labels <= set(spec.target.categories or [])


def test_gradient_boosted_trees_split_as_lightgbm_does() -> None:
    """A gbdt on Minneapolis stops: coordinates with thresholds a float32 comparison would send the other way, an
    integer-coded category, unseen and missing values."""
    from ml_assets.model.trees import fit_trees

    spec = load_spec(DATASETS / "mpls_stops.yaml")
    rows = demo_training_set(spec, 1500, seed=0, window_end=date(2026, 1, 10))
    labeled = rows[rows["label"].notna()]
    train, validation = labeled[labeled["split"] == "train"], labeled[labeled["split"] == "validation"]
    gbdt = TabularModel("gbdt", spec, Preprocessing.fit(spec, train), trees=fit_trees(spec, train, validation))
    assert_matches_service(gbdt, spec, records_of(spec, rows, 400))


def test_a_model_of_another_dataset_is_refused_naming_both_feature_lists(adult_spec, adult_rows) -> None:
    model = fit_logistic(adult_spec, adult_rows)
    with pytest.raises(ExportError, match=r"spec 'compas' has features .* but the model was trained on"):
        export_onnx(model, load_spec(DATASETS / "compas.yaml"))


# ---- the CLI and the asset ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stored(tmp_path_factory, adult_spec: DatasetSpec, adult_rows) -> tuple[Path, str, TabularModel]:
    """An MLP in a model store: (BENTOML_HOME, tag, model)."""
    home = tmp_path_factory.mktemp("store")
    model = trained(adult_spec, adult_rows, NETWORKS["mlp"])
    return home, save_model(model, home, "adult-candidate"), model


def test_cli_exports_a_stored_model_and_refuses_an_unknown_tag(ml_home: Path, stored, adult_spec, adult_rows, capsys):
    _, _, model = stored
    ModelStore(home=str(ml_home / "bentoml")).save(model, "adult-candidate", ModelLineage())
    out = ml_home / "out" / "model.onnx"
    assert main(["export", "adult-candidate:latest", "--format", "onnx", "-o", str(out)]) == 0
    assert "outputs probability, label, label_name" in capsys.readouterr().out
    records = records_of(adult_spec, adult_rows, 8)
    session = ort.InferenceSession(out.read_bytes())
    got = session.run(["probability"], onnx_feeds(embedded_inputs(model, adult_spec), records))[0]
    assert np.abs(got - model.predict_proba(pd.DataFrame(records))).max() <= TOLERANCE

    assert main(["export", "adult-candidate:nosuchversion", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ml-assets export: error: model 'adult-candidate:nosuchversion'")
    assert main(["export", "champion", "-o", str(out)]) == 2
    assert "there is no champion yet" in capsys.readouterr().err


def test_embedded_model_asset_writes_the_file_and_checks_it(tmp_path: Path, stored, adult_spec, adult_rows):
    """In-process: stand-ins for the training window and the champion; the real asset, its check and the store."""
    bentoml_home, tag, _ = stored
    partitions = training_set_partitions(adult_spec)
    key = partitions.get_last_partition_key()

    @asset(name="training_set", partitions_def=partitions)
    def training_set() -> Output[TrainingWindow]:
        return Output(window_of(adult_spec, adult_rows, tmp_path / "tables"), data_version=DataVersion("v1"))

    @asset(name="approved_training_set")
    def approved_training_set() -> TrainingSetRef:
        return TrainingSetRef(key, "v1", len(adult_rows), key, ())

    @asset(name="champion_model")
    def champion_model() -> ModelRef:
        return ModelRef(tag=tag, name="adult-candidate", kind="mlp", metrics={}, training_set_version="v1")

    instance = DagsterInstance.ephemeral()
    resources = {
        "io_manager": FilesystemIOManager(base_dir=str(tmp_path / "storage")),
        "model_store": ModelStore(home=str(bentoml_home)),
    }
    assert materialize([training_set], partition_key=key, resources=resources, instance=instance).success
    result = materialize(
        [training_set, approved_training_set, champion_model, build_embedded_model(adult_spec)],
        selection=["approved_training_set", "champion_model", EMBEDDED_MODEL],
        resources=resources,
        instance=instance,
    )
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == ONNX_MATCHES_SERVICE and check.passed
    assert check.metadata["max_abs_diff"].value <= TOLERANCE
    assert check.metadata["rows"].value == 64 + 2  # the deployment's fixed sample, an unseen and a missing row
    ref = result.output_for_node(EMBEDDED_MODEL)
    assert Path(ref.path).is_file() and Path(ref.path).parent.parent.parent.name == "exports"
    mat = instance.get_latest_materialization_event(AssetKey(EMBEDDED_MODEL)).asset_materialization
    assert mat.metadata["model_tag"].value == tag


def test_parity_fails_when_the_file_is_not_the_served_model(stored, adult_spec, adult_rows) -> None:
    """The check can fail: another model's file against this model's service."""
    _, tag, model = stored
    other = trained(adult_spec, adult_rows, NETWORKS["transformer"])
    records = records_of(adult_spec, adult_rows, 16)
    parity = service_parity(export_onnx(other, adult_spec).SerializeToString(), model, adult_spec, tag, records)
    assert not parity.passed and parity.max_abs_diff > TOLERANCE
    assert records[-2]["workclass"] == UNSEEN_CATEGORY and records[-1]["age"] is None


def test_a_label_flipped_on_a_row_at_the_threshold_is_no_difference() -> None:
    """Caravan: a fixed row sat on the threshold (chosen among validation scores) and 1.7e-07 of float arithmetic
    flipped its label, failing the demo. Flips within the tolerance of the threshold are counted apart; a flip
    farther away, or a probability beyond the tolerance, still fails."""
    expected = np.array([0.1724983773254095, 0.4, 0.9])
    served = np.array([1, 0, 1])
    edge = compare(expected - 1.7e-7, np.array([0, 0, 1]), expected, served, threshold=0.1724983773254095)
    assert edge.passed and edge.labels_differ == 0 and edge.labels_at_threshold == 1
    far = compare(expected, np.array([1, 1, 1]), expected, served, threshold=0.1724983773254095)
    assert not far.passed and far.labels_differ == 1
    off = compare(expected + np.array([0, 1e-3, 0]), served, expected, served, threshold=0.5)
    assert not off.passed and off.max_abs_diff == pytest.approx(1e-3)


PLAIN_PYTHON = """
import json, sys
import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1])
records = json.loads(sys.argv[2])
feeds = {}
for i in session.get_inputs():
    values = [r[i.name] for r in records]
    if i.type == "tensor(string)":
        feeds[i.name] = np.array(["" if v is None else str(v) for v in values], dtype=object).reshape(-1, 1)
    else:
        feeds[i.name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1, 1)
probability, label, label_name = session.run(["probability", "label", "label_name"], feeds)
print(json.dumps({"probability": probability.tolist(), "modules": sorted(m for m in sys.modules if m.startswith(
    ("ml_assets", "dagster", "bentoml", "torch", "bento")))}))
"""


@pytest.mark.integration
def test_a_plain_python_process_runs_the_file(tmp_path: Path, stored, adult_spec, adult_rows) -> None:
    _, tag, model = stored
    path = tmp_path / "model.onnx"
    path.write_bytes(export_onnx(model, adult_spec, tag).SerializeToString())
    records = records_of(adult_spec, adult_rows, 16)
    done = subprocess.run(
        [sys.executable, "-I", "-c", PLAIN_PYTHON, str(path), json.dumps(records)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["modules"] == []
    served = [r["probability"] for r in Scorer(adult_spec, model, tag, None).score(records, log=False)]
    assert np.abs(np.array(answer["probability"]) - served).max() <= TOLERANCE
