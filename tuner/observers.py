"""Watching a search as it runs: what every trial reports to the observers of a search
(TensorBoard's HParams data, an MLflow store, a user's own), from the process that trains it.

An observer gets each trial's start (its hyperparameters), each epoch's logs and its end (status
and score). The engine calls them from the tuner of each training process (a one-process search,
or each worker of a parallel one), so an observer writes what its own process trains; whatever it
writes must therefore be safe to write from several processes into one run directory.
"""

from __future__ import annotations

import numbers
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


def tracking_observers(tensorboard: bool = False, mlflow: str | None = None) -> list[TrialObserver]:
    """The observers of hpsearch's own tracking: TensorBoard's HParams data
    (``tuner.hparams.TensorBoardObserver``) and an MLflow store (``tuner.mlflow_tracking``).

    Args:
        tensorboard: write TensorBoard's HParams data into ``RUN/tensorboard/``.
        mlflow: an MLflow tracking URI ("default": MLflow's own store); None: no MLflow.

    Raises:
        InvalidSettingError: ``mlflow`` is set but MLflow is not installed.
    """
    observers: list[TrialObserver] = []
    if tensorboard:
        from tuner.hparams import TensorBoardObserver

        observers.append(TensorBoardObserver())
    if mlflow:
        from tuner.mlflow_tracking import MlflowObserver

        observers.append(MlflowObserver(mlflow))
    return observers


def epoch_callback(observers, trial_id: str):
    """A Keras callback telling ``observers`` of every epoch of ``trial_id``, for trainings that
    KerasTuner does not run (``hpsearch transfer``: one trial per configuration and seed)."""
    import keras

    class EpochsToObservers(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            values = {name: float(value) for name, value in (logs or {}).items()
                      if isinstance(value, numbers.Real)}
            for observer in observers:
                observer.epoch_end(trial_id, int(epoch), values)

    return EpochsToObservers()


def observers_for(config, run_dir, extra=()) -> list[TrialObserver]:
    """The observers a search's settings ask for, then ``extra`` (a user's own).

    Args:
        config: a RunConfig: ``tensorboard`` adds TensorBoard's HParams data of every trial
            (``tuner.hparams.TensorBoardObserver``); ``mlflow`` (a tracking URI) one MLflow
            run per search and one child run per trial (``tuner.mlflow_tracking``).
        run_dir: the search's run directory.
        extra: observers of the caller's own, told after these.

    Raises:
        InvalidSettingError: ``mlflow`` is set but MLflow is not installed.
    """
    return tracking_observers(getattr(config, "tensorboard", False),
                              getattr(config, "mlflow", None)) + list(extra)
