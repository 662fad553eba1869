"""Trained models out of a search: the best trials' models kept as ``.keras`` files, and loading
them back.

``tune --keep-models K`` keeps ``RUN/models/rank_1.keras`` ... ``rank_K.keras``: each the model
of its trial, built from the trial's hyperparameters with the weights of the epoch its score came
from (KerasTuner's checkpoint). They are rewritten after every trial that changes the ranking,
each atomically, and ``models.yaml`` says which trial each one is. A plain Keras model loads with
``keras.saving.load_model`` alone, without importing hpsearch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras_tuner as kt

from tuner import rundir
from tuner.errors import RunDirError
from tuner.results import completed_ranking, project_dir, read_trial_values, read_trials
from tuner.rundir import MODELS_DIR, MODELS_INDEX, TRIAL_CHECKPOINT


def model_path(run_dir: str | os.PathLike, rank: int) -> Path:
    """Where the model of rank ``rank`` (1 = best) is kept."""
    return Path(run_dir) / MODELS_DIR / f"rank_{rank}.keras"


def best_trial_ids(run_dir: str | os.PathLike, direction: str, count: int) -> list[tuple[str, float]]:
    """(trial id, score) of the best ``count`` completed trials that have a checkpoint, best first;
    a Hyperband trial and those it was promoted from count once (the best-scoring)."""
    trials = read_trials(run_dir, textbook_values={})
    values = read_trial_values(run_dir)
    chosen, seen = [], []
    for _, row in completed_ranking(trials, direction).iterrows():
        if len(chosen) == count:
            break
        trial_id = str(row["trial_id"])
        plain = {k: v for k, v in values[trial_id].items() if not k.startswith("tuner/")}
        checkpoint = _trial_dir(run_dir, trial_id) / TRIAL_CHECKPOINT
        if plain in seen or not checkpoint.is_file():
            continue
        seen.append(plain)
        chosen.append((trial_id, float(row["score"])))
    return chosen


def trial_model(run_dir: str | os.PathLike, trial_id: str, hypermodel):
    """The model of a trial: built from its hyperparameters, with its checkpoint's weights.

    Raises:
        RunDirError: the trial has no checkpoint.
    """
    values = read_trial_values(run_dir)[str(trial_id)]
    checkpoint = _trial_dir(run_dir, trial_id) / TRIAL_CHECKPOINT
    if not checkpoint.is_file():
        raise RunDirError(f"Trial {trial_id} of {run_dir} has no trained weights ({checkpoint} is "
                          "missing): it did not finish an epoch.")
    hp = kt.HyperParameters()
    hp.values.update({k: v for k, v in values.items() if not k.startswith("tuner/")})
    model = hypermodel.build(hp)
    model.load_weights(checkpoint)
    return model


def keep_best_models(run_dir: str | os.PathLike, config, hypermodel) -> list[Path]:
    """Make ``RUN/models/`` hold the models of the best ``config.keep_models`` trials.

    Only ranks whose trial changed are written again; ranks beyond the trials there are are
    removed. Returns the kept files, best first.
    """
    run_dir = Path(run_dir)
    best = best_trial_ids(run_dir, config.direction, int(config.keep_models))
    index_path = run_dir / MODELS_DIR / MODELS_INDEX
    index = _read_index(index_path)
    kept = []
    for rank, (trial_id, score) in enumerate(best, start=1):
        path = model_path(run_dir, rank)
        entry = {"trial_id": trial_id, "score": score, "objective": config.objective}
        if index.get(f"rank_{rank}", {}).get("trial_id") != trial_id or not path.is_file():
            rundir.save_model(path, trial_model(run_dir, trial_id, hypermodel))
        index[f"rank_{rank}"] = entry
        kept.append(path)
    for key in [key for key in index if int(key.split("_")[1]) > len(best)]:
        model_path(run_dir, int(key.split("_")[1])).unlink(missing_ok=True)
        del index[key]
    if best:
        rundir.write_yaml(index_path, index)
    return kept


def load_best_models(run_dir: str | os.PathLike, count: int | None = None) -> list[Any]:
    """The trained models of a search's best trials, best first: those it kept
    (``--keep-models``), else rebuilt from the best ``count`` trials' checkpoints (3 by default)
    with the space recorded in ``run.yaml``.

    Raises:
        RunDirError: nothing kept, and the space cannot rebuild its models from the run's files
            alone (the clock's: ``tuner.clock_models.load_trained_model`` reads them).
    """
    import keras

    run_dir = Path(run_dir)
    index = _read_index(run_dir / MODELS_DIR / MODELS_INDEX)
    ranks = sorted(int(key.split("_")[1]) for key in index)
    paths = [model_path(run_dir, rank) for rank in ranks if model_path(run_dir, rank).is_file()]
    if paths and (count is None or len(paths) >= count):
        return [keras.saving.load_model(path) for path in paths[:count]]
    config, hypermodel = _recorded_hypermodel(run_dir)
    best = best_trial_ids(run_dir, config.direction, count or DEFAULT_COUNT)
    return [trial_model(run_dir, trial_id, hypermodel) for trial_id, _ in best]


# Models ``load_best_models`` rebuilds when the search kept none and no count is asked.
DEFAULT_COUNT = 3


def _recorded_hypermodel(run_dir: Path):
    """The run's config and its space's HyperModel, as ``run.yaml`` recorded them."""
    from tuner.config import read_run_config
    from tuner.spaces import SearchHooks, hooks_for, make_hypermodel, resolve_recorded_space

    config, document = read_run_config(run_dir)
    space = resolve_recorded_space(config, document)
    if type(hooks_for(space)) is not SearchHooks:
        raise RunDirError(
            f"{run_dir} kept no model ({MODELS_DIR}/ is empty), and the '{config.space}' space "
            "needs more than the run's files to rebuild one: resume the search with "
            "--keep-models K, or read its trials with tuner.clock_models.load_trained_model.")
    data = document.get("data") or {}
    return config, make_hypermodel(config, space, tuple(data.get("input_shape") or ()),
                                   data.get("num_classes"))


def _read_index(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    return rundir.read_yaml(path, "the index of kept models") or {}


def _trial_dir(run_dir: str | os.PathLike, trial_id: str) -> Path:
    return project_dir(run_dir) / f"{rundir.TRIAL_DIR_PREFIX}{trial_id}"
