"""Models already in the store (a serving champion, a rollback target): their ``ModelRef`` read back from the
labels and lineage the model assets saved with them, and the model itself.

Kept out of ``bundle`` so that the Bento, which imports ``bundle``, needs neither the store adapter nor Dagster.
"""

from __future__ import annotations

from ml_assets.model.bundle import ModelRef, TabularModel
from resources.model_store import ModelStore


def stored_ref(store: ModelStore, tag: str) -> ModelRef:
    """A ModelRef for a model already in the store, from its labels and lineage."""
    info = store.info(tag)
    return ModelRef(
        tag=info.tag,
        name=info.tag.split(":", 1)[0],
        kind=info.kind,
        metrics=dict(info.lineage.validation_metrics),
        training_set_version=info.lineage.training_set_version,
    )


def load_stored(store: ModelStore, tag: str) -> TabularModel:
    """The TabularModel ``tag`` of a model store (raises naming the store when the tag is not there)."""
    return TabularModel.load(store.path(tag), tag)
