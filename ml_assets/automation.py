"""When each asset recomputes by itself: the declarative automation conditions of the graph, in one place.

Sensors decide *when* something outside changed (the landing sensor observes ``landing_files``); these conditions
decide what must then be recomputed; blocking checks decide what may flow on. Assets that can run in one run are
requested in the same tick (``any_deps_updated`` counts a parent that "will be requested"), and the checks without
conditions of their own ride along, so a blocking check that fails stops its downstream inside that run. Across
runs, a dependency whose latest blocking checks failed keeps its downstream from being requested at all
(``no_failed_blocking_checks``), and the consuming assets verify it again themselves (``ml_assets.event_log.require_passed``).
"""

from __future__ import annotations

from datetime import timedelta

from dagster import AssetSelection, AutomationCondition

from ml_assets.dataset import DatasetSpec

AC = AutomationCondition


def _deps(condition, ignore: tuple[str, ...]):
    """A dependency condition that leaves out ``ignore`` (dependencies read, but not reacted to)."""
    return condition.ignore(AssetSelection.assets(*ignore)) if ignore else condition


def _idle(ignore: tuple[str, ...] = ()) -> AutomationCondition:
    return (~_deps(AC.any_deps_in_progress(), ignore) & ~AC.in_progress()).with_label(
        "nothing upstream or here in progress"
    )


def no_failed_blocking_checks(ignore: tuple[str, ...] = ()) -> AutomationCondition:
    """No dependency's latest blocking checks failed (a dependency about to be recomputed this tick is judged
    in the run itself). Works per partition through the dependency's partition mapping."""
    failed = AC.any_deps_match(AC.any_checks_match(AC.check_failed(), blocking_only=True) & ~AC.will_be_requested())
    return ~_deps(failed, ignore).with_label("a dependency failed its blocking checks")


def on_new_files() -> AutomationCondition:
    """raw_data, prediction_log, labels: a day's files changed (their sensor observed a new fingerprint)."""
    changed = AC.any_deps_match(AC.data_version_changed()).with_label("files changed")
    return (changed.since_last_handled() & _idle()).with_label("on new files")


def on_upstream_update(ignore: tuple[str, ...] = (), must_exist: tuple[str, ...] = ()) -> AutomationCondition:
    """Recompute when a dependency updated (or will this tick), none is missing, and none failed its gates.

    ``ignore``: dependencies that are read but whose updates alone do not call for a recompute. ``must_exist``:
    when given, only these dependencies must be present (the others are optional, e.g. labels not landed yet).
    """
    missing = _deps(AC.any_deps_missing(), ignore)
    if must_exist:
        missing = AC.any_deps_missing().allow(AssetSelection.assets(*must_exist))
    return (
        _deps(AC.any_deps_updated(), ignore).since_last_handled()
        & ~missing
        & _idle(ignore)
        & no_failed_blocking_checks(ignore)
    ).with_label("on upstream update" + (f" (not reacting to {', '.join(ignore)})" if ignore else ""))


def with_its_asset() -> AutomationCondition:
    """A check op of its own (``@multi_asset_check``): requested with its asset, or after any other update of it.

    Without a condition of its own such a check is not always taken into an automation run of its asset; with this
    one it is requested in the same tick (and run), so its verdict exists before anything downstream is judged.
    Never on a partition of its asset (or of an input) that does not exist and is not requested with it: after a
    demo, batch_predictions' check ran alone on a day the asset had not scored yet.
    """
    return (AC.any_deps_updated().since_last_handled() & ~AC.any_deps_missing()).with_label("with its asset")


def on_recent_update(days: int = 2) -> AutomationCondition:
    """A daily asset that follows an unpartitioned one (the champion): only its recent days are recomputed when
    either updates, never every day since the data started."""
    recent = AC.in_latest_time_window(timedelta(days=days))
    return (recent & on_upstream_update()).with_label(f"on upstream update, last {days} days")


def on_training_set_approved() -> AutomationCondition:
    """approved_training_set: a training window was cut (its run finished); the asset itself checks the gates."""
    return (AC.any_deps_updated().since_last_handled() & _idle()).with_label("on a new training set")


def retraining(spec: DatasetSpec, ignore: tuple[str, ...] = ()) -> AutomationCondition | None:
    """baseline_model and candidate_model, as the spec's ``retraining.trigger`` says (None: only on request)."""
    policy = spec.retraining
    if policy.trigger == "on_request":
        return None
    if policy.trigger == "cron":
        assert policy.cron is not None
        tick = AC.cron_tick_passed(policy.cron, spec.timezone).since_last_handled()
        fresh = _deps(AC.all_deps_updated_since_cron(policy.cron, spec.timezone), ignore)
        return (tick & fresh & _idle(ignore) & no_failed_blocking_checks(ignore)).with_label(
            f"retrain at most once per {policy.cron}"
        )
    return on_upstream_update(ignore).with_label("retrain on every approved training set")


def on_champion_or_checks_change(cron: str = "0 * * * *", timezone: str = "UTC") -> AutomationCondition:
    """ml_test_score: recompute when a dependency (the champion, its evaluation, its deployment) or one of their
    checks has a new result, and at least every ``cron`` tick to see monitoring checks and sensors change."""
    changed = AC.any_deps_match(AC.newly_updated() | AC.any_checks_match(AC.newly_updated()))
    tick = AC.cron_tick_passed(cron, timezone)
    return (
        (changed.with_label("the champion or its checks changed") | tick).since_last_handled()
        & ~AC.any_deps_missing().allow(AssetSelection.assets("champion_model"))
        & ~AC.in_progress()
    ).with_label("on a change of the champion or its checks")


def after_new_champion() -> AutomationCondition:
    """Evidence about the serving champion (feature_importance): once per new champion, in the tick after it was
    recorded (never in the promotion's own run, which must not wait for it)."""
    champion = AssetSelection.assets("champion_model")
    promoted = AC.any_deps_match(AC.newly_updated()).allow(champion).with_label("a new champion")
    return (promoted.since_last_handled() & ~AC.any_deps_missing().allow(champion) & _idle()).with_label(
        "after a new champion"
    )
