"""The project's own import graph, read from the source (never by importing it).

Code versions (``ml_assets.versioning``) hash a module with every project module it imports, transitively, and the
Bento packs exactly the modules its service imports (``ml_assets.serving.build``): both come from here, so no list
of modules is kept by hand. No third-party imports: the Bento build's child process uses it too.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path

PROJECT_PACKAGES = frozenset({"ml_assets", "resources", "sensors", "bento"})
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def module_closure(*names: str) -> list[str]:
    """The project modules ``names`` are made of: themselves, the packages they live in, and every project
    module they import at any depth, sorted."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        todo.extend([parent] if parent else [])
        todo.extend(project_imports(name))
    return sorted(seen)


def module_files(*names: str) -> list[Path]:
    """The source files of ``module_closure(*names)``, relative to the project root (what a Bento must pack)."""
    return [module_file(n).relative_to(PROJECT_ROOT) for n in module_closure(*names)]  # type: ignore[union-attr]


@cache
def module_file(name: str) -> Path | None:
    """A project module's source file, found by its name under the project root without importing it (None for
    a module outside the project, or a name in a package that is not a module of its own)."""
    parts = name.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = PROJECT_ROOT.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_source(name: str) -> str:
    path = module_file(name)
    return path.read_text() if path is not None else ""


@cache
def project_imports(name: str) -> tuple[str, ...]:
    """The project modules that module ``name`` imports anywhere in its body (``import a.b``, ``from a import b``
    where ``b`` is a module or a name in ``a``, relative imports), read from its source without running it."""
    path = module_file(name)
    if path is None:
        return ()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                if node.level
                else node.module
            )
            if base:
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)  # submodules; names are dropped below
    return tuple(sorted(n for n in found if module_file(n) is not None))
