"""TrainingWindow: the training_set partition as a lazy record, never one frame of the window's rows.

A window is the features days ending on its partition day, split by event time (``ml_assets.data.splits``): the
rows stay in the features days' immutable Parquet files and a split is a time range over them, so cutting a window
writes nothing and costs the same at any size, and every reader (the checks, the baseline, the ranks of a training
run on other nodes) streams only what it needs. ``frame()`` rebuilds today's training_set frame for the small
readers that still need all rows at once; a reader of a window of any size uses ``split``/``labeled`` scans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml_assets.data.splits import SPLIT, SPLITS, WINDOW_END
from ml_assets.data.tables import features_dtypes
from ml_assets.dataset import DatasetSpec
from ml_assets.partitions import LANDING_DAY
from resources.parquet_tables import ParquetTables, TableScan, quoted


class SplitCount(BaseModel):
    """Rows, labeled rows and positive rate of one split of a window."""

    rows: int
    labeled: int
    positive_rate: float = Field(description="NaN when the split has no labeled row")


HALF_MIN_PER_LABEL = 5  # rows of each label each validation half needs; fewer: both use every validation row


@dataclass(frozen=True)
class ValidationRows:
    """The validation rows a search selects on, those the model families are compared on, and which, in words."""

    selection: TableScan
    comparison: TableScan
    how: str
    middle: datetime | None  # where the halves meet (comparison: from it on); None: both are every validation row


# training_set's metadata entry holding its TrainingWindow as JSON text: Dagster sorts the keys of JSON metadata,
# and a scan's dtypes are in column order
WINDOW_RECORD = "window_record"


class TrainingWindow(BaseModel):
    """The ``days`` of features ending on ``window_end``, with the time bounds of their splits."""

    model_config = ConfigDict(frozen=True)

    window_end: date
    days: tuple[str, ...]
    rows: TableScan = Field(description="the window's features rows, every day and split")
    time_column: str
    label_column: str
    validation_from: datetime = Field(description="rows at or after this event time are validation (or test)")
    test_from: datetime = Field(description="rows at or after this event time are test")

    @classmethod
    def cut(cls, spec: DatasetSpec, rows: TableScan, window_end: date, days: list[str]) -> TrainingWindow:
        """The window ending on ``window_end`` over the features ``rows`` of ``days``: the newest ``test_days``
        are test, the ``validation_days`` before them validation, the rest train (as ``split_by_time``)."""
        cfg = spec.training
        test_from = datetime.combine(window_end - timedelta(days=cfg.test_days - 1), datetime.min.time())
        return cls(
            window_end=window_end,
            days=tuple(sorted(days)),
            rows=rows,
            time_column=spec.time.name,
            label_column=spec.label_column,
            validation_from=test_from - timedelta(days=cfg.validation_days),
            test_from=test_from,
        )

    @property
    def version(self) -> str:
        """Content version: the features files' and the split bounds'."""
        return f"{self.rows.version}-{self.validation_from:%Y%m%d}-{self.test_from:%Y%m%d}"

    def split(self, name: str) -> TableScan:
        """The rows of one split (``train``, ``validation`` or ``test``), labeled or not."""
        if name == "train":
            return self.rows.where(time_column=self.time_column, end=self.validation_from)
        if name == "validation":
            return self.rows.where(time_column=self.time_column, start=self.validation_from, end=self.test_from)
        if name == "test":
            return self.rows.where(time_column=self.time_column, start=self.test_from)
        raise ValueError(f"no split {name!r}; the splits are {list(SPLITS)}")

    def labeled(self, name: str) -> TableScan:
        """The rows of one split that carry a label: what models fit and are judged on."""
        return self.split(name).where(not_null=(self.label_column,))

    def validation_rows(self, min_per_label: int = HALF_MIN_PER_LABEL) -> ValidationRows:
        """The validation rows a search selects on and those the families are compared on: the two halves of the
        validation span when each holds ``min_per_label`` rows of each label, else every validation row for both
        (a one-day span of date-only times puts every row at midnight, in the first half), said in ``how``."""
        whole = self.labeled("validation")
        middle, label, time = self.validation_middle, quoted(self.label_column), quoted(self.time_column)
        counted = whole.query(  # one pass over the validation rows: each half's rows of each label
            f"SELECT {time} >= TIMESTAMP '{middle}' AS late, count(*) FILTER ({label} = 1) AS p, "
            f"count(*) FILTER ({label} = 0) AS n FROM scan GROUP BY 1"
        )
        per_half = {bool(r.late): (int(r.p), int(r.n)) for r in counted.itertuples()}
        fewest = {h: min(per_half.get(late, (0, 0))) for h, late in (("selection", False), ("comparison", True))}
        if min(fewest.values()) >= min_per_label:
            rows = sum(per_half[True])
            return ValidationRows(
                self.validation_half("selection"),
                self.validation_half("comparison"),
                f"the second half of the validation span ({rows:,} rows no family was selected on)",
                middle,
            )
        short = ", ".join(f"{h} {k}" for h, k in fewest.items())
        return ValidationRows(
            whole,
            whole,
            f"every validation row (the halves hold too few of a label to split: fewest per label {short})",
            None,
        )

    @property
    def validation_middle(self) -> datetime:
        """The middle of the validation time span, where its two halves meet."""
        return self.validation_from + (self.test_from - self.validation_from) / 2

    def validation_half(self, half: Literal["selection", "comparison"]) -> TableScan:
        """The labeled validation rows before (``selection``) or from (``comparison``) the middle of the validation
        time span. A search selects its trials, ensemble and epochs on the first half; the model families are
        compared on the second, which none of them was selected on: on the rows a search picked the best of eight
        networks on, its figure is optimistic (a label independent of every feature scored 0.61 there, the
        logistic regression 0.48, and the network was the candidate)."""
        middle = self.validation_middle
        bounds = {"end": middle} if half == "selection" else {"start": middle}
        return self.labeled("validation").where(time_column=self.time_column, **bounds)

    def split_case(self) -> str:
        """A SQL expression naming each row's split (over the view ``scan`` of ``rows``)."""
        time = quoted(self.time_column)
        return (
            f"CASE WHEN {time} >= TIMESTAMP '{self.test_from}' THEN 'test' "
            f"WHEN {time} >= TIMESTAMP '{self.validation_from}' THEN 'validation' ELSE 'train' END"
        )

    def sample(
        self, split: str | None, rows: int, columns: Sequence[str], *, labeled: bool = False, seed: int = 0
    ) -> pd.DataFrame:
        """A seeded uniform sample of at most ``rows`` rows of one split (``None``: every split), labeled ones only
        if asked, in ``columns``: every such row, in file order, when there are no more than ``rows`` (so a small
        window is judged on all its rows). Memory follows ``rows``, not the window."""
        if split is None:
            scan = self.rows.where(not_null=(self.time_column,))  # the rows some split holds
            scan = scan.where(not_null=(self.label_column,)) if labeled else scan
        else:
            scan = self.labeled(split) if labeled else self.split(split)
        return scan.sample(rows, seed, columns)

    def frame(self) -> pd.DataFrame:
        """The whole window as one training_set frame (features columns less the landing day, plus its split and
        window end): only for windows known to be small."""
        out = []
        for name in SPLITS:
            part = self.split(name).frame().drop(columns=[LANDING_DAY])
            part[SPLIT] = pd.Series(name, index=part.index, dtype="string[pyarrow]")
            out.append(part)
        frame = pd.concat(out, ignore_index=True)
        frame[WINDOW_END] = pd.Timestamp(self.window_end)
        return frame


def split_counts(window: TrainingWindow) -> dict[str, SplitCount]:
    """Each split's rows, labeled rows and positive rate, in one query over the window's files."""
    label = quoted(window.label_column)
    found = (
        window.rows.query(
            f"SELECT {window.split_case()} AS split, count(*) AS rows, count({label}) AS labeled, "
            f"avg({label}) AS positive_rate FROM scan GROUP BY 1"
        ).set_index("split")
        if window.rows.files
        else pd.DataFrame()
    )
    return {
        s: SplitCount(
            rows=int(found.at[s, "rows"]) if s in found.index else 0,
            labeled=int(found.at[s, "labeled"]) if s in found.index else 0,
            positive_rate=float(found.at[s, "positive_rate"])
            if s in found.index and found.at[s, "labeled"]
            else float("nan"),
        )
        for s in SPLITS
    }


def store_window(spec: DatasetSpec, frame: pd.DataFrame, tables: ParquetTables) -> TrainingWindow:
    """A training_set frame (as ``split_by_time`` makes it) stored as the features rows of its window and cut: what
    replay tools and stand-ins hand on where a real window would be. Its end is ``window_end`` (else the newest
    event day)."""
    end = pd.Timestamp(frame[WINDOW_END].max() if WINDOW_END in frame else frame[spec.time.name].max()).date()
    rows = frame.drop(columns=[c for c in (SPLIT, WINDOW_END) if c in frame.columns])
    rows[LANDING_DAY] = rows[spec.time.name].dt.normalize()
    dtypes = features_dtypes(spec)
    scan = tables.write("features", end.isoformat(), dtypes, [rows[list(dtypes)]])
    return TrainingWindow.cut(spec, scan, end, sorted(set(rows[LANDING_DAY].dt.strftime("%Y-%m-%d"))))
