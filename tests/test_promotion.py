"""Promotion from qa to prod, in process, on real models: qa's model_evaluation and its blocking gates run on a real
training window and real candidates (the pipeline of test_gates_e2e, on qa's own instance, store and storage), then
prod's ``promote_model`` job (and ``ml-assets promote``) takes the model that passed, refuses the one that did not,
and rolls back by promoting the previous model again. The model, its lineage and the record arrive in prod; qa's
state is only read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import bentoml.models  # noqa: F401  imported at collection, as the serving tests do: the import probes the C library once
import pytest
from dagster import DagsterInstance

import tests.test_gates_e2e as gates_e2e
from ml_assets import inline
from ml_assets.cli import main
from ml_assets.definitions import build_definitions
from ml_assets.model.champion import PROMOTE_JOB, promote_run_config
from ml_assets.model.registry import champion_history
from ml_assets.promotion import CheckResult, QaEvidence
from ml_assets.settings import paths
from resources.model_store import ModelStore
from tests.test_gates_e2e import Pipeline, models, spec, training_set, window_end  # noqa: F401  (fixtures)
from tests.test_rollback import NO_COMPUTE_LOGS, QUIET

GATES = ("beats_baseline", "fairness")


def evidence(**readiness) -> QaEvidence:
    gates = (
        CheckResult("beats_baseline", True, True, "0.90 >= 0.85"),
        CheckResult("fairness", False, True, "demographic parity 0.41 > 0.35"),
        CheckResult("slice_quality", None, True, "not evaluated"),
    )
    ready = CheckResult("readiness", readiness.get("passed"), True, readiness.get("why", "not evaluated"))
    return QaEvidence("qa", "adult-classifier:v1", "run-1", 0.0, gates, ready, {})


def test_the_refusal_names_every_reason_in_one_line() -> None:
    assert evidence(passed=False, why="score 3.0 < 5.0").refusal(may_skip=["slice_quality"]) == (
        "adult-classifier:v1 did not pass qa: blocking gates failed: fairness (demographic parity 0.41 > 0.35); "
        "readiness below the level (score 3.0 < 5.0)"
    )
    assert "gates with no result: slice_quality" in evidence().refusal(may_skip=[])


def instance_at(home: Path) -> DagsterInstance:
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text(NO_COMPUTE_LOGS)  # compute logs would start processes
    return DagsterInstance.from_config(str(home / "dagster"))


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content's hash: what "untouched" means."""
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


class World:
    """qa with its own instance, store and storage under ``<root>/qa``, and prod's Definitions and instance."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, spec, training_set, window_end, models) -> None:  # noqa: F811
        for name in ("DAGSTER_HOME", "BENTOML_HOME", "ML_ASSETS_ENV", "ML_ASSETS_RUNS_ON"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ML_ASSETS_HOME", str(root))
        self.root, self.spec = root, spec
        self.qa_instance = instance_at(paths("qa").home)

        class QaInstance:  # the e2e pipeline opens an ephemeral instance: here it is qa's own
            ephemeral = staticmethod(lambda: self.qa_instance)

        monkeypatch.setattr(gates_e2e, "DagsterInstance", QaInstance)
        self.qa = Pipeline(paths("qa").home, monkeypatch, spec, training_set, window_end, models)
        monkeypatch.setenv("ML_ASSETS_HOME", str(root))  # the pipeline points it at a folder of its own
        monkeypatch.delenv("BENTOML_HOME")
        monkeypatch.setenv("ML_ASSETS_ENV", "prod")
        self.prod_instance = instance_at(paths("prod").home)
        self.prod = build_definitions(spec, env="prod")

    def qa_candidate(self, which: str) -> str:
        """A candidate judged in qa (promoted there when it passed): its tag."""
        tag = self.qa.save(which)
        self.qa.run(tag)
        return tag

    def promote(self, tag: str, by: str = "tester"):
        return self.prod.resolve_job_def(PROMOTE_JOB).execute_in_process(
            instance=self.prod_instance,
            run_config={**promote_run_config(tag, "qa", by), **QUIET},
            raise_on_error=False,
        )

    def prod_champions(self) -> list[str]:
        return [t for t, _ in champion_history(self.prod_instance)]


@pytest.fixture
def world(tmp_path, monkeypatch, spec, training_set, window_end, models) -> World:  # noqa: F811
    return World(tmp_path / "ml", monkeypatch, spec, training_set, window_end, models)


def refusal(result) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.user_failure_data.description


@pytest.mark.integration
def test_a_model_that_passed_qa_arrives_in_prod_with_its_lineage_and_record(world: World) -> None:
    tag = world.qa_candidate("good")
    assert sorted(p.name for p in world.root.iterdir()) == ["prod", "qa"]  # qa's runs wrote nothing of dev's
    qa_before = tree(world.root / "qa")
    assert not ModelStore(home=str(paths("prod").bentoml_home)).has(tag)

    result = world.promote(tag)
    assert result.success, refusal(result)
    assert world.prod_champions() == [tag]
    store = ModelStore(home=str(paths("prod").bentoml_home))
    qa_lineage = ModelStore(home=str(paths("qa").bentoml_home)).info(tag).lineage
    assert store.info(tag).lineage == qa_lineage  # the model and its lineage came through BentoML's export
    meta = {k: v.value for k, v in result.asset_materializations_for_node("champion_model")[0].metadata.items()}
    assert (meta["action"], meta["promoted_from"], meta["promoted_by"], meta["environment"]) == (
        "promote",
        "qa",
        "tester",
        "prod",
    )
    assert meta["previous_champion"] == "none" and meta["why"].startswith(f"{tag} promoted from qa to prod by tester")
    assert meta["source_evaluation_run"] in {r.dagster_run.run_id for r in world.qa_instance.get_run_records()}
    assert "| beats_baseline | passed |" in meta["source_gates"] and "| fairness | passed |" in meta["source_gates"]
    assert inline.fits(meta["source_gates"])  # the UI shows it in place
    assert meta["data_version"] == qa_lineage.training_set_version and "qa_candidate_roc_auc" in meta
    assert tree(world.root / "qa") == qa_before  # the promotion only read qa


@pytest.mark.integration
def test_a_model_that_failed_a_blocking_gate_in_qa_is_refused(world: World, capsys) -> None:
    tag = world.qa_candidate("biased")  # every woman labelled negative: the fairness gate fails in qa
    result = world.promote(tag)
    assert not result.success and world.prod_champions() == []
    why = refusal(result)
    assert why.startswith(f"promotion to prod refused: {tag} did not pass qa: blocking gates failed: ")
    assert "; fairness (gaps over the limit for sex" in why and "\n" not in why
    # the CLI says the same in one line and exits 2; nothing arrives in prod's store
    capsys.readouterr()
    assert main(["promote", tag, "--from", "qa", "--to", "prod"]) == 2
    assert capsys.readouterr().err.strip() == f"ml-assets promote: {why}"
    assert not ModelStore(home=str(paths("prod").bentoml_home)).has(tag)
    never = world.promote("adult-classifier:neverjudged")
    assert refusal(never).startswith("promotion of adult-classifier:neverjudged refused: no model_evaluation in qa")


@pytest.mark.integration
def test_prod_rolls_back_by_promoting_the_previous_model_again(world: World, capsys) -> None:
    first = world.qa_candidate("good")
    second = world.qa_candidate("good_v2")
    assert main(["promote", first, "--from", "qa", "--to", "prod", "--by", "alice"]) == 0
    assert world.promote("champion").success  # qa's champion: the second, which qa crowned after the first
    assert world.prod_champions() == [second, first]
    capsys.readouterr()
    assert main(["promote", first, "--from", "qa", "--to", "prod", "--by", "bob"]) == 0  # the rollback
    assert f"{first} promoted from qa to prod by bob" in capsys.readouterr().out
    assert world.prod_champions() == [first, second, first]
    history = world.prod_instance.fetch_materializations(gates_e2e.AssetKey("champion_model"), limit=3).records
    assert [r.asset_materialization.metadata["promoted_by"].value for r in history] == ["bob", "tester", "alice"]
    # prod never crowns a candidate of its own: the route is only qa -> prod
    wrong = world.prod.resolve_job_def(PROMOTE_JOB).execute_in_process(
        instance=world.prod_instance, run_config={**promote_run_config(first, "dev"), **QUIET}, raise_on_error=False
    )
    assert (
        refusal(wrong) == "promotion from dev to prod refused: promotions go --from dev --to qa or --from qa --to prod"
    )
