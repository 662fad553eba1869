"""hpsearch's KerasTuner oracles: KerasTuner's Hyperband, Bayesian and random oracles with what a
search relies on added.

Over KerasTuner's own, each oracle proposes the space's default point (the textbook model) as
its first trial, and Hyperband again first in its full-budget bracket; lets a value fixed for the
search win over a conditional draw; writes its state files atomically; resumes without
retraining a finished trial; and, for a distributed search, caps the trials created, answers a
worker's run-id probe and puts a lost worker's trial back in the queue. The Bayesian oracle's
model also learns from failed trials. BOHB is Hyperband with the model-guided proposals of
``tuner.guided``. The tuners that train these oracles' trials are in ``tuner.engine``.
"""

from __future__ import annotations

import os

import keras_tuner as kt
import numpy as np
from keras_tuner.src.engine.oracle import synchronized

from top_configs import strip_internal_keys
from tuner import rundir
from tuner.guided import ModelGuidedProposals

# The trial id a worker asks the chief for to learn the chief's run id (not a real trial).
RUN_ID_PROBE = "hpsearch-run-id"


class _HpsearchOracle:
    """Oracle mixin: the textbook (default) values first, state files written atomically, and a
    resume that never retrains a finished trial.

    KerasTuner 1.4.8's ``end_trial`` saves ``oracle.json`` *before* dropping the trial from
    ``ongoing_trials``, and ``reload`` sends every ongoing trial to the retry queue: so the last
    COMPLETED trial of a run was retrained on every resume. Saving again after ``end_trial`` and
    filtering the retry queue on reload fixes both new and older run directories.
    """

    # Trials a distributed search may create in all (None: the algorithm's own end). Hyperband
    # alone does not stop at its schedule when several workers ask at once (keras-tuner #256).
    trial_cap: int | None = None
    # Answered to ``get_trial(RUN_ID_PROBE)``, so that a worker can check over KerasTuner's own
    # protocol that its run directory is the chief's (see tuner/distributed.py).
    run_id: str | None = None

    def populate_space(self, trial_id):
        if self.trial_cap is not None and len(self.trials) >= self.trial_cap:
            return {"status": kt.engine.trial.TrialStatus.STOPPED}
        response = super().populate_space(trial_id)
        values = response.get("values")
        if values is not None:
            # A value fixed for the search (``--fix``, a fine-tune's architecture) is a Fixed
            # entry without conditions; a space that declares the same name in a conditional
            # scope (beta_1 for Adam) adds a second entry, and both share one value, which the
            # draw for that second entry overwrote: the fixed value wins.
            for parameter in self.hyperparameters.space:
                if isinstance(parameter, kt.engine.hyperparameters.Fixed) and not parameter.conditions:
                    values[parameter.name] = parameter.value
        return response

    def get_trial(self, trial_id):
        if trial_id == RUN_ID_PROBE:
            return kt.engine.trial.Trial(self.get_space(), trial_id=str(self.run_id),
                                         status=kt.engine.trial.TrialStatus.IDLE)
        return super().get_trial(trial_id)

    @synchronized
    def release_worker(self, tuner_id: str) -> str | None:
        """Forget a worker that is gone; its running trial (returned) goes back to the queue."""
        self.tuner_ids.discard(tuner_id)
        trial = self.ongoing_trials.pop(tuner_id, None)
        if trial is None:
            return None
        trial.status = kt.engine.trial.TrialStatus.RUNNING
        if trial.trial_id not in self._retry_queue:
            self._retry_queue.append(trial.trial_id)
        self.save()
        return trial.trial_id

    def end_trial(self, trial):
        try:
            super().end_trial(trial)
        finally:
            # KerasTuner raises on too many consecutive failures before it saves the trial, which
            # would then stay RUNNING on disk; save it as it ended either way.
            if trial.trial_id in self.trials:
                self._save_trial(self.trials[trial.trial_id])
            self.save()

    def reload(self):
        super().reload()
        finished = (kt.engine.trial.TrialStatus.COMPLETED, kt.engine.trial.TrialStatus.FAILED)
        self._retry_queue = [
            trial_id
            for trial_id in self._retry_queue
            if self.trials[trial_id].status not in finished
        ]

    def _random_values(self):
        defaults = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            defaults.merge([hp])
            if defaults.is_active(hp):
                defaults.values[hp.name] = hp.default
        if self.hyperparameters.space and self._wants_textbook(defaults.values):
            return dict(defaults.values)
        return self._propose_values()

    def _propose_values(self):
        """A new configuration after the textbook one: KerasTuner's own (random) draw."""
        return super()._random_values()

    def _wants_textbook(self, textbook_values) -> bool:
        return not self._duplicate(textbook_values)

    def save(self):
        rundir.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        rundir.write_json(
            os.path.join(self._get_trial_dir(trial.trial_id), rundir.TRIAL_FILE), trial.get_state()
        )


class _HyperbandOracle(_HpsearchOracle, kt.oracles.HyperbandOracle):
    """Hyperband's first trial (in its most aggressive bracket) trains the textbook model for a
    few epochs only; unless a promotion already took it to ``max_epochs``, the textbook model is
    also the first trial of the full-budget bracket, so best-vs-textbook compares equal budgets."""

    _in_full_budget_bracket = False

    def _random_trial(self, trial_id, bracket):
        self._in_full_budget_bracket = bracket["bracket_num"] == 0
        try:
            return super()._random_trial(trial_id, bracket)
        finally:
            self._in_full_budget_bracket = False

    def _wants_textbook(self, textbook_values) -> bool:
        if super()._wants_textbook(textbook_values):
            return True
        if not self._in_full_budget_bracket:
            return False
        return not any(
            strip_internal_keys(trial.hyperparameters.values) == textbook_values
            and trial.hyperparameters.values.get("tuner/epochs") == self.max_epochs
            for trial in self.trials.values()
        )


class _GuidedHyperbandOracle(ModelGuidedProposals, _HyperbandOracle):
    """Hyperband whose new configurations come from a model of the finished trials (BOHB)."""


class _BayesianOracle(_HpsearchOracle, kt.oracles.BayesianOptimizationOracle):
    """KerasTuner's Bayesian oracle, told of its failed trials.

    KerasTuner leaves a FAILED trial out of the Gaussian process, so the model learns nothing
    from a configuration that diverged and proposes its neighbours again, until the search stops
    at MAX_CONSECUTIVE_FAILED_TRIALS in a row. Here each failed trial enters the model with the
    worst score seen so far, as SMAC3 counts a crashed run at its crash cost.
    """

    def _vectorize_trials(self):
        x, y = super()._vectorize_trials()
        failed = [trial for trial in self.trials.values() if trial.status == "FAILED"]
        if not failed or len(y) == 0:
            return x, y
        worst = float(np.max(y))  # KerasTuner's model minimizes: the largest is the worst
        vectors = [[hp.value_to_prob(trial.hyperparameters.values[hp.name]
                                     if trial.hyperparameters.is_active(hp)
                                     and hp.name in trial.hyperparameters.values else hp.default)
                    for hp in self._nonfixed_space()] for trial in failed]
        return (np.concatenate([x, np.array(vectors)]),
                np.concatenate([y, np.full(len(failed), worst)]))


class _RandomOracle(_HpsearchOracle, kt.oracles.RandomSearchOracle):
    pass
