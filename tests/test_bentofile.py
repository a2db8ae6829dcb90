"""The Bento packs and pins only what serving needs: no Dagster, Great Expectations, data pipeline or resources."""

from __future__ import annotations

from pathlib import Path

import yaml

from ml_assets.serving.build import BENTOFILE, SERVICE_SOURCES

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
    packed = {p for pattern in include for p in ROOT.glob(pattern)}
    served_code = [s for s in SERVICE_SOURCES if s.endswith(".py") and s != "ml_assets/serving/build.py"]
    for source in served_code:  # the code the served behaviour depends on is packed (and versions the asset)
        assert ROOT / source in packed, source
