"""Running a search: ``run_search``, the facade over the parts that know nothing of each other.

It checks the settings (``tuner.preparation``), takes the run directory's lock and checks a
resume against what the directory holds (``tuner.rundir``: settings, space source, data),
prepares the data and the space, and runs hpsearch's KerasTuner engine (``tuner.engine``), whose
tuners and oracles (``tuner.oracles``) give the guarantees: the default point as the first trial,
atomic state files, a resume that retrains nothing, failed trials recorded. After every trial it
exports ``trials.csv``, the top-3 YAML and, when asked, the best models (``tuner.export``,
``tuner.models``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import keras
import keras_tuner as kt

import datasets
from search_spaces import Space
from search_spaces.precision import precision_policy
from tuner import rundir
from tuner.config import RunConfig, identity_defaults, implied_direction, write_run_config
from tuner.engine import _stopped_message, frozen_survivors, new_tuner, search_callbacks
from tuner.errors import CorruptRunError, RunDirError, SearchError
from tuner.export import SearchResult, export_results, search_result  # noqa: F401 (API)
from tuner.mlflow_tracking import MLFLOW_FILE  # a new search gets new MLflow runs
from tuner.models import keep_best_models
from tuner.observers import observers_for
from tuner.preparation import data_record, fit_arguments, prepare_search, validate_search
from tuner.results import project_dir
from tuner.rundir import PROJECT_NAME, SPACE_FILE, TENSORBOARD_DIR, TOP_DIR, TRIAL_LOG, TRIALS_CSV, run_lock
from tuner.spaces import (check_data_unchanged, check_space_unchanged, hooks_for, resolve_space,
                          space_record)

__all__ = ["SearchResult", "run_search"]


def _check_resume(run_dir: Path, config: RunConfig, overwrite: bool, hooks=None) -> bool:
    """True when resuming an existing run; refuses a mismatch; wipes the run on overwrite.
    ``hooks``: the space's (what its settings stood for before they were recorded)."""
    if not (run_dir / rundir.RUN_FILE).is_file() and rundir.is_keras_tuner_project(run_dir):
        raise RunDirError(
            f"{run_dir} holds a KerasTuner project written by your own code (oracle.json, "
            "trial_*/trial.json), not an hpsearch run. Resuming it needs your hypermodel: reopen "
            "it in Python with your tuner and overwrite=False. hpsearch can read it: "
            f"`hpsearch report {run_dir}` and `hpsearch export {run_dir}`."
        )
    exists = (run_dir / rundir.RUN_FILE).is_file() or project_dir(run_dir).exists()
    if not exists:
        return False
    if overwrite:
        for name in (PROJECT_NAME, TOP_DIR, TENSORBOARD_DIR, rundir.WORKERS_DIR, rundir.MODELS_DIR):
            shutil.rmtree(run_dir / name, ignore_errors=True)
        for name in (rundir.RUN_FILE, SPACE_FILE, TRIAL_LOG, TRIALS_CSV, rundir.DISTRIBUTED_FILE,
                     rundir.RUN_TOKEN_FILE, MLFLOW_FILE):
            (run_dir / name).unlink(missing_ok=True)
        return False
    if not (run_dir / rundir.RUN_FILE).is_file():
        # run.yaml is written before the project: deleted, or left out of a copy. Without it
        # nothing tells whether this command's settings are the search's.
        raise CorruptRunError(
            f"{run_dir / rundir.RUN_FILE} is missing, but {project_dir(run_dir)} holds this "
            "search's trials: without it this command's settings cannot be checked against "
            "theirs, and resuming could mix incomparable trials. Restore run.yaml (from a backup "
            "or the folder it was copied from), pass --overwrite to start again (deleting the "
            "trials), or use another --run-dir.")
    saved = rundir.read_yaml(run_dir / rundir.RUN_FILE, "an hpsearch run configuration")
    saved_iterations = ((saved.get("config") or {}) if isinstance(saved, dict) else {}).get(
        "hyperband_iterations", 1)
    if not config.uses_hyperband:
        ignore = ("factor", "hyperband_iterations")  # Hyperband's own: nothing to other tuners
    elif isinstance(saved_iterations, int) and config.hyperband_iterations >= saved_iterations:
        # More sweeps extend a search (its earlier brackets stay as they are); fewer do not.
        ignore = ("hyperband_iterations",)
    else:
        ignore = ()
    rundir.check_settings(
        run_dir / rundir.RUN_FILE,
        "config",
        config.identity(),
        consequence="resuming it would mix incomparable trials",
        fix="Use the saved settings to resume, --overwrite to start again, or another --run-dir.",
        ignore=ignore,
        defaults={**identity_defaults(config),
                  **(hooks or hooks_for(resolve_space(config))).identity_defaults(config)},
    )
    # Named before KerasTuner reloads them (it would fail with a bare JSONDecodeError).
    hint = rundir.repair_hint(run_dir)
    rundir.read_trial_states(project_dir(run_dir), repair_hint=hint)
    try:
        rundir.read_oracle_state(project_dir(run_dir))
    except CorruptRunError as error:
        raise CorruptRunError(f"{error}\n{hint}") from None
    return True


def run_search(
    config: RunConfig,
    run_dir: str | os.PathLike,
    data_dir=None,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
    data: datasets.Dataset | None = None,
    force_direction: bool = False,
    serve=None,
    space=None,
    accept_changed_space: bool = False,
    callbacks=None,
    observers=(),
    retirement=None,
) -> SearchResult:
    """Run (or resume) a search and export its results.

    Everything that can be checked without data (space, dataset, head, objective and direction,
    the run directory's settings and files) is checked before any data is read or model trained.

    Args:
        config: what to search and with which budget.
        run_dir: where everything is written; an existing run there is resumed.
        data_dir: where to look for the dataset first (see ``datasets.load``).
        overwrite: discard an existing run in ``run_dir`` and start again.
        progress: called with each progress line (``print`` by default; ``None`` for silence).
        data: an already split dataset (for notebooks: ``datasets.load(...)``,
            ``datasets.user.from_arrays(...)``, ``from_tf_dataset(...)``); ``config.dataset``
            becomes its name and no subset is drawn. Default None: loaded from ``config``.
        force_direction: accept a direction that contradicts the objective's name (e.g.
            minimizing an accuracy). Default False: refused.
        serve: a ``tuner.distributed.ServeSettings``: be the chief of a distributed search,
            serving the oracle to workers (``run_worker``) until the budget is spent, training
            nothing itself. Default None: run the trials in this process.
        space: the space itself, from a notebook: a ``build_model(hp)`` function, a
            ``keras_tuner.HyperModel`` subclass or instance (default: ``config.space`` resolved).
            ``config.space`` is then set to its ``module:name``, which run.yaml records.
        accept_changed_space: resume even though the space's source file changed since the
            search began (default False: refused, naming the changed hyperparameters).
        callbacks: Keras callbacks added to every trial's ``fit`` in this process.
        observers: ``tuner.observers.TrialObserver`` objects told of every trial's start, epochs
            and end in this process (beside those the settings ask for).
        retirement: a ``tuner.recycling.Retirement``: this process is one of those a long search
            runs in (``tuner.recycled_search.run_recycled_search``), and leaves the search to a
            fresh one once it is due, by raising ``tuner.recycling.ProcessRetired`` after a
            trial (saved and exported). Default None: every trial runs in this process.

    Returns:
        A SearchResult with the trials table and the exported top configurations.

    Raises:
        InvalidSettingError: invalid settings (exit code 2 on the command line).
        SettingsMismatchError: a resume with other settings.
        RunLockedError: another process is searching in ``run_dir``.
        RunDirError: ``run_dir`` cannot be written, holds a KerasTuner project of the user's own,
            or has unreadable files (``CorruptRunError``, which names them and the repair).
        SearchError: the search stopped, e.g. after too many consecutive failed trials.
        datasets.DatasetError: the dataset cannot be found or read.
        tuner.recycling.ProcessRetired: ``retirement`` says this process is due.
    """
    started = time.monotonic()
    with frozen_survivors():
        resolved = None
        if space is not None:
            resolved = resolve_space(space)
            config = dataclasses.replace(config, space=resolved.reference)
        if data is not None:
            # Data handed over is already split: it names itself, and no subset is drawn.
            config = dataclasses.replace(config, dataset=data.name, subset=None)
        return _run_search(config, Path(run_dir), data_dir, overwrite, progress or (lambda line: None),
                           data, force_direction, serve, started, resolved, accept_changed_space,
                           callbacks, observers, retirement)


def _run_search(config: RunConfig, run_dir: Path, data_dir, overwrite: bool, progress, data,
                force_direction: bool, serve, started: float, space: Space | None = None,
                accept_changed_space: bool = False, callbacks=None,
                observers=(), retirement=None) -> SearchResult:
    """``run_search``'s body, inside its ``frozen_survivors`` block."""
    config = validate_search(config, force_direction, space, data)
    space = space or resolve_space(config)
    config, state = hooks_for(space).prepare(config)
    if config.precision == "auto" and not space.attribute("mixed_precision_ready", False):
        # A mixed policy changes the dtype of every layer of the user's model, its outputs too.
        config = dataclasses.replace(config, precision="float32")
    if force_direction and implied_direction(config.objective) not in (None, config.direction):
        progress(f"Warning: {config.objective} is {config.direction}imized as forced.")
    with run_lock(run_dir), precision_policy(config.precision) as precision:
        resuming = _check_resume(run_dir, config, overwrite, hooks_for(space))
        prepared = prepare_search(config, data_dir, data, space=space, state=state,
                                  prepared_config=True)
        if resuming:
            warning = check_space_unchanged(run_dir, space, prepared.hypermodel,
                                            accept_changed_space)
            if warning:
                progress(warning)
            check_data_unchanged(run_dir, config, prepared.data)
        progress(f"Data: {prepared.data.summary()}")
        for line in prepared.lines:
            progress(line)
        hypermodel, textbook = prepared.hypermodel, prepared.default_values
        write_run_config(
            run_dir,
            config,
            {
                **prepared.record,
                "precision": precision,
                "textbook_values": textbook,
                "baseline_name": space.attribute("baseline_name", "default"),
                "space": space_record(space),
                "data": data_record(config, prepared.data),
                "versions": {
                    "tensorflow": _version("tensorflow"),
                    "keras": keras.__version__,
                    "keras_tuner": kt.__version__,
                },
            },
        )
        keras.utils.set_random_seed(config.seed)
        tuner = new_tuner(config, hypermodel, run_dir, trains=serve is None,
                          hyperparameters=prepared.fixed)
        if config.uses_hyperband:
            # KerasTuner keeps the saved value on reload; a larger budget must reach the oracle.
            tuner.oracle.hyperband_iterations = config.hyperband_iterations
            tuner.oracle.max_trials = config.max_trials
        else:
            tuner.oracle.max_trials = config.trial_budget
        # Trials that ended: one a kill interrupted is RUNNING on disk and runs again now.
        done_before = _ended_trials(tuner.oracle)
        progress(
            ("Resuming" if resuming else "Starting")
            + f" a {config.tuner} search of '{config.space}'"
            f" on {config.dataset} in {run_dir}: objective {config.objective} ({config.direction}),"
            f" budget {config.trial_budget} trials, {done_before} already run."
        )

        def export():
            exported = export_results(run_dir, config, textbook)
            if config.keep_models:
                keep_best_models(run_dir, config, hypermodel)
            return exported

        def after_trial():
            export()
            if retirement is not None:
                retirement.after_trial()

        observers = observers_for(config, run_dir, observers)
        if retirement is not None:
            observers.append(retirement)
        tuner._setup_tracking(run_dir, config, progress, after_trial, hooks=prepared.hooks,
                              record=prepared.record, observers=observers)
        if retirement is not None:
            retirement.attach(tuner)
        rundir.write_json(run_dir / SPACE_FILE, tuner.oracle.get_space().get_config())
        if serve is not None:
            from tuner.distributed import serve_oracle

            tuner.oracle.trial_cap = config.trial_budget
            serve_oracle(tuner.oracle, run_dir, serve, progress)
            trials, top = export()
            return search_result(run_dir, config, trials, top,
                                 _ended_trials(tuner.oracle) - done_before, started, math.nan,
                                 precision)
        space_config = tuner.oracle.get_space().get_config()
        for observer in observers:
            observer.search_begin(run_dir, config, space_config)
        try:
            tuner.search(**fit_arguments(prepared, search_callbacks(config, run_dir, callbacks)))
        except RuntimeError as error:
            export()
            raise SearchError(_stopped_message(error)) from None
        finally:
            keras.backend.clear_session()
            for observer in observers:
                observer.search_end()
        trials, top = export()
        return search_result(run_dir, config, trials, top,
                             _ended_trials(tuner.oracle) - done_before, started,
                             tuner.training_seconds, precision)


def _ended_trials(oracle) -> int:
    return sum(trial.status in rundir.ENDED_STATUSES for trial in oracle.trials.values())


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
