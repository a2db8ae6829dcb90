"""Decoding the training entrypoint's outputs (``train.py`` names and writes them).

``DeepSpeedTrainer`` reads a finished run's output folder back from its storage as raw files; this module turns
them into the best epoch's weights, the fitted preprocessing, the network config and the run's summary.
"""

from __future__ import annotations

import io
import json
import posixpath
from dataclasses import dataclass, field

import torch

from ml_assets.model.network import NetworkConfig
from ml_assets.model.preprocessing import Preprocessing
from ml_assets.model.train import PREPROCESSING, STATE_DICT, SUMMARY
from resources.deepspeed_trainer import TrainingRun
from resources.training_records import TrainingSummary

# Validation metrics every training run measures (ml_assets.model.metrics.validation_scores).
TRAINING_METRICS = ("log_loss", "roc_auc", "pr_auc", "accuracy", "f1")


@dataclass
class TrainedNetwork:
    """A decoded training run: what the candidate model is built from."""

    state_dict: dict[str, torch.Tensor] = field(repr=False)
    preprocessing: Preprocessing = field(repr=False)
    network: NetworkConfig
    summary: TrainingSummary = field(repr=False)  # metrics, history, throughput, timings, ranks, device, resume info


def decode(run: TrainingRun) -> TrainedNetwork:
    """Decode the outputs of ``run``; a missing file is named with the storage folder it should be in."""
    missing = [name for name in (STATE_DICT, PREPROCESSING, SUMMARY) if name not in run.outputs]
    if missing:
        raise RuntimeError(f"training run {run.location} has no {', '.join(missing)} among its outputs")
    summary = TrainingSummary.read(run.outputs[SUMMARY], posixpath.join(run.location, "output", SUMMARY))
    return TrainedNetwork(
        state_dict=torch.load(io.BytesIO(run.outputs[STATE_DICT]), map_location="cpu", weights_only=True),
        preprocessing=Preprocessing.from_dict(json.loads(run.outputs[PREPROCESSING])),
        network=NetworkConfig(**summary.network),
        summary=summary,
    )
