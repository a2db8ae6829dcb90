"""The candidate's budgeted search: which networks and settings ``candidate_model`` trains in one launch.

Trial 0 is the network of the run config (so a search never does worse on validation than no search); the others
are distinct seeded draws from the spec's search space (random search over a small grid: with a handful of
trials it covers more of the settings that matter than a grid would, Bergstra and Bengio 2012). All trials are
judged on the same validation rows by the same metric, and the test split stays untouched until the gates.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from ml_assets.dataset import CandidateSearch
from ml_assets.model.network import NetworkConfig
from ml_assets.model.training_result import TRAINING_METRICS


def plan_trials(first: NetworkConfig, search: CandidateSearch, trials: int) -> list[dict[str, Any]]:
    """``trials`` trials: the configured network, then distinct draws from ``search.space`` (fewer if it runs out).

    Each is ``{"network": {...}}`` plus, for draws, ``learning_rate`` and ``weight_decay``: what
    ``DeepSpeedTrainer.train`` takes as ``network`` (the first) and ``search`` (the rest).
    """
    if trials < 1:
        raise ValueError(f"a candidate search needs at least one trial, got {trials}")
    space = search.space
    grid = list(
        itertools.product(space.architecture, space.hidden, space.dropout, space.learning_rate, space.weight_decay)
    )
    random.Random(search.seed).shuffle(grid)
    out: list[dict[str, Any]] = [{"network": first.model_dump()}]
    seen = {_key(first, None, None)}
    for architecture, hidden, dropout, lr, wd in grid:
        if len(out) >= trials:
            break
        net = first.model_copy(update={"architecture": architecture, "hidden": list(hidden), "dropout": dropout})
        key = _key(net, lr, wd)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "network": NetworkConfig.model_validate(net.model_dump()).model_dump(),
                "learning_rate": lr,
                "weight_decay": wd,
            }
        )
    return out


def _key(net: NetworkConfig, lr: float | None, wd: float | None) -> str:
    """What makes two trials the same (the hidden widths do not matter to a transformer)."""
    shape = net.hidden if net.architecture == "mlp" else (net.d_token, net.n_layers, net.n_heads)
    return f"{net.architecture}|{shape}|{net.dropout}|{lr}|{wd}"


def selection_metric(primary_metric: str) -> tuple[str, bool]:
    """The validation metric that picks the best trial: the gates' primary metric where training measures it,
    else log loss; and whether higher is better."""
    from ml_assets.model.evaluation import LOWER_IS_BETTER

    metric = primary_metric if primary_metric in TRAINING_METRICS else "log_loss"
    return metric, metric not in LOWER_IS_BETTER
