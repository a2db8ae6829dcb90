"""The declared columns of the data group's warehouse tables (raw_data, features, training_set), from the spec.

Each table's column types come from here, not from the rows of a partition (``resources.warehouse_tables``): a
column null on the first days and text later is text from the first day on.
"""

from __future__ import annotations

from ml_assets.data.splits import SPLIT, WINDOW_END
from ml_assets.dataset import PANDAS_DTYPES, DatasetSpec
from ml_assets.partitions import LANDING_DAY

TEXT, TIMESTAMP = PANDAS_DTYPES["string"], PANDAS_DTYPES["datetime"]
DATA_IO_MANAGER = "data_io_manager"  # raw_data and features: Parquet files per day (resources.parquet_tables)


def label_dtype(spec: DatasetSpec) -> str:
    """The encoded label's dtype (``DatasetSpec.encode_label``): nullable when rows may land unlabeled."""
    return "Int8" if spec.target.nullable else "int8"


def raw_data_dtypes(spec: DatasetSpec) -> dict[str, str]:
    """raw_data: every spec column in its spec type, and the landing day."""
    return {**spec.pandas_dtypes, LANDING_DAY: TIMESTAMP}


def features_dtypes(spec: DatasetSpec) -> dict[str, str]:
    """features: the spec columns, one text column per band, the encoded label, and the landing day."""
    return {
        **spec.pandas_dtypes,
        **{band.name: TEXT for band in spec.bands},
        spec.label_column: label_dtype(spec),
        LANDING_DAY: TIMESTAMP,
    }


def training_set_dtypes(spec: DatasetSpec) -> dict[str, str]:
    """training_set: the features columns less the landing day, each row's split, and the window's last day."""
    columns = {c: t for c, t in features_dtypes(spec).items() if c != LANDING_DAY}
    return {**columns, SPLIT: TEXT, WINDOW_END: TIMESTAMP}
