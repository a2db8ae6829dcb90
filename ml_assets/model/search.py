"""The candidate's budgeted search: which networks and settings ``candidate_model`` trains in one launch.

Trial 0 is the network of the run config (so a search never does worse on validation than no search); the others
are distinct seeded draws from the spec's search space: architecture, numeric embedding and scaling, widths, dropout,
learning rate, weight decay, schedule and class weighting (random search over a small grid: with a handful of
trials it covers more of the settings that matter than a grid would, Bergstra and Bengio 2012). The trainer runs
them by successive halving, so a larger ``trials`` costs little more than the few that go the distance. All
trials are judged on the same validation rows by the same metric, and the test split stays untouched until the
gates.
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

    Each is ``{"network": {...}}`` plus, for draws, ``learning_rate``, ``weight_decay``, ``lr_schedule`` and
    ``class_weight``: what ``DeepSpeedTrainer.train`` takes as ``network`` (the first) and ``search`` (the rest).
    """
    if trials < 1:
        raise ValueError(f"a candidate search needs at least one trial, got {trials}")
    space = search.space
    grid = list(
        itertools.product(
            space.architecture,
            space.numeric_embedding,
            space.numeric_scaling,
            space.frequency_scale,
            space.hidden,
            space.dropout,
            space.learning_rate,
            space.weight_decay,
            space.lr_schedule,
            space.class_weight,
        )
    )
    random.Random(search.seed).shuffle(grid)
    grid = _round_robin(grid)
    out: list[dict[str, Any]] = [{"network": first.model_dump()}]
    seen = {_key(first, {})}
    for architecture, embedding, scaling, frequency_scale, hidden, dropout, lr, wd, schedule, class_weight in grid:
        if len(out) >= trials:
            break
        net = first.model_copy(
            update={
                "architecture": architecture,
                "numeric_embedding": embedding,
                "numeric_scaling": scaling,
                "frequency_scale": frequency_scale if embedding == "periodic" else first.frequency_scale,
                "hidden": list(hidden),
                "dropout": dropout,
            }
        )
        settings = {"learning_rate": lr, "weight_decay": wd, "lr_schedule": schedule, "class_weight": class_weight}
        key = _key(net, settings)
        if key in seen:
            continue
        seen.add(key)
        out.append({"network": NetworkConfig.model_validate(net.model_dump()).model_dump(), **settings})
    return out


def _round_robin(grid: list[tuple]) -> list[tuple]:
    """The shuffled draws reordered so that every family (architecture, numeric embedding, scaling and, for the
    periodic embedding, its frequency scale) comes once before any comes twice: a few trials already compare the
    kinds of input encoding, which matter most (Gorishniy et al. 2022), not one kind's widths."""
    seen: dict[tuple, int] = {}
    ranked = []
    for draw in grid:
        architecture, embedding, scaling, frequency_scale = draw[:4]
        family = (architecture, embedding, scaling, frequency_scale if embedding == "periodic" else None)
        seen[family] = seen.get(family, 0) + 1
        ranked.append((seen[family], draw))
    return [draw for _, draw in sorted(ranked, key=lambda r: r[0])]  # stable: the shuffle decides within a round


def _key(net: NetworkConfig, settings: dict[str, Any]) -> str:
    """What makes two trials the same (the hidden widths do not matter to a transformer)."""
    shape = net.hidden if net.architecture == "mlp" else (net.d_token, net.n_layers, net.n_heads)
    scale = net.frequency_scale if net.numeric_embedding == "periodic" else None
    inputs = f"{net.numeric_embedding}|{net.numeric_scaling}|{scale}"
    return f"{net.architecture}|{inputs}|{shape}|{net.dropout}|{sorted(settings.items())}"


# Figures of a fixed 0.5 cut: the ranks measure them at 0.5, but a model decides at the threshold its decision policy
# chooses on validation after training, so they would judge every epoch of a rare-positive search at the wrong cut
# (F1 0 everywhere: early stopping, halving and the ensemble all tie).
THRESHOLD_DEPENDENT = frozenset({"accuracy", "f1"})


def selection_metric(primary_metric: str) -> tuple[str, bool]:
    """The validation metric that picks the best trial: the gates' primary metric where training measures it
    independently of a threshold; PR AUC for a threshold-dependent one (accuracy, F1: what a threshold then makes of
    the ranking); else log loss; and whether higher is better."""
    from ml_assets.model.evaluation import LOWER_IS_BETTER

    if primary_metric in THRESHOLD_DEPENDENT:
        metric = "pr_auc"
    else:
        metric = primary_metric if primary_metric in TRAINING_METRICS else "log_loss"
    return metric, metric not in LOWER_IS_BETTER
