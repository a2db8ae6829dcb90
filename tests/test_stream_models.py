"""The model steps read a training window in bounded memory (issue 25): the baseline fits on a stated, seeded sample
and scores validation batch by batch; evaluation scores the test split batch by batch to the same figures as on
the whole frame; the other readers take bounded samples that are every row on a small window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import Failure, MetadataValue, deserialize_value, serialize_value

from ml_assets.data.splits import SPLIT
from ml_assets.data.window import TrainingWindow, store_window
from ml_assets.dataset import DatasetSpec
from ml_assets.model.assets import BaselineConfig, baseline_on_window, decide, fit_baseline
from ml_assets.model.evaluation import score_model
from ml_assets.model.evaluation_asset import evaluation_rows, judgeable
from ml_assets.model.metrics import validation_scores
from ml_assets.model.window_reads import labeled_sample, lowest_ids, sampled_frame, score_split
from ml_assets.serving.assets import validation_sample
from resources.parquet_tables import ParquetTables
from tests.test_evaluation import adult_training_set

ROWS = 6000


@pytest.fixture(scope="module")
def frame(adult_spec: DatasetSpec) -> pd.DataFrame:
    return adult_training_set(adult_spec, rows=ROWS, seed=11)


@pytest.fixture(scope="module")
def window(adult_spec: DatasetSpec, frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> TrainingWindow:
    """The frame stored as the features rows of its window, the way training_set hands windows on."""
    return store_window(adult_spec, frame, ParquetTables(root=str(tmp_path_factory.mktemp("tables"))))


def test_the_baseline_on_a_small_window_fits_every_row_as_the_frame_fit(
    adult_spec: DatasetSpec, frame: pd.DataFrame, window: TrainingWindow
) -> None:
    cfg = BaselineConfig(max_iter=500)
    fit = baseline_on_window(adult_spec, window, cfg)
    whole = fit_baseline(adult_spec, frame.sort_values(adult_spec.id.name, kind="stable"), cfg)
    val = adult_spec.labeled(frame[frame[SPLIT] == "validation"])
    decide(adult_spec, whole, val, "test")
    train_rows = len(adult_spec.labeled(frame[frame[SPLIT] == "train"]))
    assert fit.sample_rows == fit.train_rows == train_rows  # a bound above the rows is every row
    assert fit.validation_rows == len(val)
    assert fit.model.logistic.coef == pytest.approx(whole.logistic.coef, abs=1e-9)
    assert fit.model.threshold == pytest.approx(whole.threshold)
    y = val[adult_spec.label_column].to_numpy(dtype=np.int64)
    assert fit.scores == pytest.approx(validation_scores(y, whole.predict_proba(val), whole.threshold))


def test_the_baseline_on_a_window_larger_than_its_bound_fits_a_sample_close_to_the_full_fit(
    adult_spec: DatasetSpec, frame: pd.DataFrame, window: TrainingWindow
) -> None:
    cfg = BaselineConfig(max_iter=500)
    full = baseline_on_window(adult_spec, window, cfg)
    bound = full.train_rows // 2
    sampled = baseline_on_window(adult_spec, window, cfg, sample_rows=bound)
    assert sampled.sample_rows == bound < sampled.train_rows == full.train_rows
    assert sampled.validation_rows == full.validation_rows  # judged on every validation row all the same
    assert sampled.model.logistic.coef != full.model.logistic.coef
    assert abs(sampled.scores["roc_auc"] - full.scores["roc_auc"]) < 0.01
    again = baseline_on_window(adult_spec, window, cfg, sample_rows=bound)
    assert again.model.logistic.coef == sampled.model.logistic.coef  # seeded: the same sample each time


def test_evaluation_scored_in_batches_gives_the_whole_frames_figures(
    adult_spec: DatasetSpec, frame: pd.DataFrame, window: TrainingWindow
) -> None:
    model = fit_baseline(adult_spec, frame, BaselineConfig(max_iter=300))
    decide(adult_spec, model, adult_spec.labeled(frame[frame[SPLIT] == "validation"]), "test")
    test = evaluation_rows(adult_spec, window.frame())
    whole = score_model(model, "m", adult_spec, test, min_group_size=50, explain_above=0.5)
    keep = [*adult_spec.slice_columns, *adult_spec.fairness_columns]
    scored = score_split(adult_spec, window.split("test"), {"m": model}, keep=keep, batch_rows=97)
    assert scored.rows == len(test)
    batched = score_model(
        model,
        "m",
        adult_spec,
        scored.frame(adult_spec.label_column),
        min_group_size=50,
        probabilities=scored.probabilities["m"],
        explain_above=0.5,
        sample=labeled_sample(window, "test", len(test)),
    )
    assert batched.metrics == pytest.approx(whole.metrics, rel=1e-12, abs=1e-12)
    assert [(s.name, s.size, s.positives) for s in batched.slices] == [
        (s.name, s.size, s.positives) for s in whole.slices
    ]
    for b, w in zip(batched.slices, whole.slices, strict=True):
        assert b.metrics == pytest.approx(w.metrics, nan_ok=True)
    assert batched.fairness == whole.fairness
    assert batched.stability == whole.stability
    assert batched.carriers == whole.carriers


def test_bounded_readers_are_every_row_of_a_small_window(adult_spec: DatasetSpec, window: TrainingWindow) -> None:
    whole = window.frame()
    assert sampled_frame(window, ROWS).equals(whole)
    small = sampled_frame(window, 100)
    assert small[SPLIT].value_counts().to_dict() == {"train": 100, "validation": 100, "test": 100}
    records, rows = validation_sample(adult_spec, window, n=16)
    expected_records, expected = validation_sample(adult_spec, whole, n=16)
    assert records == expected_records
    assert rows[adult_spec.id.name].tolist() == expected[adult_spec.id.name].tolist()
    lowest = lowest_ids(adult_spec, window.split("test"), 5, batch_rows=50)
    assert lowest[adult_spec.id.name].is_monotonic_increasing and len(lowest) == 5


def test_a_test_split_of_one_class_is_refused_as_before(adult_spec: DatasetSpec, tmp_path: Path) -> None:
    frame = adult_training_set(adult_spec, rows=600, seed=2)
    frame.loc[frame[SPLIT] == "test", adult_spec.label_column] = 0
    window = store_window(adult_spec, frame, ParquetTables(root=str(tmp_path)))
    scored = score_split(adult_spec, window.split("test"), {})
    assert scored.rows == int((frame[SPLIT] == "test").sum())
    with pytest.raises(Failure, match=r"only label\(s\) \[0\]"):
        judgeable(scored.y)
    with pytest.raises(Failure, match="no labeled rows in its test split"):
        judgeable(scored.y[:0])


def test_the_validation_halves_split_its_labeled_rows_at_the_middle_of_its_span(
    adult_spec: DatasetSpec, frame: pd.DataFrame, window: TrainingWindow
) -> None:
    """The search selects on the first half, the families are compared on the second: no row is in both, none is
    lost, and each half is the rows of its side of the middle."""
    cols = [adult_spec.id.name, adult_spec.time.name]
    selection = window.validation_half("selection").sample(ROWS, 0, cols)
    comparison = window.validation_half("comparison").sample(ROWS, 0, cols)
    val = adult_spec.labeled(frame[frame[SPLIT] == "validation"])
    assert len(selection) + len(comparison) == len(val) and len(selection) > 0 and len(comparison) > 0
    assert not set(selection[adult_spec.id.name]) & set(comparison[adult_spec.id.name])
    middle = window.validation_from + (window.test_from - window.validation_from) / 2
    assert (selection[adult_spec.time.name] < middle).all() and (comparison[adult_spec.time.name] >= middle).all()


def test_a_window_round_trips_through_the_metadata_its_materialization_keeps(window: TrainingWindow) -> None:
    """training_set keeps its window in its metadata (``WINDOW_RECORD``), where the models read it back, through
    Dagster's own serialization: column order included (JSON metadata would come back with its keys sorted)."""
    stored = deserialize_value(serialize_value(MetadataValue.text(window.model_dump_json())))
    again = TrainingWindow.model_validate_json(stored.value)
    assert again == window and list(again.rows.dtypes) == list(window.rows.dtypes)
    assert list(window.rows.dtypes) != sorted(window.rows.dtypes)  # an order that sorting would have changed


def test_validation_rows_that_cannot_be_halved_are_used_whole_for_both(
    adult_spec: DatasetSpec, frame: pd.DataFrame, window: TrainingWindow, tmp_path: Path
) -> None:
    """Halved when each half holds both labels; a span whose rows all carry one time (a date without a clock, on
    a one-day span) cannot be, and both the search and the comparison then use every validation row."""
    halves = window.validation_rows()
    assert halves.how.startswith("the second half of the validation span")
    assert halves.selection != halves.comparison
    times = pd.to_datetime(frame[adult_spec.time.name])
    validation = (frame[SPLIT] == "validation").to_numpy()
    dated = frame.assign(**{adult_spec.time.name: times.where(~validation, times[validation].min().normalize())})
    whole = store_window(adult_spec, dated, ParquetTables(root=str(tmp_path))).validation_rows()
    assert whole.how.startswith("every validation row") and whole.selection == whole.comparison


def test_the_comparison_half_taken_from_the_scored_validation_rows_is_the_comparison_scan(
    adult_spec: DatasetSpec, window: TrainingWindow
) -> None:
    """candidate_model scores the validation rows once and takes the second half from them (rows at or after the
    middle): the same rows, labels and probabilities as reading and scoring the comparison half on its own."""
    model = baseline_on_window(adult_spec, window, BaselineConfig()).model
    halves = window.validation_rows()
    time = adult_spec.time.name
    val = score_split(adult_spec, window.labeled("validation"), {"m": model}, keep=[time])
    taken = val.where((val.kept[time] >= halves.middle).to_numpy())
    read = score_split(adult_spec, halves.comparison, {"m": model})
    assert taken.rows == read.rows > 0 and (taken.y == read.y).all()
    assert np.array_equal(taken.probabilities["m"], read.probabilities["m"])
