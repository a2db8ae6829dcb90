"""Models already in the store (a serving champion, a rollback target): their ``ModelRef`` read back from the
labels and lineage the model assets saved with them, and the model itself.

Kept out of ``bundle`` so that the Bento, which imports ``bundle``, needs neither the store adapter nor Dagster.
"""

from __future__ import annotations

from ml_assets.model.bundle import ModelRef, TabularModel
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


def load_stored(store: ModelStore, tag: str) -> TabularModel:
    """The TabularModel ``tag`` of a model store (raises naming the store when the tag is not there)."""
    return TabularModel.load(store.path(tag))
