"""A served model's world written straight to disk, for the monitoring benchmark and tests at scale.

A champion (the logistic baseline fitted on real demo rows) with its training window in the warehouse and its
promotion in the instance, then prediction log lines in exactly the serving format (``ml_assets/serving/prediction_log.py``)
for any number of real demo rows, and their labels. Writing a million lines through a real server would take the
server's time, not monitoring's; the lines and the files are the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.traffic import request_records


@dataclass(frozen=True)
class World:
    spec: DatasetSpec
    model: object
    tag: str
    window_end: date


def install_champion(spec: DatasetSpec, home: Path, window_end: date, instance, rows: int = 20_000) -> World:
    """Fit, store and promote a champion on a demo training window ending ``window_end`` (its features stored as Parquet tables)."""
    import dagster as dg

    from ml_assets.data.window import store_window
    from ml_assets.datasets.samples import demo_training_set
    from ml_assets.environments import local_resources
    from ml_assets.model.assets import BaselineConfig, fit_baseline
    from ml_assets.partitions import training_set_partitions
    from resources.model_store import ModelLineage, ModelStore

    window = demo_training_set(spec, rows, seed=0, window_end=window_end)
    model = fit_baseline(spec, window, BaselineConfig(max_iter=300))
    store = ModelStore(home=str(home / "bentoml"))
    tag = store.save(model, f"{spec.name}-classifier", ModelLineage(training_set_partition=window_end.isoformat()))

    @dg.asset(name="training_set", partitions_def=training_set_partitions(spec), required_resource_keys={"tables"})
    def training_set(context):
        return store_window(spec, window, context.resources.tables)

    @dg.asset(name="champion_model")
    def champion_model():
        return dg.Output(None, metadata={"model_tag": tag})

    resources = local_resources(spec)
    dg.materialize([training_set], partition_key=window_end.isoformat(), instance=instance, resources=resources)
    dg.materialize([champion_model], instance=instance, resources={"io_manager": dg.mem_io_manager})
    return World(spec, model, tag, window_end)


def served_rows(world: World, rows: int, seed: int, first_id: int) -> pd.DataFrame:
    """``rows`` real demo records (sampled with replacement) with new ids, as a client would send them."""
    from ml_assets.datasets.samples import demo_training_set

    source = demo_training_set(world.spec, None, window_end=world.window_end)
    picks = np.random.default_rng(seed).integers(0, len(source), rows)
    served = source.iloc[picks].reset_index(drop=True)
    served[world.spec.id.name] = np.arange(first_id, first_id + rows)
    return served


def write_log(world: World, log_root: Path, day: date, served: pd.DataFrame, writers: int = 4) -> list[Path]:
    """Prediction log lines for ``served`` in the serving format, spread over ``writers`` files of ``day``."""
    proba = np.asarray(world.model.predict_proba(served), dtype=np.float64).tolist()
    inputs = pd.DataFrame(request_records(world.spec, served)).to_json(orient="records", lines=True).splitlines()
    folder = log_root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = json.dumps(f"{day.isoformat()}T12:00:00+00:00")
    paths = [folder / f"{1000 + w}.jsonl" for w in range(writers)]
    outs = [p.open("a") for p in paths]
    threshold = float(world.model.threshold)
    base = int(served[world.spec.id.name].iloc[0]) if len(served) else 0
    for i, line in enumerate(inputs):
        outs[i % writers].write(
            f'{{"request_id":"r{base + i}","time":{stamp},"model_tag":"{world.tag}","inputs":{line},'
            f'"probability":{proba[i]!r},"label":{int(proba[i] >= threshold)}}}\n'
        )
    for out in outs:
        out.close()
    return paths


def write_labels(world: World, label_root: Path, day: date, served: pd.DataFrame) -> Path:
    """The true labels of ``served`` as a label file landed on ``day``."""
    folder = label_root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"labels-{int(served[world.spec.id.name].iloc[0])}.parquet"
    served[[world.spec.id.name, world.spec.target.name]].to_parquet(path, index=False)
    return path
