"""The Bento packs and pins only what serving needs: no Dagster, Great Expectations, data pipeline or resources."""

from __future__ import annotations

from pathlib import Path

import yaml

from ml_assets.serving.build import BENTOFILE, service_code

ROOT = Path(__file__).resolve().parents[1]


def test_bentofile_includes_and_pins_only_serving():
    config = yaml.safe_load(BENTOFILE.read_text())
    packages = " ".join(config["python"]["packages"]).lower()
    assert not any(name in packages for name in ("dagster", "great-expectations", "great_expectations", "duckdb"))
    include = config["include"]
    assert not [
        p for p in include if p.split("/")[0] in ("resources", "sensors", "tests") or p.startswith("ml_assets/data/")
    ]
    assert config["python"]["lock_packages"] is False  # offline builds
    assert not [p for p in include if p.endswith(".py")]  # the code comes from the import graph at build time
    assert all(p.startswith("ml_assets/datasets/") for p in include)
    assert all((ROOT / p).is_file() for p in service_code())
