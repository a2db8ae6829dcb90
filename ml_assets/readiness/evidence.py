"""The rubric's evidence, found: what the graph defines (checks, sensors, jobs) and what the instance recorded about
the judged model's lineage (its check results, sensor states, the records written with it), plus recorded
test-suite runs. Check executions are read through ``ml_assets.event_log`` (the one adapter to Dagster's check
records), planned ones included: one planned and left without a result (the UI shows it skipped) is not a pass.

A check execution is about the judged model when the materialization it judged names the model (``model_tag``,
``candidate_tag``, ``main_model_tag``), is the very training-data materialization its candidate read (Dagster's
input event pointer), came from a run that trained, evaluated or promoted it, or is a day of its training window;
one naming another model never counts; one that names no model and is not partitioned (the environment, the graph)
counts whichever model serves.
"""

from __future__ import annotations

import fnmatch
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    RepositoryDefinition,
)

from ml_assets.event_log import CheckExecution, check_executions, metadata_text, sensor_states
from ml_assets.readiness.rubric import Evidence, EvidenceKind, EvidenceRef, EvidenceStatus
from ml_assets.settings import paths

CODE_VERSION_TAG = "dagster/code_version"
INPUT_POINTER = "dagster/input_event_pointer/"  # a materialization's tag: the storage id of each input it read
JUDGED = "judged"  # check metadata: false when the check ran but had nothing to judge
NOT_JUDGED = "not_judged"  # asset metadata: why its checks could not judge (and, left without a result, were skipped)


def junit_path() -> Path:
    """Where a recorded test-suite run is read from: ``pytest --junitxml=$ML_ASSETS_HOME/test-results/junit.xml``."""
    return paths().home / "test-results" / "junit.xml"


@dataclass(frozen=True)
class GraphFacts:
    """What the Definitions declare: every check ("asset.check"), sensor (running by default or not) and job."""

    checks: frozenset[str]
    sensors: Mapping[str, bool]
    jobs: frozenset[str]

    @classmethod
    def of(cls, repo: RepositoryDefinition) -> GraphFacts:
        graph = repo.asset_graph
        return cls(
            checks=frozenset(f"{k.asset_key.to_user_string()}.{k.name}" for k in graph.asset_check_keys),
            sensors={s.name: s.default_status == DefaultSensorStatus.RUNNING for s in repo.sensor_defs},
            jobs=frozenset(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        )


class GraphFactsSource:
    """The Definitions a score is judged against, bound once they exist (they contain the score itself). An
    in-process run (the demo, tests) has no repository on its context, so the asset cannot ask its run for it."""

    def __init__(self) -> None:
        self._defs: Definitions | None = None
        self._facts: GraphFacts | None = None

    def bind(self, defs: Definitions) -> Definitions:
        self._defs, self._facts = defs, None
        return defs

    def get(self) -> GraphFacts:
        if self._facts is None:
            if self._defs is None:
                raise RuntimeError("the ML Test Score has no Definitions to judge: bind them (GraphFactsSource.bind)")
            self._facts = GraphFacts.of(self._defs.get_repository_def())
        return self._facts


TAG_KEYS = ("model_tag", "candidate_tag", "main_model_tag")  # how a materialization or a check names its model
APPROVED = "approved_training_set"  # records the window (``partition``) each training run was approved on
LINEAGE_ASSETS = ("candidate_model", "model_evaluation", "champion_model")  # materialized once per model


@dataclass(frozen=True)
class Lineage:
    """Whose records count: the model being judged (the champion, or a candidate at the readiness gate), the runs
    that trained, evaluated and promoted it, and the days of the training window it was trained on."""

    model_tag: str | None
    check_overrides: Mapping[str, Evidence] = field(default_factory=dict)  # "asset.check" judged in this run
    runs: frozenset[str] = frozenset()
    partitions: frozenset[str] = frozenset()
    inputs: Mapping[str, int] = field(default_factory=dict)  # asset -> the materialization its candidate read

    def owns(self, tag: str | None, run_id: str, partition: str | None) -> bool:
        """Whether a check execution on a materialization naming ``tag`` (None: it names no model), made in
        ``run_id`` on ``partition``, is evidence about this model."""
        if tag is not None:
            return tag == self.model_tag
        if run_id in self.runs:
            return True
        if partition is not None:
            return partition in self.partitions
        return True  # names no model and is not partitioned: about the environment or the graph as a whole


def _tag_of(metadata: Mapping[str, object]) -> str | None:
    return next((t for k in TAG_KEYS if (t := metadata_text(metadata.get(k))) is not None), None)


def resolve_lineage(
    instance: DagsterInstance, tag: str | None, window_days: int, overrides: Mapping[str, Evidence] | None = None
) -> Lineage:
    """The lineage of model ``tag``: the runs that materialized its candidate, evaluation and promotion, and the
    days of the window its candidate trained on (``training_set_partition`` and the ``window_days`` up to it)."""
    runs: set[str] = set()
    inputs: dict[str, int] = {}
    window_end = None
    for asset in LINEAGE_ASSETS if tag else ():
        for rec in instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=200).records:
            mat = rec.asset_materialization
            if mat is None or _tag_of(mat.metadata) != tag:
                continue
            runs.add(rec.run_id)
            if asset == "candidate_model" and window_end is None:
                window_end = metadata_text(mat.metadata.get("training_set_partition"))
                inputs = {
                    k.removeprefix(INPUT_POINTER): int(v) for k, v in mat.tags.items() if k.startswith(INPUT_POINTER)
                }
    if window_end is None and runs:  # a candidate that records no window: the one approved in a lineage run
        approved = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(APPROVED)), limit=200)
        window_end = next(
            (
                metadata_text(r.asset_materialization.metadata.get("partition"))
                for r in approved.records
                if r.run_id in runs and r.asset_materialization is not None
            ),
            None,
        )
    days: frozenset[str] = frozenset()
    if window_end:
        end = date.fromisoformat(window_end)
        days = frozenset((end - timedelta(days=i)).isoformat() for i in range(window_days))
    return Lineage(tag, dict(overrides or {}), frozenset(runs), days, inputs)


class _Materializations:
    """An asset's recorded materializations, by (run, partition) and by storage id: which model each was about."""

    def __init__(self, instance: DagsterInstance, asset: AssetKey) -> None:
        self.by_run: dict[tuple[str, str | None], tuple[str | None, int]] = {}
        self.by_id: dict[int, tuple[str | None, str, str | None]] = {}
        self.notes: dict[tuple[str, str | None], str] = {}  # why an asset left its checks without a result
        for rec in instance.fetch_materializations(AssetRecordsFilter(asset_key=asset), limit=1000).records:
            mat = rec.asset_materialization
            if mat is None:
                continue
            tag = _tag_of(mat.metadata)
            self.by_run.setdefault((rec.run_id, mat.partition), (tag, rec.storage_id))
            if (note := metadata_text(mat.metadata.get(NOT_JUDGED))) and note != "none":
                self.notes.setdefault((rec.run_id, mat.partition), note)
            self.by_id[rec.storage_id] = (tag, rec.run_id, mat.partition)

    def about(self, execution: CheckExecution) -> tuple[str | None, str, str | None, int | None]:
        """(model tag, run, partition, storage id) of the materialization an execution judged (the execution's own
        run and partition, and the tag its result names, when that materialization is not known)."""
        key = (execution.run_id, execution.partition)
        if key in self.by_run:
            tag, storage_id = self.by_run[key]
            return tag, execution.run_id, execution.partition, storage_id
        ev = execution.evaluation
        target = ev.target_materialization_data if ev is not None else None
        if target is not None and target.storage_id in self.by_id:
            return (*self.by_id[target.storage_id], target.storage_id)
        return (_tag_of(ev.metadata) if ev is not None else None), execution.run_id, execution.partition, None


def lineage_executions(
    instance: DagsterInstance, asset: AssetKey, check: str, lineage: Lineage, mats: _Materializations
) -> list[CheckExecution]:
    """The newest execution of ``check`` about the lineage: one per training-window day for a partitioned asset
    that names no model (the data the model was trained on), else the newest one about the model. A newer
    execution that was planned and produced no result (skipped) hides older results: it counts as not run."""
    read = lineage.inputs.get(asset.to_user_string())  # the very materialization its candidate trained on
    chosen: dict[str | None, CheckExecution] = {}
    for execution in check_executions(instance, asset, check):  # newest first
        tag, run, partition, storage_id = mats.about(execution)
        owned = storage_id == read if read is not None and storage_id is not None else lineage.owns(tag, run, partition)
        if owned:
            chosen.setdefault(partition if tag is None else None, execution)
    return list(chosen.values())


def not_judged(evaluation: AssetCheckEvaluation) -> bool:
    """A check that ran but could not judge (no data yet) says so with ``judged: false`` in its metadata."""
    entry = evaluation.metadata.get(JUDGED)
    return getattr(entry, "value", entry) is False


def _reason(note: str | None, check: str) -> str | None:
    """The part of an asset's ``not_judged`` note about ``check`` ("a: why; b: why" names each check), else all."""
    if note is None:
        return None
    part = next((p for p in note.split("; ") if p.startswith(f"{check}: ")), None)
    return part.removeprefix(f"{check}: ") if part else note


def execution_status(
    executions: list[CheckExecution],
    model: str | None,
    notes: Mapping[tuple[str, str | None], str] | None = None,
    check: str = "",
) -> tuple[EvidenceStatus, str]:
    """One check's status over the lineage's executions, and what it said (for a skipped one, the reason its asset
    recorded as ``not_judged``, when it did)."""
    if not executions:
        return EvidenceStatus.NOT_RUN, f"no result about {model or 'a model'} yet"

    def said(e: CheckExecution, text: str) -> str:
        return f"[{e.partition}] {text}" if e.partition else text

    done = [(e, e.evaluation) for e in executions if e.evaluation is not None]
    failed = [(e, ev) for e, ev in done if not ev.passed and not not_judged(ev)]
    if failed:
        return EvidenceStatus.FAILED, said(failed[0][0], failed[0][1].description or "")
    skipped = [e for e in executions if e.evaluation is None]
    if skipped:
        first = skipped[0]
        why = _reason((notes or {}).get((first.run_id, first.partition)), check)
        return EvidenceStatus.NOT_RUN, said(first, f"skipped: {why or 'no result'} (run {first.run_id[:8]})")
    unjudged = [(e, ev) for e, ev in done if not_judged(ev)]
    if unjudged:
        return EvidenceStatus.NOT_RUN, said(unjudged[0][0], unjudged[0][1].description or "could not judge")
    return EvidenceStatus.PASSED, done[0][1].description or ""


def check_evidence(instance: DagsterInstance, facts: GraphFacts, ref: EvidenceRef, lineage: Lineage) -> Evidence:
    """A check (or every check a * pattern names): passed when each one's latest result about the lineage passed."""
    names = sorted(c for c in facts.checks if fnmatch.fnmatchcase(c, ref.name))
    if not names:
        return Evidence(ref, EvidenceStatus.ABSENT, "not defined in this graph")
    failed, not_run, passed = [], [], []
    said = ""  # what a single check said about itself
    mats: dict[str, _Materializations] = {}
    for name in names:
        asset, check = name.rsplit(".", 1)
        override = lineage.check_overrides.get(name)
        if override is not None:
            status, said = override.status, override.detail
        else:
            key = AssetKey.from_user_string(asset)
            index = mats.setdefault(asset, _Materializations(instance, key))
            executions = lineage_executions(instance, key, check, lineage, index)
            status, said = execution_status(executions, lineage.model_tag, index.notes, check)
        {EvidenceStatus.PASSED: passed, EvidenceStatus.FAILED: failed}.get(status, not_run).append(name)
    if len(names) == 1:
        status = EvidenceStatus.FAILED if failed else EvidenceStatus.NOT_RUN if not_run else EvidenceStatus.PASSED
        return Evidence(ref, status, said[:200] if status is not EvidenceStatus.PASSED else "")
    if failed:
        return Evidence(ref, EvidenceStatus.FAILED, f"failed: {', '.join(failed)}")
    if not_run:
        return Evidence(ref, EvidenceStatus.NOT_RUN, f"no result yet: {', '.join(not_run)}")
    return Evidence(ref, EvidenceStatus.PASSED, f"{len(passed)} passed")


def sensor_evidence(ref: EvidenceRef, facts: GraphFacts, switched: Mapping[str, bool]) -> Evidence:
    if ref.name not in facts.sensors:
        return Evidence(ref, EvidenceStatus.ABSENT, "not defined in this graph")
    running = switched.get(ref.name, facts.sensors[ref.name])
    return Evidence(
        ref, EvidenceStatus.PASSED if running else EvidenceStatus.NOT_RUN, "running" if running else "stopped"
    )


def record_evidence(instance: DagsterInstance, ref: EvidenceRef, lineage: Lineage) -> Evidence:
    """``asset:key``: the asset's materialization for the judged model carries ``key`` (a tag or metadata)."""
    asset, key = ref.name.split(":", 1)
    if lineage.model_tag is None:
        return Evidence(ref, EvidenceStatus.NOT_RUN, "no model to judge yet")
    tag_key = "model_tag" if asset != "model_evaluation" else "candidate_tag"
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=50).records
    for rec in records:  # newest first
        mat = rec.asset_materialization
        if mat is None or metadata_text(mat.metadata.get(tag_key)) != lineage.model_tag:
            continue
        value = mat.tags.get(CODE_VERSION_TAG) if key == "code_version" else metadata_text(mat.metadata.get(key))
        if value:
            return Evidence(ref, EvidenceStatus.PASSED, f"{key} recorded for {lineage.model_tag}")
        return Evidence(ref, EvidenceStatus.ABSENT, f"{asset} of {lineage.model_tag} records no {key}")
    return Evidence(ref, EvidenceStatus.NOT_RUN, f"no {asset} materialization for {lineage.model_tag}")


def suite_results(path: Path) -> dict[str, tuple[int, int]] | None:
    """(passed, failed) test cases per test module of a JUnit XML file pytest wrote; None when there is none."""
    if not path.exists():
        return None
    results: dict[str, list[int]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        name = "/".join(p for p in module if not p[:1].isupper()) + ".py"  # tests.test_x[.TestClass] -> tests/test_x.py
        bad = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        counts = results.setdefault(name, [0, 0])
        if bad:
            counts[1] += 1
        elif not skipped:
            counts[0] += 1
    return {k: (v[0], v[1]) for k, v in results.items()}


def suite_evidence(ref: EvidenceRef, results: Mapping[str, tuple[int, int]] | None, where: Path) -> Evidence:
    if results is None:
        return Evidence(ref, EvidenceStatus.NOT_RUN, f"no recorded run at {where}")
    passed, failed = results.get(ref.name, (0, 0))
    if failed:
        return Evidence(ref, EvidenceStatus.FAILED, f"{failed} failed, {passed} passed ({where})")
    if not passed:
        return Evidence(ref, EvidenceStatus.NOT_RUN, f"not in the recorded run ({where})")
    return Evidence(ref, EvidenceStatus.PASSED, f"{passed} passed ({where})")


def find_evidence(
    instance: DagsterInstance,
    facts: GraphFacts,
    refs: Iterable[EvidenceRef],
    lineage: Lineage,
    junit: Path | None = None,
) -> dict[EvidenceRef, Evidence]:
    """Every reference resolved against the graph and the instance."""
    junit = junit or junit_path()
    switched = sensor_states(instance)
    results = suite_results(junit)
    found: dict[EvidenceRef, Evidence] = {}
    for ref in refs:
        if ref.kind is EvidenceKind.CHECK:
            found[ref] = check_evidence(instance, facts, ref, lineage)
        elif ref.kind is EvidenceKind.SENSOR:
            found[ref] = sensor_evidence(ref, facts, switched)
        elif ref.kind is EvidenceKind.JOB:
            found[ref] = Evidence(ref, EvidenceStatus.PASSED if ref.name in facts.jobs else EvidenceStatus.ABSENT)
        elif ref.kind is EvidenceKind.RECORD:
            found[ref] = record_evidence(instance, ref, lineage)
        elif ref.kind is EvidenceKind.TEST_SUITE:
            found[ref] = suite_evidence(ref, results, junit)
    return found
