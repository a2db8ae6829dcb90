"""Exact counts of the data rules over a whole stored day, by DuckDB queries over its Parquet file.

Great Expectations judges a bounded sample of a day (``GX_SAMPLE_ROWS``); the counts GX reports for the sample
(nulls, values outside the domain or the range, repeated ids, the row count, the newest time) are then replaced
by the same counts over every row, and each verdict recomputed from them with the expectation's own ``mostly``.
So a check of a day of any size is exact, and its description keeps GX's words and examples (from the sample).
When the sample holds every row, the counts are the ones GX found: nothing changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml_assets.data.rules import TYPED, Expect, Rule
from ml_assets.settings import sample_rows
from resources.parquet_tables import TableScan, quoted

GX_SAMPLE_ROWS = sample_rows(100_000)  # rows Great Expectations judges per day; the counts are over every row


@dataclass(frozen=True)
class Counts:
    """What GX reports for one expectation, over every row: ``element_count`` rows, ``unexpected_count`` of them
    breaking it, ``missing_count`` nulls it skips (None where it counts none), or an ``observed_value``."""

    element_count: int | None = None
    unexpected_count: int | None = None
    missing_count: int | None = None
    observed_value: Any = None


Key = tuple[str, str, str | None]  # rule name, GX expectation type (snake case), column


def key(rule: str, expectation_type: str, column: str | None) -> Key:
    return rule, expectation_type, column


def snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def exact_counts(scan: TableScan, rules: Sequence[Rule]) -> dict[Key, Counts]:
    """Every typed rule's counts over the scan's rows, in one DuckDB query (repeated ids in one more)."""
    parts: dict[Key, dict[str, str]] = {}
    for rule in rules:
        if rule.frame != TYPED:
            continue
        for e in rule.expects:
            sql = _aggregates(e, scan.dtypes)
            if sql is not None:
                parts[key(rule.name, snake(e.type), e.kwargs.get("column"))] = sql
    selects = [
        f"{sql} AS {quoted(f'{i}.{field}')}" for i, fields in enumerate(parts.values()) for field, sql in fields.items()
    ]
    if not selects:
        return {}
    row = scan.query(f"SELECT {', '.join(selects)} FROM scan").iloc[0]
    out: dict[Key, Counts] = {}
    for i, (k, fields) in enumerate(parts.items()):
        values = {field: row[f"{i}.{field}"] for field in fields}
        out[k] = Counts(
            **{f: (None if pd.isna(v) else int(v)) for f, v in values.items() if f != "observed_value"},
            observed_value=_plain(values.get("observed_value")),
        )
    return out


def _aggregates(e: Expect, dtypes: Mapping[str, str]) -> dict[str, str] | None:
    """The SQL aggregates giving one expectation's counts, or None for what the sample's schema answers."""
    column = e.kwargs.get("column")
    if column is not None and column not in dtypes:
        return None  # a missing column fails its ExpectColumnToExist
    c = quoted(column) if column is not None else ""
    rows, missing = "count(*)", f"count(*) - count({c})"
    if e.type == "ExpectTableRowCountToBeBetween":
        return {"observed_value": rows}
    if e.type == "ExpectColumnMaxToBeBetween":
        return {"observed_value": f"max({c})"}
    if e.type == "ExpectColumnValuesToNotBeNull":
        return {"element_count": rows, "unexpected_count": missing}
    if e.type == "ExpectColumnValuesToBeInSet":
        values = ", ".join(_literal(v) for v in e.kwargs["value_set"])
        outside = f"CAST({c} AS VARCHAR) NOT IN ({values})" if values else "TRUE"
        return {"element_count": rows, "missing_count": missing, "unexpected_count": f"count({c}) FILTER ({outside})"}
    if e.type == "ExpectColumnValuesToBeBetween":
        lo, hi = e.kwargs.get("min_value"), e.kwargs.get("max_value")
        bounds = ([f"{c} < {float(lo)!r}"] if lo is not None else []) + (
            [f"{c} > {float(hi)!r}"] if hi is not None else []
        )
        outside = " OR ".join(bounds) or "FALSE"
        return {"element_count": rows, "missing_count": missing, "unexpected_count": f"count({c}) FILTER ({outside})"}
    if e.type == "ExpectColumnValuesToBeUnique":
        repeated = (
            f"(SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM scan WHERE {c} IS NOT NULL "
            f"GROUP BY {c} HAVING count(*) > 1))"
        )
        return {"element_count": rows, "missing_count": missing, "unexpected_count": repeated}
    return None


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _plain(value: Any) -> Any:
    """A DuckDB scalar as GX gives it (timestamps as pandas Timestamps, numbers as Python numbers)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp) or hasattr(value, "isoformat"):
        return pd.Timestamp(value)
    return value.item() if hasattr(value, "item") else value


def apply_exact(found: Mapping[str, list[Any]], rules: Sequence[Rule], counts: Mapping[Key, Counts]) -> None:
    """Replace the counts in GX's results on a sample (``found``, by rule name) with the whole day's, and each
    verdict with the one those counts give; results GX raised on, or without counts, are kept as they are."""
    expects = {key(r.name, snake(e.type), e.kwargs.get("column")): e for r in rules for e in r.expects}
    for name, results in found.items():
        for r in results:
            k = key(name, r.expectation_config.type, r.expectation_config.kwargs.get("column"))
            if k in counts and k in expects and r.result is not None:
                r.success = _patch(r.result, counts[k], expects[k], r.success)


def _patch(result: dict[str, Any], c: Counts, e: Expect, success: bool) -> bool:
    """Write the whole day's counts into one GX result, as GX words them; return the verdict they give."""
    kw = e.kwargs
    if c.element_count is None:  # an observed value: a row count or a newest time
        result["observed_value"] = c.observed_value
        if c.observed_value is None:
            return success
        lo, hi = kw.get("min_value"), kw.get("max_value")
        return (lo is None or c.observed_value >= lo) and (hi is None or c.observed_value <= hi)
    rows, unexpected = c.element_count, c.unexpected_count or 0
    missing = c.missing_count or 0
    given = rows - missing
    result["element_count"], result["unexpected_count"] = rows, unexpected
    if c.missing_count is not None:
        result["missing_count"] = missing
        result["missing_percent"] = missing / rows * 100 if rows else None
        result["unexpected_percent_total"] = unexpected / rows * 100 if rows else None
        result["unexpected_percent_nonmissing"] = unexpected / given * 100 if given else None
    result["unexpected_percent"] = unexpected / given * 100 if given else None
    if not given:
        return success
    return (given - unexpected) / given >= kw.get("mostly", 1.0)
