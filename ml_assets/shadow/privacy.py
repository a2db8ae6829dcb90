"""Privacy of shadow rows: what must hold before a single one leaves the environment that holds the real data.

All four tests compare the shadow rows with the real rows the generator was trained on ("members"), and use real
rows it never saw (held back) as the yardstick of what an honest, independent draw from the same population looks
like:

- exact copies: the share of shadow rows equal to a member on every generated column must not exceed the share of
  held-back rows that are (low-cardinality data has natural duplicates; a copying generator has many more);
- distance to closest record (DCR): at the set quantile, shadow rows must lie at least as far from their closest
  member as held-back rows do (times a tolerance);
- membership inference: an attacker who calls a row a member when a shadow row lies close to it must do little
  better than chance at telling members from held-back rows (ROC AUC near 0.5);
- rare categories: a value fewer than ``rare_k`` members carry must never appear in a shadow row together with
  the rest of the category combination of one of those members.

Distances are measured in the encoding's space (numbers as normal scores, categories one-hot), fitted on the
members, on at most ``MAX_REFERENCE`` members and ``MAX_QUERIES`` rows per side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from ml_assets.dataset import PANDAS_DTYPES, DatasetSpec
from ml_assets.shadow.encoding import TabularEncoding, generated_columns

MAX_REFERENCE = 20_000
MAX_QUERIES = 2_000


@dataclass(frozen=True)
class PrivacyThresholds:
    dcr_quantile: float = 0.05
    dcr_tolerance: float = 0.9  # shadow DCR at the quantile >= this x the held-back rows' DCR there
    exact_copy_margin: float = 0.001  # shadow copy share may exceed the held-back rows' by this much
    membership_auc: float = 0.6  # the attack's ROC AUC must stay at or below this
    rare_k: int = 5


@dataclass(frozen=True)
class PrivacyReport:
    exact_copy_share: float
    holdout_copy_share: float
    shadow_dcr: float  # at the quantile
    holdout_dcr: float
    membership_auc: float
    rare_leaks: dict[str, int]  # "column=value" -> shadow rows carrying it with a member's combination
    thresholds: PrivacyThresholds = field(default_factory=PrivacyThresholds)

    @property
    def copies_pass(self) -> bool:
        return self.exact_copy_share <= self.holdout_copy_share + self.thresholds.exact_copy_margin

    @property
    def dcr_pass(self) -> bool:
        return self.shadow_dcr >= self.thresholds.dcr_tolerance * self.holdout_dcr

    @property
    def membership_pass(self) -> bool:
        return self.membership_auc <= self.thresholds.membership_auc

    @property
    def rare_pass(self) -> bool:
        return not self.rare_leaks

    @property
    def passed(self) -> bool:
        return self.copies_pass and self.dcr_pass and self.membership_pass and self.rare_pass


def privacy_report(
    spec: DatasetSpec,
    shadow: pd.DataFrame,
    members: pd.DataFrame,
    holdout: pd.DataFrame,
    thresholds: PrivacyThresholds | None = None,
    seed: int = 0,
) -> PrivacyReport:
    """Every privacy figure of ``shadow`` (typed frames as raw_data holds them) against the generator's training
    rows (``members``) and real rows it never saw (``holdout``)."""
    th = thresholds or PrivacyThresholds()
    names = [c.name for c in generated_columns(spec)]
    member_keys = set(_row_keys(members[names]))
    shadow_copies = float(np.mean([k in member_keys for k in _row_keys(shadow[names])])) if len(shadow) else 0.0
    holdout_copies = float(np.mean([k in member_keys for k in _row_keys(holdout[names])])) if len(holdout) else 0.0

    rng = np.random.default_rng(seed)
    encoding = TabularEncoding.fit(spec, members, rare_k=1)
    reference = _sample(members, MAX_REFERENCE, rng)
    index = NearestNeighbors(n_neighbors=1).fit(_space(encoding, reference))
    shadow_q = _sample(shadow, MAX_QUERIES, rng)
    holdout_q = _sample(holdout, MAX_QUERIES, rng)
    shadow_dcr = index.kneighbors(_space(encoding, shadow_q))[0][:, 0]
    holdout_dcr = index.kneighbors(_space(encoding, holdout_q))[0][:, 0]

    # membership: members in the reference vs held-back rows, scored by closeness to the shadow rows
    attack = NearestNeighbors(n_neighbors=1).fit(_space(encoding, _sample(shadow, MAX_REFERENCE, rng)))
    n = min(len(holdout_q), len(reference), MAX_QUERIES)
    probe_members = reference.iloc[rng.choice(len(reference), n, replace=False)]
    probe_outsiders = holdout_q.iloc[:n]
    d_in = attack.kneighbors(_space(encoding, probe_members))[0][:, 0]
    d_out = attack.kneighbors(_space(encoding, probe_outsiders))[0][:, 0]
    auc = float(roc_auc_score(np.r_[np.ones(n), np.zeros(n)], -np.r_[d_in, d_out])) if n else 0.5

    return PrivacyReport(
        exact_copy_share=shadow_copies,
        holdout_copy_share=holdout_copies,
        shadow_dcr=float(np.quantile(shadow_dcr, th.dcr_quantile)) if len(shadow_dcr) else 0.0,
        holdout_dcr=float(np.quantile(holdout_dcr, th.dcr_quantile)) if len(holdout_dcr) else 0.0,
        membership_auc=auc,
        rare_leaks=rare_leaks(spec, shadow, members, th.rare_k),
        thresholds=th,
    )


def rare_leaks(spec: DatasetSpec, shadow: pd.DataFrame, members: pd.DataFrame, k: int) -> dict[str, int]:
    """Rare values (fewer than ``k`` members) that a shadow row carries with one such member's whole combination
    of category columns; counted per ``column=value``."""
    categorical = [c.name for c in generated_columns(spec) if c.dtype == "string"]
    if not categorical:
        return {}
    real = members[categorical].astype(PANDAS_DTYPES["string"]).fillna("<null>")
    fake = shadow[categorical].astype(PANDAS_DTYPES["string"]).fillna("<null>")
    fake_keys = pd.Series(list(_row_keys(fake)), index=fake.index)
    out: dict[str, int] = {}
    for col in categorical:
        counts = real[col].value_counts()
        for value in counts[counts < k].index:
            rare_combos = set(_row_keys(real[real[col] == value]))
            hits = int(fake_keys[fake[col] == value].isin(rare_combos).sum())
            if hits:
                out[f"{col}={value}"] = hits
    return out


def _row_keys(frame: pd.DataFrame) -> np.ndarray:
    """One hash per row over its values as text (missing as its own value)."""
    text = frame.astype(PANDAS_DTYPES["string"]).fillna("<null>")
    return pd.util.hash_pandas_object(text, index=False).to_numpy()


def _sample(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.iloc[np.sort(rng.choice(len(frame), n, replace=False))]


def _space(encoding: TabularEncoding, rows: pd.DataFrame) -> np.ndarray:
    """Rows in the distance space: normal scores and null flags, and one-hot categories scaled so that a
    differing category counts 1 (two one-hot cells differ)."""
    matrix = encoding.transform(rows)
    scale = np.concatenate(
        [np.full(w, 1.0 if kind != "categorical" else np.sqrt(0.5)) for kind, w in encoding.layout()]
    )
    return matrix * scale
