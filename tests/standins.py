"""Stand-in runs: what a run of a real asset writes to the instance, without running the asset.

A stand-in has the real asset's key and partitioning and reports each of its checks (with the real check names)
as passed or failed, so the instance holds exactly the events a run of the real asset would leave behind. Tests of
automation and sensors drive the real Definitions with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg


def check_names(defs: dg.Definitions, asset: str) -> list[str]:
    graph = defs.get_repository_def().asset_graph
    return [k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey(asset)]


def materialize_stand_in(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    asset: str,
    partition: str | None = None,
    failed: tuple[str, ...] = (),
    metadata: Mapping[str, Any] | None = None,
    check_metadata: Mapping[str, Any] | None = None,
) -> None:
    """Materialize ``asset`` (partition) as a run would, its checks passing except ``failed``."""
    names = check_names(defs, asset)
    node = defs.get_repository_def().asset_graph.get(dg.AssetKey(asset))

    @dg.asset(
        name=asset,
        partitions_def=node.partitions_def,
        check_specs=[dg.AssetCheckSpec(n, asset=asset, partitions_def=node.partitions_def) for n in names],
    )
    def stand_in():
        yield dg.Output(None, metadata=dict(metadata or {}))
        for n in names:
            yield dg.AssetCheckResult(
                check_name=n,
                passed=n not in failed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=dict(check_metadata or {}),
            )

    dg.materialize(
        [stand_in],
        partition_key=partition,
        instance=instance,
        resources={"io_manager": dg.mem_io_manager},
        raise_on_error=False,
    )
