"""Which model a built Bento packs, read from its manifest: so a Bento of one model serves it with no variable."""

from __future__ import annotations

from pathlib import Path

import yaml


def packed_model_tag(module_file: str) -> str:
    """The model packed by the Bento that ``module_file`` (the service module) runs from, when it packs exactly
    one; else "".

    A built Bento holds the service module as ``<bento>/src/bento/service.py`` beside ``<bento>/bento.yaml``, whose
    ``models`` and ``services[].models`` list what ``bentoml build`` packed (the service's ``model_ref``). Run from
    the project's source tree (a build, the tests) there is no such file: the tag comes from the environment."""
    source = Path(module_file).resolve().parents[1]
    manifest = source.parent / "bento.yaml"
    if source.name != "src" or not manifest.is_file():
        return ""
    info = yaml.safe_load(manifest.read_text()) or {}
    listed = [*info.get("models", []), *(m for s in info.get("services", []) for m in s.get("models", []))]
    tags = {str(m["tag"]) for m in listed if isinstance(m, dict) and m.get("tag")}
    return tags.pop() if len(tags) == 1 else ""
