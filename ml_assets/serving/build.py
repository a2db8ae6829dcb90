"""Build the Bento for one model tag, offline, in a child process.

The child imports ``bento.service`` with ``ML_ASSETS_MODEL_TAG`` and ``BENTOML_HOME`` set, so BentoML packs that
model into the Bento and the service module (which reads the tag at import) is never cached across builds in a
long-lived Dagster process. Options come from ``bento/bentofile.yaml``; the child writes a copy with the model
tag added as the image's ``ML_ASSETS_MODEL_TAG`` (so the Bento serves its champion wherever it runs) and the
service's code added to its ``include`` (the service module and every project module it imports, read from the
import graph, so no list is kept by hand), and builds it with BentoML's public ``bentoml.bentos.build_bentofile``;
the tag is also a label.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ml_assets.dataset import DatasetSpec
from ml_assets.module_graph import module_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENTOFILE = PROJECT_ROOT / "bento" / "bentofile.yaml"
SERVICE_MODULE = "bento.service"
BUILD_FILES = ("bento/bentofile.yaml", "ml_assets/serving/build.py")  # how the Bento is built shapes it too


def service_code() -> list[str]:
    """The service module and every project module it imports, transitively: what the Bento packs as code."""
    return [str(p) for p in module_files(SERVICE_MODULE)]


def service_sources() -> list[str]:
    """What the served behaviour depends on (its code and how it is built): its hash is the bento asset's code
    version."""
    return [*service_code(), *BUILD_FILES]


class BentoBuildError(RuntimeError):
    """``bentoml build`` failed; carries its output."""


@dataclass(frozen=True)
class BentoRef:
    """What the ``bento`` asset hands to ``deployment``: the Bento and the model it serves."""

    tag: str
    model_tag: str
    size_bytes: int
    path: str
    code_version: str


def service_code_version(spec: DatasetSpec | None = None) -> str:
    """A hash of the service sources and, given ``spec``, of its whole content: the Bento's schema comes from the
    spec the model carries, so a new category or column makes the Bento stale even before a retrained model."""
    digest = hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode() if spec else b"")
    for rel in service_sources():
        path = PROJECT_ROOT / rel
        digest.update(rel.encode())
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()[:12]


def build_bento(
    model_tag: str,
    bentoml_home: str | Path,
    labels: dict[str, str] | None = None,
    timeout_s: float = 600,
    spec: DatasetSpec | None = None,
) -> BentoRef:
    """Build a Bento serving ``model_tag`` into the store at ``bentoml_home``; returns its tag and size (its code
    version covers ``spec``'s content when given)."""
    code_version = service_code_version(spec)
    env = {
        **os.environ,
        "BENTOML_HOME": str(bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "ML_ASSETS_MODEL_TAG": model_tag,
        "PIP_NO_INDEX": "1",  # belt and braces: nothing in a build may reach an index
    }
    all_labels = {"model_tag": model_tag, "code_version": code_version, **(labels or {})}
    cmd = [sys.executable, "-m", "ml_assets.serving.build", "--labels", json.dumps(all_labels)]
    proc = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BentoBuildError(
            f"bentoml build for {model_tag} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    out = json.loads(lines[-1])
    size = sum(p.stat().st_size for p in Path(out["path"]).rglob("*") if p.is_file())
    return BentoRef(tag=out["tag"], model_tag=model_tag, size_bytes=size, path=out["path"], code_version=code_version)


def _build_in_child(labels: dict[str, str]) -> dict[str, Any]:
    import bentoml

    config = yaml.safe_load(BENTOFILE.read_text())
    config["include"] = [*service_code(), *config.get("include", [])]  # the code, from the import graph
    config["envs"] = [
        *config.get("envs", []),
        {"name": "ML_ASSETS_MODEL_TAG", "value": os.environ["ML_ASSETS_MODEL_TAG"]},
    ]
    with tempfile.TemporaryDirectory(prefix="bentofile-") as tmp:
        bentofile = Path(tmp) / "bentofile.yaml"
        bentofile.write_text(yaml.safe_dump(config, sort_keys=False))
        bento = bentoml.bentos.build_bentofile(str(bentofile), labels=labels, build_ctx=str(PROJECT_ROOT))
    return {"tag": str(bento.tag), "path": bento.path}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="build the ml-assets Bento (run by build_bento)")
    parser.add_argument("--labels", default="{}")
    args = parser.parse_args(argv)
    print(json.dumps(_build_in_child(json.loads(args.labels))), flush=True)


if __name__ == "__main__":
    main()
