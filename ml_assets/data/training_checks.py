"""Checks on training_set: class balance, split overlap, single-feature leakage, and drift (PSI).

These are statistics over a whole training window rather than row rules, so they are computed directly (DuckDB,
pandas and scikit-learn), not with GX. A window can be larger than memory, so nothing here loads it whole: class
balance and split overlap are exact queries over the window's files (``ml_assets.data.window_facts``); the leakage
checks and drift judge seeded samples of at most SAMPLE_ROWS rows per split (every row of a smaller split, so a
small window is judged exactly as a frame of it would be) and say how many rows they read (``sample_rows``). A model
near the leakage limit, or a shifted feature, shows as clearly on 200,000 rows as on all of them (a PSI's sampling
bias at that size is about bins / rows: under 1e-3 for up to 200 categories, against a limit of 0.2), and samples
keep one implementation of each score. ``psi`` lives here as the one implementation of the population stability
index: monitoring reuses it for served inputs against the training set. Label statistics use the labeled rows only
(unlabeled rows are kept in the window but never trained or judged on).

Leakage has two tests, because one misses what the other sees: a feature's ROC AUC alone (a continuous stand-in
for the label), and label purity: a feature value whose rows (nearly) all carry one label, where that label is
not already that common, "fixes" the label; a feature whose label-fixing values cover a large share of the rows
is an outcome recorded after the fact (say a "re-offended at all" flag next to "re-offended within two years"),
even when its AUC stays under the limit because its other values carry no signal. Columns that rebuild the label
only together (arrival minus scheduled arrival) pass both: ``multivariate_leakage`` fits small models on all
features at once (``ml_assets.data.leakage``) and names the features they rely on.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ml_assets import markdown
from ml_assets.automation import with_its_asset
from ml_assets.data.leakage import FITTED_ROWS, joint_leakage
from ml_assets.data.splits import SPLIT, SPLITS
from ml_assets.data.window import TrainingWindow
from ml_assets.data.window_facts import SplitFacts, WindowFacts, facts_of_frame, facts_of_window
from ml_assets.dataset import DatasetSpec
from ml_assets.settings import sample_rows

PSI_FLOOR = 1e-4  # share given to an empty bin, so a bin seen on one side only counts, finitely
NULL = "<null>"
SAMPLE_ROWS = sample_rows(
    200_000
)  # rows per split a sampled check reads (seeded); more only narrow an estimate already tight
SAMPLE_SEED = 0
PURITY_MIN_EXPECTED = 10  # a value is called pure only where the other label should have shown this many times
PURITY_LIFT = 10  # a pure value's other label must be this many times rarer than in all rows
TOP_FEATURES = 10  # rows of the leakage table
CHECKS = ("class_balance", "split_overlap", "single_feature_leakage", "multivariate_leakage", "feature_drift")
ON_VALIDATION = "the validation split"
HOLDOUT_SHARE = 0.25  # without two labels in validation, the joint check scores the newest quarter of the train rows


def psi(expected: pd.Series | np.ndarray, actual: pd.Series | np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``: sum((a - e) * ln(a / e)) over bins.

    Numeric data: bins at the quantiles of ``expected`` (ties merged, so a column with few values gets fewer
    bins). Anything else: one bin per category. Nulls form a bin of their own. Empty bins count as a share of
    PSI_FLOOR. About 0.1 is a small shift, 0.2 or more a large one.
    """
    e, a = pd.Series(expected), pd.Series(actual)
    if len(e) == 0 or len(a) == 0:
        raise ValueError(f"psi needs rows on both sides, got {len(e)} expected and {len(a)} actual")
    if _is_number(e) and _is_number(a):
        ev, av = _floats(e), _floats(a)
        present = ev[~np.isnan(ev)]
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))[1:-1] if len(present) else ev[:0]
        e_share, a_share = _binned_shares(ev, edges), _binned_shares(av, edges)
    else:
        e_share, a_share = _category_shares(e), _category_shares(a)
        keys = e_share.index.union(a_share.index)
        e_share, a_share = e_share.reindex(keys, fill_value=0.0), a_share.reindex(keys, fill_value=0.0)
    pe = np.clip(np.asarray(e_share, dtype="float64"), PSI_FLOOR, None)
    pa = np.clip(np.asarray(a_share, dtype="float64"), PSI_FLOOR, None)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def _floats(s: pd.Series) -> np.ndarray:
    return s.astype("float64").to_numpy(dtype="float64", na_value=np.nan)


def _binned_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin between ``edges``, with a last bin for nulls."""
    codes = np.searchsorted(edges, values, side="right")
    codes[np.isnan(values)] = len(edges) + 1
    return np.bincount(codes, minlength=len(edges) + 2) / len(values)


def _category_shares(s: pd.Series) -> pd.Series:
    shares = s.value_counts(normalize=True, dropna=False)
    shares.index = pd.Index([NULL if pd.isna(k) else str(k) for k in shares.index])
    return shares.groupby(level=0).sum()


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def _features(spec: DatasetSpec) -> list[str]:
    return [*spec.numeric_features, *spec.categorical_features]


def _result(name: str, passed: bool, description: str, metadata: dict[str, Any], warn: bool = False):
    return dg.AssetCheckResult(
        asset_key="training_set",
        check_name=name,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.WARN if warn else dg.AssetCheckSeverity.ERROR,
        description=" ".join(description.split()),  # one line, whatever a category value holds
        metadata=metadata,
    )


def check_class_balance(spec: DatasetSpec, facts: WindowFacts) -> dg.AssetCheckResult:
    """Each split's positive rate (labeled rows, every one counted) within spec.training.class_balance; a split
    without labeled rows fails too."""
    lo, hi = spec.training.class_balance
    label = spec.label_column
    rows, problems = [], []
    for split in SPLITS:
        counts = facts.splits[split]
        rate = counts.positive_rate
        rows.append(
            {
                "split": split,
                "rows": counts.rows,
                "labeled": counts.labeled,
                "positives": counts.positives,
                "positive_rate": round(rate, 4),
            }
        )
        if not counts.labeled:
            problems.append(_no_labels(spec, counts, split))
        elif not lo <= rate <= hi:
            problems.append(f"split {split!r} positive rate {rate:.3f} outside [{lo}, {hi}]")
    rule = f"positive rate ({spec.label_column!r} = 1) of every split within [{lo}, {hi}]"
    return _result(
        "class_balance",
        not problems,
        f"FAILED class_balance on {label!r}: {'; '.join(problems)}" if problems else f"PASSED: {rule}",
        {"rule": rule, "splits": dg.MetadataValue.md(markdown.table(rows))},
    )


UNJUDGED = {  # what a split without labeled rows leaves undone
    "train": "there is nothing to train on",
    "validation": "no model can be selected or stopped early on it",
    "test": "no model can be judged on it",
}


def _no_labels(spec: DatasetSpec, counts: SplitFacts, split: str) -> str:
    """Why a split without labeled rows fails: its rows, its days, and what it leaves undone."""
    if not counts.rows:
        return f"split {split!r} is empty: {UNJUDGED[split]}"
    return (
        f"split {split!r} has no labeled rows ({counts.rows} rows, {counts.first_day} .. {counts.last_day}, all "
        f"with a null {spec.target.name!r}): {UNJUDGED[split]}"
    )


def check_split_overlap(spec: DatasetSpec, facts: WindowFacts) -> dg.AssetCheckResult:
    """No id in both train and test, nor in both validation and test (every id counted): the test set must be
    unseen rows."""
    ident = spec.id.name
    overlaps = facts.shared
    problems = [
        f"{v.count} ids in both {k.replace('&', ' and ')}, e.g. {v.smallest[:5]}"
        for k, v in overlaps.items()
        if v.count
    ]
    rule = f"no {ident!r} in both train and test, nor in both validation and test"
    return _result(
        "split_overlap",
        not problems,
        f"FAILED split_overlap on {ident!r}: {'; '.join(problems)}" if problems else f"PASSED: {rule}",
        {
            "rule": rule,
            "overlap_counts": dg.MetadataValue.json({k: v.count for k, v in overlaps.items()}),
            "sample_ids": dg.MetadataValue.json({k: [str(i) for i in v.smallest] for k, v in overlaps.items()}),
        },
    )


def single_feature_auc(spec: DatasetSpec, train: pd.DataFrame) -> dict[str, float]:
    """ROC AUC of each feature alone on the train split (direction-free, >= 0.5).

    Numerics as they are (nulls as a value below all others); categoricals by target-rate encoding (the
    positive rate of each category, nulls a category of their own).
    """
    from sklearn.metrics import roc_auc_score

    y = train[spec.label_column].astype(int).to_numpy()
    out: dict[str, float] = {}
    for name in _features(spec):
        x = train[name]
        if name in spec.numeric_features:
            v = x.astype("float64")
            score = v.fillna(v.min() - 1 if v.notna().any() else 0.0).to_numpy()
        else:
            key = x.astype("string").fillna(NULL)
            score = key.map(pd.Series(y, index=x.index).groupby(key).mean()).astype("float64").to_numpy()
        auc = float(roc_auc_score(y, score))
        out[name] = max(auc, 1.0 - auc)
    return out


def label_purity(spec: DatasetSpec, train: pd.DataFrame, purity: float) -> dict[str, dict[str, Any]]:
    """Per feature: the share of ``train`` rows whose feature value fixes the label, and the largest such value.

    A value fixes the label when at least ``purity`` of its rows carry one label, the other label is PURITY_LIFT
    times rarer among them than among all rows, and the value has enough rows that the other label would have
    shown PURITY_MIN_EXPECTED times at its overall rate (so neither a rare label nor a rare value makes a value
    look pure by chance). Nulls count as a value; numerics by exact value.
    """
    y = train[spec.label_column].astype(int).to_numpy()
    n, base = len(y), float(y.mean())
    out: dict[str, dict[str, Any]] = {}
    for name in _features(spec):
        key = train[name].astype("string").fillna(NULL)
        stats = pd.DataFrame({"key": key.to_numpy(), "y": y}).groupby("key", sort=False)["y"].agg(["size", "mean"])
        size, rate = stats["size"], stats["mean"]
        positive = (
            (rate >= purity) & ((1 - rate) * PURITY_LIFT <= 1 - base) & (size * (1 - base) >= PURITY_MIN_EXPECTED)
        )
        negative = (rate <= 1 - purity) & (rate * PURITY_LIFT <= base) & (size * base >= PURITY_MIN_EXPECTED)
        pure = stats[positive | negative]
        top = pure["size"].idxmax() if len(pure) else None
        out[name] = {
            "pure_share": float(pure["size"].sum() / n) if n else 0.0,
            "pure_values": len(pure),
            "largest_pure_value": None
            if top is None
            else f"{top} ({int(pure.loc[top, 'size'])} rows, positive rate {pure.loc[top, 'mean']:.3f})",
        }
    return out


@dataclass(frozen=True)
class SingleFeatureScores:
    """Each feature alone on labeled train rows (at most SAMPLE_ROWS, a fixed sample: an AUC near the limit is
    estimated well from it): its ROC AUC and its label purity. The check and ``spec infer`` judge by these."""

    rows: int  # the rows scored
    aucs: pd.Series
    purities: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, spec: DatasetSpec, train: pd.DataFrame) -> "SingleFeatureScores":
        if len(train) > SAMPLE_ROWS:
            train = train.sample(SAMPLE_ROWS, random_state=SAMPLE_SEED)
        aucs = pd.Series(single_feature_auc(spec, train))
        return cls(len(train), aucs, label_purity(spec, train, spec.training.leakage_purity))

    def leaks(self, spec: DatasetSpec) -> dict[str, str]:
        """Per feature that gives the label away alone, why (its name not repeated): its ROC AUC at or above
        ``training.leakage_auc``, or values that fix the label on ``training.leakage_share`` of the rows (or both)."""
        limit, share = spec.training.leakage_auc, spec.training.leakage_share
        out: dict[str, list[str]] = {}
        for name, auc in self.aucs.items():
            if auc >= limit:
                out.setdefault(str(name), []).append(f"alone scores ROC AUC {auc:.4f} (limit {limit})")
        for name, p in self.purities.items():
            if p["pure_share"] >= share:
                out.setdefault(name, []).append(
                    f"values that fix the label cover {p['pure_share']:.1%} of the train rows (limit "
                    f"{share:.0%}), largest {p['largest_pure_value']}"
                )
        return {name: "; ".join(why) for name, why in out.items()}


def check_leakage(spec: DatasetSpec, ts: pd.DataFrame, *, labeled_rows: int | None = None) -> dg.AssetCheckResult:
    """No single feature gives the label away on the labeled train rows of ``ts`` (a training_set frame or a sample
    of one; at most SAMPLE_ROWS are scored): neither by its ROC AUC alone (>= spec.training.leakage_auc) nor by
    values that fix the label on a large share of rows (label purity). A train split without both labels cannot be
    judged: the check fails, saying so, with the split's ``labeled_rows`` (default: those in ``ts``)."""
    cfg = spec.training
    limit, purity, share = cfg.leakage_auc, cfg.leakage_purity, cfg.leakage_share
    train = spec.labeled(ts[ts[SPLIT] == "train"])
    rule = (
        f"every feature alone scores ROC AUC < {limit} on the labeled train rows, and no feature's values that "
        f"carry one label on >= {purity:g} of their rows cover >= {share:g} of them"
    )
    if train[spec.label_column].nunique() < 2:
        labeled = len(train) if labeled_rows is None else labeled_rows
        why = f"could not judge: the train split has {labeled} labeled rows and fewer than two labels"
        return _result(  # a check that could not judge is not a pass (class_balance fails too, saying why)
            "single_feature_leakage",
            False,
            f"FAILED single_feature_leakage: {why} (see class_balance)",
            {"rule": rule, "note": why},
        )
    scored = SingleFeatureScores.of(spec, train)
    aucs, purities = scored.aucs, scored.purities
    problems = [f"{name!r}: {why}" for name, why in scored.leaks(spec).items()]
    scores = pd.DataFrame(
        {
            "roc_auc": aucs,
            "pure_share": pd.Series({k: v["pure_share"] for k, v in purities.items()}),
            "largest_pure_value": pd.Series({k: v["largest_pure_value"] for k, v in purities.items()}),
        }
    )
    scores["risk"] = np.maximum(scores["roc_auc"] / limit, scores["pure_share"] / share)
    scores = scores.sort_values("risk", ascending=False)
    top = scores.head(TOP_FEATURES).drop(columns="risk")
    first = scores.index[0]
    return _result(
        "single_feature_leakage",
        not problems,
        f"FAILED single_feature_leakage: {'; '.join(problems)}; a feature this telling is usually the label in "
        "disguise or an outcome recorded after it"
        if problems
        else f"PASSED: {rule} (closest {first!r}: AUC {scores.loc[first, 'roc_auc']:.3f}, "
        f"label-fixing share {scores.loc[first, 'pure_share']:.3f})",
        {
            "rule": rule,
            "max_auc": float(aucs.max()),
            "max_pure_share": float(scores["pure_share"].max()),
            "top_features": dg.MetadataValue.md(markdown.table(top, index="feature", digits=4)),
            "train_rows_scored": scored.rows,
            "sample_rows": scored.rows,
            "sample_split": "train (labeled rows)",
        },
    )


def _later_rows(spec: DatasetSpec, ts: pd.DataFrame, train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """What the joint models fit and what they are scored on: the train rows and the labeled validation rows, or,
    when validation lacks a label, the older and the newest HOLDOUT_SHARE of the train rows (by event time)."""
    label = spec.label_column
    validation = spec.labeled(ts[ts[SPLIT] == "validation"])
    if validation[label].nunique() == 2:
        return train, validation, ON_VALIDATION
    newest = train[spec.time.name].rank(method="first") > len(train) * (1 - HOLDOUT_SHARE)
    return train[~newest], train[newest], f"the newest {HOLDOUT_SHARE:.0%} of the train rows (validation has one label)"


def check_joint_leakage(spec: DatasetSpec, ts: pd.DataFrame) -> dg.AssetCheckResult:
    """No combination of features gives the label away: small models (a logistic regression and shallow boosted
    trees) fitted on all features of the labeled train rows score ROC AUC < spec.training.joint_leakage_auc on
    later rows. A check that cannot judge (one label only) fails, saying so."""
    limit = spec.training.joint_leakage_auc
    label = spec.label_column
    rule = (
        f"small models on all features of the labeled train rows (logistic regression, boosted trees of depth 3) "
        f"score ROC AUC < {limit} on later rows"
    )
    train = spec.labeled(ts[ts[SPLIT] == "train"])
    fit, scoring, scored_on = _later_rows(spec, ts, train)
    if fit[label].nunique() < 2 or scoring[label].nunique() < 2:
        why = (
            f"could not judge: {len(fit)} labeled rows to fit and {len(scoring)} to score on ({scored_on}) "
            "do not both hold the two labels (see class_balance)"
        )
        return _result(
            "multivariate_leakage", False, f"FAILED multivariate_leakage: {why}", {"rule": rule, "note": why}
        )
    found = joint_leakage(spec, fit, scoring, limit)
    singles = pd.Series(single_feature_auc(spec, fit.sample(min(len(fit), FITTED_ROWS), random_state=0)))
    single = f"the best single feature {singles.idxmax()!r} scores {singles.max():.3f}"
    importance = pd.DataFrame(
        [{"feature": d.feature, "auc_drop_when_shuffled": d.auc_drop} for d in found.importance[:TOP_FEATURES]]
    )
    metadata = {
        "rule": rule,
        "sample_rows": len(fit) + len(scoring),
        "sample_split": "train, validation (labeled rows)" if scored_on == ON_VALIDATION else "train (labeled rows)",
        "roc_auc": found.roc_auc,
        "learner": found.learner,
        **{f"roc_auc_{name.split(' ')[0]}": auc for name, auc in found.learner_auc.items()},
        "best_single_feature_auc": float(singles.max()),
        "scored_on": scored_on,
        "fitted_rows": found.fitted_rows,
        "scored_rows": found.scored_rows,
        "relies_on": dg.MetadataValue.md(markdown.table(importance, digits=4)),
    }
    if found.roc_auc < limit:
        top = found.importance[0]
        return _result(
            "multivariate_leakage",
            True,
            f"PASSED: {found.learner} on all features scores ROC AUC {found.roc_auc:.3f} on {scored_on} (limit "
            f"{limit}); it relies most on {top.feature!r}; {single}",
            metadata,
        )
    names = ", ".join(repr(f) for f in found.carriers)
    if found.carriers_auc is not None:
        alone = f"{names} alone score{'s' if len(found.carriers) == 1 else ''} {found.carriers_auc:.4f}"
    elif names:
        alone = f"it relies most on {names}"
    else:  # shuffling any one feature costs nothing: copies of the same signal stand in for each other
        alone = "no few features rebuild it alone (redundant features carry it together)"
    return _result(
        "multivariate_leakage",
        False,
        f"FAILED multivariate_leakage: {found.learner} fitted on the train rows scores ROC AUC {found.roc_auc:.4f} on "
        f"{scored_on} (limit {limit}), while {single}: {alone}; features that rebuild the label are usually the label "
        "in disguise (say an arrival time beside its scheduled time) or an outcome recorded after it",
        metadata | {"carrying_features": ", ".join(found.carriers)},
    )


def feature_psi(spec: DatasetSpec, previous: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    """PSI of every feature of ``current`` against ``previous``."""
    return {name: psi(previous[name], current[name]) for name in _features(spec)}


def check_drift(
    spec: DatasetSpec,
    ts: pd.DataFrame,
    previous: pd.DataFrame | None,
    note: str = "",
    *,
    previous_rows: int | None = None,
) -> Any:
    """PSI of each feature of ``ts`` against ``previous`` (the training sets, or samples of them, from which
    ``previous_rows`` says how many rows the previous window holds); warning severity (drift is news, not an
    error)."""
    limit = spec.training.drift_psi
    rule = f"PSI of every feature against the previous training set < {limit}"
    if previous is None or len(previous) == 0 or len(ts) == 0:
        why = note or "no previous training set to compare with"
        return _result("feature_drift", True, f"PASSED (not evaluated): {why}", {"rule": rule, "note": why}, True)
    values = pd.Series(feature_psi(spec, previous, ts)).sort_values(ascending=False)
    drifted = values[values >= limit]
    problems = [f"{name!r} PSI {v:.3f}" for name, v in drifted.items()]
    return _result(
        "feature_drift",
        drifted.empty,
        f"FAILED feature_drift: {'; '.join(problems)} (limit {limit}) against the previous training set"
        if problems
        else f"PASSED: {rule} (largest {values.index[0]!r} {values.iloc[0]:.3f})",
        {
            "rule": rule,
            "max_psi": float(values.iloc[0]),
            "psi_per_feature": dg.MetadataValue.md(markdown.table(values.rename("psi").to_frame(), index="feature")),
            "previous_rows": len(previous) if previous_rows is None else previous_rows,
            "sample_rows": len(ts),
            "previous_sample_rows": len(previous),
            "sample_split": "every split of both windows",
            **({"note": note} if note else {}),
        },
        True,
    )


def validate_training_set(
    spec: DatasetSpec, ts: pd.DataFrame, previous: pd.DataFrame | None = None, note: str = ""
) -> Iterator[dg.AssetCheckResult]:
    """Every training_set check on an in-memory training_set frame (a small one: a test's, a notebook's), one
    AssetCheckResult each: the verdicts ``check_window`` gives on the window those rows are."""
    facts = facts_of_frame(spec, ts)
    yield check_class_balance(spec, facts)
    yield check_split_overlap(spec, facts)
    yield check_leakage(spec, ts)
    yield check_joint_leakage(spec, ts)
    yield check_drift(spec, ts, previous, note)


def check_window(
    spec: DatasetSpec,
    window: TrainingWindow,
    previous: TrainingWindow | None = None,
    note: str = "",
    sample_rows: int = SAMPLE_ROWS,
) -> Iterator[dg.AssetCheckResult]:
    """Every training_set check on a window of any size, one AssetCheckResult each: class balance and overlap by
    query over every row, leakage on at most ``sample_rows`` labeled rows of train and of validation, drift on at
    most ``sample_rows`` rows of each window (seeded samples; all rows of a smaller split). Memory follows
    ``sample_rows``, not the windows."""
    facts = facts_of_window(spec, window)
    yield check_class_balance(spec, facts)
    yield check_split_overlap(spec, facts)
    labeled = labeled_sample(spec, window, sample_rows)
    yield check_leakage(spec, labeled, labeled_rows=facts.splits["train"].labeled)
    yield check_joint_leakage(spec, labeled)
    del labeled
    if previous is None:
        yield check_drift(spec, pd.DataFrame(), None, note)
        return
    features = _features(spec)
    current = window.sample(None, sample_rows, features, seed=SAMPLE_SEED)
    before = previous.sample(None, sample_rows, features, seed=SAMPLE_SEED)
    before_rows = (
        len(before) if len(before) < sample_rows else previous.rows.where(not_null=(previous.time_column,)).count_rows()
    )
    yield check_drift(spec, current, before, note, previous_rows=before_rows)


def labeled_sample(spec: DatasetSpec, window: TrainingWindow, rows: int) -> pd.DataFrame:
    """At most ``rows`` labeled rows of train and of validation (seeded; all of a smaller split), as a training_set
    frame of the columns the leakage checks read."""
    columns = [*_features(spec), spec.label_column, spec.time.name]
    parts = []
    for split in ("train", "validation"):
        part = window.sample(split, rows, columns, labeled=True, seed=SAMPLE_SEED)
        part[SPLIT] = pd.Series(split, index=part.index, dtype="string[pyarrow]")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def previous_partition_key(partitions_def: dg.PartitionsDefinition | None, key: str) -> str | None:
    """The partition before ``key`` (the previous training window), or None at the first one."""
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return None
    window = partitions_def.get_prev_partition_window(partitions_def.time_window_for_partition_key(key).start)
    return None if window is None else partitions_def.get_partition_key_for_timestamp(window.start.timestamp())


def _load_previous(
    context: dg.AssetCheckExecutionContext, partitions_def: dg.PartitionsDefinition | None
) -> tuple[TrainingWindow | None, str]:
    """The previous partition of training_set (its TrainingWindow record, not its rows), loaded through its IO
    manager, or None with the reason.

    Dagster does not let a check take its own asset twice (once per partition mapping) as inputs, so the
    previous partition is loaded explicitly, only when the instance has materialized it.
    """
    op = context.op_execution_context
    if not op.has_partition_key:
        return None, "unpartitioned run: no previous training set"
    prev = previous_partition_key(partitions_def, op.partition_key)
    if prev is None:
        return None, f"partition {op.partition_key} is the first: no previous training set"
    key = dg.AssetKey("training_set")
    if prev not in context.instance.get_materialized_partitions(key):
        return None, f"previous training set (partition {prev}) was never materialized"
    return op.load_asset_value(key, partition_key=prev), f"compared with training_set partition {prev}"


def build_training_set_checks(
    spec: DatasetSpec, partitions_def: dg.PartitionsDefinition | None = None, sample_rows: int = SAMPLE_ROWS
) -> dg.AssetChecksDefinition:
    """The training_set checks as one ``@multi_asset_check``; blocking except drift, which warns. The sampled checks
    read at most ``sample_rows`` rows per split (``check_window``)."""
    descriptions = {
        "class_balance": f"positive rate of every split within {list(spec.training.class_balance)}",
        "split_overlap": f"no {spec.id.name!r} in both train and test, nor validation and test",
        "single_feature_leakage": f"no feature alone scores ROC AUC >= {spec.training.leakage_auc} on train",
        "multivariate_leakage": f"no combination of features scores ROC AUC >= {spec.training.joint_leakage_auc} "
        "(small models on all features, fitted on train, scored on later rows)",
        "feature_drift": f"PSI of every feature against the previous training set < {spec.training.drift_psi}",
    }
    specs = [
        dg.AssetCheckSpec(
            name,
            asset="training_set",
            description=descriptions[name],
            blocking=True,
            partitions_def=partitions_def,
            automation_condition=with_its_asset(),
            metadata={"severity": "warn" if name == "feature_drift" else "error"},
        )
        for name in CHECKS
    ]

    @dg.multi_asset_check(specs=specs, name="training_set_checks", ins={"training_set": dg.AssetIn("training_set")})
    def training_set_checks(
        context: dg.AssetCheckExecutionContext, training_set: TrainingWindow
    ) -> Iterator[dg.AssetCheckResult]:
        previous, note = _load_previous(context, partitions_def)
        results = check_window(spec, training_set, previous, note, sample_rows)
        # failed checks first: the UI lists a run's results in the order they were emitted
        yield from sorted(results, key=lambda r: r.passed)

    return training_set_checks
