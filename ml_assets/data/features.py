"""Stateless per-row feature transforms derived from the DatasetSpec.

Only transforms that need no statistics of the data live here (casts, derived bands, label encoding);
fitted transforms (normalisation, vocabularies) belong to the model so that serving applies exactly them.
"""

from __future__ import annotations

import pandas as pd

from ml_assets.dataset import DatasetSpec


def featurize(spec: DatasetSpec, typed: pd.DataFrame) -> pd.DataFrame:
    """Spec-typed raw rows -> feature rows: all spec columns, one column per band, and the encoded label."""
    out = typed[spec.column_names].copy()
    for band in spec.bands:
        out[band.name] = spec.band_values(band, out[band.source])
    out[spec.label_column] = spec.encode_label(out[spec.target.name])
    return out


def feature_columns(spec: DatasetSpec) -> list[str]:
    """Columns of the ``features`` table, in order."""
    return [*spec.column_names, *(b.name for b in spec.bands), spec.label_column]
