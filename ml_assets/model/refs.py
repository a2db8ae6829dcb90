"""A ``ModelRef`` for a model already in the store (a serving champion, a rollback target), read back from the
labels and lineage metadata the model assets saved with it."""

from __future__ import annotations

from ml_assets.model.bundle import ModelRef
from resources.model_store import ModelStore


def stored_ref(store: ModelStore, tag: str) -> ModelRef:
    """A ModelRef for a model already in the store, from its labels and metadata."""
    info = store.info(tag)
    meta = info.get("metadata") or {}
    metrics = meta.get("metrics") or meta.get("validation_metrics") or {}
    return ModelRef(
        tag=info["tag"],
        name=info["tag"].split(":", 1)[0],
        kind=str(info.get("labels", {}).get("kind", "")),
        metrics={str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        training_set_version=str(meta.get("training_set_version", "")),
    )
