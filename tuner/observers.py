"""Watching a search as it runs: what every trial reports to the observers of a search
(TensorBoard's HParams data, an MLflow store, a user's own), from the process that trains it.

An observer gets each trial's start (its hyperparameters), each epoch's logs and its end (status
and score). The engine calls them from the tuner of each training process (a one-process search,
or each worker of a parallel one), so an observer writes what its own process trains; whatever it
writes must therefore be safe to write from several processes into one run directory.
"""

from __future__ import annotations

from typing import Any


class TrialObserver:
    """Receives the events of the trials trained in this process; every method does nothing by
    default. Exceptions an observer raises are the trial's own (a failed trial): keep them out."""

    def search_begin(self, run_dir, config, space: dict[str, Any]) -> None:
        """Once per process, before its first trial: the run directory, its RunConfig, and the
        search space (``kt.HyperParameters.get_config()``: every hyperparameter's domain)."""

    def trial_begin(self, trial_id: str, values: dict[str, Any]) -> None:
        """A trial starts with these hyperparameter values (KerasTuner's ``tuner/*`` left out)."""

    def epoch_end(self, trial_id: str, epoch: int, logs: dict[str, float]) -> None:
        """An epoch of the trial ended (``epoch`` counts from 0, a promoted Hyperband trial's
        from its parent's last)."""

    def trial_end(self, trial_id: str, status: str, score: float | None,
                  values: dict[str, Any]) -> None:
        """The trial ended: COMPLETED (with its score), FAILED or INVALID."""

    def search_end(self) -> None:
        """This process trains no more trials (the search ended or stopped)."""


def observers_for(config, run_dir, extra=()) -> list[TrialObserver]:
    """The observers a search's settings ask for, then ``extra`` (a user's own)."""
    return list(extra)
