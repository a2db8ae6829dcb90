"""Helpers for the serving tests: a real training set from UCI Adult, a real fitted model in a real store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pandas as pd

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set

WINDOW_END = date(2026, 1, 10)


def adult_training_set(spec: DatasetSpec, rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """``rows`` real Adult records spread over the spec's window, typed, featurized and split by time."""
    return demo_training_set(spec, rows, seed=seed, window_end=WINDOW_END)


def fit_logistic(spec: DatasetSpec, training_set: pd.DataFrame, c: float = 1.0):
    """The project's logistic-regression baseline (packed preprocessing + coefficients) on the train split."""
    from ml_assets.model.assets import BaselineConfig, fit_baseline

    return fit_baseline(spec, training_set, BaselineConfig(regularization_c=c))


def save_model(model, bentoml_home: Path, name: str = "adult-baseline") -> str:
    """Save into the BentoML store at ``bentoml_home`` with the project's ModelStore; returns the tag."""
    from resources.model_store import ModelLineage, ModelStore

    return ModelStore(home=str(bentoml_home)).save(model, name, ModelLineage(code_version="serving tests"))


def serve(bento_tag: str, model_tag: str, home: Path, bentoml_home: Path, timeout_s: float = 180) -> tuple[int, str]:
    """``bentoml serve`` the Bento on a free loopback port; returns (pid, url) once /readyz answers 200.

    The caller stops it (and its workers) with ``resources.process_tree.stop_tree(pid)`` in a teardown.
    """
    from resources.process_tree import free_port, stop_tree

    port = free_port()
    env = {
        **os.environ,
        "BENTOML_HOME": str(bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "ML_ASSETS_HOME": str(home),
        "ML_ASSETS_MODEL_TAG": model_tag,
    }
    log = (home / f"serve-{port}.log").open("ab")
    cmd = [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc.pid, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_tree(proc.pid)
            raise RuntimeError(f"bentoml serve {bento_tag} did not become ready: see {log.name}")
        time.sleep(0.25)
