"""Which model served as champion, and when: read from ``champion_model``'s materializations in the Dagster instance.

Every promotion and every rollback is a materialization of ``champion_model`` carrying the ``model_tag`` it made
champion, so the instance (SQLite locally, Postgres in production) already holds the champions' history with run,
time and reason; nothing is written into BentoML's frozen model labels to know it.
"""

from __future__ import annotations

from dagster import AssetKey, DagsterInstance

from ml_assets.event_log import metadata_text

CHAMPION_MODEL = AssetKey("champion_model")


def _promotions(instance: DagsterInstance, limit: int) -> list[tuple[str, float, dict]]:
    """(model tag, time, metadata) of each materialization of champion_model that names a model, newest first."""
    found = []
    for record in instance.fetch_materializations(CHAMPION_MODEL, limit=limit).records:
        meta = record.asset_materialization.metadata if record.asset_materialization is not None else {}
        tag = metadata_text(meta.get("model_tag"))
        if tag is not None:
            found.append((tag, record.timestamp, meta))
    return found


def _reigns(promotions: list[tuple[str, float, dict]]) -> list[tuple[str, float]]:
    """A tag promoted twice in a row counts once."""
    history: list[tuple[str, float]] = []
    for tag, at, _ in promotions:
        if not history or history[-1][0] != tag:
            history.append((tag, at))
    return history


def champion_history(instance: DagsterInstance, limit: int = 100) -> list[tuple[str, float]]:
    """(model tag, promoted at) of each champion, newest first; a tag promoted twice in a row counts once."""
    return _reigns(_promotions(instance, limit))


def current_champion_tag(instance: DagsterInstance) -> str | None:
    history = champion_history(instance, limit=1)
    return history[0][0] if history else None


def previous_champion(instance: DagsterInstance, tag: str) -> str | None:
    """The champion that served before ``tag`` became champion (last time), or None.

    A champion that was rolled back from is never "previous": after A -> B -> rollback to A, A's previous is the
    one before A, not B, or monitoring would compare A with B again and roll back to the model it just left.
    """
    promotions = _promotions(instance, 100)
    rolled_back_from = {
        metadata_text(meta.get("previous_champion"))
        for _, _, meta in promotions
        if metadata_text(meta.get("action")) == "rollback"
    }
    tags = [t for t, _ in _reigns(promotions)]
    if tag not in tags:
        return None
    return next((t for t in tags[tags.index(tag) + 1 :] if t != tag and t not in rolled_back_from), None)
