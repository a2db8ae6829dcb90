"""``dependency_versions``: dependency changes result in notification (The ML Test Score, monitoring-1).

The resolved versions of every distribution in the environment that trains and serves (locally one environment:
the Bento is built from it with ``lock_packages`` off) are hashed and recorded with the serving champion; the
``unchanged`` check compares them with the previous record and, on any change, warns naming the packages and
raises an alert through the ``alerts`` resource, so an upgrade nobody meant to ship is heard before it bites.
"""

import hashlib
import importlib.metadata
import sys
from collections.abc import Mapping

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ml_assets import markdown
from ml_assets.automation import on_champion_or_checks_change
from ml_assets.dataset import DatasetSpec
from ml_assets.model.registry import current_champion_tag
from ml_assets.versioning import code_version
from resources.alerts import Alerts

ASSET = "dependency_versions"
CHECK = "unchanged"
KEY_PACKAGES = ("torch", "deepspeed", "bentoml", "dagster", "pandas", "numpy", "scikit-learn", "great-expectations")


def resolved_versions() -> dict[str, str]:
    """Every installed distribution of this environment: normalized name -> version."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            found[name] = dist.version
    return dict(sorted(found.items()))


def versions_hash(versions: Mapping[str, str]) -> str:
    return hashlib.sha256("".join(f"{n}=={v}\n" for n, v in sorted(versions.items())).encode()).hexdigest()[:16]


def version_changes(previous: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """What changed, one entry per package: 'torch 2.3.0 -> 2.4.0', 'added x 1.0', 'removed y 2.0'."""
    changes = []
    for name in sorted(set(previous) | set(current)):
        before, after = previous.get(name), current.get(name)
        if before == after:
            continue
        if before is None:
            changes.append(f"added {name} {after}")
        elif after is None:
            changes.append(f"removed {name} {before}")
        else:
            changes.append(f"{name} {before} -> {after}")
    return changes


def previous_versions(instance: DagsterInstance) -> dict[str, str] | None:
    """The versions of the latest recorded environment, None when none was recorded."""
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(ASSET)), limit=1).records
    mat = records[0].asset_materialization if records else None
    entry = mat.metadata.get("versions") if mat is not None else None
    value = getattr(entry, "value", None)
    return dict(value) if isinstance(value, Mapping) else None


def build_dependency_versions(spec: DatasetSpec) -> AssetsDefinition:
    """``dependency_versions`` with its ``unchanged`` check (warns and alerts on a change)."""

    @asset(
        name=ASSET,
        group_name="monitoring",
        deps=["champion_model"],
        check_specs=[
            AssetCheckSpec(CHECK, asset=ASSET, description="the environment's resolved versions equal the last record")
        ],
        automation_condition=on_champion_or_checks_change(timezone=spec.timezone),
        code_version=code_version(spec, sys.modules[__name__], uses=()),
        description="The resolved package versions of the training and serving environment, hashed and recorded "
        "with the champion; a change alerts (The ML Test Score: dependency changes result in notification).",
    )
    def dependency_versions(context: AssetExecutionContext, alerts: Alerts) -> MaterializeResult:
        current = resolved_versions()
        previous = previous_versions(context.instance)
        changes = version_changes(previous, current) if previous is not None else []
        tag = current_champion_tag(context.instance) or "none"
        if changes:
            alerts.send(
                "dependency_change",
                f"the environment of champion {tag} changed: {'; '.join(changes[:10])}"
                + (f" (and {len(changes) - 10} more)" if len(changes) > 10 else ""),
                log=context.log,
                changes=changes,
            )
        return MaterializeResult(
            metadata={
                "model_tag": tag,
                "versions_hash": versions_hash(current),
                "packages": len(current),
                "key_packages": MetadataValue.md(
                    markdown.table([{"package": p, "version": current.get(p, "-")} for p in KEY_PACKAGES])
                ),
                "versions": MetadataValue.json(current),
            },
            check_results=[
                AssetCheckResult(
                    check_name=CHECK,
                    passed=not changes,
                    severity=AssetCheckSeverity.WARN,
                    description=(
                        f"{len(changes)} dependency change(s) since the last record (alerted): {'; '.join(changes)}"
                        if changes
                        else "first record of the environment"
                        if previous is None
                        else "no dependency changed since the last record"
                    ),
                    metadata={"changes": len(changes), "versions_hash": versions_hash(current)},
                )
            ],
        )

    return dependency_versions
