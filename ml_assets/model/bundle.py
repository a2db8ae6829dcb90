"""TabularModel: a trained model packed with its preprocessing, the one thing serving and evaluation load.

A model directory holds ``tabular_model.json`` (kind, the whole validated dataset spec it was trained with,
features, threshold, network config, preprocessing, the calibration of its scores when it has one, and for the
logistic baseline its coefficients) and, for networks, ``state_dict.pt`` (a plain
fp32 state_dict, loaded with ``weights_only=True``). No pickled code, so a model outlives refactors. The spec
travels with the model so that whatever serves or scores it (a Bento on Kubernetes, batch scoring) reads the
columns, types and categories the model was trained with from the model itself, never from the environment.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from ml_assets.dataset import DatasetSpec
from ml_assets.model.calibration import Calibration
from ml_assets.model.network import NetworkConfig, build_network
from ml_assets.model.preprocessing import Preprocessing
from ml_assets.model.trees import Trees

Kind = Literal["mlp", "transformer", "ensemble", "logistic", "gbdt"]
META_FILE = "tabular_model.json"
FORMAT = 2  # 2: the whole spec is stored ("spec"); format 1 stored only its name
WEIGHTS_FILE = "state_dict.pt"
TREES_FILE = "trees.txt"  # a gbdt model's booster in LightGBM's own text format
PREDICT_BATCH = 65_536


@dataclass(frozen=True)
class ModelRef:
    """What model assets hand downstream: where the model is in the store and how it scored on validation."""

    tag: str
    name: str
    kind: str
    metrics: dict[str, float]
    training_set_version: str


@dataclass
class LogisticWeights:
    coef: list[float]
    intercept: float


@dataclass
class TabularModel:
    """Probability of the positive label for raw typed rows; the packed preprocessing is applied inside."""

    kind: Kind
    spec: DatasetSpec  # the validated spec the model was trained with: its schema wherever it serves
    preprocessing: Preprocessing
    threshold: float = 0.5
    network_config: NetworkConfig | None = None
    state_dict: dict[str, torch.Tensor] | None = None
    logistic: LogisticWeights | None = None
    trees: Trees | None = None  # kind gbdt: the candidate family of gradient-boosted trees
    calibration: Calibration | None = None  # the map from raw scores to probabilities (a candidate's, fitted on
    # validation); None: the scores are the probabilities
    _module: torch.nn.Module | None = field(default=None, init=False, repr=False)
    _coef: tuple[np.ndarray, list[np.ndarray]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind == "logistic":
            if self.logistic is None:
                raise ValueError("a logistic TabularModel needs its coefficients")
            width = self.preprocessing.n_numeric_inputs + sum(self.preprocessing.cardinalities)
            if len(self.logistic.coef) != width:
                raise ValueError(f"logistic model has {len(self.logistic.coef)} coefficients, inputs are {width}")
        elif self.kind in ("mlp", "transformer", "ensemble"):  # ensemble: networks averaged, one state_dict
            if self.network_config is None or self.state_dict is None:
                raise ValueError(f"a {self.kind} TabularModel needs its network config and state_dict")
            if self.network_config.architecture != self.kind:
                raise ValueError(f"kind {self.kind!r} != network architecture {self.network_config.architecture!r}")
            module = build_network(self.network_config, self.preprocessing)
            module.load_state_dict(self.state_dict)  # strict: a mismatch is an error, not silently ignored
            self._module = module.eval()
        elif self.kind == "gbdt":
            if self.trees is None:
                raise ValueError("a gbdt TabularModel needs its trees")
        else:
            raise ValueError(f"unknown model kind {self.kind!r}")

    @property
    def spec_name(self) -> str:
        return self.spec.name

    @property
    def feature_names(self) -> list[str]:
        return self.preprocessing.feature_names

    # ---- prediction -----------------------------------------------------------------------------------------
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Float64 probability of the positive label per row (the raw scores through the calibration, if any)."""
        raw = self.raw_scores(frame)
        return raw if self.calibration is None else self.calibration.apply(raw)

    def raw_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Float64 scores of the model itself, before any calibration."""
        if self.kind == "gbdt":  # the trees read the typed columns themselves (missing and unseen values included)
            assert self.trees is not None
            return self.trees.predict_proba(frame)
        num, cat = self.preprocessing.transform(frame)
        if self.kind == "logistic":
            # the one-hot matmul without the one-hot matrix: numeric part, plus one gathered weight per category
            coef_num, coef_cat = self._logistic_tables()
            z = num.astype(np.float64) @ coef_num + self.logistic.intercept  # type: ignore[union-attr]
            for j, weights in enumerate(coef_cat):
                z += weights[cat[:, j]]
            return 1.0 / (1.0 + np.exp(-z))
        assert self._module is not None
        out = np.empty(len(frame), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(frame), PREDICT_BATCH):
                sl = slice(start, start + PREDICT_BATCH)
                logits = self._module(torch.from_numpy(num[sl]), torch.from_numpy(cat[sl]))
                out[sl] = torch.sigmoid(logits.float()).numpy()
        return out

    def _logistic_tables(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The logistic coefficients split into the numeric block and one weight vector per categorical column."""
        if self._coef is None:
            assert self.logistic is not None
            coef = np.asarray(self.logistic.coef, dtype=np.float64)
            k = self.preprocessing.n_numeric_inputs
            bounds = np.cumsum([k, *self.preprocessing.cardinalities])
            self._coef = (coef[:k], [coef[a:b] for a, b in itertools.pairwise(bounds)])
        return self._coef

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(frame) >= self.threshold).astype(np.int64)

    # ---- files ----------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "kind": self.kind,
            "spec_name": self.spec_name,
            "spec": self.spec.model_dump(mode="json"),
            "threshold": self.threshold,
            "feature_names": self.feature_names,
            "preprocessing": self.preprocessing.to_dict(),
            "network_config": self.network_config.model_dump() if self.network_config else None,
            "logistic": {"coef": self.logistic.coef, "intercept": self.logistic.intercept} if self.logistic else None,
            "trees": self.trees.to_dict() if self.trees else None,
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }
        if self.trees is not None:
            (directory / TREES_FILE).write_text(self.trees.text)
        (directory / META_FILE).write_text(json.dumps(meta, indent=1))
        if self.state_dict is not None:
            torch.save(
                {k: v.detach().to("cpu", torch.float32) for k, v in self.state_dict.items()}, directory / WEIGHTS_FILE
            )

    @classmethod
    def load(cls, directory: str | Path, tag: str = "") -> TabularModel:
        """The model stored in ``directory`` (``tag``: its store tag, named in errors)."""
        directory = Path(directory)
        meta = read_meta(directory, tag)
        state = None
        if meta["kind"] not in ("logistic", "gbdt"):
            state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        trees = Trees.from_dict(meta["trees"], (directory / TREES_FILE).read_text()) if meta.get("trees") else None
        return cls(
            kind=meta["kind"],
            spec=stored_spec(meta, directory, tag),
            preprocessing=Preprocessing.from_dict(meta["preprocessing"]),
            threshold=float(meta["threshold"]),
            network_config=NetworkConfig(**meta["network_config"]) if meta["network_config"] else None,
            state_dict=state,
            logistic=LogisticWeights(**meta["logistic"]) if meta["logistic"] else None,
            trees=trees,
            # optional: a model stored before calibration existed has none, and its scores are its probabilities
            calibration=Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None,
        )


class ModelFormatError(ValueError):
    """A stored model this code cannot read (an older format, no spec), naming the model."""


def read_meta(directory: Path, tag: str = "") -> dict:
    """The model's ``tabular_model.json``, refused with the model's name when its format is not this code's."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory} is not a TabularModel directory: {META_FILE} is missing")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        what = f"model {tag} ({meta_path})" if tag else str(meta_path)
        hint = " without its dataset spec: retrain it to serve it" if meta.get("format") == 1 else ""
        raise ModelFormatError(
            f"{what}: stored in model format {meta.get('format')!r}{hint} (this code reads {FORMAT})"
        )
    return meta


def stored_spec(meta: dict, directory: Path, tag: str = "") -> DatasetSpec:
    """The dataset spec a stored model was trained with, validated again (a broken spec fails here, named)."""
    try:
        return DatasetSpec.model_validate(meta["spec"])
    except (KeyError, ValueError) as e:
        raise ModelFormatError(f"model {tag or directory}: its stored dataset spec is missing or invalid: {e}") from e


def load_spec_of(directory: str | Path, tag: str = "") -> DatasetSpec:
    """Only the spec of a stored model (no weights): what a service needs to build its schema."""
    directory = Path(directory)
    return stored_spec(read_meta(directory, tag), directory, tag)
