"""Bad input to an ``ml-assets`` command is answered with one line on stderr, not a traceback.

The project's own errors about what a user gave it (an environment setting, a spec that cannot be used (its
``gates:`` section included: typed, validated when the spec loads), a data file ``spec infer`` cannot read, simulator options, trainer settings) are user-facing: their message says
what was wrong and where, so the command prints it on one line and exits 2. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# (module, class) of the user-facing errors; a class whose module was never imported cannot have been raised, so
# nothing is imported to recognise them (tests/test_cli_errors.py checks that each one exists)
USER_ERRORS: tuple[tuple[str, str], ...] = (
    ("ml_assets.settings", "SettingError"),
    ("ml_assets.dataset", "SpecError"),
    ("ml_assets.datasets.spec_infer", "InferenceError"),
    ("ml_assets.datasets.simulator", "SimulationError"),
    ("resources.deepspeed_trainer", "TrainerConfigError"),
    ("pydantic", "ValidationError"),
)


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is one of USER_ERRORS."""
    seen: BaseException | None = error
    while seen is not None:
        for module, name in USER_ERRORS:
            cls = getattr(sys.modules.get(module), name, None)
            if isinstance(cls, type) and isinstance(seen, cls):
                return True
        seen = seen.__cause__
    return False


def one_line(error: BaseException, spec_file: Path | None = None) -> str:
    """The error's message on one line: a pydantic validation as ``field: problem (got value)`` per error (a
    column named by its name when ``spec_file`` is the spec that was validated), a YAML error as its problem and
    position, anything else with its lines joined."""
    from pydantic import ValidationError

    validation = next((e for e in _chain(error) if isinstance(e, ValidationError)), None)
    if validation is not None:
        head = str(error).splitlines()[0].rstrip(": ") if validation is not error else f"invalid {validation.title}"
        columns = _column_names(spec_file)
        details = "; ".join(
            f"{_where(err['loc'], columns)}: {err['msg']}" + (f" (got {err['input']!r})" if _scalar(err) else "")
            for err in validation.errors()
        )
        return f"{head}: {details}"
    marked = next((e for e in _chain(error) if hasattr(e, "problem_mark") and e.problem_mark is not None), None)
    if marked is not None:
        head = str(error).splitlines()[0].split(" YAML: ")[0] + " YAML"
        mark = marked.problem_mark
        return f"{head}: {marked.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _chain(error: BaseException) -> Iterable[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__


def _scalar(err: Mapping[str, Any]) -> bool:
    return isinstance(err.get("input"), str | int | float | bool) and err.get("type") != "missing"


def _where(loc: tuple[Any, ...], columns: list[str]) -> str:
    """``columns[4].mostly`` as ``column 'y' mostly``; other fields dotted (``search.trials``)."""
    if len(loc) >= 2 and loc[0] == "columns" and isinstance(loc[1], int) and loc[1] < len(columns):
        rest = ".".join(str(p) for p in loc[2:])
        return f"column {columns[loc[1]]!r}" + (f" {rest}" if rest else "")
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "spec"


def _column_names(spec_file: Path | None) -> list[str]:
    """The column names of a spec file in order, or none when it cannot be read."""
    import yaml

    try:
        raw = yaml.safe_load(Path(spec_file).read_text()) if spec_file else None
    except (OSError, yaml.YAMLError):
        return []
    columns = raw.get("columns") if isinstance(raw, dict) else None
    if not isinstance(columns, list):
        return []
    return [str(c.get("name")) if isinstance(c, dict) else "?" for c in columns]
