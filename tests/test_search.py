"""The candidate search's plan: the configured network first, then distinct seeded draws, within the budget."""

from __future__ import annotations

import pytest

from ml_assets.dataset import CandidateSearch, SearchSpace
from ml_assets.model.network import NetworkConfig
from ml_assets.model.search import plan_trials, selection_metric


def test_first_trial_is_the_configured_network_then_distinct_draws() -> None:
    first = NetworkConfig(hidden=[32], dropout=0.05)
    trials = plan_trials(first, CandidateSearch(), 5)
    assert len(trials) == 5
    assert trials[0] == {"network": first.model_dump()}  # the run config's network, the trainer's settings
    keys = {
        (tuple(t["network"]["hidden"]), t["network"]["dropout"], t.get("learning_rate"), t.get("weight_decay"))
        for t in trials
    }
    assert len(keys) == 5
    space = CandidateSearch().space
    for t in trials[1:]:
        assert t["network"]["hidden"] in space.hidden and t["network"]["dropout"] in space.dropout
        assert t["learning_rate"] in space.learning_rate and t["weight_decay"] in space.weight_decay
        NetworkConfig.model_validate(t["network"])


def test_draws_are_seeded_and_the_budget_is_capped_by_the_space() -> None:
    first = NetworkConfig()
    assert plan_trials(first, CandidateSearch(seed=1), 4) == plan_trials(first, CandidateSearch(seed=1), 4)
    assert plan_trials(first, CandidateSearch(seed=1), 4) != plan_trials(first, CandidateSearch(seed=2), 4)
    tiny = CandidateSearch(
        space=SearchSpace(hidden=[[8]], dropout=[0.0], learning_rate=[1e-3], weight_decay=[0.0, 1e-4])
    )
    assert len(plan_trials(first, tiny, 10)) == 3  # the configured network + the space's 2 combinations
    assert plan_trials(first, CandidateSearch(), 1) == [{"network": first.model_dump()}]
    with pytest.raises(ValueError, match="at least one trial"):
        plan_trials(first, CandidateSearch(), 0)


def test_transformer_draws_keep_the_configured_token_sizes() -> None:
    first = NetworkConfig(d_token=16, n_heads=2)
    space = SearchSpace(architecture=["transformer"], hidden=[[8], [16]], dropout=[0.1], learning_rate=[1e-3])
    trials = plan_trials(first, CandidateSearch(space=space), 10)
    # hidden widths do not change a transformer: one draw per learning rate and weight decay, not per width
    assert len(trials) == 1 + len(space.weight_decay)
    assert all(t["network"]["d_token"] == 16 for t in trials[1:])


def test_the_gates_primary_metric_picks_the_trial_where_training_measures_it() -> None:
    assert selection_metric("roc_auc") == ("roc_auc", True)
    assert selection_metric("log_loss") == ("log_loss", False)
    assert selection_metric("brier") == ("log_loss", False)  # not measured per epoch: log loss instead
