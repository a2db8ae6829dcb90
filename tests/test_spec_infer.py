"""``ml-assets spec infer``: a spec proposed from a real CSV loads, replays and catches what the issue found."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml_assets.cli import main
from ml_assets.data.features import featurize
from ml_assets.data.splits import split_by_time
from ml_assets.data.training_checks import validate_training_set
from ml_assets.dataset import load_spec, read_demo_data
from ml_assets.datasets.simulator import replay
from ml_assets.datasets.spec_infer import InferenceError, infer_spec, render, spec_reference
from ml_assets.settings import PACKAGE_DIR

COMPAS = PACKAGE_DIR / "datasets" / "compas.csv.gz"
MPLS = PACKAGE_DIR / "datasets" / "mpls_stops.csv.gz"


def infer_to(tmp_path: Path, data: Path, *args: str) -> Path:
    out = tmp_path / "spec.yaml"
    assert main(["spec", "infer", str(data), *args, "-o", str(out)]) == 0
    return out


def test_compas_spec_from_the_raw_file(tmp_path: Path) -> None:
    out = infer_to(
        tmp_path,
        COMPAS,
        *("--target", "two_year_recid", "--positive", "1", "--time", "compas_screening_date"),
        *("--sensitive", "race,sex,age"),
    )
    spec = load_spec(out)
    assert spec.demo_data and (out.parent / spec.demo_data).resolve() == COMPAS.resolve()  # relative to the spec
    assert spec.id.name == "id" and spec.time.name == "compas_screening_date"
    assert spec.target.integer_coded and spec.positive_label == "1" and not spec.target.nullable
    assert spec.sensitive_columns == ["sex", "race"]
    assert "age" in spec.numeric_features and spec.fairness_columns == ["sex", "race", "age_band"]
    band = spec.bands[0]
    assert band.sensitive and band.edges[0] < 18 and band.edges[-1] > 96  # every observed age in a band
    age = spec.column("age")
    assert age.range.min <= 18 and age.range.max >= 96  # the observed span with headroom
    assert spec.column("days_b_screening_arrest").nullable
    assert spec.column("c_charge_degree").categories == ["F", "M"]
    lo, hi = spec.training.class_balance
    assert lo < 0.451 < hi
    text = out.read_text()
    assert "# compas_screening_date: 2013-01-01 .. 2014-12-31" in text  # what was observed, as comments
    assert "# unexpected_columns: a landed column the spec does not name" in text  # each field's meaning
    assert "categories: [0, 1]" in text and "positive_label: 1\n" in text  # integer codes in landed form


def test_the_raw_outcome_column_is_caught_by_label_purity(tmp_path: Path) -> None:
    """is_recid (re-offended at all) fixes two_year_recid = 0 wherever it is 0: the spec takes it as a numeric
    feature, and the training set's leakage check names it, with the share and the value."""
    spec = load_spec(infer_to(tmp_path, COMPAS, "--target", "two_year_recid", "--positive", "1"))
    assert "is_recid" in spec.numeric_features
    files = replay(spec, tmp_path / "landing", date(2026, 1, 1), date(2026, 1, 10))
    typed, _ = spec.coerce(pd.concat([pd.read_parquet(f.path) for f in files], ignore_index=True))
    window = split_by_time(spec, featurize(spec, typed), date(2026, 1, 10))
    leak = {r.check_name: r for r in validate_training_set(spec, window)}["single_feature_leakage"]
    assert not leak.passed
    assert "'is_recid': values that fix the label cover" in leak.description and "largest 0 (" in leak.description
    assert "'is_recid' alone scores ROC AUC 0.97" in leak.description  # over the new AUC default (0.95) too
    old_limit = spec.model_copy(update={"training": spec.training.model_copy(update={"leakage_auc": 0.98})})
    leak = {r.check_name: r for r in validate_training_set(old_limit, window)}["single_feature_leakage"]
    assert not leak.passed and "alone scores ROC AUC" not in leak.description  # the old limit: purity alone


def test_mpls_spec_with_string_ids_integer_codes_and_unlabeled_rows(tmp_path: Path) -> None:
    out = infer_to(
        tmp_path,
        MPLS,
        *("--target", "personSearch", "--positive", "YES", "--id", "idNum", "--time", "date"),
        *("--sensitive", "race,gender", "--categorical", "policePrecinct", "--ignore", "citationIssued"),
    )
    spec = load_spec(out)
    assert spec.id.dtype == "string" and spec.column("policePrecinct").integer_coded
    assert spec.target.nullable and 0 < spec.target.mostly < 0.842  # coverage 84.2% with headroom
    assert "citationIssued" not in spec.column_names
    assert "#   citationIssued: named in --ignore\n" in out.read_text()  # every left-out column with its reason


def test_gzip_csv_and_parquet_read_the_same(tmp_path: Path) -> None:
    frame = read_demo_data(load_spec(PACKAGE_DIR / "datasets" / "compas.yaml")).head(300)
    plain = tmp_path / "c.csv"
    with gzip.open(COMPAS, "rt") as f:
        plain.write_text("".join(f.readlines()[:301]))
    frame.to_parquet(tmp_path / "c.parquet")
    specs = [
        infer_spec(p, target="two_year_recid", positive="1", out=tmp_path / "s.yaml").spec
        for p in (plain, tmp_path / "c.parquet")
    ]
    for spec in specs:
        spec.pop("demo_data"), spec.pop("description"), spec.pop("source"), spec.pop("name")
    assert specs[0] == specs[1]


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"target": "nope"}, "--target: ['nope'] not among the columns"),
        ({"target": "age"}, "--target: 'age' has 65 labels"),
        ({"target": "two_year_recid", "positive": "yes"}, "--positive: 'yes' is not one of"),
        ({"target": "two_year_recid", "time": "sex"}, "--time: 'sex' does not parse as timestamps"),
        ({"target": "two_year_recid", "ident": "sex"}, "--id: 'sex' has nulls or repeated values"),
        ({"target": "two_year_recid", "ignore": ["two_year_recid"]}, "--ignore: ['two_year_recid'] also named"),
    ],
)
def test_bad_options_are_refused_naming_the_option(kw: dict, says: str) -> None:
    with pytest.raises(InferenceError) as err:
        infer_spec(COMPAS, **kw)
    assert says in str(err.value)


def test_cli_errors_exit_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["spec", "infer", str(tmp_path / "missing.csv"), "--target", "y"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("{}")
    assert main(["spec", "infer", str(tmp_path / "x.json"), "--target", "y"]) == 2
    assert "not a CSV, gzipped CSV or Parquet file" in capsys.readouterr().err


def test_printed_spec_is_the_same_yaml(capsys: pytest.CaptureFixture) -> None:
    assert main(["spec", "infer", str(COMPAS), "--target", "two_year_recid", "--positive", "1"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    inferred = infer_spec(COMPAS, target="two_year_recid", positive="1")
    assert printed == yaml.safe_load(render(inferred))
    assert Path(printed["demo_data"]).is_absolute()  # printed: no spec folder to be relative to


def test_shipped_reference_is_current() -> None:
    """SPEC_REFERENCE.md is generated (``ml-assets spec reference``): every field, type, default and meaning."""
    shipped = (PACKAGE_DIR / "datasets" / "SPEC_REFERENCE.md").read_text()
    assert shipped == spec_reference()
    for field in ("landed", "labels", "unexpected_columns", "min_ratio", "leakage_purity", "trials", "sensitive"):
        assert f"| {field} |" in shipped


def test_shipped_specs_load_and_their_window_fits_the_data() -> None:
    for name in ("compas", "mpls_stops"):
        spec = load_spec(PACKAGE_DIR / "datasets" / f"{name}.yaml")
        rows = len(read_demo_data(spec))
        per_day = rows / (spec.training.window_days + 2)
        assert per_day * spec.training.test_days >= 1000, (name, per_day)  # enough test rows to judge
        assert spec.training.window_days - spec.training.validation_days - spec.training.test_days >= 4
