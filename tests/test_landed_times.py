"""Times as the pipeline holds them (naive UTC) whatever zone they landed in, and time columns that land as year
or day numbers: one documented reading, the same in the type rule, the cast and the freshness rule."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from ml_assets.data.rules import partition_end
from ml_assets.dataset import Column, DatasetSpec


def spec_in(timezone: str, **time: object) -> DatasetSpec:
    return DatasetSpec(
        name="t",
        positive_label="b",
        timezone=timezone,
        columns=[
            Column(name="id", role="id", dtype="int64"),
            Column(name="t", role="time", dtype="datetime", **time),
            Column(name="x", role="numeric", dtype="float64"),
            Column(name="y", role="target", dtype="string", categories=["a", "b"]),
        ],
    )


def test_times_with_a_zone_are_converted_and_naive_times_read_in_the_spec_timezone() -> None:
    landed = pd.Series(["2024-01-01 10:00:00", "2024-01-01T10:00:00+02:00", "2024-07-01 10:00:00Z", "noon"])
    utc = spec_in("UTC").typed("t", landed)
    assert utc.tolist()[:3] == [
        pd.Timestamp("2024-01-01 10:00"),
        pd.Timestamp("2024-01-01 08:00"),
        pd.Timestamp("2024-07-01 10:00"),
    ]
    assert pd.isna(utc.iloc[3])
    chicago = spec_in("America/Chicago").typed("t", landed)
    assert chicago.tolist()[:3] == [
        pd.Timestamp("2024-01-01 16:00"),
        pd.Timestamp("2024-01-01 08:00"),
        pd.Timestamp("2024-07-01 10:00"),
    ]  # only the naive value moves
    zoned = pd.Series(pd.date_range("2024-01-01", periods=2, freq="h", tz="Europe/Paris"))
    assert spec_in("America/Chicago").typed("t", zoned).tolist() == [
        pd.Timestamp("2023-12-31 23:00"),
        pd.Timestamp("2024-01-01 00:00"),
    ]
    assert str(chicago.dtype) == "datetime64[ns]"


def test_the_partition_end_is_the_next_midnight_in_the_partitions_timezone() -> None:
    assert partition_end("2024-01-05") == pd.Timestamp("2024-01-06 00:00")
    assert partition_end("2024-01-05", "America/Chicago") == pd.Timestamp("2024-01-06 06:00")
    assert partition_end("2024-03-09", "America/Chicago") == pd.Timestamp("2024-03-10 06:00")  # DST starts 10th


def test_year_and_day_numbers_are_times_from_their_origin() -> None:
    years = spec_in("UTC", landed="int64", unit="year")
    typed, failures = years.coerce(pd.DataFrame({"t": [2014, 1999, 99999], "id": [1, 2, 3]}))
    assert typed["t"].tolist()[:2] == [pd.Timestamp("2014-01-01"), pd.Timestamp("1999-01-01")]
    assert pd.isna(typed["t"].iloc[2]) and failures == {"t": 1}  # no year a timestamp holds: counted, not hidden
    days = spec_in("UTC", landed="int64", unit="day", origin=date(2020, 2, 28))
    assert days.typed("t", pd.Series([0, 1, 2])).tolist() == [
        pd.Timestamp(d) for d in ("2020-02-28", "2020-02-29", "2020-03-01")
    ]


@pytest.mark.parametrize(
    ("time", "says"),
    [
        ({"unit": "year"}, "unit and origin belong to a time column with landed: int64"),
        ({"landed": "int64"}, "needs landed: int64 and a unit"),
        ({"landed": "int64", "unit": "day"}, "unit day needs an origin"),
        ({"landed": "int64", "unit": "year", "origin": date(2000, 1, 1)}, "unit year takes none"),
    ],
)
def test_a_numbered_time_column_needs_its_unit_and_origin(time: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Column(name="t", role="time", dtype="datetime", **time)


def test_a_date_alone_is_midnight_in_the_spec_timezone_not_an_offset() -> None:
    """``2024-01-05`` ends in ``-05``, which an offset pattern without a clock time before it read as the offset
    -05:00 (so a date landed in Chicago was UTC midnight: the previous local day)."""
    landed = pd.Series(
        ["2024-01-05", "2024-01-05 10:00-05", "2024-01-05T10:00:00.250Z", "20240105T100000+0200", "2024-01-05T10Z"]
    )
    assert spec_in("America/Chicago").typed("t", landed).tolist() == [
        pd.Timestamp("2024-01-05 06:00"),
        pd.Timestamp("2024-01-05 15:00"),
        pd.Timestamp("2024-01-05 10:00:00.250"),
        pd.Timestamp("2024-01-05 08:00"),  # the basic form, and an hour alone before the offset, still have one
        pd.Timestamp("2024-01-05 10:00"),
    ]


def test_text_in_the_columns_format_is_read_by_it_and_iso_text_as_iso() -> None:
    """lifelines' lymph_node.csv writes day first (17-08-1984); the demo lands its replayed days in ISO 8601."""
    spec = spec_in("Europe/Amsterdam", format="%d-%m-%Y")
    landed = pd.DataFrame(
        {"id": [1, 2, 3, 4], "t": ["17-08-1984", " 02-01-1985 ", "2026-11-01 08:26:57Z", "31-02-1985"]}
    )
    typed, failures = spec.coerce(landed)
    assert typed["t"].tolist()[:3] == [
        pd.Timestamp("1984-08-16 22:00"),  # local midnight, summer time
        pd.Timestamp("1985-01-01 23:00"),  # 2 January, not 1 February
        pd.Timestamp("2026-11-01 08:26:57"),
    ]
    assert pd.isna(typed["t"].iloc[3]) and failures == {"t": 1}  # no 31 February: counted, not hidden


def test_a_format_with_an_offset_converts_and_digits_landed_as_numbers_are_read() -> None:
    zoned = spec_in("America/Chicago", format="%d/%m/%Y %H:%M%z")
    assert zoned.typed("t", pd.Series(["05/01/2024 10:00+0100"])).tolist() == [pd.Timestamp("2024-01-05 09:00")]
    digits = spec_in("UTC", format="%Y%m%d")
    typed, failures = digits.coerce(pd.DataFrame({"id": [1, 2], "t": [20240105, 20241301]}))  # read as int64
    assert typed["t"].iloc[0] == pd.Timestamp("2024-01-05") and failures == {"t": 1}  # no month 13


@pytest.mark.parametrize(
    ("time", "says"),
    [
        ({"format": "%H:%M"}, "does not hold a whole date"),
        ({"format": "%d-%m-%Y", "landed": "int64", "unit": "year"}, "belongs to a time column that lands as text"),
    ],
)
def test_a_time_format_must_read_a_whole_date(time: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Column(name="t", role="time", dtype="datetime", **time)
    with pytest.raises(ValueError, match="belongs to a time column"):
        Column(name="x", role="numeric", dtype="float64", format="%d-%m-%Y")
