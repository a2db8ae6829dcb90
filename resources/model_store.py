"""ModelStore: the BentoML model store, where every trained model is kept with its lineage.

Models are saved with ``bentoml.models.create`` (so ``bentoml models list`` and Bento builds see them) under
``<home>/models``, labelled with their kind and dataset, their lineage (``ModelLineage``: training window, code,
config, metrics) in their metadata; a saved model is never rewritten. The model assets write the lineage record
and every reader (evaluation, champion, rollback, monitoring) reads the same record back. Which model is champion is not a label (BentoML freezes labels): it is
the history of ``champion_model`` in the Dagster instance (``ml_assets.model.registry``).

This module is the one adapter to BentoML's private store API: BentoML resolves BENTOML_HOME once per process, and
only ``bentoml._internal.models.ModelStore`` with the ``_model_store=`` argument lets a resource use a store of its
own, so two resources (or two tests) with different homes never mix. ``tests/test_model_store.py`` fails loudly
if BentoML changes either.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import bentoml
from bentoml._internal.models import ModelStore as BentoModelStore
from bentoml.exceptions import NotFound
from dagster import ConfigurableResource
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from resources.atomic_files import write_atomic


class StorableModel(Protocol):
    """What the store needs of a model: its kind and dataset (labels) and how to write its files."""

    kind: str
    spec_name: str

    def save(self, directory: str | Path) -> None: ...


class ModelNotFoundError(LookupError):
    """A tag that is not in this store."""


class LineageError(ValueError):
    """A stored model whose lineage does not match ``ModelLineage``, naming the tag and the fields."""


class ModelLineage(BaseModel):
    """Where a stored model came from and how it scored: written once with the model, read back by everything
    that judges, promotes, rolls back or monitors it. Fields a kind of model does not have stay unset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training_set_version: str = Field("", description="content hash of the training set it was fitted on")
    training_set_partition: str = Field("", description="the training set's partition (its window's last day)")
    code_version: str = Field("", description="code version of the asset that trained it")
    validation_metrics: dict[str, float] = Field(default_factory=dict, description="figures on validation rows")
    config: dict[str, Any] = Field(default_factory=dict, description="every setting it was trained with")
    decision: dict[str, Any] | None = Field(None, description="its decision threshold and the policy that chose it")
    train_rows: int | None = None
    unlabeled_rows_left_out: dict[str, int] | None = Field(None, description="rows per split without a label")
    families: dict[str, float] | None = Field(None, description="each candidate family's validation figure")
    search: dict[str, Any] | None = Field(None, description="the candidate search: trials, best, ensemble")
    samples_per_s: float | None = None
    wall_seconds: float | None = None
    ranks: int | None = None
    device: str | None = None
    precision: str | None = None
    best_epoch: int | None = None


class StoredModel(BaseModel):
    """A model of the store: its tag, labels (kind, dataset), lineage, creation time and files."""

    model_config = ConfigDict(frozen=True)

    tag: str
    kind: str
    dataset: str
    lineage: ModelLineage
    creation_time: datetime
    path: str


class ModelStore(ConfigurableResource):
    """Save and list models in a BentoML model store rooted at ``home``; a model's files are at ``path(tag)``
    (``ml_assets.model.refs.load_stored`` reads a TabularModel back)."""

    home: str = Field(description="BENTOML_HOME of the store; models live in <home>/models")

    def _store(self) -> BentoModelStore:
        models = Path(self.home) / "models"
        models.mkdir(parents=True, exist_ok=True)
        return BentoModelStore(str(models))

    def _get(self, tag: str) -> bentoml.Model:
        try:
            return bentoml.models.get(tag, _model_store=self._store())
        except NotFound as e:
            raise ModelNotFoundError(f"model {tag!r} is not in the BentoML store at {self.home}") from e

    def save(self, model: StorableModel, name: str, lineage: ModelLineage) -> str:
        """Store ``model`` as a new version of ``name`` with its lineage; returns the tag "name:version"."""
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
        labels = {"kind": model.kind, "dataset": model.spec_name}
        metadata = _plain(lineage.model_dump(mode="json", exclude_none=True))
        with bentoml.models.create(name, labels=labels, metadata=metadata, _model_store=self._store()) as bento_model:
            model.save(bento_model.path)
        return str(bento_model.tag)

    def has(self, tag: str) -> bool:
        try:
            self._get(tag)
        except ModelNotFoundError:
            return False
        return True

    def import_from(self, source: ModelStore, tag: str) -> str:
        """Copy model ``tag`` (its files, labels and metadata: the lineage travels with it) from another store into
        this one through BentoML's public ``export_model``/``import_model``, the ``.bentomodel`` archive that
        ``bentoml models export``/``import`` move between machines. A model already here is left as it is (a stored
        model is never rewritten); returns its tag."""
        found = source._get(tag)  # raises naming the source store when the tag is not there
        if self.has(str(found.tag)):
            return str(found.tag)
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
        with tempfile.TemporaryDirectory(prefix="bentomodel-") as scratch:
            archive = bentoml.models.export_model(
                found.tag, os.path.join(scratch, "model.bentomodel"), _model_store=source._store()
            )
            imported = bentoml.models.import_model(archive, _model_store=self._store())
        return str(imported.tag)

    def path(self, tag: str) -> Path:
        """Directory of the model's files (for packaging)."""
        return Path(self._get(tag).path)

    def tags(self, name: str) -> list[str]:
        """Versions of ``name``, newest first."""
        try:
            models = bentoml.models.list(name, _model_store=self._store())
        except NotFound:
            return []
        models.sort(key=lambda m: m.info.creation_time, reverse=True)
        return [str(m.tag) for m in models]

    def write_export(self, tag: str, filename: str, data: bytes) -> Path:
        """Write a file made from model ``tag`` for use outside the store (e.g. its ONNX export) beside the
        store's models, at ``<home>/exports/<name>/<version>/<filename>``: the saved model is never rewritten."""
        bento_model = self._get(tag)
        folder = Path(self.home) / "exports" / bento_model.tag.name / str(bento_model.tag.version)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(filename).name
        write_atomic(path, data)  # a reader never sees half a file
        return path

    def info(self, tag: str) -> StoredModel:
        """The stored model ``tag`` with its lineage (a lineage that does not match ``ModelLineage`` is refused
        naming the tag and the fields)."""
        bento_model = self._get(tag)
        try:
            lineage = ModelLineage.model_validate(dict(bento_model.info.metadata))
        except ValidationError as e:
            fields = ", ".join(".".join(map(str, err["loc"])) for err in e.errors())
            raise LineageError(
                f"model {tag} in {self.home}: its stored lineage does not match ModelLineage ({fields})"
            ) from e
        labels = dict(bento_model.info.labels)
        return StoredModel(
            tag=str(bento_model.tag),
            kind=labels.get("kind", ""),
            dataset=labels.get("dataset", ""),
            lineage=lineage,
            creation_time=bento_model.info.creation_time,
            path=str(bento_model.path),
        )


def _plain(value: Any) -> Any:
    """BentoML metadata accepts basic values only (no None): drop unset entries, turn numpy scalars, paths and
    tuples into plain values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value if v is not None]
    if isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return str(value)
