"""A snapshot of the graph the Definitions declare, so any change to it is a visible diff in review.

Every asset (group, partitioning, dependencies, pool, automation condition as a whole tree, freshness), every check (its asset,
blocking or not), every job (its selection and partitioning) and every sensor (its default status). Code versions
are left out on purpose: they change with every edit of an asset's code, which is their job, not a graph change.

After an intended change of the graph, regenerate and review the diff:
``ML_ASSETS_UPDATE_SNAPSHOT=1 python -m pytest tests/test_definitions_snapshot.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dagster import AutomationCondition, Definitions

from ml_assets.dataset import DatasetSpec
from ml_assets.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def _partitions(pd: Any) -> str | None:
    if pd is None:
        return None
    start = getattr(pd, "start", None)
    end_offset = getattr(pd, "end_offset", 0)
    return f"{type(pd).__name__} from {start.date() if start else '?'}" + (" through today" if end_offset else "")


def condition_tree(condition: AutomationCondition | None) -> str | None:
    """The whole condition as one expression (its label, operator and what each dependency condition ignores or
    allows, down to the leaves): a change anywhere in it is a diff, not only a change of its top label."""
    if condition is None:
        return None
    name, label = condition.name, condition.get_label()
    head = f"{label}: {name}" if label and label != name else name
    children = [condition_tree(c) for c in condition.children]
    return f"{head}({', '.join(c for c in children if c)})" if children else head


def snapshot(defs: Definitions) -> dict[str, Any]:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kind": "observable source" if node.is_observable else "materializable",
            "partitions": _partitions(node.partitions_def),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "pool": (node.pools and sorted(node.pools)) or None,
            "automation": condition.get_label() if condition is not None else None,
            "automation_condition": condition_tree(condition),
            "freshness": type(node.freshness_policy).__name__ if node.freshness_policy else None,
        }
    checks = {
        f"{k.asset_key.to_user_string()}.{k.name}": {
            "blocking": graph.get(k).blocking,
            "automation": condition_tree(graph.get(k).automation_condition),
        }
        for k in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))
    }
    jobs = {}
    for job in sorted(repo.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        selected = job.asset_layer.executable_asset_keys if job.asset_layer else set()
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in selected),
            "partitions": _partitions(job.partitions_def),
        }
    sensors = {s.name: s.default_status.value for s in sorted(repo.sensor_defs, key=lambda s: s.name)}
    return {"assets": assets, "checks": checks, "jobs": jobs, "sensors": sensors}


def test_the_graph_matches_its_snapshot(adult_spec: DatasetSpec) -> None:
    current = snapshot(build_definitions(adult_spec, env="local"))
    text = json.dumps(current, indent=1, sort_keys=True) + "\n"
    if os.environ.get("ML_ASSETS_UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), f"no snapshot at {SNAPSHOT}: generate it (see this module's docstring)"
    recorded = json.loads(SNAPSHOT.read_text())
    assert current == recorded, (
        "the graph changed; if intended, regenerate the snapshot (see this module's docstring) and review the diff"
    )
