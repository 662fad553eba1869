"""Retraining exported configurations on another dataset (or the same one) and measuring them.

Each configuration is rebuilt from its YAML through its search space for the target's input shape
and classes, trained on the target's training split with early stopping on the target's
validation split (best weights restored), and evaluated once on the target's test set. With
``final`` the validation split joins the training images and every configuration trains a fixed
number of epochs (chosen beforehand on validation), as final numbers are made once the choice is
over. Every row (configuration x seed) is written to ``transfer.csv`` as soon as it is done, so an
interrupted transfer resumes where it stopped. Each training's test-set probabilities are kept in
``predictions/``, and the summary adds the test accuracy of each configuration's seeds ensembled
(probabilities averaged), the usual last step once a configuration is chosen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np
import pandas as pd

import datasets
from search_spaces.precision import describe_precision, precision_policy
from top_configs import (
    TopConfig,
    TopConfigError,
    hyperparameters_for,
    plain_value,
    read_top_config,
    write_top_config,
)
from tuner import rundir
from tuner.config import InvalidSettingError, RunConfigError, check_subset, read_run_config
from tuner.errors import CorruptRunError, RunDirError
from tuner.results import completed_ranking, read_trials, summarize_transfer
from tuner.rundir import TOP_DIR, TRANSFER_CSV, TRANSFER_FILE, run_lock
from tuner.engine import _StopOnNaN
from tuner.mlflow_tracking import MLFLOW_FILE
from tuner.hparams import transfer_trial_id
from tuner.observers import epoch_callback
from tuner.progress import format_duration
from tuner.spaces import default_values, hooks_for, is_registered_dataset, resolve_space

COLUMNS = [
    "config",
    "config_id",
    "rank",
    "trial_id",
    "search_space",
    "source_dataset",
    "source_score",
    "dataset",
    "seed",
    "val_accuracy",
    "test_accuracy",
    "epochs",
    "params",
    "seconds_per_epoch",
    # The configuration's objective (val_accuracy for classifiers), at its best epoch on the
    # target's validation split and on its test split; the accuracies above stay empty for a
    # space that reports none.
    "objective",
    "val_score",
    "test_score",
    # True when the training's loss stopped being finite (its scores are then NaN); empty in
    # rows written before it was recorded.
    "diverged",
]


@dataclasses.dataclass(frozen=True)
class TransferSettings:
    """How configurations are retrained; written to ``transfer.yaml`` and checked on resume."""

    dataset: str = "cifar10"  # target dataset: a registered name or the path of the user's data
    target: str | None = None  # the label column of a .csv/.parquet target
    seeds: int = 1  # trainings per configuration (seeds 0..seeds-1)
    # None: each configuration its own epochs (those its trial reached its best score with, so a
    # learning-rate schedule runs its course as in the search); the textbook row the largest.
    epochs: int | None = None
    patience: int = 3  # early stopping on the target's validation accuracy
    subset: int | float | None = None  # training images of the target (None: all)
    include_textbook: bool = True  # add the textbook model of each family as a baseline row
    validation_fraction: float = 0.1
    precision: str = "auto"  # Keras dtype policy (see search_spaces.precision); not checked on resume
    # Train on the training and validation images together for exactly the epoch budget, without
    # early stopping; rows have no validation accuracy.
    final: bool = False
    # Keep each training's model as RUN/models/<config>_seed<n>.keras (not checked on resume).
    keep_models: bool = False

    def __post_init__(self):
        if self.seeds < 1 or self.patience < 1 or (self.epochs is not None and self.epochs < 1):
            raise InvalidSettingError(
                f"seeds, patience and epochs must be at least 1, got {self.seeds}, "
                f"{self.patience} and {self.epochs}."
            )
        if not is_registered_dataset(self.dataset) and not Path(self.dataset).exists():
            raise InvalidSettingError(
                f"Unknown dataset '{self.dataset}': neither one of "
                f"{', '.join(datasets.available_datasets())} nor an existing file or folder "
                "(--data PATH).")
        object.__setattr__(self, "subset", check_subset(self.subset, self.validation_fraction))


def config_id(config: TopConfig) -> str:
    """What a transfer row is keyed by: the trial id and a hash of the configuration itself, so
    that a source whose rank_2 changed (a resumed search) never averages two models."""
    values = {name: plain_value(value) for name, value in config.hyperparameters.items()}
    text = json.dumps([config.search_space, config.head, values], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"{config.trial_id or 'textbook'}-{digest}"


@dataclasses.dataclass
class TransferResult:
    """``rows``: one per configuration and seed; ``summary``: mean and std per configuration."""

    out_dir: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    new_rows: int


def collect_configs(sources: Sequence[str | os.PathLike]) -> list[tuple[str, TopConfig]]:
    """(name, config) pairs from tune run directories and/or YAML files, in the order given.

    Raises:
        TopConfigError: a source is neither a run directory with exported configurations nor a
            readable configuration file.
    """
    configs: list[tuple[str, TopConfig]] = []
    stems = [Path(source).stem for source in sources if not Path(source).is_dir()]
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted((path / TOP_DIR).glob("rank_*.yaml"),
                       key=lambda file: rundir.trial_sort_key(file.stem[len("rank_"):]))
            if not files:
                raise TopConfigError(
                    f"{path} holds no {TOP_DIR}/rank_*.yaml: pass a run directory written by "
                    "`hpsearch tune` (with at least one completed trial) or YAML files."
                )
            prefix = f"{path.name}/" if len(sources) > 1 else ""
            configs += [
                (f"{prefix}rank_{read_top_config(f).rank}", read_top_config(f)) for f in files
            ]
        else:
            # Files of the same name from two folders (a/rank_1.yaml, b/rank_1.yaml) keep their
            # folder's name: every row and its ensemble stay apart.
            folder = path.parent.parent if path.parent.name == TOP_DIR else path.parent
            name = path.stem if stems.count(path.stem) == 1 else f"{folder.name}/{path.stem}"
            configs.append((name, read_top_config(path)))
    for name, config in configs:
        # Check names, types and ranges now, before any data is loaded or model trained. The
        # hyperparameters of a space do not depend on the input shape.
        hyperparameters_for(config, _hypermodel(config, name, (32, 32, 3), 10), source=name)
    return configs


def _hypermodel(config: TopConfig, name: str, input_shape, num_classes):
    """The HyperModel of a configuration's space for data of that shape and classes.

    Raises:
        TopConfigError: the space cannot be resolved, or it is one whose models transfer does
            not retrain (its hooks say where to go instead).
    """
    try:
        space = resolve_space(config.search_space)
    except InvalidSettingError as error:
        raise TopConfigError(f"{name} cannot be rebuilt: {error} Retrain it with the code that "
                             "defined it, or make that code importable again.") from None
    refusal = hooks_for(space).transfer_refusal
    if refusal:
        raise TopConfigError(f"{name} is a '{config.search_space}' configuration: {refusal}")
    try:
        return space.make(config.space_args, input_shape=input_shape, num_classes=num_classes)
    except ValueError as error:
        raise TopConfigError(f"{name} cannot be rebuilt for {input_shape}: {error}") from None


def _epoch_range(epochs) -> str:
    low, high = min(epochs), max(epochs)
    return str(low) if low == high else f"{low}-{high}"


def _textbook_config(like: TopConfig, hypermodel, source_score: float) -> TopConfig:
    """The default point (hpsearch's classifiers: the textbook model) of ``like``'s space."""
    return TopConfig(
        rank=0,
        search_space=like.search_space,
        dataset=like.dataset,
        objective=like.objective,
        direction=like.direction,
        score=source_score,
        trial_id="",
        epochs=0,
        hyperparameters=default_values(hypermodel),
        space_args=dict(like.space_args),
    )


def _textbook_score(sources: Sequence[str | os.PathLike], space: str) -> float:
    """The textbook model's best score in a source run of that space, in that run's direction
    (NaN if none)."""
    for source in sources:
        path = Path(source)
        if not path.is_dir():
            continue
        try:
            config, _ = read_run_config(path)
        except RunConfigError:
            continue
        if config.space != space:
            continue
        trials = read_trials(path)
        ranking = completed_ranking(trials[trials["is_textbook"]], config.direction or "max")
        if not ranking.empty:
            return float(ranking["score"].iloc[0])
    return math.nan


_RESUME_FIX = "Use the same settings to resume, --overwrite to start again, or another --run-dir."

# What a folder a transfer must not write into holds (see ``rundir.run_kinds``).
_OTHER_RUNS = {
    rundir.SEARCH: f"a search ({rundir.RUN_FILE}, written by `hpsearch tune`)",
    rundir.KERAS_TUNER: f"a KerasTuner project ({rundir.ORACLE_FILE})",
    rundir.COMPARISON: f"a clock comparison ({rundir.COMPARISON_CSV}, written by "
                       "`hpsearch clock compare`)",
}


def _refuse_other_runs(out_dir: Path) -> None:
    """Refuse a folder that holds another kind of run: its files and the transfer's would mix
    (--overwrite deletes only a transfer's own files, so it is refused too)."""
    others = [_OTHER_RUNS[kind] for kind in rundir.run_kinds(out_dir) if kind in _OTHER_RUNS]
    if others:
        raise RunDirError(
            f"{out_dir} holds {' and '.join(others)}; a transfer written there would mix its "
            "files with that run's. Pass another --run-dir (a new folder, or one of a transfer)."
        )


def _check_settings(out_dir: Path, settings: TransferSettings, sources: list[str],
                    configs: dict[str, str]) -> dict[str, str]:
    """Write transfer.yaml or refuse other settings or changed sources; returns the
    configurations (name -> config id) trained before, as transfer.yaml recorded them."""
    path = out_dir / TRANSFER_FILE
    saved_configs: dict[str, str] = {}
    if path.is_file():
        saved_configs = rundir.read_yaml(path, "the settings of a transfer").get("configs") or {}
    rundir.check_settings(path, "settings", dataclasses.asdict(settings),
                          consequence="resuming it would mix incomparable trainings",
                          fix=_RESUME_FIX, ignore=("seeds", "precision", "keep_models"),
                          defaults={"final": False, "target": None, "keep_models": False})
    changed = [
        f"{name}: run directory has configuration {saved_configs[name]!r}, this command asks for "
        f"{configs[name]!r}" for name in configs if name in saved_configs and
        saved_configs[name] != configs[name]
    ]
    if changed:
        raise rundir.SettingsMismatchError(
            f"Run directory {out_dir} was made from other configurations under the same names "
            "(a source changed since, e.g. its search was resumed), so resuming it would average "
            "different models under one name:\n  - " + "\n  - ".join(changed)
            + "\nUse another --run-dir to measure the new configurations, or --overwrite."
        )
    rundir.write_yaml(path, {"settings": dataclasses.asdict(settings), "sources": sources,
                             "configs": {**saved_configs, **configs}})
    return saved_configs


def _read_rows(out_dir: Path, known_ids: dict[str, str]) -> pd.DataFrame:
    path = out_dir / TRANSFER_CSV
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    rows = rundir.read_csv(path, "the rows of a transfer", dtype={"trial_id": str, "config": str,
                                                                  "config_id": str},
                           keep_default_na=False, na_values=[""])
    if "config_id" not in rows.columns:
        # Written before rows were keyed by configuration: the names meant what was recorded.
        rows.insert(1, "config_id", rows["config"].map(known_ids))
    return rows.reindex(columns=COLUMNS)


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
    hypermodel = _hypermodel(config, source, data.input_shape, data.num_classes)
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


def _diverged_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """How many seeds of each configuration diverged (their loss stopped being finite): one row
    per ``config_id`` with ``diverged_seeds`` (rows written before it was recorded count as not
    diverged)."""
    flags = rows["diverged"].astype(str).str.lower() == "true"
    counts = flags.groupby(rows["config_id"].astype(str), sort=False).sum().astype(int)
    return pd.DataFrame({"config_id": counts.index, "diverged_seeds": counts.to_numpy()})


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over seeds; NaN with one seed) of validation and test accuracy
    per configuration; see ``tuner.results.summarize_transfer``."""
    return summarize_transfer(rows)


def run_transfer(
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    settings: TransferSettings = TransferSettings(),
    data_dir=None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = print,
    observers: Sequence = (),
) -> TransferResult:
    """Retrain the configurations of ``sources`` on ``settings.dataset`` and write the results.

    Args:
        sources: tune run directories (their top_configs/rank_*.yaml) and/or YAML files.
        out_dir: where ``transfer.csv``, ``summary.csv``, ``transfer.yaml``, ``configs/`` and
            ``predictions/`` go.
        settings: target dataset, seeds, epochs, early-stopping patience, subset, baseline.
        data_dir: where to look for the target dataset first.
        overwrite: discard earlier results in ``out_dir``.
        progress: called with each progress line.
        observers: ``tuner.observers.TrialObserver`` objects (``tracking_observers``: the
            HParams data, MLflow) told of each training as a trial named
            ``<configuration>-seed<n>``, with the configuration's hyperparameters, ``configuration``
            and ``seed`` as its values and its validation score (test score with ``final``).

    Raises:
        TopConfigError: a source is unreadable, invalid, or from a non-classifier space.
        RunDirError: ``out_dir`` holds another kind of run (a search, a KerasTuner project, a
            clock comparison).
        RunConfigError: ``out_dir`` holds a transfer made with other settings.
        datasets.DatasetError: the target dataset cannot be found or read.
    """
    progress = progress or (lambda line: None)
    out_dir = Path(out_dir)
    _refuse_other_runs(out_dir)
    source_names = [str(s) for s in sources]
    configs = collect_configs(sources)
    with run_lock(out_dir):
        if overwrite:
            # MLFLOW_FILE: a new transfer gets new MLflow runs (tuner/mlflow_tracking.py).
            for name in (TRANSFER_CSV, TRANSFER_FILE, rundir.TRANSFER_SUMMARY, MLFLOW_FILE):
                (out_dir / name).unlink(missing_ok=True)
            shutil.rmtree(out_dir / rundir.TENSORBOARD_DIR, ignore_errors=True)
            for path in (out_dir / rundir.TRANSFER_PREDICTIONS).glob("*.npy"):
                path.unlink()
        # Checked before the data is read, with the source configurations (textbook rows are
        # fixed by the space and need no check).
        trained_before = _check_settings(out_dir, settings, source_names,
                                         {name: config_id(config) for name, config in configs})
        from tuner.preparation import load_data

        data = load_data(settings.dataset, settings.target, data_dir, settings.subset,
                         settings.validation_fraction, seed=0)
        progress(f"Data: {data.summary()}")
        if not len(data.x_test):
            progress(f"{settings.dataset} has no test split: the rows report validation only.")
        if settings.include_textbook:
            for space in dict.fromkeys(config.search_space for _, config in configs):
                like = next(c for _, c in configs if c.search_space == space)
                hypermodel = _hypermodel(like, space, data.input_shape, data.num_classes)
                baseline = resolve_space(space).attribute("baseline_name", "default")
                name = (
                    baseline
                    if len({c.search_space for _, c in configs}) == 1
                    else f"{baseline}_{space}"
                )
                textbook = _textbook_config(like, hypermodel, _textbook_score(sources, space))
                same = [
                    n
                    for n, c in configs
                    if c.search_space == space and c.hyperparameters == textbook.hyperparameters
                ]
                if same:
                    # Training the same configuration twice would only measure seed noise.
                    progress(f"{same[0]} is the {baseline} model itself: no separate {baseline} "
                             "row.")
                else:
                    configs.append((name, textbook))
        longest = max([c.epochs for _, c in configs if c.epochs] or [10])
        epochs = {name: settings.epochs or config.epochs or longest for name, config in configs}
        rundir.make_dirs(out_dir / rundir.TRANSFER_CONFIGS, "folder")
        rundir.make_dirs(out_dir / rundir.TRANSFER_PREDICTIONS, "folder")
        ids = {name: config_id(config) for name, config in configs}
        records = _read_rows(out_dir, {**ids, **trained_before}).to_dict("records")
        for name, config in configs:
            write_top_config(
                out_dir / rundir.TRANSFER_CONFIGS / f"{name.replace('/', '__')}.yaml", config
            )
        done = {(str(r["config_id"]), int(r["seed"])) for r in records}
        todo = [
            (name, config, seed)
            for name, config in configs
            for seed in range(settings.seeds)
            if (ids[name], seed) not in done
        ]
        how = (
            f"on all {len(data.y_train) + len(data.y_val)} training and validation images of "
            f"{settings.dataset} for {_epoch_range(epochs.values())} epochs (final: no early stopping)"
            if settings.final else
            f"on {settings.dataset} for up to {_epoch_range(epochs.values())} epochs (early "
            f"stopping, patience {settings.patience})"
        )
        progress(
            f"Retraining {len(configs)} configurations x {settings.seeds} seed(s) {how}, in "
            f"{describe_precision(settings.precision)}; "
            f"{len(done)} already done, {len(todo)} to run."
        )
        started = time.monotonic()
        for observer in observers:
            observer.search_begin(out_dir, settings, {"space": []})
        try:
            _train_todo(todo, data, settings, epochs, ids, records, out_dir, progress, started,
                        observers)
        finally:
            for observer in observers:
                observer.search_end()
        rows = _read_rows(out_dir, ids)
        summary = summarize(rows)
        if "config_id" in summary.columns:
            ensembles = ensemble_accuracies(out_dir, rows, data.y_test)
            summary = summary.merge(ensembles, on="config_id", how="left")
            summary = summary.merge(_diverged_seeds(rows), on="config_id", how="left")
        rundir.write_csv(out_dir / rundir.TRANSFER_SUMMARY, summary)
        return TransferResult(out_dir=out_dir, rows=rows, summary=summary, new_rows=len(todo))


def _train_todo(todo, data, settings: TransferSettings, epochs, ids, records, out_dir: Path,
                progress, started: float, observers) -> None:
    """``run_transfer``'s trainings: each configuration and seed to do, a row each."""
    for index, (name, config, seed) in enumerate(todo, start=1):
        progress(
            f"[{index}/{len(todo)}] {name} (seed {seed}) | elapsed "
            f"{format_duration(time.monotonic() - started)}"
        )
        trial_id = transfer_trial_id(name, seed)
        values = {**config.hyperparameters, "configuration": name, "seed": seed}
        for observer in observers:
            observer.trial_begin(trial_id, values)
        with precision_policy(settings.precision):
            measured = train_and_evaluate(
                config, data, seed, epochs[name], settings.patience, source=name,
                progress=progress, final=settings.final,
                predictions_file=rundir.prediction_file(out_dir, ids[name], seed),
                model_file=(rundir.transfer_model_file(out_dir, name, seed)
                            if settings.keep_models else None),
                callbacks=[epoch_callback(observers, trial_id)] if observers else (),
            )
        score = measured["test_score" if settings.final else "val_score"]
        for observer in observers:
            observer.trial_end(trial_id, "FAILED" if measured["diverged"] else "COMPLETED",
                               float(score) if math.isfinite(score) else None, values)
        row = {
            "config": name,
            "config_id": ids[name],
            "rank": config.rank or None,
            "trial_id": config.trial_id,
            "search_space": config.search_space,
            "source_dataset": config.dataset,
            "source_score": config.score,
            "dataset": settings.dataset,
            "seed": seed,
            **measured,
        }
        records.append(row)
        rundir.write_csv(out_dir / TRANSFER_CSV, pd.DataFrame(records, columns=COLUMNS))
        metric = measured["objective"][len("val_"):]
        progress(
            (f"    test_{metric} {measured['test_score']:.4f} after {measured['epochs']} "
             "epochs, " if settings.final else
             f"    val_{metric} {measured['val_score']:.4f}, test_{metric} "
             f"{measured['test_score']:.4f}, best epoch {measured['epochs']}, ")
            + f"{measured['seconds_per_epoch']:.1f} s/epoch"
            + (" (diverged: its loss stopped being finite)" if measured["diverged"] else "")
        )


def format_transfer_table(summary: pd.DataFrame) -> str:
    """The table ``hpsearch transfer`` prints: one line per configuration, its objective on the
    target's validation and test splits (accuracy for classifiers)."""
    if summary.empty:
        return "No results."
    ensembled = "ensemble_seeds" in summary.columns and (summary["ensemble_seeds"] > 1).any()
    objectives = list(dict.fromkeys(summary["objective"])) if "objective" in summary else []
    metric = objectives[0][len("val_"):] if len(objectives) == 1 else "score"
    lines = [
        f"{'config':<22} {'source val':>10} {'target val ' + metric:>20} "
        f"{'target test ' + metric:>20} "
        + (f"{'ensemble':>13} " if ensembled else "")
        + f"{'epochs':>6} {'params':>9} {'s/epoch':>8}"
    ]
    for row in summary.itertuples():
        # Every seed's loss stopped being finite: that is why its scores are missing.
        diverged = getattr(row, "diverged_seeds", 0) == row.seeds
        source = f"{row.source_score:.4f}" if math.isfinite(float(row.source_score)) else "-"
        lines.append(
            f"{row.config:<22} {source:>10} "
            f"{_score_cell(row.val_score_mean, row.val_score_std, diverged):>20} "
            f"{_score_cell(row.test_score_mean, row.test_score_std, diverged):>20} "
            + (f"{_ensemble_cell(row):>13} " if ensembled else "")
            + f"{row.epochs_mean:>6.1f} {int(row.params):>9,} {row.seconds_per_epoch:>8.1f}"
        )
    return "\n".join(lines)


def _score_cell(mean, std, diverged: bool) -> str:
    """``0.8123 ± 0.0100`` (no ± with one seed); a missing score is "diverged" when every seed
    diverged, else "-" (no validation split with --final, or no test split)."""
    if not math.isfinite(float(mean)):
        return "diverged" if diverged else "-"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if isinstance(std, float) and math.isfinite(std)
                            else "")


def _ensemble_cell(row) -> str:
    """``0.9123 (x3)``: the test accuracy of the seeds ensembled, and how many there were."""
    if not (row.ensemble_seeds > 1 and math.isfinite(float(row.ensemble_test_accuracy))):
        return "-"
    return f"{row.ensemble_test_accuracy:.4f} (x{int(row.ensemble_seeds)})"
