"""The two records that cross the process boundary between ``DeepSpeedTrainer`` and its torchrun entrypoint.

The trainer (this layer) writes a ``TrainingJob`` into its storage; every rank of ``ml_assets.model.train`` reads
it back (the rows travel by reference: the scans of their Parquet files with their row groups' counts, and the
preprocessing fitted once on the train rows by the launching step); rank 0 writes a ``TrainingSummary`` next to
the weights, and the launching step reads it. Both ends import these classes, so a renamed or missing field fails where the file is read, naming the file and the field,
not deep inside a rank or in the metadata of an asset. Domain types (the dataset spec, the network config) travel
as their JSON here: the entrypoint validates them with their own classes, and resources import no model code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from resources.parquet_tables import TableScan
from resources.rank_shards import ScanLayout


class RecordError(ValueError):
    """A seam record that does not match its schema, naming where it was read and the fields that failed."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def read(cls, data: str | bytes, where: str) -> Self:
        """The record in ``data`` (JSON); a missing, unknown or mistyped field is one error naming ``where``."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(top)'}: {err['msg']}" for err in e.errors())
            raise RecordError(f"{cls.__name__} at {where} does not match its schema: {problems}") from e


class TrialJob(_Record):
    """One network of a job: its config (NetworkConfig's JSON), its DeepSpeed config and what it sets."""

    name: str
    network: dict[str, Any]
    deepspeed_config: dict[str, Any]
    settings: dict[str, Any]  # what differs from the trainer's defaults (learning rate, class weight), for reports


class HalvingJob(_Record):
    """Successive halving: rungs at ``min_epochs * eta**i`` epochs; a rung keeps the best ``ceil(n / eta)``."""

    min_epochs: int
    eta: int


class PreparedRows(_Record):
    """The rows of a launch, prepared once by the launching step so that no rank reads rows beyond its shard: the
    labeled train and validation scans with their row groups' kept-row counts (each rank cuts its shard from
    them), the preprocessing fitted on every train row (Preprocessing's JSON) and the train rows' positive rate."""

    train: ScanLayout
    validation: ScanLayout
    preprocessing: dict[str, Any]
    positive_rate: float = Field(description="share of positive labels among the train rows")


class TooFewRows(ValueError):
    """A launch whose splits cannot train: fewer train rows than ranks, or no validation row."""


# (train scan, validation scan, ranks) -> the prepared rows; the caller's model code, handed to the trainer so
# that this layer never imports it. Raises TooFewRows.
RowsPreparer = Callable[[TableScan, TableScan, int], PreparedRows]


class TrainingJob(_Record):
    """What one launch trains: its prepared rows, where outputs go, the spec (DatasetSpec's JSON), the trials, the
    budget, and how much of a rank's memory may hold its encoded shard across epochs and trials."""

    rows: PreparedRows
    shard_cache_bytes: int = Field(description="encoded shards up to this size stay in memory; larger ones stream")
    output_dir: str
    checkpoint_dir: str
    spec: dict[str, Any]
    trials: list[TrialJob]
    select_by: str  # validation metric that picks the best trial
    higher_is_better: bool
    max_seconds: float | None
    halving: HalvingJob | None
    ensemble_size: int  # most trials averaged into the exported model (1: the best trial alone)
    device: str
    precision: str
    max_epochs: int
    epoch_rows: int | None = Field(description="train rows an epoch visits across all ranks at most (None: all)")
    patience: int
    seed: int
    warmup_fraction: float
    launched_at: float


class TrainingSummary(_Record):
    """What rank 0 reports of a finished launch: the kept model's validation metrics, the best trial's best epoch
    (history, throughput, settings), timings, and every trial's figures."""

    metrics: dict[str, float]
    best_epoch: int
    epochs_run: int
    early_stopped: bool
    history: list[dict[str, Any]]
    samples_per_s: float  # steady state: the median epoch after the first
    overall_samples_per_s: float
    train_seconds: float
    wall_seconds: float
    launch_to_first_step_s: float | None
    startup_s: dict[str, float | None]  # seconds after launch at which rank 0 reached each phase
    resumed_from_epoch: int | None
    ranks: int
    device: str
    precision: str
    zero_stage: int
    parameters: int
    network: dict[str, Any]  # the exported network's NetworkConfig JSON
    deepspeed_config: dict[str, Any]
    checkpoint_dir: str
    best_trial: str
    ensemble: list[str]  # the trials averaged into the exported model; empty: the best trial alone
    select_by: str
    trials: list[dict[str, Any]]  # one row per trial for the search table (its figures and why it stopped)
