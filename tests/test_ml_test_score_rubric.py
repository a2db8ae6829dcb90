"""The ML Test Score's scoring on constructed evidence: automated vs manual points, missing and failing evidence,
section sums and the final minimum; the attestations file; recorded test-suite runs. No Dagster instance."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_assets.readiness.attestations import ATTESTATIONS, AttestationError, load_attestations
from ml_assets.readiness.evidence import suite_evidence, suite_results
from ml_assets.readiness.rubric import (
    RUBRIC,
    RUBRIC_BY_ID,
    Evidence,
    EvidenceStatus,
    ItemStatus,
    Section,
    all_refs,
    score,
)

PASSED, FAILED, NOT_RUN = EvidenceStatus.PASSED, EvidenceStatus.FAILED, EvidenceStatus.NOT_RUN


def everything(status: EvidenceStatus = PASSED, **overrides: EvidenceStatus) -> dict:
    """Every reference of the rubric found with ``status``; ``overrides`` by reference name."""
    return {r: Evidence(r, overrides.get(r.name, status)) for r in all_refs()}


def test_the_rubric_is_the_papers_28_tests_seven_per_section() -> None:
    assert len(RUBRIC) == 28
    assert {s: [t.id for t in RUBRIC if t.section is s] for s in Section} == {
        s: [f"{s.value}-{i}" for i in range(1, 8)] for s in Section
    }


def test_automated_evidence_that_passed_earns_a_point_and_manual_evidence_half() -> None:
    result = score(everything())
    automatable = [t for t in RUBRIC if t.automated]
    manual_only = [t for t in RUBRIC if not t.automated and t.manual]
    assert all(result.points_of(t.id) == 1.0 for t in automatable)
    assert manual_only and all(result.points_of(t.id) == 0.5 for t in manual_only)
    nothing = [t for t in RUBRIC if not t.automated and not t.manual]
    assert all(result.points_of(t.id) == 0.0 for t in nothing)


def test_a_failing_check_lowers_its_test_and_says_which_and_how_to_earn_it() -> None:
    result = score(everything(**{"model_evaluation.fairness": FAILED}))
    item = next(t for t in result.tests if t.test.id == "model-7")
    assert item.status is ItemStatus.FAILING and item.points == 0.0
    assert "check model_evaluation.fairness (failed)" in item.shortfall
    assert RUBRIC_BY_ID["model-7"].to_earn in item.shortfall
    assert result.sections[Section.MODEL] == score(everything()).sections[Section.MODEL] - 1


def test_one_piece_of_evidence_not_run_is_not_a_point_even_when_the_others_passed() -> None:
    result = score(everything(**{"deployment.http_p99_latency": NOT_RUN}))
    item = next(t for t in result.tests if t.test.id == "monitoring-6")
    assert item.status is ItemStatus.NOT_RUN and item.points == 0.0
    assert "deployment.http_p99_latency (not run)" in item.shortfall


def test_missing_evidence_is_zero_and_an_attestation_earns_half_but_never_more() -> None:
    nothing = score({})
    assert all(t.points == 0.0 for t in nothing.tests)
    assert {t.status for t in nothing.tests} == {ItemStatus.MISSING}
    assert nothing.final == 0.0
    data_7 = next(t for t in nothing.tests if t.test.id == "data-7")
    assert "by hand: test_suite tests/test_preprocessing.py (absent)" in data_7.shortfall, "why the half is missing"
    attested = score({}, attested=["data-3", "model-5"])
    assert attested.points_of("data-3") == 0.5 and attested.points_of("model-5") == 0.5
    full = score(everything(), attested=["model-5"])
    assert full.points_of("model-5") == 1.0, "automation earns the point; an attestation adds nothing to it"
    failing = score(everything(**{"model_evaluation.beats_baseline": FAILED}), attested=["model-5"])
    assert failing.points_of("model-5") == 0.5


def test_sections_sum_their_tests_and_the_final_score_is_their_minimum() -> None:
    found = everything(**{"model_monitoring.input_drift": NOT_RUN, "model_monitoring.staleness": FAILED})
    result = score(found, attested=["data-3", "data-6", "infrastructure-5"])
    expected = {s: sum(result.points_of(t.id) for t in RUBRIC if t.section is s) for s in Section}
    assert result.sections == expected
    assert result.sections[Section.DATA] == 4 + 0.5 + 0.5 + 0.5  # data-7 by a recorded suite, data-3, -6 attested
    assert result.sections[Section.INFRASTRUCTURE] == 4 + 0.5 + 0.5 + 0.5
    assert result.sections[Section.MONITORING] == 5
    assert result.final == min(expected.values()) == 5


def test_the_shipped_attestations_load_and_a_bad_entry_is_one_line_naming_file_and_entry(tmp_path: Path) -> None:
    shipped = load_attestations(ATTESTATIONS)
    assert shipped and all(a.test in RUBRIC_BY_ID and a.who and a.why and a.result for a in shipped)
    bad = tmp_path / "attestations.yaml"
    bad.write_text("- {test: data-9, who: a, when: 2026-12-01, why: b, result: c}\n")
    with pytest.raises(AttestationError, match=r"attestations.yaml: attestation #1 \(test\): .*unknown rubric test"):
        load_attestations(bad)
    bad.write_text("- {test: data-3, who: a, why: b, result: c}\n")
    with pytest.raises(AttestationError, match=r"#1 \(when\): Field required"):
        load_attestations(bad)


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.test_network" name="test_a"/>
<testcase classname="tests.test_network" name="test_b"/>
<testcase classname="tests.test_closed_loop.TestLoop" name="test_c"><failure message="boom"/></testcase>
<testcase classname="tests.test_preprocessing" name="test_d"><skipped/></testcase>
</testsuite></testsuites>
"""


def test_a_recorded_test_suite_run_is_read_per_module(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    assert suite_results(path) is None
    path.write_text(JUNIT)
    results = suite_results(path)
    assert results == {"tests/test_network.py": (2, 0), "tests/test_closed_loop.py": (0, 1),
                       "tests/test_preprocessing.py": (0, 0)}  # fmt: skip
    ref_of = {r.name: r for r in all_refs()}
    assert suite_evidence(ref_of["tests/test_network.py"], results, path).status is PASSED
    assert suite_evidence(ref_of["tests/test_closed_loop.py"], results, path).status is FAILED
    assert suite_evidence(ref_of["tests/test_preprocessing.py"], results, path).status is NOT_RUN
    assert suite_evidence(ref_of["tests/test_network.py"], None, path).status is NOT_RUN
