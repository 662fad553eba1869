"""Training one transferred configuration and measuring it: rebuilt for the target's data,
trained (early stopping on its objective, or a fixed budget with ``final``), evaluated once on the
test split, its test-set probabilities kept; and the accuracy of several seeds ensembled.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Sequence

import keras
import numpy as np
import pandas as pd

import datasets
from top_configs import TopConfig, hyperparameters_for
from tuner import rundir
from tuner.engine import _StopOnNaN
from tuner.errors import CorruptRunError
from tuner.progress import format_duration
from tuner.transfer_configs import hypermodel_for


def train_and_evaluate(
    config: TopConfig,
    data: datasets.Dataset,
    seed: int,
    epochs: int,
    patience: int = 3,
    source: str = "configuration",
    progress: Callable[[str], None] | None = None,
    final: bool = False,
    predictions_file: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Rebuild ``config`` for ``data``, train with early stopping, evaluate once on the test set.

    A configuration with a learning-rate schedule trains all ``epochs`` (its schedule's length)
    and keeps its best epoch: early stopping would cut the schedule's low-rate end.
    ``final`` trains on the training and validation images together for exactly ``epochs`` and
    keeps the last weights (nothing is left to choose with).
    ``progress``, when given, is called with one line per epoch (see ``EpochLines``).
    ``predictions_file``, when given, receives the test images' class probabilities (``.npy``,
    float32, images x classes), from which the test accuracy is computed (configurations whose
    objective is ``val_accuracy``). ``model_file``, when given, receives the trained model
    (``.keras``). ``callbacks`` are added to the training's ``fit`` (the observers' epochs).

    The configuration's objective is what early stopping watches and what is measured: a
    configuration searched for ``val_mae`` reports the test MAE (``test_score``).

    Returns:
        val_accuracy (best epoch; NaN when ``final`` or when the model reports no accuracy),
        test_accuracy, epochs (of the best epoch; trained, when ``final``), params,
        seconds_per_epoch, objective, val_score and test_score (the objective's value at the best
        epoch and on the test split; NaN when there is no test split) and diverged. A training
        whose loss stops being finite stops at that batch, gives NaN scores and diverged True.
    """
    hypermodel = hypermodel_for(config, source, data.input_shape, data.num_classes)
    hp = hyperparameters_for(config, hypermodel, source=source)
    objective = config.objective or "val_accuracy"
    direction = config.direction or "max"
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    callbacks = ([_StopOnNaN()] + ([EpochLines(epochs, progress)] if progress else [])
                 + list(callbacks))
    if final:
        x = np.concatenate([data.x_train, data.x_val])
        y = np.concatenate([data.y_train, data.y_val])
        fit_options = {}
    else:
        x, y = data.x_train, data.y_train
        fit_options = {"validation_data": (data.x_val, data.y_val)}
        if hp.values.get("lr_schedule", "constant") != "constant":
            # A decaying learning rate gains most in its last epochs: stopping early would cut
            # exactly those. Train them all; the best epoch's weights are still restored.
            patience = epochs
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=objective, mode=direction, patience=patience, restore_best_weights=True
        ))
    started = time.monotonic()
    history = hypermodel.fit(
        hp, model, x, y, epochs=epochs, callbacks=callbacks, verbose=0, **fit_options
    )
    seconds = time.monotonic() - started
    ran = len(history.history.get("loss", [])) or 1
    measured = {
        "val_accuracy": math.nan, "test_accuracy": math.nan, "epochs": ran,
        "params": int(model.count_params()), "seconds_per_epoch": seconds / max(ran, 1),
        "objective": objective, "val_score": math.nan, "test_score": math.nan,
        "diverged": not all(math.isfinite(loss) for loss in history.history.get("loss", [])),
    }
    if measured["diverged"]:
        return measured
    scores = np.asarray(history.history.get(objective, [math.nan] * ran), dtype=float)
    if final:
        best_epoch = ran - 1
    elif np.isfinite(scores).any():
        best_epoch = int(np.nanargmax(scores) if direction == "max" else np.nanargmin(scores))
    else:
        best_epoch = ran - 1
    measured["epochs"] = best_epoch + 1
    if not final:
        measured["val_score"] = float(scores[best_epoch])
        if "val_accuracy" in history.history:
            measured["val_accuracy"] = float(history.history["val_accuracy"][best_epoch])
    if model_file is not None:
        rundir.save_model(model_file, model)
    if not len(data.x_test):
        return measured  # the user's data brought no test split
    if objective == "val_accuracy":
        probabilities = np.asarray(model.predict(data.x_test, verbose=0), dtype=np.float32)
        if predictions_file is not None:
            rundir.write_array(predictions_file, probabilities)
        measured["test_accuracy"] = measured["test_score"] = accuracy(probabilities, data.y_test)
        return measured
    results = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    measured["test_score"] = float(results.get(objective[len("val_"):], math.nan))
    if "accuracy" in results:
        measured["test_accuracy"] = float(results["accuracy"])
    return measured


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose most probable class is their label."""
    return float(np.mean(np.argmax(probabilities, axis=-1) == np.ravel(labels)))


def ensemble_accuracies(out_dir: str | os.PathLike, rows: pd.DataFrame,
                        labels: np.ndarray) -> pd.DataFrame:
    """Test accuracy of each configuration's seeds ensembled (their test probabilities averaged).

    Reads the ``predictions/`` files of the finite rows of ``rows`` (rows written before the files
    existed, or of a diverged training, have none and are left out). Returns one row per
    ``config_id``: ``ensemble_seeds`` (how many were averaged) and ``ensemble_test_accuracy``
    (NaN with fewer than two).

    Raises:
        CorruptRunError: a prediction file is unreadable or does not match the test labels.
    """
    labels = np.ravel(labels)
    found: dict[str, list[np.ndarray]] = {}
    for row in rows.itertuples():
        path = rundir.prediction_file(out_dir, row.config_id, row.seed)
        if not (math.isfinite(float(row.test_accuracy)) and path.is_file()):
            continue
        probabilities = rundir.read_array(path, "test-set probabilities of a transfer row")
        arrays = found.setdefault(str(row.config_id), [])
        # One row per test image; the first file of a configuration fixes its class count.
        expected = str(arrays[0].shape) if arrays else f"({len(labels)}, classes)"
        if probabilities.ndim != 2 or len(probabilities) != len(labels) or (
                arrays and probabilities.shape != arrays[0].shape):
            raise CorruptRunError(
                f"{path} holds an array of shape {probabilities.shape}; expected {expected} "
                f"for the {len(labels)} test images. Delete it to leave that seed out of the "
                "ensemble."
            )
        arrays.append(probabilities)
    records = [
        {"config_id": key, "ensemble_seeds": len(arrays),
         "ensemble_test_accuracy": accuracy(np.mean(arrays, axis=0), labels)
         if len(arrays) > 1 else math.nan}
        for key, arrays in found.items()
    ]
    return pd.DataFrame(records, columns=["config_id", "ensemble_seeds", "ensemble_test_accuracy"])


class EpochLines(keras.callbacks.Callback):
    """One line per epoch of a retraining, so that a 40-epoch run is not silent for minutes::

        epoch 3/40  loss 0.4121  accuracy 0.8512  val_accuracy 0.8733 (best 0.8733)  13.9 s/epoch  left ~8:50
    """

    def __init__(self, epochs: int, printer: Callable[[str], None]):
        super().__init__()
        self.epochs, self.printer = epochs, printer
        self.best = -math.inf
        self._started = 0.0

    def on_train_begin(self, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        done = epoch + 1
        per_epoch = (time.monotonic() - self._started) / done
        parts = [f"    epoch {done}/{self.epochs}"]
        for key in ("loss", "accuracy"):
            if key in logs:
                parts.append(f"{key} {float(logs[key]):.4f}")
        if "val_accuracy" in logs:
            value = float(logs["val_accuracy"])
            self.best = max(self.best, value) if math.isfinite(value) else self.best
            parts.append(f"val_accuracy {value:.4f} (best {self.best:.4f})")
        parts.append(f"{per_epoch:.1f} s/epoch")
        if done < self.epochs:
            parts.append(f"left ~{format_duration(per_epoch * (self.epochs - done))}")
        self.printer("  ".join(parts))
