"""Which model served as champion, and when: read from ``champion_model``'s materializations in the Dagster instance.

Every promotion and every rollback is a materialization of ``champion_model`` carrying the ``model_tag`` it made
champion, so the instance (SQLite locally, Postgres in production) already holds the champions' history with run,
time and reason; nothing is written into BentoML's frozen model labels to know it.
"""

from __future__ import annotations

from dagster import AssetKey, DagsterInstance

CHAMPION_MODEL = AssetKey("champion_model")


def champion_history(instance: DagsterInstance, limit: int = 100) -> list[tuple[str, float]]:
    """(model tag, promoted at) of each champion, newest first; a tag promoted twice in a row counts once."""
    records = instance.fetch_materializations(CHAMPION_MODEL, limit=limit).records
    history: list[tuple[str, float]] = []
    for record in records:
        mat = record.asset_materialization
        tag = mat.metadata.get("model_tag") if mat is not None else None
        if tag is not None and (not history or history[-1][0] != str(tag.value)):
            history.append((str(tag.value), record.timestamp))
    return history


def current_champion_tag(instance: DagsterInstance) -> str | None:
    history = champion_history(instance, limit=1)
    return history[0][0] if history else None


def previous_champion(instance: DagsterInstance, tag: str) -> str | None:
    """The champion that served before ``tag`` became champion (last time), or None.

    A champion that was rolled back from is never "previous": after A -> B -> rollback to A, A's previous is the
    one before A, not B, or monitoring would compare A with B again and roll back to the model it just left.
    """
    reigns: list[str] = []
    rolled_back_from: set[str] = set()
    for record in instance.fetch_materializations(CHAMPION_MODEL, limit=100).records:
        meta = record.asset_materialization.metadata if record.asset_materialization is not None else {}
        if "model_tag" not in meta:
            continue
        if _text(meta.get("action")) == "rollback" and meta.get("previous_champion") is not None:
            rolled_back_from.add(_text(meta["previous_champion"]))
        current = _text(meta["model_tag"])
        if not reigns or reigns[-1] != current:
            reigns.append(current)
    if tag not in reigns:
        return None
    before = reigns[reigns.index(tag) + 1 :]
    return next((t for t in before if t != tag and t not in rolled_back_from), None)


def _text(entry) -> str:
    return str(getattr(entry, "value", entry))
