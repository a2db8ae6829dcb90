"""Fidelity of shadow rows to real ones: per-column distances, pairwise associations, and utility for a model.

- column distance: Kolmogorov-Smirnov statistic on a number's present values (and the difference of its null
  share, whichever is larger), total variation distance on a category's values (missing as a value);
- association distance: for every pair of columns, the difference between real and shadow of Cramér's V (numbers
  binned at the real deciles, so every pair is measured alike) and, for two numbers, of Spearman's correlation;
- utility: a logistic regression trained on shadow rows and one trained on real training rows, both scored (ROC
  AUC) on held-back real rows the generator never saw: the shadow one must reach a set fraction of the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from ml_assets.dataset import PANDAS_DTYPES, DatasetSpec
from ml_assets.shadow.encoding import generated_columns

SAMPLE = 5_000  # rows per side for association figures (Cramér's V is biased by sample size: equal sizes)


@dataclass(frozen=True)
class FidelityThresholds:
    max_column_distance: float = 0.1
    mean_association_distance: float = 0.05
    utility_fraction: float = 0.9  # the shadow-trained model's ROC AUC over the real-trained one's


@dataclass(frozen=True)
class FidelityReport:
    columns: dict[str, float]  # column -> distance
    associations: dict[str, float]  # "a ~ b" -> |real - shadow| association
    real_auc: float | None = None
    shadow_auc: float | None = None
    thresholds: FidelityThresholds = field(default_factory=FidelityThresholds)

    @property
    def max_column_distance(self) -> float:
        return max(self.columns.values(), default=0.0)

    @property
    def mean_association_distance(self) -> float:
        return float(np.mean(list(self.associations.values()))) if self.associations else 0.0

    @property
    def utility_ratio(self) -> float | None:
        if self.real_auc is None or self.shadow_auc is None or self.real_auc <= 0:
            return None
        return self.shadow_auc / self.real_auc

    @property
    def columns_pass(self) -> bool:
        return self.max_column_distance <= self.thresholds.max_column_distance

    @property
    def associations_pass(self) -> bool:
        return self.mean_association_distance <= self.thresholds.mean_association_distance

    @property
    def utility_pass(self) -> bool:
        ratio = self.utility_ratio
        return ratio is not None and ratio >= self.thresholds.utility_fraction

    def worst_columns(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.columns.items(), key=lambda kv: -kv[1])[:n]

    def worst_associations(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.associations.items(), key=lambda kv: -kv[1])[:n]


def fidelity_report(
    spec: DatasetSpec,
    shadow: pd.DataFrame,
    real_train: pd.DataFrame,
    real_holdout: pd.DataFrame | None = None,
    thresholds: FidelityThresholds | None = None,
    seed: int = 0,
) -> FidelityReport:
    """Every fidelity figure of ``shadow`` against the real rows (typed frames, as raw_data holds them)."""
    columns = {c.name: column_distance(real_train[c.name], shadow[c.name]) for c in generated_columns(spec)}
    associations = association_distances(spec, real_train, shadow, seed)
    real_auc = shadow_auc = None
    if real_holdout is not None and len(real_holdout):
        real_auc = utility_auc(spec, real_train, real_holdout, seed)
        shadow_auc = utility_auc(spec, shadow, real_holdout, seed)
    return FidelityReport(columns, associations, real_auc, shadow_auc, thresholds or FidelityThresholds())


def column_distance(real: pd.Series, shadow: pd.Series) -> float:
    if pd.api.types.is_numeric_dtype(real.dtype) and not pd.api.types.is_bool_dtype(real.dtype):
        r = pd.to_numeric(real, errors="coerce").astype("float64")
        s = pd.to_numeric(shadow, errors="coerce").astype("float64")
        nulls = abs(r.isna().mean() - s.isna().mean())
        r, s = r.dropna(), s.dropna()
        ks = float(ks_2samp(r, s).statistic) if len(r) and len(s) else float(len(r) != len(s))
        return max(ks, float(nulls))
    p = real.astype(PANDAS_DTYPES["string"]).value_counts(normalize=True, dropna=False)
    q = shadow.astype(PANDAS_DTYPES["string"]).value_counts(normalize=True, dropna=False)
    return float(0.5 * p.sub(q, fill_value=0.0).abs().sum())


def association_distances(
    spec: DatasetSpec, real: pd.DataFrame, shadow: pd.DataFrame, seed: int = 0
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    n = min(SAMPLE, len(real), len(shadow))
    real = real.iloc[rng.choice(len(real), n, replace=False)]
    shadow = shadow.iloc[rng.choice(len(shadow), n, replace=False)]
    cols = generated_columns(spec)
    numeric = {c.name for c in cols if c.dtype in ("int64", "float64")}
    real_codes, shadow_codes = {}, {}
    for c in cols:
        real_codes[c.name], shadow_codes[c.name] = _codes(real[c.name], shadow[c.name], c.name in numeric)
    out = {}
    for a, b in combinations([c.name for c in cols], 2):
        diff = abs(cramers_v(real_codes[a], real_codes[b]) - cramers_v(shadow_codes[a], shadow_codes[b]))
        if a in numeric and b in numeric:
            diff = max(diff, abs(_spearman(real[a], real[b]) - _spearman(shadow[a], shadow[b])))
        out[f"{a} ~ {b}"] = float(diff)
    return out


def _codes(real: pd.Series, shadow: pd.Series, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as integer codes on the real side's bins (numbers: deciles; missing: a code of its own)."""
    if numeric:
        r = pd.to_numeric(real, errors="coerce").astype("float64")
        s = pd.to_numeric(shadow, errors="coerce").astype("float64")
        edges = np.unique(np.nanquantile(r, np.linspace(0.1, 0.9, 9))) if r.notna().any() else np.array([0.0])
        return _binned(r, edges), _binned(s, edges)
    r, s = real.astype(PANDAS_DTYPES["string"]), shadow.astype(PANDAS_DTYPES["string"])
    cats = pd.Index(pd.concat([r, s]).dropna().unique())
    return _category_codes(r, cats), _category_codes(s, cats)


def _binned(x: pd.Series, edges: np.ndarray) -> np.ndarray:
    codes = np.searchsorted(edges, x.to_numpy(), side="right")
    return np.where(x.isna().to_numpy(), len(edges) + 1, codes)


def _category_codes(x: pd.Series, cats: pd.Index) -> np.ndarray:
    codes = pd.Categorical(x, categories=cats).codes.astype(np.int64)
    return np.where(codes < 0, len(cats), codes)


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V of two code arrays (0: independent, 1: one determines the other)."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    k, m = ai.max() + 1, bi.max() + 1
    if k < 2 or m < 2:
        return 0.0
    table = np.zeros((k, m))
    np.add.at(table, (ai, bi), 1.0)
    n = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    return float(np.sqrt(chi2 / (n * (min(k, m) - 1))))


def _spearman(a: pd.Series, b: pd.Series) -> float:
    x = pd.to_numeric(a, errors="coerce").astype("float64")
    y = pd.to_numeric(b, errors="coerce").astype("float64")
    value = x.corr(y, method="spearman")
    return 0.0 if pd.isna(value) else float(value)


def utility_auc(spec: DatasetSpec, train: pd.DataFrame, test: pd.DataFrame, seed: int = 0) -> float | None:
    """ROC AUC on ``test`` of a logistic regression fitted on ``train`` (None when either side lacks a class)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    target = spec.target.name
    train = train[train[target].notna()]
    test = test[test[target].notna()]
    y_train = (train[target].astype("string") == spec.positive_label).to_numpy()
    y_test = (test[target].astype("string") == spec.positive_label).to_numpy()
    if len(set(y_train)) < 2 or len(set(y_test)) < 2:
        return None
    numeric, categorical = spec.numeric_features, spec.categorical_features
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[numeric].astype("float64")
        for c in categorical:
            out[c] = frame[c].astype(object).where(frame[c].notna(), "(missing)").astype(str)
        return out

    model = make_pipeline(prep, LogisticRegression(max_iter=500, random_state=seed))
    model.fit(features(train), y_train)
    return float(roc_auc_score(y_test, model.predict_proba(features(test))[:, 1]))
