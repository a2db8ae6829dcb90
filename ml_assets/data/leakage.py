"""Leakage that no single column shows: columns that together rebuild the label.

An arrival time and its scheduled time each say little about lateness; their difference *is* lateness. The
single-feature check judges one column at a time and passes such a pair. Here small models are fitted on all
features at once, on the labeled train rows, and scored on later rows (as the window is used): near-perfect
separation by a model this small is the label in disguise, not signal. Two learners, because each misses what the
other sees: a logistic regression on scaled numerics and target-encoded categories finds linear combinations
(differences, sums, balances) that axis-aligned trees only approximate in steps; shallow gradient-boosted trees find
thresholds and interactions that a linear model cannot. Honest data stays far below the default limit (0.99): on
the shipped data the better learner scores ROC AUC about 0.92 (Adult), 0.75 (COMPAS) and 0.67 (Minneapolis stops),
where the reproduced arrival pair scores 0.9997.

What a score relies on is measured by permutation (``auc_drops``: the fall in ROC AUC when one feature's values
are shuffled across the scored rows), which the too-good model gate uses on the candidate too; the check names the
fewest of the most important features that, refitted alone, still reach the limit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_assets.dataset import DatasetSpec, with_columns

FITTED_ROWS = 20_000  # rows fitted: near-perfect separation shows as clearly on a sample
SCORED_ROWS = 10_000  # rows scored (and shuffled, once per feature, for the importance)
SMOOTHING = 20  # a category's positive rate is shrunk towards the overall rate as if it had this many more rows
MAX_CATEGORIES = 250  # boosted trees take at most 255 bins per feature: rarer categories count as missing
MAX_CARRIERS = 5  # the most features named as carrying a score
CARRIER_SHARE = 0.2  # a feature carries a score when shuffling it costs this share of the largest drop...
CARRIER_FLOOR = 0.005  # ...and at least this much ROC AUC
LOGISTIC, TREES = "logistic regression", "boosted trees (depth 3)"

Predict = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class FeatureImportance:
    """How much of a score one feature carries: the ROC AUC lost when its values are shuffled."""

    feature: str
    auc_drop: float


@dataclass(frozen=True)
class JointLeakage:
    """The best small model's score on later rows, what it relies on, and the fewest features that rebuild it."""

    roc_auc: float
    learner: str
    learner_auc: dict[str, float]
    fitted_rows: int
    scored_rows: int
    importance: list[FeatureImportance]
    carriers: list[str]  # named only when the score reached the limit
    carriers_auc: float | None  # those features alone, refitted (None when no few features reach the limit)


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def auc_drops(
    predict: Predict, frame: pd.DataFrame, y: np.ndarray, features: Sequence[str], seed: int = 0
) -> list[FeatureImportance]:
    """Permutation importance: ROC AUC of ``predict`` on ``frame`` minus its ROC AUC with each feature's values
    shuffled across the rows (one shuffle, the same for every feature), largest drop first."""
    base = roc_auc(y, predict(frame))
    order = np.random.default_rng(seed).permutation(len(frame))
    drops = []
    for name in features:
        shuffled = with_columns(frame, {name: frame[name].take(order).set_axis(frame.index)})
        drops.append(FeatureImportance(name, base - roc_auc(y, predict(shuffled))))
    return sorted(drops, key=lambda d: d.auc_drop, reverse=True)


def carrying(importance: Sequence[FeatureImportance]) -> list[FeatureImportance]:
    """The features that carry a score: a drop of at least CARRIER_SHARE of the largest and CARRIER_FLOOR, at most
    MAX_CARRIERS of them, largest first."""
    top = max((d.auc_drop for d in importance), default=0.0)
    bar = max(CARRIER_FLOOR, CARRIER_SHARE * top)
    return [d for d in importance if d.auc_drop >= bar][:MAX_CARRIERS]


# ---- the design both learners read: one column per feature --------------------------------------------------
def design(spec: DatasetSpec, train: pd.DataFrame) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A function from rows to the learners' frame: numerics as float64 (nulls NaN), categoricals as pandas
    categoricals over the train rows' most frequent MAX_CATEGORIES values (others and nulls missing)."""
    categories = {
        name: pd.Index(train[name].astype("string").value_counts().index[:MAX_CATEGORIES].astype(str))
        for name in spec.categorical_features
    }

    def frame(rows: pd.DataFrame) -> pd.DataFrame:
        out = {
            name: rows[name].astype("float64").to_numpy(dtype="float64", na_value=np.nan)
            for name in spec.numeric_features
        }
        for name, known in categories.items():
            text = rows[name].astype("string").astype(object).where(rows[name].notna(), None)
            out[name] = pd.Categorical(text, categories=known)
        return pd.DataFrame(out, index=rows.index)

    return frame


def fit_logistic(x: pd.DataFrame, y: np.ndarray) -> Predict:
    """Logistic regression on standardized numerics (missing at the mean) and target-encoded categories (each
    category's smoothed positive rate on the fitted rows): one input per feature keeps it fast on wide categories."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    base = float(y.mean())
    rates = {}
    for c in x.columns:
        if isinstance(x[c].dtype, pd.CategoricalDtype):
            stats = pd.DataFrame({"k": x[c].cat.codes, "y": y}).groupby("k")["y"].agg(["sum", "size"])
            rates[c] = (stats["sum"] + SMOOTHING * base) / (stats["size"] + SMOOTHING)

    def encode(rows: pd.DataFrame) -> pd.DataFrame:
        return with_columns(
            rows, {c: rows[c].cat.codes.map(rate).astype("float64").fillna(base) for c, rate in rates.items()}
        ).astype("float64")

    encoded = encode(x)
    mean, scale = encoded.mean(), encoded.std(ddof=0).replace(0.0, 1.0).fillna(1.0)

    def inputs(rows: pd.DataFrame) -> np.ndarray:
        return ((encode(rows) - mean) / scale).fillna(0.0).to_numpy(dtype="float64")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a separable leak stops it early: that is the finding
        model = LogisticRegression(max_iter=200).fit(inputs(x), y)
    return lambda rows: model.predict_proba(inputs(rows))[:, 1]


def fit_trees(x: pd.DataFrame, y: np.ndarray) -> Predict:
    """Sixty boosted trees of depth 3 (native missing values and categories)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=60,
        max_depth=3,
        learning_rate=0.2,
        early_stopping=False,
        categorical_features="from_dtype",
        random_state=0,
    ).fit(x, y)
    return lambda rows: model.predict_proba(rows)[:, 1]


LEARNERS: dict[str, Callable[[pd.DataFrame, np.ndarray], Predict]] = {LOGISTIC: fit_logistic, TREES: fit_trees}


def joint_leakage(spec: DatasetSpec, train: pd.DataFrame, scoring: pd.DataFrame, limit: float) -> JointLeakage:
    """Fit each learner on the labeled ``train`` rows (all features), score ``scoring``; keep the better one, its
    permutation importance, and, when it reaches ``limit``, the fewest of its most important features that alone
    (refitted) still reach it. Both frames must hold both labels."""
    if len(train) > FITTED_ROWS:
        train = train.sample(FITTED_ROWS, random_state=0)
    if len(scoring) > SCORED_ROWS:
        scoring = scoring.sample(SCORED_ROWS, random_state=0)
    from threadpoolctl import threadpool_limits

    # one thread: OpenMP's per-call start-up dominates trees this small, and worse on cores shared with other work
    with threadpool_limits(limits=1):
        return _joint_leakage(spec, train, scoring, limit)


def _joint_leakage(spec: DatasetSpec, train: pd.DataFrame, scoring: pd.DataFrame, limit: float) -> JointLeakage:
    label = spec.label_column
    y_fit, y_score = train[label].astype("int64").to_numpy(), scoring[label].astype("int64").to_numpy()
    to_frame = design(spec, train)
    x_fit, x_score = to_frame(train), to_frame(scoring)
    fitted = {name: fit(x_fit, y_fit) for name, fit in LEARNERS.items()}
    aucs = {name: roc_auc(y_score, predict(x_score)) for name, predict in fitted.items()}
    best = max(aucs, key=lambda name: aucs[name])
    importance = auc_drops(fitted[best], x_score, y_score, list(x_fit.columns))
    carriers: list[str] = []
    carriers_auc = None
    if aucs[best] >= limit:
        ranked = [d.feature for d in importance]
        for k in range(1, min(MAX_CARRIERS, len(ranked)) + 1):
            subset = ranked[:k]
            alone = roc_auc(y_score, LEARNERS[best](x_fit[subset], y_fit)(x_score[subset]))
            if alone >= limit:
                carriers, carriers_auc = subset, alone
                break
        else:
            carriers = [d.feature for d in carrying(importance)]
    return JointLeakage(
        roc_auc=aucs[best],
        learner=best,
        learner_auc=aucs,
        fitted_rows=len(train),
        scored_rows=len(scoring),
        importance=importance,
        carriers=carriers,
        carriers_auc=carriers_auc,
    )
