"""Shared fixtures: every test gets its own ML_ASSETS_HOME, DAGSTER_HOME and BENTOML_HOME."""

from __future__ import annotations

import functools
import gc
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ml_assets.dataset import DatasetSpec, load_default_spec

# The three levels of the suite. A unit test has no mark. `IN_PROCESS` (the second level) materializes assets or
# evaluates automation in process with Dagster's own APIs, and starts no process either (the guard below holds it to
# that). `pytest.mark.integration` alone (the third level) starts real processes. Both of the last two carry the
# integration mark, so `-m "not integration"` is the unit tests, `-m in_process` the second level and
# `-m "integration and not in_process"` the third.
INTEGRATION = pytest.mark.integration
IN_PROCESS = [INTEGRATION, pytest.mark.in_process]  # a module's `pytestmark = IN_PROCESS`


def in_process(test: Any) -> Any:
    """Mark one test of the second level (a module of mixed levels)."""
    return INTEGRATION(pytest.mark.in_process(test))


def _markexpr(config: pytest.Config) -> str:
    return " ".join((config.getoption("markexpr") or "").split())


def _fast_tier(config: pytest.Config) -> bool:
    return "not integration" in _markexpr(config)


def _starts_no_process(config: pytest.Config) -> bool:
    """The run selects unit tests or the in-process level only: nothing it runs starts a process."""
    return _fast_tier(config) or _markexpr(config) == "in_process"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast tier does not import a module whose every test is integration (its module-level mark says so):
    every one would be deselected anyway, and importing BentoML, Kubernetes or the servers' clients in each worker
    costs seconds."""
    test_module = collection_path.name.startswith("test_")
    if _fast_tier(config) and test_module and _module_wholly_integration(collection_path):
        return True
    return None


@functools.cache
def _module_text(path: Path) -> str:
    """A Python module's source ("" for anything else): module-level marks are read from it before import."""
    return path.read_text() if path.suffix == ".py" and path.is_file() else ""


def _module_marks(path: Path) -> str:
    """The right-hand side of the module's `pytestmark = ...` line, without its comment ("" if it has none)."""
    for line in _module_text(path).splitlines():
        if line.startswith("pytestmark = "):
            return line.removeprefix("pytestmark = ").split("#", 1)[0]
    return ""


def _module_wholly_integration(path: Path) -> bool:
    marks = _module_marks(path)
    return "pytest.mark.integration" in marks or "IN_PROCESS" in marks


GREAT_EXPECTATIONS = pytest.mark.great_expectations


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "great_expectations: the module validates with Great Expectations")
    # Dagster runs, GX validations and pandas allocate millions of short-lived objects: with the default threshold
    # (700 allocations) the collector ran about 90 times a second and took a tenth of the fast tier's CPU. Collecting
    # every 50,000 allocations keeps that garbage bounded and cost under a fiftieth (measured on test_gates_e2e and
    # test_automation: 4.5 s of collection in 35 s, then under 1 s).
    gc.set_threshold(50_000, 20, 20)


@pytest.hookimpl(trylast=True)  # after pytest's own last collection, which reports errors raised in __del__
def pytest_unconfigure(config: pytest.Config) -> None:
    # The process is about to exit: without this, the interpreter's teardown collected the heap the tests left
    # (Dagster instances, frames, models) again and again while it cleared the modules, 2-4 s per process after
    # the last test, which each xdist worker spent before the run could end. Frozen objects are left alone.
    gc.freeze()


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Fast-tier scheduling: a module at a time on a worker (as ``--dist loadfile``: a module's fixtures are built
    once), with every module marked GREAT_EXPECTATIONS on the same worker, so that only one worker pays for importing
    Great Expectations (seconds). The scheduler sees node ids only, so the mark is read from the module's text."""
    from xdist.scheduler import LoadFileScheduling

    class GreatExpectationsTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return "great_expectations" if "GREAT_EXPECTATIONS" in _module_marks(config.rootpath / module) else module

    return GreatExpectationsTogether(config, log)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: the unit tests (``-m "not integration"``) and the in-process level (``-m in_process``) run on
    every core (at most 4 workers); a run that includes tests starting processes runs in this one process, since
    those start ranks and servers that need the cores and time their own health."""
    if _starts_no_process(config):
        return min(os.cpu_count() or 1, 4)
    return 0


@pytest.fixture(autouse=True)
def environment_restored() -> Iterator[None]:
    """What a test changes in os.environ ends with it: the CLI run in-process (``cli.main``) points DAGSTER_HOME and
    BENTOML_HOME at the test's home for good, and in one process (the whole suite) every later test then used a
    deleted folder. Fixtures of wider scope are set up before this one, so their changes are kept."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def processes_only_in_integration_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the third level starts processes: a unit test (no ``integration`` marker) or an in-process test
    (``IN_PROCESS``) that tries fails, naming it."""
    in_process_level = request.node.get_closest_marker("in_process") is not None
    if request.node.get_closest_marker("integration") and not in_process_level:
        return
    popen_init = subprocess.Popen.__init__
    level = "marked in_process (that level starts none)" if in_process_level else "not marked integration"

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts a process but is {level} (pytest.mark.integration)")

    def popen_only_for_library_caches(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
        if _library_cache_program(args, kwargs):
            return popen_init(self, *args, **kwargs)
        refuse()

    monkeypatch.setattr(subprocess.Popen, "__init__", popen_only_for_library_caches)
    monkeypatch.setattr(os, "fork", refuse)


# Programs a library runs to look up what the system has, whichever test imports it first: matplotlib (imported by
# torchmetrics) lists the system fonts with fc-list when ~/.cache/matplotlib has no font list yet; ctypes'
# find_library reads the linker cache with `ldconfig -p` (trio does, at import, and httpcore imports trio wherever it
# is installed: selenium, for the browser test, brings it); joblib's loky asks lscpu for the physical cores once per
# process (cached) when scikit-learn's boosted trees size their OpenMP threads (the multivariate leakage check).
LIBRARY_CACHE_PROGRAMS = frozenset({"fc-list", "ldconfig", "lscpu"})


def _library_cache_program(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Popen's arguments start one of LIBRARY_CACHE_PROGRAMS directly: an argument list, no shell, no other
    executable (anything else could run a command line that merely mentions one)."""
    if args:
        argv = args[0] if len(args) == 1 else None  # more positional arguments could set shell or executable
    else:
        argv = kwargs.get("args")
    if not isinstance(argv, list | tuple) or not argv or kwargs.get("shell") or kwargs.get("executable"):
        return False
    program = argv[0]
    return isinstance(program, str | bytes | os.PathLike) and Path(os.fsdecode(program)).name in LIBRARY_CACHE_PROGRAMS


@pytest.fixture
def ml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ml_home"
    (home / "dagster").mkdir(parents=True)
    monkeypatch.setenv("ML_ASSETS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "true")
    return home


FIRST_DAY = date(2026, 1, 1)


@pytest.fixture(scope="session")
def adult_spec() -> DatasetSpec:
    """The shipped Adult spec with its partitions starting on a fixed day (``auto`` would follow the landing zone)."""
    return pinned(load_default_spec())


def pinned(spec: DatasetSpec, **changes) -> DatasetSpec:
    """A copy of ``spec`` with partitions from FIRST_DAY (and any other field changes), keeping its file path."""
    return spec.model_copy(update={"partitions_start": FIRST_DAY, **changes})


def three_day_window(spec: DatasetSpec, first_day: date) -> DatasetSpec:
    """``spec`` with partitions from ``first_day`` and a three-day training window (train, validation, test)."""
    window = spec.training.model_copy(update={"window_days": 3, "validation_days": 1, "test_days": 1})
    return pinned(spec, partitions_start=first_day, training=window)


# Adult columns that no in-process run test corrupts, names or slices by. Dagster writes each check result of a run
# as its own events (about 13 ms each here), so a raw_data run of full Adult (50 checks) costs twice one without
# them (33): the tests that run the data assets again and again use ``narrow``. The full width is validated rule by
# rule in test_expectations.py and run for real by the integration tests.
UNEXERCISED_COLUMNS = ("fnlwgt", "education_num", "marital_status", "relationship", "capital_loss", "native_country")


def narrow(spec: DatasetSpec) -> DatasetSpec:
    """``spec`` without UNEXERCISED_COLUMNS: the same landing, checks, features and training, on fewer columns."""
    return spec.model_copy(update={"columns": [c for c in spec.columns if c.name not in UNEXERCISED_COLUMNS]})


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL (127.0.0.1:5432, trust auth), dropped afterwards; its name."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(PG_ADMIN, connect_timeout=3)
    except psycopg2.OperationalError as e:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({e})")
    admin.autocommit = True
    name = f"ml_assets_test_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
