"""Model-guided proposals (BOHB): its kernel densities, and the Gaussian process, follow the scores
they are given."""

from __future__ import annotations

import keras_tuner as kt
import numpy as np
import pytest
from tuner.guided import ModelGuidedProposals


class _RandomOracle(kt.oracles.RandomSearchOracle):
    def _propose_values(self):
        return self._random_values()

    def _random_draw(self):
        return self._random_values()


class _Oracle(ModelGuidedProposals, _RandomOracle):
    random_fraction = 0.0
    model = "gp"


def _oracle(scores_at, budget_of=lambda x: 1, count=12, seed=0):
    """An oracle over x in [0, 1] and a choice, with ``count`` completed trials scored by
    ``scores_at(x, choice)`` at epoch budget ``budget_of(x)``."""
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    hp.Choice("kind", ["a", "b"])
    oracle = _Oracle(objective=kt.Objective("score", "max"), max_trials=100, seed=seed,
                     hyperparameters=hp)
    for index in range(count):
        trial = kt.engine.trial.Trial(hp.copy(), trial_id=str(index))
        x = (index + 0.5) / count
        kind = "a" if index % 2 else "b"
        trial.hyperparameters.values.update({"x": x, "kind": kind, "tuner/epochs": budget_of(x)})
        trial.status = "COMPLETED"
        trial.score = scores_at(x, kind)
        oracle.trials[trial.trial_id] = trial
    return oracle


def test_proposals_move_to_where_the_scores_are_high():
    oracle = _oracle(lambda x, kind: -((x - 0.8) ** 2) + (0.05 if kind == "a" else 0.0))
    proposals = [oracle._propose_values() for _ in range(5)]
    assert all(abs(p["x"] - 0.8) < 0.2 for p in proposals), proposals
    assert sum(p["kind"] == "a" for p in proposals) >= 4, proposals


def test_minimizing_objective_is_followed_too():
    oracle = _oracle(lambda x, kind: (x - 0.2) ** 2)
    oracle.objective = kt.Objective("score", "min")
    proposals = [oracle._propose_values() for _ in range(5)]
    assert all(abs(p["x"] - 0.2) < 0.2 for p in proposals), proposals


def test_too_few_observations_at_every_budget_give_random_draws():
    # 12 trials spread over 3 budgets: 4 each, fewer than min_observations (8).
    oracle = _oracle(lambda x, kind: -x, budget_of=lambda x: 1 + int(x * 3), seed=3)
    twin = _oracle(lambda x, kind: -x, budget_of=lambda x: 1 + int(x * 3), seed=3)
    assert oracle._observations() is None
    assert [oracle._propose_values() for _ in range(3)] == [twin._random_draw() for _ in range(3)]


def test_the_model_uses_the_largest_budget_with_enough_trials():
    # Budget 1: x near 0 scores best; budget 3 (8 trials, x >= 1/3): x near 1 scores best.
    oracle = _oracle(lambda x, kind: -x if x < 1 / 3 else x, budget_of=lambda x: 1 if x < 1 / 3 else 3)
    x, y = oracle._observations()
    assert len(y) == 8
    assert all(abs(p["x"] - 1.0) < 0.25 for p in [oracle._propose_values() for _ in range(3)])


def test_random_fraction_one_draws_at_random():
    oracle = _oracle(lambda x, kind: -((x - 0.8) ** 2), seed=5)
    twin = _oracle(lambda x, kind: -((x - 0.8) ** 2), seed=5)
    oracle.random_fraction = 1.0
    assert [oracle._propose_values() for _ in range(3)] == [twin._random_draw() for _ in range(3)]


class _DensityOracle(_Oracle):
    model = "kde"


def _kde_oracle(scores_at, count=24, seed=0, early=False):
    oracle = _oracle(scores_at, count=count, seed=seed)
    kde = _DensityOracle(objective=oracle.objective, max_trials=100, seed=seed,
                         hyperparameters=oracle.hyperparameters)
    if early:  # TPE's start: no wait for the dimensions, the uniform prior in each density
        kde.wait_for_dimensions, kde.prior_weight = False, 1.0
    kde.trials = oracle.trials
    return kde


@pytest.mark.parametrize("early", [False, True])
def test_bohb_densities_propose_near_the_good_trials_and_their_category(early):
    oracle = _kde_oracle(lambda x, kind: -((x - 0.8) ** 2) + (0.05 if kind == "a" else 0.0),
                         early=early)
    proposals = [oracle._propose_values() for _ in range(10)]
    assert sum(abs(p["x"] - 0.8) < 0.2 for p in proposals) >= 8, proposals
    assert sum(p["kind"] == "a" for p in proposals) >= 7, proposals


def test_bohb_densities_follow_a_minimized_objective_and_propose_nothing_twice():
    oracle = _kde_oracle(lambda x, kind: (x - 0.2) ** 2)
    oracle.objective = kt.Objective("score", "min")
    proposals = [oracle._propose_values() for _ in range(10)]
    assert sum(abs(p["x"] - 0.2) < 0.2 for p in proposals) >= 8, proposals
    tried = {(t.hyperparameters.values["x"], t.hyperparameters.values["kind"])
             for t in oracle.trials.values()}
    assert not tried & {(p["x"], p["kind"]) for p in proposals}


def test_bohb_densities_wait_for_the_dimensions_or_start_at_min_observations():
    # 2 dimensions: at least 8 trials (min_observations), and 4 (dimensions + 2).
    assert _kde_oracle(lambda x, kind: -x, count=7)._observations() is None
    assert _kde_oracle(lambda x, kind: -x, count=8)._observations() is not None
    many = kt.HyperParameters()
    for index in range(12):
        many.Float(f"x{index}", 0.0, 1.0)
    for wait, needed in ((True, 14), (False, 8)):
        oracle = _DensityOracle(objective=kt.Objective("score", "max"), max_trials=100, seed=0,
                                hyperparameters=many)
        oracle.wait_for_dimensions = wait
        for index in range(needed):
            trial = kt.engine.trial.Trial(many.copy(), trial_id=str(index))
            trial.hyperparameters.values.update({"tuner/epochs": 1})
            trial.status, trial.score = "COMPLETED", float(index)
            oracle.trials[trial.trial_id] = trial
            assert (oracle._observations() is not None) == (index + 1 == needed), (wait, index)


def test_the_densities_prior_keeps_every_point_possible_and_sums_to_one():
    from tuner.guided import _Density

    levels = np.array([0, 3])
    points = np.array([[0.5, 1 / 6], [0.52, 1 / 6]])
    sharp, mixed = _Density(points, levels), _Density(points, levels, prior_weight=1.0)
    far = np.array([[0.0, 5 / 6]])
    assert mixed.log_pdf(far)[0] > sharp.log_pdf(far)[0] + 5
    assert np.isfinite(mixed.log_pdf(far)[0])
    # The density over [0, 1] x 3 categories integrates to one (midpoint rule over x).
    grid = (np.arange(2000) + 0.5) / 2000
    total = sum(np.exp(mixed.log_pdf(np.column_stack([grid, np.full_like(grid, (k + 0.5) / 3)]))
                       ).mean() for k in range(3))
    assert abs(total - 1.0) < 0.02, total
    rng = np.random.default_rng(0)
    samples = np.array([mixed.sample(rng, 3.0) for _ in range(600)])
    # A third of the weight is the prior's: a third of the samples lie anywhere, so 0.6 x 1/3
    # of them more than 0.2 from the points (the kernels, 3 x 0.01 wide, put none there).
    assert 0.13 < np.mean(np.abs(samples[:, 0] - 0.51) > 0.2) < 0.27


def test_bohb_densities_keep_conditional_values_inactive():
    hp = kt.HyperParameters()
    hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Float("momentum", 0.0, 0.99)
    hp.Float("x", 0.0, 1.0)
    oracle = _DensityOracle(objective=kt.Objective("score", "max"), max_trials=100, seed=1,
                            hyperparameters=hp)
    for index in range(12):
        trial = kt.engine.trial.Trial(hp.copy(), trial_id=str(index))
        values = {"optimizer": "sgd" if index % 2 else "adam", "x": index / 12, "tuner/epochs": 1}
        if values["optimizer"] == "sgd":
            values["momentum"] = 0.9
        trial.hyperparameters.values.update(values)
        trial.status, trial.score = "COMPLETED", values["x"] + (0.5 if index % 2 else 0.0)
        oracle.trials[trial.trial_id] = trial
    for proposal in (oracle._propose_values() for _ in range(8)):
        assert ("momentum" in proposal) == (proposal["optimizer"] == "sgd"), proposal
