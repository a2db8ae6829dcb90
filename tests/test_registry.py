"""The champions' history read from champion_model's materializations on a real instance (stand-in runs with the
real promotion and rollback metadata)."""

from __future__ import annotations

from dagster import DagsterInstance

from ml_assets.dataset import DatasetSpec
from ml_assets.definitions import build_definitions
from ml_assets.model.registry import champion_history, current_champion_tag, previous_champion
from tests.standins import materialize_stand_in


def test_previous_champion_skips_a_champion_that_was_rolled_back_from(adult_spec: DatasetSpec) -> None:
    defs = build_definitions(adult_spec, env="local")
    instance = DagsterInstance.ephemeral()

    def crown(tag: str, previous: str, action: str) -> None:
        meta = {"model_tag": tag, "previous_champion": previous, "action": action}
        materialize_stand_in(defs, instance, "champion_model", metadata=meta)

    crown("m:a", "none", "promote")
    crown("m:b", "m:a", "promote")
    assert previous_champion(instance, "m:b") == "m:a" and previous_champion(instance, "m:a") is None
    crown("m:a", "m:b", "rollback")  # b realized worse than a: a serves again
    assert current_champion_tag(instance) == "m:a"
    assert [t for t, _ in champion_history(instance)] == ["m:a", "m:b", "m:a"]
    assert previous_champion(instance, "m:a") is None, (
        "b was rolled back from: comparing a with it again would ping-pong"
    )
    crown("m:c", "m:a", "promote")
    assert previous_champion(instance, "m:c") == "m:a"
    assert previous_champion(instance, "m:unknown") is None
