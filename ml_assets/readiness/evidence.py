"""The rubric's evidence, found: what the graph defines (checks, sensors, jobs) and what the instance recorded
(the latest check results, sensor states, the records written with the judged model), plus recorded test-suite
runs. Check results are read through ``ml_assets.event_log`` (the one adapter to Dagster's check records).
"""

from __future__ import annotations

import fnmatch
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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

from ml_assets.event_log import last_judgements, metadata_text, sensor_states
from ml_assets.readiness.rubric import Evidence, EvidenceKind, EvidenceRef, EvidenceStatus
from ml_assets.settings import paths

CODE_VERSION_TAG = "dagster/code_version"
JUDGED = "judged"  # check metadata: false when the check ran but had nothing to judge


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


@dataclass(frozen=True)
class Lineage:
    """Whose records count: the model tag being judged (the champion, or a candidate at the readiness gate)."""

    model_tag: str | None
    check_overrides: Mapping[str, Evidence] = field(default_factory=dict)  # "asset.check" judged in this run


def not_judged(evaluation: AssetCheckEvaluation) -> bool:
    """A check that ran but could not judge (no data yet) says so with ``judged: false`` in its metadata."""
    entry = evaluation.metadata.get(JUDGED)
    return getattr(entry, "value", entry) is False


def check_evidence(instance: DagsterInstance, facts: GraphFacts, ref: EvidenceRef, lineage: Lineage) -> Evidence:
    """A check (or every check a * pattern names): passed when each one's latest completed result passed."""
    names = sorted(c for c in facts.checks if fnmatch.fnmatchcase(c, ref.name))
    if not names:
        return Evidence(ref, EvidenceStatus.ABSENT, "not defined in this graph")
    by_asset: dict[str, list[str]] = {}
    for name in names:
        asset, check = name.rsplit(".", 1)
        by_asset.setdefault(asset, []).append(check)
    failed, not_run, passed = [], [], []
    said = ""  # what a single check said about itself
    for asset, checks in by_asset.items():
        judged = last_judgements(instance, AssetKey.from_user_string(asset), checks)
        for check in checks:
            key = f"{asset}.{check}"
            override = lineage.check_overrides.get(key)
            evaluation = judged[check]
            if override is not None:
                status, said = override.status, override.detail
            elif evaluation is None or not_judged(evaluation):
                status = EvidenceStatus.NOT_RUN
                said = evaluation.description or "" if evaluation is not None else "no result yet"
            else:
                status = EvidenceStatus.PASSED if evaluation.passed else EvidenceStatus.FAILED
                said = evaluation.description or ""
            {EvidenceStatus.PASSED: passed, EvidenceStatus.FAILED: failed}.get(status, not_run).append(key)
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
