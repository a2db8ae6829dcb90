"""The fast tier's guard (conftest.py): a unit test (no integration marker) or an in-process one (``IN_PROCESS``)
cannot start a process, except the programs a library runs once per machine to fill its own cache."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import in_process


def test_a_process_started_outside_an_integration_test_fails_naming_the_test(request: pytest.FixtureRequest) -> None:
    with pytest.raises(AssertionError, match=f"{request.node.nodeid} starts a process but is not marked integration"):
        subprocess.run(["true"], check=False)
    with pytest.raises(AssertionError, match="not marked integration"):
        subprocess.run(args=["true"], check=False)
    with pytest.raises(AssertionError, match="not marked integration"):
        os.fork()


@in_process
def test_an_in_process_test_cannot_start_one_either(request: pytest.FixtureRequest) -> None:
    """The second level carries the integration mark (so the unit tier leaves it out) and still starts nothing."""
    with pytest.raises(AssertionError, match=f"{request.node.nodeid} starts a process but is marked in_process"):
        subprocess.run(["true"], check=False)


def test_only_an_argument_list_naming_a_cache_program_gets_through() -> None:
    """A shell command line that merely mentions fc-list is refused like any other process."""
    for refused in (
        {"args": "fc-list --version"},
        {"args": "true; fc-list", "shell": True},
        {"args": ["true; fc-list"], "shell": True},
        {"args": ["fc-list"], "executable": "true"},
        {"args": []},
    ):
        with pytest.raises(AssertionError, match="not marked integration"):
            subprocess.run(**refused, check=False, capture_output=True)


@pytest.mark.skipif(shutil.which("fc-list") is None, reason="fontconfig's fc-list is not installed")
def test_matplotlib_may_list_the_fonts_for_its_font_cache() -> None:
    """matplotlib runs fc-list the first time it is imported on a machine (no ~/.cache/matplotlib font list yet):
    that must not fail whichever fast test imports it first."""
    listed = subprocess.run(["fc-list", "--version"], capture_output=True, check=False)
    assert listed.returncode == 0
