"""Model-guided proposals for Hyperband: BOHB (Falkner, Klein and Hutter, 2018).

Plain Hyperband draws every new configuration at random and spends its cleverness on stopping
bad ones early. BOHB keeps the brackets and replaces the random draw: once enough trials have
finished at some epoch budget, a model fitted to the trials of the largest such budget picks the
next configuration. A third of the proposals stay random, so the model cannot lock the search
into one corner.

The model (``ModelGuidedProposals.model``) is BOHB's own by default, ``"kde"``: kernel densities
of the best 15% of the trials and of the rest, over KerasTuner's [0, 1] embedding of each
hyperparameter (inactive ones at their default), sampled around the good trials and ranked by the
ratio of the two densities; what it proposes keeps KerasTuner's conditional scopes, and no
configuration is proposed twice. As in BOHB's reference code (hpbandster), the densities wait
for more trials than dimensions at one budget (``wait_for_dimensions``), so a search of a few
dozen trials over a 20-dimensional space stays plain Hyperband. Starting them as TPE's do
(Bergstra et al. 2011; Optuna's sampler) is one switch away: after ``min_observations`` trials
whatever the dimensions, each density mixed with the uniform prior (``prior_weight``) so that a
handful of good trials cannot close the space; the search benchmark measured it no better.
``"gp"`` is expected improvement under a Gaussian process (scikit-learn, as in KerasTuner's
Bayesian oracle) over the oracle's own random draws; the benchmark measured it behind the
densities, and behind plain Hyperband (docs/benchmarks/search-efficiency.md). Everything is seeded from the oracle's saved state, so a
resumed search proposes what an uninterrupted one would have.
"""

from __future__ import annotations

import math
import random
import warnings
from typing import Any

import numpy as np
import keras_tuner as kt


class ModelGuidedProposals:
    """Oracle mixin: ``_propose_values`` asks a model of the finished trials (``model``) instead
    of drawing at random.

    The oracle it mixes into provides ``_propose_values()`` (a random, not yet tried
    configuration, or None when the space is exhausted), ``trials``, ``objective``,
    ``hyperparameters`` and ``_seed_state`` (KerasTuner's counter of random draws).
    """

    # BOHB's defaults: a third random, the model fitted once a budget has enough trials: the
    # Gaussian process after ``min_observations``, the densities (hpbandster's rule) after
    # dimensions + 2; without ``wait_for_dimensions``, after ``min_observations`` too (Optuna's
    # TPE starts after 10).
    random_fraction = 1 / 3
    min_observations = 8
    wait_for_dimensions = True
    # The uniform prior's weight in each density, in kernels (Optuna's TPE: 1); 0 leaves it out.
    prior_weight = 0.0
    num_candidates = 128
    # "kde": BOHB's own model, a ratio of kernel densities of the good and the bad trials.
    # "gp": expected improvement under a Gaussian process, over the oracle's random draws.
    model = "kde"

    def _propose_values(self) -> dict[str, Any] | None:
        observed = self._observations()
        coin = random.Random(self._seed_state).random()
        if observed is None or coin < self.random_fraction:
            return super()._propose_values()
        if self.model == "kde":
            return self._propose_from_densities(*observed) or super()._propose_values()
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
        largest epoch budget that has ``min_observations`` of them (for the densities, also more
        than the space has dimensions); None before that."""
        by_budget: dict[int, list] = {}
        for trial in self.trials.values():
            if trial.status != "COMPLETED" or trial.score is None:
                continue
            if not math.isfinite(float(trial.score)):
                continue
            budget = int(trial.hyperparameters.values.get("tuner/epochs", 0))
            by_budget.setdefault(budget, []).append(trial)
        # hpbandster's densities wait for more trials than dimensions (good and bad, d + 1 each).
        least = (max(self.min_observations, len(self._searched()) + 2)
                 if self.model == "kde" and self.wait_for_dimensions else self.min_observations)
        usable = [budget for budget, trials in by_budget.items() if len(trials) >= least]
        if not usable:
            return None
        trials = by_budget[max(usable)]
        sign = 1.0 if self.objective.direction == "max" else -1.0
        x = np.array([self._embed(trial.hyperparameters.values) for trial in trials])
        y = np.array([sign * float(trial.score) for trial in trials])
        return x, y

    def _propose_from_densities(self, x: np.ndarray, y: np.ndarray) -> dict[str, Any] | None:
        """BOHB's proposal (Falkner et al. 2018, as in its reference code, hpbandster): split
        the trials into the best 15% (at least ``MIN_GOOD``) and the rest, fit a kernel density
        to each, sample ``KDE_SAMPLES`` points around good trials with the bandwidths widened
        ``BANDWIDTH_FACTOR`` times, and take the one most likely good relative to bad. With
        ``wait_for_dimensions``, hpbandster's sets: each at least dimensions + 1 trials, the two
        overlapping. None when no sample is new (the caller then draws at random)."""
        rng = np.random.default_rng(self._seed_state)
        self._seed_state += 1
        searched = self._searched()
        order = np.argsort(-y)  # best first
        if self.wait_for_dimensions:
            minimum = len(searched) + 1
            good = x[order[:max(minimum, (15 * len(y)) // 100)]]
            bad = x[order[-max(minimum, (85 * len(y)) // 100):]]
        else:
            split = max(MIN_GOOD, math.ceil(0.15 * len(y)))
            good, bad = x[order[:split]], x[order[split:]]
        levels = np.array([_levels(hp) for hp in searched])
        good_kde = _Density(good, levels, self.prior_weight)
        bad_kde = _Density(bad, levels, self.prior_weight)
        samples = np.array([good_kde.sample(rng, BANDWIDTH_FACTOR) for _ in range(KDE_SAMPLES)])
        ratio = good_kde.log_pdf(samples) - bad_kde.log_pdf(samples)
        for index in np.argsort(-ratio):
            values = self._values_of(samples[index], searched)
            if not self._duplicate(values):
                return values
        return None

    def _searched(self) -> list:
        return [hp for hp in self.hyperparameters.space
                if not isinstance(hp, kt.engine.hyperparameters.Fixed)]

    def _values_of(self, vector: np.ndarray, searched: list) -> dict[str, Any]:
        """The values a point of the embedding stands for, only the active ones kept (as
        KerasTuner's own random draw fills a configuration, parents first)."""
        probabilities = {hp.name: float(p) for hp, p in zip(searched, vector)}
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                hps.values[hp.name] = (hp.prob_to_value(probabilities[hp.name])
                                       if hp.name in probabilities else hp.default)
        return hps.values

    def _embed(self, values: dict[str, Any]) -> list[float]:
        vector = []
        for hp in self._searched():
            value = values.get(hp.name, hp.default)
            try:
                vector.append(float(hp.value_to_prob(value)))
            except (ValueError, TypeError):  # a value outside the current space
                vector.append(float(hp.value_to_prob(hp.default)))
        return vector


# BOHB's reference settings (hpbandster): samples drawn per proposal, how much wider than the
# fitted bandwidth they are drawn, and the smallest bandwidth.
KDE_SAMPLES = 64
BANDWIDTH_FACTOR = 3.0
MIN_BANDWIDTH = 1e-3
# The fewest trials in the good density (a bandwidth needs two points to spread over).
MIN_GOOD = 2


def _levels(hp) -> int:
    """How many values a hyperparameter takes when it is a category (Choice, Boolean), else 0:
    a continuous or ordered one."""
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return 2
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return len(hp.values)
    return 0


class _Density:
    """A product kernel density over KerasTuner's [0, 1] embedding: Gaussian for ordered
    dimensions, Aitchison-Aitken for categories (the kernels of statsmodels' KDEMultivariate,
    which BOHB uses), bandwidths by the normal reference rule; mixed with the uniform density over
    the embedding with ``prior_weight`` kernels' weight (TPE's prior)."""

    def __init__(self, points: np.ndarray, levels: np.ndarray, prior_weight: float = 0.0):
        self.points, self.levels = points, levels
        self.prior_weight = prior_weight
        self.categorical = levels > 0
        self.codes = self._codes(points)
        n, d = points.shape
        width = 1.06 * points.std(axis=0) * n ** (-1.0 / (4 + d))
        # Categories: the spread of their codes, in the kernel's own range [0, (c - 1) / c].
        code_width = 1.06 * self.codes.std(axis=0) * n ** (-1.0 / (4 + d))
        most = np.where(self.categorical, (levels - 1) / np.maximum(levels, 1), 1.0)
        self.bandwidth = np.where(self.categorical, np.minimum(code_width, most), width)
        self.bandwidth = np.maximum(self.bandwidth, MIN_BANDWIDTH)

    def _codes(self, points: np.ndarray) -> np.ndarray:
        # KerasTuner embeds category k of c at (k + 0.5) / c.
        return np.where(self.categorical,
                        np.clip(np.floor(points * self.levels), 0, np.maximum(self.levels - 1, 0)),
                        0.0)

    def log_pdf(self, samples: np.ndarray) -> np.ndarray:
        """log density at each sample (rows), a mean over the points' kernels."""
        codes = self._codes(samples)
        bandwidth = self.bandwidth
        gauss = (-0.5 * ((samples[:, None, :] - self.points[None, :, :]) / bandwidth) ** 2
                 - np.log(bandwidth * math.sqrt(2 * math.pi)))
        same = codes[:, None, :] == self.codes[None, :, :]
        others = np.maximum(self.levels - 1, 1)
        category = np.log(np.where(same, 1 - bandwidth, bandwidth / others))
        per_point = np.where(self.categorical, category, gauss).sum(axis=2)
        weights = np.ones(per_point.shape[1])
        if self.prior_weight:
            # The uniform prior's log density: 1 over each ordered dimension, 1 / levels per
            # category.
            prior = np.full((len(samples), 1), -np.log(np.maximum(self.levels, 1)).sum())
            per_point = np.concatenate([per_point, prior], axis=1)
            weights = np.append(weights, self.prior_weight)
        top = per_point.max(axis=1, keepdims=True)
        mixture = (np.exp(per_point - top) * weights).sum(axis=1, keepdims=True) / weights.sum()
        return (top + np.log(mixture))[:, 0]

    def sample(self, rng: np.random.Generator, widen: float) -> np.ndarray:
        """A point near a random one of the density's points: ordered dimensions from a normal
        ``widen`` times the bandwidth, truncated to [0, 1]; a category kept, or with
        probability its bandwidth drawn anew; with the prior's share of the weight, a uniform
        point instead."""
        if self.prior_weight and (
                rng.random() * (len(self.points) + self.prior_weight) >= len(self.points)):
            return np.array([(rng.integers(levels) + 0.5) / levels if levels else rng.random()
                             for levels in self.levels])
        center = self.points[rng.integers(len(self.points))]
        point = center.copy()
        for dim, levels in enumerate(self.levels):
            if levels:
                if rng.random() < self.bandwidth[dim]:
                    point[dim] = (rng.integers(levels) + 0.5) / levels
            else:
                scale = max(self.bandwidth[dim] * widen, MIN_BANDWIDTH)
                while True:  # truncated normal by rejection: the mass in [0, 1] is >= 16%
                    value = rng.normal(center[dim], scale)
                    if 0.0 <= value <= 1.0:
                        break
                point[dim] = value
        return point


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
