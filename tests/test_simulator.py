"""The landing simulator: layout, determinism, round trips, drift and each corruption kind, and its CLI."""

from __future__ import annotations

import argparse
import os
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_assets.dataset import DatasetSpec, demo_data_path, load_spec
from ml_assets.datasets.simulate_cli import add_simulate_parser
from ml_assets.datasets.simulator import (
    CORRUPTION_KINDS,
    Corruption,
    DriftConfig,
    SimulationError,
    replay,
    simulate,
)

D1 = date(2026, 11, 1)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _read_all(paths: list[Path]) -> pd.DataFrame:
    return pd.concat([_read(p) for p in paths], ignore_index=True)


# ---- layout and determinism ------------------------------------------------------------------------------
def test_default_replay_spreads_every_demo_row_over_the_days(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    files = simulate(adult_spec, tmp_path, D1, D3, files_per_day=2)
    expected = [tmp_path / d.isoformat() / f"adult-{i:02d}.parquet" for d in (D1, D2, D3) for i in range(2)]
    assert files == expected
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        p.relative_to(tmp_path) for p in expected
    ), "nothing else (no temporary file) is left behind"
    per_day = [sum(len(_read(p)) for p in files[i : i + 2]) for i in (0, 2, 4)]
    demo_rows = len(pd.read_parquet(demo_data_path(adult_spec)))
    assert sum(per_day) == demo_rows and max(per_day) - min(per_day) <= 1
    frame = _read_all(files)
    assert frame["record_id"].is_unique
    for day in (D1, D2, D3):
        first, second = (_read(tmp_path / day.isoformat() / f"adult-{i:02d}.parquet") for i in range(2))
        times = pd.concat([first, second])["event_time"]
        assert (times.dt.tz_convert("UTC").dt.date == day).all(), "event times stay inside their UTC day"
        assert times.dt.hour.nunique() == 24, "and are spread over the whole day"
        assert first["event_time"].max() <= second["event_time"].min(), "files split the day in time order"


def test_same_seed_same_files_other_seed_other_rows(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    a = simulate(adult_spec, tmp_path / "a", D1, D2, rows_per_day=300, seed=3)
    b = simulate(adult_spec, tmp_path / "b", D1, D2, rows_per_day=300, seed=3)
    c = simulate(adult_spec, tmp_path / "c", D1, D2, rows_per_day=300, seed=4)
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()
    assert set(_read_all(a)["record_id"]) != set(_read_all(c)["record_id"])


def test_rows_beyond_the_source_are_resampled_with_fresh_unique_ids(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    source = pd.read_parquet(demo_data_path(adult_spec)).head(200)
    files = simulate(adult_spec, tmp_path, D1, D3, source=source, rows_per_day=150, files_per_day=3)
    frame = _read_all(files)
    assert len(frame) == 450 and len(files) == 9
    assert frame["record_id"].is_unique
    assert (frame["record_id"] > source["record_id"].max()).sum() == 250
    assert set(frame["education"]) <= set(source["education"])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_clean_files_round_trip_through_the_spec(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    files = simulate(adult_spec, tmp_path, D1, D2, rows_per_day=2000, files_per_day=2, fmt=fmt, seed=5)
    assert all(p.suffix == f".{fmt}" for p in files)
    frame = _read_all(files)
    assert list(frame.columns) == adult_spec.column_names
    typed, failures = adult_spec.coerce(frame)
    assert failures == {}
    assert typed["event_time"].dt.normalize().isin([pd.Timestamp(D1), pd.Timestamp(D2)]).all()
    required = [c.name for c in adult_spec.columns if not c.nullable]
    assert typed[required].notna().all().all()
    for c in adult_spec.columns:
        if c.categories:
            assert typed[c.name].dropna().isin(c.categories).all(), c.name


def test_csv_and_parquet_carry_the_same_rows(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    typed = {
        fmt: adult_spec.coerce(_read_all(simulate(adult_spec, tmp_path / fmt, D1, D1, rows_per_day=500, fmt=fmt)))[0]
        for fmt in ("csv", "parquet")
    }
    pd.testing.assert_frame_equal(typed["csv"], typed["parquet"])


def test_files_are_renamed_into_place_from_a_hidden_temporary(
    tmp_path: Path, adult_spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Path, Path, int]] = []
    real_replace = os.replace

    def watching_replace(src: str | Path, dst: str | Path) -> None:
        src, dst = Path(src), Path(dst)
        seen.append((src, dst, len(pd.read_parquet(src))))  # complete before it becomes visible
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    files = simulate(adult_spec, tmp_path, D1, D1, rows_per_day=100, files_per_day=2)
    assert [dst for _, dst, _ in seen] == files
    for src, dst, rows in seen:
        assert src.parent == dst.parent and src.name.startswith(".") and src.suffix == ".tmp"
        assert rows == 50


def test_bad_requests_are_refused_with_the_reason(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    with pytest.raises(SimulationError, match="before start"):
        simulate(adult_spec, tmp_path, D2, D1)
    with pytest.raises(SimulationError, match="files_per_day"):
        simulate(adult_spec, tmp_path, D1, D1, files_per_day=0)
    with pytest.raises(SimulationError, match=r"outside the replay"):
        simulate(adult_spec, tmp_path, D1, D1, corruptions=[Corruption("empty_file", D3)])
    with pytest.raises(SimulationError, match=r"lack spec columns.*'age'"):
        simulate(adult_spec, tmp_path, D1, D1, source=pd.DataFrame({"income": [">50K"]}))
    assert not any(tmp_path.iterdir()), "nothing written for a refused request"


# ---- corruptions -----------------------------------------------------------------------------------------
def _corrupted(tmp_path: Path, spec: DatasetSpec, kind: str, fmt: str, column: str | None = None):
    """Two days of 500 rows in two files; the corruption hits the second day."""
    files = replay(
        spec,
        tmp_path,
        D1,
        D2,
        rows_per_day=500,
        files_per_day=2,
        fmt=fmt,  # type: ignore[arg-type]
        seed=11,
        corruptions=[Corruption(kind, D2, column=column, fraction=0.2)],  # type: ignore[arg-type]
    )
    clean = [f.path for f in files if f.day == D1]
    assert _failures(spec, _read_all(clean)) == {}, "the other day is untouched"
    return [f for f in files if f.day == D2]


def _failures(spec: DatasetSpec, frame: pd.DataFrame) -> dict[str, int]:
    return spec.coerce(frame)[1]


FORMATS = pytest.mark.parametrize("fmt", ["parquet", "csv"])


@FORMATS
def test_missing_column(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    day = _corrupted(tmp_path, adult_spec, "missing_column", fmt, column="occupation")
    for f in day:
        frame = _read(f.path)
        assert "occupation" not in frame.columns and len(frame) == 250
        assert f.corruptions == ("missing_column(occupation)",)


@FORMATS
def test_wrong_type_lands_a_numeric_column_as_text(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    frame = _read_all([f.path for f in _corrupted(tmp_path, adult_spec, "wrong_type", fmt)])  # default: age
    assert not pd.api.types.is_numeric_dtype(frame["age"])
    assert frame["age"].astype(str).str.startswith("n/a-").sum() == 100
    assert _failures(adult_spec, frame) == {"age": 100}


@FORMATS
def test_out_of_domain_categories(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    day = _corrupted(tmp_path, adult_spec, "out_of_domain", fmt)
    assert day[0].corruptions == ("out_of_domain(workclass)",)
    typed, failures = adult_spec.coerce(_read_all([f.path for f in day]))
    assert failures == {}
    outside = typed["workclass"].dropna()[~typed["workclass"].dropna().isin(adult_spec.column("workclass").categories)]
    assert len(outside) == 100


@FORMATS
def test_out_of_range_numbers(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    day = _corrupted(tmp_path, adult_spec, "out_of_range", fmt, column="hours_per_week")
    typed, failures = adult_spec.coerce(_read_all([f.path for f in day]))
    assert failures == {}
    rng = adult_spec.column("hours_per_week").range
    beyond = (typed["hours_per_week"] < rng.min) | (typed["hours_per_week"] > rng.max)
    assert beyond.sum() == 100
    assert (typed["hours_per_week"] > rng.max).any() and (typed["hours_per_week"] < rng.min).any()


@FORMATS
def test_null_burst_in_a_required_column(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    day = _corrupted(tmp_path, adult_spec, "null_burst", fmt, column="education")
    typed, failures = adult_spec.coerce(_read_all([f.path for f in day]))
    assert failures == {} and not adult_spec.column("education").nullable
    assert typed["education"].isna().sum() == 100


@FORMATS
def test_duplicate_ids(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    day = _corrupted(tmp_path, adult_spec, "duplicate_ids", fmt)
    frame = _read_all([f.path for f in day])
    assert len(frame) == 500 and frame["record_id"].duplicated().sum() == 100


@FORMATS
def test_bad_label(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    typed, _ = adult_spec.coerce(_read_all([f.path for f in _corrupted(tmp_path, adult_spec, "bad_label", fmt)]))
    invalid = ~typed["income"].isin(adult_spec.target.categories)
    assert invalid.sum() == 100
    assert set(typed["income"][invalid]) <= {"<=50K.", ">50K."}


@FORMATS
def test_empty_file_has_the_header_and_no_rows(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    first, last = _corrupted(tmp_path, adult_spec, "empty_file", fmt)
    assert len(_read(first.path)) == 250 and first.corruptions == ()
    empty = _read(last.path)
    assert len(empty) == 0 and last.rows == 0 and last.corruptions == ("empty_file",)
    assert list(empty.columns) == adult_spec.column_names


@FORMATS
def test_unparseable_file_defeats_both_readers(tmp_path: Path, adult_spec: DatasetSpec, fmt: str) -> None:
    first, last = _corrupted(tmp_path, adult_spec, "unparseable_file", fmt)
    assert len(_read(first.path)) == 250
    assert last.path.suffix == f".{fmt}" and last.path.stat().st_size > 0
    readers = [
        pd.read_parquet,
        pd.read_csv,
        lambda p: pd.read_csv(p, encoding="latin-1"),
        lambda p: pd.read_csv(p, encoding_errors="replace"),
    ]
    for read in readers:
        with pytest.raises(Exception):  # noqa: B017 - any reader error is the point
            read(last.path)


def test_corruption_columns_are_checked_against_the_spec(adult_spec: DatasetSpec) -> None:
    defaults = {k: Corruption(k, D1).resolve(adult_spec).column for k in CORRUPTION_KINDS}  # type: ignore[arg-type]
    assert defaults == {
        "missing_column": "age",
        "wrong_type": "age",
        "out_of_domain": "workclass",
        "out_of_range": "age",
        "null_burst": "age",
        "duplicate_ids": "record_id",
        "empty_file": None,
        "unparseable_file": None,
        "bad_label": "income",
    }
    cases = [
        (Corruption("wrong_type", D1, "sex"), "numeric"),
        (Corruption("out_of_domain", D1, "age"), "categories"),
        (Corruption("out_of_range", D1, "sex"), "range"),
        (Corruption("null_burst", D1, "workclass"), "nullable"),
        (Corruption("duplicate_ids", D1, "age"), "record_id"),
        (Corruption("bad_label", D1, "sex"), "income"),
        (Corruption("empty_file", D1, "age"), "no column"),
        (Corruption("missing_column", D1, "salary"), "no column 'salary'"),
        (Corruption("null_burst", D1, "age", fraction=0.0), "fraction"),
        (Corruption("melted", D1), "unknown kind"),  # type: ignore[arg-type]
    ]
    for corruption, says in cases:
        with pytest.raises(SimulationError, match=says):
            corruption.resolve(adult_spec)


# ---- drift -----------------------------------------------------------------------------------------------
def test_drift_moves_the_statistics_it_claims(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    drift = DriftConfig(
        start=D3, numeric_shift={"hours_per_week": 1.0}, category_mix={"sex": {"Female": 0.8}}, label_shift=0.5
    )
    files = replay(adult_spec, tmp_path, D1, D3 + timedelta(days=1), rows_per_day=4000, drift=drift, seed=2)
    frame = _read_all([f.path for f in files])
    frame["day"] = frame["event_time"].dt.date
    before, after = frame[frame["day"] < D3], frame[frame["day"] >= D3]
    assert [f.drift for f in files] == [0.0, 0.0, 1.0, 1.0]
    assert (before["sex"] == "Female").mean() == pytest.approx(0.33, abs=0.03)
    assert (after["sex"] == "Female").mean() == pytest.approx(0.8, abs=0.02)
    assert (before["income"] == ">50K").mean() == pytest.approx(0.24, abs=0.03)
    assert (after["income"] == ">50K").mean() == pytest.approx(0.5, abs=0.02)
    demo = pd.read_parquet(demo_data_path(adult_spec))
    std = demo["hours_per_week"].std()
    # resampling (more women, more high earners) moves hours too; the shift is on top of a resampled baseline
    resampled = replay(
        adult_spec,
        tmp_path / "no_shift",
        D1,
        D3 + timedelta(days=1),
        rows_per_day=4000,
        drift=DriftConfig(start=D3, category_mix=drift.category_mix, label_shift=0.5),
        seed=2,
    )
    base = _read_all([f.path for f in resampled if f.day >= D3])["hours_per_week"].mean()
    assert after["hours_per_week"].mean() - base == pytest.approx(std, rel=0.25)  # range clipping takes a bit
    assert after["hours_per_week"].between(1, 99).all(), "drift stays in range: it is not corruption"
    assert frame["record_id"].is_unique
    assert adult_spec.coerce(frame[adult_spec.column_names])[1] == {}


def test_days_before_the_drift_are_the_undrifted_replay(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    plain = simulate(adult_spec, tmp_path / "plain", D1, D3, rows_per_day=300, seed=1)
    drifted = simulate(
        adult_spec, tmp_path / "drift", D1, D3, rows_per_day=300, seed=1, drift=DriftConfig(D3, label_shift=0.9)
    )
    for a, b in zip(plain[:2], drifted[:2], strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert (_read(drifted[2])["income"] == ">50K").mean() > 0.8


def test_a_ramp_reaches_full_drift_gradually(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    drift = DriftConfig(start=D2, category_mix={"race": {"Black": 0.6}}, ramp_days=3)
    files = replay(adult_spec, tmp_path, D1, D1 + timedelta(days=4), rows_per_day=3000, drift=drift)
    share = [(_read(f.path)["race"] == "Black").mean() for f in files]
    assert [round(f.drift, 2) for f in files] == [0.0, 0.33, 0.67, 1.0, 1.0]
    assert share[0] < share[1] < share[2] < share[3]
    assert share[3] == pytest.approx(0.6, abs=0.03)


def test_drift_names_must_fit_the_spec(adult_spec: DatasetSpec) -> None:
    cases = [
        (DriftConfig(D1, numeric_shift={"salary": 1.0}), "no column 'salary'"),
        (DriftConfig(D1, numeric_shift={"sex": 1.0}), "numeric feature"),
        (DriftConfig(D1, numeric_shift={"record_id": 1.0}), "role 'id'"),
        (DriftConfig(D1, category_mix={"income": {">50K": 0.5}}), "label_shift"),
        (DriftConfig(D1, category_mix={"sex": {"Other": 0.5}}), r"\['Other'\] are not categories of 'sex'"),
        (DriftConfig(D1, category_mix={"sex": {"Female": 0.7, "Male": 0.6}}), "sum to at most 1"),
        (DriftConfig(D1, label_shift=1.0), "positive rate"),
    ]
    for drift, says in cases:
        with pytest.raises(SimulationError, match=says):
            drift.validate(adult_spec)


# ---- a spec without demo data ----------------------------------------------------------------------------
def _spec_without_demo(tmp_path: Path, adult_spec: DatasetSpec) -> DatasetSpec:
    text = adult_spec.path.read_text().replace("demo_data: adult.parquet\n", "")  # type: ignore[union-attr]
    path = tmp_path / "nodemo.yaml"
    path.write_text(text)
    return load_spec(path)


def test_a_spec_without_demo_data_needs_a_source(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    from ml_assets.datasets.synthetic import synthetic_rows

    spec = _spec_without_demo(tmp_path, adult_spec)
    with pytest.raises(SimulationError, match=r"ships no demo data.*--synthetic"):
        simulate(spec, tmp_path / "landing", D1, D1)
    files = simulate(spec, tmp_path / "landing", D1, D2, source=synthetic_rows(spec, 1000), fmt="csv")
    assert adult_spec.coerce(_read_all(files))[1] == {}


# ---- CLI -------------------------------------------------------------------------------------------------
def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ml-assets")
    add_simulate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *argv])
    return args.func(args)


def test_cli_writes_into_the_landing_zone_and_says_what(ml_home: Path, capsys: pytest.CaptureFixture) -> None:
    rc = _cli(
        [
            *("--start", "2026-11-01", "--end", "2026-11-03", "--format", "csv", "--files-per-day", "2"),
            *("--rows-per-day", "400", "--seed", "7", "--drift-from", "2026-11-03", "--shift", "age=1.5"),
            *("--mix", "sex=Female:0.7,Male:0.3", "--label-rate", "0.5"),
            *("--corrupt", "wrong_type@2026-11-02:age", "--corrupt", "unparseable_file@2026-11-02"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    landing = ml_home / "landing"
    assert sorted(p.name for p in (landing / "2026-11-02").iterdir()) == ["adult-00.csv", "adult-01.csv"]
    assert "2026-11-01  2 files        400 rows" in out
    assert "2026-11-02  2 files        200 rows  corrupt: unparseable_file, wrong_type(age)" in out
    assert "2026-11-03  2 files        400 rows  drift 100%" in out
    assert "total: 3 days, 6 files, 1,000 rows" in out
    drifted = _read_all(sorted((landing / "2026-11-03").iterdir()))
    assert (drifted["sex"] == "Female").mean() > 0.55


def test_cli_synthetic_rows(ml_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _cli(["--start", "2026-11-01", "--end", "2026-11-02", "--synthetic", "--landing", str(tmp_path / "x")]) == 0
    assert "total: 2 days, 2 files, 10,000 rows" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "x" / "2026-11-02" / "adult-00.parquet")) == 5000


@pytest.mark.parametrize(
    ("argv", "option", "says"),
    [
        (["--start", "2026-13-01"], "--start", "YYYY-MM-DD"),
        (["--files-per-day", "0"], "--files-per-day", "at least 1"),
        (["--shift", "age"], "--shift", "COLUMN=STDS"),
        (["--mix", "sex=Female"], "--mix", "CATEGORY:SHARE"),
        (["--corrupt", "melt@2026-11-01"], "--corrupt", "KIND@YYYY-MM-DD"),
        (["--format", "xml"], "--format", "invalid choice"),
    ],
)
def test_cli_rejects_malformed_options(
    ml_home: Path, capsys: pytest.CaptureFixture, argv: list[str], option: str, says: str
) -> None:
    base = ["--start", "2026-11-01", "--end", "2026-11-02"]
    with pytest.raises(SystemExit) as exit_:
        _cli([*base, *argv] if argv[0] != "--start" else [*argv, "--end", "2026-11-02"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and says in err


@pytest.mark.parametrize(
    ("argv", "option", "says"),
    [
        (["--shift", "age=1"], "--shift", "needs --drift-from"),
        (["--drift-from", "2026-11-01"], "--drift-from", "at least one of"),
        (["--drift-from", "2026-11-01", "--shift", "sex=1"], "--shift", "numeric feature"),
        (["--drift-from", "2026-11-01", "--mix", "sex=Alien:0.5"], "--mix", "not categories of 'sex'"),
        (["--drift-from", "2026-11-09", "--label-rate", "0.3"], "--drift-from", "after --end"),
        (["--drift-from", "2026-11-01", "--label-rate", "2"], "--label-rate", "positive rate"),
        (["--corrupt", "null_burst@2026-11-01:workclass"], "--corrupt", "nullable"),
        (["--corrupt", "empty_file@2026-12-01"], "--corrupt", "outside"),
        (["--corrupt", "wrong_type@2026-11-01", "--corrupt-fraction", "1.5"], "--corrupt-fraction", "(0, 1]"),
        (["--drift-from", "2026-11-01", "--label-rate", "0.3", "--drift-ramp-days", "-1"], "--drift-ramp-days", ">= 0"),
        (["--spec", "/nonexistent/spec.yaml"], "--spec", "does not exist"),
    ],
)
def test_cli_rejects_options_that_do_not_fit_the_spec(
    ml_home: Path, capsys: pytest.CaptureFixture, argv: list[str], option: str, says: str
) -> None:
    assert _cli(["--start", "2026-11-01", "--end", "2026-11-02", *argv]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and says in err
    assert not (ml_home / "landing").exists() or not any((ml_home / "landing").iterdir())


def test_event_times_are_uniform_within_the_day(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    files = simulate(adult_spec, tmp_path, D1, D1, rows_per_day=24_000)
    hours = _read(files[0])["event_time"].dt.hour.value_counts()
    assert len(hours) == 24 and np.abs(hours - 1000).max() < 150
