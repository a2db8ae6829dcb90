"""What the DeepSpeed trainer refuses before anything launches, and the plan it resolves for this machine: no
ranks start here (the training itself is tested for real in test_training.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from resources.deepspeed_trainer import TrainerConfigError
from resources.launchers import available_cpus
from tests.training_graph import WINDOW_END, build_graph, run_assets, trainer


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"zero_stage": 5}, "zero_optimization.stage must be 0, 1, 2 or 3, got 5"),
        ({"micro_batch_size": 0}, "micro_batch_size must be >= 1, got 0"),
        ({"ranks": available_cpus() + 1}, f"exceeds the {available_cpus()} CPUs available"),
        ({"device": "cpu", "precision": "fp16"}, "fp16 is not supported on CPU"),
        ({"offload_optimizer": True, "zero_stage": 0}, "offload_optimizer needs zero_stage >= 1"),
        ({"deepspeed_config": {"zero_optimization": {"stage": 9}}}, "stage must be 0, 1, 2 or 3, got 9"),
        ({"deepspeed_config": {"train_batch_size": 7}}, "train_batch_size 7 != micro batch 64"),
    ],
)
def test_bad_config_is_rejected_before_launch(fields: dict[str, Any], message: str, ml_home: Path) -> None:
    with pytest.raises(TrainerConfigError, match="rejected before launch") as err:
        trainer(**fields).plan()
    assert message in str(err.value)


def test_bad_config_fails_the_asset_without_launching(adult_spec: DatasetSpec, ml_home: Path) -> None:
    graph = build_graph(adult_spec, demo_training_set(adult_spec, 600, seed=0, window_end=WINDOW_END), ml_home)
    result = run_assets(graph, ml_home, ["candidate_model"], trainer(zero_stage=5), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "zero_optimization.stage must be 0, 1, 2 or 3, got 5" in failure.event_specific_data.error.cause.message
    assert not (ml_home / "staging" / result.run_id).exists()  # nothing staged, nothing launched


def test_resolved_plan_for_this_machine(ml_home: Path) -> None:
    plan = trainer(ranks=1, zero_stage=0).plan()
    assert plan.device == "cpu" and plan.precision == "fp32"
    config = plan.deepspeed_config
    assert config["train_batch_size"] == 64 and config["optimizer"]["params"]["torch_adam"] is True
    assert config["timers"] == {"throughput": {"enabled": False}}
    override = trainer(deepspeed_config={"train_micro_batch_size_per_gpu": 32, "gradient_clipping": 1.0}).plan()
    assert override.deepspeed_config["train_batch_size"] == 64 and override.deepspeed_config["gradient_clipping"] == 1.0
    assert override.config_hash != plan.config_hash
