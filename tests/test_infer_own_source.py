"""An inferred spec passes its own source: every day the demo replays from the file lands with no blocking rule.

Each data file is shaped like one of the real-data defects of the issue "Trustworthy on data it has never seen"
(category values padded with spaces, labels that stop, label coverage that varies by period, a source that thins
out, a Parquet category column named sensitive, a year-number time column) or is a shipped real dataset. The
spec is inferred by the CLI, the file replayed into daily files exactly as the demo lands it, and every day
validated against the spec's raw_data rules, its volume rule judged against the days before it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity

from ml_assets.cli import main
from ml_assets.data.expectations import validate_raw_data
from ml_assets.dataset import DatasetSpec, load_spec
from ml_assets.datasets.simulator import replay
from ml_assets.settings import PACKAGE_DIR
from resources.landing import LandingZone
from tests.conftest import GREAT_EXPECTATIONS

pytestmark = GREAT_EXPECTATIONS  # validates with Great Expectations (conftest.py)

START = date(2026, 3, 1)


def hours(n: int, every: str = "h") -> pd.Series:
    return pd.Series(pd.date_range("2024-01-01", periods=n, freq=every).strftime("%Y-%m-%d %H:%M:%S"))


def padded_categories(path: Path) -> list[str]:
    """'Other' only ever written padded with spaces, and only in the newer half."""
    r, n = np.random.default_rng(0), 2400
    c = np.where(np.arange(n) < n // 2, "Tensed", "Other" + " " * 10)
    y = r.choice(["no", "yes"], size=n)
    pd.DataFrame({"rid": range(1, n + 1), "t": hours(n), "x": r.normal(size=n), "c": c, "y": y}).to_csv(
        path, index=False
    )
    return ["--target", "y", "--time", "t"]


def labels_stop(path: Path) -> list[str]:
    """Labels stop after 60 % of the span: the newest days have none (labels arrive later)."""
    r, n = np.random.default_rng(3), 2800
    y = r.choice(["no", "yes"], size=n).astype(object)
    y[np.arange(n) >= int(n * 0.6)] = None
    pd.DataFrame({"rid": range(1, n + 1), "t": hours(n), "x": r.normal(size=n), "y": y}).to_csv(path, index=False)
    return ["--target", "y", "--time", "t"]


def coverage_varies(path: Path) -> list[str]:
    """Label coverage 70 % overall but 40 % in one of seven periods."""
    r, n = np.random.default_rng(2), 2800
    cov = np.where((np.arange(n) * 7) // n == 3, 0.40, 0.70)
    y = r.choice(["no", "yes"], size=n).astype(object)
    y[r.random(n) > cov] = None
    pd.DataFrame({"rid": range(1, n + 1), "t": hours(n), "x": r.normal(size=n), "y": y}).to_csv(path, index=False)
    return ["--target", "y", "--time", "t"]


def thins_out(path: Path) -> list[str]:
    """A source whose second half holds a fifth of the rows of its first half (like COMPAS's 2014)."""
    r = np.random.default_rng(4)
    busy = pd.date_range("2024-01-01", "2024-06-30", periods=4000)
    quiet = pd.date_range("2024-07-01", "2024-12-31", periods=800)
    t = pd.Series(busy.append(quiet).strftime("%Y-%m-%d %H:%M:%S"))
    n = len(t)
    pd.DataFrame({"t": t, "x": r.normal(size=n), "y": r.choice(["a", "b"], size=n)}).to_csv(path, index=False)
    return ["--target", "y", "--time", "t"]


def category_sensitive(path: Path) -> list[str]:
    """A Parquet ``category`` column named in --sensitive (one value padded)."""
    frame = pd.DataFrame(
        {
            "rid": range(1200),
            "y": [0, 1] * 600,
            "g": pd.Categorical(["a", "b ", "b ", "a"] * 300),
            "x": np.arange(1200) % 97,
        }
    )
    frame.to_parquet(path)
    return ["--target", "y", "--sensitive", "g"]


def year_numbers(path: Path) -> list[str]:
    """The time column is a year number; a month column next to it."""
    r, n = np.random.default_rng(5), 3000
    year = np.sort(r.integers(1990, 2020, n))
    pd.DataFrame({"year": year, "month": r.integers(1, 13, n), "y": r.choice(["a", "b"], size=n)}).to_csv(
        path, index=False
    )
    return ["--target", "y", "--time", "year"]


def five_years(path: Path) -> list[str]:
    """A panel over five year numbers (pydataset's rwm5yr: 1984 .. 1988), unequal in size: five instants mapped
    onto twelve days left seven empty, until rows sharing a year were spread over it."""
    r, n = np.random.default_rng(9), 3000
    year = np.sort(r.choice(np.arange(1984, 1989), size=n, p=[0.3, 0.25, 0.2, 0.15, 0.1]))
    pd.DataFrame({"year": year, "x": np.round(r.normal(size=n), 3), "y": r.choice(["a", "b"], size=n)}).to_csv(
        path, index=False
    )
    return ["--target", "y", "--time", "year"]


def flags(path: Path) -> list[str]:
    """True / False columns, as pandas writes booleans: the target and a feature (lifelines' canadian_senators.csv
    has its event flag so)."""
    r, n = np.random.default_rng(6), 2400
    member = r.random(n) < 0.4
    pd.DataFrame(
        {
            "at": pd.date_range("2025-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
            "member": member,
            "x": np.round(r.normal(size=n), 3),
            "left": r.random(n) < np.where(member, 0.2, 0.5),
        }
    ).to_csv(path, index=False)
    return ["--target", "left", "--positive", "True", "--time", "at"]


def day_first(path: Path) -> list[str]:
    """Dates written day first, as lifelines' lymph_node.csv writes them (17-08-1984), and a second date column;
    infer finds the time column and its format itself."""
    r, n = np.random.default_rng(7), 2400
    days = pd.Series(np.sort(r.integers(0, 2000, n)))
    when = pd.Timestamp("1984-01-01") + pd.to_timedelta(days, unit="D")
    pd.DataFrame(
        {
            "diagnosed": when.dt.strftime("%d-%m-%Y"),
            "seen": (when + pd.Timedelta(days=30)).dt.strftime("%d-%m-%Y"),
            "x": np.round(r.normal(size=n), 3),
            "y": r.choice(["a", "b"], size=n),
        }
    ).to_csv(path, index=False)
    return ["--target", "y"]


def digits_only(path: Path) -> list[str]:
    """Dates as eight digits (20240105), which a CSV reader takes for numbers: the format given with --time-format."""
    r, n = np.random.default_rng(10), 2400
    days = pd.date_range("2024-01-01", periods=n, freq="6h").strftime("%Y%m%d")
    pd.DataFrame({"d": days, "x": np.round(r.normal(size=n), 3), "y": r.choice(["a", "b"], size=n)}).to_csv(
        path, index=False
    )
    return ["--target", "y", "--time", "d", "--time-format", "%Y%m%d"]


def named_self(path: Path) -> list[str]:
    """A flag named ``self`` (self-employed, as in the Ecdat Hdma mortgage data) and a count named ``kwargs``: names
    that cannot be keyword arguments, which pandas' ``assign`` takes columns as."""
    r, n = np.random.default_rng(8), 2400
    pd.DataFrame(
        {
            "t": hours(n),
            "self": r.choice(["no", "yes"], size=n),
            "kwargs": r.integers(0, 5, n),
            "y": r.choice(["a", "b"], size=n),
        }
    ).to_csv(path, index=False)
    return ["--target", "y", "--time", "t"]


SHAPES = {
    "ws.csv": padded_categories,
    "nolab.csv": labels_stop,
    "cov.csv": coverage_varies,
    "thin.csv": thins_out,
    "cat.parquet": category_sensitive,
    "years.csv": year_numbers,
    "five_years.csv": five_years,
    "flags.csv": flags,
    "dayfirst.csv": day_first,
    "self.csv": named_self,
    "digits.csv": digits_only,
}


def infer(tmp_path: Path, data: Path, args: list[str]) -> DatasetSpec:
    out = tmp_path / "spec.yaml"
    assert main(["spec", "infer", str(data), *args, "-o", str(out)]) == 0
    return load_spec(out)


def blocking_failures(spec: DatasetSpec, root: Path, fmt: str = "parquet") -> dict[str, list[str]]:
    """Replay the spec's demo data as the demo lands it and validate every day; the blocking failures by day."""
    days = spec.training.window_days + 2
    files = replay(spec, root, START, START + timedelta(days=days - 1), fmt=fmt)
    landing = LandingZone(root=str(root), quarantine_root=str(root.parent / "quarantine"))
    counts: dict[str, int] = {}
    failures: dict[str, list[str]] = {}
    for day in sorted({f.day for f in files}):
        key = day.isoformat()
        landed = pd.concat([landing.read(p).frame for p in landing.files(key)], ignore_index=True)
        typed, cast_failures = spec.coerce(landed)
        earlier = {d: n for d, n in counts.items() if d >= (day - timedelta(spec.row_count.trailing_days)).isoformat()}
        results = validate_raw_data(spec, landed, typed, cast_failures, key, earlier_rows=earlier)
        counts[key] = len(typed)
        blocked = [r.description for r in results if not r.passed and r.severity == AssetCheckSeverity.ERROR]
        if blocked:
            failures[key] = blocked
    return failures


@pytest.mark.parametrize("name", list(SHAPES))
def test_an_inferred_spec_passes_every_replayed_day_of_its_source(tmp_path: Path, name: str) -> None:
    data = tmp_path / name
    spec = infer(tmp_path, data, SHAPES[name](data))
    assert blocking_failures(spec, tmp_path / "landing") == {}
    if name == "flags.csv":  # held as the categories "False" / "True", landed as booleans
        for flag in ("left", "member"):
            column = spec.column(flag)
            assert column.bool_coded and column.categories == ["False", "True"], column
        assert spec.positive_label == "True"
        assert blocking_failures(spec, tmp_path / "landing-csv", fmt="csv") == {}
    if name == "digits.csv":
        assert spec.time.format == "%Y%m%d" and spec.time.landed is None
        assert blocking_failures(spec, tmp_path / "landing-csv", fmt="csv") == {}  # CSV: the digits land as int64
    if name == "five_years.csv":  # every replayed day holds rows: the volume rule was not switched off for gaps
        assert spec.row_count.min > 0 and spec.row_count.min_ratio > 0, spec.row_count
    if name == "dayfirst.csv":
        assert spec.time.name == "diagnosed" and spec.time.format == "%d-%m-%Y"
        assert "seen" not in spec.column_names  # a second time column is no feature


@pytest.mark.parametrize(
    ("data", "args"),
    [
        (
            "compas.csv.gz",
            "--target two_year_recid --positive 1 --time compas_screening_date --sensitive race,sex,age",
        ),
        (
            "mpls_stops.csv.gz",
            "--target personSearch --positive YES --id idNum --time date --sensitive "
            "race,gender,preRace --categorical policePrecinct --ignore citationIssued,vehicleSearch",
        ),
        ("adult.parquet", "--target income --positive >50K --sensitive race,sex"),
    ],
)
def test_the_shipped_datasets_pass_their_own_replayed_days_as_inferred(tmp_path: Path, data: str, args: str) -> None:
    spec = infer(tmp_path, PACKAGE_DIR / "datasets" / data, args.split())
    assert blocking_failures(spec, tmp_path / "landing", fmt="csv") == {}
