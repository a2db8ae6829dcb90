"""GX results turned into Dagster check results a person can act on: what was observed, the rule, and a sample
of the offending rows (their ids, the value as typed and as it landed)."""

import json
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from ml_assets import markdown
from ml_assets.data.rules import LANDED, TYPED, Rule
from ml_assets.dataset import Severity

SAMPLE_ROWS = 5


def severity_of(severity: Severity) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.WARN if severity == "warn" else dg.AssetCheckSeverity.ERROR


def _exception(r: Any) -> str | None:
    info = r.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for v in info.values():  # keyed by metric when several metrics raised
        if isinstance(v, dict) and v.get("raised_exception"):
            return str(v.get("exception_message"))
    return None


def _sample(frames: Mapping[str, pd.DataFrame], rule: Rule, index: list[Any], id_col: str) -> str | None:
    if not index:
        return None
    frame = frames[rule.frame]
    idx = [i for i in index if i in frame.index][:SAMPLE_ROWS]
    cols = [c for c in dict.fromkeys([id_col, rule.column]) if c is not None and c in frame.columns]
    sample = frame.loc[idx, cols].copy()
    landed = frames.get(LANDED)
    if rule.frame == TYPED and landed is not None and rule.column in landed.columns:
        sample[f"{rule.column} (as landed)"] = landed.loc[[i for i in idx if i in landed.index], rule.column]
    return markdown.table(sample, index="row")


def _describe(rule: Rule, r: Any) -> tuple[str, dict[str, Any]]:
    """What GX observed for one expectation, in words and as numbers."""
    res, etype = r.result or {}, r.expectation_config.type
    observed: dict[str, Any] = {}
    for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent", "missing_count"):
        if res.get(key) is not None:
            v = res[key]
            observed[key] = v.isoformat() if isinstance(v, pd.Timestamp) else v
    unexpected = res.get("unexpected_count")
    pct = res.get("unexpected_percent")
    values = list(dict.fromkeys(map(str, res.get("partial_unexpected_list") or [])))[:SAMPLE_ROWS]
    col = rule.column
    if etype == "expect_column_to_exist":
        return f"column {col!r} is missing", observed
    if etype == "expect_column_values_to_be_in_type_list":
        if res.get("observed_value"):
            return f"{col!r} landed as type {res['observed_value']}", observed
        return (
            f"{col!r}: {unexpected} of {res.get('element_count')} values landed as another type, e.g. {values}",
            observed,
        )
    if etype == "expect_table_row_count_to_be_between":
        return f"row count is {res.get('observed_value')}", observed
    if etype == "expect_column_max_to_be_between":
        return f"newest {col!r} is {observed.get('observed_value', 'absent')}", observed
    what = {
        "expect_column_values_to_not_be_null": "null",
        "expect_column_values_to_be_in_set": "outside the allowed categories",
        "expect_column_values_to_be_between": "out of range",
        "expect_column_values_to_be_unique": "duplicated",
    }.get(etype, "unexpected")
    if unexpected is None:
        return f"{col!r}: {etype} failed", observed
    text = f"{col!r}: {unexpected} of {res.get('element_count')} values ({(pct or 0):.2f}%) {what}"
    return (text + (f", e.g. {values}" if values and what != "null" else "")), observed


def check_result(
    asset: str | None,
    rule: Rule,
    results: list[Any],
    frames: Mapping[str, pd.DataFrame],
    id_col: str,
    extra_problems: Sequence[str] = (),
    extra_metadata: Mapping[str, Any] | None = None,
) -> dg.AssetCheckResult:
    problems = list(extra_problems)
    observed: dict[str, Any] = {}
    sample_index: list[Any] = []
    for r in results:
        text, obs = _describe(rule, r)
        observed[r.expectation_config.type.removeprefix("expect_")] = obs
        error = _exception(r)
        if error:
            problems.append(f"{text}; GX raised: {error}")
        elif not bool(r.success):
            problems.append(text)
            sample_index = sample_index or list((r.result or {}).get("partial_unexpected_index_list") or [])
    passed = not problems
    where = f"column {rule.column!r}" if rule.column else "table"
    description = (
        f"PASSED {rule.name}: {rule.rule}"
        if passed
        else f"FAILED {rule.name} on {where}: {'; '.join(problems)}. Rule: {rule.rule}"
    )
    metadata: dict[str, Any] = {
        "rule": rule.rule,
        "observed": dg.MetadataValue.json(_jsonable(observed)),
        **(extra_metadata or {}),
    }
    if not passed:
        sample = _sample(frames, rule, sample_index, id_col)
        if sample:
            metadata["offending_rows"] = dg.MetadataValue.md(sample)
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=rule.name,
        passed=passed,
        severity=severity_of(rule.severity),
        description=description,
        metadata=metadata,
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, allow_nan=True).replace("NaN", "null"))
