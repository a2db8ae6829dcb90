"""Code versions come from the import graph: an asset's version changes when any project module it imports, at any
depth, changes, and only then; the Bento packs exactly the modules its service imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_assets import module_graph, versioning
from ml_assets.dataset import DatasetSpec
from ml_assets.definitions import build_definitions
from ml_assets.module_graph import module_closure, module_file
from ml_assets.serving.build import BUILD_FILES, service_code, service_sources


@pytest.fixture
def toy_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project of one package whose modules import each other in every way Python allows."""
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "top.py": "import os\nfrom toy import helper\n\ndef f():\n    from .sub.deep import g  # function-level\n",
        "helper.py": "from toy.sub import leaf as _leaf\nimport numpy\n",
        "alone.py": "x = 1\n",
        "sub/__init__.py": "",
        "sub/deep.py": "from . import leaf\nfrom ..helper import something_not_a_module\n",
        "sub/leaf.py": "",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    monkeypatch.setattr(module_graph, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(module_graph, "PROJECT_PACKAGES", frozenset({"toy"}))
    module_graph.module_file.cache_clear()
    module_graph.project_imports.cache_clear()
    yield tmp_path
    module_graph.module_file.cache_clear()
    module_graph.project_imports.cache_clear()


def test_the_closure_follows_every_kind_of_import_and_nothing_outside(toy_project: Path) -> None:
    assert module_closure("toy.top") == [
        "toy",
        "toy.helper",
        "toy.sub",
        "toy.sub.deep",
        "toy.sub.leaf",
        "toy.top",
    ]
    assert module_closure("toy.alone") == ["toy", "toy.alone"]
    assert module_file("os") is None and module_file("toy.helper.something_not_a_module") is None


def _versions(spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch, edited: str | None) -> dict[str, str]:
    real = module_graph.module_source

    def source(name: str) -> str:
        return real(name) + ("\n# edited\n" if name == edited else "")

    monkeypatch.setattr(versioning, "module_source", source)
    graph = build_definitions(spec).get_repository_def().asset_graph
    return {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}


@pytest.mark.parametrize(
    ("edited", "must_change", "must_stay"),
    [
        # the examples: raw_data's rules and the candidate's trainer were missing from hand-kept lists
        ("ml_assets.data.rules", {"raw_data"}, {"candidate_model", "bento"}),
        ("ml_assets.model.train", {"candidate_model"}, {"raw_data", "features"}),
        ("resources.deepspeed_trainer", {"candidate_model"}, {"raw_data"}),
        ("ml_assets.model.network", {"candidate_model", "model_evaluation"}, {"raw_data", "training_set"}),
        ("ml_assets.dataset", {"raw_data", "features", "training_set", "candidate_model", "model_evaluation"}, set()),
    ],
)
def test_an_edit_anywhere_below_an_asset_makes_exactly_its_importers_stale(
    adult_spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch, edited: str, must_change: set[str], must_stay: set[str]
) -> None:
    before = _versions(adult_spec, monkeypatch, None)
    after = _versions(adult_spec, monkeypatch, edited)
    changed = {k for k in before if before[k] != after[k]}
    assert must_change <= changed and not (must_stay & changed), (edited, sorted(changed))


def test_the_bento_packs_what_its_service_imports_and_no_pipeline_code() -> None:
    code = service_code()
    assert "bento/service.py" in code and "ml_assets/model/bundle.py" in code and "ml_assets/dataset.py" in code
    assert not [p for p in code if p.split("/")[0] in ("resources", "sensors") or p.startswith("ml_assets/data/")]
    assert service_sources() == [*code, *BUILD_FILES]


def test_every_asset_version_hashes_every_module_its_code_imports(
    adult_spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For every asset with a code version: each project module its defining module imports, at any depth, is
    hashed (by its source) into that version, so an edit of any of them makes the asset stale. The Bento's
    version hashes what the Bento packs (the service's closure) and how it is built."""
    import sys

    real = versioning.source_version
    hashed: dict[str, set[str]] = {}

    def recording(*modules, salt: str = "") -> str:
        version = real(*modules, salt=salt)
        hashed.setdefault(version, set()).update(module_closure(*(m.__name__ for m in modules)))
        return version

    for module in list(sys.modules.values()):  # every binding of it: `from ml_assets.versioning import ...` too
        if getattr(module, "source_version", None) is real:
            monkeypatch.setattr(module, "source_version", recording)
    graph = build_definitions(adult_spec).get_repository_def().asset_graph
    checked = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.code_version is None:  # observed source assets (landing, labels, log files): no code of ours
            assert not node.assets_def.is_executable or node.is_observable, key
            continue
        name = key.to_user_string()
        if name == "bento":
            assert node.code_version == versioning_bento(adult_spec)
            continue
        defining = node.assets_def.op.compute_fn.decorated_fn.__module__
        missing = set(module_closure(defining)) - hashed.get(node.code_version, set())
        assert not missing, f"{name}: its code version misses {sorted(missing)}"
        checked.append(name)
    assert {"raw_data", "candidate_model", "deployment", "ml_test_score", "approved_training_set"} <= set(checked)


def versioning_bento(spec: DatasetSpec) -> str:
    from ml_assets.serving.build import service_code_version

    packed = {str(module_file(m).relative_to(module_graph.PROJECT_ROOT)) for m in module_closure("bento.service")}
    assert set(service_code()) >= packed
    return service_code_version(spec)
