"""Model-guided proposals for Hyperband: the idea of BOHB (Falkner, Klein and Hutter, 2018).

Plain Hyperband draws every new configuration at random and spends its cleverness on stopping
bad ones early. BOHB keeps the brackets and replaces the random draw: once enough trials have
finished at some epoch budget, a model of score against hyperparameters, fitted to the trials of
the largest such budget, picks the candidate it expects to improve most on the best so far.
A third of the proposals stay random, so the model cannot lock the search into one corner.

Here the model is a Gaussian process (scikit-learn, as in KerasTuner's Bayesian oracle) on
KerasTuner's own [0, 1] embedding of each hyperparameter (inactive ones at their default), and
the candidates are the oracle's own random draws, so conditional scopes are respected and no
configuration is proposed twice. Everything is seeded from the oracle's saved state, so a resumed
search proposes what an uninterrupted one would have.
"""

from __future__ import annotations

import math
import random
import warnings
from typing import Any

import numpy as np
import keras_tuner as kt


class ModelGuidedProposals:
    """Oracle mixin: ``_propose_values`` asks a Gaussian process instead of drawing at random.

    The oracle it mixes into provides ``_propose_values()`` (a random, not yet tried
    configuration, or None when the space is exhausted), ``trials``, ``objective``,
    ``hyperparameters`` and ``_seed_state`` (KerasTuner's counter of random draws).
    """

    # BOHB's defaults: a third random, the model fitted once a budget has enough trials.
    random_fraction = 1 / 3
    min_observations = 8
    num_candidates = 128

    def _propose_values(self) -> dict[str, Any] | None:
        observed = self._observations()
        coin = random.Random(self._seed_state).random()
        if observed is None or coin < self.random_fraction:
            return super()._propose_values()
        candidates = []
        for _ in range(self.num_candidates):
            values = super()._propose_values()
            if values is not None:
                candidates.append(values)
        if not candidates:
            return None
        x, y = observed
        scores = _expected_improvement(x, y, np.array([self._embed(c) for c in candidates]),
                                       seed=self._seed_state)
        return candidates[int(np.argmax(scores))]

    def _observations(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(embedded configurations, scores as "higher is better") of the completed trials at the
        largest epoch budget that has ``min_observations`` of them; None before that."""
        by_budget: dict[int, list] = {}
        for trial in self.trials.values():
            if trial.status != "COMPLETED" or trial.score is None:
                continue
            if not math.isfinite(float(trial.score)):
                continue
            budget = int(trial.hyperparameters.values.get("tuner/epochs", 0))
            by_budget.setdefault(budget, []).append(trial)
        usable = [budget for budget, trials in by_budget.items()
                  if len(trials) >= self.min_observations]
        if not usable:
            return None
        trials = by_budget[max(usable)]
        sign = 1.0 if self.objective.direction == "max" else -1.0
        x = np.array([self._embed(trial.hyperparameters.values) for trial in trials])
        y = np.array([sign * float(trial.score) for trial in trials])
        return x, y

    def _embed(self, values: dict[str, Any]) -> list[float]:
        vector = []
        for hp in self.hyperparameters.space:
            if isinstance(hp, kt.engine.hyperparameters.Fixed):
                continue
            value = values.get(hp.name, hp.default)
            try:
                vector.append(float(hp.value_to_prob(value)))
            except (ValueError, TypeError):  # a value outside the current space
                vector.append(float(hp.value_to_prob(hp.default)))
        return vector


def _expected_improvement(x: np.ndarray, y: np.ndarray, candidates: np.ndarray,
                          seed: int) -> np.ndarray:
    """Expected improvement over ``max(y)`` of each candidate, under a GP fitted to (x, y)."""
    from scipy.stats import norm
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    model = GaussianProcessRegressor(
        kernel=ConstantKernel(1.0) * Matern(length_scale=np.ones(x.shape[1]), nu=2.5)
        + WhiteKernel(1e-3),
        normalize_y=True,
        n_restarts_optimizer=2,
        random_state=seed % (2**32),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
        mean, std = model.predict(candidates, return_std=True)
    std = np.maximum(std, 1e-9)
    gain = mean - float(np.max(y))
    z = gain / std
    return gain * norm.cdf(z) + std * norm.pdf(z)
