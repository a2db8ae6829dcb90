"""The ML Test Score rubric, pure: its 28 tests, the evidence each needs here, and how evidence becomes points.

Breck, Cai, Nielsen, Salib, Sculley, "The ML Test Score: A Rubric for ML Production Readiness and Technical Debt
Reduction" (IEEE Big Data 2017): 7 tests each for data, model development, infrastructure and monitoring. A test
earns 1 point when it is automated and run repeatedly, 0.5 when it is done by hand with the result documented,
0 otherwise; a section's score is the sum of its tests' points and the final score is the minimum of the four
sections (a system is only as ready as its weakest area).

Here a test is automated when every piece of evidence it names (asset checks, sensors, jobs, records the graph
writes with each model) exists in the graph and its latest result passed; a test whose automated evidence is
missing, never ran or failed falls back to 0.5 when a documented manual result exists for it (a reviewed
attestation, or a recorded test-suite run), else 0. Nothing here reads Dagster: ``ml_assets.readiness.evidence``
resolves the references to ``Evidence`` records, so the scoring is tested on constructed evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Section(StrEnum):
    DATA = "data"
    MODEL = "model"
    INFRASTRUCTURE = "infrastructure"
    MONITORING = "monitoring"


class EvidenceKind(StrEnum):
    CHECK = "check"  # an asset check, "asset.check" (a * in the check name matches several)
    SENSOR = "sensor"  # a sensor that is defined and running
    JOB = "job"  # a job that is defined (a path a person or a sensor launches)
    RECORD = "record"  # a figure the graph records with every model ("asset:metadata key")
    TEST_SUITE = "test_suite"  # a test module of the repository whose recorded run passed (done by hand: 0.5)
    ATTESTATION = "attestation"  # a reviewed manual attestation (0.5)


MANUAL_KINDS = frozenset({EvidenceKind.TEST_SUITE, EvidenceKind.ATTESTATION})


class EvidenceStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not run"  # defined, but no result yet (or a sensor that is stopped)
    ABSENT = "absent"  # not defined in this graph, or no record


@dataclass(frozen=True)
class EvidenceRef:
    """A piece of evidence a test names: what to look for, not what was found."""

    kind: EvidenceKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name}"


@dataclass(frozen=True)
class Evidence:
    """A piece of evidence as found: its status and, in words, what was seen."""

    ref: EvidenceRef
    status: EvidenceStatus
    detail: str = ""

    @property
    def automated(self) -> bool:
        return self.ref.kind not in MANUAL_KINDS

    def describe(self) -> str:
        return f"{self.ref} ({self.status.value}{': ' + self.detail if self.detail else ''})"


def check(name: str) -> EvidenceRef:
    return EvidenceRef(EvidenceKind.CHECK, name)


def sensor(name: str) -> EvidenceRef:
    return EvidenceRef(EvidenceKind.SENSOR, name)


def job(name: str) -> EvidenceRef:
    return EvidenceRef(EvidenceKind.JOB, name)


def record(name: str) -> EvidenceRef:
    return EvidenceRef(EvidenceKind.RECORD, name)


def suite(path: str) -> EvidenceRef:
    return EvidenceRef(EvidenceKind.TEST_SUITE, path)


@dataclass(frozen=True)
class RubricTest:
    """One of the 28 tests: its id (``data-1`` .. ``monitoring-7``), the paper's wording, the automated evidence
    that must all pass for its point, manual evidence that earns half, and what would earn the missing point."""

    id: str
    section: Section
    title: str
    automated: tuple[EvidenceRef, ...] = ()
    manual: tuple[EvidenceRef, ...] = ()
    to_earn: str = ""


def _t(
    section: Section,
    n: int,
    title: str,
    automated: Sequence[EvidenceRef] = (),
    manual: Sequence[EvidenceRef] = (),
    to_earn: str = "",
) -> RubricTest:  # a compact constructor for the table below
    return RubricTest(f"{section.value}-{n}", section, title, tuple(automated), tuple(manual), to_earn)


D, M, I, O = Section.DATA, Section.MODEL, Section.INFRASTRUCTURE, Section.MONITORING  # noqa: E741

RUBRIC: tuple[RubricTest, ...] = (
    _t(D, 1, "Feature expectations are captured in a schema",
       [check("raw_data.*_type"), check("raw_data.*_in_domain"), check("raw_data.*_in_range"),
        check("raw_data.unexpected_columns")],
       to_earn="the dataset spec's types, domains and ranges run as raw_data checks on every landed day"),
    _t(D, 2, "All features are beneficial",
       [check("feature_importance.no_useless_features")],
       to_earn="feature_importance passing for the champion: every feature's permutation importance on validation "
       "rows above the noise of its shuffles (drop or repair the features it names)"),
    _t(D, 3, "No feature's cost is too much",
       to_earn="measure each feature's serving latency and memory cost (e.g. a model without it, timed the same "
       "way), or attest a review of feature costs in ml_assets/readiness/attestations.yaml"),
    _t(D, 4, "Features adhere to meta-level requirements",
       [check("training_set.single_feature_leakage")],
       manual=[suite("tests/test_preprocessing.py")],
       to_earn="a check that only the spec's feature-role columns reach the model (ids and sensitive attributes "
       "never do) on every training set"),
    _t(D, 5, "The data pipeline has appropriate privacy controls",
       [check("shadow_data.privacy")],
       to_earn="the dev environment's shadow-data privacy check (blocking) running, or an attested privacy review"),
    _t(D, 6, "New features can be added quickly",
       to_earn="a measured time from a spec change to a judged candidate, recorded by automation"),
    _t(D, 7, "All input feature code is tested",
       manual=[suite("tests/test_preprocessing.py"), suite("tests/test_data_assets.py")],
       to_earn="run the feature tests repeatedly (CI) and record their results where the score reads them"),
    _t(M, 1, "Model specs are reviewed and submitted (versioned)",
       [record("candidate_model:code_version"), record("model_evaluation:code_version")],
       to_earn="the model and its evaluation recorded with code versions (the modules and spec fields they use), "
       "so every change of the model's spec is a reviewed commit and a visible version"),
    _t(M, 2, "Offline proxy metrics correlate with actual online impact metrics",
       [check("offline_online_agreement.metrics_agree")],
       to_earn="materialize offline_online_agreement once realized figures exist (labels landed for served days)"),
    _t(M, 3, "All hyperparameters have been tuned",
       [record("candidate_model:search")],
       to_earn="the candidate's budgeted search (spec `search`) recorded with the candidate"),
    _t(M, 4, "The impact of model staleness is known",
       [check("staleness_impact.curve_known")],
       to_earn="a curve of quality against model age: older champions scored on the newest labeled days"),
    _t(M, 5, "A simpler model is not better",
       [check("model_evaluation.beats_baseline")],
       to_earn="the beats_baseline gate passing on the champion's evaluation"),
    _t(M, 6, "Model quality is sufficient on all important data slices",
       [check("model_evaluation.slice_quality")],
       to_earn="the slice_quality gate passing"),
    _t(M, 7, "The model has been tested for considerations of inclusion",
       [check("model_evaluation.fairness")],
       to_earn="the fairness gate passing"),
    _t(I, 1, "Training is reproducible",
       [check("reproducibility.same_seed_same_metrics")],
       to_earn="a scheduled or requested retraining with the same seed, data and code, within tolerance"),
    _t(I, 2, "Model specs are unit tested",
       manual=[suite("tests/test_network.py"), suite("tests/test_training_config.py")],
       to_earn="run the model unit tests repeatedly (CI) and record their results where the score reads them"),
    _t(I, 3, "The full ML pipeline is integration tested",
       manual=[suite("tests/test_closed_loop.py")],
       to_earn="run the closed-loop integration tests on a schedule (CI) and record their results"),
    _t(I, 4, "Model quality is validated before attempting to serve it",
       [check("model_evaluation.blessed_against_champion")],
       to_earn="the blessing gate (an absolute floor and no regression against the champion) passing"),
    _t(I, 5, "The model allows debugging by observing step-by-step computation on a single example",
       to_earn="a tool that runs one example through preprocessing and each layer, exercised by a test"),
    _t(I, 6, "Models are tested via a canary process before they enter production serving",
       [check("deployment.health")],
       to_earn="deploy the champion (serving_job): the new Bento must load and answer before it takes traffic"),
    _t(I, 7, "Models can be quickly and safely rolled back to a previous serving version",
       [job("rollback_champion"), sensor("retrain_sensor")],
       to_earn="the rollback job defined and the retrain sensor (which rolls back on regression) running"),
    _t(O, 1, "Dependency changes result in notification",
       [check("dependency_versions.unchanged")],
       to_earn="materialize dependency_versions: the environment's resolved versions hashed with each model"),
    _t(O, 2, "Data invariants hold in training and serving inputs",
       [check("raw_data.*"), check("training_set.*"), check("model_monitoring.input_drift")],
       to_earn="the data checks passing and model_monitoring judging served inputs (needs served traffic)"),
    _t(O, 3, "Training and serving features compute the same values",
       [check("deployment.train_serve_skew"), check("batch_predictions.online_offline_equality")],
       to_earn="deploy the champion and score a day in batch: served and offline predictions must agree"),
    _t(O, 4, "Models are not too stale",
       [check("model_monitoring.staleness"), sensor("retrain_sensor")],
       to_earn="model_monitoring's staleness check run on served days, with the retrain sensor running"),
    _t(O, 5, "The model is numerically stable",
       [check("model_evaluation.numerically_stable")],
       to_earn="the numerically_stable gate passing"),
    _t(O, 6, "No dramatic or slow-leak regressions in training speed, serving latency, throughput, or RAM usage",
       [check("model_evaluation.latency_budget"), check("deployment.http_p99_latency"),
        check("performance_regression.no_regression")],
       to_earn="latency within budget, deployed p99 measured, and the candidate measured against the champion "
       "in the same run (performance_regression)"),
    _t(O, 7, "Prediction quality has not regressed on served data",
       [check("model_monitoring.estimated_performance"), check("model_monitoring.realized_performance"),
        sensor("label_sensor")],
       to_earn="model_monitoring run on served days, with labels landed for realized figures"),
)  # fmt: skip

RUBRIC_BY_ID: dict[str, RubricTest] = {t.id: t for t in RUBRIC}
assert len(RUBRIC) == 28 and all(sum(t.section is s for t in RUBRIC) == 7 for s in Section)


class ItemStatus(StrEnum):
    AUTOMATED = "automated"  # 1 point
    MANUAL = "manual"  # 0.5
    FAILING = "failing"  # automated evidence ran and failed
    NOT_RUN = "not run"  # automated evidence defined, no result yet
    MISSING = "missing"  # no evidence here


POINTS = {ItemStatus.AUTOMATED: 1.0, ItemStatus.MANUAL: 0.5}


@dataclass(frozen=True)
class ItemScore:
    test: RubricTest
    status: ItemStatus
    evidence: tuple[Evidence, ...]

    @property
    def points(self) -> float:
        return POINTS.get(self.status, 0.0)

    @property
    def shortfall(self) -> str:
        """Why the test is short of its point and what would earn it ('' at full points)."""
        if self.status is ItemStatus.AUTOMATED:
            return ""
        blocking = [e.describe() for e in self.evidence if e.automated and e.status is not EvidenceStatus.PASSED]
        seen = "; ".join(blocking) if blocking else "no automated evidence here"
        if self.status is not ItemStatus.MANUAL:  # the half point by hand is missing too: say why
            by_hand = [e.describe() for e in self.evidence if not e.automated and e.status is not EvidenceStatus.PASSED]
            seen += f"; by hand: {'; '.join(by_hand)}" if by_hand else ""
        return f"{seen}. To earn it: {self.test.to_earn}" if self.test.to_earn else seen


def score_item(test: RubricTest, found: Mapping[EvidenceRef, Evidence], attested: bool = False) -> ItemScore:
    """One test's status from the evidence found for its references (a reference not found is absent)."""

    def get(ref: EvidenceRef) -> Evidence:
        return found.get(ref) or Evidence(ref, EvidenceStatus.ABSENT)

    auto = tuple(get(r) for r in test.automated)
    manual = tuple(get(r) for r in test.manual)
    if attested:
        manual += (Evidence(EvidenceRef(EvidenceKind.ATTESTATION, test.id), EvidenceStatus.PASSED),)
    evidence = auto + manual
    statuses = {e.status for e in auto}
    if auto and statuses == {EvidenceStatus.PASSED}:
        return ItemScore(test, ItemStatus.AUTOMATED, evidence)
    if any(e.status is EvidenceStatus.PASSED for e in manual):
        return ItemScore(test, ItemStatus.MANUAL, evidence)
    if EvidenceStatus.FAILED in statuses:
        return ItemScore(test, ItemStatus.FAILING, evidence)
    if EvidenceStatus.NOT_RUN in statuses:
        return ItemScore(test, ItemStatus.NOT_RUN, evidence)
    return ItemScore(test, ItemStatus.MISSING, evidence)


@dataclass(frozen=True)
class Score:
    tests: tuple[ItemScore, ...]
    sections: dict[Section, float] = field(default_factory=dict)

    @property
    def final(self) -> float:
        """The minimum of the four section scores."""
        return min(self.sections.values())

    def short_of_full(self) -> list[ItemScore]:
        return [t for t in self.tests if t.status is not ItemStatus.AUTOMATED]

    def points_of(self, test_id: str) -> float:
        return next(t.points for t in self.tests if t.test.id == test_id)


def score(
    found: Mapping[EvidenceRef, Evidence],
    attested: Sequence[str] = (),
    rubric: Sequence[RubricTest] = RUBRIC,
) -> Score:
    """Every test's points, the section scores and (``Score.final``) the minimum of them."""
    tests = tuple(score_item(t, found, t.id in attested) for t in rubric)
    sections = {s: sum(t.points for t in tests if t.test.section is s) for s in Section}
    return Score(tests, sections)


def all_refs(rubric: Sequence[RubricTest] = RUBRIC) -> list[EvidenceRef]:
    """Every reference the rubric names, once, in order."""
    return list(dict.fromkeys(r for t in rubric for r in (*t.automated, *t.manual)))
