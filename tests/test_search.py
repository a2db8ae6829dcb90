"""The candidate search's plan: the configured network first, then distinct seeded draws, within the budget."""

from __future__ import annotations

import json

import pytest

from ml_assets.dataset import CandidateSearch, SearchSpace
from ml_assets.model.network import NetworkConfig
from ml_assets.model.search import plan_trials, selection_metric


def test_first_trial_is_the_configured_network_then_distinct_draws() -> None:
    first = NetworkConfig(hidden=[32], dropout=0.05)
    trials = plan_trials(first, CandidateSearch(), 5)
    assert len(trials) == 5
    assert trials[0] == {"network": first.model_dump()}  # the run config's network, the trainer's settings
    keys = {json.dumps(t, sort_keys=True) for t in trials}
    assert len(keys) == 5
    space = CandidateSearch().space
    for t in trials[1:]:
        net = t["network"]
        assert net["hidden"] in space.hidden and net["dropout"] in space.dropout
        assert net["numeric_embedding"] in space.numeric_embedding and net["numeric_scaling"] in space.numeric_scaling
        assert t["learning_rate"] in space.learning_rate and t["weight_decay"] in space.weight_decay
        assert t["lr_schedule"] in space.lr_schedule and t["class_weight"] in space.class_weight
        NetworkConfig.model_validate(net)


def test_the_first_draws_cover_every_input_encoding_before_repeating_one() -> None:
    space = SearchSpace(numeric_embedding=["ple", "periodic"], numeric_scaling=["standard", "quantile"])
    trials = plan_trials(NetworkConfig(), CandidateSearch(space=space), 1 + 2 + 2 * len(space.frequency_scale))
    families = [
        (t["network"]["numeric_embedding"], t["network"]["numeric_scaling"], t["network"]["frequency_scale"])
        for t in trials[1:]
    ]
    assert {f for f in families if f[0] == "periodic"} == {
        ("periodic", s, f) for s in space.numeric_scaling for f in space.frequency_scale
    }
    assert {f[1] for f in families if f[0] == "ple"} == {"standard", "quantile"}


def test_draws_are_seeded_and_the_budget_is_capped_by_the_space() -> None:
    first = NetworkConfig()
    assert plan_trials(first, CandidateSearch(seed=1), 4) == plan_trials(first, CandidateSearch(seed=1), 4)
    assert plan_trials(first, CandidateSearch(seed=1), 4) != plan_trials(first, CandidateSearch(seed=2), 4)
    tiny = CandidateSearch(
        space=SearchSpace(
            numeric_embedding=["ple"],
            numeric_scaling=["standard"],
            hidden=[[8]],
            dropout=[0.0],
            learning_rate=[1e-3],
            weight_decay=[0.0, 1e-4],
            lr_schedule=["warmup_decay"],
            class_weight=["none"],
        )
    )
    assert len(plan_trials(first, tiny, 10)) == 3  # the configured network + the space's 2 combinations
    assert plan_trials(first, CandidateSearch(), 1) == [{"network": first.model_dump()}]
    with pytest.raises(ValueError, match="at least one trial"):
        plan_trials(first, CandidateSearch(), 0)


def test_transformer_draws_keep_the_configured_token_sizes() -> None:
    first = NetworkConfig(d_token=16, n_heads=2)
    space = SearchSpace(
        architecture=["transformer"],
        numeric_embedding=["periodic"],
        numeric_scaling=["quantile"],
        frequency_scale=[1.0],
        hidden=[[8], [16]],
        dropout=[0.1],
        learning_rate=[1e-3],
        lr_schedule=["warmup_decay"],
        class_weight=["none"],
    )
    trials = plan_trials(first, CandidateSearch(space=space), 10)
    # hidden widths do not change a transformer: one draw per learning rate and weight decay, not per width
    assert len(trials) == 1 + len(space.weight_decay)
    assert all(t["network"]["d_token"] == 16 for t in trials[1:])


def test_the_gates_primary_metric_picks_the_trial_where_training_measures_it() -> None:
    assert selection_metric("roc_auc") == ("roc_auc", True)
    assert selection_metric("log_loss") == ("log_loss", False)
    assert selection_metric("brier") == ("log_loss", False)  # not measured per epoch: log loss instead
    # measured per epoch at 0.5, not at the threshold the decision policy chooses afterwards: ranking instead
    assert selection_metric("f1") == ("pr_auc", True) and selection_metric("accuracy") == ("pr_auc", True)
