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

This module runs a transfer (``run_transfer``) and owns its settings and run directory;
``tuner.transfer_configs`` reads and checks the configurations to retrain,
``tuner.transfer_training`` trains and measures one, and ``tuner.transfer_table`` reads the rows
back, summarizes them and formats the printed table. Their public names are importable from here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

import datasets
from search_spaces.precision import describe_precision, precision_policy
from top_configs import write_top_config
from tuner import rundir
from tuner.config import InvalidSettingError, check_subset
from tuner.errors import RunDirError
from tuner.hparams import transfer_trial_id
from tuner.mlflow_tracking import MLFLOW_FILE
from tuner.observers import epoch_callback
from tuner.progress import format_duration
from tuner.rundir import TRANSFER_CSV, TRANSFER_FILE, run_lock
from tuner.spaces import is_registered_dataset
from tuner.transfer_configs import add_textbook_configs, collect_configs, config_id
from tuner.transfer_table import (COLUMNS, diverged_seeds, format_transfer_table, read_rows,
                                  summarize)
from tuner.transfer_training import EpochLines, accuracy, ensemble_accuracies, train_and_evaluate

__all__ = [
    "COLUMNS",
    "EpochLines",
    "TransferResult",
    "TransferSettings",
    "accuracy",
    "collect_configs",
    "config_id",
    "ensemble_accuracies",
    "format_transfer_table",
    "run_transfer",
    "summarize",
    "train_and_evaluate",
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


@dataclasses.dataclass
class TransferResult:
    """``rows``: one per configuration and seed; ``summary``: mean and std per configuration."""

    out_dir: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    new_rows: int


def _epoch_range(epochs) -> str:
    low, high = min(epochs), max(epochs)
    return str(low) if low == high else f"{low}-{high}"


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
            add_textbook_configs(configs, sources, data.input_shape, data.num_classes, progress)
        longest = max([c.epochs for _, c in configs if c.epochs] or [10])
        epochs = {name: settings.epochs or config.epochs or longest for name, config in configs}
        rundir.make_dirs(out_dir / rundir.TRANSFER_CONFIGS, "folder")
        rundir.make_dirs(out_dir / rundir.TRANSFER_PREDICTIONS, "folder")
        ids = {name: config_id(config) for name, config in configs}
        records = read_rows(out_dir, {**ids, **trained_before}).to_dict("records")
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
        rows = read_rows(out_dir, ids)
        summary = summarize(rows)
        if "config_id" in summary.columns:
            ensembles = ensemble_accuracies(out_dir, rows, data.y_test)
            summary = summary.merge(ensembles, on="config_id", how="left")
            summary = summary.merge(diverged_seeds(rows), on="config_id", how="left")
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
