"""Every ``ml-assets`` command answers bad input with one line on stderr and a non-zero exit, never a traceback;
a real bug keeps its traceback. The command's ``main()`` in-process, its stderr and exit code captured."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import dagster  # noqa: F401  imported at collection: a first import inside a test runs `file` (platform.architecture)
import pytest
import yaml

from ml_assets import cli
from ml_assets.cli_errors import USER_ERRORS, is_user_error
from ml_assets.settings import DEFAULT_SPEC_PATH


def spec_with(tmp_path: Path, change) -> Path:
    """The shipped Adult spec with ``change`` applied to its YAML mapping, demo data still found."""
    raw = yaml.safe_load(DEFAULT_SPEC_PATH.read_text())
    raw["demo_data"] = str(DEFAULT_SPEC_PATH.parent / raw["demo_data"])
    raw["training"].update(window_days=3, validation_days=1, test_days=1)
    change(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def target(raw: dict) -> dict:
    return next(c for c in raw["columns"] if c["role"] == "target")


BAD_SPECS = {
    "missing file": (lambda tmp: tmp / "nope.yaml", "nope.yaml does not exist (set ML_ASSETS_DATASET_SPEC"),
    "invalid YAML": (
        lambda tmp: (tmp / "bad.yaml").write_text("name: [unclosed\n") and tmp / "bad.yaml",
        "bad.yaml is not valid YAML: expected ',' or ']', but got '<stream end>' at line 2, column 1",
    ),
    "mostly above 1": (
        lambda tmp: spec_with(tmp, lambda raw: target(raw).update(mostly=2)),
        "is invalid: column 'income' mostly: Input should be less than or equal to 1 (got 2)",
    ),
    "no trials": (
        lambda tmp: spec_with(tmp, lambda raw: raw.update(search={"trials": 0})),
        "is invalid: search.trials: Input should be greater than or equal to 1 (got 0)",
    ),
    "not a mapping": (lambda tmp: (tmp / "list.yaml").write_text("- 1\n") and tmp / "list.yaml", "must be a YAML"),
}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


def one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ml-assets {command}: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_demo_refuses_a_spec_it_cannot_use_in_one_line(
    case: str, ml_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    make, expected = BAD_SPECS[case]
    monkeypatch.setenv("ML_ASSETS_DATASET_SPEC", str(make(tmp_path)))
    code, err = run_cli(["demo", "--stages", "data"], capsys)
    assert code == 2
    assert expected in one_error_line(err, "demo")


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["up", "--port", "3999"], "up"),  # refused before the webserver and daemon start (no process here)
        (["k8s", "render", "--out", "OUT"], "k8s"),
        (["traffic", "--day", "2026-03-01", "--rows", "5"], "traffic"),
        (["simulate", "--next"], "simulate"),
    ],
)
def test_every_command_that_reads_the_spec_refuses_it_in_one_line(
    argv: list[str],
    command: str,
    ml_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    spec = spec_with(tmp_path, lambda raw: raw.update(search={"trials": 0}))
    monkeypatch.setenv("ML_ASSETS_DATASET_SPEC", str(spec))
    code, err = run_cli([a.replace("OUT", str(tmp_path / "k8s")) for a in argv], capsys)
    assert code == 2
    assert "search.trials: Input should be greater than or equal to 1 (got 0)" in one_error_line(err, command)


def test_simulate_names_the_spec_option_in_one_line(
    ml_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = spec_with(tmp_path, lambda raw: target(raw).update(mostly=2))
    code, err = run_cli(["simulate", "--spec", str(spec), "--next"], capsys)
    assert code == 2
    assert "argument --spec: " in one_error_line(err, "simulate")
    assert "column 'income' mostly: Input should be less than or equal to 1 (got 2)" in err


@pytest.mark.parametrize("argv", [["up"], ["demo", "--stages", "data", "--days", "3"]])
def test_an_invalid_gates_mapping_is_one_line(
    argv: list[str], ml_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    spec = spec_with(tmp_path, lambda raw: raw.update(gates={"slice_floor": "high"}))
    monkeypatch.setenv("ML_ASSETS_DATASET_SPEC", str(spec))
    code, err = run_cli(argv, capsys)
    assert code == 2
    line = one_error_line(err, argv[0])
    assert "is invalid: gates.slice_floor: Input should be a valid number" in line  # typed when the spec loads


def test_a_bad_environment_setting_is_one_line(
    ml_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("ML_ASSETS_GPUS_PER_NODE", "eight")
    code, err = run_cli(["k8s", "render", "--out", str(tmp_path / "k8s")], capsys)
    assert code == 2
    assert "ML_ASSETS_GPUS_PER_NODE must be an integer, got 'eight'" in one_error_line(err, "k8s")


def test_an_unknown_demo_stage_is_refused_by_the_parser(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--stages", "data,modle"])
    assert exit_.value.code == 2
    assert "argument --stages: unknown stage(s) ['modle']" in capsys.readouterr().err


def test_a_real_bug_keeps_its_traceback() -> None:
    def broken(_: argparse.Namespace) -> int:
        return {}["missing"]

    with pytest.raises(KeyError):
        cli.dispatch(argparse.Namespace(command="demo", func=broken))
    assert not is_user_error(KeyError("missing")) and not is_user_error(ValueError("x"))


def test_every_user_facing_error_class_exists() -> None:
    """USER_ERRORS names classes by module: a rename must fail here, not silently turn errors into tracebacks."""
    for module, name in USER_ERRORS:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, Exception), (module, name)
        assert is_user_error(cls.__new__(cls)) if name != "ValidationError" else True


def test_stop_names_the_url_the_deployment_served_on(tmp_path: Path, capsys, monkeypatch) -> None:
    """Deployed with ML_ASSETS_SERVE_PORT=3413, stopped without it: the message names 3413, not the default."""
    from resources.deployment_record import DeploymentRecord

    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / "local.json").write_text(
        DeploymentRecord(url="http://127.0.0.1:3413").model_dump_json()
    )
    monkeypatch.delenv("ML_ASSETS_SERVE_PORT", raising=False)
    assert cli.main(["stop", "--home", str(tmp_path)]) == 0
    assert "no process of http://127.0.0.1:3413 is left" in capsys.readouterr().out
