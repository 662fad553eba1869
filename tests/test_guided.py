"""Model-guided proposals (BOHB): its kernel densities, and the Gaussian process, follow the scores
they are given."""

from __future__ import annotations

import keras_tuner as kt
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


def _kde_oracle(scores_at, count=24, seed=0):
    oracle = _oracle(scores_at, count=count, seed=seed)
    kde = _DensityOracle(objective=oracle.objective, max_trials=100, seed=seed,
                         hyperparameters=oracle.hyperparameters)
    kde.trials = oracle.trials
    return kde


def test_bohb_densities_propose_near_the_good_trials_and_their_category():
    oracle = _kde_oracle(lambda x, kind: -((x - 0.8) ** 2) + (0.05 if kind == "a" else 0.0))
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


def test_bohb_densities_wait_for_more_trials_than_dimensions():
    oracle = _kde_oracle(lambda x, kind: -x, count=3)  # 2 dimensions: at least 8 (and 4) trials
    assert oracle._observations() is None
    assert _kde_oracle(lambda x, kind: -x, count=8)._observations() is not None


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
