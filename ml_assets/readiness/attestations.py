"""Manual attestations: a reviewed YAML file in the repository saying who did which rubric test by hand, when and
why, with the documented result. Each entry is worth half a point for its test (``ml_assets.readiness.rubric``);
it is reviewed like code, so an attestation is a commit a reviewer accepted.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ml_assets.readiness.rubric import RUBRIC_BY_ID

ATTESTATIONS = Path(__file__).parent / "attestations.yaml"


class AttestationError(ValueError):
    """An attestations file that cannot be trusted: one line naming the file, the entry and what is wrong."""


class Attestation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    test: str = Field(description="the rubric test's id, e.g. data-3")
    who: str = Field(min_length=1, description="the person who did the test by hand")
    when: date = Field(description="the day it was done")
    why: str = Field(min_length=1, description="why a manual result stands in for automation here")
    result: str = Field(min_length=1, description="the documented result (or where it is documented)")

    @field_validator("test")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in RUBRIC_BY_ID:
            raise ValueError(f"unknown rubric test {value!r} (ids are data-1 .. monitoring-7)")
        return value


def load_attestations(path: Path = ATTESTATIONS) -> list[Attestation]:
    """The attestations in ``path`` (none when the file does not exist)."""
    if not path.exists():
        return []
    entries = yaml.safe_load(path.read_text()) or []
    if not isinstance(entries, list):
        raise AttestationError(f"{path}: expected a list of attestations, got {type(entries).__name__}")
    found = []
    for i, entry in enumerate(entries):
        try:
            found.append(Attestation.model_validate(entry))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            raise AttestationError(f"{path}: attestation #{i + 1} ({where}): {first['msg']}") from e
    return found
