"""Exact facts of a training window by DuckDB query: each split's label counts and days, ids shared by splits.

Class balance and split overlap must count every row (a handful of leaked ids is the finding), and counting is
cheap, so they are queries, not samples. The same SQL runs over a window's Parquet files (``split_case()`` names
each row's split; DuckDB streams the files in bounded memory, spilling past its limit) and over an in-memory
training_set frame (its ``split`` column), so a small frame and the window its rows are give the same facts.
"""

from __future__ import annotations

import math
from datetime import date

import duckdb
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from ml_assets.data.splits import SPLIT, SPLITS
from ml_assets.data.window import TrainingWindow
from ml_assets.dataset import DatasetSpec
from resources.parquet_tables import QUERY_MEMORY, quoted, scan_connection

SHOWN_IDS = 10  # the smallest shared ids kept as examples
SHARED_PAIRS = ("train", "validation")  # splits whose ids must not reach the test split


class SplitFacts(BaseModel):
    """One split's rows, labeled rows, positives and event days (None when empty)."""

    model_config = ConfigDict(frozen=True)

    rows: int = 0
    labeled: int = 0
    positives: int = 0
    first_day: date | None = None
    last_day: date | None = None

    @property
    def positive_rate(self) -> float:
        return self.positives / self.labeled if self.labeled else math.nan

    @property
    def both_labels(self) -> bool:
        return 0 < self.positives < self.labeled


class SharedIds(BaseModel):
    """Ids found in a split and in the test split: how many, and the smallest of them."""

    model_config = ConfigDict(frozen=True)

    count: int = 0
    smallest: list[int | str] = []


class WindowFacts(BaseModel):
    """Every split's facts, and the ids each of train and validation shares with test (keys ``train&test``...)."""

    model_config = ConfigDict(frozen=True)

    splits: dict[str, SplitFacts]
    shared: dict[str, SharedIds]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.splits.values())


def facts_of_window(spec: DatasetSpec, window: TrainingWindow) -> WindowFacts:
    """The facts of a window, queried over its files."""
    if not window.rows.files:
        return WindowFacts(
            splits={s: SplitFacts() for s in SPLITS}, shared={f"{a}&test": SharedIds() for a in SHARED_PAIRS}
        )
    with scan_connection(window.rows) as connection:
        return _facts(spec, connection, window.split_case())


def facts_of_frame(spec: DatasetSpec, frame: pd.DataFrame) -> WindowFacts:
    """The facts of an in-memory training_set frame (its ``split`` column), by the same queries."""
    columns = [spec.id.name, spec.time.name, spec.label_column, SPLIT]
    with duckdb.connect(config={"memory_limit": QUERY_MEMORY, "threads": 2}) as connection:
        connection.register("scan", pa.Table.from_pandas(frame[columns], preserve_index=False))
        return _facts(spec, connection, quoted(SPLIT))


def _facts(spec: DatasetSpec, connection: duckdb.DuckDBPyConnection, split: str) -> WindowFacts:
    label, time, ident = quoted(spec.label_column), quoted(spec.time.name), quoted(spec.id.name)
    connection.execute("SET enable_progress_bar = false")  # a long count is not news in a step's log
    found = connection.execute(
        f"SELECT {split} AS split, count(*) AS rows, count({label}) AS labeled, "
        f"coalesce(sum({label}), 0) AS positives, min({time})::DATE AS first_day, max({time})::DATE AS last_day "
        "FROM scan GROUP BY 1"
    ).fetchall()
    splits = {s: SplitFacts() for s in SPLITS}
    for name, rows, labeled, positives, first, last in found:
        splits[name] = SplitFacts(rows=rows, labeled=labeled, positives=int(positives), first_day=first, last_day=last)
    # the test split's ids (a few days) are hashed once and the other rows probed against them, so memory follows
    # the test split and the shared ids, not the window (a CTE read twice would be materialized: the whole window)
    flags = ", ".join(f"bool_or(split = '{a}') AS {a}" for a in SHARED_PAIRS)
    tallies = ", ".join(f"count(*) FILTER (WHERE {a}), min(id, {SHOWN_IDS}) FILTER (WHERE {a})" for a in SHARED_PAIRS)
    row = connection.execute(
        f"SELECT {tallies} FROM (SELECT id, {flags} FROM "
        f"(SELECT {ident} AS id, {split} AS split FROM scan WHERE {ident} IS NOT NULL) "
        f"WHERE split <> 'test' AND id IN (SELECT {ident} FROM scan WHERE {split} = 'test' AND {ident} IS NOT NULL) "
        "GROUP BY id)"
    ).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    shared = {
        f"{a}&test": SharedIds(count=row[2 * i], smallest=list(row[2 * i + 1] or []))
        for i, a in enumerate(SHARED_PAIRS)
    }
    return WindowFacts(splits=splits, shared=shared)
